/* ledger--0.3.0--0.4.0.sql: the backend account cache — postings whose
 * accounts are cached skip their lookup statement */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.4.0'" to load this file. \quit

/*
 * Every backend caches the accounts its postings resolved.  An UPDATE of
 * ledger.account (set_account_mode, an operator changing min_balance)
 * announces itself to all of them through this trigger: it sends a
 * relcache invalidation of ledger.account, which each backend acts on at
 * its next transaction after the update commits.  ENABLE ALWAYS, so it
 * fires under session_replication_role = replica too; without it enabled
 * ALWAYS, backends do not cache accounts.
 */
CREATE FUNCTION ledger.account_changed()
RETURNS trigger
AS 'MODULE_PATHNAME', 'ledger_account_changed'
LANGUAGE C;
COMMENT ON FUNCTION ledger.account_changed() IS
    'Trigger: tells every backend''s account cache that ledger.account changed.';

CREATE TRIGGER account_changed
    AFTER UPDATE ON ledger.account
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.account_changed();
ALTER TABLE ledger.account ENABLE ALWAYS TRIGGER account_changed;
