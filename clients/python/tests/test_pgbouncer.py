"""The client behind pgbouncer in transaction pooling mode (pgbouncer 1.18:
named prepared statements are not carried across server connections)."""

import select
import unittest
import uuid

from tests.support import D, LedgerTestCase, admin, env, lc, uniq


def heard(conn, wait):
    """Notifications that reach conn within wait seconds, without sending
    anything (a query through pgbouncer would attach it to some server
    connection)."""
    got = []
    ready, _, _ = select.select([conn.fileno()], [], [], wait)
    if ready:
        conn.pgconn.consume_input()
    n = conn.pgconn.notifies()
    while n is not None:
        got.append(n.relname.decode())
        n = conn.pgconn.notifies()
    return got


class BehindPgbouncer(LedgerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pool_dsn = env("LEDGER_TEST_PGBOUNCER_DSN")

    def pooled(self):
        conn = lc.connect(self.pool_dsn, pgbouncer=True)
        self.addCleanup(conn.close)
        return conn

    def test_settings(self):
        conn = self.pooled()
        self.assertIsNone(conn.prepare_threshold)
        self.assertTrue(conn.autocommit)

    def test_default_settings_break_there(self):
        """The reason for pgbouncer=True: with psycopg's automatic prepared
        statements, two clients sharing a server connection collide once a
        statement has run prepare_threshold (5) times."""
        c1 = lc.connect(self.pool_dsn)
        c2 = lc.connect(self.pool_dsn)
        try:
            with self.assertRaises(lc.DatabaseError) as cm:
                for _ in range(30):
                    for conn in (c1, c2):
                        lc.Ledger(conn).balance(self.world)
            # 42P05: "_pg3_0" already exists; 26000: it does not exist
            self.assertIn(cm.exception.sqlstate, ("42P05", "26000"))
        finally:
            c1.close()
            c2.close()

    def test_transfers_batches_and_retries(self):
        clients = [lc.Ledger(self.pooled()) for _ in range(3)]
        payer, payee, fees = self.account(D("1000.00")), self.account(), self.account()
        owner = uniq("owner")
        mine = self.account(D("50.00"), owner_id=owner)
        backends = set()
        # the same statements, many times, from clients sharing 2 server connections
        for i in range(12):
            for ledger in clients:
                ledger.transfer(payer, payee, D("1.25"), metadata={"i": i})
                backends.add(ledger.conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        self.assertLessEqual(len(backends), 2)
        # a keyed retry arriving through another client (maybe another backend)
        key = lc.new_key("pool-")
        first = clients[0].transfer(payer, fees, D("0.99"), idempotency_key=key)
        self.assertEqual(clients[1].transfer(payer, fees, D("0.99"), idempotency_key=key), first)
        self.assertEqual(clients[2].transfer(payer, fees, D("0.99"), idempotency_key=key), first)
        # batches
        res = clients[1].transfer_batch([(payer, payee, D("10.00")), (payer, fees, D("0.01")),
                                         (payee, payer, D("99999.00"))])
        self.assertEqual([r.result for r in res], ["ok", "ok", "LD001"])
        res = clients[2].post_batch([[(payer, D("-5.00")), (payee, D("4.50")), (fees, D("0.50"))]] * 3,
                                    atomic=True)
        self.assertTrue(res.ok)
        # a transaction with SET LOCAL: safe in transaction pooling
        with clients[0].acting_owner(owner):
            clients[0].transfer(mine, payee, D("5.00"))
        with self.assertRaises(lc.NotAccountOwner):
            with clients[1].acting_owner(owner):
                clients[1].transfer(payer, payee, D("1.00"))
        # nothing leaked into the next transaction on those server connections
        for ledger in clients:
            self.assertEqual(ledger.conn.execute(
                "SELECT coalesce(current_setting('ledger.acting_owner', true), '')").fetchone()[0], "")
        # the idempotent helper through the pool
        key2 = lc.new_key("pool-retry-")
        tx = lc.idempotent(lambda: lc.connect(self.pool_dsn, pgbouncer=True),
                           lambda ledger, k: ledger.transfer(payer, fees, D("2.00"), idempotency_key=k), key2)
        self.assertIsInstance(tx, uuid.UUID)
        # balances, read directly from the server
        spent = 36 * D("1.25") + D("0.99") + D("10.00") + D("0.01") + 3 * D("5.00") + D("2.00")
        self.assertEqual(self.ledger.balance(payer), D("1000.00") - spent)
        self.assertEqual(self.ledger.balance(payee), 36 * D("1.25") + D("10.00") + 3 * D("4.50") + D("5.00"))
        self.assertEqual(self.ledger.balance(fees), D("0.99") + D("0.01") + 3 * D("0.50") + D("2.00"))
        self.assertEqual(self.ledger.balance(mine), D("45.00"))
        self.assertEqual(self.count_key(key), 1)
        self.assertEqual(self.count_key(key2), 1)

    def test_listen_needs_a_direct_connection(self):
        """README, "Connection poolers": a LISTEN through pgbouncer hears
        nothing once its server connection went back to the pool; a direct
        connection hears the outbox's NOTIFY of a message enqueued through
        pgbouncer."""
        topic = uniq("listen")
        direct = admin()
        self.addCleanup(direct.close)
        direct.execute("LISTEN ledger_outbox")
        pooled_listener = self.pooled()
        pooled_listener.execute("LISTEN ledger_outbox")
        sender = self.pooled()
        sender.execute("SELECT ledger.enqueue(%s, 'k', '{}'::jsonb)", (topic,))
        self.assertIn("ledger_outbox", heard(direct, 5.0))
        self.assertEqual(heard(pooled_listener, 1.0), [])
        sender.execute("SELECT ledger.enqueue(%s, 'k', '{}'::jsonb)", (topic,))
        self.assertIn("ledger_outbox", heard(direct, 5.0))
        self.assertEqual(heard(pooled_listener, 1.0), [])


if __name__ == "__main__":
    unittest.main()
