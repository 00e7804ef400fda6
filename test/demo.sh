#!/usr/bin/env bash
# test/demo.sh: install packages, build, install, start a throwaway cluster
# with pg_cron preloaded, and walk through the ledger.  Run as root:
#     bash test/demo.sh
# Set KEEP=1 to leave the cluster running afterwards.
source "$(dirname "$0")/lib.sh"

ledger_packages
ledger_build
DIR=$(mktemp -d /tmp/ledger-demo.XXXXXX)
CLUSTER_CONF="shared_preload_libraries = 'pg_cron,ledger'
ledger.database = 'ledger'
cron.database_name = 'ledger'
cron.use_background_workers = on" cluster_start "$DIR"
runuser -u postgres -- "$PGBIN/createdb" ledger
echo "== cluster up: PGHOST=$PGHOST PGPORT=$PGPORT"
"$PGBIN/psql" -X -d ledger -v ON_ERROR_STOP=0 -e -f "$LEDGER_ROOT/test/demo.sql"
if [ "${KEEP:-0}" = 1 ]; then
	trap - EXIT
	echo "== cluster left running: psql -h $PGHOST -p $PGPORT -U postgres ledger"
	echo "== stop it with: runuser -u postgres -- $PGBIN/pg_ctl -D $PGDATA stop"
fi
