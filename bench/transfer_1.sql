-- transfer_1: transfer_uniform, run by bench/events.sh from one client (what one
-- session of direct calls does, to compare with one applier).
-- b = 1 + (a + r) % 10000 with r in 0..9998 is uniform over the 9,999
-- accounts other than a.
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set cents random(1, 100)
SELECT ledger.transfer('acct-' || :a::int, 'acct-' || :b::int, :cents::int * 0.01);
