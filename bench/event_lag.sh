#!/usr/bin/env bash
# bench/event_lag.sh: the event worker under load.  Run as root:
#     bash bench/event_lag.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql), with
# ledger.event_worker = on and track_commit_timestamp = on.  Lag is the
# time from an event's commit to the commit of the worker's batch that
# applied it (pg_xact_commit_timestamp of the event row and of the
# transaction row that names it), over every event of a run.  Per round:
#   baseline_insert    a plain single-row INSERT, 32 clients (the ceiling)
#   saturated          event_append, 32 clients, as fast as they go, the
#                      worker applying meanwhile: append TPS, lag p50/p99,
#                      and how long the worker needed after the run ended
#   rate               event_append at a fixed 1,000/s (8 clients): lag
#                      p50/p99 at a load the worker keeps up with
#   rate_churn         the same while another session changes one
#                      account's min_balance every 0.5 s (an operator at
#                      work): lag p50/p99
#   connect            the first append on a fresh connection and the
#                      first INSERT (server-side ms, median of 9), and
#                      pgbench -C (a connection per transaction, 8 clients)
#                      of event_append against baseline_insert
# Writes bench/results/event_lag.md.
#
#   BENCH_DURATION=12   seconds per pgbench run
#   BENCH_ROUNDS=2      rounds
#   BENCH_SKIP_BUILD=1  bench the installed library
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-2}

BENCH_EXTRA_CONF="track_commit_timestamp = on
ledger.event_worker = on" bench_cluster event_lag

run() {	# run NAME SCRIPT CLIENTS [pgbench options] -> tps
	local name=$1 script=$2 c=$3 out=$WORK/$1.out
	shift 3
	q -c CHECKPOINT
	"$PGBIN/pgbench" -n -j 2 -c "$c" -T "$DURATION" "$@" -f "$BENCH_DIR/$script.sql" "$DB" >"$out" 2>&1 ||
		{ echo "pgbench $name failed: $(tail -3 "$out")" >&2; exit 1; }
	pgbench_tps "$out"
}

# lag of the events after seq $1, once all are applied: "p50 p99 max count" in ms
lag() {
	q -c "SELECT ledger.catch_up(NULL, '10 min')" >/dev/null
	q -F ' ' -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	                    round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
	                    round(max(ms)::numeric, 1), count(*)
	               FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(t.xmin)
	                                      - pg_xact_commit_timestamp(e.xmin)) * 1000 AS ms
	                       FROM ledger.event e JOIN ledger.transaction t ON t.event_id = e.id
	                      WHERE e.seq > $1) l"
}
last_seq() { q -c "SELECT coalesce(max(seq), 0) FROM ledger.event"; }

# churn: one account's min_balance changed every 0.5 s until $WORK/churn.stop
q -c "SELECT ledger.create_account('churn-target', 'USD')" >/dev/null
churn() {
	rm -f "$WORK/churn.stop"
	(
		k=0
		while [ ! -e "$WORK/churn.stop" ]; do
			k=$((k + 1))
			echo "UPDATE ledger.account SET min_balance = -$((k % 7)) WHERE code = 'churn-target';"
			echo "SELECT pg_sleep(0.5);"
		done | q >/dev/null
	) &
	CHURN=$!
}

# the first statement on a fresh connection, server-side ms
fresh() {
	"$PGBIN/psql" -X -q -At -d "$DB" -c "$1"
}
APPEND="SELECT extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000
          FROM (SELECT ledger.append_event('acct-1', 'transfer', jsonb_build_object('from_account',
                'acct-1', 'to_account', 'acct-2', 'amount', '0.01'))) e"
INSERT="WITH i AS (INSERT INTO bench.baseline (amount) VALUES (1.00) RETURNING 1)
        SELECT extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000 FROM i"

report=$RESULTS/event_lag.md
{
	echo "# bench/event_lag.sh, $(date -u +%Y-%m-%d), ${DURATION}s runs, event worker on"
	echo
	echo "| round | baseline_insert (32) | saturated append (/ baseline) | saturated lag p50 / p99 ms | drain after | 1,000/s lag p50 / p99 ms | with churn p50 / p99 ms | first append / first INSERT ms | -C append / -C insert |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$report"
for r in $(seq 1 "$ROUNDS"); do
	base=$(run baseline "baseline_insert" 32)

	from=$(last_seq)
	sat=$(run saturated event_append 32)
	t0=$(date +%s.%N)
	read -r s50 s99 smax sn <<<"$(lag "$from")"
	drain=$(echo "$(date +%s.%N) - $t0" | bc -l)

	from=$(last_seq)
	run rate event_append 8 -R 1000 >/dev/null
	read -r r50 r99 rmax rn <<<"$(lag "$from")"

	from=$(last_seq)
	churn
	run rate_churn event_append 8 -R 1000 >/dev/null
	touch "$WORK/churn.stop"; wait "$CHURN"
	read -r c50 c99 cmax cn <<<"$(lag "$from")"

	for i in $(seq 1 9); do fresh "$APPEND"; done >"$WORK/first-append"
	for i in $(seq 1 9); do fresh "$INSERT"; done >"$WORK/first-insert"
	fa=$(median <"$WORK/first-append" | xargs printf '%.1f')
	fi_=$(median <"$WORK/first-insert" | xargs printf '%.1f')
	ci=$(run C-insert baseline_insert 8 -C)
	ca=$(run C-append event_append 8 -C)
	q -c "SELECT ledger.catch_up(NULL, '10 min')" >/dev/null

	printf '== round %s: baseline %.0f; saturated append %.0f (%s), lag p50 %s p99 %s max %s ms over %s events, drained %.1f s after; 1000/s lag p50 %s p99 %s max %s (%s events); with churn p50 %s p99 %s max %s (%s events); first append %s ms, first insert %s ms; -C append %.0f, -C insert %.0f (%s)\n' \
		"$r" "$base" "$sat" "$(ratio "$sat" "$base")" "$s50" "$s99" "$smax" "$sn" "$drain" \
		"$r50" "$r99" "$rmax" "$rn" "$c50" "$c99" "$cmax" "$cn" "$fa" "$fi_" "$ca" "$ci" "$(ratio "$ca" "$ci")"
	printf '| %s | %.0f | %.0f (%s) | %s / %s | %.1f s | %s / %s | %s / %s | %s / %s | %.0f / %.0f (%s) |\n' \
		"$r" "$base" "$sat" "$(ratio "$sat" "$base")" "$s50" "$s99" "$drain" "$r50" "$r99" "$c50" "$c99" \
		"$fa" "$fi_" "$ca" "$ci" "$(ratio "$ca" "$ci")" >>"$report"
done
q -F ' ' -c "SELECT 'worker:', state, batches, applied, rejected, errors FROM ledger.event_worker_status()"
[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	echo "== reconcile: clean" || echo "== reconcile: MISMATCHES" >&2
echo "== written to $report"
