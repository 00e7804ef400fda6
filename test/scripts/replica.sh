#!/usr/bin/env bash
# test/scripts/replica.sh: a streaming standby reads the ledger exactly, hot
# accounts included (folded balance plus unfolded hot entries), and
# reconcile there reports without writing.  Runs its own primary and a
# standby made with pg_basebackup -R.
#
# The primary holds a hot account with unfolded entries (a long fold
# interval keeps them); one more posting follows the base backup.  On the
# standby, once it has replayed it:
#   - it is in recovery;
#   - each account's ledger.balance equals the primary's, the hot
#     account's is 20.50 and includes unfolded entries (account_overview
#     too);
#   - the invariants of test/invariants.sql hold there (every balance
#     equals its journal sum, and the rest);
#   - reconcile(repair => false) finds nothing, reconcile() refuses to
#     repair, a posting is refused (read-only), the journal view reads.
#
# Run by test/run.sh as root.  Starts its own clusters.
source "$LEDGER_ROOT/test/lib.sh"
test_begin replica
PRIMARY=$DIR/primary
STANDBY=$DIR/standby
trap 'node_stop $STANDBY immediate; node_stop $PRIMARY' EXIT

# a long fold interval keeps hot entries unfolded while we compare
node_init "$PRIMARY" "shared_preload_libraries = 'ledger'
ledger.database = 'lp'
ledger.fold_interval = 60000
wal_level = replica
max_wal_senders = 4
hot_standby = on" && node_start "$PRIMARY" || { echo "replica: FAIL: primary cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$PRIMARY" -p "$(node_port "$PRIMARY")" lp
P() { node_psql "$PRIMARY" lp "$@"; }

P >/dev/null <<'SQL' || { echo "replica: FAIL: setup" >&2; exit 1; }
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('merchant', 'USD');
SELECT ledger.create_account('alice', 'USD');
SELECT ledger.transfer('world', 'alice', 100);
SELECT ledger.fold();
SQL
for i in $(seq 1 60); do
	[ "$(P -c "SELECT ready FROM ledger.fold_worker_status()")" = t ] && break; sleep 0.2
done
P -c "SELECT ledger.set_account_mode('merchant', 'hot')" >/dev/null
P -c "SELECT ledger.fold()" >/dev/null   # worker sleeps 60 s: nothing is pending before this point
for i in $(seq 1 20); do
	P -c "SELECT ledger.transfer('alice', 'merchant', 1.25)" >/dev/null
done
P -c "SELECT ledger.transfer('merchant', 'world', 5)" >/dev/null
unfolded=$(P -c "SELECT count(*) FROM ledger.hot_entry")
[ "$unfolded" -gt 0 ] && ok "$unfolded unfolded hot entries on the primary" ||
	fail "expected unfolded hot entries on the primary"

# the standby
mkdir -p "$STANDBY"; chown postgres:postgres "$STANDBY"; chmod 700 "$STANDBY"
runuser -u postgres -- "$PGBIN/pg_basebackup" -h "$PRIMARY" -p "$(node_port "$PRIMARY")" -U postgres \
	-D "$STANDBY/data" -R -X stream --checkpoint=fast >/dev/null ||
	{ echo "replica: FAIL: pg_basebackup" >&2; exit 1; }
node_conf "$STANDBY" "$(free_port "$STANDBY")"
node_start "$STANDBY" || { echo "replica: FAIL: the standby did not start" >&2; exit 1; }
S() { node_psql "$STANDBY" lp "$@"; }

# one more posting after the base backup, then wait for the standby to replay it
P -c "SELECT ledger.transfer('alice', 'merchant', 0.50)" >/dev/null
target=$(P -c "SELECT pg_current_wal_lsn()")
for i in $(seq 1 100); do
	[ "$(S -c "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")" = t ] && break; sleep 0.1
done
[ "$(S -c "SELECT pg_is_in_recovery()")" = t ] && ok "the standby is in recovery" ||
	fail "standby is not in recovery"

for acct in world merchant alice; do
	p=$(P -c "SELECT ledger.balance('$acct')")
	s=$(S -c "SELECT ledger.balance('$acct')")
	[ "$p" = "$s" ] && ok "$acct: balance $s on primary and standby" || fail "$acct: primary $p, standby $s"
done
[ "$(S -c "SELECT ledger.balance('merchant') = 20.50")" = t ] && ok "merchant balance 20.50 on the standby" ||
	fail "merchant balance is not 20.50"
[ "$(S -c "SELECT count(*) > 0 FROM ledger.hot_entry")" = t ] &&
	ok "the standby's balances include its unfolded hot entries" ||
	fail "standby has no unfolded entries to include"
[ "$(S -c "SELECT balance FROM ledger.account_overview WHERE code = 'merchant'")" = 20.50 ] &&
	ok "account_overview on the standby is folded plus unfolded" ||
	fail "account_overview on the standby is not folded plus unfolded"
check_invariants "$STANDBY" lp "on the standby: invariants"
[ "$(S -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	ok "reconcile(repair => false) on the standby finds nothing" ||
	fail "reconcile on the standby reports mismatches"
out=$(S -c "SELECT count(*) FROM ledger.reconcile()" 2>&1)
grep -q "reconcile cannot repair on a standby" <<<"$out" && ok "reconcile() refuses to repair on a standby" ||
	fail "repair on a standby: $out"
out=$(S -c "SELECT ledger.transfer('alice', 'merchant', 1)" 2>&1)
grep -q "read-only transaction" <<<"$out" && ok "a posting on the standby is refused" ||
	fail "posting on a standby: $out"
S -c "SELECT count(*) FROM ledger.journal" >/dev/null && ok "the journal view reads on the standby" ||
	fail "the journal view does not read on the standby"
test_done
