-- account_cache: postings resolve accounts from the backend's cache, and
-- every change to an account is seen by the next posting.  Lookups are
-- counted as scans of ledger.account's indexes, so row hints (which find
-- a row without its index: test row_hints) are off here.
SET ledger.row_hints = off;
SELECT ledger.create_asset('CHF', 2);
SELECT ledger.create_account('c-world', 'CHF', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('c-a', 'CHF') > 0 AS ok;
SELECT ledger.create_account('c-b', 'CHF') > 0 AS ok;
SELECT ledger.transfer('c-world', 'c-a', 100.00) IS NOT NULL AS funded;

-- a cached posting reads ledger.account not at all; with the cache off it
-- looks the accounts up.  (Scans of ledger.account and its indexes counted
-- by this backend and not yet sent to the statistics, before and after, in
-- one transaction.)  Accounts are cached by the postings that use them:
-- c-b is, once this posting has looked it up.
SELECT ledger.transfer('c-world', 'c-b', 1.00) IS NOT NULL AS warm;
CREATE FUNCTION account_scans() RETURNS bigint LANGUAGE sql AS
$$SELECT sum(pg_stat_get_xact_numscans(r))::bigint
    FROM (SELECT 'ledger.account'::regclass::oid AS r
          UNION ALL
          SELECT indexrelid FROM pg_index WHERE indrelid = 'ledger.account'::regclass) s$$;
BEGIN;
SELECT account_scans() AS s0 \gset
SELECT ledger.transfer('c-a', 'c-b', 1.00) IS NOT NULL AS posted, account_scans() - :s0 AS scans;
COMMIT;
SET ledger.account_cache_size = 0;
BEGIN;
SELECT account_scans() AS s0 \gset
SELECT ledger.transfer('c-a', 'c-b', 1.00) IS NOT NULL AS posted, account_scans() - :s0 > 0 AS looked_up;
COMMIT;
RESET ledger.account_cache_size;

-- raising the floor (an operator's UPDATE) applies to the next posting
UPDATE ledger.account SET min_balance = 90 WHERE code = 'c-a';
SELECT try($$SELECT ledger.transfer('c-a', 'c-b', 8.01)$$);
SELECT ledger.transfer('c-a', 'c-b', 8.00) IS NOT NULL AS down_to_the_new_floor;
UPDATE ledger.account SET min_balance = NULL WHERE code = 'c-a';
SELECT ledger.transfer('c-a', 'c-b', 200.00) IS NOT NULL AS unbounded_now;
UPDATE ledger.account SET min_balance = 0 WHERE code = 'c-a';
SELECT try($$SELECT ledger.transfer('c-a', 'c-b', 0.01)$$);
SELECT ledger.transfer('c-world', 'c-a', 300.00) IS NOT NULL AS refunded;

-- without the announcing trigger, accounts are not cached
ALTER TABLE ledger.account DISABLE TRIGGER account_changed;
BEGIN;
SELECT account_scans() AS s0 \gset
SELECT ledger.transfer('c-world', 'c-a', 1.00) IS NOT NULL AS posted, account_scans() - :s0 > 0 AS looked_up;
COMMIT;
ALTER TABLE ledger.account ENABLE ALWAYS TRIGGER account_changed;
SELECT ledger.transfer('c-world', 'c-a', 1.00) IS NOT NULL AS warm;
BEGIN;
SELECT account_scans() AS s0 \gset
SELECT ledger.transfer('c-world', 'c-a', 1.00) IS NOT NULL AS posted, account_scans() - :s0 AS scans;
COMMIT;

-- an account created by a transaction that rolls back is not remembered
BEGIN;
SELECT ledger.create_account('c-gone', 'CHF') > 0 AS ok;
SELECT ledger.transfer('c-world', 'c-gone', 5.00) IS NOT NULL AS posted;
SELECT ledger.transfer('c-world', 'c-gone', 5.00) IS NOT NULL AS posted_again;
ROLLBACK;
SELECT try($$SELECT ledger.transfer('c-world', 'c-gone', 5.00)$$);
-- nor one rolled back to a savepoint
BEGIN;
SAVEPOINT s;
SELECT ledger.create_account('c-gone', 'CHF') > 0 AS ok;
SELECT ledger.transfer('c-world', 'c-gone', 5.00) IS NOT NULL AS posted;
ROLLBACK TO SAVEPOINT s;
SELECT try($$SELECT ledger.transfer('c-world', 'c-gone', 5.00)$$);
COMMIT;
-- created again for real, it gets a new id and postings find it
SELECT ledger.create_account('c-gone', 'CHF') > 0 AS ok;
SELECT ledger.transfer('c-world', 'c-gone', 5.00) IS NOT NULL AS posted;
SELECT ledger.transfer('c-world', 'c-gone', 5.00) IS NOT NULL AS posted_cached;
SELECT ledger.balance('c-gone') AS gone;

-- legs naming one account twice collapse into one balance change
SELECT ledger.post('[{"account": "c-a", "amount": "-1.00"}, {"account": "c-a", "amount": "-2.00"},
                     {"account": "c-b", "amount": "3.00"}]') IS NOT NULL AS posted;
-- a cache of one account works, by lookups
SET ledger.account_cache_size = 1;
SELECT ledger.transfer('c-b', 'c-a', 1.00) IS NOT NULL AS posted;
SELECT ledger.transfer('c-a', 'c-b', 1.00) IS NOT NULL AS posted;
RESET ledger.account_cache_size;
-- unknown accounts are still refused, naming the code
SELECT try($$SELECT ledger.transfer('c-a', 'c-nobody', 1.00)$$);

SELECT code, balance FROM ledger.account_overview WHERE code LIKE 'c-%' ORDER BY code;
SELECT count(*) AS mismatches FROM ledger.reconcile(repair => false);
DROP FUNCTION account_scans();
