"""idempotent(): retries with the same key across killed backends, never
posting twice."""

import unittest
import uuid

from tests.support import D, LedgerTestCase, Thread, dsn, lc, terminate, wait_for


class IdempotentRetry(LedgerTestCase):
    def setUp(self):
        self.retries = []

    def on_retry(self, attempt, err):
        self.retries.append((attempt, type(err)))

    def factory(self, autocommit=True):
        return lambda: lc.connect(dsn(), autocommit=autocommit)

    def assertMovedOnce(self, key, payer, payee, amount, funds):
        self.assertEqual(self.count_key(key), 1)
        self.assertEqual(self.ledger.balance(payer), funds - amount)
        self.assertEqual(self.ledger.balance(payee), amount)
        self.assertEqual(self.q1("SELECT count(*) FROM ledger.journal WHERE account = %s", [payee]), 1)

    def test_killed_before_commit(self):
        """The transfer ran, its backend is killed before COMMIT: nothing was
        written, and the retry posts it once."""
        payer, payee = self.account(D("100.00")), self.account()
        key = lc.new_key("kill-before-")
        pids = []

        def pay(ledger, k):
            tx = ledger.transfer(payer, payee, D("10.00"), idempotency_key=k)
            pids.append(ledger.conn.info.backend_pid)
            if len(pids) == 1:
                terminate(self.admin, pids[0])      # the helper's COMMIT meets a dead backend
            return tx

        tx = lc.idempotent(self.factory(autocommit=False), pay, key, backoff=0.01,
                           on_retry=self.on_retry)
        self.assertIsInstance(tx, uuid.UUID)
        self.assertEqual(len(pids), 2)
        self.assertEqual(self.retries, [(1, lc.ConnectionLost)])
        self.assertEqual(self.q1("SELECT id FROM ledger.transaction WHERE idempotency_key = %s", [key]), tx)
        self.assertMovedOnce(key, payer, payee, D("10.00"), D("100.00"))

    def test_killed_after_commit(self):
        """The transfer committed, then the backend died before the client
        got on: the retry gets the first transaction's id and writes nothing."""
        payer, payee = self.account(D("100.00")), self.account()
        key = lc.new_key("kill-after-")
        first = []

        def pay(ledger, k):
            tx = ledger.transfer(payer, payee, D("10.00"), idempotency_key=k)   # autocommit: committed
            if not first:
                first.append(tx)
                terminate(self.admin, ledger.conn.info.backend_pid)
            ledger.balance(payer)          # the client's next step meets a dead backend
            return tx

        tx = lc.idempotent(self.factory(), pay, key, backoff=0.01, on_retry=self.on_retry)
        self.assertEqual(tx, first[0])
        self.assertEqual(self.retries, [(1, lc.ConnectionLost)])
        self.assertMovedOnce(key, payer, payee, D("10.00"), D("100.00"))

    def test_killed_while_waiting(self):
        """Killed mid-statement, waiting for a row lock another session holds."""
        payer, payee, other = self.account(D("100.00")), self.account(), self.account()
        key = lc.new_key("kill-waiting-")
        locker = lc.connect(dsn(), autocommit=False)
        pids = []
        try:
            lc.Ledger(locker).transfer(payer, other, D("1.00"))       # holds payer's balance row

            def pay(ledger, k):
                pids.append(ledger.conn.info.backend_pid)
                return ledger.transfer(payer, payee, D("10.00"), idempotency_key=k)

            t = Thread(lc.idempotent, self.factory(), pay, key)
            t.start()
            self.assertTrue(wait_for(lambda: pids and self.q1(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pids[0]]) == "Lock"),
                f"the transfer never waited for the lock: {t.error!r}")
            terminate(self.admin, pids[0])
            locker.rollback()
            t.join(30)
        finally:
            locker.close()
        self.assertIsNone(t.error)
        self.assertIsInstance(t.result, uuid.UUID)
        self.assertEqual(len(pids), 2)
        self.assertMovedOnce(key, payer, payee, D("10.00"), D("100.00"))
        self.assertEqual(self.ledger.balance(other), D("0.00"))

    def test_serialization_failure_retried(self):
        payer, payee = self.account(D("100.00")), self.account()
        key = lc.new_key("rr-")
        attempts = []

        def pay(ledger, k):
            attempts.append(1)
            ledger.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            ledger.balance(payer)                                    # snapshot taken
            if len(attempts) == 1:
                self.ledger.transfer(payer, self.world, D("1.00"))   # a concurrent commit
            return ledger.transfer(payer, payee, D("10.00"), idempotency_key=k)

        tx = lc.idempotent(self.factory(autocommit=False), pay, key, backoff=0.01, on_retry=self.on_retry)
        self.assertIsInstance(tx, uuid.UUID)
        self.assertEqual(self.retries, [(1, lc.SerializationFailure)])
        self.assertEqual(self.count_key(key), 1)
        self.assertEqual(self.ledger.balance(payer), D("89.00"))

    def test_rate_limited_retried_after_the_servers_wait(self):
        role = self.login_role()
        self.ledger.set_rate_limit(role, 5, 1)                  # one call per 200 ms
        self.addCleanup(self.ledger.remove_rate_limit, role)
        payer, payee = self.account(D("100.00")), self.account()
        factory = lambda: lc.connect(dsn(user=role))            # noqa: E731
        with factory() as conn:
            lc.Ledger(conn).transfer(payer, payee, D("1.00"))   # takes the token
        key = lc.new_key("rl-")
        tx = lc.idempotent(factory, lambda ledger, k: ledger.transfer(payer, payee, D("2.00"),
                                                                      idempotency_key=k),
                           key, backoff=0.001, on_retry=self.on_retry)
        self.assertIsInstance(tx, uuid.UUID)
        self.assertEqual(self.retries[0], (1, lc.RateLimited))
        self.assertEqual(self.count_key(key), 1)
        self.assertEqual(self.ledger.balance(payee), D("3.00"))

    def test_wait_longer_than_max_wait_raised(self):
        role = self.login_role()
        self.ledger.set_rate_limit(role, D("0.001"), 1)          # the next token in 1000 s
        self.addCleanup(self.ledger.remove_rate_limit, role)
        payer, payee = self.account(D("100.00")), self.account()
        factory = lambda: lc.connect(dsn(user=role))            # noqa: E731
        pay = lambda ledger, k: ledger.transfer(payer, payee, D("1.00"), idempotency_key=k)  # noqa: E731
        lc.idempotent(factory, pay)
        with self.assertRaises(lc.RateLimited) as cm:
            lc.idempotent(factory, pay, attempts=3, max_wait=5, on_retry=self.on_retry)
        if cm.exception.facts:           # the server said how long: not slept on
            self.assertEqual(self.retries, [])
        self.assertEqual(self.ledger.balance(payee), D("1.00"))

    def test_not_retryable_raised_at_once(self):
        payer, payee = self.account(D("5.00")), self.account()
        calls = []

        def pay(ledger, k):
            calls.append(k)
            return ledger.transfer(payer, payee, D("10.00"), idempotency_key=k)

        with self.assertRaises(lc.InsufficientFunds):
            lc.idempotent(self.factory(), pay, on_retry=self.on_retry)
        self.assertEqual(len(calls), 1)
        self.assertEqual(self.retries, [])
        uuid.UUID(calls[0])                      # a generated key

    def test_gives_up_after_attempts(self):
        calls = []

        def factory():
            calls.append(1)
            return lc.connect(dsn(port="1"), connect_timeout=2)

        with self.assertRaises(lc.ConnectionLost):
            lc.idempotent(factory, lambda ledger, k: None, "k", attempts=3, backoff=0.01)
        self.assertEqual(len(calls), 3)


if __name__ == "__main__":
    unittest.main()
