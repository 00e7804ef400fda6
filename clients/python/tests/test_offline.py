"""Client-side behaviour that needs no server: amount types, the error
classes, and the facts line of a DETAIL."""

import unittest
import uuid
from decimal import Decimal as D

from tests.support import lc


class Unreachable:
    """A connection that fails the test if the client ever uses it."""

    def __getattr__(self, name):
        raise AssertionError(f"the client touched the connection ({name}) before refusing")


class AmountTypes(unittest.TestCase):
    def setUp(self):
        self.ledger = lc.Ledger(Unreachable())

    def test_float_refused_before_the_call(self):
        for call in (
            lambda: self.ledger.transfer("a", "b", 1.5),
            lambda: self.ledger.transfer("a", "b", float("nan")),
            lambda: self.ledger.post([("a", -1.25), ("b", D("1.25"))]),
            lambda: self.ledger.post([{"account": "a", "amount": -0.1}, {"account": "b", "amount": 0.1}]),
            lambda: self.ledger.transfer_batch([("a", "b", D("1")), ("a", "b", 2.0)]),
            lambda: self.ledger.post_batch([[("a", 1.0), ("b", -1.0)]]),
            lambda: self.ledger.hold("a", 0.5, to_account="b"),
            lambda: self.ledger.capture("00000000-0000-0000-0000-000000000000", 0.5),
            lambda: self.ledger.hold_batch([{"from_account": "a", "amount": 0.5, "to_account": "b"}]),
            lambda: self.ledger.capture_batch([{"hold_id": "00000000-0000-0000-0000-000000000000",
                                                "amount": 0.5}]),
            lambda: self.ledger.create_account("a", "USD", min_balance=-10.0),
            lambda: self.ledger.exchange("a", "b", 1.0),
            lambda: self.ledger.set_exchange_rate("A", "B", 2.5),
        ):
            with self.assertRaises(TypeError) as cm:
                call()
            self.assertIn("float", str(cm.exception))

    def test_other_types_refused(self):
        with self.assertRaises(TypeError):
            self.ledger.transfer("a", "b", True)
        with self.assertRaises(TypeError):
            self.ledger.transfer("a", "b", None)
        with self.assertRaises(TypeError):
            self.ledger.transfer("a", "b", [1])
        with self.assertRaises(ValueError):
            self.ledger.transfer("a", "b", "1e3")
        with self.assertRaises(ValueError):
            self.ledger.transfer("a", "b", "ten")
        with self.assertRaises(TypeError):
            self.ledger.post("not legs")
        with self.assertRaises(TypeError):
            self.ledger.post([("a",)])

    def test_accepted_amounts(self):
        self.assertEqual(lc.to_amount(D("10.25")), D("10.25"))
        self.assertEqual(lc.to_amount(7), D(7))
        self.assertEqual(lc.to_amount(" -3.50 "), D("-3.50"))
        self.assertEqual(lc.amount_text(D("1E+2")), "100")
        self.assertEqual(lc.amount_text(D("1E-18")), "0.000000000000000001")
        self.assertEqual(lc.amount_text(D("123456789012.123456789012345678")),
                         "123456789012.123456789012345678")
        self.assertEqual(lc.json_dumps({"amount": D("-0.50")}), '{"amount":"-0.50"}')
        self.assertEqual(lc.json_loads('{"a": 1.10}'), {"a": D("1.10")})


class ErrorClasses(unittest.TestCase):
    # every SQLSTATE of the README's error table, LD001 .. LD041
    README_CODES = [f"LD{n:03d}" for n in range(1, 42)]

    def test_one_class_per_code(self):
        names = set()
        for code in self.README_CODES:
            cls = lc.ERROR_CLASSES.get(code)
            self.assertIsNotNone(cls, code)
            self.assertTrue(issubclass(cls, lc.LedgerError))
            self.assertEqual(cls.sqlstate, code)
            self.assertEqual(lc.class_for_sqlstate(code), cls)
            names.add(cls.__name__)
            self.assertIs(getattr(lc, cls.__name__), cls)
        self.assertEqual(len(names), len(self.README_CODES))

    def test_retryable(self):
        self.assertEqual(lc.RETRYABLE_SQLSTATES,
                         {"40001", "40P01", "LD019", "LD020", "LD037", "LD041"})
        for cls in (lc.SerializationFailure, lc.DeadlockDetected, lc.ModeChanged, lc.HotNotReady,
                    lc.StaleRate, lc.RateLimited, lc.ConnectionLost):
            self.assertTrue(cls.retryable, cls)
        for cls in (lc.InsufficientFunds, lc.IdempotencyConflict, lc.InvalidArgument, lc.DatabaseError):
            self.assertFalse(cls.retryable, cls)
        self.assertFalse(issubclass(lc.ConnectionLost, lc.SerializationFailure))
        self.assertFalse(issubclass(lc.SerializationFailure, lc.ConnectionLost))

    def test_other_sqlstates(self):
        self.assertIs(lc.class_for_sqlstate(None), lc.ConnectionLost)
        self.assertIs(lc.class_for_sqlstate("57P01"), lc.ConnectionLost)
        self.assertIs(lc.class_for_sqlstate("08006"), lc.ConnectionLost)
        self.assertIs(lc.class_for_sqlstate("42501"), lc.PermissionDenied)
        self.assertIs(lc.class_for_sqlstate("23505"), lc.DatabaseError)
        self.assertIs(lc.class_for_sqlstate("LD099"), lc.LedgerError)


class Facts(unittest.TestCase):
    def test_facts_line(self):
        detail = ('Account "alice" has balance 5.00 and floor 0.00, so 5.00 is available; '
                  'the posting requests 10.00.\n'
                  '{"sqlstate": "LD001", "account": "alice", "asset": "USD", "balance": "5.00", '
                  '"available": "5.00", "requested": "10.00", "floor": "0.00", '
                  '"held_exclusive": "0", "held_shared": "1.5", "note": "12"}')
        prose, facts = lc.split_detail(detail)
        self.assertTrue(prose.startswith('Account "alice" has balance 5.00'))
        self.assertNotIn("{", prose)
        self.assertEqual(facts["sqlstate"], "LD001")
        self.assertEqual(facts["account"], "alice")
        for key, value in (("balance", "5.00"), ("available", "5.00"), ("requested", "10.00"),
                           ("floor", "0.00"), ("held_exclusive", "0"), ("held_shared", "1.5")):
            self.assertEqual(facts[key], D(value))
            self.assertIsInstance(facts[key], D)
            self.assertEqual(str(facts[key]), value)
        self.assertEqual(facts["note"], "12")      # not an amount key: left as a string

    def test_no_facts(self):
        self.assertEqual(lc.split_detail("Leg 2 names account \"x\"."), ('Leg 2 names account "x".', {}))
        self.assertEqual(lc.split_detail(None), (None, {}))
        self.assertEqual(lc.split_detail("prose\n{not json"), ("prose\n{not json", {}))
        self.assertEqual(lc.split_detail("prose\n[1, 2]"), ("prose\n[1, 2]", {}))
        self.assertEqual(lc.split_detail('{"sqlstate": "LD013"}'), (None, {"sqlstate": "LD013"}))

    def test_batch_message_facts(self):
        item = lc.BatchItem(2, "LD001", 'insufficient funds in account "a" / Account "a" has 1.00.\n'
                            '{"sqlstate": "LD001", "account": "a", "requested": "5.00"}', None)
        self.assertFalse(item.ok)
        self.assertIs(item.error_class, lc.InsufficientFunds)
        self.assertEqual(item.facts["requested"], D("5.00"))
        err = item.error()
        self.assertIsInstance(err, lc.InsufficientFunds)
        self.assertEqual(err.message, 'insufficient funds in account "a"')
        self.assertEqual(err.detail, 'Account "a" has 1.00.')
        only = lc.BatchItem(1, "LD002", 'account "x" does not exist / {"sqlstate": "LD002", "account": "x"}', None)
        self.assertEqual(only.facts, {"sqlstate": "LD002", "account": "x"})
        plain = lc.BatchItem(1, "LD002", 'account "x" does not exist / Leg 2 names account "x".', None)
        self.assertEqual(plain.facts, {})
        hold = lc.BatchItem(1, "ok", None, uuid.UUID(int=7))
        self.assertEqual(hold.hold_id, uuid.UUID(int=7))
        voided = lc.BatchItem(1, "ok", None, D("7.50"))
        self.assertEqual(voided.released, D("7.50"))
        self.assertIsNone(item.released)
        self.assertIsNone(item.hold_id)
        results = lc.BatchResults([lc.BatchItem(1, "ok", None, None), item])
        self.assertFalse(results.ok)
        self.assertEqual(results.failed, [item])
        with self.assertRaises(lc.InsufficientFunds):
            results.raise_first()


if __name__ == "__main__":
    unittest.main()
