-- transfer: two-leg postings, conditional debits, floors, daily balances
SELECT ledger.create_asset('EUR', 2);
SELECT ledger.create_account('t-world', 'EUR', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('t-a', 'EUR') > 0 AS ok;
SELECT ledger.create_account('t-b', 'EUR') > 0 AS ok;
SELECT ledger.create_account('t-od', 'EUR', min_balance => -10) > 0 AS ok;
SELECT ledger.create_account('t-usd', 'USD') > 0 AS ok;

SELECT ledger.transfer('t-world', 't-a', 100.00) IS NOT NULL AS funded;
SELECT ledger.transfer(from_account => 't-a', to_account => 't-b', amount => 30.25,
                       metadata => '{"memo": "rent"}') IS NOT NULL AS paid;
SELECT ledger.balance('t-world') AS world, ledger.balance('t-a') AS a, ledger.balance('t-b') AS b;

-- the transaction row and its journal entries
SELECT t.kind, t.metadata, t.idempotency_key, t.is_invalidated,
       substr(t.id::text, 15, 1) AS uuid_version,
       count(j.*) AS legs, sum(j.amount) AS net,
       count(DISTINCT j.created_at) AS one_timestamp
  FROM ledger.transaction t JOIN ledger.journal_entry j ON j.transaction_id = t.id
 WHERE t.metadata ? 'memo'
 GROUP BY t.id;
SELECT account, amount FROM ledger.journal WHERE account LIKE 't-%' ORDER BY id;

-- an overdraft is refused and changes nothing
SELECT try($$SELECT ledger.transfer('t-a', 't-b', 69.76)$$);
SELECT ledger.balance('t-a') AS a, ledger.balance('t-b') AS b;
-- the exact remaining balance can be spent, to zero
SELECT ledger.transfer('t-a', 't-b', 69.75) IS NOT NULL AS drained;
SELECT ledger.balance('t-a') AS a, ledger.balance('t-b') AS b;
SELECT try($$SELECT ledger.transfer('t-a', 't-b', 0.01)$$);

-- a negative floor is an overdraft limit
SELECT ledger.transfer('t-od', 't-a', 10.00) IS NOT NULL AS within_limit;
SELECT try($$SELECT ledger.transfer('t-od', 't-a', 0.01)$$);
SELECT ledger.balance('t-od') AS od;
-- credits are always accepted, even into an account below its floor
SELECT ledger.transfer('t-world', 't-od', 0.01) IS NOT NULL AS credited;

-- an unbounded account goes as negative as needed
SELECT ledger.transfer('t-world', 't-b', 1000000.00) IS NOT NULL AS minted;
SELECT ledger.balance('t-world') AS world;

-- same account, mixed assets
SELECT try($$SELECT ledger.transfer('t-a', 't-a', 1)$$);
SELECT try($$SELECT ledger.transfer('t-b', 't-usd', 1)$$);

-- daily balances: one row per account and UTC day, closing balance = balance
SELECT a.code, d.day = (now() AT TIME ZONE 'UTC')::date AS today,
       d.debits, d.credits, d.balance, d.balance = b.balance AS closing_matches
  FROM ledger.daily_balance d
  JOIN ledger.account a ON a.id = d.account_id
  JOIN ledger.account_balance b ON b.account_id = a.id
 WHERE a.code LIKE 't-%' ORDER BY a.code;

-- balances equal the journal
SELECT a.code, b.balance, coalesce(sum(j.amount), 0) AS journal
  FROM ledger.account a
  JOIN ledger.account_balance b ON b.account_id = a.id
  LEFT JOIN ledger.journal_entry j ON j.account_id = a.id AND NOT j.is_invalidated
 WHERE a.code LIKE 't-%'
 GROUP BY a.code, b.balance ORDER BY a.code;

-- inside an explicit transaction: a failed debit aborts it all
BEGIN;
SELECT ledger.transfer('t-b', 't-a', 5.00) IS NOT NULL AS first_ok;
SELECT ledger.transfer('t-a', 't-b', 500.00);
COMMIT;
SELECT ledger.balance('t-a') AS a_unchanged;

-- a savepoint keeps the earlier work and drops only the failed call
BEGIN;
SELECT ledger.transfer('t-b', 't-a', 5.00) IS NOT NULL AS first_ok;
SAVEPOINT s;
SELECT ledger.transfer('t-a', 't-b', 500.00);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT ledger.balance('t-a') AS a_plus_five;

-- the tables' CHECK constraints are kept parsed per backend (checks.c):
-- a constraint added after this backend's postings applies to the next
-- one, and one dropped stops applying
SELECT ledger.transfer('t-b', 't-a', 1.00) IS NOT NULL AS warm;
ALTER TABLE ledger.journal_entry ADD CONSTRAINT test_no_1313 CHECK (abs(amount) <> 13.13) NOT VALID;
\set VERBOSITY terse
SELECT ledger.transfer('t-b', 't-a', 13.13);
\set VERBOSITY default
ALTER TABLE ledger.journal_entry DROP CONSTRAINT test_no_1313;
SELECT ledger.transfer('t-b', 't-a', 13.13) IS NOT NULL AS allowed_again;
SELECT ledger.transfer('t-a', 't-b', 14.13) IS NOT NULL AS back;
