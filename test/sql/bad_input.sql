-- bad_input: every bad argument of ledger.transfer gets its LD error and
-- leaves no row behind
SELECT ledger.create_account('x-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('x-a', 'USD') > 0 AS ok;
SELECT ledger.create_account('x-b', 'USD') > 0 AS ok;
SELECT ledger.create_account('x-jpy', 'JPY') > 0 AS ok;
SELECT ledger.transfer('x-world', 'x-a', 100) IS NOT NULL AS funded;

SELECT (SELECT count(*) FROM ledger.transaction) AS txns,
       (SELECT count(*) FROM ledger.journal_entry) AS entries,
       (SELECT count(*) FROM ledger.daily_balance) AS days,
       (SELECT sum(balance) FROM ledger.account_balance) AS total \gset before_

-- NULLs
SELECT try($$SELECT ledger.transfer(NULL, 'x-b', 1)$$);
SELECT try($$SELECT ledger.transfer('x-a', NULL, 1)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', NULL)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1, metadata => NULL)$$);
-- zero, negative, NaN, infinite, over-scale, huge
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 0)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', -5)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 'NaN')$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 'Infinity')$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', '-Infinity')$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1.001)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 0.000000000000000000001)$$);
SELECT try($$SELECT ledger.transfer('x-jpy', 'x-world', 0.5)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1e30)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 123456789012345678901234567890123456789)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1e131071)$$);
-- trailing zeros within the value are fine: 1.000 is 1.00
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1.000)$$);
-- unknown accounts, mixed assets
SELECT try($$SELECT ledger.transfer('nobody', 'x-b', 1)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'nobody', 1)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-jpy', 1)$$);
-- bad codes and keys
SELECT try($$SELECT ledger.transfer('', 'x-b', 1)$$);
SELECT try($$SELECT ledger.transfer(repeat('a', 300), 'x-b', 1)$$);
SELECT try($$SELECT ledger.transfer(E'x-a\u0001', 'x-b', 1)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1, idempotency_key => '')$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1, idempotency_key => repeat('k', 256))$$);
-- metadata must be an object of bounded size
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1, metadata => '[]')$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1, metadata => 'null')$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1, metadata => jsonb_build_object('blob', repeat('z', 70000)))$$);
-- SQL injection in codes is an unknown account, nothing more
SELECT try($$SELECT ledger.transfer($q$x-a'; DELETE FROM ledger.account; --$q$, 'x-b', 1)$$);
SELECT try($$SELECT ledger.transfer('x-a', $q$x-b" OR 1=1 --$q$, 1)$$);
SELECT try($$SELECT ledger.transfer('x-a', 'x-b', 1, idempotency_key => $q$'); DROP TABLE ledger.transaction; --$q$) IS NULL$$);

-- the only successful calls above: 1.000 and the injection-shaped key, 2 transactions
SELECT (SELECT count(*) FROM ledger.transaction) - :before_txns AS new_txns,
       (SELECT count(*) FROM ledger.journal_entry) - :before_entries AS new_entries,
       (SELECT count(*) FROM ledger.daily_balance) - :before_days AS new_days,
       (SELECT sum(balance) FROM ledger.account_balance) - :before_total AS total_change,
       (SELECT count(*) FROM ledger.account) AS accounts_intact;
SELECT idempotency_key FROM ledger.transaction WHERE idempotency_key LIKE '%DROP%';
-- hostile metadata is stored as data
SELECT ledger.transfer('x-a', 'x-b', 1, metadata => $j${"note": "'); DROP TABLE ledger.journal_entry; --", "\"x": "<script>"}$j$) IS NOT NULL AS ok;
SELECT metadata FROM ledger.transaction WHERE metadata ? 'note';
SELECT ledger.balance('x-a') AS a, ledger.balance('x-b') AS b;
