#!/usr/bin/env bash
# test/scripts/hot_worker_kill.sh: the fold worker killed mid-round, again
# and again, under a hot load.
#
# Starts its own cluster (shared_preload_libraries = 'ledger', hot accounts
# served in database postgres).  Four hot accounts are funded (while cold)
# and switched to hot; then pgbench (8 clients, restarted whenever a crash
# ends it) posts transfers between a random hot account and a random cold
# one, in either direction: every posting has exactly one leg on a hot
# account, so each writes exactly one ledger.hot_entry row.  Meanwhile the
# fold worker is killed 6 times, each time in the middle of a round: a
# session locks the balance row of hot account 2, the worker folds
# account 1 and then waits for that lock, and is killed there:
#   - SIGTERM (4 times): the worker exits, its round rolls back, and it is
#     restarted after 1 s; the server does not restart and the escrow is
#     not reloaded (shared memory is intact);
#   - SIGKILL (2 times): the postmaster crash-restarts every process; the
#     new worker reloads the escrow from the tables.
# Afterwards, once the worker has emptied ledger.hot_entry:
#   - fold_state.folded_rows equals the number of hot_entry rows ever
#     written (journal entries on hot accounts, funding excluded): nothing
#     was folded twice or lost;
#   - the escrow serves all 4 hot accounts (state active);
#   - ledger.reconcile(repair => false) finds nothing;
#   - the invariants of test/invariants.sql hold: every balance equals its
#     journal sum, every asset and transaction nets to zero, floors, daily
#     rows equal the journal, and each hot account's escrow equals its
#     balance with nothing reserved or in flight;
#   - pgbench clients saw no error besides those of the crashes.
#
# Run by test/run.sh as root.  Exits 0 on success, 1 naming each failed
# check.  About 20 s.
source "$LEDGER_ROOT/test/lib.sh"
set +e
TEST_NAME=hot_worker_kill

KILLS=${WORKER_KILLS:-TERM KILL TERM TERM KILL TERM}
DIR=$(mktemp -d "${WORK:-/tmp}/hot_worker_kill.XXXXXX")
chmod 755 "$DIR"
STOP=$DIR/stop
LOAD=

cleanup() {
	touch "$STOP"
	[ -n "$LOAD" ] && { kill "$LOAD" 2>/dev/null; wait "$LOAD" 2>/dev/null; }
	cluster_stop
}

CLUSTER_CONF="shared_preload_libraries = 'ledger'
ledger.database = 'postgres'
max_connections = 40
restart_after_crash = on" cluster_start "$DIR/cluster" ||
	{ echo "hot_worker_kill: FAIL: could not start a cluster" >&2; exit 1; }
trap cleanup EXIT
LOG=$DIR/cluster/server.log
psql_db() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
log_count() { grep -c "$1" "$LOG"; }

# the worker's pid once it runs and the escrow is loaded; empty on timeout
worker_ready_pid() {
	local i pid
	for i in $(seq 1 300); do
		pid=$(psql_db -At -c "SELECT pid FROM ledger.fold_worker_status()
		                       WHERE ready AND state IN ('idle', 'folding') AND pid IS NOT NULL" 2>/dev/null)
		if [ -n "$pid" ] && [ "${1:-}" != "$pid" ]; then echo "$pid"; return; fi
		sleep 0.1
	done
}

psql_db >/dev/null <<'SQL' || { echo "hot_worker_kill: FAIL: setup failed" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('hk-world', 'USD', min_balance => NULL);
SELECT ledger.create_account('hk-hot-' || h, 'USD') FROM generate_series(1, 4) h;
SELECT ledger.create_account('hk-cold-' || c, 'USD', min_balance => NULL) FROM generate_series(1, 16) c;
SELECT ledger.transfer('hk-world', 'hk-hot-' || h, 1000000, metadata => '{"step": "fund"}')
  FROM generate_series(1, 4) h;
SELECT ledger.set_account_mode('hk-hot-' || h, 'hot') FROM generate_series(1, 4) h;
SQL

cat >"$DIR/load.sql" <<'EOF_SQL'
\set h random(1, 4)
\set c random(1, 16)
\set cents random(1, 10000)
\set dir random(0, 1)
\if :dir = 1
SELECT ledger.transfer('hk-hot-' || :h, 'hk-cold-' || :c, :cents * 0.01);
\else
SELECT ledger.transfer('hk-cold-' || :c, 'hk-hot-' || :h, :cents * 0.01);
\endif
EOF_SQL

# pgbench until the stop file appears; a crash ends a run, so start again
load_loop() {
	local n=0
	while [ ! -e "$STOP" ]; do
		n=$((n + 1))
		"$PGBIN/pgbench" -n -c 8 -j 2 -T 60 -f "$DIR/load.sql" postgres >"$DIR/pgbench.$n.log" 2>&1 &
		local pb=$!
		while kill -0 "$pb" 2>/dev/null && [ ! -e "$STOP" ]; do sleep 0.1; done
		kill -TERM "$pb" 2>/dev/null
		wait "$pb"
		[ -e "$STOP" ] || sleep 0.2
	done
}

rm -f "$STOP"
load_loop &
LOAD=$!
sleep 1

start=$(date +%s)
hot2=$(psql_db -At -c "SELECT id FROM ledger.account WHERE code = 'hk-hot-2'")
caught=0
k=0
for sig in $KILLS; do
	k=$((k + 1))
	pid=$(worker_ready_pid)
	[ -n "$pid" ] || { fail "kill $k: the fold worker is not running with the escrow loaded"; continue; }
	restarts=$(log_count 'all server processes terminated; reinitializing')
	loads=$(log_count 'ledger fold worker: hot accounts loaded')

	# let the load run and hot entries queue up, then hold hot account 2's
	# balance row so the worker stops in the middle of its next round
	sleep 1
	PGAPPNAME=hk-locker "$PGBIN/psql" -X -q -d postgres >/dev/null 2>&1 <<SQL &
BEGIN;
SELECT 1 FROM ledger.account_balance WHERE account_id = $hot2 FOR UPDATE;
SELECT pg_sleep(30);
SQL
	locker=$!
	blocked=
	for i in $(seq 1 50); do
		blocked=$(psql_db -At -c "SELECT count(*) FROM pg_stat_activity
		                           WHERE pid = $pid AND wait_event_type = 'Lock'")
		[ "$blocked" = 1 ] && break
		sleep 0.1
	done
	if [ "$blocked" = 1 ]; then caught=$((caught + 1)); else echo "hot_worker_kill: kill $k: worker not caught waiting"; fi
	folded_before=$(psql_db -At -c "SELECT folded_rows FROM ledger.fold_state")
	echo "hot_worker_kill: kill $k: SIG$sig worker $pid (waiting on a lock mid-round: $([ "$blocked" = 1 ] && echo yes || echo no))"
	kill -s "$sig" "$pid"
	if [ "$sig" = KILL ]; then
		for i in $(seq 1 100); do
			[ "$(log_count 'all server processes terminated; reinitializing')" -gt "$restarts" ] && break
			sleep 0.1
		done
	fi
	psql_db -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hk-locker'" \
		>/dev/null 2>&1
	wait "$locker" 2>/dev/null
	new=$(worker_ready_pid "$pid")
	if [ -z "$new" ]; then
		fail "kill $k: no fold worker came back within 30 s"
		continue
	fi
	r=$(log_count 'all server processes terminated; reinitializing')
	l=$(log_count 'ledger fold worker: hot accounts loaded')
	if [ "$sig" = TERM ]; then
		[ "$r" -eq "$restarts" ] && [ "$l" -eq "$loads" ] &&
			ok "kill $k: SIGTERM: worker $new took over; no server restart, escrow kept (not reloaded)" ||
			fail "kill $k: SIGTERM: expected no restart and no reload; restarts $restarts -> $r, loads $loads -> $l"
	else
		[ "$r" -gt "$restarts" ] && [ "$l" -gt "$loads" ] &&
			ok "kill $k: SIGKILL: crash-restart; worker $new reloaded the escrow" ||
			fail "kill $k: SIGKILL: expected a crash-restart and a reload; restarts $restarts -> $r, loads $loads -> $l"
	fi
done
[ "$caught" -ge 3 ] && ok "the worker was killed mid-round (waiting on a row lock) $caught of $k times" ||
	fail "the worker was caught mid-round only $caught of $k times"

# a few more seconds of load with the last worker, then stop
sleep 1
touch "$STOP"
wait "$LOAD"
LOAD=
echo "hot_worker_kill: load and kills took $(($(date +%s) - start)) s; $(ls "$DIR"/pgbench.*.log | wc -l) pgbench run(s)"

# what pgbench clients saw: only the errors of the crashes (an SQL error
# would show as "client N script N aborted in command N query N: ERROR: ...")
unexpected=$(cat "$DIR"/pgbench.*.log | grep -iE 'error|fatal|abort' |
	grep -vE 'aborted in command [0-9]+ \(SQL\) of script [0-9]+; perhaps the backend died while processing$' |
	grep -vE 'FATAL:  the database system is (not yet accepting connections|in recovery mode|starting up|shutting down)$' |
	grep -vE 'could not create connection for (setup|client [0-9]+)$|server closed the connection unexpectedly$' |
	grep -vE '^(pgbench: error: )?WARNING:  terminating connection because of crash of another server process$|Run was aborted' |
	sort | uniq -c | head -20)
[ -z "$unexpected" ] && ok "pgbench clients saw no errors besides the crashes' ($(cat "$DIR"/pgbench.*.log |
	grep -c 'perhaps the backend died') clients cut off)" ||
	fail "pgbench saw unexpected errors: $(tr '\n' ' ' <<<"$unexpected")"

for i in $(seq 1 300); do
	[ "$(psql_db -At -c "SELECT count(*) FROM ledger.hot_entry")" = 0 ] && break
	sleep 0.1
done

checks=$(psql_db -At -F '|' <<'SQL'
WITH legs AS (
         SELECT count(*) AS n FROM ledger.journal_entry j
           JOIN ledger.transaction t ON t.id = j.transaction_id
          WHERE j.account_id IN (SELECT id FROM ledger.account WHERE mode = 'hot')
            AND t.metadata->>'step' IS DISTINCT FROM 'fund')
SELECT 'the queue is empty', count(*) = 0, format('%s unfolded entries', count(*))
  FROM ledger.hot_entry
UNION ALL
SELECT 'folded_rows = hot entries ever written',
       s.folded_rows = l.n AND l.n > 0,
       format('fold_state.folded_rows %s, hot legs posted %s, generation %s', s.folded_rows, l.n, s.generation)
  FROM ledger.fold_state s, legs l
UNION ALL
SELECT 'the escrow serves the 4 hot accounts',
       count(*) = 4 AND bool_and(h.state = 'active'),
       string_agg(format('%s: %s', h.account, h.state), '; ' ORDER BY h.account)
  FROM ledger.hot_accounts() h JOIN ledger.account a ON a.code = h.account
 WHERE a.mode = 'hot'
SQL
) || { fail "the checking query failed"; checks=; }
check_rows "after the kills: " <<<"$checks"
check_reconcile "$DIR/cluster" postgres "after the kills: reconcile"
# balances = journal, nets to zero, floors, daily rows, escrow = balance
check_invariants "$DIR/cluster" postgres "after the kills: invariants"
test_done
