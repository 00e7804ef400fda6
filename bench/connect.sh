#!/usr/bin/env bash
# bench/connect.sh: what a fresh connection pays, and what one account's
# change costs everybody else.  Run as root:
#     bash bench/connect.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql), grown
# to 50,000 accounts and later to 1,000,000.  Three measures, each next to
# a plain single-row INSERT measured in the same run:
#   connect  the first posting on a fresh connection (a transfer from
#            world-usd to a random account of all of them), and the second
#            one on that connection: server-side duration of the statement
#            (clock_timestamp() - statement_timestamp()) and psql's time,
#            median of BENCH_ROUNDS fresh connections; the same for the
#            first and second INSERT into bench.baseline.  With 50,000 and
#            with 1,000,000 accounts.
#   -C       pgbench -C (a new connection per transaction), 8 clients,
#            transfer_uniform against baseline_insert, interleaved.
#   churn    32 clients of transfer_uniform while another session changes
#            the min_balance of one account no client uses every 0.5 s,
#            against the same run without the changes, interleaved; also
#            baseline_insert at 32 clients.  TPS is given as pgbench counts
#            it and in steady state: from its per-second aggregate log,
#            leaving out each run's first 2 seconds (every client's first
#            posting included).
# Writes bench/results/connect.md.
#
#   BENCH_ONLY="connect C churn"  the measures to run
#   BENCH_ROUNDS=9        fresh connections per connect measure
#   BENCH_DURATION=12     seconds per pgbench run
#   BENCH_PAIRS=2         interleaved pairs of -C and churn runs
#   BENCH_SKIP_BUILD=1    bench the installed library
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

ONLY=" ${BENCH_ONLY:-connect C churn} "
ROUNDS=${BENCH_ROUNDS:-9}
PAIRS=${BENCH_PAIRS:-2}

bench_cluster connect

# Grow to n accounts (USD, unfunded; the first-posting transfer credits
# them from world-usd).  Rows straight into the tables, as a bulk import
# would, then reconcile to prove them consistent.
grow_to() {
	q >/dev/null <<SQL
INSERT INTO ledger.account (code, asset)
SELECT 'more-' || i, 'USD' FROM generate_series((SELECT count(*) FROM ledger.account) + 1, $1) i;
INSERT INTO ledger.account_balance (account_id, balance)
SELECT a.id, 0 FROM ledger.account a
 WHERE NOT EXISTS (SELECT 1 FROM ledger.account_balance b WHERE b.account_id = a.id);
VACUUM ANALYZE ledger.account;
VACUUM ANALYZE ledger.account_balance;
SQL
	[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] ||
		{ echo "reconcile found mismatches after growing to $1 accounts" >&2; exit 1; }
}

# One fresh connection: two statements, each printing the server-side ms,
# and psql's \timing lines.  Prints "server1 server2 client1 client2".
fresh() {
	"$PGBIN/psql" -X -q -At -d "$DB" -c '\timing on' -c "$1" -c "$1" 2>&1 |
		awk '/^Time: / { c[++nc] = $2; next } /^[0-9.]+$/ { s[++ns] = $1 }
		     END { printf "%s %s %s %s\n", s[1], s[2], c[1], c[2] }'
}
# the measured statements: the posting (to an account picked beforehand,
# so the statement is the call alone) and the INSERT
transfer_sql() {
	echo "SELECT extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000
	        FROM (SELECT ledger.transfer('world-usd', '$1', 1.00)) t"
}
INSERT="WITH i AS (INSERT INTO bench.baseline (amount) VALUES (1.00) RETURNING 1)
        SELECT extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000 FROM i"

declare -A CONNECT
measure_connect() {
	local n=$1 what i col code
	for what in transfer insert; do
		for ((i = 0; i < ROUNDS; i++)); do
			if [ "$what" = insert ]; then
				fresh "$INSERT"
			else
				code=$(q -c "SELECT code FROM ledger.account WHERE asset = 'USD' AND code <> 'world-usd' AND mode = 'cold'
				                AND id >= (SELECT floor(random() * max(id))::bigint FROM ledger.account) ORDER BY id LIMIT 1")
				fresh "$(transfer_sql "$code")"
			fi
		done >"$WORK/$what-$n"
		for col in 1 2 3 4; do
			CONNECT[$n/$what/$col]=$(awk -v c="$col" '{ print $c }' "$WORK/$what-$n" | median)
		done
		echo "== $n accounts, $what: first $(cut -d' ' -f1 "$WORK/$what-$n" | tr '\n' ' ')ms (server); second $(cut -d' ' -f2 "$WORK/$what-$n" | tr '\n' ' ')"
	done
}

# steady-state TPS from an aggregate log: transactions in whole seconds
# after the first two, over their span
steady_tps() {
	cat "$1".* | sort -n | awk '{ n[$1] += $2 } END { for (t in n) print t, n[t] }' | sort -n |
		awk 'NR == 1 { t0 = $1 } { if ($1 >= t0 + 2) { s += $2; k++ } } END { if (k > 1) printf "%.1f", s / k; else print "NaN" }'
}

declare -A TPS STEADY
run_pgbench() {	# name clients script extra-options...
	local name=$1 c=$2 script=$3 out
	shift 3
	out=$WORK/pgbench-$name.txt
	q -c CHECKPOINT
	"$PGBIN/pgbench" -n -j 2 -c "$c" -T "$DURATION" "$@" -f "$BENCH_DIR/$script.sql" \
		--aggregate-interval=1 -l --log-prefix="$WORK/agg-$name" "$DB" >"$out" 2>&1 ||
		echo "pgbench $name failed: $(grep -m1 -i error "$out")" >&2
	TPS[$name]=$(pgbench_tps "$out")
	STEADY[$name]=$(steady_tps "$WORK/agg-$name")
	rm -f "$WORK/agg-$name".*
	echo "== $name: ${TPS[$name]:-} tps, steady ${STEADY[$name]:-}"
}

want() { [[ $ONLY == *" $1 "* ]]; }

grow_to 50000
want connect && measure_connect 50000

for ((p = 1; p <= PAIRS; p++)); do
	want C || break
	run_pgbench "C-insert-$p" 8 baseline_insert -C -M extended
	run_pgbench "C-transfer-$p" 8 transfer_uniform -C -M extended
done

q -c "SELECT ledger.create_account('churn-target', 'USD')" >/dev/null
for ((p = 1; p <= PAIRS; p++)); do
	want churn || break
	run_pgbench "insert-$p" 32 baseline_insert -M prepared
	run_pgbench "quiet-$p" 32 transfer_uniform -M prepared
	rm -f "$WORK/churn.stop"
	# one session, one UPDATE every 0.5 s (a new connection each time
	# would cost this machine more CPU than the change itself)
	(
		k=0
		while [ ! -e "$WORK/churn.stop" ]; do
			echo "UPDATE ledger.account SET min_balance = $((k % 2)) WHERE code = 'churn-target';"
			k=$((k + 1))
			sleep 0.5
		done
		echo "$k" >"$WORK/churn.count"
	) | q &
	churner=$!
	run_pgbench "churn-$p" 32 transfer_uniform -M prepared
	touch "$WORK/churn.stop"
	wait "$churner"
	echo "== churn-$p: $(cat "$WORK/churn.count") account changes during the run"
done

if want connect; then
	grow_to 1000000
	measure_connect 1000000
fi
[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] ||
	echo "reconcile found mismatches after the runs" >&2

OUT=$RESULTS/connect.md
{
	echo "# ledger: connection cost and churn"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(q -c 'SHOW server_version'), ledger $(q -c 'SELECT ledger.version()'), commit $(git -C "$LEDGER_ROOT" rev-parse --short HEAD 2>/dev/null), $(nproc) cores. Settings of bench/lib.sh, ledger preloaded."
	echo
	echo "## First posting on a fresh connection (median of $ROUNDS connections, ms)"
	echo
	echo "| accounts | statement | first, server | second, server | first, psql | second, psql | first / first INSERT (server) |"
	echo "|---:|---|---:|---:|---:|---:|---:|"
	for n in 50000 1000000; do
		for what in transfer insert; do
			echo "| $n | $what | ${CONNECT[$n/$what/1]:-} | ${CONNECT[$n/$what/2]:-} | ${CONNECT[$n/$what/3]:-} | ${CONNECT[$n/$what/4]:-} | $(ratio "${CONNECT[$n/$what/1]:-}" "${CONNECT[$n/insert/1]:-}") |"
		done
	done
	echo
	echo "## pgbench -C, 8 clients, ${DURATION} s per run (TPS)"
	echo
	echo "| pair | INSERT | transfer | transfer / INSERT |"
	echo "|---:|---:|---:|---:|"
	for ((p = 1; p <= PAIRS; p++)); do
		echo "| $p | ${TPS[C-insert-$p]:-} | ${TPS[C-transfer-$p]:-} | $(ratio "${TPS[C-transfer-$p]:-}" "${TPS[C-insert-$p]:-}") |"
	done
	echo
	echo "## Churn: 32 clients, one unrelated account's floor changed every 0.5 s (TPS; steady = after each run's first 2 s)"
	echo
	echo "| pair | INSERT | quiet | churn | churn / quiet | quiet / INSERT | steady quiet | steady churn | steady churn / quiet |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for ((p = 1; p <= PAIRS; p++)); do
		echo "| $p | ${TPS[insert-$p]:-} | ${TPS[quiet-$p]:-} | ${TPS[churn-$p]:-} | $(ratio "${TPS[churn-$p]:-}" "${TPS[quiet-$p]:-}") | $(ratio "${TPS[quiet-$p]:-}" "${TPS[insert-$p]:-}") | ${STEADY[quiet-$p]:-} | ${STEADY[churn-$p]:-} | $(ratio "${STEADY[churn-$p]:-}" "${STEADY[quiet-$p]:-}") |"
	done
} >"$OUT"
cat "$OUT"
echo "== written to $OUT"
