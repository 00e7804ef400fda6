#!/usr/bin/env bash
# test/scripts/monitoring.sh: the monitoring kit (monitoring/) against a
# real prometheus-postgres-exporter (Debian package) on 127.0.0.1.
#
# A cluster with ledger and pg_cron preloaded; monitoring/grants.sql makes
# the exporter's login role.  The ledger is given known traffic: committed
# postings (single, batch items, through a hot account), postings rolled
# back (a transaction and a savepoint), refused debits (one call, one
# batch item), a hold, an outbox message, a tampered balance that
# reconcile finds and alerts on, and the scheduled reconciliation's job
# (its run recorded as pg_cron records one).  The exporter runs only the
# kit's queries; /metrics (curl) must show:
#   - ledger_postings_committed = the committed transactions, none of the
#     rolled-back ones, and ledger_postings_batch_items = the batch items;
#   - ledger_errors_raised{sqlstate="LD001"} = the refused debits;
#   - the open critical alert, the reconciliation's mismatch, the job
#     active with its last run succeeded, one reserved hold, the pending
#     outbox message, one hot account, the event metrics;
#   - no query failed (pg_exporter_last_scrape_error 0).
# The exporter's role reads no table of the ledger directly: it is refused
# ledger.alert and the cron tables show it nothing.
#
# Run by test/run.sh as root.
source "$LEDGER_ROOT/test/lib.sh"
test_begin monitoring
N=$DIR/node
EXPORTER=/usr/bin/prometheus-postgres-exporter
trap '[ -n "${EPID:-}" ] && kill "$EPID" 2>/dev/null; node_stop $N immediate' EXIT

need=()
for p in prometheus-postgres-exporter curl; do
	pkg_installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${need[@]}" >/dev/null 2>&1 || { fail "apt-get install ${need[*]}"; test_done; }
fi

node_init "$N" "shared_preload_libraries = 'pg_cron,ledger'
ledger.database = 'mon'
cron.database_name = 'mon'
max_worker_processes = 16" || { fail "initdb"; test_done; }
node_start "$N" || { fail "start: $(tail -3 "$N/server.log")"; test_done; }
PORT=$(node_port "$N")
runuser -u postgres -- "$PGBIN/createdb" -h "$N" -p "$PORT" mon
node_psql "$N" mon -c "CREATE EXTENSION pg_cron" -c "CREATE EXTENSION ledger" >/dev/null ||
	fail "creating the extensions"
node_psql "$N" mon -f "$LEDGER_ROOT/monitoring/grants.sql" >/dev/null || fail "monitoring/grants.sql"
node_ready "$N" mon || fail "the fold worker is not ready"

node_psql "$N" mon >/dev/null <<'SQL' || fail "traffic"
SET client_min_messages = warning;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account(c, 'USD') FROM unnest(ARRAY['a', 'b', 'hot']) c;
SELECT ledger.transfer('world', 'a', 100);
SELECT ledger.transfer('world', 'hot', 100);
SELECT ledger.set_account_mode('hot', 'hot');
SELECT ledger.transfer('a', 'hot', 5);
SELECT * FROM ledger.transfer_batch(ARRAY['a', 'a', 'a'], ARRAY['b', 'b', 'b'], ARRAY[1, 1000, 2]);
BEGIN;
SELECT ledger.transfer('a', 'b', 1);
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT ledger.transfer('a', 'b', 1);
ROLLBACK TO SAVEPOINT s;
SELECT ledger.transfer('a', 'b', 3);
COMMIT;
DO $$ BEGIN PERFORM ledger.transfer('b', 'a', 1000); EXCEPTION WHEN SQLSTATE 'LD001' THEN NULL; END $$;
SELECT ledger.hold('a', 10, 'b');
SELECT ledger.enqueue('mail', 'k', '{}');
-- a tampered balance: reconcile finds it, repairs it and raises a critical alert
ALTER TABLE ledger.account_balance DISABLE TRIGGER USER;
UPDATE ledger.account_balance SET balance = balance + 1
 WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'b');
SELECT count(*) FROM ledger.reconcile();
SELECT ledger.schedule_reconciliation('15 3 * * *');
-- the job's run, as pg_cron records one (pg_cron 1.4 runs by the minute)
INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status,
                                  return_message, start_time, end_time)
SELECT jobid, 1, 0, 'mon', 'postgres', command, 'succeeded', '1 row', now(), now()
  FROM cron.job WHERE jobname = 'ledger-reconcile';
SQL
committed=$(node_psql "$N" mon -c "SELECT count(*) FROM ledger.transaction")
refused=$(node_psql "$N" mon -c "SELECT value FROM ledger.counters() WHERE sqlstate = 'LD001'")
[ "$committed" = 6 ] && ok "6 postings committed (4 single, 2 batch items), 2 rolled back" ||
	fail "expected 6 committed transactions, found $committed"
[ "$refused" = 2 ] && ok "2 refused debits counted (a batch item and a caught call)" ||
	fail "LD001 counted $refused times, expected 2"

# the exporter's role: the kit's objects only
out=$(node_psql "$N" mon -c "SET ROLE ledger_exporter" -c "SELECT count(*) FROM ledger.alert" 2>&1)
grep -q "permission denied" <<<"$out" && ok "the exporter's role cannot read ledger.alert" ||
	fail "the exporter's role reads ledger.alert: $out"
out=$(node_psql "$N" mon -c "SET ROLE ledger_exporter" -c "SELECT count(*) FROM cron.job_run_details" 2>&1)
[ "$out" = 0 ] || grep -q "permission denied" <<<"$out" &&
	ok "pg_cron shows the exporter's role no run; ledger.scheduled_runs() does" ||
	fail "cron.job_run_details as the exporter: $out"

EPORT=$(free_port "$DIR")
DATA_SOURCE_NAME="host=$N port=$PORT user=ledger_exporter dbname=mon sslmode=disable" \
	runuser -u postgres --preserve-environment -- "$EXPORTER" --web.listen-address="127.0.0.1:$EPORT" \
	--extend.query-path="$LEDGER_ROOT/monitoring/queries.yaml" \
	--disable-default-metrics --disable-settings-metrics >"$DIR/exporter.log" 2>&1 &
EPID=$!
metrics=""
for i in $(seq 1 100); do
	metrics=$(curl -sf "http://127.0.0.1:$EPORT/metrics" 2>/dev/null) && grep -q '^ledger_postings_committed' <<<"$metrics" && break
	sleep 0.2
done
[ -n "$metrics" ] && ok "the exporter serves /metrics on 127.0.0.1:$EPORT" ||
	{ fail "no /metrics: $(tail -5 "$DIR/exporter.log")"; test_done; }
# without the server label the exporter adds to every metric
sed -E 's/server="[^"]*",?//; s/,\}/}/; s/\{\}//' <<<"$metrics" >"$DIR/metrics.txt"

# metric value by exact name with labels: value 'name{labels}'
value() { awk -v m="$1" '$1 == m { print $2 }' "$DIR/metrics.txt" | head -1; }
expect() {	# metric expected description
	local got
	got=$(value "$1")
	if [ -n "$got" ] && awk -v g="$got" -v e="$2" 'BEGIN { exit !(g + 0 == e + 0) }'; then
		ok "$3: $1 = $got"
	else
		fail "$3: $1 = '${got}', expected $2"
	fi
}
expect ledger_postings_committed "$committed" "committed postings only"
expect ledger_postings_batch_items 2 "batch items"
expect 'ledger_errors_raised{sqlstate="LD001"}' 2 "refused debits"
expect 'ledger_alerts_open{severity="critical"}' 1 "the reconcile alert"
expect ledger_reconciliation_last_mismatches 1 "the mismatch found"
expect ledger_reconciliation_last_repaired 1 "and repaired"
expect 'ledger_scheduled_active{jobname="ledger-reconcile",username="postgres"}' 1 "the scheduled job"
expect 'ledger_scheduled_last_succeeded{jobname="ledger-reconcile",username="postgres"}' 1 "its last run"
expect 'ledger_holds_count{state="reserved"}' 1 "the hold"
expect 'ledger_holds_remaining{state="reserved"}' 10 "what it holds"
expect 'ledger_outbox_pending{topic="mail"}' 1 "the outbox message"
expect ledger_hot_accounts 1 "hot accounts"
expect pg_exporter_last_scrape_error 0 "every query ran"
for m in ledger_hot_fold_lag_seconds ledger_hot_unfolded_entries ledger_events_lag_events \
	ledger_events_applied ledger_reconciliation_last_finished_timestamp_seconds; do
	[ -n "$(value "$m")" ] && ok "$m is exported" || fail "$m is missing"
done
if grep -qi "error" "$DIR/exporter.log"; then
	fail "the exporter logged errors: $(grep -i error "$DIR/exporter.log" | head -3)"
fi
node_psql "$N" mon -c "SELECT ledger.fold()" >/dev/null
check_invariants "$N" mon
test_done
