-- hot_credit_hot: hot_credit in hot mode.  Every transfer credits one
-- account ('merchant-hot', created like 'merchant' and switched to hot mode
-- by load.sql) from a random source among 10,000.
\set a random(1, 10000)
\set cents random(1, 100)
SELECT ledger.transfer('acct-' || :a::int, 'merchant-hot', :cents::int * 0.01);
