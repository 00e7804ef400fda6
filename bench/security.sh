#!/usr/bin/env bash
# bench/security.sh: what the security checks cost.  Run as root:
#     bash bench/security.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql); every
# account acct-N gets owner owner-N.  Per round, interleaved, 32 clients:
#   transfer_tx      a transfer in BEGIN/COMMIT after a set_config of an
#                    unused setting: no rate limit, no acting owner
#   rate limited     the same with a rate limit on the benchmark's role far
#                    above the load (1,000,000 per second, burst 1,000,000):
#                    every call takes a token from the one shared bucket
#   transfer_owner   the same as transfer_tx with ledger.acting_owner set
#                    (set_config, local), so every debit is checked
# with TPS and p99; odd rounds in this order, even rounds in the reverse.
# Writes bench/results/security.md.
#
#   BENCH_DURATION=12  BENCH_CLIENTS=32  BENCH_ROUNDS=4  BENCH_SKIP_BUILD=1
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

CLIENTS=${BENCH_CLIENTS:-32}
ROUNDS=${BENCH_ROUNDS:-4}

bench_cluster security
q -c "UPDATE ledger.account SET owner_id = 'owner-' || substr(code, 6) WHERE code LIKE 'acct-%'" >/dev/null
q -c "VACUUM ANALYZE ledger.account" >/dev/null

run() { bench_tps_p99 "$1"; }

report=$RESULTS/security.md
{
	echo "# bench/security.sh, $(date -u +%Y-%m-%d), $CLIENTS clients, ${DURATION}s runs"
	echo
	echo "| round | transfer_tx TPS (p99 ms) | rate limited TPS (p99 ms) | limited / plain | transfer_owner TPS (p99 ms) | owner / plain |"
	echo "|---:|---:|---:|---:|---:|---:|"
} >"$report"
for r in $(seq 1 "$ROUNDS"); do
	# the tables grow as the rounds go: odd rounds run the three in one
	# order, even rounds in the other, so the drift does not favour one
	if [ $((r % 2)) = 1 ]; then order="plain limited owner"; else order="owner limited plain"; fi
	for w in $order; do
		case $w in
		plain) read -r plain plain99 <<<"$(run transfer_tx)" ;;
		limited)
			q -c "SELECT ledger.set_rate_limit(current_user, 1000000, 1000000)" >/dev/null
			read -r limited limited99 <<<"$(run transfer_tx)"
			refused=$(q -c "SELECT refused FROM ledger.rate_limits WHERE role = current_user")
			q -c "SELECT ledger.remove_rate_limit(current_user)" >/dev/null
			;;
		owner) read -r owner owner99 <<<"$(run transfer_owner)" ;;
		esac
	done
	printf '== round %s: transfer_tx %.0f (p99 %s ms), rate limited %.0f (p99 %s ms, %s refused): %s, transfer_owner %.0f (p99 %s ms): %s\n' \
		"$r" "$plain" "$plain99" "$limited" "$limited99" "$refused" "$(ratio "$limited" "$plain")" \
		"$owner" "$owner99" "$(ratio "$owner" "$plain")"
	printf '| %s | %.0f (%s) | %.0f (%s) | %s | %.0f (%s) | %s |\n' "$r" "$plain" "$plain99" \
		"$limited" "$limited99" "$(ratio "$limited" "$plain")" "$owner" "$owner99" \
		"$(ratio "$owner" "$plain")" >>"$report"
done
[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	echo "== reconcile: clean" || echo "== reconcile: MISMATCHES" >&2
echo "== written to $report"
