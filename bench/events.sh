#!/usr/bin/env bash
# bench/events.sh: events against direct calls.  Run as root:
#     bash bench/events.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql).  Per
# round, every run of the same length and client count, in this order:
#   baseline_insert   a plain single-row INSERT (the ceiling of one commit)
#   event_append      ledger.append_event of a transfer (one insert)
#   transfer_uniform  the same transfers as direct ledger.transfer calls
#   apply             one session runs ledger.apply_events(1000) until
#                     nothing is left, applying what event_append accepted:
#                     events applied per second, against transfer_uniform
#                     (32 clients) and against transfer_uniform at 1 client
#   transfer_1        ledger.transfer from 1 client (what one session of
#                     direct calls does)
# Writes bench/results/events.md.
#
#   BENCH_DURATION=12   seconds per pgbench run
#   BENCH_CLIENTS=32    clients of the pgbench runs
#   BENCH_ROUNDS=2      rounds
#   BENCH_SKIP_BUILD=1  bench the installed library
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

CLIENTS=${BENCH_CLIENTS:-32}
ROUNDS=${BENCH_ROUNDS:-2}

bench_cluster events

run() {	# run SCRIPT CLIENTS -> tps
	local out=$WORK/$1-$2.out
	q -c CHECKPOINT
	"$PGBIN/pgbench" -n -j 2 -c "$2" -T "$DURATION" -f "$BENCH_DIR/$1.sql" "$DB" >"$out" 2>&1 ||
		{ echo "pgbench $1 failed: $(tail -3 "$out")" >&2; exit 1; }
	pgbench_tps "$out"
}

report=$RESULTS/events.md
{
	echo "# bench/events.sh, $(date -u +%Y-%m-%d), $CLIENTS clients, ${DURATION}s runs"
	echo
	echo "| round | baseline_insert | event_append (/ baseline) | transfer_uniform (/ baseline) | applied events/s (/ transfer_uniform, / transfer_1) | transfer_1 |"
	echo "|---:|---:|---:|---:|---:|---:|"
} >"$report"
for r in $(seq 1 "$ROUNDS"); do
	base=$(run baseline_insert "$CLIENTS")
	append=$(run event_append "$CLIENTS")
	direct=$(run transfer_uniform "$CLIENTS")
	pending=$(q -c "SELECT events FROM ledger.projection_lag()")
	start=$(date +%s.%N)
	applied=0
	while :; do
		n=$(q -c "SELECT ledger.apply_events(1000)")
		[ "$n" -gt 0 ] || break
		applied=$((applied + n))
	done
	secs=$(echo "$(date +%s.%N) - $start" | bc -l)
	rate=$(echo "$applied / $secs" | bc -l)
	one=$(run transfer_1 1)
	rejected=$(q -c "SELECT rejected FROM ledger.projection")
	printf '== round %s: baseline %.0f, append %.0f (%s), transfer_uniform %.0f (%s); applied %s of %s pending in %.1f s = %.0f/s (%s of transfer_uniform, %s of transfer_1 %.0f); rejected so far %s\n' \
		"$r" "$base" "$append" "$(ratio "$append" "$base")" "$direct" "$(ratio "$direct" "$base")" \
		"$applied" "$pending" "$secs" "$rate" "$(ratio "$rate" "$direct")" "$(ratio "$rate" "$one")" "$one" "$rejected"
	printf '| %s | %.0f | %.0f (%s) | %.0f (%s) | %.0f (%s, %s) | %.0f |\n' "$r" "$base" "$append" \
		"$(ratio "$append" "$base")" "$direct" "$(ratio "$direct" "$base")" "$rate" \
		"$(ratio "$rate" "$direct")" "$(ratio "$rate" "$one")" "$one" >>"$report"
done
[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	echo "== reconcile: clean" || echo "== reconcile: MISMATCHES" >&2
echo "== written to $report"
