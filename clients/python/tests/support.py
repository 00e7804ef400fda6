"""Shared helpers of the client's tests.

Environment:
  LEDGER_TEST_DSN           a database with CREATE EXTENSION ledger done, as a
                            superuser, in a server with ledger preloaded and
                            ledger.database naming this database
  LEDGER_TEST_DSN_OTHER     a second database of that server with the extension
                            (hot mode is refused there: LD021)
  LEDGER_TEST_PGBOUNCER_DSN the first database through pgbouncer, pool_mode =
                            transaction
  LEDGER_TEST_STRICT=1      a missing variable fails the test instead of
                            skipping it (test/scripts/client_python.sh sets it)
"""

import os
import sys
import threading
import time
import unittest
import uuid
from decimal import Decimal

import psycopg
from psycopg.conninfo import make_conninfo

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import ledger_client as lc  # noqa: E402


def env(name):
    value = os.environ.get(name)
    if not value:
        if os.environ.get("LEDGER_TEST_STRICT") == "1":
            raise AssertionError(f"{name} is not set")
        raise unittest.SkipTest(f"{name} is not set")
    return value


def dsn(**overrides):
    base = env("LEDGER_TEST_DSN")
    return make_conninfo(base, **overrides) if overrides else base


def admin():
    """A superuser autocommit connection, for setup and checks."""
    return psycopg.connect(dsn(), autocommit=True)


def uniq(prefix="t"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class LedgerTestCase(unittest.TestCase):
    """Gives each test class a connection, a Ledger, and its own assets:
    self.usd (scale 2) and self.tok (scale 18), each with an unbounded
    'world' account (self.world, self.tok_world)."""

    @classmethod
    def setUpClass(cls):
        cls.conn = lc.connect(dsn())
        cls.ledger = lc.Ledger(cls.conn)
        cls.admin = admin()
        cls.usd = uniq("USD")
        cls.tok = uniq("TOK")
        cls.ledger.create_asset(cls.usd, 2)
        cls.ledger.create_asset(cls.tok, 18)
        cls.world = uniq("world")
        cls.tok_world = uniq("tokworld")
        cls.ledger.create_account(cls.world, cls.usd, min_balance=None)
        cls.ledger.create_account(cls.tok_world, cls.tok, min_balance=None)

    @classmethod
    def tearDownClass(cls):
        cls.conn.close()
        cls.admin.close()

    def account(self, funds=None, asset=None, prefix="acct", **kwargs):
        """A new account of self.usd (or asset), funded from its world."""
        asset = asset or self.usd
        code = uniq(prefix)
        self.ledger.create_account(code, asset, **kwargs)
        if funds is not None:
            world = self.world if asset == self.usd else self.tok_world
            self.ledger.transfer(world, code, funds)
        return code

    def q(self, sql, params=()):
        return self.admin.execute(sql, params).fetchall()

    def login_role(self, *setup, writer=True):
        """A throwaway LOGIN role (a ledger_writer unless writer=False);
        setup statements get {role} as its quoted name; dropped after."""
        role = uniq("lc_role").replace("-", "_")
        member = " IN ROLE ledger_writer" if writer else ""
        self.admin.execute(f'CREATE ROLE "{role}" LOGIN{member}')
        self.addCleanup(self.admin.execute, f'DROP ROLE IF EXISTS "{role}"')
        for sql in setup:
            self.admin.execute(sql.format(role=f'"{role}"'))
        return role

    def x(self, sql, params=()):
        self.admin.execute(sql, params)

    def q1(self, sql, params=()):
        rows = self.q(sql, params)
        return rows[0][0] if rows else None

    def count_key(self, key):
        return self.q1("SELECT count(*) FROM ledger.transaction WHERE idempotency_key = %s", [key])

    def assertFacts(self, err, keys=()):
        """facts is a dict; when the server sent facts, they name the same
        SQLSTATE, carry the documented keys, and amounts are Decimal."""
        self.assertIsInstance(err.facts, dict)
        if err.facts:
            self.assertEqual(err.facts.get("sqlstate"), err.sqlstate, err.facts)
            for key in keys:
                self.assertIn(key, err.facts)
            for key in lc.errors.DECIMAL_FACT_KEYS:
                value = err.facts.get(key)
                if isinstance(value, str) and lc.errors._DECIMAL_STRING.match(value):
                    self.fail(f"facts[{key!r}] = {value!r} was not converted to Decimal")
            if err.detail:
                self.assertFalse(err.detail.rstrip().splitlines()[-1].lstrip().startswith("{"),
                                 "the facts line was left in detail")


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def terminate(admin_conn, pid):
    """pg_terminate_backend, waiting (up to 5 s) until the backend is gone."""
    admin_conn.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


class Thread(threading.Thread):
    """A thread that keeps its target's result or exception."""

    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self._target_fn, self._args = target, args
        self.result = self.error = None

    def run(self):
        try:
            self.result = self._target_fn(*self._args)
        except BaseException as exc:  # handed to the test
            self.error = exc


D = Decimal
