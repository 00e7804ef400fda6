#!/usr/bin/env bash
# no_preload.sh: without shared_preload_libraries, the extension loads on
# first use, cold accounts work, and hot mode is refused with LD021 (never a
# crash, never a FATAL).  Runs its own throwaway cluster.
source "$LEDGER_ROOT/test/lib.sh"
set -euo pipefail
fail() { echo "no_preload: FAIL: $*" >&2; exit 1; }

DIR=$(mktemp -d "$WORK/no-preload.XXXXXX")
CLUSTER_CONF="" cluster_start "$DIR"
runuser -u postgres -- "$PGBIN/createdb" plain
psql() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d plain "$@"; }

psql -c "CREATE EXTENSION ledger" >/dev/null
psql >/dev/null <<'SQL'
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('a', 'USD');
SELECT ledger.transfer('world', 'a', 10);
SQL
[ "$(psql -c "SELECT ledger.balance('a')")" = 10.00 ] || fail "cold transfer did not post"
[ "$(psql -c "SELECT count(*) FROM ledger.reconcile()")" = 0 ] || fail "reconcile found drift"

out=$(psql -c "DO \$\$ BEGIN PERFORM ledger.set_account_mode('a', 'hot');
               EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%: %', SQLSTATE, SQLERRM; END \$\$" 2>&1)
grep -q "LD021: hot accounts require the ledger library to be preloaded" <<<"$out" ||
	fail "set_account_mode without preload: $out"
[ "$(psql -c "SELECT state FROM ledger.fold_worker_status()")" = "not preloaded" ] ||
	fail "fold_worker_status should say not preloaded"
[ "$(psql -c "SELECT count(*) FROM ledger.hot_accounts()")" = 0 ] || fail "hot_accounts not empty"
[ "$(psql -c "SELECT ledger.balance('a')")" = 10.00 ] || fail "balance changed"
grep -q "FATAL" "$DIR/server.log" && { grep FATAL "$DIR/server.log"; fail "FATAL in the server log"; }
echo "no_preload: cold accounts work, hot mode refused with LD021"
