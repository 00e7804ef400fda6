-- monitoring/grants.sql: a login role for prometheus-postgres-exporter.
-- Run as a superuser in the ledger's database, once (psql -v password=...):
--     psql -d ledger -v password="'...'" -f monitoring/grants.sql
-- ledger_monitor (created by CREATE EXTENSION ledger) may read the
-- operational views and call the status functions queries.yaml uses, and
-- nothing else: no balances, journal, accounts or alerts' contents.
-- ledger.scheduled_runs() shows the ledger's pg_cron jobs and their last
-- run, which pg_cron's row-level security hides from every role but the
-- job's owner.  pg_monitor is PostgreSQL's own role for the exporter's
-- default metrics (pg_stat_*), if you keep them on.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ledger_exporter') THEN
        CREATE ROLE ledger_exporter LOGIN;
    END IF;
END
$$;
\if :{?password}
ALTER ROLE ledger_exporter PASSWORD :password;
\endif
GRANT ledger_monitor, pg_monitor TO ledger_exporter;
ALTER ROLE ledger_exporter SET default_transaction_read_only = on;
ALTER ROLE ledger_exporter SET statement_timeout = '5s';
