#!/usr/bin/env bash
# test/scripts/hot_crash.sh: hot accounts survive crashes.
#
# Starts its own cluster (shared_preload_libraries = 'ledger', hot accounts
# served in database postgres), makes two accounts hot and runs a load of
# 12 client loops, each posting one ledger.transfer at a time with psql
# (hot debits and credits, hot-to-hot transfers, some refused with LD001)
# and appending the returned transaction id to its own file only after
# psql reported success.  Debits outweigh credits, so the hot accounts
# keep running into their floors.  A "holder" session keeps a transaction open with
# an uncommitted hot credit and a hot debit reservation.  Two phases:
#   kill:      kill -9 the holder's backend; the postmaster crash-restarts;
#   immediate: pg_ctl stop -m immediate, then start.
# In each, the loops keep going (retrying through the outage) for a few
# seconds after the restart, then stop.  Checks after each phase:
#   - the restart happened and the fold worker reloaded the escrow
#     (ledger.fold_worker_status().ready, "hot accounts loaded" logged
#     again);
#   - every transaction id a client saw committed is in ledger.transaction;
#     the holder's transaction is not;
#   - hot postings were accepted again after the restart;
#   - the escrow serves all 3 hot accounts (state active);
#   - the fold worker empties ledger.hot_entry, and then
#     ledger.reconcile(repair => false) finds nothing and the invariants
#     of test/invariants.sql hold: every balance equals its journal sum,
#     every asset and transaction nets to zero, no account below its
#     floor, daily rows equal the journal, and each hot account's escrow
#     equals its balance (ledger.balance) with nothing reserved or in
#     flight;
#   - no client saw an error other than LD001 (insufficient funds), LD020
#     (escrow being rebuilt) or the connection errors of the outage.
# First, with the fold worker unable to start (max_worker_processes = 0,
# set with ALTER SYSTEM), hot postings fail with LD020 after
# ledger.hot_wait_ms while cold postings still work.
#
# Run by test/run.sh as root.  Exits 0 on success, 1 naming each failed
# check.  About 20 s.
source "$LEDGER_ROOT/test/lib.sh"
set +e
TEST_NAME=hot_crash

CLIENTS=${CRASH_CLIENTS:-12}
DIR=$(mktemp -d "${WORK:-/tmp}/hot_crash.XXXXXX")
chmod 755 "$DIR"
NODE=$DIR/cluster
STOP=$DIR/stop
LOOP_PIDS=()

stop_loops() {
	touch "$STOP"
	local p
	for p in "${LOOP_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	LOOP_PIDS=()
	rm -f "$STOP"
}
cleanup() {
	touch "$STOP"
	local p
	for p in "${LOOP_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	[ -n "${HOLDER:-}" ] && kill "$HOLDER" 2>/dev/null
	cluster_stop
}

CLUSTER_CONF="shared_preload_libraries = 'ledger'
ledger.database = 'postgres'
max_connections = 60
restart_after_crash = on" cluster_start "$NODE" ||
	{ echo "hot_crash: FAIL: could not start a cluster" >&2; exit 1; }
trap cleanup EXIT
LOG=$NODE/server.log
psql_db() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }

# wait until the server accepts connections and the escrow is loaded
wait_hot_ready() { node_ready "$NODE" postgres; }
loaded_count() { grep -c 'ledger fold worker: hot accounts loaded' "$LOG"; }

psql_db >/dev/null <<SQL || { echo "hot_crash: FAIL: setup failed" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('hc-world', 'USD', min_balance => NULL);
SELECT ledger.create_account('hc-hot-1', 'USD');          -- floor 0
SELECT ledger.create_account('hc-hot-2', 'USD', min_balance => 20);
-- the holder's: a hot account and two cold ones no client loop locks
SELECT ledger.create_account('hc-hold', 'USD');
SELECT ledger.create_account('hc-hold-src', 'USD', min_balance => NULL);
SELECT ledger.create_account('hc-hold-sink', 'USD');
SELECT ledger.create_account('hc-cold-' || c, 'USD') FROM generate_series(1, $CLIENTS) c;
SELECT ledger.transfer('hc-world', 'hc-hot-1', 40);
SELECT ledger.transfer('hc-world', 'hc-hot-2', 150);
SELECT ledger.transfer('hc-world', 'hc-hold', 100);
SELECT ledger.transfer('hc-world', 'hc-cold-' || c, 100) FROM generate_series(1, $CLIENTS) c;
SELECT ledger.set_account_mode('hc-hot-1', 'hot');
SELECT ledger.set_account_mode('hc-hot-2', 'hot');
SELECT ledger.set_account_mode('hc-hold', 'hot');
SQL

# ---------------------------------------------------------------------
# No escrow, no hot postings: the worker cannot start (LD020)
# ---------------------------------------------------------------------
psql_db -c "ALTER SYSTEM SET max_worker_processes = 0" &&
	node_stop "$NODE" && node_start "$NODE" ||
	{ echo "hot_crash: FAIL: restart failed" >&2; exit 1; }
out=$(psql_db -At 2>&1 <<'SQL'
\set ON_ERROR_STOP 0
\set VERBOSITY sqlstate
SELECT 'ready=' || ready FROM ledger.fold_worker_status();
SET ledger.hot_wait_ms = 300;
SELECT 'hot debit ' || (ledger.transfer('hc-hot-1', 'hc-cold-1', 1) IS NOT NULL);
SELECT 'hot credit ' || (ledger.transfer('hc-cold-1', 'hc-hot-1', 1) IS NOT NULL);
SELECT 'cold ' || (ledger.transfer('hc-world', 'hc-cold-1', 1) IS NOT NULL);
SELECT 'reserved=' || coalesce(sum(reserved), 0) FROM ledger.hot_accounts();
SQL
)
if [ "$(tr '\n' ' ' <<<"$out")" = "ready=false ERROR:  LD020 ERROR:  LD020 cold true reserved=0 " ]; then
	ok "before the escrow is loaded: hot postings fail with LD020, cold ones work"
else
	fail "before the escrow is loaded: expected LD020 for hot postings only; got: $(tr '\n' ' ' <<<"$out")"
fi
f=$(facts_of "$(psql_db -At -c "SET ledger.hot_wait_ms = 200" -c "SELECT ledger.transfer('hc-hot-1', 'hc-cold-1', 1)" 2>&1)")
[ "$f" = '{"sqlstate": "LD020", "waited_ms": 200}' ] && ok "before the escrow is loaded: LD020's facts give the wait" ||
	fail "before the escrow is loaded: LD020 facts: $f"
psql_db -c "ALTER SYSTEM RESET max_worker_processes" &&
	node_stop "$NODE" && node_start "$NODE" ||
	{ echo "hot_crash: FAIL: restart failed" >&2; exit 1; }
wait_hot_ready || fail "the fold worker did not load the escrow after a restart"

# ---------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------
client_loop() {
	local i=$1 r from to amount out
	while [ ! -e "$STOP" ]; do
		r=$((RANDOM % 10))
		amount=$(printf '%d.%02d' $((RANDOM % 15)) $((RANDOM % 100)))
		[ "$amount" = 0.00 ] && amount=0.01
		case $r in
			0|1|2|3|4) from=hc-hot-$((RANDOM % 2 + 1)); to=hc-cold-$i ;;
			5|6) from=hc-cold-$i; to=hc-hot-$((RANDOM % 2 + 1)) ;;
			7) from=hc-hot-1; to=hc-hot-2 ;;
			8) from=hc-hot-2; to=hc-hot-1 ;;
			*) from=hc-world; to=hc-hot-$((RANDOM % 2 + 1)) ;;
		esac
		if out=$(PGCONNECT_TIMEOUT=5 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=sqlstate \
				-d postgres -c "SELECT ledger.transfer('$from', '$to', $amount)" 2>>"$DIR/err.$i"); then
			if [[ $out =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; then
				echo "$out" >>"$DIR/ids.$i"
			else
				echo "unexpected output: $out" >>"$DIR/err.$i"
			fi
		else
			sleep 0.02
		fi
	done
}

start_load() {
	local i
	rm -f "$STOP"
	for i in $(seq 1 "$CLIENTS"); do
		client_loop "$i" &
		LOOP_PIDS+=($!)
	done
	# the holder: an uncommitted hot credit and a hot debit reservation
	PGAPPNAME=hc-holder "$PGBIN/psql" -X -q -d postgres >"$DIR/holder.out" 2>&1 <<'SQL' &
BEGIN;
SELECT ledger.transfer('hc-hold-src', 'hc-hold', 1000, metadata => '{"holder": true}');
SELECT ledger.transfer('hc-hold', 'hc-hold-sink', 7.77, metadata => '{"holder": true}'), pg_sleep(120);
SQL
	HOLDER=$!
}

holder_pid() {
	psql_db -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'hc-holder'
	                  AND state = 'active' AND query LIKE '%ledger.transfer%'"
}

# Checks after a restart; $1 names the phase, $2 the time the escrow was
# loaded again.
verify() {
	local phase=$1 ready_at=$2 f checks name passed detail i
	cat "$DIR"/ids.* 2>/dev/null | sort -u >"$DIR/seen_ids"
	for i in $(seq 1 300); do
		[ "$(psql_db -At -c "SELECT count(*) FROM ledger.hot_entry")" = 0 ] && break
		sleep 0.1
	done
	checks=$(psql_db -At -F '|' -v ready_at="$ready_at" <<SQL
CREATE TEMP TABLE seen (id uuid);
\copy seen FROM '$DIR/seen_ids'
SELECT 'escrow reloaded', ready AND state IN ('idle', 'folding'),
       format('ready %s, worker %s', ready, state)
  FROM ledger.fold_worker_status()
UNION ALL
SELECT 'every id a client saw committed is in the journal',
       count(*) > 0 AND count(*) FILTER (WHERE t.id IS NULL) = 0,
       format('%s ids seen by clients, %s missing from ledger.transaction', count(*),
              count(*) FILTER (WHERE t.id IS NULL))
  FROM seen s LEFT JOIN ledger.transaction t ON t.id = s.id
UNION ALL
SELECT 'hot postings accepted after the restart',
       count(*) > 0, format('%s hot postings seen committed since the reload', count(*))
  FROM seen s JOIN ledger.transaction t ON t.id = s.id
 WHERE t.created_at >= :'ready_at'::timestamptz
   AND EXISTS (SELECT 1 FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
                WHERE j.transaction_id = t.id AND a.mode = 'hot')
UNION ALL
SELECT 'the holder''s uncommitted transaction left nothing',
       count(*) = 0, format('%s holder transactions in the journal', count(*))
  FROM ledger.transaction WHERE metadata ? 'holder'
UNION ALL
SELECT 'the escrow serves the 3 hot accounts',
       count(*) = 3 AND bool_and(h.state = 'active'),
       string_agg(h.account || ' ' || h.state, ', ' ORDER BY h.account)
  FROM ledger.hot_accounts() h
 WHERE h.account IN (SELECT code FROM ledger.account WHERE mode = 'hot')
UNION ALL
SELECT 'queue folded', count(*) = 0, format('%s unfolded entries', count(*))
  FROM ledger.hot_entry
SQL
	) || { fail "$phase: the checking query failed"; return; }
	check_rows "$phase: " <<<"$checks"
	check_reconcile "$NODE" postgres "$phase: reconcile"
	# balances = journal, nets to zero, floors, daily rows, escrow = balance
	check_invariants "$NODE" postgres "$phase: invariants"

	# what the clients saw
	local unexpected
	unexpected=$(cat "$DIR"/err.* 2>/dev/null | grep -E '^(ERROR|unexpected)' |
		grep -vE '^ERROR:  (LD001|LD020|57P01|57P02|57P03)$' | sort | uniq -c)
	if [ -n "$unexpected" ]; then
		fail "$phase: clients saw unexpected errors: $(tr '\n' ' ' <<<"$unexpected")"
	else
		ok "$phase: clients saw only expected errors: $(cat "$DIR"/err.* 2>/dev/null |
			grep -E '^ERROR' | sort | uniq -c | awk '{printf "%s x%s, ", $3, $1}')$(cat "$DIR"/err.* 2>/dev/null |
			grep -vcE '^ERROR') connection error lines"
	fi
	rm -f "$DIR"/err.*
}

# Start the load; once the holder holds its reservation, run $1 (the
# crash); wait for the escrow to be reloaded; keep the load going a few
# seconds; stop and verify.
phase() {
	local name=$1 crash=$2 loads pid i ready_at
	loads=$(loaded_count)
	start_load
	sleep 2
	pid=
	for i in $(seq 1 50); do
		pid=$(holder_pid)
		[ -n "$pid" ] && break
		sleep 0.1
	done
	if [ -z "$pid" ]; then
		fail "$name: the holder session did not start: $(cat "$DIR/holder.out")"
	else
		psql_db -At -c "SELECT reserved = 7.77 AND inflight = 2 FROM ledger.hot_accounts() WHERE account = 'hc-hold'" | grep -qx t ||
			fail "$name: the holder's reservation is not in the escrow"
	fi
	echo "hot_crash: $name: $(cat "$DIR"/ids.* 2>/dev/null | wc -l) postings seen committed so far; crashing"
	$crash "$pid"
	wait_hot_ready || fail "$name: the escrow was not reloaded within 30 s"
	ready_at=$(psql_db -At -c "SELECT now()")
	[ "$(loaded_count)" -gt "$loads" ] && ok "$name: the fold worker reloaded the escrow" ||
		fail "$name: no new 'hot accounts loaded' in the server log"
	sleep 3
	stop_loops
	wait "$HOLDER" 2>/dev/null
	HOLDER=
	echo "hot_crash: $name: $(cat "$DIR"/ids.* 2>/dev/null | wc -l) postings seen committed in all"
	verify "$name" "$ready_at"
}

crash_kill() {
	local pid=$1 i
	[ -n "$pid" ] || pid=$(psql_db -At -c "SELECT pid FROM pg_stat_activity WHERE state = 'active'
	                                         AND query LIKE '%ledger.transfer%' AND pid <> pg_backend_pid() LIMIT 1")
	echo "hot_crash: kill -9 backend $pid"
	kill -9 "$pid"
	for i in $(seq 1 100); do
		grep -q 'all server processes terminated; reinitializing' "$LOG" && return
		sleep 0.1
	done
	fail "kill: the postmaster did not crash-restart"
}

crash_immediate() {
	echo "hot_crash: pg_ctl stop -m immediate"
	node_stop "$NODE" immediate
	[ ! -f "$NODE/data/postmaster.pid" ] || fail "immediate: pg_ctl stop failed"
	sleep 0.5
	node_start "$NODE" || fail "immediate: pg_ctl start failed"
}

start=$(date +%s)
phase kill crash_kill
phase immediate crash_immediate
echo "hot_crash: done in $(($(date +%s) - start)) s"
test_done
