#!/usr/bin/env bash
# bench/batch.sh: batches against single calls and raw INSERTs.  As root:
#     bash bench/batch.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql).
# Per round, interleaved (BENCH_ROUNDS, 2; BENCH_DURATION, 12 s):
#   baseline_insert   a single-row INSERT per transaction, 8 clients
#   batch_uniform     transfer_batch of 1,000 uniform transfers, 8 clients
#   transfer_uniform  one ledger.transfer per transaction, 1 client
#   batch_uniform     the same batches, 1 client
#   batch_hot         transfer_batch of 1,000 transfers that each credit or
#                     debit a hot account, 8 clients
# Transfers per second (a batch transaction counts 1,000) with p99, and the
# ratios the batch issue asks for.  After each round: reconcile finds
# nothing and the invariants of test/invariants.sql hold.  Writes
# bench/results/batch.md.
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-2}

bench_cluster batch
run() { CLIENTS=$2 bench_tps_p99 "$1"; }

report=$RESULTS/batch.md
{
	echo "# bench/batch.sh, $(date -u +%Y-%m-%d), ${DURATION}s runs; transfers (or rows) per second (p99 ms of a transaction)"
	echo
	echo "| round | INSERT, 8 clients | batch, 8 clients | batch / INSERT | transfer, 1 client | batch, 1 client | batch / transfer | hot batch, 8 clients | hot / uniform |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$report"
for r in $(seq 1 "$ROUNDS"); do
	read -r ins ins99 <<<"$(run baseline_insert 8)"
	read -r b8 b8_99 <<<"$(run batch_uniform 8)"
	read -r one one99 <<<"$(run transfer_uniform 1)"
	read -r b1 b1_99 <<<"$(run batch_uniform 1)"
	read -r hot hot99 <<<"$(run batch_hot 8)"
	b8=$(awk -v t="$b8" 'BEGIN { printf "%.0f", t * 1000 }')
	b1=$(awk -v t="$b1" 'BEGIN { printf "%.0f", t * 1000 }')
	hot=$(awk -v t="$hot" 'BEGIN { printf "%.0f", t * 1000 }')
	printf '== round %s: INSERT/8 %.0f, batch/8 %s (%s), transfer/1 %.0f, batch/1 %s (%s), hot batch/8 %s (%s)\n' \
		"$r" "$ins" "$b8" "$(ratio "$b8" "$ins")" "$one" "$b1" "$(ratio "$b1" "$one")" "$hot" "$(ratio "$hot" "$b8")"
	printf '| %s | %.0f (%s) | %s (%s) | %s | %.0f (%s) | %s (%s) | %s | %s (%s) | %s |\n' "$r" \
		"$ins" "$ins99" "$b8" "$b8_99" "$(ratio "$b8" "$ins")" "$one" "$one99" "$b1" "$b1_99" \
		"$(ratio "$b1" "$one")" "$hot" "$hot99" "$(ratio "$hot" "$b8")" >>"$report"
	bench_check_round "$r"
done
echo "== written to $report"
