"""Every error a caller can cause, triggered for real through the API, and
mapped to its class with its fields.

Codes that need a special server state are raised by a plpgsql RAISE with
that SQLSTATE instead (the mapping and the facts parsing are the same code
path): LD019 (a mode switch racing a posting, or a correction's fence),
LD020 (a posting to a hot account in the instant after a restart before
the fold worker rebuilt the escrow) and LD033 (an event replayed after an
operator rewound the projection's pointer; it is recorded as a rejection
by the applier, never raised to a caller).  LD031 is caused by its one
reachable case here, PREPARE TRANSACTION after append_event (the others
need a server without the preload).
"""

import unittest
import uuid
from datetime import datetime, timedelta, timezone

import psycopg

from tests.support import D, LedgerTestCase, Thread, admin, dsn, env, lc, terminate, uniq, wait_for


def setUpModule():
    with admin() as conn:
        conn.execute("""
            CREATE OR REPLACE FUNCTION public.lc_test_raise(code text, msg text, detail text)
            RETURNS void LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION USING ERRCODE = code, MESSAGE = msg, DETAIL = detail;
            END $$""")


class Mapping(LedgerTestCase):
    """One test per LD code, each caused the way a caller would."""

    def expect(self, cls, call, keys=()):
        with self.assertRaises(cls) as cm:
            call()
        err = cm.exception
        self.assertIs(type(err), cls)
        self.assertEqual(err.sqlstate, cls.sqlstate)
        self.assertTrue(err.message)
        self.assertIsInstance(err.__cause__, psycopg.Error)
        self.assertEqual(err.__cause__.sqlstate, cls.sqlstate)
        self.assertEqual(err.retryable, cls.sqlstate in lc.RETRYABLE_SQLSTATES)
        self.assertFacts(err, keys)
        return err

    def raw(self, conn, sql, params=()):
        """Raw SQL on a psycopg connection, its error translated."""
        try:
            return conn.execute(sql, params)
        except psycopg.Error as exc:
            raise lc.translate(exc) from exc

    # -- postings -----------------------------------------------------------

    def test_LD001_insufficient_funds(self):
        a, b = self.account(D("5.00")), self.account()
        err = self.expect(lc.InsufficientFunds, lambda: self.ledger.transfer(a, b, D("10.00")),
                          keys=("account", "asset", "balance", "available", "requested"))
        self.assertIn(a, err.message)
        self.assertIn("10.00", err.detail)
        if err.facts:
            self.assertEqual(err.facts["account"], a)
            self.assertEqual(err.facts["requested"], D("10.00"))
            self.assertEqual(err.facts["available"], D("5.00"))

    def test_LD002_unknown_account(self):
        a = self.account(D("5"))
        err = self.expect(lc.UnknownAccount, lambda: self.ledger.transfer(a, "no-such-account", 1),
                          keys=("account", "leg"))
        if err.facts:
            self.assertEqual((err.facts["account"], err.facts["leg"]), ("no-such-account", 2))
        self.assertIn("no-such-account", err.message)
        self.expect(lc.UnknownAccount, lambda: self.ledger.balance("no-such-account"))

    def test_LD003_unknown_asset(self):
        self.expect(lc.UnknownAsset, lambda: self.ledger.create_account(uniq(), "NO-SUCH-ASSET"),
                    keys=("asset", "account"))

    def test_LD004_asset_mismatch(self):
        a, t = self.account(D("5")), self.account(asset=self.tok)
        self.expect(lc.AssetMismatch, lambda: self.ledger.transfer(a, t, 1),
                    keys=("account", "asset", "other_account", "other_asset"))

    def test_LD005_invalid_amount(self):
        a, b = self.account(D("5")), self.account()
        err = self.expect(lc.InvalidAmount, lambda: self.ledger.transfer(a, b, D("1.001")),
                          keys=("argument", "given", "reason", "scale"))
        if err.facts:
            self.assertEqual((err.facts["given"], err.facts["reason"]), (D("1.001"), "too_many_decimals"))
        self.expect(lc.InvalidAmount, lambda: self.ledger.transfer(a, b, 0))
        self.expect(lc.InvalidAmount, lambda: self.ledger.transfer(a, b, D("-1")))
        err = self.expect(lc.InvalidAmount, lambda: self.ledger.transfer(a, b, D("NaN")),
                          keys=("argument", "given", "reason"))
        if err.facts:
            self.assertEqual(err.facts["given"], "NaN")        # not a decimal: left a string
        self.expect(lc.InvalidAmount, lambda: self.ledger.post([(a, D("-1.001")), (b, D("1.001"))]))

    def test_LD006_immutable_record(self):
        a = self.account(D("5"))
        conn = lc.connect(dsn())
        try:
            self.expect(lc.ImmutableRecord, lambda: self.raw(
                conn, "UPDATE ledger.journal_entry SET amount = amount + 1 WHERE account_id = "
                      "(SELECT id FROM ledger.account WHERE code = %s)", [a]))
            self.expect(lc.ImmutableRecord, lambda: self.raw(
                conn, "DELETE FROM ledger.asset WHERE code = %s", [self.usd]))
        finally:
            conn.close()

    def test_LD007_idempotency_conflict(self):
        a, b = self.account(D("50")), self.account()
        key = uniq("key")
        first = self.ledger.transfer(a, b, D("1.00"), idempotency_key=key)
        self.assertEqual(self.ledger.transfer(a, b, D("1.00"), idempotency_key=key), first)
        err = self.expect(lc.IdempotencyConflict,
                          lambda: self.ledger.transfer(a, b, D("2.00"), idempotency_key=key),
                          keys=("idempotency_key", "original_kind", "original_id"))
        if err.facts:
            self.assertEqual(uuid.UUID(err.facts["original_id"]), first)
        self.assertFalse(err.retryable)
        self.assertEqual(self.count_key(key), 1)
        self.assertEqual(self.ledger.balance(b), D("1.00"))

    def test_LD008_unbalanced_posting(self):
        a, b = self.account(D("5")), self.account()
        self.expect(lc.UnbalancedPosting, lambda: self.ledger.post([(a, D("-1.00")), (b, D("0.99"))]),
                    keys=("asset", "sum"))

    def test_LD009_duplicate_account(self):
        a = self.account()
        self.expect(lc.DuplicateAccount, lambda: self.ledger.create_account(a, self.usd), keys=("account",))

    def test_LD010_duplicate_asset(self):
        self.expect(lc.DuplicateAsset, lambda: self.ledger.create_asset(self.usd, 2), keys=("asset",))

    def test_LD011_invalid_argument(self):
        a = self.account(D("5"))
        self.expect(lc.InvalidArgument, lambda: self.ledger.transfer(a, a, 1))
        err = self.expect(lc.InvalidArgument, lambda: self.ledger.transfer(None, a, 1), keys=("argument",))
        if err.facts:
            self.assertEqual(err.facts["argument"], "from_account")
        self.expect(lc.InvalidArgument, lambda: self.ledger.transfer("x" * 300, a, 1),
                    keys=("argument", "bytes", "max_bytes"))
        self.expect(lc.InvalidArgument, lambda: self.ledger.create_asset(uniq("X"), 19))
        self.expect(lc.InvalidArgument, lambda: self.ledger.transfer(a, self.world, 1, idempotency_key=""))

    def test_LD012_invalid_legs(self):
        a = self.account(D("5"))
        self.expect(lc.InvalidLegs, lambda: self.ledger.post([(a, D("1"))]), keys=("legs", "max_legs"))
        self.expect(lc.InvalidLegs, lambda: self.ledger.post(
            [{"account": a, "amount": D("-1"), "memo": "x"}, {"account": self.world, "amount": D("1")}]))

    # -- corrections ----------------------------------------------------------

    def test_LD013_unknown_transaction(self):
        self.expect(lc.UnknownTransaction, lambda: self.ledger.invalidate(uuid.uuid4(), "typo"),
                    keys=("transaction_id",))

    def test_LD014_already_invalidated(self):
        a = self.account()
        tx = self.ledger.transfer(self.world, a, D("3.00"))
        rows = self.ledger.invalidate(tx, "duplicate")
        self.assertEqual({r.account: r.balance_after for r in rows}[a], D("0.00"))
        self.expect(lc.AlreadyInvalidated, lambda: self.ledger.invalidate(tx, "again"),
                    keys=("transaction_id",))

    def test_LD015_invalidation_below_floor(self):
        a, b = self.account(), self.account()
        deposit = self.ledger.transfer(self.world, a, D("50.00"))
        self.ledger.transfer(a, b, D("40.00"))
        self.expect(lc.InvalidationBelowFloor, lambda: self.ledger.invalidate(deposit, "chargeback"))
        self.assertEqual(self.ledger.balance(a), D("10.00"))

    def test_LD016_unknown_alert(self):
        self.expect(lc.UnknownAlert, lambda: self.ledger.acknowledge_alert(2 ** 62))

    def test_LD017_pg_cron_unavailable(self):
        err = self.expect(lc.PgCronUnavailable, lambda: self.ledger.schedule_reconciliation())
        self.assertTrue(err.hint)
        self.expect(lc.PgCronUnavailable, lambda: self.ledger.schedule_hold_expiry())

    # -- hot accounts ---------------------------------------------------------

    def test_LD018_hot_prepare_refused(self):
        hot = self.account(D("5"))
        self.ledger.set_account_mode(hot, "hot")
        conn = lc.connect(dsn())
        try:
            conn.execute("BEGIN")
            lc.Ledger(conn).transfer(self.world, hot, D("1.00"))
            self.expect(lc.HotPrepareRefused,
                        lambda: self.raw(conn, "PREPARE TRANSACTION 'lc-hot-prepare'"))
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        self.assertEqual(self.ledger.balance(hot), D("5.00"))

    def test_LD021_hot_unavailable(self):
        other = lc.connect(env("LEDGER_TEST_DSN_OTHER"))
        try:
            ledger = lc.Ledger(other)
            asset, acct = uniq("A"), uniq("acct")
            ledger.create_asset(asset, 2)
            ledger.create_account(acct, asset)
            self.expect(lc.HotUnavailable, lambda: ledger.set_account_mode(acct, "hot"))
        finally:
            other.close()

    def test_LD022_hot_out_of_range(self):
        whale = self.account(asset=self.tok)
        self.ledger.set_account_mode(whale, "hot")
        self.expect(lc.HotOutOfRange,
                    lambda: self.ledger.transfer(self.tok_world, whale, D("1000000000000000000")))

    # -- holds ----------------------------------------------------------------

    def test_LD023_unknown_hold(self):
        self.expect(lc.UnknownHold, lambda: self.ledger.capture(uuid.uuid4()), keys=("hold_id",))
        self.expect(lc.UnknownHold, lambda: self.ledger.void(uuid.uuid4(), "nothing"))

    def test_LD024_hold_finished(self):
        a, psp = self.account(D("20")), self.account()
        h = self.ledger.hold(a, D("5.00"), to_account=psp)
        self.assertEqual(self.ledger.void(h, "declined"), D("5.00"))
        err = self.expect(lc.HoldFinished, lambda: self.ledger.capture(h),
                          keys=("hold_id", "account", "state", "amount", "captured", "remaining"))
        if err.facts:
            self.assertEqual((err.facts["state"], err.facts["amount"]), ("voided", D("5.00")))
        self.expect(lc.HoldFinished, lambda: self.ledger.void(h, "again"))

    def test_LD025_hold_exceeded(self):
        a, psp = self.account(D("20")), self.account()
        h = self.ledger.hold(a, D("5.00"), to_account=psp)
        err = self.expect(lc.HoldExceeded, lambda: self.ledger.capture(h, D("5.01")),
                          keys=("hold_id", "account", "amount", "captured", "remaining", "requested"))
        if err.facts:
            self.assertEqual((err.facts["remaining"], err.facts["requested"]), (D("5.00"), D("5.01")))

    def test_LD026_hold_shared(self):
        a = self.account(D("20"))
        h = self.ledger.hold(a, D("5.00"), mode="shared")
        self.expect(lc.HoldShared, lambda: self.ledger.capture(h), keys=("hold_id", "account"))

    def test_LD027_hold_limit(self):
        a, psp = self.account(D("20")), self.account()
        self.ledger.set_account_limits(a, 1)
        self.ledger.hold(a, D("1.00"), to_account=psp)
        self.expect(lc.HoldLimit, lambda: self.ledger.hold(a, D("1.00"), to_account=psp),
                    keys=("account", "active", "max_active_holds"))

    def test_LD028_hold_hot(self):
        hot, psp = self.account(D("20")), self.account()
        self.ledger.set_account_mode(hot, "hot")
        self.expect(lc.HoldHot, lambda: self.ledger.hold(hot, D("1.00"), to_account=psp))

    def test_LD029_capture_not_invalidated(self):
        a, psp = self.account(D("20")), self.account()
        h = self.ledger.hold(a, D("5.00"), to_account=psp)
        tx = self.ledger.capture(h)
        self.expect(lc.CaptureNotInvalidated, lambda: self.ledger.invalidate(tx, "refund"))

    def test_LD030_invalid_record(self):
        self.expect(lc.InvalidRecord, lambda: self.ledger.import_statement(uniq("psp"), [{"amount": D("1")}]))

    # -- events and outbox ----------------------------------------------------

    def test_LD031_events_unavailable(self):
        conn = lc.connect(dsn())
        try:
            conn.execute("BEGIN")
            lc.Ledger(conn).append_event(uniq("s"), "transfer",
                                         {"from_account": self.world, "to_account": self.world,
                                          "amount": D("1.00")})
            self.expect(lc.EventsUnavailable,
                        lambda: self.raw(conn, "PREPARE TRANSACTION 'lc-event-prepare'"))
        finally:
            conn.execute("ROLLBACK")
            conn.close()

    def test_LD032_invalid_event(self):
        self.expect(lc.InvalidEvent, lambda: self.ledger.append_event(uniq("s"), "teleport", {"x": 1}))
        self.expect(lc.InvalidEvent, lambda: self.ledger.append_event(uniq("s"), "transfer", {"amount": "1"}))

    def test_LD034_catch_up_timeout(self):
        conn = lc.connect(dsn())
        ledger = lc.Ledger(conn)
        try:
            with self.assertRaises(lc.CatchUpTimeout):
                with ledger.transaction():
                    ledger.append_event(uniq("s"), "transfer",
                                        {"from_account": self.world, "to_account": self.world,
                                         "amount": D("1.00")})
                    self.expect(lc.CatchUpTimeout, lambda: ledger.catch_up(timeout=timedelta(seconds=1)))
                    raise lc.CatchUpTimeout("roll back the append")
        finally:
            conn.close()

    def test_LD035_outbox_state(self):
        self.expect(lc.OutboxState, lambda: self.ledger.outbox_ack(2 ** 62))

    # -- exchange -------------------------------------------------------------

    def exchange_setup(self, rate=None):
        base, quote = uniq("B"), uniq("Q")
        self.ledger.create_asset(base, 8)
        self.ledger.create_asset(quote, 2)
        user_b, user_q = uniq("ub"), uniq("uq")
        liq_b, liq_q = uniq("lb"), uniq("lq")
        self.ledger.create_account(liq_b, base, min_balance=None)
        self.ledger.create_account(liq_q, quote, min_balance=None)
        self.ledger.create_account(user_b, base)
        self.ledger.create_account(user_q, quote)
        self.ledger.transfer(liq_b, user_b, D("10"))
        return base, quote, user_b, user_q, liq_b, liq_q

    def test_LD036_exchange_not_configured(self):
        base, quote, ub, uq, _, _ = self.exchange_setup()
        self.ledger.set_exchange_rate(base, quote, D("2.5"))
        self.expect(lc.ExchangeNotConfigured, lambda: self.ledger.exchange(ub, uq, D("1")))

    def test_LD037_stale_rate(self):
        base, quote, ub, uq, lb, lq = self.exchange_setup()
        self.ledger.set_exchange_accounts(base, lb)
        self.ledger.set_exchange_accounts(quote, lq)
        err = self.expect(lc.StaleRate, lambda: self.ledger.exchange(ub, uq, D("1")),
                          keys=("base", "quote", "observed_at"))
        self.assertTrue(err.retryable)
        self.ledger.set_exchange_rate(base, quote, D("2.5"))
        self.ledger.exchange(ub, uq, D("4"))
        self.assertEqual(self.ledger.balance(uq), D("10.00"))

    def test_LD038_invalid_rate(self):
        base, quote, *_ = self.exchange_setup()
        self.expect(lc.InvalidRate, lambda: self.ledger.set_exchange_rate(base, quote, D("-1")))
        self.expect(lc.InvalidRate, lambda: self.ledger.set_exchange_rate(
            base, quote, D("1"), observed_at=datetime.now(timezone.utc) + timedelta(hours=1)))

    # -- security -------------------------------------------------------------

    def test_LD039_not_account_owner(self):
        mine = self.account(D("10"), owner_id="owner-me")
        theirs = self.account(D("10"), owner_id="owner-them")
        with self.ledger.acting_owner("owner-me"):
            self.ledger.transfer(mine, theirs, D("1.00"))
        with self.assertRaises(lc.NotAccountOwner):
            with self.ledger.acting_owner("owner-me"):
                self.expect(lc.NotAccountOwner, lambda: self.ledger.transfer(theirs, mine, D("1.00")),
                            keys=("account", "acting_owner"))
                raise lc.NotAccountOwner("rolled back")
        self.assertEqual(self.ledger.balance(mine), D("9.00"))

    def test_LD040_acting_owner_required(self):
        role = self.login_role("ALTER ROLE {role} SET ledger.require_acting_owner = on")
        mine = self.account(D("10"), owner_id="owner-40")
        other = self.account()
        with lc.connect(dsn(user=role)) as conn:
            ledger = lc.Ledger(conn)
            self.expect(lc.ActingOwnerRequired, lambda: ledger.transfer(mine, other, D("1.00")),
                        keys=("account", "role"))
            with ledger.acting_owner("owner-40"):
                ledger.transfer(mine, other, D("1.00"))
        self.assertEqual(self.ledger.balance(other), D("1.00"))

    def test_LD041_rate_limited(self):
        role = self.login_role()
        self.ledger.set_rate_limit(role, D("0.001"), 1)
        self.addCleanup(self.ledger.remove_rate_limit, role)
        a, b = self.account(D("10")), self.account()
        with lc.connect(dsn(user=role)) as conn:
            ledger = lc.Ledger(conn)
            ledger.transfer(a, b, D("1.00"))
            err = self.expect(lc.RateLimited, lambda: ledger.transfer(a, b, D("1.00")),
                              keys=("role", "burst", "per_second", "retry_after_ms"))
            self.assertTrue(err.retryable)
            if err.facts:
                self.assertEqual((err.facts["role"], err.facts["per_second"]), (role, D("0.001")))
                self.assertGreater(err.retry_after, 0)
            else:
                self.assertIsNone(err.retry_after)
        self.assertEqual(self.ledger.balance(b), D("1.00"))

    def test_permission_denied(self):
        role = self.login_role(writer=False)
        with lc.connect(dsn(user=role)) as conn:
            with self.assertRaises(lc.PermissionDenied) as cm:
                lc.Ledger(conn).balance(self.world)
        self.assertEqual(cm.exception.sqlstate, "42501")
        self.assertIsInstance(cm.exception, lc.DatabaseError)

    # -- errors that need a server state: raised with their SQLSTATE ----------

    def synthetic(self, code, detail):
        return lambda: self.raw(self.conn, "SELECT public.lc_test_raise(%s, %s, %s)",
                                [code, f"synthetic {code}", detail])

    def test_server_state_codes_synthetic(self):
        for code, cls in (("LD019", lc.ModeChanged), ("LD020", lc.HotNotReady), ("LD033", lc.StaleEvent)):
            err = self.expect(cls, self.synthetic(code, "prose only"))
            self.assertEqual(err.facts, {})
            self.assertEqual(err.detail, "prose only")
        self.assertTrue(lc.ModeChanged.retryable and lc.HotNotReady.retryable)
        self.assertFalse(lc.StaleEvent.retryable)

    def test_facts_line_parsed(self):
        detail = ('Account "x" has balance 5.00 and floor 0.00, so 5.00 is available; the posting requests 10.00.\n'
                  '{"sqlstate": "LD001", "account": "x", "asset": "USD", "balance": "5.00", '
                  '"available": "5.00", "requested": "10.00", "floor": "0.00"}')
        err = self.expect(lc.InsufficientFunds, self.synthetic("LD001", detail),
                          keys=("account", "asset", "balance", "available", "requested"))
        self.assertEqual(err.facts["requested"], D("10.00"))
        self.assertEqual(str(err.facts["balance"]), "5.00")
        self.assertEqual(err.detail, detail.splitlines()[0])
        self.assertEqual(err.retry_after, None)
        err = self.expect(lc.RateLimited, self.synthetic(
            "LD041", 'The limit is 1 call per second.\n{"sqlstate": "LD041", "retry_after_ms": 250}'))
        self.assertEqual(err.retry_after, 0.25)
        err = self.expect(lc.InvalidArgument, self.synthetic("LD011", "a line\n{broken json"))
        self.assertEqual(err.facts, {})
        self.assertEqual(err.detail, "a line\n{broken json")

    # -- not the ledger's own -------------------------------------------------

    def test_40001_serialization_failure(self):
        a, b = self.account(D("10")), self.account()
        conn = lc.connect(dsn())
        try:
            ledger = lc.Ledger(conn)
            with self.assertRaises(lc.SerializationFailure) as cm:
                with ledger.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    ledger.balance(a)                       # takes the snapshot
                    self.ledger.transfer(a, b, D("1.00"))   # another session commits
                    ledger.transfer(a, b, D("1.00"))
            self.assertTrue(cm.exception.retryable)
            self.assertEqual(cm.exception.sqlstate, "40001")
            self.assertNotIsInstance(cm.exception, lc.ConnectionLost)
        finally:
            conn.close()
        self.assertEqual(self.ledger.balance(b), D("1.00"))

    def test_40P01_deadlock_detected(self):
        a, b, c, d = (self.account(D("10")) for _ in range(4))
        c1, c2 = lc.connect(dsn()), lc.connect(dsn())
        try:
            l1, l2 = lc.Ledger(c1), lc.Ledger(c2)
            c1.execute("BEGIN")
            c2.execute("BEGIN")
            l1.transfer(a, b, D("1.00"))          # locks a, b
            l2.transfer(c, d, D("1.00"))          # locks c, d
            t1 = Thread(l1.transfer, c, a, D("1.00"))   # waits for c2
            t1.start()
            wait_for(lambda: self.q1("SELECT count(*) FROM pg_stat_activity WHERE pid = %s "
                                     "AND wait_event_type = 'Lock'", [c1.info.backend_pid]) == 1)
            t2 = Thread(l2.transfer, a, c, D("1.00"))   # waits for c1: a cycle
            t2.start()
            t1.join(30)
            t2.join(30)
            errors = [t.error for t in (t1, t2) if t.error is not None]
            self.assertEqual(len(errors), 1, errors)
            self.assertIsInstance(errors[0], lc.DeadlockDetected)
            self.assertTrue(errors[0].retryable)
        finally:
            for conn in (c1, c2):
                conn.execute("ROLLBACK")
                conn.close()

    def test_connection_lost(self):
        conn = lc.connect(dsn())
        ledger = lc.Ledger(conn)
        self.assertEqual(ledger.balance(self.world) is not None, True)
        terminate(self.admin, conn.info.backend_pid)
        with self.assertRaises(lc.ConnectionLost) as cm:
            ledger.balance(self.world)
        err = cm.exception
        self.assertTrue(err.retryable)
        self.assertIn(err.sqlstate, (None, "57P01"))
        self.assertIsInstance(err.__cause__, psycopg.OperationalError)
        self.assertNotIsInstance(err, lc.SerializationFailure)
        with self.assertRaises(lc.ConnectionLost) as cm:   # the closed connection, no SQLSTATE
            ledger.balance(self.world)
        self.assertIsNone(cm.exception.sqlstate)
        conn.close()


if __name__ == "__main__":
    unittest.main()
