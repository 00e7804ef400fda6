-- floor_single: bench.floor_batch(1): the rows of one transfer written
-- with set-based SQL and no checks, one transaction per transfer.
SELECT bench.floor_batch(1);
