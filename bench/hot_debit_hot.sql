-- hot_debit_hot: hot_debit in hot mode.  Every transfer debits one account
-- ('hot-source-hot', created like 'hot-source': min_balance 0, funded with
-- 10^12, switched to hot mode by load.sql, so the escrow check is evaluated
-- but never refuses) to a random destination among 10,000.
\set b random(1, 10000)
\set cents random(1, 100)
SELECT ledger.transfer('hot-source-hot', 'acct-' || :b::int, :cents::int * 0.01);
