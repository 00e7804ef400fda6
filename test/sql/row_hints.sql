-- row_hints: balance rows, daily rows and accounts are found again from
-- where their index led before (src/rowhint.c), and a hint that no longer
-- leads to the row is caught.  Index scans counted by this backend and not
-- yet sent to the statistics, before and after, in one transaction.
CREATE FUNCTION index_scans(rel regclass) RETURNS bigint LANGUAGE sql AS
$$SELECT sum(pg_stat_get_xact_numscans(indexrelid))::bigint
    FROM pg_index WHERE indrelid = rel$$;
SELECT ledger.create_asset('SEK', 2);
SELECT ledger.create_account('rh-world', 'SEK', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('rh-a', 'SEK') > 0 AS ok;
SELECT ledger.create_account('rh-b', 'SEK') > 0 AS ok;
SELECT ledger.transfer('rh-world', 'rh-a', 100.00) IS NOT NULL AS funded;
SELECT ledger.transfer('rh-a', 'rh-b', 1.00) IS NOT NULL AS warm;

-- a second posting on the same accounts reads neither index: the balance
-- and daily rows come from hints
BEGIN;
SELECT index_scans('ledger.account_balance') AS b0, index_scans('ledger.daily_balance') AS d0 \gset
SELECT ledger.transfer('rh-a', 'rh-b', 1.00) IS NOT NULL AS posted;
SELECT index_scans('ledger.account_balance') - :b0 AS balance_index_scans,
       index_scans('ledger.daily_balance') - :d0 AS daily_index_scans;
COMMIT;
-- with hints off, it reads both
SET ledger.row_hints = off;
BEGIN;
SELECT index_scans('ledger.account_balance') AS b0, index_scans('ledger.daily_balance') AS d0 \gset
SELECT ledger.transfer('rh-a', 'rh-b', 1.00) IS NOT NULL AS posted;
SELECT index_scans('ledger.account_balance') - :b0 AS balance_index_scans,
       index_scans('ledger.daily_balance') - :d0 AS daily_index_scans;
COMMIT;
RESET ledger.row_hints;

-- accounts looked up (the backend's cache off) come from hints too
SET ledger.account_cache_size = 0;
SELECT ledger.transfer('rh-a', 'rh-b', 1.00) IS NOT NULL AS warm;
BEGIN;
SELECT index_scans('ledger.account') AS a0 \gset
SELECT ledger.transfer('rh-a', 'rh-b', 1.00) IS NOT NULL AS posted;
SELECT index_scans('ledger.account') - :a0 AS account_index_scans;
COMMIT;

-- renamed accounts: the hint of the old code leads to a row version no
-- longer visible, so the old code is unknown and the new one found
UPDATE ledger.account SET code = 'rh-a2' WHERE code = 'rh-a';
SELECT try($$SELECT ledger.transfer('rh-a', 'rh-b', 1.00)$$);
SELECT ledger.transfer('rh-a2', 'rh-b', 1.00) IS NOT NULL AS posted_under_new_code;
-- a new account under the old code is found (its hint is stale)
SELECT ledger.create_account('rh-a', 'SEK', min_balance => NULL) > 0 AS ok;
SELECT ledger.transfer('rh-a', 'rh-b', 1.00) IS NOT NULL AS posted_from_new_account;
SELECT ledger.balance('rh-a') AS new_a, ledger.balance('rh-a2') AS old_a;
RESET ledger.account_cache_size;

-- rewritten tables: every hint names the old file, and postings go on
VACUUM FULL ledger.account_balance;
VACUUM FULL ledger.daily_balance;
VACUUM FULL ledger.account;
-- and rows updated in place (HOT) before their first lookup in the new
-- files: the index leads to the chain's root, the visible version is
-- further down the chain, and the hint must name the root (a fetch
-- cannot start down a chain), so the posting after next reads neither
-- index again
-- (twice: on a page VACUUM FULL packed, the first update may have to move
-- the row to another page; the second then finds room beside it)
UPDATE ledger.account_balance SET updated_at = updated_at
 WHERE account_id IN (SELECT id FROM ledger.account WHERE code IN ('rh-a2', 'rh-b'));
UPDATE ledger.account_balance SET updated_at = updated_at
 WHERE account_id IN (SELECT id FROM ledger.account WHERE code IN ('rh-a2', 'rh-b'));
UPDATE ledger.daily_balance SET balance = balance
 WHERE account_id IN (SELECT id FROM ledger.account WHERE code IN ('rh-a2', 'rh-b'));
UPDATE ledger.daily_balance SET balance = balance
 WHERE account_id IN (SELECT id FROM ledger.account WHERE code IN ('rh-a2', 'rh-b'));
SELECT ledger.transfer('rh-a2', 'rh-b', 1.00) IS NOT NULL AS posted_after_rewrite;
BEGIN;
SELECT index_scans('ledger.account_balance') AS b0, index_scans('ledger.daily_balance') AS d0 \gset
SELECT ledger.transfer('rh-a2', 'rh-b', 1.00) IS NOT NULL AS posted;
SELECT index_scans('ledger.account_balance') - :b0 AS balance_index_scans,
       index_scans('ledger.daily_balance') - :d0 AS daily_index_scans;
COMMIT;
SELECT ledger.balance('rh-a2') AS a2, ledger.balance('rh-b') AS b;

-- SERIALIZABLE skips hints (the index read takes the predicate locks)
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT index_scans('ledger.account_balance') AS b0 \gset
SELECT ledger.transfer('rh-a2', 'rh-b', 1.00) IS NOT NULL AS posted;
SELECT index_scans('ledger.account_balance') - :b0 > 0 AS balance_index_read;
COMMIT;

-- balances equal the journal, daily rows included
SELECT count(*) AS mismatches FROM ledger.reconcile();
SELECT a.code, b.balance, d.balance AS closing
  FROM ledger.account a JOIN ledger.account_balance b ON b.account_id = a.id
  JOIN LATERAL (SELECT balance FROM ledger.daily_balance WHERE account_id = a.id
                ORDER BY day DESC LIMIT 1) d ON true
 WHERE a.code LIKE 'rh-%' ORDER BY a.code;
