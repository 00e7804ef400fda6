#!/usr/bin/env bash
# bench/floor.sh: how fast could any implementation write what transfers
# write?  As root:
#     bash bench/floor.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql), plus
# bench/floor_setup.sql: shadow tables with the ledger's columns, defaults,
# constraints and indexes, bench.floor_batch(n), which writes the rows of n
# uniform transfers with set-based SQL and no checks at all, and
# bench.floor_transfer, one transfer's rows written by plain PL/pgSQL.  Per
# round (BENCH_ROUNDS, 2; BENCH_DURATION, 12 s), interleaved:
#   baseline_insert   a single-row INSERT per transaction, 8 clients
#   floor_copy        COPY of only the 1,000 transaction rows and 2,000
#                     journal entries of a batch (PostgreSQL's multi-row
#                     insert, its fastest write), no balance or daily row,
#                     8 clients
#   floor_uniform     floor_batch(1000), 8 clients
#   batch_uniform     ledger.transfer_batch of 1,000, 8 clients
#   floor_single      floor_transfer, 1 client
#   transfer_uniform  ledger.transfer, 1 client
#   floor_copy        1 client
#   floor_uniform     floor_batch(1000), 1 client
#   batch_uniform     ledger.transfer_batch of 1,000, 1 client
#   baseline_insert   32 clients
#   floor_single      32 clients
#   transfer_uniform  32 clients
# Transfers (or rows) per second, and each against the batch issue's
# targets: batch/8 >= 3x INSERT/8, batch/1 >= 10x transfer/1, transfer/32
# >= 0.5x INSERT/32.  Writes bench/results/floor.md.
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-2}

bench_cluster floor
q -f "$BENCH_DIR/floor_setup.sql" >/dev/null
# floor_copy reads files the server can open, so it is made in $WORK.
q -c "COPY bench.f_copy_tx TO STDOUT" >"$WORK/tx.tsv"
q -c "COPY bench.f_copy_je TO STDOUT" >"$WORK/je.tsv"
chmod 644 "$WORK"/*.tsv
cat >"$WORK/floor_copy.sql" <<SQL
-- floor_copy: the transaction rows and journal entries of 1,000 transfers
-- (bench/floor_setup.sql), nothing else, in one transaction.
BEGIN;
COPY bench.f_tx (kind, created_at) FROM '$WORK/tx.tsv';
COPY bench.f_je (transaction_id, account_id, amount, created_at) FROM '$WORK/je.tsv';
COMMIT;
SQL
run() { CLIENTS=$2 bench_tps_p99 "$1" | awk -v k="$3" '{ printf "%.0f\n", $1 * k }'; }
copy() { BENCH_DIR=$WORK run floor_copy "$1" 1000; }

report=$RESULTS/floor.md
{
	echo "# bench/floor.sh, $(date -u +%Y-%m-%d), ${DURATION}s runs; transfers (or rows) per second"
	echo
	echo "| round | INSERT/8 | COPY of journal and transaction rows only/8 (/ INSERT) | floor batch/8 (/ INSERT) | batch/8 (/ INSERT) | floor single/1 | transfer/1 | COPY rows only/1 (/ transfer) | floor batch/1 (/ transfer) | batch/1 (/ transfer) | INSERT/32 | floor single/32 (/ INSERT) | transfer/32 (/ INSERT) |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
} >"$report"
for r in $(seq 1 "$ROUNDS"); do
	ins8=$(run baseline_insert 8 1)
	c8=$(copy 8)
	fb8=$(run floor_uniform 8 1000)
	b8=$(run batch_uniform 8 1000)
	fs1=$(run floor_single 1 1)
	t1=$(run transfer_uniform 1 1)
	c1=$(copy 1)
	fb1=$(run floor_uniform 1 1000)
	b1=$(run batch_uniform 1 1000)
	ins32=$(run baseline_insert 32 1)
	fs32=$(run floor_single 32 1)
	t32=$(run transfer_uniform 32 1)
	line="| $r | $ins8 | $c8 ($(ratio "$c8" "$ins8")) | $fb8 ($(ratio "$fb8" "$ins8")) | $b8 ($(ratio "$b8" "$ins8")) | $fs1 | $t1 | $c1 ($(ratio "$c1" "$t1")) | $fb1 ($(ratio "$fb1" "$t1")) | $b1 ($(ratio "$b1" "$t1")) | $ins32 | $fs32 ($(ratio "$fs32" "$ins32")) | $t32 ($(ratio "$t32" "$ins32")) |"
	echo "== round $r: $line"
	echo "$line" >>"$report"
	bench_check_round "$r"
done
echo "== written to $report"
