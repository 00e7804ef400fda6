/* ledger 0.8.0 -> 0.9.0: the role set, and debits only by the acting
 * owner (src/owner.c: settings ledger.acting_owner and
 * ledger.require_acting_owner; no SQL objects). */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.9.0'" to load this file. \quit

/*
 * Roles (cluster-wide, NOLOGIN), created when missing and never dropped
 * by the extension: grant them to login roles.  Every later script grants
 * its new objects to them, so the matrix stays exact (test/sql/roles.sql).
 *   ledger_writer    the posting API
 *   ledger_operator  corrections, reconciliation, modes, limits, alerts,
 *                    rates, reads
 *   ledger_manager   history and statistics of the owners granted to it
 *                    (the scoping comes in a later version: nothing yet)
 *   ledger_auditor   reads everything, changes nothing
 *   ledger_monitor   the views an exporter needs
 */
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['ledger_writer', 'ledger_operator', 'ledger_manager',
                             'ledger_auditor', 'ledger_monitor'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA ledger TO ledger_writer, ledger_operator, ledger_manager,
                                 ledger_auditor, ledger_monitor;

GRANT EXECUTE ON FUNCTION
    ledger.transfer(text, text, numeric, text, jsonb),
    ledger.post(jsonb, text, jsonb),
    ledger.balance(text),
    ledger.available_balance(text),
    ledger.hold(text, numeric, text, text, text, interval, interval, text, jsonb),
    ledger.mark_submitted(uuid, text),
    ledger.capture(uuid, numeric, text),
    ledger.void(uuid, text, text),
    ledger.append_event(text, text, jsonb, text),
    ledger.catch_up(text, interval),
    ledger.exchange(text, text, numeric, interval, interval, numeric, text, jsonb),
    ledger.enqueue(text, text, jsonb)
TO ledger_writer;

GRANT EXECUTE ON FUNCTION
    ledger.balance(text),
    ledger.available_balance(text),
    ledger.create_asset(text, integer),
    ledger.create_account(text, text, numeric, text, jsonb),
    ledger.invalidate(uuid, text, boolean),
    ledger.rebuild_balances(text),
    ledger.reconcile(boolean),
    ledger.acknowledge_alert(bigint),
    ledger.set_account_mode(text, text),
    ledger.set_account_limits(text, integer),
    ledger.fold(integer),
    ledger.hot_accounts(),
    ledger.fold_worker_status(),
    ledger.expire_holds(),
    ledger.stale_holds(),
    ledger.import_statement(text, jsonb),
    ledger.reconcile_external(text, timestamptz, timestamptz),
    ledger.apply_events(integer),
    ledger.event_horizon(),
    ledger.projection_lag(),
    ledger.event_worker_status(),
    ledger.outbox_retry(bigint),
    ledger.set_exchange_rate(text, text, numeric, timestamptz, text),
    ledger.set_exchange_accounts(text, text, text),
    ledger.check_rate_feeds()
TO ledger_operator;

GRANT EXECUTE ON FUNCTION
    ledger.balance(text),
    ledger.available_balance(text),
    ledger.hot_accounts(),
    ledger.fold_worker_status(),
    ledger.stale_holds(),
    ledger.event_horizon(),
    ledger.projection_lag(),
    ledger.event_worker_status()
TO ledger_auditor;

-- projection_lag reads ledger.event: with the definer's rights, like the
-- C status functions, so a monitor needs no SELECT on the events
ALTER FUNCTION ledger.projection_lag() SECURITY DEFINER;

-- the functions the monitoring views call (a view's functions run with
-- the rights of its user)
GRANT EXECUTE ON FUNCTION
    ledger.hot_accounts(),
    ledger.fold_worker_status(),
    ledger.event_horizon(),
    ledger.projection_lag(),
    ledger.event_worker_status()
TO ledger_monitor;

-- reading: operators and auditors everything, the monitor the operational views
GRANT SELECT ON ALL TABLES IN SCHEMA ledger TO ledger_operator, ledger_auditor;
GRANT SELECT ON ledger.hot_account_stats, ledger.reconciliation_status, ledger.event_worker,
                ledger.outbox_status, ledger.exchange_status
TO ledger_monitor;
