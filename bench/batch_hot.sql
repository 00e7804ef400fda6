-- batch_hot: one ledger.transfer_batch of 1,000 transfers of which every
-- one touches one hot account: half credit merchant-hot from a random
-- acct-N, half debit hot-source-hot into one (0.01 to 1.00 each).  The
-- workload fails if an item is refused.
WITH p AS MATERIALIZED (
    SELECT 1 + floor(random() * 10000)::int AS a, random() < 0.5 AS credit,
           (1 + floor(random() * 100)::int) * 0.01 AS amount
      FROM generate_series(1, 1000))
SELECT 1 / (count(*) FILTER (WHERE result = 'ok') / 1000) AS all_ok
  FROM ledger.transfer_batch(
         (SELECT array_agg(CASE WHEN credit THEN 'acct-' || a ELSE 'hot-source-hot' END) FROM p),
         (SELECT array_agg(CASE WHEN credit THEN 'merchant-hot' ELSE 'acct-' || a END) FROM p),
         (SELECT array_agg(amount) FROM p));
