/* ledger--0.4.0--0.5.0.sql: real deployments — backups keep the ledger,
 * and a change to one account costs other backends only that account */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.5.0'" to load this file. \quit

/*
 * The account cache is filled on demand and invalidated per account: the
 * trigger now fires per row, naming the account that changed (src/cache.c).
 * Only the columns a posting reads from the cache announce a change;
 * metadata and owner_id do not.  ENABLE ALWAYS, as before.
 */
DROP TRIGGER account_changed ON ledger.account;
CREATE TRIGGER account_changed
    AFTER UPDATE OF id, code, asset, min_balance, mode ON ledger.account
    FOR EACH ROW EXECUTE FUNCTION ledger.account_changed();
ALTER TABLE ledger.account ENABLE ALWAYS TRIGGER account_changed;
-- created after 0.1.0's blanket REVOKE: nobody needs to call it directly
REVOKE ALL ON FUNCTION ledger.account_changed() FROM PUBLIC;

/*
 * Backups: pg_dump writes the rows of these tables and the values of these
 * sequences, so a dump and restore keeps the whole ledger and ids go on
 * where they stopped.  ledger.fold_state (the fold worker's counters) is
 * created by CREATE EXTENSION and starts again at zero.
 */
SELECT pg_catalog.pg_extension_config_dump('ledger.asset', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.account', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.transaction', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.journal_entry', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.token_transaction', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.account_balance', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.daily_balance', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.hot_entry', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.alert', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.reconciliation_run', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.reconciliation_mismatch', '');
-- one call per statement: each call updates the extension's catalog row
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.account', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.journal_entry', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.token_transaction', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.alert', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.reconciliation_run', 'id')::regclass, '');
