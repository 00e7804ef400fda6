-- transfer_tx: transfer_uniform inside an explicit transaction, as an
-- application that sets the acting owner does (the comparison point of
-- transfer_owner).
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set cents random(1, 100)
BEGIN;
SELECT ledger.transfer('acct-' || :a::int, 'acct-' || :b::int, :cents::int * 0.01);
COMMIT;
