-- examples: the files under examples/ run as written, with their output
-- checked here (pg_regress sets PG_ABS_SRCDIR to the test directory)
\getenv abs_srcdir PG_ABS_SRCDIR
\set example :abs_srcdir '/../examples/withdrawal.sql'
\i :example
