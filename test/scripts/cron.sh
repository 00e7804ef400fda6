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
# In the same minute, ledger.schedule_hold_expiry registers
# ledger.expire_holds(); before it runs, a reserved hold is past
# submit_within and a submitted one past confirm_within.  Checks:
#   - pg_cron runs ledger-expire-holds and it succeeds;
#   - the reserved hold is recorded expired (its money released), the
#     submitted one timed_out (its money still held), each on its
#     timeline; stale_holds() lists the timed-out one with its owner;
#   - a hold_timed_out alert names the account and its owner, and the
#     LISTEN session heard it;
#   - unschedule_hold_expiry returns true, then false.
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
SELECT ledger.create_account('cron-payer', 'USD', owner_id => 'owner-payer');
SELECT ledger.create_account('cron-psp', 'USD');
SELECT ledger.transfer('cron-world', 'cron-payer', 100);
SELECT ledger.hold('cron-payer', 30, 'cron-psp', external_ref => 'never-sent',
                   submit_within => '1 second');
SELECT ledger.mark_submitted(ledger.hold('cron-payer', 40, 'cron-psp', external_ref => 'sent-slow',
                                         confirm_within => '1 second'));
SQL


# scheduling twice replaces the schedule under one job name
job1=$(psql -At -c "SELECT ledger.schedule_reconciliation('0 4 * * *')")
job2=$(psql -At -c "SELECT ledger.schedule_reconciliation('* * * * *', repair => true)")
[ "$job1" = "$job2" ] && ok "rescheduling kept job $job1" || fail "rescheduling created job $job2 besides $job1"
[ "$(psql -At -c "SELECT count(*) FROM cron.job WHERE jobname = 'ledger-reconcile'")" = 1 ] &&
	ok "exactly one ledger-reconcile job" || fail "expected exactly one ledger-reconcile job"
[ "$(psql -At -c "SELECT schedule FROM cron.job WHERE jobname = 'ledger-reconcile'")" = '* * * * *' ] &&
	ok "the schedule was replaced" || fail "schedule was not replaced"

sleep 1.2   # both holds are past their deadlines before pg_cron's first run
hjob=$(psql -At -c "SELECT ledger.schedule_hold_expiry()")
[ -n "$hjob" ] && ok "hold expiry scheduled as job $hjob" || fail "schedule_hold_expiry returned nothing"

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
	succeeded) ok "job ran: $(psql -At -c "SELECT d.command || ' -> ' || d.return_message FROM cron.job_run_details d
	                                        JOIN cron.job j USING (jobid) WHERE j.jobname = 'ledger-reconcile'
	                                        ORDER BY d.runid DESC LIMIT 1")" ;;
	failed) fail "job failed: $(psql -At -c "SELECT d.return_message FROM cron.job_run_details d
	                                  JOIN cron.job j USING (jobid) WHERE j.jobname = 'ledger-reconcile'
	                                  ORDER BY d.runid DESC LIMIT 1")" ;;
	*) fail "pg_cron did not run the job within 90 s" ;;
esac

hstatus=
for _ in $(seq 1 30); do
	hstatus=$(psql -At -c "SELECT d.status FROM cron.job_run_details d JOIN cron.job j USING (jobid)
	                        WHERE j.jobname = 'ledger-expire-holds' ORDER BY d.runid DESC LIMIT 1")
	[ "$hstatus" = succeeded ] || [ "$hstatus" = failed ] && break
	sleep 2
done
[ "$hstatus" = succeeded ] && ok "ledger-expire-holds ran and succeeded" ||
	fail "ledger-expire-holds: ${hstatus:-did not run}"
# what a monitor sees of those runs: pg_cron's row-level security hides
# them from it, ledger.scheduled_runs() shows them
seen=$(psql -At -c "SET ROLE ledger_monitor" -c "SELECT string_agg(jobname || '=' || last_status, ' ' ORDER BY jobname)
                                               FROM ledger.scheduled_runs()" 2>&1)
[ "$seen" = "ledger-expire-holds=succeeded ledger-reconcile=succeeded" ] &&
	ok "ledger_monitor sees the runs through ledger.scheduled_runs(): $seen" ||
	fail "ledger.scheduled_runs() as ledger_monitor: $seen"
rows=$(psql -At -F '|' <<'SQL'
SELECT 'the unsent hold is recorded expired', recorded_state = 'expired' AND remaining = 0, recorded_state
  FROM ledger.holds WHERE external_ref = 'never-sent';
SELECT 'the sent hold is recorded timed_out and still held', recorded_state = 'timed_out' AND remaining = 40,
       recorded_state || ' ' || remaining
  FROM ledger.holds WHERE external_ref = 'sent-slow';
SELECT 'the payer keeps 40 held', held_exclusive = 40 AND available = 60,
       format('held %s, available %s', held_exclusive, available)
  FROM ledger.account_overview WHERE code = 'cron-payer';
SELECT 'both moves are on the timelines', count(*) = 2, string_agg(event, ',' ORDER BY event)
  FROM ledger.hold_timeline WHERE event IN ('expired', 'timed_out');
SELECT 'stale_holds lists the timed-out hold with its owner',
       count(*) = 1 AND bool_and(owner_id = 'owner-payer' AND external_ref = 'sent-slow'),
       string_agg(account || '/' || owner_id || '/' || external_ref, ',')
  FROM ledger.stale_holds();
SELECT 'a hold_timed_out alert names the account and owner', count(*) = 1,
       count(*) || ' alerts'
  FROM ledger.alert WHERE kind = 'hold_timed_out' AND account = 'cron-payer' AND owner_id = 'owner-payer';
SQL
)
check_rows <<<"$rows"
[ "$(psql -At -c "SELECT ledger.unschedule_hold_expiry()")" = t ] && ok "unschedule_hold_expiry returned true" ||
	fail "unschedule_hold_expiry returned false"
[ "$(psql -At -c "SELECT ledger.unschedule_hold_expiry()")" = f ] && ok "a second unschedule_hold_expiry returned false" ||
	fail "second unschedule_hold_expiry returned true"

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
if grep -q 'Asynchronous notification "ledger_alerts" with payload .*hold_timed_out.*cron-payer.*owner-payer' "$listen_out"; then
	ok "NOTIFY received for the timed-out hold"
else
	fail "the LISTEN session received no hold_timed_out alert"
fi
psql -c "DROP EXTENSION ledger CASCADE"
rm -f "$listen_out"
test_done
