#!/usr/bin/env bash
# bench/exchange.sh: exchanges against transfers.  Run as root:
#     bash bench/exchange.sh
# One cluster with bench/run.sh's settings and data (bench/load.sql), plus
# a token asset TOK (scale 8), a token account per user (tok-1 ..
# tok-10000, 1,000 TOK each), liquidity and spread accounts, and a TOK/USD
# rate refreshed before each run; the liquidity and spread accounts in hot
# mode unless BENCH_HOT=0.  Per round, every run of the same length
# and client count: baseline_insert, transfer_uniform, exchange (five legs:
# user, two liquidity accounts, user, spread; one token row).
# Writes bench/results/exchange.md.
#
#   BENCH_DURATION=12   seconds per pgbench run
#   BENCH_CLIENTS=32    clients
#   BENCH_ROUNDS=2      rounds
#   BENCH_SKIP_BUILD=1  bench the installed library
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

CLIENTS=${BENCH_CLIENTS:-32}
ROUNDS=${BENCH_ROUNDS:-2}

BENCH_EXTRA_CONF="ledger.max_rate_age = '10min'" bench_cluster exchange
echo "== tokens"
q >/dev/null <<'SQL'
SELECT ledger.create_asset('TOK', 8);
SELECT ledger.create_account('tok-mint', 'TOK', min_balance => NULL);
SELECT ledger.create_account('tok-liquidity', 'TOK', min_balance => NULL);
SELECT ledger.create_account('usd-liquidity', 'USD', min_balance => NULL);
SELECT ledger.create_account('usd-spread', 'USD');
SELECT ledger.set_exchange_accounts('TOK', 'tok-liquidity');
SELECT ledger.set_exchange_accounts('USD', 'usd-liquidity', 'usd-spread');
SELECT count(ledger.create_account('tok-' || i, 'TOK')) FROM generate_series(1, 10000) i;
SELECT count(ledger.transfer('tok-mint', 'tok-' || i, 1000)) FROM generate_series(1, 10000) i;
VACUUM ANALYZE;
SQL
# Every exchange touches both liquidity accounts and the spread account:
# three accounts shared by all clients.  BENCH_HOT=1 (the default) puts
# them in hot mode, as the README advises; BENCH_HOT=0 leaves them cold.
if [ "${BENCH_HOT:-1}" = 1 ]; then
	q -c "SELECT ledger.set_account_mode(code, 'hot') FROM unnest(ARRAY['tok-liquidity', 'usd-liquidity', 'usd-spread']) code" >/dev/null
fi

run() {	# run SCRIPT -> "tps p99", with a fresh rate
	q -c "SELECT ledger.set_exchange_rate('TOK', 'USD', 1.23456789)" >/dev/null
	bench_tps_p99 "$1"
}

report=$RESULTS/exchange.md
{
	echo "# bench/exchange.sh, $(date -u +%Y-%m-%d), $CLIENTS clients, ${DURATION}s runs, liquidity and spread accounts $([ "${BENCH_HOT:-1}" = 1 ] && echo hot || echo cold)"
	echo
	echo "| round | baseline_insert TPS (p99 ms) | transfer_uniform TPS (p99) | exchange TPS (p99) | exchange / transfer | exchange / baseline |"
	echo "|---:|---:|---:|---:|---:|---:|"
} >"$report"
for r in $(seq 1 "$ROUNDS"); do
	read -r base base99 <<<"$(run baseline_insert)"
	read -r tr tr99 <<<"$(run transfer_uniform)"
	read -r ex ex99 <<<"$(run exchange)"
	printf '== round %s: baseline %.0f (p99 %s ms), transfer %.0f (p99 %s), exchange %.0f (p99 %s): exchange/transfer %s, exchange/baseline %s\n' \
		"$r" "$base" "$base99" "$tr" "$tr99" "$ex" "$ex99" "$(ratio "$ex" "$tr")" "$(ratio "$ex" "$base")"
	printf '| %s | %.0f (%s) | %.0f (%s) | %.0f (%s) | %s | %s |\n' "$r" "$base" "$base99" "$tr" "$tr99" \
		"$ex" "$ex99" "$(ratio "$ex" "$tr")" "$(ratio "$ex" "$base")" >>"$report"
done
[ "$(q -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	echo "== reconcile: clean" || echo "== reconcile: MISMATCHES" >&2
echo "== written to $report"
