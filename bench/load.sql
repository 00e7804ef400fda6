-- bench/load.sql: the data every workload runs against.  Run by bench/run.sh
-- in database ledger_bench after CREATE EXTENSION ledger.
--   bench.baseline          the plain table of baseline_insert
--   USD, EUR                assets, scale 2
--   world-usd, world-eur    unbounded sources (min_balance NULL)
--   merchant                USD, the credited account of hot_credit
--   hot-source              USD, min_balance 0, funded with 10^12: hot_debit
--   merchant-hot            as merchant, switched to hot mode: hot_credit_hot
--   hot-source-hot          as hot-source, switched to hot mode: hot_debit_hot
--   acct-1 .. acct-10000    USD, 1,000,000.00 each
--   eur-1 .. eur-10000      EUR, 1,000,000.00 each (post_4legs)
\set ON_ERROR_STOP 1
CREATE SCHEMA bench;
CREATE TABLE bench.baseline (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    amount      numeric NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_asset('EUR', 2);
SELECT ledger.create_account('world-usd', 'USD', min_balance => NULL);
SELECT ledger.create_account('world-eur', 'EUR', min_balance => NULL);
SELECT ledger.create_account('merchant', 'USD');
SELECT ledger.create_account('hot-source', 'USD');
SELECT ledger.transfer('world-usd', 'hot-source', 1000000000000.00);
SELECT ledger.create_account('merchant-hot', 'USD');
SELECT ledger.create_account('hot-source-hot', 'USD');
SELECT ledger.transfer('world-usd', 'hot-source-hot', 1000000000000.00);

-- Commit every 1,000 accounts so the world rows' update chains are pruned.
DO $$
BEGIN
    FOR i IN 1..10000 LOOP
        PERFORM ledger.create_account('acct-' || i, 'USD');
        PERFORM ledger.transfer('world-usd', 'acct-' || i, 1000000.00);
        PERFORM ledger.create_account('eur-' || i, 'EUR');
        PERFORM ledger.transfer('world-eur', 'eur-' || i, 1000000.00);
        IF i % 1000 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$$;

-- Switch merchant-hot and hot-source-hot to hot mode.  That needs the fold
-- worker to have loaded the escrow (fold_worker_status().ready).  The worker
-- runs in ledger.database = 'ledger_bench', which run.sh creates after the
-- server has started, so it may connect a second or so later: wait up to
-- 60 s (set_account_mode itself waits only ledger.hot_wait_ms).  If hot mode
-- cannot be set up, a warning or error is printed and the load goes on:
-- run.sh then skips the *_hot workloads and says why in the report.
DO $$
DECLARE
    t0 timestamptz := clock_timestamp();
    st record;
BEGIN
    IF to_regprocedure('ledger.fold_worker_status()') IS NULL THEN
        RAISE WARNING 'this ledger version has no hot accounts';
        RETURN;
    END IF;
    LOOP
        SELECT * INTO st FROM ledger.fold_worker_status();
        EXIT WHEN st.ready;
        IF clock_timestamp() - t0 > interval '60 seconds' THEN
            RAISE WARNING 'ledger fold worker not ready after 60 s: state %, pid %, ready %',
                st.state, st.pid, st.ready
                USING HINT = 'Are ledger in shared_preload_libraries and ledger.database = ''ledger_bench''? See the server log.';
            RETURN;
        END IF;
        PERFORM pg_sleep(0.2);
    END LOOP;
    RAISE NOTICE 'fold worker ready after % s (state %, pid %)',
        round(extract(epoch FROM clock_timestamp() - t0)::numeric, 1), st.state, st.pid;
END
$$;
\set ON_ERROR_STOP 0
SELECT ledger.set_account_mode('merchant-hot', 'hot');
SELECT ledger.set_account_mode('hot-source-hot', 'hot');
\set ON_ERROR_STOP 1

VACUUM ANALYZE;
CHECKPOINT;
SELECT count(*) AS accounts FROM ledger.account;
