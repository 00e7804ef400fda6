#!/usr/bin/env bash
# test/scripts/hot_isolation.sh: isolation specs for hot accounts.
#
# Runs every test/isolation/hot/specs/*.spec with isolationtester directly
# against the database that serves hot accounts (ledger.database, created
# by test/run.sh), and compares the output with
# test/isolation/hot/expected/<name>.out.  pg_isolation_regress cannot be
# used: it drops and recreates its database, which the ledger fold worker
# is connected to.  Each spec drops and creates the extension itself.
#
#   hot_last_funds           two debits racing for the last funds of a hot
#                            account: the second is refused at once (LD001),
#                            never waits, never overdraws
#   hot_credit_uncommitted   a credit counts only after its commit
#   hot_prepare              PREPARE TRANSACTION with hot entries fails
#                            (LD018) and releases them; 2PC still works cold
#
# Then checks, with psql, that the PREPARE refusal carries SQLSTATE LD018
# (isolationtester prints only the primary message).
#
# Needs PGHOST, PGPORT (test/run.sh exports them) and a server preloading
# ledger with ledger.database = $HOT_DB (default ledger_hot) and
# max_prepared_transactions > 0.  Exits 0 on success, 1 on any difference
# (printed as a unified diff).
set -uo pipefail

: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
LEDGER_ROOT=${LEDGER_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export PGHOST PGPORT
export PGUSER=${PGUSER:-postgres}
DB=${HOT_DB:-ledger_hot}
ISOLATIONTESTER=${ISOLATIONTESTER:-$("$PGBIN/pg_config" --pkglibdir)/pgxs/src/test/isolation/isolationtester}
SPECS=$LEDGER_ROOT/test/isolation/hot/specs
EXPECTED=$LEDGER_ROOT/test/isolation/hot/expected

TMP=$(mktemp -d "${WORK:-/tmp}/hot_isolation.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

psql_db() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

[ -x "$ISOLATIONTESTER" ] || { echo "hot_isolation: FAIL: no isolationtester at $ISOLATIONTESTER" >&2; exit 1; }
served=$(psql_db -At -c "SHOW ledger.database") ||
	{ echo "hot_isolation: FAIL: cannot connect to database $DB (or ledger is not preloaded)" >&2; exit 1; }
[ "$served" = "$DB" ] ||
	{ echo "hot_isolation: FAIL: ledger.database is '$served', not '$DB'" >&2; exit 1; }

# Roll back prepared transactions a broken run may have left in $DB: they
# would hold locks on the extension's tables.
rollback_prepared() {
	local gid
	for gid in $(psql_db -At -c "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()"); do
		echo "hot_isolation: rolling back leftover prepared transaction $gid" >&2
		psql_db -c "ROLLBACK PREPARED '$gid'" || true
	done
}

FAILED=()
for spec in "$SPECS"/*.spec; do
	name=$(basename "$spec" .spec)
	out=$TMP/$name.out
	start=$(date +%s)
	# No step of these specs may wait for a lock; should one (a PREPARE
	# that wrongly succeeded holds its locks), fail after 10 s, not hang.
	PGOPTIONS="-c lock_timeout=10s" timeout 180 "$ISOLATIONTESTER" \
		"dbname=$DB host=$PGHOST port=$PGPORT user=$PGUSER" <"$spec" >"$out" 2>"$TMP/$name.err"
	rc=$?
	rollback_prepared
	if [ "$rc" -ne 0 ]; then
		echo "hot_isolation: $name: isolationtester exited with status $rc" >&2
		cat "$TMP/$name.err" >&2
	fi
	if [ ! -f "$EXPECTED/$name.out" ]; then
		echo "hot_isolation: $name ... FAILED (no expected output $EXPECTED/$name.out)"
		FAILED+=("$name")
	elif [ "$rc" -eq 0 ] && diff -q "$EXPECTED/$name.out" "$out" >/dev/null; then
		echo "hot_isolation: $name ... ok ($(($(date +%s) - start)) s)"
	else
		echo "hot_isolation: $name ... FAILED"
		diff -U3 "$EXPECTED/$name.out" "$out"
		FAILED+=("$name")
	fi
done

# The PREPARE refusal's SQLSTATE, which isolationtester does not print.
state=$(PGOPTIONS="-c lock_timeout=10s" psql_db -At 2>&1 <<'SQL'
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('alice', 'USD');
SELECT ledger.create_account('bob', 'USD');
SELECT ledger.transfer('world', 'alice', 10) IS NOT NULL;
SELECT ledger.set_account_mode('alice', 'hot');
\set ON_ERROR_STOP 0
\set VERBOSITY sqlstate
BEGIN;
SELECT ledger.transfer('alice', 'bob', 1) IS NOT NULL;
PREPARE TRANSACTION 'hot_isolation_ld018';
\set VERBOSITY default
BEGIN;
SELECT ledger.transfer('alice', 'bob', 1) IS NOT NULL;
SELECT ledger.transfer('bob', 'alice', 1) IS NOT NULL;
PREPARE TRANSACTION 'hot_isolation_ld018';
SELECT 'reserved=' || reserved || ' inflight=' || inflight FROM ledger.hot_accounts() WHERE account = 'alice';
SELECT 'prepared=' || count(*) FROM pg_prepared_xacts WHERE database = current_database();
SQL
)
rollback_prepared
PGOPTIONS="-c lock_timeout=10s" psql_db -c "DROP EXTENSION ledger CASCADE" >/dev/null
if grep -qx 'ERROR:  LD018' <<<"$state" && grep -qx 'reserved=0.00 inflight=0' <<<"$state" &&
	grep -qx 'prepared=0' <<<"$state" &&
	grep -qx '{"sqlstate": "LD018", "reservations": 2}' <<<"$state"; then
	echo "hot_isolation: PREPARE with a hot debit fails with SQLSTATE LD018, facts counting its reservations ... ok"
else
	echo "hot_isolation: PREPARE with a hot debit fails with SQLSTATE LD018 ... FAILED; psql said:"
	sed 's/^/    /' <<<"$state"
	FAILED+=("ld018_sqlstate")
fi

if [ ${#FAILED[@]} -gt 0 ]; then
	echo "hot_isolation: FAIL: ${FAILED[*]}" >&2
	exit 1
fi
echo "hot_isolation: all specs passed"
