-- hot_credit: every transfer credits one account ('merchant') from a random
-- source among 10,000.
\set a random(1, 10000)
\set cents random(1, 100)
SELECT ledger.transfer('acct-' || :a::int, 'merchant', :cents::int * 0.01);
