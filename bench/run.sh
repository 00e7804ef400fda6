#!/usr/bin/env bash
# bench/run.sh: throughput, latency and storage of the ledger API next to a
# plain single-row INSERT, on a throwaway cluster.  Run as root:
#     bash bench/run.sh
# Installs missing packages, builds and installs the extension, starts a
# cluster as user postgres on a Unix socket in a temp dir (never port 5432),
# loads bench/load.sql, runs every workload (bench/<workload>.sql) with
# pgbench at each client count, prints a markdown table and writes it to
# bench/results/latest.md.  See bench/README.md.
#
# Hot accounts: the cluster runs the fold worker in $DB (ledger.database),
# load.sql switches 'merchant-hot' and 'hot-source-hot' to hot mode, and the
# *_hot workloads are hot_credit/hot_debit on them.  During a *_hot run the
# fold lag and queue depth are sampled every 0.2 s; after it the queue is
# drained and the aggregation ratio taken from ledger.fold_worker_status().
# After all runs, if any *_hot workload ran, ledger.fold() and
# ledger.reconcile(repair => false) check the balances.
#
# Environment:
#   BENCH_DURATION=12        seconds per pgbench run
#   BENCH_CLIENTS="1 8 32"   client counts
#   BENCH_ONLY="..."         workloads to run (default: all, in the order below)
#   BENCH_DIAG=1             diagnostic run: preload pg_stat_statements
#                            (track = all, track_planning = on) and sample
#                            wait events every 0.1 s; writes
#                            bench/results/diag-<workload>-<clients>.txt.
#                            Numbers of a diagnostic run carry its overhead.
#   BENCH_CONF="..."         extra postgresql.conf lines
#   BENCH_SKIP_BUILD=1       bench the installed extension, do not build
#   KEEP=1                   leave the cluster and its temp dir behind
source "$(dirname "$0")/../test/lib.sh"
source "$(dirname "$0")/lib.sh"

ALL_WORKLOADS="baseline_insert transfer_uniform transfer_50 hot_credit hot_debit hot_credit_hot hot_debit_hot post_4legs hold_capture hold_contended"
CLIENTS=$(tr ',' ' ' <<<"${BENCH_CLIENTS:-1 8 32}")
WORKLOADS=$(tr ',' ' ' <<<"${BENCH_ONLY:-$ALL_WORKLOADS}")
DIAG=${BENCH_DIAG:-0}
# Relations whose growth is the ledger's storage.  ledger.hot_entry is the
# hot accounts' queue (rows appended by hot postings, deleted by the fold);
# it does not exist before 0.3.0 and then counts 0.
LEDGER_RELS="ledger.transaction ledger.journal_entry ledger.account_balance ledger.daily_balance ledger.hot_entry ledger.hold ledger.hold_event"
NRELS=$(wc -w <<<"$LEDGER_RELS")

for w in $WORKLOADS; do
	[ -f "$BENCH_DIR/$w.sql" ] || { echo "unknown workload: $w (known: $ALL_WORKLOADS)" >&2; exit 1; }
done
for c in $CLIENTS; do
	[[ $c =~ ^[0-9]+$ ]] && [ "$c" -ge 1 ] && [ "$c" -le 90 ] || { echo "bad client count: $c" >&2; exit 1; }
done
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 1 ] || { echo "bad BENCH_DURATION: $DURATION" >&2; exit 1; }

CLUSTER_CONF=$BENCH_SERVER_CONF
# ledger is preloaded, as the README recommends (hot accounts need it, and
# its fold worker serves ledger.database); a diagnostic run adds
# pg_stat_statements.
if [ "$DIAG" = 1 ]; then
	CLUSTER_CONF+="
shared_preload_libraries = 'ledger, pg_stat_statements'
ledger.database = '$DB'
pg_stat_statements.track = all
pg_stat_statements.track_planning = on
pg_stat_statements.max = 1000
track_io_timing = on"
else
	CLUSTER_CONF+="
shared_preload_libraries = 'ledger'
ledger.database = '$DB'"
fi
[ -n "${BENCH_CONF:-}" ] && CLUSTER_CONF+="
$BENCH_CONF"

ledger_packages
if [ "${BENCH_SKIP_BUILD:-0}" = 1 ]; then
	echo "== BENCH_SKIP_BUILD=1: using the installed ledger"
else
	ledger_build
fi

WORK=$(mktemp -d /tmp/ledger-bench.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	cluster_stop
	if [ "${KEEP:-0}" = 1 ]; then
		echo "== kept: $WORK (PGHOST=$PGHOST PGPORT=$PGPORT)"
	else
		rm -rf "$WORK"
	fi
}
cluster_start "$WORK/cluster"
trap cleanup EXIT
LOGS=$WORK/cluster/pgbench	# per-transaction logs, inside the cluster temp dir
mkdir -p "$LOGS"

q() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

runuser -u postgres -- "$PGBIN/createdb" "$DB"
# The posting API is in every version; if the default version cannot be
# created (an upgrade script ahead of the library), bench the base version.
EXT_NOTE=""
if ! q -c 'CREATE EXTENSION ledger' 2>"$WORK/ext.err"; then
	EXT_NOTE="CREATE EXTENSION ledger failed ($(head -1 "$WORK/ext.err")); benchmarked VERSION '0.1.0'"
	echo "== $EXT_NOTE"
	q -c "CREATE EXTENSION ledger VERSION '0.1.0'"
fi
[ "$DIAG" = 1 ] && q -c 'CREATE EXTENSION pg_stat_statements'

echo "== loading accounts"
t0=$(date +%s.%N)
"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -f "$BENCH_DIR/load.sql" >/dev/null 2>"$WORK/load.err" ||
	{ cat "$WORK/load.err" >&2; exit 1; }
cat "$WORK/load.err" >&2
LOAD_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "== loaded in ${LOAD_SECS}s"

# Hot mode: load.sql switched merchant-hot and hot-source-hot to hot mode, or
# printed why it could not (no hot accounts in this version, fold worker
# not ready, set_account_mode failed).  Without both, the *_hot workloads
# would silently run cold: they are skipped, and the report says why.
HOT_NOTE=""
HOT_ACCOUNTS=0
if [ "$(q -c "SELECT to_regprocedure('ledger.fold_worker_status()') IS NOT NULL")" = t ]; then
	HOT_ACCOUNTS=$(q -c "SELECT count(*) FROM ledger.account WHERE mode = 'hot' AND code IN ('merchant-hot', 'hot-source-hot')")
fi
if [ "$HOT_ACCOUNTS" = 2 ]; then
	HOT_NOTE="merchant-hot and hot-source-hot in hot mode; fold worker: $(q -c "SELECT format('%s, pid %s, ready %s', state, pid, ready) FROM ledger.fold_worker_status()")"
else
	skipped=""
	kept=""
	for w in $WORKLOADS; do
		if [[ $w == *_hot ]]; then skipped+=" $w"; else kept+=" $w"; fi
	done
	WORKLOADS=${kept# }
	HOT_NOTE="hot mode NOT set up ($HOT_ACCOUNTS of 2 accounts hot): $(grep -m1 -E 'WARNING|ERROR' "$WORK/load.err" | tr -s ' ' || echo 'see the load output')"
	[ -n "$skipped" ] && HOT_NOTE+="; skipped:$skipped"
	[ -n "$WORKLOADS" ] || { echo "no workload left to run" >&2; exit 1; }
fi
echo "== hot accounts: $HOT_NOTE"

# ---- header --------------------------------------------------------------
OUT=$WORK/latest.md
nruns=$(( $(wc -w <<<"$WORKLOADS") * $(wc -w <<<"$CLIENTS") ))
GIT_REV=$(git -C "$LEDGER_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$LEDGER_ROOT" status --porcelain -- src sql ledger.control Makefile 2>/dev/null)" ] ||
	GIT_REV+=" + uncommitted changes in src/sql"
[ "${BENCH_SKIP_BUILD:-0}" = 1 ] && GIT_REV+=" (not rebuilt: installed library)"
{
	echo "# ledger benchmark"
	echo
	echo "| | |"
	echo "|---|---|"
	echo "| date | $(date -u '+%Y-%m-%d %H:%M:%S UTC') |"
	echo "| PostgreSQL | $(q -c 'SHOW server_version') |"
	echo "| ledger | library $(q -c 'SELECT ledger.version()'), extension $(q -c "SELECT extversion FROM pg_extension WHERE extname = 'ledger'"), commit $GIT_REV |"
	echo "| CPU | $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)) |"
	echo "| memory | $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |"
	echo "| pgbench | -n -M prepared -j 2 -T $DURATION, clients: $CLIENTS |"
	echo "| runs | $nruns x ${DURATION}s; load ${LOAD_SECS}s |"
	[ "$DIAG" = 1 ] && echo "| diagnostic | pg_stat_statements (track = all, track_planning = on) and wait-event sampling on: numbers carry their overhead |"
	[ -n "$EXT_NOTE" ] && echo "| note | $EXT_NOTE |"
	echo "| hot accounts | $HOT_NOTE |"
	echo
	echo "Cluster settings (postgresql.conf):"
	echo
	echo '```'
	echo "$CLUSTER_CONF"
	echo '```'
	echo
	echo "Checked on the server: $(q -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('shared_buffers', 'max_connections', 'fsync', 'synchronous_commit', 'wal_buffers', 'checkpoint_timeout', 'max_wal_size', 'full_page_writes', 'autovacuum', 'shared_preload_libraries', 'ledger.database', 'ledger.fold_interval', 'ledger.max_hot_accounts')")"
	echo
} >"$OUT"
cat "$OUT"

# ---- one run -------------------------------------------------------------
# sizes: one number per relation of $LEDGER_RELS, then bench.baseline
sizes() {
	q -c "SELECT string_agg(coalesce(pg_total_relation_size(to_regclass(r)), 0)::text, ' ' ORDER BY o)
	        FROM unnest(string_to_array('$LEDGER_RELS bench.baseline', ' ')) WITH ORDINALITY AS t(r, o)"
}

declare -A TPS FAILED P50 P99 BYTES TXNS NOTE GROWTH WTXNS
declare -A LAG99 LAGMAX QMAX NSAMP FOLDED WRITES AGG DRAIN
ERRORS=""

sample_waits() {	# sample wait events of active backends until killed
	while :; do
		q -c "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
		       WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()" 2>/dev/null || true
		sleep 0.1
	done
}

# Hot runs: the fold worker's counters, "folded_rows balance_writes pid".
fold_status() {
	q -F ' ' -c 'SELECT folded_rows, balance_writes, coalesce(pid, 0) FROM ledger.fold_worker_status()'
}

# Sample the overall fold lag and queue depth every 0.2 s, one line
# "fold_lag_seconds unfolded_entries" per sample, until $WORK/hot.stop exists
# (a stop file, not kill, so no psql is cut off mid-sample).
sample_hot() {
	while [ ! -e "$WORK/hot.stop" ]; do
		q -F ' ' -c "SELECT fold_lag_seconds, unfolded_entries FROM ledger.hot_account_stats WHERE account = '*'" || true
		sleep 0.2
	done
}

# Wait until the fold worker has emptied the hot queue (at most 60 s).
# Prints the seconds waited, or "timeout:<entries left>".
drain_hot() {
	local t0 n i
	t0=$(date +%s.%N)
	for ((i = 0; i < 600; i++)); do
		n=$(q -c 'SELECT count(*) FROM ledger.hot_entry')
		if [ "$n" = 0 ]; then
			awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }'
			return
		fi
		sleep 0.1
	done
	echo "timeout:$n"
}

run_one() {
	local w=$1 c=$2 prefix=$LOGS/$1-c$2 out before after rc=0 i hot=0
	out=$RESULTS/pgbench-$w-c$c.txt
	[[ $w == *_hot ]] && hot=1
	q -c CHECKPOINT
	before=($(sizes))
	[ "$DIAG" = 1 ] && q -c 'SELECT pg_stat_statements_reset()' >/dev/null
	local sampler="" hot_sampler="" fs_before=() fs_after=() drained=""
	if [ "$DIAG" = 1 ]; then
		sample_waits >"$WORK/waits" &
		sampler=$!
	fi
	if [ "$hot" = 1 ]; then
		fs_before=($(fold_status))
		rm -f "$WORK/hot.stop"
		sample_hot >"$WORK/hot.samples" 2>"$WORK/hot.err" &
		hot_sampler=$!
	fi
	"$PGBIN/pgbench" -n -M prepared -j 2 -c "$c" -T "$DURATION" \
		-f "$BENCH_DIR/$w.sql" -l --log-prefix="$prefix" "$DB" >"$out" 2>&1 || rc=$?
	[ -n "$sampler" ] && { kill "$sampler"; wait "$sampler" 2>/dev/null || true; }
	if [ -n "$hot_sampler" ]; then
		touch "$WORK/hot.stop"
		wait "$hot_sampler" || true
		# fold everything the run queued before the counters and sizes are
		# read, so both cover the whole run; the worker updates its
		# counters just after its commit, hence the short sleep
		drained=$(drain_hot)
		sleep 0.3
		fs_after=($(fold_status))
	fi
	q -c CHECKPOINT
	after=($(sizes))

	local k=$w/$c
	TXNS[$k]=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
	TXNS[$k]=${TXNS[$k]:-0}
	TPS[$k]=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out")
	TPS[$k]=${TPS[$k]:-0}
	FAILED[$k]=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
	FAILED[$k]=${FAILED[$k]:-0}
	NOTE[$k]=""
	if [ "$rc" -ne 0 ]; then
		local aborted
		aborted=$(grep -c 'aborted in command' "$out" || true)
		NOTE[$k]=" (pgbench exit $rc, $aborted clients aborted)"
		ERRORS+="- $w, $c clients: $(grep -m1 -E 'error|ERROR|FATAL' "$out" || echo "exit $rc")"$'\n'
	fi

	# latency percentiles from the per-transaction logs: column 3 is the
	# transaction's latency in microseconds ("failed" for failed ones)
	local p50 p99
	read -r p50 p99 < <(cat "$prefix".* 2>/dev/null | awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n |
		awk '{ v[NR] = $1 }
		     END {
		         if (NR == 0) { print "NaN NaN"; exit }
		         i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; if (i50 < 1) i50 = 1
		         i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
		         printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000
		     }')
	rm -f "$prefix".*
	P50[$k]=$p50
	P99[$k]=$p99

	local grow=0 n=${#before[@]}
	if [ "$w" = baseline_insert ]; then
		grow=$(( after[n - 1] - before[n - 1] ))
	else
		for ((i = 0; i < n - 1; i++)); do
			grow=$(( grow + after[i] - before[i] ))
			GROWTH[$w/$i]=$(( ${GROWTH[$w/$i]:-0} + after[i] - before[i] ))
		done
	fi
	WTXNS[$w]=$(( ${WTXNS[$w]:-0} + TXNS[$k] ))
	BYTES[$k]=$(awk -v g="$grow" -v n="${TXNS[$k]}" 'BEGIN { if (n > 0) printf "%.0f", g / n; else print "NaN" }')

	printf '== %-16s %2s clients: %9.1f tps, %s failed%s, p50 %s ms, p99 %s ms, %s bytes/txn\n' \
		"$w" "$c" "${TPS[$k]}" "${FAILED[$k]}" "${NOTE[$k]}" "${P50[$k]}" "${P99[$k]}" "${BYTES[$k]}"

	if [ "$hot" = 1 ]; then
		# fold lag: p99 (nearest rank) and max over the samples; queue: max
		read -r LAG99[$k] LAGMAX[$k] QMAX[$k] NSAMP[$k] < <(awk 'NF == 2' "$WORK/hot.samples" | sort -g -k1,1 |
			awk '{ v[NR] = $1; if ($2 + 0 > q) q = $2 + 0 }
			     END {
			         if (NR == 0) { print "NaN NaN NaN 0"; exit }
			         i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
			         printf "%.3f %.3f %d %d\n", v[i99], v[NR], q, NR
			     }')
		FOLDED[$k]=$(( fs_after[0] - fs_before[0] ))
		WRITES[$k]=$(( fs_after[1] - fs_before[1] ))
		AGG[$k]=$(awk -v f="${FOLDED[$k]}" -v b="${WRITES[$k]}" 'BEGIN { if (b > 0) printf "%.1f", f / b; else print "n/a" }')
		DRAIN[$k]=$drained
		local problems=""
		[[ $drained == timeout:* ]] && problems+="; queue not drained 60 s after the run (${drained#timeout:} entries left)"
		[ "${fs_after[2]}" != "${fs_before[2]}" ] && problems+="; fold worker pid changed during the run (${fs_before[2]} -> ${fs_after[2]})"
		[ "${fs_after[2]}" = 0 ] && problems+="; fold worker not running after the run"
		# each committed posting to one hot account queues one hot_entry row
		[ "${FOLDED[$k]}" != "${TXNS[$k]}" ] && problems+="; folded rows ${FOLDED[$k]} != transactions ${TXNS[$k]}"
		[ -s "$WORK/hot.err" ] && problems+="; sampler: $(head -1 "$WORK/hot.err")"
		if [ -n "$problems" ]; then
			NOTE[$k]+=" (hot: see below)"
			ERRORS+="- $w, $c clients, hot mode: ${problems#; }"$'\n'
			echo "== $w $c clients, hot mode: ${problems#; }" >&2
		fi
		printf '== %-16s %2s clients: fold lag p99 %s s, max %s s (%s samples), max queue %s, folded %s rows in %s balance writes (ratio %s), drained in %s s\n' \
			"$w" "$c" "${LAG99[$k]}" "${LAGMAX[$k]}" "${NSAMP[$k]}" "${QMAX[$k]}" "${FOLDED[$k]}" "${WRITES[$k]}" "${AGG[$k]}" "${DRAIN[$k]}"
	fi

	if [ "$DIAG" = 1 ]; then
		local diag=$RESULTS/diag-$w-c$c.txt
		{
			echo "# $w, $c clients: ${TPS[$k]} tps"
			echo
			echo "## wait events of active client backends (samples every 0.1 s)"
			sort "$WORK/waits" | uniq -c | sort -rn | head -15
			echo
			echo "## pg_stat_statements, top 15 by total time (track = all; nested SPI statements have toplevel = f)"
			"$PGBIN/psql" -X -d "$DB" -c "
			  SELECT round(total_exec_time::numeric, 1) AS total_ms,
			         round((100 * total_exec_time / sum(total_exec_time) FILTER (WHERE toplevel) OVER ())::numeric, 1) AS pct_of_top,
			         calls, round(mean_exec_time::numeric * 1000, 1) AS mean_us,
			         plans, round(mean_plan_time::numeric * 1000, 1) AS plan_us,
			         rows, shared_blks_hit AS hit, shared_blks_dirtied AS dirtied,
			         wal_records, wal_fpi, wal_bytes, toplevel,
			         regexp_replace(left(query, 150), '\s+', ' ', 'g') AS query
			    FROM pg_stat_statements
			   WHERE query NOT LIKE '%pg_stat_statements%'
			   ORDER BY total_exec_time DESC LIMIT 15"
		} >"$diag"
		cat "$diag"
	fi
}

for w in $WORKLOADS; do
	for c in $CLIENTS; do
		run_one "$w" "$c"
	done
done

# ---- correctness after the hot runs --------------------------------------
# Fold what is left (ledger.fold() fails, retryably, when it races a worker
# round: retry), then reconcile every balance row against the journal
# without repairing, and compare each hot account's shared-memory escrow
# with its balance (folded + unfolded).
HOT_RAN=0
for w in $WORKLOADS; do [[ $w == *_hot ]] && HOT_RAN=1; done
RECON="" ESCROW="" FOLD_LEFT="" FOLD_NOTE=""
if [ "$HOT_RAN" = 1 ]; then
	echo "== correctness after the hot runs"
	folded_now=0
	for ((i = 0; i < 50; i++)); do
		if n=$(q -c 'SELECT ledger.fold()' 2>>"$WORK/fold.err"); then
			folded_now=$(( folded_now + n ))
			[ "$n" = 0 ] && break
		else
			sleep 0.1
		fi
	done
	[ -s "$WORK/fold.err" ] && FOLD_NOTE=" ($(grep -c ERROR "$WORK/fold.err" || true) retried: $(grep -m1 ERROR "$WORK/fold.err"))"
	FOLD_LEFT=$(q -c 'SELECT count(*) FROM ledger.hot_entry')
	echo "== SELECT ledger.fold(): folded $folded_now entries$FOLD_NOTE; hot_entry rows left: $FOLD_LEFT"
	t0=$(date +%s.%N)
	RECON=$(q -c 'SELECT count(*) FROM ledger.reconcile(repair => false)')
	RECON_SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	echo "== SELECT count(*) FROM ledger.reconcile(repair => false): $RECON (${RECON_SECS}s)"
	if [ "$RECON" != 0 ]; then
		"$PGBIN/psql" -X -d "$DB" -c 'SELECT * FROM ledger.reconcile(repair => false) LIMIT 20' | tee "$WORK/recon.txt"
		ERRORS+="- reconcile after the hot runs: $RECON mismatches, first: $(sed -n 3p "$WORK/recon.txt" | tr -s ' ')"$'\n'
	fi
	ESCROW=$(q -c "SELECT count(*) FROM ledger.hot_accounts() h JOIN ledger.effective_balance e USING (account_id)
	                WHERE h.committed <> e.balance OR h.reserved <> 0 OR h.inflight <> 0")
	echo "== hot accounts whose escrow differs from their balance (or still reserved/in flight): $ESCROW"
	"$PGBIN/psql" -X -d "$DB" -c "SELECT h.account, h.committed, e.balance, h.reserved, h.inflight, h.debits_accepted, h.debits_refused, h.state
	                                 FROM ledger.hot_accounts() h JOIN ledger.effective_balance e USING (account_id) ORDER BY 1"
	if [ "$ESCROW" != 0 ]; then
		ERRORS+="- after the hot runs, $ESCROW hot accounts have an escrow that differs from their balance (ledger.hot_accounts() vs ledger.effective_balance)"$'\n'
	fi
fi

# ---- table ---------------------------------------------------------------
ratio() {	# ratio a/b to 2 decimals, or "n/a"
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "NaN" || b == "NaN" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}
verdict() {	# verdict VALUE OP TARGET: "met" or "NOT met" (op: >= or <=)
	awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (v == "n/a" || v == "NaN" || v == "") { print "NOT met"; exit }
		ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0)
		print ok ? "met" : "NOT met" }'
}
per_txn() {	# bytes per transaction: per_txn GROWTH TXNS
	awk -v g="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.0f", g / n; else print "NaN" }'
}
# Hot mode versus transfer_uniform and the same workload in cold mode
# (hot_credit_hot -> hot_credit), at the same client count: "" for other rows.
hot_vs() {	# hot_vs WORKLOAD CLIENTS -> "tps/uniform tps/cold p99/uniform-p99"
	local w=$1 c=$2
	[[ $w == *_hot ]] || { echo "  "; return; }
	echo "$(ratio "${TPS[$w/$c]}" "${TPS[transfer_uniform/$c]:-}") $(ratio "${TPS[$w/$c]}" "${TPS[${w%_hot}/$c]:-}") $(ratio "${P99[$w/$c]}" "${P99[transfer_uniform/$c]:-}")"
}
rel_names=""
for r in $LEDGER_RELS; do rel_names+=" | ${r#ledger.}"; done
{
	echo "## Results"
	echo
	echo "| workload | clients | TPS | TPS / baseline | failed | p50 ms | p99 ms | p99 / baseline p99 | bytes/txn | txns | hot: TPS / transfer_uniform | hot: TPS / cold | hot: p99 / transfer_uniform p99 |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for w in $WORKLOADS; do
		for c in $CLIENTS; do
			k=$w/$c
			read -r vs_u vs_c vs_p <<<"$(hot_vs "$w" "$c")" || true
			printf '| %s | %s | %.1f | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
				"$w" "$c" "${TPS[$k]}" "$(ratio "${TPS[$k]}" "${TPS[baseline_insert/$c]:-}")" \
				"${FAILED[$k]}" "${NOTE[$k]}" "${P50[$k]}" "${P99[$k]}" \
				"$(ratio "${P99[$k]}" "${P99[baseline_insert/$c]:-}")" "${BYTES[$k]}" "${TXNS[$k]}" \
				"$vs_u" "$vs_c" "$vs_p"
		done
	done
	echo
	if [ -n "$ERRORS" ]; then
		echo "Errors:"
		echo
		echo "$ERRORS"
	fi

	if [ "$HOT_RAN" = 1 ]; then
		echo "### Hot accounts (fold worker, per *_hot run)"
		echo
		echo "| workload | clients | TPS | fold lag p99 s | fold lag max s | max queue depth | samples | folded rows | balance writes | aggregation ratio | drain s |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for w in $WORKLOADS; do
			[[ $w == *_hot ]] || continue
			for c in $CLIENTS; do
				k=$w/$c
				printf '| %s | %s | %.1f | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
					"$w" "$c" "${TPS[$k]}" "${LAG99[$k]}" "${LAGMAX[$k]}" "${QMAX[$k]}" "${NSAMP[$k]}" \
					"${FOLDED[$k]}" "${WRITES[$k]}" "${AGG[$k]}" "${DRAIN[$k]}"
			done
		done
		echo
		echo "After the hot runs: \`SELECT ledger.fold()\` folded $folded_now entries$FOLD_NOTE, $FOLD_LEFT left;" \
			"\`SELECT count(*) FROM ledger.reconcile(repair => false)\` = **$RECON** (${RECON_SECS}s);" \
			"hot accounts whose escrow differs from their balance: **$ESCROW**."
		echo
	fi

	echo "### Storage per transaction, by relation (table + indexes + TOAST; all client counts of a workload)"
	echo
	echo "| workload$rel_names | total |"
	echo "|---$(for r in $LEDGER_RELS; do printf '|---:'; done)|---:|"
	for w in $WORKLOADS; do
		[ "$w" = baseline_insert ] && continue
		row="| $w"
		tot=0
		for ((i = 0; i < NRELS; i++)); do
			row+=" | $(per_txn "${GROWTH[$w/$i]}" "${WTXNS[$w]}")"
			tot=$(( tot + GROWTH[$w/$i] ))
		done
		row+=" | $(per_txn "$tot" "${WTXNS[$w]}") |"
		echo "$row"
	done
	echo

	echo "### Targets"
	echo
	if [ -n "${TPS[transfer_uniform/32]:-}" ] && [ -n "${TPS[baseline_insert/32]:-}" ]; then
		r=$(ratio "${TPS[transfer_uniform/32]}" "${TPS[baseline_insert/32]}")
		echo "- transfer_uniform at 32 clients >= 0.35 x baseline_insert at 32: $r x, $(verdict "$r" '>=' 0.35)"
	else
		echo "- transfer_uniform at 32 clients >= 0.35 x baseline_insert at 32: not measured in this run"
	fi
	for w in transfer_uniform transfer_50 hot_credit hot_debit hot_credit_hot hot_debit_hot; do
		[ -n "${WTXNS[$w]:-}" ] || continue
		tot=0
		for ((i = 0; i < NRELS; i++)); do tot=$(( tot + GROWTH[$w/$i] )); done
		b=$(per_txn "$tot" "${WTXNS[$w]}")
		echo "- storage <= 500 bytes per two-leg transfer, $w: $b bytes, $(verdict "$b" '<=' 500)"
	done
	for w in hot_credit_hot hot_debit_hot; do
		[[ " $WORKLOADS " == *" $w "* ]] || continue
		if [ -z "${TPS[$w/32]:-}" ]; then
			echo "- $w: not measured at 32 clients in this run"
			continue
		fi
		cold=${w%_hot}
		if [ -n "${TPS[transfer_uniform/32]:-}" ]; then
			r=$(ratio "${TPS[$w/32]}" "${TPS[transfer_uniform/32]}")
			echo "- $w at 32 clients >= 0.8 x transfer_uniform TPS at 32: $r x, $(verdict "$r" '>=' 0.8)"
			r=$(ratio "${P99[$w/32]}" "${P99[transfer_uniform/32]}")
			echo "- $w p99 at 32 clients <= 2 x transfer_uniform p99 at 32: $r x, $(verdict "$r" '<=' 2)"
		else
			echo "- $w at 32 clients vs transfer_uniform (TPS >= 0.8 x, p99 <= 2 x): transfer_uniform not measured at 32 in this run"
		fi
		if [ -n "${TPS[$cold/32]:-}" ]; then
			r=$(ratio "${TPS[$w/32]}" "${TPS[$cold/32]}")
			echo "- $w at 32 clients >= 4 x $cold (cold mode) TPS at 32: $r x, $(verdict "$r" '>=' 4)"
		else
			echo "- $w at 32 clients >= 4 x $cold (cold mode): $cold not measured at 32 in this run"
		fi
	done
	if [ "$HOT_RAN" = 1 ]; then
		echo "- reconcile after the hot runs finds 0 mismatches: $RECON, $( [ "$RECON" = 0 ] && echo met || echo "NOT met")"
	fi
} >"$WORK/table.md"

cat "$WORK/table.md" >>"$OUT"
echo
cat "$WORK/table.md"
cp "$OUT" "$RESULTS/latest.md"
echo
echo "== written to $RESULTS/latest.md"
