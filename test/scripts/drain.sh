#!/usr/bin/env bash
# test/scripts/drain.sh: 32 pgbench clients race to drain one account.
#
# An account is funded with exactly N units (asset scale 0) from an
# unbounded source; then pgbench -c 32 makes CLIENTS x PER_CLIENT attempts
# (more than N) to move 1 unit from it to a sink, through drain_debit(), a
# helper that calls ledger.transfer and turns LD001 (insufficient funds)
# into false (pgbench would abort a client on any other error).
#
# Checks: pgbench ran every transaction and aborted no client; every attempt
# was recorded; exactly N debits succeeded, the rest got LD001; the account
# ends at 0 (ledger.balance and account_balance), the sink at N; the running
# sum of the account's journal, in journal_entry.id order (ids are assigned
# while the balance row lock is held, so id order is the order the debits
# were applied), never goes below 0; one transaction per success (plus the
# funding), of two entries each; and the invariants of test/invariants.sql
# (balances equal the journal, every asset and transaction nets to zero,
# floors, daily rows equal the journal).
#
# Run by test/run.sh as root with PGHOST (the shared cluster's directory),
# PGPORT, PGBIN, LEDGER_ROOT and WORK set and a cluster running; uses a
# database of its own there, dropped at the end.
source "$LEDGER_ROOT/test/lib.sh"
set +e
TEST_NAME=drain

: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"
export PGUSER=${PGUSER:-postgres}

DB=${DRAIN_DB:-drain}
N=${DRAIN_N:-2000}
CLIENTS=32
PER_CLIENT=${DRAIN_PER_CLIENT:-100}
ATTEMPTS=$((CLIENTS * PER_CLIENT))

if [ "$ATTEMPTS" -le "$N" ]; then
	echo "drain: FAIL: $ATTEMPTS attempts do not exceed the $N units funded" >&2
	exit 1
fi

TMP=$(mktemp -d "${WORK:-/tmp}/drain.XXXXXX")
chmod 755 "$TMP"

cleanup() {
	"$PGBIN/dropdb" --if-exists --force "$DB" || echo "drain: could not drop database $DB" >&2
	rm -rf "$TMP"
}
trap cleanup EXIT

psql_db() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

"$PGBIN/dropdb" --if-exists --force "$DB" 2>/dev/null
"$PGBIN/createdb" "$DB" || { echo "drain: FAIL: could not create database $DB" >&2; exit 1; }

psql_db -v n="$N" >/dev/null <<'SQL' || { echo "drain: FAIL: setup failed" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('TOK', 0);
SELECT ledger.create_account('drain-src', 'TOK', min_balance => NULL);
SELECT ledger.create_account('drain-acct', 'TOK');          -- floor 0
SELECT ledger.create_account('drain-sink', 'TOK');
SELECT ledger.transfer('drain-src', 'drain-acct', :n, metadata => '{"step": "fund"}');

-- One row per attempt: did the debit go through?
CREATE UNLOGGED TABLE drain_attempt (ok boolean NOT NULL);

CREATE FUNCTION drain_debit() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger.transfer('drain-acct', 'drain-sink', 1, metadata => '{"step": "drain"}');
    INSERT INTO drain_attempt VALUES (true);
    RETURN true;
EXCEPTION WHEN SQLSTATE 'LD001' THEN
    INSERT INTO drain_attempt VALUES (false);
    RETURN false;
END
$$;
SQL

echo 'SELECT drain_debit();' > "$TMP/debit.sql"

echo "drain: $CLIENTS clients x $PER_CLIENT attempts against $N units"
start=$(date +%s)
"$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -t "$PER_CLIENT" -f "$TMP/debit.sql" "$DB" \
	>"$TMP/pgbench.log" 2>&1
rc=$?
echo "drain: pgbench finished in $(($(date +%s) - start)) s (exit $rc);" \
	"$(grep -E '^tps' "$TMP/pgbench.log" | head -1)"

if [ "$rc" -ne 0 ]; then
	fail "pgbench exited with status $rc"
fi
if grep -qiE 'aborted|Run was aborted' "$TMP/pgbench.log"; then
	fail "pgbench aborted clients: $(grep -iE 'aborted' "$TMP/pgbench.log" | head -5 | tr '\n' ' ')"
fi
if ! grep -qE "^number of transactions actually processed: $ATTEMPTS/$ATTEMPTS\$" "$TMP/pgbench.log"; then
	fail "pgbench did not process $ATTEMPTS/$ATTEMPTS transactions: $(grep -E 'actually processed' "$TMP/pgbench.log" || echo 'no summary')"
fi
if grep -qE '^number of failed transactions: [1-9]' "$TMP/pgbench.log"; then
	fail "pgbench reported failed transactions: $(grep -E '^number of failed transactions' "$TMP/pgbench.log")"
fi
if [ "$TEST_FAILURES" -gt 0 ]; then
	echo "---- pgbench output" >&2
	tail -n 40 "$TMP/pgbench.log" >&2
	echo "----" >&2
fi

# Each check: name | passed (t/f) | what was found.
checks=$(psql_db -At -F '|' -v n="$N" -v attempts="$ATTEMPTS" <<'SQL'
WITH acct AS (SELECT id FROM ledger.account WHERE code = 'drain-acct'),
     sink AS (SELECT id FROM ledger.account WHERE code = 'drain-sink'),
     acct_entries AS (
         SELECT j.id, j.amount, sum(j.amount) OVER (ORDER BY j.id) AS running
           FROM ledger.journal_entry j WHERE j.account_id = (SELECT id FROM acct))
SELECT 'every attempt recorded',
       count(*) = :attempts, format('%s attempts recorded, expected %s', count(*), :attempts)
  FROM drain_attempt
UNION ALL
SELECT 'exactly N attempts succeeded',
       count(*) FILTER (WHERE ok) = :n,
       format('%s succeeded, %s got LD001; expected %s and %s',
              count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok), :n, :attempts - :n)
  FROM drain_attempt
UNION ALL
SELECT 'exactly N debits in the journal',
       count(*) FILTER (WHERE amount < 0) = :n AND bool_and(amount = -1) FILTER (WHERE amount < 0)
       AND count(*) FILTER (WHERE amount > 0) = 1,
       format('%s debit entries (sum %s), %s credit entries; expected %s debits of -1 and the funding credit',
              count(*) FILTER (WHERE amount < 0), sum(amount) FILTER (WHERE amount < 0),
              count(*) FILTER (WHERE amount > 0), :n)
  FROM acct_entries
UNION ALL
SELECT 'balance never below 0',
       coalesce(min(running) >= 0, false),
       format('lowest running sum of the journal in id order: %s (at entry %s)', min(running),
              (SELECT id FROM acct_entries ORDER BY running, id LIMIT 1))
  FROM acct_entries
UNION ALL
SELECT 'drained account at 0',
       ledger.balance('drain-acct') = 0 AND b.balance = 0,
       format('ledger.balance = %s, account_balance = %s', ledger.balance('drain-acct'), b.balance)
  FROM ledger.account_balance b WHERE b.account_id = (SELECT id FROM acct)
UNION ALL
SELECT 'sink holds N',
       ledger.balance('drain-sink') = :n AND b.balance = :n,
       format('ledger.balance = %s, account_balance = %s, expected %s', ledger.balance('drain-sink'), b.balance, :n)
  FROM ledger.account_balance b WHERE b.account_id = (SELECT id FROM sink)
UNION ALL
SELECT 'one transaction per success, of two entries each',
       count(*) = :n + 1 AND bool_and(legs = 2),
       format('%s transactions (expected %s), %s without exactly 2 entries',
              count(*), :n + 1, count(*) FILTER (WHERE legs <> 2))
  FROM (SELECT t.id, count(j.id) AS legs
          FROM ledger.transaction t LEFT JOIN ledger.journal_entry j ON j.transaction_id = t.id
         GROUP BY t.id) t;
SQL
) || { echo "drain: FAIL: the checking query failed" >&2; exit 1; }

check_rows <<<"$checks"

# balances = journal, nets to zero, floors, daily rows
check_invariants "$PGHOST" "$DB" "after the drain: invariants"
test_done
