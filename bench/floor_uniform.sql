-- floor_uniform: bench.floor_batch(1000) (bench/floor_setup.sql): the rows
-- of 1,000 uniform transfers written with set-based SQL and no checks.
SELECT bench.floor_batch(1000);
