-- ids: time-ordered UUIDv7, monotonic within a backend
SELECT substr(id::text, 15, 1) AS version, substr(id::text, 20, 1) IN ('8', '9', 'a', 'b') AS rfc_variant
  FROM (SELECT ledger.new_id() AS id) s;

-- the embedded timestamp is the current time (milliseconds since the Unix epoch)
SELECT abs(('x' || lpad(replace(substr(id::text, 1, 13), '-', ''), 16, '0'))::bit(64)::bigint
           - (extract(epoch FROM clock_timestamp()) * 1000)::bigint) < 5000 AS time_is_now
  FROM (SELECT ledger.new_id() AS id) s;

-- 20,000 ids in one backend: all distinct and strictly increasing
WITH ids AS (
    SELECT n, ledger.new_id() AS id FROM generate_series(1, 20000) n
)
SELECT count(*) AS ids, count(DISTINCT id) AS distinct_ids,
       bool_and(id > prev) AS strictly_increasing
  FROM (SELECT n, id, lag(id) OVER (ORDER BY n) AS prev FROM ids) s
 WHERE prev IS NOT NULL OR n = 1;

-- transaction ids are UUIDv7 and follow each other
SELECT bool_and(substr(id::text, 15, 1) = '7') AS all_v7 FROM ledger.transaction;
SELECT ledger.transfer('x-world', 'x-a', 1) < ledger.transfer('x-world', 'x-a', 1) AS ordered;
