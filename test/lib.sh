#!/usr/bin/env bash
# test/lib.sh: helpers sourced by test/demo.sh, test/run.sh and bench/run.sh.
#
#   ledger_packages     install the Debian packages the project needs (root)
#   ledger_build        build and install the extension (root)
#   cluster_start DIR   initdb + start a throwaway cluster in DIR as user
#                       postgres, on a Unix socket in DIR, on a free port;
#                       exports PGHOST, PGPORT, PGUSER and PGDATA.
#                       Extra postgresql.conf lines come from $CLUSTER_CONF.
#   cluster_stop        stop it (also registered as an EXIT trap)
#
# The system cluster and port 5432 are never touched.

set -euo pipefail

LEDGER_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PG_CONFIG=$PGBIN/pg_config
PGXS_DIR=/usr/lib/postgresql/15/lib/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS_DIR/src/test/isolation/pg_isolation_regress

# Every Debian package the project needs.  Each is detected by its own
# installed state, never by a file another package may also ship
# (postgresql-client-15 ships pgxs.mk and pg_regress, not postgres.h).
LEDGER_PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
libtap-parser-sourcehandler-pgtap-perl make gcc bc pgbouncer python3-psycopg python3-aiosmtpd
postgresql-15-pgaudit openssl"

pkg_installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

ledger_packages() {
	local need=() p
	for p in $LEDGER_PACKAGES; do
		pkg_installed "$p" || need+=("$p")
	done
	if [ ${#need[@]} -gt 0 ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "missing packages: ${need[*]}; run this as root to install them" >&2
			return 1
		fi
		echo "== installing ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
}

# ledger_build [plain|assert|ubsan]: build and install that flavour (see
# the Makefile), rebuilding from scratch when the last build was another.
ledger_build() {
	local build=${1:-plain} stamp=$LEDGER_ROOT/.build-flavour
	echo "== building and installing ledger ($build)"
	if [ "$(cat "$stamp" 2>/dev/null)" != "$build" ]; then
		make -C "$LEDGER_ROOT" -s PG_CONFIG="$PG_CONFIG" clean >/dev/null
		echo "$build" >"$stamp"
	fi
	make -C "$LEDGER_ROOT" -s PG_CONFIG="$PG_CONFIG" BUILD="$build" >/dev/null &&
		make -C "$LEDGER_ROOT" -s PG_CONFIG="$PG_CONFIG" BUILD="$build" install >/dev/null
}

# A port nobody listens on, away from 5432.
free_port() {
	local p
	for p in $(seq 55432 55532); do
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && [ ! -e "$1/.s.PGSQL.$p" ]; then
			echo "$p"
			return
		fi
	done
	echo "no free port" >&2
	return 1
}

# node_init DIR [CONF]: initdb a throwaway cluster in DIR/data, listening
# only on a Unix socket in DIR on a free port; CONF lines are appended to
# its postgresql.conf.  node_start / node_stop DIR [MODE] start and stop
# it; node_port DIR prints its port.  Its log is DIR/server.log.
node_init() {
	local dir=$1 conf=${2:-} port
	mkdir -p "$dir"
	chown postgres:postgres "$dir"
	chmod 700 "$dir"
	port=$(free_port "$dir") || return 1
	runuser -u postgres -- "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null || return 1
	node_conf "$dir" "$port" "$conf"
}

# node_conf DIR PORT [CONF]: point a data directory (a fresh one, or a base
# backup's copy) at DIR's socket and PORT.
node_conf() {
	local dir=$1 port=$2 conf=${3:-}
	{
		echo "listen_addresses = ''"
		echo "port = $port"
		echo "unix_socket_directories = '$dir'"
		echo "max_prepared_transactions = 10"
		echo "$conf"
	} >> "$dir/data/postgresql.conf"
	echo "$port" > "$dir/port"
	chown postgres:postgres "$dir/port"
}

node_port() { cat "$1/port"; }

node_start() {
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 120 start >/dev/null
}

node_stop() {
	[ -f "$1/data/postmaster.pid" ] || return 0
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$1/data" -m "${2:-fast}" -w -t 120 stop >/dev/null || true
}

# ledger_node DB [CONF]: a test's throwaway cluster in $DIR/node (N) with
# ledger preloaded and its workers serving DB (ledger.database), CONF lines
# added to its postgresql.conf; started, DB created, stopped at exit.
ledger_node() {
	N=$DIR/node
	trap 'node_stop $N immediate' EXIT
	node_init "$N" "shared_preload_libraries = 'ledger'
ledger.database = '$1'
${2:-}" || { echo "$TEST_NAME: FAIL: initdb" >&2; exit 1; }
	node_start "$N" || { echo "$TEST_NAME: FAIL: start" >&2; exit 1; }
	runuser -u postgres -- "$PGBIN/createdb" -h "$N" -p "$(node_port "$N")" "$1"
}

# load_try_sql: SQL creating public.load_try(sql text), which runs a
# statement of a load script and swallows a refusal (an LD SQLSTATE) or a
# retryable conflict (40001, 40P01), so that pgbench clients count them
# instead of aborting; anything else is raised.
load_try_sql() {
	cat <<'SQL'
CREATE FUNCTION public.load_try(sql text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
EXCEPTION WHEN OTHERS THEN
  IF SQLSTATE NOT LIKE 'LD%' AND SQLSTATE NOT IN ('40001', '40P01') THEN RAISE; END IF;
END $$;
SQL
}

# node_psql DIR DB [psql args]: psql against a node, quiet, unaligned,
# stopping at the first error.
node_psql() {
	local dir=$1 db=$2
	shift 2
	"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$(node_port "$dir")" -U postgres -d "$db" "$@"
}

# cluster_start DIR: node_init and node_start with $CLUSTER_CONF, then
# export PGHOST, PGPORT, PGUSER and PGDATA for it and stop it at exit.
cluster_start() {
	local dir=$1
	node_init "$dir" "${CLUSTER_CONF:-}" || return 1
	node_start "$dir" || return 1
	export PGDATA=$dir/data
	export PGHOST=$dir
	export PGUSER=postgres
	PGPORT=$(node_port "$dir")
	export PGPORT
	CLUSTER_DIR=$dir
	trap cluster_stop EXIT
}

cluster_stop() {
	[ -n "${CLUSTER_DIR:-}" ] && node_stop "$CLUSTER_DIR"
}

# ---------------------------------------------------------------------
# The scripted tests' checks.  A script sets TEST_NAME, calls ok and fail
# as it goes and ends with test_done, which exits 1 if anything failed.
# check_invariants DIR DB runs test/invariants.sql there: every row it
# returns is a broken invariant.
# ---------------------------------------------------------------------
TEST_FAILURES=0

# test_begin NAME: name the test, stop set -e (a failed check is counted,
# not fatal), and give it a directory of its own under $WORK: DIR.
test_begin() {
	set +e
	TEST_NAME=$1
	DIR=$(mktemp -d "${WORK:-/tmp}/$1.XXXXXX") || {
		echo "$1: FAIL: cannot make a directory under ${WORK:-/tmp}" >&2
		exit 1
	}
	chmod 755 "$DIR"
}

ok() { echo "${TEST_NAME:-test}: ok: $*"; }
fail() {
	TEST_FAILURES=$((TEST_FAILURES + 1))
	echo "${TEST_NAME:-test}: FAIL: $*" >&2
}
test_done() {
	if [ "$TEST_FAILURES" -gt 0 ]; then
		echo "${TEST_NAME:-test}: $TEST_FAILURES check(s) failed" >&2
		exit 1
	fi
	echo "${TEST_NAME:-test}: all checks passed"
}
# facts_of OUTPUT: the structured facts line of the last LD error in psql's
# output at the default verbosity (the DETAIL's last line, a JSON object).
facts_of() { grep -o '^{.*}$' <<<"$1" | tail -1; }

check_invariants() {
	local dir=$1 db=$2 label=${3:-invariants} out
	if ! out=$(node_psql "$dir" "$db" -F ': ' -f "$LEDGER_ROOT/test/invariants.sql" 2>&1); then
		fail "$label: the invariant query failed: $out"
	elif [ -n "$out" ]; then
		fail "$label: $(tr '\n' ';' <<<"$out")"
	else
		ok "$label hold (balances = journal, assets and transactions net to zero, floors, daily rows, holds, escrow)"
	fi
}

# check_rows [PREFIX]: one ok or fail per row "name|t|detail" on stdin
# (psql -At -F '|' output; t passes, anything else fails); empty lines are
# skipped.  Feed it with <<<"$rows", not a pipe (a pipe's subshell would
# lose the failures).
check_rows() {
	local prefix=${1:-} name passed detail
	while IFS='|' read -r name passed detail; do
		[ -n "$name" ] || continue
		if [ "$passed" = t ]; then ok "$prefix$name ($detail)"; else fail "$prefix$name: $detail"; fi
	done
}

# check_reconcile DIR DB [LABEL]: ledger.reconcile(repair => false) finds
# nothing there (on a standby too: it does not write).
check_reconcile() {
	local dir=$1 db=$2 label=${3:-reconcile} out
	if ! out=$(node_psql "$dir" "$db" -c "SELECT string_agg(format('%s %s expected %s actual %s',
	                account, kind, expected, actual), '; ') FROM ledger.reconcile(repair => false)" 2>&1); then
		fail "$label: reconcile failed: $out"
	elif [ -n "$out" ]; then
		fail "$label: reconcile finds: $out"
	else
		ok "$label finds nothing"
	fi
}

# Debian's python, which has Debian's python3-psycopg and python3-aiosmtpd
# (a pyenv or venv python3 earlier on PATH would not): the scripts that run
# examples/*.py use it.
PYTHON=${PYTHON:-/usr/bin/python3}

# wait_sql DIR DB SQL [SECONDS]: until SQL returns t (default up to 60 s);
# 1 on timeout.
# pgbouncer_start NODE DB POOL: pgbouncer in transaction pooling mode in
# $DIR (socket, ini, log, pid), for database DB of NODE as postgres, with
# POOL server connections; sets BPORT and waits until it serves.  The
# caller kills $(cat $DIR/pgbouncer.pid) when done.
pgbouncer_start() {
	local node=$1 db=$2 pool=$3 i
	BPORT=$(free_port "$DIR")
	cat >"$DIR/pgbouncer.ini" <<INI
[databases]
$db = host=$node port=$(node_port "$node") dbname=$db user=postgres
[pgbouncer]
listen_addr =
listen_port = $BPORT
unix_socket_dir = $DIR
auth_type = any
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 100
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
INI
	chown -R postgres:postgres "$DIR"
	runuser -u postgres -- /usr/sbin/pgbouncer -d "$DIR/pgbouncer.ini" || return 1
	for i in $(seq 1 50); do
		"$PGBIN/psql" -X -At -h "$DIR" -p "$BPORT" -U postgres -d "$db" -c "SELECT 1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

wait_sql() {
	local i
	for i in $(seq 1 $((${4:-60} * 10))); do
		[ "$(node_psql "$1" "$2" -c "$3" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

# node_ready DIR DB: wait (up to 30 s) until the node accepts connections
# and its fold worker has loaded the escrow; 1 on timeout.
node_ready() {
	local i
	for i in $(seq 1 300); do
		[ "$(node_psql "$1" "$2" -c "SELECT ready FROM ledger.fold_worker_status()" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}
