-- hot_debit: every transfer debits one account ('hot-source': min_balance 0,
-- funded with 10^12 so the conditional debit is evaluated but never refuses)
-- to a random destination among 10,000.
\set b random(1, 10000)
\set cents random(1, 100)
SELECT ledger.transfer('hot-source', 'acct-' || :b::int, :cents::int * 0.01);
