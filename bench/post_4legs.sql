-- post_4legs: one four-leg ledger.post across two assets:
--   -x from acct-a (USD), +x to acct-b (USD), -y from eur-c (EUR), +y to eur-d (EUR)
-- with a != b and c != d, all random among 10,000 per asset.
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set c random(1, 10000)
\set d 1 + (:c + random(0, 9998)) % 10000
\set x random(1, 100)
\set y random(1, 100)
SELECT ledger.post(jsonb_build_array(
    jsonb_build_object('account', 'acct-' || :a::int, 'amount', -(:x::int * 0.01)),
    jsonb_build_object('account', 'acct-' || :b::int, 'amount', :x::int * 0.01),
    jsonb_build_object('account', 'eur-' || :c::int, 'amount', -(:y::int * 0.01)),
    jsonb_build_object('account', 'eur-' || :d::int, 'amount', :y::int * 0.01)));
