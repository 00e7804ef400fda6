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
PGBIN=/usr/lib/postgresql/15/bin
export PG_CONFIG=$PGBIN/pg_config
PGXS_DIR=/usr/lib/postgresql/15/lib/pgxs
PG_REGRESS=$PGXS_DIR/src/test/regress/pg_regress
PG_ISOLATION_REGRESS=$PGXS_DIR/src/test/isolation/pg_isolation_regress

# Every Debian package the project needs.  Each is detected by its own
# installed state, never by a file another package may also ship
# (postgresql-client-15 ships pgxs.mk and pg_regress, not postgres.h).
LEDGER_PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
libtap-parser-sourcehandler-pgtap-perl make gcc bc pgbouncer"

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

ledger_build() {
	echo "== building and installing ledger"
	make -C "$LEDGER_ROOT" -s PG_CONFIG="$PG_CONFIG" >/dev/null
	make -C "$LEDGER_ROOT" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
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

cluster_start() {
	local dir=$1
	mkdir -p "$dir"
	chown postgres:postgres "$dir"
	chmod 700 "$dir"
	export PGDATA=$dir/data
	export PGHOST=$dir
	export PGUSER=postgres
	PGPORT=$(free_port "$dir")
	export PGPORT
	runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C.UTF-8 >/dev/null
	{
		echo "listen_addresses = ''"
		echo "port = $PGPORT"
		echo "unix_socket_directories = '$dir'"
		echo "max_prepared_transactions = 10"
		echo "${CLUSTER_CONF:-}"
	} >> "$PGDATA/postgresql.conf"
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$dir/server.log" -w -t 60 start >/dev/null
	CLUSTER_DIR=$dir
	trap cluster_stop EXIT
}

cluster_stop() {
	if [ -n "${CLUSTER_DIR:-}" ] && [ -f "$CLUSTER_DIR/data/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null || true
	fi
}
