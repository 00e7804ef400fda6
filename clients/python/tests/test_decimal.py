"""Exact decimals in and out: scale 2 and scale 18, single calls, post legs
and batches; floats refused before anything reaches the server."""

import decimal
import json
import unittest

import psycopg

from tests.support import D, LedgerTestCase, admin, lc

BIG18 = D("123456789012.123456789012345678")
TINY18 = D("0.000000000000000001")

# Python's default decimal context keeps 28 significant digits: -BIG18 or
# BIG18 - TINY18 would be rounded silently.  The tests compute with room to
# spare, and trap any inexact result.
_saved_context = None


def setUpModule():
    global _saved_context
    _saved_context = decimal.getcontext()
    ctx = decimal.Context(prec=60)
    ctx.traps[decimal.Inexact] = True
    decimal.setcontext(ctx)


def tearDownModule():
    decimal.setcontext(_saved_context)


class DecimalRoundTrips(LedgerTestCase):
    def journal_amounts(self, tx):
        return self.q("SELECT account, amount FROM ledger.journal WHERE transaction_id = %s ORDER BY amount",
                      [tx])

    def test_scale_2(self):
        a, b = self.account(), self.account()
        self.ledger.transfer(self.world, a, D("0.10"))
        self.ledger.transfer(self.world, a, D("0.2"))
        self.assertEqual(self.ledger.balance(a), D("0.30"))
        self.assertEqual(str(self.ledger.balance(a)), "0.30")
        tx = self.ledger.transfer(a, b, D("0.100"))          # trailing zeros are fine
        self.assertEqual(self.journal_amounts(tx), [(a, D("-0.10")), (b, D("0.10"))])
        self.ledger.transfer(self.world, a, 7)               # int
        self.ledger.transfer(self.world, a, "10.25")         # decimal string
        self.assertEqual(self.ledger.balance(a), D("17.45"))
        self.assertEqual(self.ledger.available_balance(a), D("17.45"))
        self.assertIsNone(self.ledger.available_balance(self.world))

    def test_scale_18_transfer(self):
        a, b = self.account(asset=self.tok), self.account(asset=self.tok)
        tx = self.ledger.transfer(self.tok_world, a, BIG18)
        bal = self.ledger.balance(a)
        self.assertIsInstance(bal, D)
        self.assertEqual(bal, BIG18)
        self.assertEqual(str(bal), "123456789012.123456789012345678")
        self.assertEqual(self.journal_amounts(tx), [(self.tok_world, -BIG18), (a, BIG18)])
        self.ledger.transfer(a, b, TINY18)
        self.assertEqual(self.ledger.balance(a), BIG18 - TINY18)
        self.assertEqual(self.ledger.balance(b), TINY18)
        self.assertEqual(format(self.ledger.balance(b), "f"), "0.000000000000000001")

    def test_scale_18_post_legs(self):
        a, b, c = (self.account(asset=self.tok) for _ in range(3))
        tx = self.ledger.post([(self.tok_world, -BIG18), (a, BIG18 - D("1E-18")),
                               {"account": b, "amount": D("1E-18")}])
        self.assertEqual(self.journal_amounts(tx),
                         [(self.tok_world, -BIG18), (b, TINY18), (a, BIG18 - TINY18)])
        # an exponent-form Decimal goes out as plain digits ("100"), which the ledger accepts
        self.ledger.post([(a, D("-1E+2")), (c, D("1E+2"))])
        self.assertEqual(self.ledger.balance(c), D("100"))
        self.assertEqual(self.ledger.balance(a), BIG18 - TINY18 - 100)

    def test_scale_2_post_legs(self):
        a, b, fees = self.account(D("100.00")), self.account(), self.account()
        tx = self.ledger.post([(a, D("-10.50")), (b, D("10.00")), (fees, D("0.50"))],
                              idempotency_key=lc.new_key("post-"), metadata={"fee": D("0.50")})
        self.assertEqual(self.journal_amounts(tx), [(a, D("-10.50")), (fees, D("0.50")), (b, D("10.00"))])
        meta = self.q1("SELECT metadata->>'fee' FROM ledger.transaction WHERE id = %s", [tx])
        self.assertEqual(meta, "0.50")

    def test_scale_18_batches(self):
        a, b = self.account(asset=self.tok), self.account(asset=self.tok)
        res = self.ledger.transfer_batch([(self.tok_world, a, BIG18), (a, b, TINY18),
                                          (a, b, D("0.5") + TINY18, lc.new_key("tb-"))])
        self.assertTrue(res.ok, res)
        self.assertEqual([r.item for r in res], [1, 2, 3])
        self.assertEqual(self.ledger.balance(b), D("0.5") + 2 * TINY18)
        self.assertEqual(self.journal_amounts(res[0].transaction_id), [(self.tok_world, -BIG18), (a, BIG18)])
        res = self.ledger.post_batch([
            [(a, -BIG18 + D("1")), (b, BIG18 - D("1"))],
            {"legs": [(b, -TINY18), (a, TINY18)], "idempotency_key": lc.new_key("pb-"),
             "metadata": {"n": 2}},
        ], atomic=True)
        self.assertTrue(res.ok, res)
        self.assertEqual(self.journal_amounts(res[1].transaction_id), [(b, -TINY18), (a, TINY18)])
        self.assertEqual(self.ledger.balance(a) + self.ledger.balance(b), BIG18)
        self.assertEqual(self.ledger.balance(a), D("1") - D("0.5") - TINY18)

    def test_scale_2_batch(self):
        a, b = self.account(D("10.00")), self.account()
        res = self.ledger.transfer_batch([(a, b, D("1.25")), (a, b, "2.50"), (a, b, 3)])
        self.assertTrue(res.ok)
        self.assertEqual(self.ledger.balance(b), D("6.75"))
        self.assertEqual(str(self.ledger.balance(a)), "3.25")

    def test_float_refused_client_side(self):
        a, b = self.account(D("10.00")), self.account()
        before = self.q1("SELECT count(*) FROM ledger.transaction")
        with self.assertRaises(TypeError):
            self.ledger.transfer(a, b, 1.5)
        with self.assertRaises(TypeError):
            self.ledger.post([(a, -1.5), (b, 1.5)])
        with self.assertRaises(TypeError):
            self.ledger.transfer_batch([(a, b, D("1")), (a, b, 0.1)])
        with self.assertRaises(TypeError):
            self.ledger.post_batch([{"legs": [(a, D("-1")), (b, 1.0)]}])
        self.assertEqual(self.q1("SELECT count(*) FROM ledger.transaction"), before)
        self.assertEqual(self.ledger.balance(b), D("0.00"))
        self.assertEqual(self.conn.info.transaction_status, 0)   # nothing left open

    def test_float_from_a_bare_driver_gets_ld005(self):
        """Without this package, psycopg sends a float as double precision
        and a list of str as text[]: the server answers LD005 and LD012
        with facts, not 42883 "function does not exist"."""
        a, b = self.account(D("10.00")), self.account()
        raw = admin()
        try:
            with self.assertRaises(psycopg.Error) as cm:
                raw.execute("SELECT ledger.transfer(%s, %s, %s)", (a, b, 1.5))
            self.assertEqual(cm.exception.sqlstate, "LD005")
            facts = json.loads(cm.exception.diag.message_detail.splitlines()[-1])
            self.assertEqual(facts["given_type"], "double precision")
            self.assertEqual(facts["argument"], "amount")
            with self.assertRaises(psycopg.Error) as cm:
                raw.execute("SELECT ledger.post(%s)",
                            ([f'{{"account": "{a}", "amount": "-1"}}', f'{{"account": "{b}", "amount": "1"}}'],))
            self.assertEqual(cm.exception.sqlstate, "LD012")
            facts = json.loads(cm.exception.diag.message_detail.splitlines()[-1])
            self.assertEqual(facts["given_type"], "array literal")
            # the same literal as post's metadata is not the legs: 22P02 stays
            with self.assertRaises(psycopg.Error) as cm:
                raw.execute("SELECT ledger.post(%s, NULL, %s)", ("[]", ['{"x": 1}']))
            self.assertEqual(cm.exception.sqlstate, "22P02")
        finally:
            raw.close()
        self.assertEqual(self.ledger.balance(b), D("0.00"))


if __name__ == "__main__":
    unittest.main()
