/* ledger 0.11.0 -> 0.12.0: monitoring.  Counters of postings and of LD
 * errors by SQLSTATE (src/counters.c), the open alerts and the holds by
 * state for monitors that may not read those tables, the runs of the
 * ledger's pg_cron jobs (pg_cron's row-level security hides them from
 * other roles), and the structured facts line (README, "Errors") on the
 * errors the SQL wrappers raise.  The library of 0.12.0 also adds that
 * line to every error it raises, and runs batches on running balances. */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.12.0'" to load this file. \quit

CREATE FUNCTION ledger.counters(OUT counter text, OUT sqlstate text, OUT value bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ledger_counters'
LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ledger.counters() IS
    'Server-wide counters since the server started (ledger preloaded; zero otherwise): postings committed, batch_items among them, and raised: LD errors raised, one row per SQLSTATE seen (LD001 = refused debits).';

CREATE VIEW ledger.open_alerts AS
SELECT severity, kind, count(*) AS alerts, min(created_at) AS oldest
  FROM ledger.alert
 WHERE acknowledged_at IS NULL
 GROUP BY severity, kind;
COMMENT ON VIEW ledger.open_alerts IS
    'Unacknowledged alerts by severity and kind, with the oldest; for monitors that may not read ledger.alert.';

CREATE VIEW ledger.hold_stats AS
SELECT state, count(*) AS holds, coalesce(sum(remaining), 0) AS remaining
  FROM ledger.hold
 GROUP BY state;
COMMENT ON VIEW ledger.hold_stats IS
    'Holds by recorded state, with what they still hold (amounts summed across assets: a monitoring figure); for monitors that may not read ledger.hold.';

CREATE FUNCTION ledger.scheduled_runs()
RETURNS TABLE (jobname text, username text, schedule text, active boolean, last_start timestamptz,
               last_end timestamptz, last_status text, last_message text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    /*
     * Only pg_cron's own tables: this runs as the extension's owner, so
     * relations someone else named cron.job or cron.job_run_details (a
     * view calling their function) must never be read.
     */
    IF (SELECT count(*)
          FROM pg_depend d
          JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_cron'
          JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'r'
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_extension'::regclass
           AND d.deptype = 'e'
           AND d.objid IN (to_regclass('cron.job'), to_regclass('cron.job_run_details'))) <> 2 THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE
        'SELECT j.jobname::text, j.username::text, j.schedule::text, j.active, r.start_time, r.end_time,
                r.status::text, r.return_message::text
           FROM cron.job j
           LEFT JOIN LATERAL (SELECT d.start_time, d.end_time, d.status, d.return_message
                                FROM cron.job_run_details d
                               WHERE d.jobid = j.jobid
                               ORDER BY d.runid DESC LIMIT 1) r ON true
          WHERE j.jobname IN (''ledger-reconcile'', ''ledger-expire-holds'')
          ORDER BY j.jobname, j.username';
END
$$;
COMMENT ON FUNCTION ledger.scheduled_runs() IS
    'The ledger''s pg_cron jobs (ledger-reconcile, ledger-expire-holds), one row per job and owning user, and their last run: start, end, status and message. pg_cron''s row-level security shows job_run_details only to the job''s owner; this function shows these jobs to monitors. It reads cron.job and cron.job_run_details only when they are the pg_cron extension''s own tables; no rows otherwise.';

REVOKE ALL ON FUNCTION ledger.counters(), ledger.scheduled_runs() FROM PUBLIC;
REVOKE ALL ON ledger.open_alerts, ledger.hold_stats FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.counters(), ledger.scheduled_runs()
    TO ledger_monitor, ledger_operator, ledger_auditor;
GRANT SELECT ON ledger.open_alerts, ledger.hold_stats
    TO ledger_monitor, ledger_operator, ledger_auditor;

/* the facts line on the errors of the SQL wrappers */
CREATE OR REPLACE FUNCTION ledger.require_pg_cron()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regprocedure('cron.schedule(text,text,text)') IS NULL
       OR to_regprocedure('cron.unschedule(name)') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD017',
            MESSAGE = 'pg_cron is not installed in this database',
            DETAIL = format('Database %I has no extension pg_cron (1.4 or later).', current_database())
                     || E'\n' || jsonb_build_object('sqlstate', 'LD017', 'database', current_database())::text,
            HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and run CREATE EXTENSION pg_cron.';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION ledger.schedule_reconciliation(schedule text DEFAULT '15 3 * * *',
                                                          repair boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF schedule IS NULL OR repair IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD011',
            MESSAGE = 'schedule and repair must not be NULL',
            DETAIL = jsonb_build_object('sqlstate', 'LD011', 'argument',
                                        CASE WHEN schedule IS NULL THEN 'schedule' ELSE 'repair' END)::text;
    END IF;
    PERFORM ledger.require_pg_cron();
    RETURN cron.schedule('ledger-reconcile', schedule,
                         format('SELECT count(*) FROM ledger.reconcile(repair => %s)',
                                CASE WHEN repair THEN 'true' ELSE 'false' END));
END
$$;

CREATE OR REPLACE FUNCTION ledger.schedule_hold_expiry(schedule text DEFAULT '* * * * *')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF schedule IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD011',
            MESSAGE = 'schedule must not be NULL',
            DETAIL = jsonb_build_object('sqlstate', 'LD011', 'argument', 'schedule')::text;
    END IF;
    PERFORM ledger.require_pg_cron();
    RETURN cron.schedule('ledger-expire-holds', schedule, 'SELECT ledger.expire_holds()');
END
$$;

/* batch results carry each refused item's structured facts */
DROP FUNCTION ledger.transfer_batch(text[], text[], numeric[], text[], jsonb[], boolean);
DROP FUNCTION ledger.post_batch(jsonb, boolean);

CREATE FUNCTION ledger.transfer_batch(from_accounts text[], to_accounts text[], amounts numeric[],
                                      idempotency_keys text[] DEFAULT NULL,
                                      metadata jsonb[] DEFAULT NULL,
                                      atomic boolean DEFAULT false)
RETURNS TABLE (item integer, result text, message text, transaction_id uuid, facts jsonb)
AS 'MODULE_PATHNAME', 'ledger_transfer_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.transfer_batch(text[], text[], numeric[], text[], jsonb[], boolean) IS
    'Applies transfer i = (from_accounts[i], to_accounts[i], amounts[i], idempotency_keys[i], metadata[i]) in input order; one row per item: result ''ok'' with the transaction id, or the item''s LD SQLSTATE, message and structured facts. atomic: the first refusal fails the whole call and nothing is written; otherwise a refused item is skipped and the others stand.';

CREATE FUNCTION ledger.post_batch(postings jsonb, atomic boolean DEFAULT false)
RETURNS TABLE (item integer, result text, message text, transaction_id uuid, facts jsonb)
AS 'MODULE_PATHNAME', 'ledger_post_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.post_batch(jsonb, boolean) IS
    'Applies postings [{"legs": [...], "idempotency_key": ..., "metadata": {...}}, ...] in input order, each as ledger.post would; one row per item, as ledger.transfer_batch.';

REVOKE ALL ON FUNCTION ledger.transfer_batch(text[], text[], numeric[], text[], jsonb[], boolean),
                       ledger.post_batch(jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.transfer_batch(text[], text[], numeric[], text[], jsonb[], boolean),
                          ledger.post_batch(jsonb, boolean) TO ledger_writer;
