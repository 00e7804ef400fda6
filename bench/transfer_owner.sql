-- transfer_owner: transfer_tx with the acting owner set for the
-- transaction (accounts are owned by owner-N), so every debit checks its
-- account's owner.
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set cents random(1, 100)
BEGIN;
SELECT set_config('ledger.acting_owner', 'owner-' || :a::int, true);
SELECT ledger.transfer('acct-' || :a::int, 'acct-' || :b::int, :cents::int * 0.01);
COMMIT;
