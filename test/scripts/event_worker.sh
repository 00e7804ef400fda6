#!/usr/bin/env bash
# test/scripts/event_worker.sh: the background event worker and the outbox
# with the whole server around them.  Starts its own cluster, an SMTP sink
# (test/scripts/smtp_sink.py) and the reference consumer
# (examples/outbox_email.py).
#
#   wake     ledger.event_poll_interval is an hour, so only the latch that
#            an appending commit sets can make the worker apply an event:
#            it does, and the status view counts it.  ledger.catch_up waits
#            for the worker instead of applying itself.
#   kill     A client appends 300 events (every 10th overdraws, so it is
#            refused: an alert, so an outbox message) each with a receipt
#            enqueued in the same transaction, retrying each with its
#            idempotency key after any error.  The consumer delivers the
#            outbox to the SMTP sink (50 ms a message, so it always holds
#            leases).  Mid-stream the consumer is killed with SIGKILL
#            while it holds leases, and so is the event worker (the
#            postmaster then restarts the whole server); both are started
#            again.  Afterwards every event is applied (its transaction names it)
#            or rejected, exactly once; every outbox message is delivered
#            and reached the sink at least once, none is lost; balances
#            equal the journal.
source "$LEDGER_ROOT/test/lib.sh"
test_begin event_worker
NODE=$DIR/node
SINK_LOG=$DIR/sink.jsonl
trap 'kill $(jobs -p) $(cat "$DIR/consumer.pid" 2>/dev/null) 2>/dev/null; node_stop $NODE immediate' EXIT
CONF="shared_preload_libraries = 'ledger'
ledger.database = 'ev'
ledger.event_worker = on
ledger.event_poll_interval = '1h'
restart_after_crash = on"
node_init "$NODE" "$CONF" && node_start "$NODE" || { echo "event_worker: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" ev
E() { node_psql "$NODE" ev "$@"; }
E >/dev/null <<'SQL' || { echo "event_worker: FAIL: setup" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('alice', 'USD', owner_id => 'user-alice');
SELECT ledger.create_account('bob', 'USD', owner_id => 'user-bob');
SQL

wait_for() { wait_sql "$NODE" ev "$1"; }

# ---- wake -----------------------------------------------------------------
wait_for "SELECT state IN ('idle', 'applying') FROM ledger.event_worker_status()" ||
	fail "wake: the worker is not running: $(E -c 'SELECT * FROM ledger.event_worker_status()')"
E -c "SELECT ledger.append_event('alice', 'transfer',
        jsonb_build_object('from_account', 'world', 'to_account', 'alice', 'amount', '5.00'))" >/dev/null
if wait_for "SELECT ledger.balance('alice') = 5 FROM ledger.event_worker_status() WHERE applied >= 1"; then
	ok "wake: the worker applied the event at its commit (its poll interval is an hour)"
else
	fail "wake: not applied: $(E -c 'SELECT * FROM ledger.event_worker')"
fi
rows=$(E -F '|' <<'SQL'
SELECT ledger.append_event('bob', 'transfer',
        jsonb_build_object('from_account', 'world', 'to_account', 'bob', 'amount', '7.00')) IS NULL;
SELECT 'catch_up waits for the worker, applying nothing itself', ledger.catch_up('bob', '30 s') = 0,
       'balance ' || ledger.balance('bob');
SELECT 'the reader is fresh after it', ledger.balance('bob') = 7, 'balance ' || ledger.balance('bob');
SELECT 'the status view counts both', applied = 2 AND rejected = 0 AND errors = 0,
       format('applied %s, rejected %s, errors %s, lag %s', applied, rejected, errors, lag_events)
  FROM ledger.event_worker;
SQL
)
check_rows "wake: " <<<"$(grep '|' <<<"$rows")"

# ---- kill -----------------------------------------------------------------
SMTP_PORT=$(free_port "$DIR")
"$PYTHON" "$LEDGER_ROOT/test/scripts/smtp_sink.py" "$SMTP_PORT" "$SINK_LOG" 0.05 >"$DIR/sink.out" 2>&1 &
for _ in $(seq 1 100); do grep -q ready "$DIR/sink.out" 2>/dev/null && break; sleep 0.1; done
consumer() (	# a subshell that becomes the consumer: its pid is the process's
	echo "$BASHPID" >"$DIR/consumer.pid"
	PGHOST=$NODE PGPORT=$(node_port "$NODE") PGUSER=postgres PGDATABASE=ev \
		exec "$PYTHON" "$LEDGER_ROOT/examples/outbox_email.py" --smtp-port "$SMTP_PORT" \
		--lease '2 s' --batch 20 "$@" >>"$DIR/consumer.out" 2>&1
)
consumer &
consumer_pid=$!

N=300
appender() {
	local i amount tries
	for i in $(seq 1 "$N"); do
		amount=1.00
		[ $((i % 10)) = 0 ] && amount=100000.00
		for tries in $(seq 1 300); do
			E -c "BEGIN" -c "SELECT ledger.append_event('alice', 'transfer',
			        jsonb_build_object('from_account', 'alice', 'to_account', 'bob', 'amount', '$amount'),
			        'kill-$i')" \
			  -c "SELECT ledger.enqueue('receipt', 'alice', jsonb_build_object('event', 'kill-$i'))
			        WHERE NOT EXISTS (SELECT 1 FROM ledger.outbox WHERE payload ->> 'event' = 'kill-$i')" \
			  -c "COMMIT" >/dev/null 2>&1 && break
			sleep 0.1
		done
	done
	echo done >"$DIR/appender.done"
}
E -c "SELECT ledger.transfer('world', 'alice', 1000.00)" >/dev/null
appender &
appender_pid=$!
wait_for "SELECT count(*) >= 100 FROM ledger.event" || fail "kill: appends are not arriving"
wait_for "SELECT count(*) >= 20 FROM ledger.outbox WHERE state = 'delivered'" ||
	fail "kill: the consumer is not delivering"
# kill the consumer while it holds leases (messages claimed, not acked)
wait_for "SELECT count(*) > 0 FROM ledger.outbox WHERE state = 'leased'"
kill -9 "$(cat "$DIR/consumer.pid")" 2>/dev/null
wait "$consumer_pid" 2>/dev/null
worker=$(E -c "SELECT pid FROM ledger.event_worker_status()")
before=$(E -c "SELECT format('%s applied, %s messages delivered, %s leased', (SELECT last_sequence FROM ledger.projection),
                count(*) FILTER (WHERE state = 'delivered'), count(*) FILTER (WHERE state = 'leased'))
                FROM ledger.outbox")
if [ -n "$worker" ] && kill -9 "$worker"; then
	ok "kill: SIGKILL sent to the event worker (pid $worker) and the consumer mid-stream ($before)"
else
	fail "kill: no worker pid to kill"
fi
sleep 1
if grep -q "ledger event worker.*was terminated by signal 9" "$NODE/server.log"; then
	ok "kill: the postmaster saw the worker die and restarted the server"
else
	fail "kill: no crash restart in the server log"
fi
wait_for "SELECT state IN ('idle', 'applying') FROM ledger.event_worker_status()" ||
	fail "kill: the worker did not come back"
consumer &
consumer_pid=$!
wait "$appender_pid"
[ -f "$DIR/appender.done" ] || fail "kill: the appender did not finish"
E -c "SELECT ledger.catch_up(NULL, '60 s')" >/dev/null || fail "kill: catch_up did not finish"
kill "$(cat "$DIR/consumer.pid")" 2>/dev/null; wait "$consumer_pid" 2>/dev/null
# drain: a message whose lease a killed consumer held is claimable only
# when that lease runs out (2 s), so run --once until nothing is left
for _ in $(seq 1 30); do
	consumer --once
	[ "$(E -c "SELECT count(*) FROM ledger.outbox WHERE state <> 'delivered'")" = 0 ] && break
	sleep 1
done
rows=$(E -F '|' <<SQL
SELECT 'every event appended once', count(*) = $N + 2, count(*) || ' events' FROM ledger.event;
SELECT 'every event applied or rejected exactly once', count(*) = 0, count(*) || ' events not so'
  FROM ledger.event e
 WHERE (SELECT count(*) FROM ledger.transaction t WHERE t.event_id = e.id)
     + (SELECT count(*) FROM ledger.event_rejection r WHERE r.seq = e.seq) <> 1;
SELECT 'the overdrafts were rejected, the rest applied',
       count(*) FILTER (WHERE r.seq IS NOT NULL) = $N / 10,
       count(*) FILTER (WHERE r.seq IS NOT NULL) || ' rejected'
  FROM ledger.event e LEFT JOIN ledger.event_rejection r USING (seq);
SELECT 'bob got the applied ones', ledger.balance('bob') = 7 + ($N - $N / 10),
       'bob has ' || ledger.balance('bob');
SELECT 'a receipt per event, an alert per rejection',
       count(*) FILTER (WHERE topic = 'receipt') = $N
       AND count(*) FILTER (WHERE topic = 'ledger.alert') = $N / 10,
       format('%s receipts, %s alerts', count(*) FILTER (WHERE topic = 'receipt'),
              count(*) FILTER (WHERE topic = 'ledger.alert'))
  FROM ledger.outbox;
SELECT 'every message delivered', count(*) FILTER (WHERE state <> 'delivered') = 0,
       string_agg(DISTINCT state, ',') FROM ledger.outbox;
SQL
)
check_rows "kill: " <<<"$rows"
missing=$(E -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM ledger.outbox" |
	tr ' ' '\n' | "$PYTHON" -c '
import json, sys
seen = set()
for line in open(sys.argv[1]):
    seen.add(int(json.loads(line)["message_id"]))
ids = [int(x) for x in sys.stdin.read().split()]
print(len([i for i in ids if i not in seen]), len(ids), len(seen))' "$SINK_LOG")
read -r lost total seen <<<"$missing"
if [ "$lost" = 0 ] && [ "${total:-0}" -gt 0 ]; then
	ok "kill: every one of $total outbox messages reached the SMTP sink ($seen distinct received, at least once)"
else
	fail "kill: $lost of $total messages never reached the sink"
fi
check_invariants "$NODE" ev "kill: invariants"
check_reconcile "$NODE" ev "kill: reconcile"
test_done
