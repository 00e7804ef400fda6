-- transfer_50: ledger.transfer between two random, distinct accounts among
-- the first 50 (acct-1 .. acct-50): high row-lock contention.
\set a random(1, 50)
\set b 1 + (:a + random(0, 48)) % 50
\set cents random(1, 100)
SELECT ledger.transfer('acct-' || :a::int, 'acct-' || :b::int, :cents::int * 0.01);
