"""The ledger from SQLAlchemy (Debian 12: python3-sqlalchemy 1.4 with
python3-psycopg2, SQLAlchemy 1.4 having no psycopg 3 dialect): the SQL
functions called with text() and bound parameters inside a session's
transaction, Decimal amounts both ways, and an LD error's class and facts
read with ledger_client's parser from the driver's diagnostics."""

import unittest
from decimal import Decimal

import sqlalchemy as sa
import sqlalchemy.orm
from psycopg.conninfo import conninfo_to_dict

from tests.support import admin, env, uniq
import ledger_client as lc


def engine():
    params = conninfo_to_dict(env("LEDGER_TEST_DSN"))
    query = {"host": params["host"], "port": params.get("port", "5432")}
    url = sa.engine.URL.create("postgresql+psycopg2", username=params["user"],
                               database=params["dbname"], query=query)
    return sa.create_engine(url, future=True)


class SQLAlchemyTest(unittest.TestCase):
    def setUp(self):
        self.asset = uniq("SA")[:12].upper()
        self.a, self.b, self.world = uniq("sa-a"), uniq("sa-b"), uniq("sa-world")
        with admin() as conn:
            conn.execute("SELECT ledger.create_asset(%s, 2)", (self.asset,))
            conn.execute("SELECT ledger.create_account(%s, %s, min_balance => NULL)", (self.world, self.asset))
            for code in (self.a, self.b):
                conn.execute("SELECT ledger.create_account(%s, %s)", (code, self.asset))
        self.engine = engine()

    def tearDown(self):
        self.engine.dispose()

    def test_transfer_in_a_session(self):
        transfer = sa.text("SELECT ledger.transfer(from_account => :src, to_account => :dst, "
                           "amount => :amount, idempotency_key => :key)")
        with sa.orm.Session(self.engine) as session, session.begin():
            first = session.execute(transfer, {"src": self.world, "dst": self.a,
                                               "amount": Decimal("100.25"), "key": None}).scalar_one()
            session.execute(transfer, {"src": self.a, "dst": self.b,
                                       "amount": Decimal("40.10"), "key": "sa-1"})
        with self.engine.connect() as conn:
            balance = conn.execute(sa.text("SELECT ledger.balance(:code)"), {"code": self.a}).scalar_one()
            self.assertEqual(balance, Decimal("60.15"))
            self.assertIsInstance(balance, Decimal)
            self.assertEqual(len(str(first)), 36)
        # a retry with the key returns the first transaction, writing nothing
        with self.engine.begin() as conn:
            again = conn.execute(transfer, {"src": self.a, "dst": self.b,
                                            "amount": Decimal("40.10"), "key": "sa-1"}).scalar_one()
            count = conn.execute(sa.text("SELECT count(*) FROM ledger.transaction WHERE idempotency_key = 'sa-1'")).scalar_one()
        self.assertEqual(count, 1)
        self.assertEqual(len(str(again)), 36)

    def test_refusal_class_and_facts(self):
        with self.assertRaises(sa.exc.DBAPIError) as caught:
            with self.engine.begin() as conn:
                conn.execute(sa.text("SELECT ledger.transfer(from_account => :src, to_account => :dst, amount => :amount)"),
                             {"src": self.a, "dst": self.b, "amount": Decimal("5.00")})
        orig = caught.exception.orig
        self.assertEqual(orig.pgcode, "LD001")
        cls = lc.class_for_sqlstate(orig.pgcode)
        self.assertIs(cls, lc.InsufficientFunds)
        prose, facts = lc.split_detail(orig.diag.message_detail)
        self.assertIn("has balance", prose)
        self.assertEqual(facts["sqlstate"], "LD001")
        self.assertEqual(facts["account"], self.a)
        self.assertEqual(Decimal(facts["requested"]), Decimal("5.00"))
        self.assertEqual(Decimal(facts["available"]), Decimal("0.00"))
        # nothing was written
        with self.engine.connect() as conn:
            self.assertEqual(conn.execute(sa.text("SELECT ledger.balance(:code)"), {"code": self.b}).scalar_one(), 0)


if __name__ == "__main__":
    unittest.main()
