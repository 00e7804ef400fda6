/* ledger 0.13.0 -> 0.14.0: the shared account cache (src/sharedcache.c) */
\echo Use "ALTER EXTENSION ledger UPDATE TO '0.14.0'" to load this file. \quit

CREATE FUNCTION ledger.shared_account_cache(OUT capacity bigint, OUT entries bigint,
                                            OUT puts bigint, OUT emptied bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'ledger_shared_account_cache'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ledger.shared_account_cache() IS
    'The accounts every backend resolved, kept in shared memory (ledger preloaded; zero otherwise): capacity (ledger.shared_account_cache_size), entries now (approximate while postings run), puts and times the full table was emptied since the server started.';

REVOKE ALL ON FUNCTION ledger.shared_account_cache() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.shared_account_cache()
    TO ledger_monitor, ledger_operator, ledger_auditor;
