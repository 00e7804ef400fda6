#!/usr/bin/env bash
# test/scripts/no_preload.sh: without shared_preload_libraries, the
# extension loads on first use, cold accounts work, and hot mode is refused
# with LD021 (never a crash, never a FATAL).
#
# Checks: a cold transfer posts and reconcile() finds no drift; the
# invariants of test/invariants.sql hold; set_account_mode(..., 'hot')
# fails with LD021; fold_worker_status() says "not preloaded";
# hot_accounts() is empty; the balance is unchanged; set_rate_limit is
# refused with LD011 and stores nothing; no FATAL in the server log.
#
# Run by test/run.sh as root.  Runs its own throwaway cluster.
source "$LEDGER_ROOT/test/lib.sh"
set +e
TEST_NAME=no_preload

DIR=$(mktemp -d "$WORK/no-preload.XXXXXX")
CLUSTER_CONF="" cluster_start "$DIR" || { echo "no_preload: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" plain
psql() { "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d plain "$@"; }

psql -c "CREATE EXTENSION ledger" >/dev/null || { echo "no_preload: FAIL: CREATE EXTENSION" >&2; exit 1; }
psql >/dev/null <<'SQL' || { echo "no_preload: FAIL: setup" >&2; exit 1; }
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('a', 'USD');
SELECT ledger.transfer('world', 'a', 10);
SQL
[ "$(psql -c "SELECT ledger.balance('a')")" = 10.00 ] && ok "a cold transfer posts" ||
	fail "cold transfer did not post"
[ "$(psql -c "SELECT count(*) FROM ledger.reconcile()")" = 0 ] && ok "reconcile finds no drift" ||
	fail "reconcile found drift"
check_invariants "$DIR" plain "cold postings: invariants"

out=$(psql -c "DO \$\$ BEGIN PERFORM ledger.set_account_mode('a', 'hot');
               EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%: %', SQLSTATE, SQLERRM; END \$\$" 2>&1)
grep -q "LD021: hot accounts require the ledger library to be preloaded" <<<"$out" &&
	ok "hot mode is refused with LD021" || fail "set_account_mode without preload: $out"
[ "$(psql -c "SELECT state FROM ledger.fold_worker_status()")" = "not preloaded" ] &&
	ok "fold_worker_status says not preloaded" || fail "fold_worker_status should say not preloaded"
[ "$(psql -c "SELECT count(*) FROM ledger.hot_accounts()")" = 0 ] && ok "hot_accounts is empty" ||
	fail "hot_accounts not empty"
[ "$(psql -c "SELECT ledger.balance('a')")" = 10.00 ] && ok "the balance is unchanged" || fail "balance changed"
# rate limits live in shared memory: refused, not stored and left unenforced
out=$(psql -c "DO \$\$ BEGIN PERFORM ledger.set_rate_limit('postgres', 10, 10);
               EXCEPTION WHEN OTHERS THEN RAISE NOTICE '%: %', SQLSTATE, SQLERRM; END \$\$" 2>&1)
grep -q "LD011: ledger.set_rate_limit needs the ledger library preloaded" <<<"$out" &&
	ok "set_rate_limit is refused with LD011" || fail "set_rate_limit without preload: $out"
[ "$(psql -c "SELECT (SELECT count(*) FROM ledger.rate_limit) + (SELECT count(*) FROM ledger.rate_limits)")" = 0 ] &&
	ok "no limit stored or shown" || fail "a rate limit was stored without preload"
if grep -q "FATAL" "$DIR/server.log"; then
	grep FATAL "$DIR/server.log"
	fail "FATAL in the server log"
else
	ok "no FATAL in the server log"
fi
test_done
