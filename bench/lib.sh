#!/usr/bin/env bash
# bench/lib.sh: what the benchmark scripts share, sourced after test/lib.sh.
#
#   BENCH_SERVER_CONF   the postgresql.conf lines of every benchmark cluster:
#                       durable commits on, no checkpoint inside a run
#   median              the median of the numbers on stdin
#   ratio A B           A / B with two decimals ("n/a" when B is 0)
#   pgbench_tps FILE    pgbench's tps (without initial connection time, or
#                       with -C including the reconnections)
#   bench_cluster NAME  build (unless BENCH_SKIP_BUILD=1), start a cluster
#                       with these settings and ledger preloaded in
#                       /tmp/ledger-NAME.*, create database $DB with the
#                       extension and bench/load.sql's data; defines q
#                       (psql on $DB) and sets WORK; more settings
#                       from $BENCH_EXTRA_CONF
#   bench_check_round R after round R: fold, then say whether reconcile is
#                       clean and test/invariants.sql holds
#
# It also sets what every script uses: BENCH_DIR (bench/), RESULTS
# (bench/results, made here), DB (the database benchmarked) and DURATION
# (seconds per pgbench run, $BENCH_DURATION, 12).  Each script sets its
# own ROUNDS.

BENCH_DIR=$LEDGER_ROOT/bench
RESULTS=$BENCH_DIR/results
DB=ledger_bench
DURATION=${BENCH_DURATION:-12}
mkdir -p "$RESULTS"

BENCH_SERVER_CONF="shared_buffers = 1GB
max_connections = 100
fsync = on
synchronous_commit = on
full_page_writes = on
wal_buffers = 64MB
wal_level = replica
checkpoint_timeout = 30min
max_wal_size = 8GB
min_wal_size = 1GB
checkpoint_completion_target = 0.9
autovacuum = on
jit = off
log_min_messages = warning"

median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "NaN"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'
}

pgbench_tps() {
	sed -n 's/^tps = \([0-9.]*\) (\(without initial connection\|including reconnection\).*/\1/p' "$1" | head -1
}

bench_cluster() {
	ledger_packages
	[ "${BENCH_SKIP_BUILD:-0}" = 1 ] || ledger_build
	WORK=$(mktemp -d "/tmp/ledger-$1.XXXXXX")
	chmod 755 "$WORK"
	CLUSTER_CONF="$BENCH_SERVER_CONF
shared_preload_libraries = 'ledger'
ledger.database = '$DB'
${BENCH_EXTRA_CONF:-}" cluster_start "$WORK/cluster"
	trap 'cluster_stop; rm -rf "$WORK"' EXIT
	q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
	runuser -u postgres -- "$PGBIN/createdb" "$DB"
	q -c 'CREATE EXTENSION ledger'
	echo "== loading bench/load.sql"
	q -f "$BENCH_DIR/load.sql" >/dev/null
}

# bench_tps_p99 SCRIPT: pgbench of bench/SCRIPT.sql at $CLIENTS clients for
# $DURATION s on $DB; prints "tps p99_ms" (p99 from the transaction log).
bench_tps_p99() {
	local out=$WORK/$1.out
	q -c CHECKPOINT
	"$PGBIN/pgbench" -n -j 2 -c "$CLIENTS" -T "$DURATION" -M prepared -l --log-prefix="$WORK/lat-$1" \
		-f "$BENCH_DIR/$1.sql" "$DB" >"$out" 2>&1 ||
		{ echo "pgbench $1 failed: $(tail -3 "$out")" >&2; exit 1; }
	printf '%s %s\n' "$(pgbench_tps "$out")" \
		"$(cat "$WORK"/lat-"$1".* | awk '{ print $3 / 1000 }' | sort -g |
		   awk '{ v[NR] = $1 } END { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.1f", v[i] }')"
	rm -f "$WORK"/lat-"$1".*
}

bench_check_round() {
	q -c "SELECT ledger.fold()" >/dev/null
	[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
		echo "== round $1: reconcile clean" || echo "== round $1: reconcile finds MISMATCHES" >&2
	local inv
	inv=$(q -F ': ' -f "$LEDGER_ROOT/test/invariants.sql" 2>&1)
	[ -z "$inv" ] && echo "== round $1: invariants hold" || echo "== round $1: invariants FAIL: $inv" >&2
}
