#!/usr/bin/env bash
# bench/cold_ab.sh: what a schema version's additions cost cold postings.
# One cluster, two databases loaded alike: one at extension version
# $BENCH_AB_OLD (default 0.2.0, the schema before hot accounts; the library
# then uses its pre-hot statements; 0.6.0: before the event stamp trigger
# of 0.7.0) and one at the current version.  transfer_uniform at 32 clients runs in
# each, interleaved, BENCH_ROUNDS times; prints TPS per round and the ratio.
#     bash bench/cold_ab.sh
source "$(dirname "$0")/../test/lib.sh"
ROUNDS=${BENCH_ROUNDS:-3}
OLD=${BENCH_AB_OLD:-0.2.0}
DURATION=${BENCH_DURATION:-12}
ledger_packages
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || ledger_build
DIR=$(mktemp -d /tmp/ledger-bench-ab.XXXXXX)
chmod 755 "$DIR"
CLUSTER_CONF="shared_buffers = 1GB
max_connections = 100
wal_buffers = 64MB
max_wal_size = 8GB
checkpoint_timeout = 30min
jit = off
shared_preload_libraries = 'ledger'
ledger.database = 'ab_new'" cluster_start "$DIR/cluster"
for db in ab_old ab_new; do
	runuser -u postgres -- "$PGBIN/createdb" "$db"
done
"$PGBIN/psql" -X -q -d ab_old -c "CREATE EXTENSION ledger VERSION '$OLD'"
"$PGBIN/psql" -X -q -d ab_new -c "CREATE EXTENSION ledger"
for db in ab_old ab_new; do
	"$PGBIN/psql" -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
DO $$ BEGIN
  FOR i IN 1..10000 LOOP
    PERFORM ledger.create_account('acct-' || i, 'USD');
    PERFORM ledger.transfer('world', 'acct-' || i, 1000000);
  END LOOP;
END $$;
VACUUM ANALYZE;
SQL
done
echo "| round | $OLD schema TPS | current schema TPS | current / before |"
echo "|---|---:|---:|---:|"
sum_old=0; sum_new=0
for r in $(seq 1 "$ROUNDS"); do
	tps() {
		"$PGBIN/pgbench" -n -M prepared -c 32 -j 2 -T "$DURATION" -f "$LEDGER_ROOT/bench/transfer_uniform.sql" "$1" 2>/dev/null |
			awk '/^tps/ {print $3; exit}'
	}
	old=$(tps ab_old); new=$(tps ab_new)
	sum_old=$(echo "$sum_old + $old" | bc -l); sum_new=$(echo "$sum_new + $new" | bc -l)
	printf '| %d | %.0f | %.0f | %.3f |\n' "$r" "$old" "$new" "$(echo "$new / $old" | bc -l)"
done
printf '| all | %.0f | %.0f | %.3f |\n' "$(echo "$sum_old / $ROUNDS" | bc -l)" "$(echo "$sum_new / $ROUNDS" | bc -l)" "$(echo "$sum_new / $sum_old" | bc -l)"
