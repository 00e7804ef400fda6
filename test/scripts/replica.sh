#!/usr/bin/env bash
# replica.sh: a streaming standby reads the ledger exactly, hot accounts
# included (folded balance plus unfolded hot entries), and reconcile there
# reports without writing.  Runs its own primary and standby.
source "$LEDGER_ROOT/test/lib.sh"
set -euo pipefail
fail() { echo "replica: FAIL: $*" >&2; exit 1; }

DIR=$(mktemp -d "$WORK/replica.XXXXXX")
chmod 755 "$DIR"
# a long fold interval keeps hot entries unfolded while we compare
CLUSTER_CONF="shared_preload_libraries = 'ledger'
ledger.database = 'lp'
ledger.fold_interval = 60000
wal_level = replica
max_wal_senders = 4
hot_standby = on" cluster_start "$DIR/primary"
runuser -u postgres -- "$PGBIN/createdb" lp
P() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d lp "$@"; }

P >/dev/null <<'SQL'
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
[ "$unfolded" -gt 0 ] || fail "expected unfolded hot entries on the primary"

# the standby
SDIR=$DIR/standby
mkdir -p "$SDIR"; chown postgres:postgres "$SDIR"; chmod 700 "$SDIR"
runuser -u postgres -- "$PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U postgres \
	-D "$SDIR/data" -R -X stream --checkpoint=fast >/dev/null
SPORT=$((PGPORT + 1))
while [ -e "$SDIR/.s.PGSQL.$SPORT" ] || (exec 3<>/dev/tcp/127.0.0.1/$SPORT) 2>/dev/null; do SPORT=$((SPORT + 1)); done
{
	echo "port = $SPORT"
	echo "unix_socket_directories = '$SDIR'"
} >> "$SDIR/data/postgresql.conf"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$SDIR/data" -l "$SDIR/server.log" -w -t 60 start >/dev/null
trap 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$SDIR/data" -m immediate -w stop >/dev/null 2>&1; cluster_stop' EXIT
S() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SDIR" -p "$SPORT" -d lp "$@"; }

# one more posting after the base backup, then wait for the standby to replay it
P -c "SELECT ledger.transfer('alice', 'merchant', 0.50)" >/dev/null
target=$(P -c "SELECT pg_current_wal_lsn()")
for i in $(seq 1 100); do
	[ "$(S -c "SELECT pg_last_wal_replay_lsn() >= '$target'::pg_lsn")" = t ] && break; sleep 0.1
done
[ "$(S -c "SELECT pg_is_in_recovery()")" = t ] || fail "standby is not in recovery"

for acct in world merchant alice; do
	p=$(P -c "SELECT ledger.balance('$acct')")
	s=$(S -c "SELECT ledger.balance('$acct')")
	j=$(S -c "SELECT sum(amount) FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id WHERE a.code = '$acct' AND NOT j.is_invalidated")
	[ "$p" = "$s" ] || fail "$acct: primary $p, standby $s"
	[ "$(S -c "SELECT $s = $j")" = t ] || fail "$acct: standby balance $s, journal $j"
	echo "replica: $acct balance $s on primary and standby (journal $j)"
done
[ "$(S -c "SELECT ledger.balance('merchant') = 20.50")" = t ] || fail "merchant balance is not 20.50"
[ "$(S -c "SELECT count(*) > 0 FROM ledger.hot_entry")" = t ] || fail "standby has no unfolded entries to include"
[ "$(S -c "SELECT balance FROM ledger.account_overview WHERE code = 'merchant'")" = 20.50 ] ||
	fail "account_overview on the standby is not folded plus unfolded"
[ "$(S -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] ||
	fail "reconcile on the standby reports mismatches"
out=$(S -c "SELECT count(*) FROM ledger.reconcile()" 2>&1 || true)
grep -q "reconcile cannot repair on a standby" <<<"$out" || fail "repair on a standby: $out"
out=$(S -c "SELECT ledger.transfer('alice', 'merchant', 1)" 2>&1 || true)
grep -q "read-only transaction" <<<"$out" || fail "posting on a standby: $out"
S -c "SELECT count(*) FROM ledger.journal" >/dev/null
echo "replica: standby reads are exact with $unfolded+ unfolded hot entries; reconcile reports only; postings refused"
