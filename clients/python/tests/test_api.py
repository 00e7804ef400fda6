"""The wrappers end to end: holds, batches, corrections, events, outbox,
exchange and the status functions."""

import unittest
import uuid
from datetime import datetime, timedelta, timezone

from tests.support import D, LedgerTestCase, lc, uniq


class Holds(LedgerTestCase):
    def test_withdrawal_flow(self):
        alice, psp = self.account(D("100.00")), self.account()
        key = lc.new_key("wd-")
        h = self.ledger.hold(alice, D("25.00"), to_account=psp, external_ref=key,
                             submit_within=timedelta(minutes=5), confirm_within="10 minutes",
                             idempotency_key=key + "-hold", metadata={"source": "acme"})
        self.assertIsInstance(h, uuid.UUID)
        self.assertEqual(self.ledger.hold(alice, D("25.00"), to_account=psp, external_ref=key,
                                          submit_within=timedelta(minutes=5), confirm_within="10 minutes",
                                          idempotency_key=key + "-hold", metadata={"source": "acme"}), h)
        self.assertEqual(self.ledger.available_balance(alice), D("75.00"))
        self.ledger.mark_submitted(h)
        self.ledger.mark_submitted(h)                          # again: a no-op
        tx1 = self.ledger.capture(h, D("10.00"), idempotency_key=key + "-c1")
        self.assertEqual(self.ledger.capture(h, D("10.00"), idempotency_key=key + "-c1"), tx1)
        self.assertEqual(self.ledger.balance(psp), D("10.00"))
        released = self.ledger.void(h, "rest declined", idempotency_key=key + "-void")
        self.assertEqual(released, D("15.00"))
        self.assertEqual(self.ledger.void(h, "rest declined", idempotency_key=key + "-void"), D("15.00"))
        self.assertEqual(self.ledger.balance(alice), D("90.00"))
        self.assertEqual(self.ledger.available_balance(alice), D("90.00"))
        self.assertEqual(self.q1("SELECT state FROM ledger.holds WHERE id = %s", [h]), "voided")

    def test_shared_and_exclusive(self):
        a, psp = self.account(D("10.00")), self.account()
        s = self.ledger.hold(a, D("6.00"), mode="shared")
        self.ledger.hold(a, D("4.00"), to_account=psp)
        with self.assertRaises(lc.InsufficientFunds):
            self.ledger.hold(a, D("0.01"), to_account=psp)
        self.assertEqual(self.ledger.available_balance(a), D("0.00"))
        self.ledger.void(s, "proof done")
        self.assertEqual(self.ledger.available_balance(a), D("6.00"))
        self.assertEqual(self.ledger.expire_holds() >= 0, True)
        self.assertIsInstance(self.ledger.stale_holds(), list)

    def test_statement(self):
        a, psp = self.account(D("50.00")), self.account()
        src, ref = uniq("psp"), uniq("ref")
        h = self.ledger.hold(a, D("20.00"), to_account=psp, external_ref=ref,
                             metadata={"source": src})
        self.ledger.mark_submitted(h)
        self.ledger.capture(h)
        now = datetime.now(timezone.utc)
        n = self.ledger.import_statement(src, [{"external_ref": ref, "amount": D("19.00"),
                                                "asset": self.usd, "status": "succeeded",
                                                "occurred_at": now}])
        self.assertEqual(n, 1)
        found = self.ledger.reconcile_external(src, now - timedelta(hours=1), now + timedelta(seconds=1))
        mine = [f for f in found if f.external_ref == ref]
        self.assertEqual([f.kind for f in mine], ["amount_mismatch"])
        self.assertIsInstance(mine[0].theirs, (dict, list))


class Batches(LedgerTestCase):
    def test_transfer_batch_per_item_refusals(self):
        a, b = self.account(D("10.00")), self.account()
        key = lc.new_key("tb-")
        res = self.ledger.transfer_batch([
            (a, b, D("3.00"), key, {"n": 1}),
            {"from_account": a, "to_account": b, "amount": D("500.00")},
            (a, "no-such-account", D("1.00")),
            (a, b, D("3.00"), key, {"n": 1}),            # the key replayed by a later item
            (a, b, D("2.00"), key),                       # the same key, another request
        ])
        self.assertIsInstance(res, lc.BatchResults)
        self.assertFalse(res.ok)
        self.assertEqual([r.result for r in res], ["ok", "LD001", "LD002", "ok", "LD007"])
        self.assertEqual(res[3].transaction_id, res[0].transaction_id)
        self.assertTrue(res[0].ok)
        self.assertIsInstance(res[0].transaction_id, uuid.UUID)
        self.assertIs(res[1].error_class, lc.InsufficientFunds)
        self.assertIs(res[2].error_class, lc.UnknownAccount)
        self.assertIs(res[4].error_class, lc.IdempotencyConflict)
        self.assertIsNone(res[1].transaction_id)
        self.assertIn("insufficient funds", res[1].message)
        # each refused item's facts, from the result's facts column
        self.assertEqual(res[1].facts["sqlstate"], "LD001")
        self.assertEqual(res[1].facts["account"], a)
        self.assertIsInstance(res[1].facts["available"], D)
        self.assertEqual(res[2].facts["sqlstate"], "LD002")
        self.assertEqual(res[4].facts["original_id"], str(res[0].transaction_id))
        self.assertEqual(res[0].facts, {})
        err = res[1].error()
        self.assertIsInstance(err, lc.InsufficientFunds)
        self.assertEqual(err.sqlstate, "LD001")
        self.assertEqual(err.facts["sqlstate"], "LD001")
        self.assertEqual(self.ledger.balance(b), D("3.00"))
        self.assertEqual(self.count_key(key), 1)
        self.assertEqual([r.item for r in res.failed], [2, 3, 5])
        with self.assertRaises(lc.InsufficientFunds):
            res.raise_first()

    def test_atomic_batch_raises(self):
        a, b = self.account(D("10.00")), self.account()
        with self.assertRaises(lc.InsufficientFunds) as cm:
            self.ledger.transfer_batch([(a, b, D("1.00")), (a, b, D("100.00"))], atomic=True)
        self.assertIn("2", cm.exception.context or "")
        self.assertEqual(self.ledger.balance(b), D("0.00"))
        with self.assertRaises(lc.InvalidLegs):
            self.ledger.post_batch([[(a, D("-1")), (b, D("1"))], [(a, D("-1"))]], atomic=True)
        self.assertEqual(self.ledger.balance(b), D("0.00"))

    def test_post_batch(self):
        payroll, e1, e2 = self.account(D("6000")), self.account(), self.account()
        run = uniq("run")
        postings = [
            {"legs": [(payroll, D("-2500")), (e1, D("2500"))], "idempotency_key": run + "/e1",
             "metadata": {"run": run}},
            ([(payroll, D("-3100")), (e2, D("3100"))], run + "/e2"),
            [(payroll, D("-1000")), (e2, D("1000"))],           # over the balance
        ]
        res = self.ledger.post_batch(postings)
        self.assertEqual([r.result for r in res], ["ok", "ok", "LD001"])
        again = self.ledger.post_batch(postings[:2])            # a retried batch replays its keys
        self.assertEqual(again.transaction_ids, res.transaction_ids[:2])
        self.assertEqual(self.ledger.balance(payroll), D("400.00"))


class HoldBatches(LedgerTestCase):
    def test_hold_batch_per_item_refusals(self):
        a, psp = self.account(D("50.00")), self.account()
        key = lc.new_key("hb-")
        res = self.ledger.hold_batch([
            {"from_account": a, "amount": D("30.00"), "to_account": psp, "external_ref": key,
             "submit_within": timedelta(minutes=4, microseconds=250), "confirm_within": "90 seconds",
             "idempotency_key": key, "metadata": {"n": 1, "fee": D("0.25")}},
            {"from_account": a, "amount": "25.00", "to_account": psp},    # 20.00 is left
            {"from_account": a, "amount": 5, "mode": "shared"},            # defaults for the rest
        ])
        self.assertIsInstance(res, lc.BatchResults)
        self.assertEqual([r.result for r in res], ["ok", "LD001", "ok"])
        self.assertIsInstance(res[0].hold_id, uuid.UUID)
        self.assertEqual(res[0].hold_id, res[0].transaction_id)
        self.assertIsNone(res[1].hold_id)
        self.assertEqual(res[1].facts["sqlstate"], "LD001")
        self.assertEqual(res[1].facts["account"], a)
        self.assertEqual(res[1].facts["requested"], D("25.00"))
        self.assertIsInstance(res[1].facts["available"], D)
        err = res[1].error()
        self.assertIsInstance(err, lc.InsufficientFunds)
        self.assertEqual(err.sqlstate, "LD001")
        self.assertEqual(err.context, "batch item 2")
        self.assertEqual(err.facts["requested"], D("25.00"))
        self.assertEqual([r.item for r in res.failed], [2])
        # the timedelta and the string were sent exactly; left-out keys took the defaults
        row = self.q("SELECT mode, submit_within, confirm_within, external_ref, metadata::text"
                     "  FROM ledger.hold WHERE id = %s", [res[0].hold_id])[0]
        self.assertEqual(row[:4], ("exclusive", timedelta(minutes=4, microseconds=250),
                                   timedelta(seconds=90), key))
        self.assertEqual(lc.json_loads(row[4]), {"n": 1, "fee": "0.25"})
        row = self.q("SELECT mode, submit_within, confirm_within, to_account_id FROM ledger.hold WHERE id = %s",
                     [res[2].hold_id])[0]
        self.assertEqual(row, ("shared", timedelta(minutes=3), timedelta(minutes=6), None))
        self.assertEqual(self.ledger.available_balance(a), D("15.00"))
        # a retried batch replays the key: the same hold
        again = self.ledger.hold_batch([{
            "from_account": a, "amount": D("30.00"), "to_account": psp, "external_ref": key,
            "submit_within": timedelta(minutes=4, microseconds=250), "confirm_within": "90 seconds",
            "idempotency_key": key, "metadata": {"n": 1, "fee": D("0.25")}}])
        self.assertEqual(again[0].hold_id, res[0].hold_id)
        # an unknown key refuses its item on the server (LD011), naming it
        bad = self.ledger.hold_batch([{"from_account": a, "amount": "1", "to_account": psp, "amont": "1"}])
        self.assertEqual(bad[0].result, "LD011")
        self.assertIs(bad[0].error_class, lc.InvalidArgument)
        self.assertEqual(bad[0].facts.get("argument"), "amont")

    def test_capture_and_void_batch(self):
        a, psp = self.account(D("40.00")), self.account()
        h1, h2 = self.ledger.hold_batch([
            {"from_account": a, "amount": D("20.00"), "to_account": psp},
            {"from_account": a, "amount": D("10.00"), "to_account": psp},
        ]).raise_first().transaction_ids
        key = lc.new_key("cb-")
        res = self.ledger.capture_batch([
            {"hold_id": h1, "amount": D("12.50"), "idempotency_key": key},   # partial
            {"hold_id": str(h1), "amount": "8.00"},                          # 7.50 remains
            {"hold_id": h1, "amount": D("12.50"), "idempotency_key": key},   # replayed
        ])
        self.assertEqual([r.result for r in res], ["ok", "LD025", "ok"])
        self.assertIsInstance(res[0].transaction_id, uuid.UUID)
        self.assertEqual(res[2].transaction_id, res[0].transaction_id)
        self.assertIs(res[1].error_class, lc.HoldExceeded)
        err = res[1].error()
        self.assertIsInstance(err, lc.HoldExceeded)
        self.assertEqual(err.facts["sqlstate"], "LD025")
        self.assertEqual(err.facts["remaining"], D("7.50"))
        self.assertEqual(self.ledger.balance(psp), D("12.50"))
        self.assertEqual(self.count_key(key), 1)
        vkey = lc.new_key("vb-")
        res = self.ledger.void_batch([
            {"hold_id": h1, "reason": "rest declined", "idempotency_key": vkey},
            {"hold_id": h2, "reason": "cancelled"},
            {"hold_id": h2, "reason": "again"},                              # finished: LD024
        ])
        self.assertEqual([r.result for r in res], ["ok", "ok", "LD024"])
        self.assertEqual([r.released for r in res], [D("7.50"), D("10.00"), None])
        self.assertIsInstance(res[0].released, D)
        self.assertIs(res[2].error_class, lc.HoldFinished)
        self.assertEqual(res[2].facts["state"], "voided")
        again = self.ledger.void_batch([{"hold_id": h1, "reason": "rest declined", "idempotency_key": vkey}])
        self.assertEqual(again[0].released, D("7.50"))
        self.assertEqual(self.ledger.available_balance(a), D("27.50"))
        self.assertEqual(self.q1("SELECT state FROM ledger.holds WHERE id = %s", [h1]), "voided")

    def test_atomic_raises_nothing_written(self):
        a, psp = self.account(D("10.00")), self.account()
        with self.assertRaises(lc.InsufficientFunds) as cm:
            self.ledger.hold_batch([{"from_account": a, "amount": D("6.00"), "to_account": psp},
                                    {"from_account": a, "amount": D("6.00"), "to_account": psp}], atomic=True)
        self.assertIn("2", cm.exception.context or "")
        self.assertEqual(cm.exception.facts["requested"], D("6.00"))
        self.assertEqual(self.q1("SELECT count(*) FROM ledger.holds WHERE account = %s", [a]), 0)
        self.assertEqual(self.ledger.available_balance(a), D("10.00"))
        h = self.ledger.hold(a, D("4.00"), to_account=psp)
        with self.assertRaises(lc.HoldExceeded):
            self.ledger.capture_batch([{"hold_id": h, "amount": D("1.00")},
                                       {"hold_id": h, "amount": D("5.00")}], atomic=True)
        self.assertEqual(self.ledger.balance(psp), D("0.00"))
        with self.assertRaises(lc.UnknownHold):
            self.ledger.void_batch([{"hold_id": h, "reason": "x"},
                                    {"hold_id": uuid.UUID(int=0), "reason": "y"}], atomic=True)
        self.assertEqual(self.q1("SELECT state FROM ledger.holds WHERE id = %s", [h]), "reserved")
        self.assertEqual(self.ledger.void_batch([{"hold_id": h, "reason": "done"}])[0].released, D("4.00"))

    def test_refused_client_side(self):
        a, psp = self.account(D("10.00")), self.account()
        calls = self.q1("SELECT count(*) FROM ledger.hold h JOIN ledger.account x ON x.id = h.account_id"
                        " WHERE x.code = %s", [a])
        with self.assertRaises(TypeError) as cm:
            self.ledger.hold_batch([{"from_account": a, "amount": D("1.00"), "to_account": psp},
                                    {"from_account": a, "amount": 1.5, "to_account": psp}])
        self.assertIn("hold 2 amount", str(cm.exception))
        with self.assertRaises(TypeError):
            self.ledger.capture_batch([{"hold_id": uuid.UUID(int=1), "amount": 0.1}])
        with self.assertRaises(TypeError):
            self.ledger.hold_batch([{"from_account": a, "amount": "1", "submit_within": 60}])
        with self.assertRaises(TypeError):
            self.ledger.void_batch([(uuid.UUID(int=1), "reason")])
        self.assertEqual(self.q1("SELECT count(*) FROM ledger.hold h JOIN ledger.account x ON x.id = h.account_id"
                                 " WHERE x.code = %s", [a]), calls)
        self.assertEqual(self.ledger.available_balance(a), D("10.00"))


class Corrections(LedgerTestCase):
    def test_invalidate_and_reconcile(self):
        a = self.account()
        tx = self.ledger.transfer(self.world, a, D("12.34"), metadata={"memo": "oops"})
        rows = self.ledger.invalidate(str(tx), "duplicate charge")
        self.assertIn(lc.InvalidatedBalance(a, D("12.34"), D("0.00")), rows)
        self.assertEqual(self.ledger.rebuild_balances(a), 0)
        self.assertEqual([f for f in self.ledger.reconcile(repair=False) if f.account == a], [])


class EventsAndOutbox(LedgerTestCase):
    def test_event_applied(self):
        a = self.account()
        key = lc.new_key("ev-")
        ev = self.ledger.append_event(a, "transfer", {"from_account": self.world, "to_account": a,
                                                      "amount": D("2.50")}, idempotency_key=key)
        self.assertEqual(self.ledger.append_event(a, "transfer", {"from_account": self.world, "to_account": a,
                                                                  "amount": D("2.50")}, idempotency_key=key), ev)
        self.ledger.catch_up(stream=a, timeout=timedelta(seconds=10))
        self.assertEqual(self.ledger.balance(a), D("2.50"))
        self.assertIsInstance(self.ledger.event_horizon(), int)
        self.assertIsInstance(self.ledger.projection_lag(), lc.ProjectionLag)
        self.assertIsInstance(self.ledger.apply_events(10), int)
        self.assertIsInstance(self.ledger.event_worker_status(), lc.EventWorkerStatus)

    def test_outbox(self):
        topic = uniq("topic")
        with self.ledger.transaction():
            a = self.account()
            mid = self.ledger.enqueue(topic, a, {"amount": D("25.00"), "n": 1})
        msgs = self.ledger.outbox_claim("c1", max_messages=10, lease=timedelta(seconds=30), topics=[topic])
        self.assertEqual([m.id for m in msgs], [mid])
        self.assertEqual(msgs[0].payload, {"amount": "25.00", "n": 1})
        self.assertEqual(self.ledger.outbox_fail(mid, "smtp 451", "c1"), "pending")
        self.x("UPDATE ledger.outbox SET available_at = now() WHERE id = %s", [mid])
        msgs = self.ledger.outbox_claim("c2", topics=[topic])
        self.assertEqual(msgs[0].attempts, 2)
        self.assertTrue(self.ledger.outbox_release(mid, "c2"))
        self.ledger.outbox_claim("c3", topics=[topic])
        self.assertTrue(self.ledger.outbox_ack(mid, "c3"))
        self.assertFalse(self.ledger.outbox_ack(mid))
        with self.assertRaises(lc.OutboxState):
            self.ledger.outbox_retry(mid)


class Exchange(LedgerTestCase):
    def test_exchange(self):
        tok, usd = uniq("T"), uniq("U")
        self.ledger.create_asset(tok, 8)
        self.ledger.create_asset(usd, 2)
        liq_t, liq_u, fees = uniq("lt"), uniq("lu"), uniq("fees")
        self.ledger.create_account(liq_t, tok, min_balance=None)
        self.ledger.create_account(liq_u, usd, min_balance=None)
        self.ledger.create_account(fees, usd)
        ut, uu = uniq("ut"), uniq("uu")
        self.ledger.create_account(ut, tok)
        self.ledger.create_account(uu, usd)
        self.ledger.transfer(liq_t, ut, D("10"))
        self.ledger.set_exchange_accounts(tok, liq_t)
        self.ledger.set_exchange_accounts(usd, liq_u, fees)
        self.assertIsInstance(self.ledger.set_exchange_rate(tok, usd, D("2.5"), source="test"), int)
        key = lc.new_key("x-")
        tx = self.ledger.exchange(ut, uu, D("4"), spread=D("0.01"), idempotency_key=key,
                                  max_rate_age=timedelta(minutes=1), wait="1 s")
        self.assertEqual(self.ledger.exchange(ut, uu, D("4"), spread=D("0.01"), idempotency_key=key,
                                              max_rate_age=timedelta(minutes=1), wait="1 s"), tx)
        self.assertEqual(self.ledger.balance(uu), D("9.90"))
        self.assertEqual(self.ledger.balance(fees), D("0.10"))
        self.assertIsInstance(self.ledger.check_rate_feeds(), int)


class Status(LedgerTestCase):
    def test_status_functions(self):
        self.assertTrue(self.ledger.version())
        self.assertIsInstance(self.ledger.new_id(), uuid.UUID)
        self.assertIsInstance(self.ledger.fold_worker_status(), lc.FoldWorkerStatus)
        hot = self.account(D("5.00"))
        self.assertEqual(self.ledger.set_account_mode(hot, "hot"), "cold")
        self.ledger.transfer(self.world, hot, D("1.00"))
        self.assertIn(hot, [h.account for h in self.ledger.hot_accounts()])
        self.assertIsInstance(self.ledger.fold(), int)
        self.assertEqual(self.ledger.balance(hot), D("6.00"))
        self.assertEqual(self.ledger.set_account_mode(hot, "cold"), "hot")
        self.assertIsInstance(self.ledger.rate_limit_status(), list)
        self.assertTrue(self.ledger.grant_owner_access("ledger_manager", uniq("owner")) in (True, False))


if __name__ == "__main__":
    unittest.main()
