-- hold_capture: a two-phase payment between two random, distinct accounts
-- among 10,000: an exclusive hold, then its capture, each its own
-- transaction (two commits).  One pgbench transaction = one pair.
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set cents random(1, 100)
SELECT ledger.hold('acct-' || :a::int, :cents::int * 0.01, 'acct-' || :b::int) AS h \gset
SELECT ledger.capture(:h);
