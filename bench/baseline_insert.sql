-- baseline_insert: one single-row INSERT per transaction into a plain table
-- (bigint identity pk, a numeric, a timestamptz).  The ceiling the ledger
-- workloads are compared with: same connection, same commit, no ledger.
\set cents random(1, 100)
INSERT INTO bench.baseline (amount, created_at) VALUES (:cents::int * 0.01, now());
