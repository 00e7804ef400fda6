#!/usr/bin/env bash
# test/scripts/events.sh: the event horizon with the whole server around
# it.  Starts its own clusters.
#
#   longtx   A transaction in another database of the cluster stays open
#            (it holds an xid, and a snapshot) while 50 events are
#            appended: apply_events applies all 50 at once.  A reader that
#            waited for pg_snapshot_xmin to pass the events would read
#            none of them (checked: every event's xid is above the xmin).
#   restart  A transaction that appended an event is open when the server
#            stops with -m immediate: after the restart the horizon is not
#            held back by it, the numbers go on after the largest stored,
#            and events appended afterwards are applied.
#   restore  pg_dump -Fc of a ledger with applied, rejected and pending
#            events, pg_restore into a fresh cluster: the pointer, the
#            rejections and the events are there; apply_events applies
#            exactly the pending ones (none twice: balances match), new
#            events get numbers after the restored ones and are applied.
#            Then pg_restore --clean of the same dump into that live
#            database, after its extension was made again and appended to:
#            the counter is loaded afresh for the restored table, so new
#            numbers follow the restored ones (none reused or skipped).
# Each part ends with the invariants of test/invariants.sql.
source "$LEDGER_ROOT/test/lib.sh"
test_begin events
NODE=$DIR/node
COPY=$DIR/copy
trap 'kill $(jobs -p) 2>/dev/null; node_stop $NODE immediate; node_stop $COPY immediate' EXIT
CONF="shared_preload_libraries = 'ledger'
ledger.database = 'ev'"
node_init "$NODE" "$CONF" && node_start "$NODE" || { echo "events: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" ev
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" other
E() { node_psql "$NODE" ev "$@"; }
E >/dev/null <<'SQL' || { echo "events: FAIL: setup" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('alice', 'USD', owner_id => 'user-alice');
SQL
append() {	# append N events crediting alice AMOUNT each
	E -c "SELECT count(ledger.append_event('alice', 'transfer',
	        jsonb_build_object('from_account', 'world', 'to_account', 'alice', 'amount', '$2')))
	        FROM generate_series(1, $1)" >/dev/null
}

# ---- longtx ---------------------------------------------------------------
node_psql "$NODE" other -c "BEGIN" -c "SELECT txid_current()" -c "SELECT pg_sleep(60)" \
	>"$DIR/other.out" 2>&1 &
other=$!
for _ in $(seq 1 50); do
	[ "$(E -c "SELECT count(*) FROM pg_stat_activity WHERE datname = 'other' AND backend_xid IS NOT NULL")" = 1 ] && break
	sleep 0.1
done
append 50 1.00
rows=$(E -F '|' <<'SQL'
SELECT 'another database holds an open transaction', count(*) = 1, count(*) || ' such transaction(s)'
  FROM pg_stat_activity WHERE datname = 'other' AND backend_xid IS NOT NULL;
SELECT 'an xmin-based reader would see none of the events',
       count(*) FILTER (WHERE xmin::text::bigint < pg_snapshot_xmin(pg_current_snapshot())::text::bigint) = 0,
       count(*) || ' events, all with xids above the snapshot xmin'
  FROM ledger.event;
SELECT 'apply_events applies all 50 while it stays open', ledger.apply_events() = 50, 'applied';
SELECT 'alice got them', ledger.balance('alice') = 50, 'balance ' || ledger.balance('alice');
SQL
)
check_rows "longtx: " <<<"$rows"
kill "$other" 2>/dev/null; wait "$other" 2>/dev/null
check_invariants "$NODE" ev "longtx: invariants"

# ---- restart --------------------------------------------------------------
E -c "BEGIN" -c "SELECT ledger.append_event('alice', 'transfer',
        '{\"from_account\": \"world\", \"to_account\": \"alice\", \"amount\": \"1000.00\"}')" \
	-c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
inflight=$!
for _ in $(seq 1 50); do
	[ "$(E -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND datname = 'ev'")" -ge 1 ] && break
	sleep 0.1
done
before=$(E -c "SELECT max(seq) FROM ledger.event")
node_stop "$NODE" immediate
wait "$inflight" 2>/dev/null
node_start "$NODE" || fail "restart: the server did not start"
node_ready "$NODE" ev || fail "restart: the fold worker did not get ready"
append 3 2.00
rows=$(E -F '|' <<SQL
SELECT 'numbers go on after the largest stored', min(seq) > $before, 'new numbers from ' || min(seq)
  FROM ledger.event WHERE seq > $before;
SELECT 'the horizon is not held back by the transaction the stop ended',
       ledger.event_horizon() = (SELECT max(seq) FROM ledger.event), 'horizon ' || ledger.event_horizon();
SELECT 'the new events are applied', ledger.apply_events() = 3, 'applied';
SELECT 'the lost event never happened', ledger.balance('alice') = 56, 'balance ' || ledger.balance('alice');
SQL
)
check_rows "restart: " <<<"$rows"
check_invariants "$NODE" ev "restart: invariants"

# ---- restore --------------------------------------------------------------
E >/dev/null <<'SQL' || fail "restore: preparing the source"
SELECT ledger.append_event('alice', 'transfer', '{"from_account": "alice", "to_account": "world", "amount": "1000.00"}');
SELECT ledger.apply_events();
SQL
append 4 3.00	# pending at the dump
"$PGBIN/pg_dump" -Fc -U postgres -h "$NODE" -p "$(node_port "$NODE")" -f "$DIR/ev.dump" ev ||
	fail "restore: pg_dump"
node_init "$COPY" "$CONF" && node_start "$COPY" || fail "restore: second cluster"
runuser -u postgres -- "$PGBIN/createdb" -h "$COPY" -p "$(node_port "$COPY")" ev
"$PGBIN/pg_restore" -U postgres -h "$COPY" -p "$(node_port "$COPY")" -d ev "$DIR/ev.dump" ||
	fail "restore: pg_restore"
C() { node_psql "$COPY" ev "$@"; }
src_max=$(E -c "SELECT max(seq) FROM ledger.event")
rows=$(C -F '|' <<SQL
SELECT 'events, pointer and rejections restored',
       (SELECT count(*) FROM ledger.event) = 58 AND (SELECT count(*) FROM ledger.event_rejection) = 1
           AND (SELECT applied FROM ledger.projection) = 53,
       format('%s events, %s rejections, %s applied', (SELECT count(*) FROM ledger.event),
              (SELECT count(*) FROM ledger.event_rejection), (SELECT applied FROM ledger.projection));
SELECT 'exactly the pending events are applied', ledger.apply_events() = 4, 'applied';
SELECT 'none twice', ledger.balance('alice') = 68, 'balance ' || ledger.balance('alice');
SQL
)
check_rows "restore: " <<<"$rows"
C -c "SELECT ledger.append_event('alice', 'transfer', '{\"from_account\": \"world\", \"to_account\": \"alice\", \"amount\": \"5.00\"}')" >/dev/null ||
	fail "restore: append after the restore"
rows=$(C -F '|' <<SQL
SELECT 'new numbers after the restored ones', max(seq) > $src_max, 'max ' || max(seq) FROM ledger.event;
SELECT 'the new event is applied', ledger.apply_events() = 1, 'applied';
SELECT 'and credited', ledger.balance('alice') = 73, 'balance ' || ledger.balance('alice');
SQL
)
check_rows "restore: " <<<"$rows"
check_invariants "$COPY" ev "restore: invariants"

# restored into a live database whose counter was loaded for the table
# the restore replaces: the counter is loaded afresh from what it holds
C >/dev/null <<'SQL' || fail "live restore: preparing"
SET client_min_messages = warning;
DROP EXTENSION ledger CASCADE;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('alice', 'USD');
SELECT ledger.append_event('alice', 'transfer', '{"from_account": "world", "to_account": "alice", "amount": "1.00"}');
SQL
[ "$(C -c "SELECT max(seq) FROM ledger.event")" = 1 ] && ok "live restore: the new table's counter started at 1" ||
	fail "live restore: the new table's counter did not start at 1"
"$PGBIN/pg_restore" -U postgres -h "$COPY" -p "$(node_port "$COPY")" --clean --if-exists -d ev "$DIR/ev.dump" \
	2>"$DIR/restore2.err" || fail "live restore: pg_restore --clean: $(head -3 "$DIR/restore2.err")"
C -c "SELECT ledger.append_event('alice', 'transfer', '{\"from_account\": \"world\", \"to_account\": \"alice\", \"amount\": \"5.00\"}')" >/dev/null ||
	fail "live restore: append after pg_restore --clean"
rows=$(C -F '|' <<SQL
SELECT 'numbers go on after the restored ones', max(seq) > $src_max, 'max ' || max(seq) FROM ledger.event;
SELECT 'the pending and the new events are applied', ledger.apply_events() = 5, 'applied';
SELECT 'and credited once', ledger.balance('alice') = 73, 'balance ' || ledger.balance('alice');
SQL
)
check_rows "live restore: " <<<"$rows"
check_invariants "$COPY" ev "live restore: invariants"
test_done
