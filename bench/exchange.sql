-- exchange: ledger.exchange of a random user's tokens into its USD account
-- (10,000 users; 1,000 TOK each), 0.01 to 1 TOK at the fixed rate, 1% spread.
\set u random(1, 10000)
\set milli random(10, 1000)
SELECT ledger.exchange('tok-' || :u::int, 'acct-' || :u::int, (:milli::int * 0.001)::numeric,
                       spread => 0.01);
