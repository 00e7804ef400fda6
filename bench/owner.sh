#!/usr/bin/env bash
# bench/owner.sh: what the acting-owner check costs.  Run as root:
#     bash bench/owner.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql); every
# account acct-N gets owner owner-N.  Per round, interleaved, 32 clients:
# transfer_tx (a transfer in BEGIN/COMMIT after a set_config of an unused
# setting) and transfer_owner (the same
# with SET LOCAL-style set_config of ledger.acting_owner, so every debit is
# checked), with TPS and p99.  Writes bench/results/owner.md.
#
#   BENCH_DURATION=12  BENCH_CLIENTS=32  BENCH_ROUNDS=3  BENCH_SKIP_BUILD=1
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

DURATION=${BENCH_DURATION:-12}
CLIENTS=${BENCH_CLIENTS:-32}
ROUNDS=${BENCH_ROUNDS:-3}
BENCH_DIR=$LEDGER_ROOT/bench
RESULTS=$BENCH_DIR/results
DB=ledger_bench
mkdir -p "$RESULTS"

bench_cluster owner
q -c "UPDATE ledger.account SET owner_id = 'owner-' || substr(code, 6) WHERE code LIKE 'acct-%'" >/dev/null
q -c "VACUUM ANALYZE ledger.account" >/dev/null

run() { bench_tps_p99 "$1"; }

report=$RESULTS/owner.md
{
	echo "# bench/owner.sh, $(date -u +%Y-%m-%d), $CLIENTS clients, ${DURATION}s runs"
	echo
	echo "| round | transfer_tx TPS (p99 ms) | transfer_owner TPS (p99 ms) | owner / plain |"
	echo "|---:|---:|---:|---:|"
} >"$report"
for r in $(seq 1 "$ROUNDS"); do
	read -r plain plain99 <<<"$(run transfer_tx)"
	read -r owner owner99 <<<"$(run transfer_owner)"
	printf '== round %s: transfer_tx %.0f (p99 %s ms), transfer_owner %.0f (p99 %s ms): %s\n' \
		"$r" "$plain" "$plain99" "$owner" "$owner99" "$(ratio "$owner" "$plain")"
	printf '| %s | %.0f (%s) | %.0f (%s) | %s |\n' "$r" "$plain" "$plain99" "$owner" "$owner99" \
		"$(ratio "$owner" "$plain")" >>"$report"
done
[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	echo "== reconcile: clean" || echo "== reconcile: MISMATCHES" >&2
echo "== written to $report"
