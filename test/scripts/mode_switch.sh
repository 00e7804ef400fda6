#!/usr/bin/env bash
# test/scripts/mode_switch.sh: an account switched between hot and cold
# under load keeps its escrow equal to its balance.  Starts its own
# cluster (ledger preloaded, the fold worker at its default interval).
#
# 16 rounds of 4 s: 8 pgbench clients post to and from account x (single
# transfers, transfer batches of four items, captures of holds into x)
# while one client in eight switches x to hot or cold at random.  After
# each round that leaves x hot: its escrow equals its balance (folded plus
# unfolded) with nothing in flight, and reconcile finds nothing.  At the
# end the invariants of test/invariants.sql hold.
#
# Before the fix in src/hotmode.c (a switch to hot read the unfolded
# entries with the snapshot taken before it waited for the row lock, and
# counted twice the entries a concurrent switch to cold had folded), about
# half the rounds that ended hot found the escrow off by a posting or two.
source "$LEDGER_ROOT/test/lib.sh"
test_begin mode_switch
ledger_node ms "max_connections = 40"
M() { node_psql "$N" ms "$@"; }
M >/dev/null <<'SQL' || fail "setup"
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('w', 'USD', min_balance => NULL);
SELECT ledger.create_account(a, 'USD') FROM unnest(ARRAY['x', 'y', 'z']) a;
SELECT ledger.transfer('w', a, 100000) FROM unnest(ARRAY['x', 'y', 'z']) a;
SQL
# the load's calls may be refused (LD001, LD019 while x changes mode):
# count them, do not abort the client
load_try_sql | M >/dev/null || fail "setup: load_try"
node_ready "$N" ms || fail "the fold worker is not ready"

S=$DIR/scripts
mkdir -p "$S"
cat >"$S/single.sql" <<'SQL'
\set c random(1, 5000)
SELECT load_try(format('SELECT ledger.transfer(%L, %L, %s)', a, b, :c * 0.01))
  FROM (SELECT CASE WHEN random() < 0.5 THEN 'x' ELSE 'y' END AS a) p,
       LATERAL (SELECT CASE WHEN a = 'x' THEN 'z' ELSE 'x' END AS b) q;
SQL
cat >"$S/batch.sql" <<'SQL'
SELECT count(*) FROM ledger.transfer_batch(ARRAY['x', 'y', 'x', 'z'], ARRAY['y', 'x', 'z', 'x'],
                                           ARRAY[1.5, 2.25, 3, 0.75]);
SQL
cat >"$S/capture.sql" <<'SQL'
\set c random(1, 500)
SELECT load_try(format('SELECT ledger.capture(ledger.hold(%L, %s, %L))', 'y', :c * 0.01, 'x'));
SQL
cat >"$S/switch.sql" <<'SQL'
SELECT load_try(format('SELECT ledger.set_account_mode(%L, %L)', 'x',
                     CASE WHEN random() < 0.75 THEN 'hot' ELSE 'cold' END));
SQL
hot_rounds=0
off=0
for r in $(seq 1 16); do
	out=$("$PGBIN/pgbench" -n -h "$N" -p "$(node_port "$N")" -U postgres -c 8 -j 2 -T 4 --max-tries=10 \
		-f "$S/single.sql@6" -f "$S/batch.sql@4" -f "$S/capture.sql@2" -f "$S/switch.sql@2" ms 2>&1)
	grep -qE "aborted|ERROR" <<<"$out" && fail "round $r: pgbench: $(grep -E 'aborted|ERROR' <<<"$out" | head -3)"
	[ "$(M -c "SELECT mode FROM ledger.account WHERE code = 'x'")" = hot ] || continue
	hot_rounds=$((hot_rounds + 1))
	got=$(M -c "SELECT h.committed || ' ' || h.reserved || ' ' || h.inflight || ' ' || ledger.balance('x')
	              FROM ledger.hot_accounts() h WHERE h.account = 'x'")
	read -r committed reserved inflight balance <<<"$got"
	if [ "$committed" != "$balance" ] || [ "$reserved" != 0.00 ] || [ "$inflight" != 0 ]; then
		off=$((off + 1))
		fail "round $r: x's escrow $committed (reserved $reserved, in flight $inflight), balance $balance"
		M -c "SELECT ledger.set_account_mode('x', 'cold')" >/dev/null	# start the next round right
	fi
done
[ "$off" = 0 ] && ok "16 rounds of load and mode switches, $hot_rounds ending hot: the escrow equalled the balance in each" ||
	fail "$off of $hot_rounds rounds ending hot had the escrow off the balance"
[ "$hot_rounds" -gt 0 ] || fail "no round ended with x hot: nothing was checked"
[ "$(M -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] && ok "reconcile finds nothing" ||
	fail "reconcile: $(M -c "SELECT * FROM ledger.reconcile(repair => false)")"
M -c "SELECT ledger.fold()" >/dev/null
check_invariants "$N" ms "invariants"
test_done
