-- hold_contended: every pair holds money on one account ('hot-source', cold,
-- floor 0, funded with 10^12) for a random destination among 10,000 and
-- captures it: all clients contend for that account's balance row, as
-- hot_debit's transfers do.  One pgbench transaction = one pair.
\set b random(1, 10000)
\set cents random(1, 100)
SELECT ledger.hold('hot-source', :cents::int * 0.01, 'acct-' || :b::int) AS h \gset
SELECT ledger.capture(:h);
