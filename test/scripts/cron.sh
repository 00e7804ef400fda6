#!/usr/bin/env bash
# cron.sh: ledger.schedule_reconciliation against a real pg_cron.  The test
# cluster preloads pg_cron with cron.database_name = 'ledger_cron'.  A
# tampered balance must be repaired by the scheduled run, the run must show
# as succeeded in cron.job_run_details, and a LISTEN session must receive
# the alert.  Takes up to ~70 s: pg_cron 1.4 schedules by the minute.
set -euo pipefail
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d ledger_cron "$@"; }
fail() { echo "cron: FAIL: $*" >&2; exit 1; }

psql -c "CREATE EXTENSION IF NOT EXISTS pg_cron" -c "DROP EXTENSION IF EXISTS ledger CASCADE" \
	-c "CREATE EXTENSION ledger"
psql >/dev/null <<'SQL'
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
[ "$job1" = "$job2" ] || fail "rescheduling created job $job2 besides $job1"
[ "$(psql -At -c "SELECT count(*) FROM cron.job WHERE jobname = 'ledger-reconcile'")" = 1 ] ||
	fail "expected exactly one ledger-reconcile job"
[ "$(psql -At -c "SELECT schedule FROM cron.job WHERE jobname = 'ledger-reconcile'")" = '* * * * *' ] ||
	fail "schedule was not replaced"

# listen for alerts while pg_cron runs the job
listen_out=$(mktemp)
psql -c "LISTEN ledger_alerts" -c "SELECT pg_sleep(75)" > "$listen_out" 2>&1 &
listener=$!

ok=""
for _ in $(seq 1 45); do
	status=$(psql -At -c "SELECT d.status FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	                       WHERE j.jobname = 'ledger-reconcile' ORDER BY d.runid DESC LIMIT 1")
	if [ "$status" = succeeded ]; then ok=1; break; fi
	[ "$status" = failed ] && fail "job failed: $(psql -At -c "SELECT return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 1")"
	sleep 2
done
[ -n "$ok" ] || fail "pg_cron did not run the job within 90 s"
echo "cron: job ran: $(psql -At -c "SELECT command || ' -> ' || return_message FROM cron.job_run_details ORDER BY runid DESC LIMIT 1")"

[ "$(psql -At -c "SELECT ledger.balance('cron-a')")" = 25.00 ] || fail "balance not repaired"
[ "$(psql -At -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] ||
	fail "a second reconciliation still finds mismatches"
[ "$(psql -At -c "SELECT mismatches || '/' || repaired FROM ledger.reconciliation_run ORDER BY id LIMIT 1")" = 1/1 ] ||
	fail "the scheduled run was not recorded with 1 mismatch repaired"
[ "$(psql -At -c "SELECT count(*) FROM ledger.alert WHERE account = 'cron-a' AND owner_id = 'owner-cron' AND kind = 'balance_mismatch'")" = 1 ] ||
	fail "no alert row for cron-a"

# stop pg_cron from running again, then collect what the listener heard
[ "$(psql -At -c "SELECT ledger.unschedule_reconciliation()")" = t ] || fail "unschedule returned false"
[ "$(psql -At -c "SELECT ledger.unschedule_reconciliation()")" = f ] || fail "second unschedule returned true"
wait "$listener" || true
grep -q 'Asynchronous notification "ledger_alerts" with payload ".*\\"kind\\": \\"balance_mismatch\\".*\\"account\\": \\"cron-a\\".*\\"owner_id\\": \\"owner-cron\\"' "$listen_out" ||
	grep -q 'Asynchronous notification "ledger_alerts" with payload .*cron-a.*owner-cron' "$listen_out" ||
	{ cat "$listen_out"; fail "the LISTEN session received no alert for cron-a"; }
echo "cron: NOTIFY received: $(grep -m1 -o 'payload ".*"' "$listen_out" | cut -c1-160)"
psql -c "DROP EXTENSION ledger CASCADE"
rm -f "$listen_out"
