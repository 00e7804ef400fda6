-- event_append: ledger.append_event of a transfer between two random,
-- distinct accounts among 10,000: one insert, nothing applied.
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set cents random(1, 100)
SELECT ledger.append_event('acct-' || :a::int, 'transfer',
    jsonb_build_object('from_account', 'acct-' || :a::int, 'to_account', 'acct-' || :b::int,
                       'amount', (:cents::int * 0.01)::text));
