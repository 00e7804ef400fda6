-- floor_single: bench.floor_transfer (bench/floor_setup.sql): the rows of
-- one transfer between random distinct accounts (as transfer_uniform)
-- written by plain PL/pgSQL with no checks, one transaction per transfer.
\set a random(1, 10000)
\set b 1 + (:a + random(0, 9998)) % 10000
\set cents random(1, 100)
SELECT bench.floor_transfer(:a::int, :b::int, :cents::int * 0.01);
