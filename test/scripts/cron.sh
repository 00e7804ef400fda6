#!/usr/bin/env bash
# test/scripts/cron.sh: ledger.schedule_reconciliation against a real
# pg_cron.  The test cluster preloads pg_cron with cron.database_name =
# 'ledger_cron'; this script uses that database of the shared cluster.
#
# A balance is tampered with, then reconciliation is scheduled twice (the
# second call replaces the first under one job name, every minute, with
# repair) while a LISTEN session waits for alerts.  Checks:
#   - rescheduling keeps one ledger-reconcile job, with the new schedule;
#   - pg_cron runs the job and cron.job_run_details shows it succeeded;
#   - the balance is repaired, a second reconcile(repair => false) finds
#     nothing, the run is recorded with 1 mismatch repaired, and an alert
#     row names the account and its owner;
#   - the invariants of test/invariants.sql hold after the repair;
#   - unschedule returns true, then false;
#   - the LISTEN session received the alert (NOTIFY ledger_alerts).
# Takes up to ~70 s: pg_cron 1.4 schedules by the minute.
#
# Run by test/run.sh as root with PGHOST (the shared cluster's directory),
# PGPORT, PGBIN, LEDGER_ROOT and WORK set.  Drops the extension at the end.
source "$LEDGER_ROOT/test/lib.sh"
set +e
TEST_NAME=cron
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d ledger_cron "$@"; }

psql -c "CREATE EXTENSION IF NOT EXISTS pg_cron" -c "DROP EXTENSION IF EXISTS ledger CASCADE" \
	-c "CREATE EXTENSION ledger" || { echo "cron: FAIL: creating the extensions" >&2; exit 1; }
psql >/dev/null <<'SQL' || { echo "cron: FAIL: setup" >&2; exit 1; }
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('cron-world', 'USD', min_balance => NULL);
SELECT ledger.create_account('cron-a', 'USD', owner_id => 'owner-cron');
SELECT ledger.transfer('cron-world', 'cron-a', 25);
UPDATE ledger.account_balance SET balance = 999
 WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'cron-a');
SQL


# scheduling twice replaces the schedule under one job name
job1=$(psql -At -c "SELECT ledger.schedule_reconciliation('0 4 * * *')")
job2=$(psql -At -c "SELECT ledger.schedule_reconciliation('* * * * *', repair => true)")
[ "$job1" = "$job2" ] && ok "rescheduling kept job $job1" || fail "rescheduling created job $job2 besides $job1"
[ "$(psql -At -c "SELECT count(*) FROM cron.job WHERE jobname = 'ledger-reconcile'")" = 1 ] &&
	ok "exactly one ledger-reconcile job" || fail "expected exactly one ledger-reconcile job"
[ "$(psql -At -c "SELECT schedule FROM cron.job WHERE jobname = 'ledger-reconcile'")" = '* * * * *' ] &&
	ok "the schedule was replaced" || fail "schedule was not replaced"

# listen for alerts while pg_cron runs the job
listen_out=$(mktemp)
psql -c "LISTEN ledger_alerts" -c "SELECT pg_sleep(75)" > "$listen_out" 2>&1 &
listener=$!

status=
for _ in $(seq 1 45); do
	status=$(psql -At -c "SELECT d.status FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	                       WHERE j.jobname = 'ledger-reconcile' ORDER BY d.runid DESC LIMIT 1")
	[ "$status" = succeeded ] || [ "$status" = failed ] && break
	sleep 2
done
case $status in
	succeeded) ok "job ran: $(psql -At -c "SELECT command || ' -> ' || return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 1")" ;;
	failed) fail "job failed: $(psql -At -c "SELECT return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 1")" ;;
	*) fail "pg_cron did not run the job within 90 s" ;;
esac

[ "$(psql -At -c "SELECT ledger.balance('cron-a')")" = 25.00 ] && ok "the balance was repaired" ||
	fail "balance not repaired"
[ "$(psql -At -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	ok "a second reconciliation finds nothing" || fail "a second reconciliation still finds mismatches"
[ "$(psql -At -c "SELECT mismatches || '/' || repaired FROM ledger.reconciliation_run ORDER BY id LIMIT 1")" = 1/1 ] &&
	ok "the scheduled run was recorded with 1 mismatch repaired" ||
	fail "the scheduled run was not recorded with 1 mismatch repaired"
[ "$(psql -At -c "SELECT count(*) FROM ledger.alert WHERE account = 'cron-a' AND owner_id = 'owner-cron' AND kind = 'balance_mismatch'")" = 1 ] &&
	ok "an alert row for cron-a and its owner" || fail "no alert row for cron-a"
check_invariants "$PGHOST" ledger_cron "after the repair: invariants"

# stop pg_cron from running again, then collect what the listener heard
[ "$(psql -At -c "SELECT ledger.unschedule_reconciliation()")" = t ] && ok "unschedule returned true" ||
	fail "unschedule returned false"
[ "$(psql -At -c "SELECT ledger.unschedule_reconciliation()")" = f ] && ok "a second unschedule returned false" ||
	fail "second unschedule returned true"
wait "$listener"
if grep -q 'Asynchronous notification "ledger_alerts" with payload ".*\\"kind\\": \\"balance_mismatch\\".*\\"account\\": \\"cron-a\\".*\\"owner_id\\": \\"owner-cron\\"' "$listen_out" ||
	grep -q 'Asynchronous notification "ledger_alerts" with payload .*cron-a.*owner-cron' "$listen_out"; then
	ok "NOTIFY received: $(grep -m1 -o 'payload ".*"' "$listen_out" | cut -c1-160)"
else
	cat "$listen_out"
	fail "the LISTEN session received no alert for cron-a"
fi
psql -c "DROP EXTENSION ledger CASCADE"
rm -f "$listen_out"
test_done
