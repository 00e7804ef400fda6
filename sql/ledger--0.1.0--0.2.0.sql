/* ledger--0.1.0--0.2.0.sql: corrections and checks — invalidation, balance
 * rebuilds, reconciliation, alerts, pg_cron scheduling */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.2.0'" to load this file. \quit

/*
 * Alerts: what reconciliation and forced invalidations tell operators.
 * Append-only but for acknowledgement (acknowledged_at NULL -> a time).
 */
CREATE TABLE ledger.alert (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT now(),
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    kind            text NOT NULL,
    account_id      bigint,
    account         text,
    owner_id        text,
    details         jsonb NOT NULL DEFAULT '{}',
    acknowledged_at timestamptz,
    acknowledged_by text
);
CREATE INDEX alert_open_idx ON ledger.alert (created_at) WHERE acknowledged_at IS NULL;
COMMENT ON TABLE ledger.alert IS
    'Alerts for applications and operators to poll; each is also sent as NOTIFY ledger_alerts. Append-only except acknowledgement.';

CREATE TRIGGER alert_append_only
    BEFORE UPDATE OR DELETE ON ledger.alert
    FOR EACH ROW EXECUTE FUNCTION ledger.guard_append_only('acknowledged_at', 'acknowledged_by');
CREATE TRIGGER alert_no_truncate
    BEFORE TRUNCATE ON ledger.alert
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_append_only();
ALTER TABLE ledger.alert ENABLE ALWAYS TRIGGER alert_append_only;
ALTER TABLE ledger.alert ENABLE ALWAYS TRIGGER alert_no_truncate;

/*
 * Reconciliation runs and what each found.
 */
CREATE TABLE ledger.reconciliation_run (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    repair           boolean NOT NULL,
    accounts_checked integer,
    mismatches       integer,
    repaired         integer
);
COMMENT ON TABLE ledger.reconciliation_run IS
    'One row per ledger.reconcile() call: when, how many accounts were checked, mismatches found and repaired.';

CREATE TABLE ledger.reconciliation_mismatch (
    run_id      bigint NOT NULL REFERENCES ledger.reconciliation_run (id),
    account_id  bigint NOT NULL,
    kind        text NOT NULL,
    day         date,
    expected    numeric,
    actual      numeric,
    details     jsonb NOT NULL DEFAULT '{}',
    repaired    boolean NOT NULL
);
CREATE INDEX reconciliation_mismatch_run_idx ON ledger.reconciliation_mismatch (run_id);
COMMENT ON TABLE ledger.reconciliation_mismatch IS
    'Every mismatch a reconciliation run found, with the expected (journal) and actual (cached) values.';

/*
 * What the balances should be, computed from the non-invalidated journal.
 */
CREATE VIEW ledger.expected_balance AS
SELECT a.id AS account_id, coalesce(sum(j.amount), 0) AS balance
  FROM ledger.account a
  LEFT JOIN ledger.journal_entry j ON j.account_id = a.id AND NOT j.is_invalidated
 GROUP BY a.id;
COMMENT ON VIEW ledger.expected_balance IS
    'Each account''s balance as the sum of its non-invalidated journal entries.';

CREATE VIEW ledger.expected_daily_balance AS
SELECT account_id, day, debits, credits,
       sum(net) OVER (PARTITION BY account_id ORDER BY day) AS balance
  FROM (SELECT account_id, (created_at AT TIME ZONE 'UTC')::date AS day,
               coalesce(sum(-amount) FILTER (WHERE amount < 0), 0) AS debits,
               coalesce(sum(amount) FILTER (WHERE amount > 0), 0) AS credits,
               sum(amount) AS net
          FROM ledger.journal_entry
         WHERE NOT is_invalidated
         GROUP BY 1, 2) d;
COMMENT ON VIEW ledger.expected_daily_balance IS
    'Each account''s daily debits, credits and closing balance per UTC day with non-invalidated entries, from the journal.';

CREATE VIEW ledger.reconciliation_status AS
SELECT r.id, r.started_at, r.finished_at, r.finished_at - r.started_at AS duration,
       r.repair, r.accounts_checked, r.mismatches, r.repaired,
       (SELECT count(*) FROM ledger.alert WHERE acknowledged_at IS NULL) AS open_alerts
  FROM ledger.reconciliation_run r
 ORDER BY r.id DESC;
COMMENT ON VIEW ledger.reconciliation_status IS
    'Reconciliation runs, newest first, with the number of unacknowledged alerts.';

/*
 * API (C)
 */
CREATE FUNCTION ledger.invalidate(transaction_id uuid, reason text, force boolean DEFAULT false)
RETURNS TABLE (account text, balance_before numeric, balance_after numeric)
AS 'MODULE_PATHNAME', 'ledger_invalidate'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.invalidate(uuid, text, boolean) IS
    'Invalidates a whole transaction (its journal entries and token transactions) and rebuilds the balances of every touched account from the journal. Returns each account''s balance before and after.';

CREATE FUNCTION ledger.rebuild_balances(account text DEFAULT NULL)
RETURNS integer
AS 'MODULE_PATHNAME', 'ledger_rebuild_balances'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.rebuild_balances(text) IS
    'Rebuilds account_balance and daily_balance of one account (or all) from the journal; returns how many balance rows changed.';

CREATE FUNCTION ledger.reconcile(repair boolean DEFAULT true)
RETURNS TABLE (account text, kind text, day date, expected numeric, actual numeric, repaired boolean)
AS 'MODULE_PATHNAME', 'ledger_reconcile'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.reconcile(boolean) IS
    'Compares every account_balance and daily_balance row with the journal, records the run, alerts on each mismatch (table and NOTIFY ledger_alerts) and repairs it unless repair => false.';

CREATE FUNCTION ledger.acknowledge_alert(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ledger_acknowledge_alert'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.acknowledge_alert(bigint) IS
    'Marks an alert acknowledged; true if it was open, false if it was already acknowledged.';

/*
 * pg_cron scheduling: thin wrappers over cron.schedule / cron.unschedule.
 * pg_cron lives in one database (cron.database_name); the ledger must be
 * installed there for these to work.
 */
CREATE FUNCTION ledger.schedule_reconciliation(schedule text DEFAULT '15 3 * * *',
                                               repair boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF schedule IS NULL OR repair IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD011',
            MESSAGE = 'schedule and repair must not be NULL';
    END IF;
    IF to_regprocedure('cron.schedule(text,text,text)') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD017',
            MESSAGE = 'pg_cron is not installed in this database',
            DETAIL = format('Database %I has no extension pg_cron (1.4 or later).', current_database()),
            HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and run CREATE EXTENSION pg_cron.';
    END IF;
    RETURN cron.schedule('ledger-reconcile', schedule,
                         format('SELECT count(*) FROM ledger.reconcile(repair => %s)',
                                CASE WHEN repair THEN 'true' ELSE 'false' END));
END
$$;
COMMENT ON FUNCTION ledger.schedule_reconciliation(text, boolean) IS
    'Schedules ledger.reconcile with pg_cron under the job name ledger-reconcile (calling again replaces the schedule); returns the job id.';

CREATE FUNCTION ledger.unschedule_reconciliation()
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regprocedure('cron.unschedule(name)') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD017',
            MESSAGE = 'pg_cron is not installed in this database',
            DETAIL = format('Database %I has no extension pg_cron (1.4 or later).', current_database()),
            HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and run CREATE EXTENSION pg_cron.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM cron.job WHERE jobname = 'ledger-reconcile') THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule('ledger-reconcile');
END
$$;
COMMENT ON FUNCTION ledger.unschedule_reconciliation() IS
    'Removes the ledger-reconcile pg_cron job; false if there was none.';

REVOKE ALL ON ledger.alert, ledger.reconciliation_run, ledger.reconciliation_mismatch,
              ledger.expected_balance, ledger.expected_daily_balance,
              ledger.reconciliation_status FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.invalidate(uuid, text, boolean), ledger.rebuild_balances(text),
                       ledger.reconcile(boolean), ledger.acknowledge_alert(bigint),
                       ledger.schedule_reconciliation(text, boolean),
                       ledger.unschedule_reconciliation() FROM PUBLIC;
