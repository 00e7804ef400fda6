-- batch_uniform: one ledger.transfer_batch of 1,000 transfers between
-- random, distinct accounts among acct-1 .. acct-10000 (0.01 to 1.00 each,
-- b = 1 + (a + r) % 10000 with r in 0..9998, as transfer_uniform).  The
-- transaction counts 1,000 transfers; the workload fails if an item is
-- refused (every account is well funded).
WITH p AS MATERIALIZED (
    SELECT 1 + floor(random() * 10000)::int AS a, floor(random() * 9999)::int AS r,
           (1 + floor(random() * 100)::int) * 0.01 AS amount
      FROM generate_series(1, 1000))
SELECT 1 / (count(*) FILTER (WHERE result = 'ok') / 1000) AS all_ok
  FROM ledger.transfer_batch((SELECT array_agg('acct-' || a) FROM p),
                             (SELECT array_agg('acct-' || (1 + (a + r) % 10000)) FROM p),
                             (SELECT array_agg(amount) FROM p));
