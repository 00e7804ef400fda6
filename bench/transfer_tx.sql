-- transfer_tx: transfer_uniform inside an explicit transaction that also
-- sets a (meaningless) setting for the transaction, as an application
-- that sets the acting owner does: the comparison point of
-- transfer_owner, whose only difference is the owner check.
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set cents random(1, 100)
BEGIN;
SELECT set_config('bench.unused', 'owner-' || :a::int, true);
SELECT ledger.transfer('acct-' || :a::int, 'acct-' || :b::int, :cents::int * 0.01);
COMMIT;
