#!/usr/bin/env bash
# test/scripts/hot_exhaustion.sh: 32 pgbench clients drain a hot account.
#
# In the database that serves hot accounts (ledger.database, default
# ledger_hot), an account is funded with exactly N units (asset scale 0)
# and switched to hot mode; then pgbench -c 32 makes more than N attempts
# to move 1 unit from it to a cold sink (one sink per client, so no
# balance row is shared), through ex_debit(), a helper that calls
# ledger.transfer and turns LD001 (insufficient funds) into false.  Three
# rounds, each starting from N in the account (rounds 2 and 3 refund it
# with a hot credit):
#   1. plain: every attempt commits;
#   2. rollback: about 10% of the client transactions roll back after
#      their debit (BEGIN; debit; ROLLBACK or COMMIT);
#   3. savepoint: every debit runs inside a SAVEPOINT that about half the
#      clients roll back to before committing.
# While a round runs, a sampler reads the escrow (ledger.hot_accounts())
# every 10 ms: available (committed - reserved - floor), committed and
# reserved must never be negative.
#
# Checks per round: pgbench ran every transaction and aborted no client;
# exactly N committed successful attempts and exactly N committed debit
# entries of -1 on the account (journal, by the round tag in the
# transaction metadata); ledger.balance is 0; the escrow shows committed 0,
# reserved 0, nothing in flight; every attempt reached the escrow (debits
# accepted + refused = attempts); in round 1 exactly N debits were
# accepted, in rounds 2 and 3 more than N (some were accepted and then
# rolled back, and released).  Journal ids are not in commit order for hot
# postings, so "never below 0" is checked on the escrow samples and on the
# final state, not on a running sum of the journal.
# At the end, once the fold worker has emptied ledger.hot_entry: the
# drained account's balance row is 0 and the sinks' 3N in all,
# ledger.reconcile(repair => false) finds nothing, and the invariants of
# test/invariants.sql hold (every balance equals its journal, every asset
# and transaction nets to zero, floors, daily rows equal the journal, the
# escrow equals the balance).
#
# Run by test/run.sh as root with PGHOST (the shared cluster's directory),
# PGPORT, PGBIN, LEDGER_ROOT and WORK set and a cluster preloading ledger.
# Drops the extension (and its helper objects) at the end.
source "$LEDGER_ROOT/test/lib.sh"
set +e
TEST_NAME=hot_exhaustion

: "${PGHOST:?PGHOST must be set}" "${PGPORT:?PGPORT must be set}"
export PGUSER=${PGUSER:-postgres}

DB=${HOT_DB:-ledger_hot}
N=${EXHAUST_N:-2000}
CLIENTS=32
# attempts per client in each round: enough to drain N even when a share
# of the accepted debits is rolled back
PER_CLIENT_1=$(( (N * 3 / 2 + CLIENTS - 1) / CLIENTS ))
PER_CLIENT_2=$(( (N * 3 / 2 + CLIENTS - 1) / CLIENTS ))
PER_CLIENT_3=$(( (N * 5 / 2 + CLIENTS - 1) / CLIENTS ))

TMP=$(mktemp -d "${WORK:-/tmp}/hot_exhaustion.XXXXXX")
chmod 755 "$TMP"

psql_db() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

SAMPLER=
cleanup() {
	[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
	psql_db >/dev/null 2>&1 <<'SQL' || echo "hot_exhaustion: cleanup failed" >&2
SET client_min_messages = warning;
DROP FUNCTION IF EXISTS public.ex_debit(integer, integer);
DROP TABLE IF EXISTS public.ex_attempt, public.ex_stop;
DROP EXTENSION IF EXISTS ledger CASCADE;
SQL
	rm -rf "$TMP"
}
trap cleanup EXIT

served=$(psql_db -At -c "SHOW ledger.database" 2>/dev/null) ||
	{ echo "hot_exhaustion: FAIL: cannot connect to $DB, or ledger is not preloaded" >&2; exit 1; }
[ "$served" = "$DB" ] || { echo "hot_exhaustion: FAIL: ledger.database is '$served', not '$DB'" >&2; exit 1; }

psql_db -v n="$N" -v clients="$CLIENTS" >/dev/null <<'SQL' || { echo "hot_exhaustion: FAIL: setup failed" >&2; exit 1; }
SET client_min_messages = warning;
DROP FUNCTION IF EXISTS public.ex_debit(integer, integer);
DROP TABLE IF EXISTS public.ex_attempt, public.ex_stop;
DROP EXTENSION IF EXISTS ledger CASCADE;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('TOK', 0);
SELECT ledger.create_account('ex-src', 'TOK', min_balance => NULL);
SELECT ledger.create_account('ex-acct', 'TOK');            -- floor 0
SELECT ledger.create_account('ex-sink-' || c, 'TOK') FROM generate_series(0, :clients - 1) c;
SELECT ledger.transfer('ex-src', 'ex-acct', :n, metadata => '{"round": 1, "step": "fund"}');
SELECT ledger.set_account_mode('ex-acct', 'hot');

-- one row per attempt whose transaction (or savepoint) committed
CREATE UNLOGGED TABLE public.ex_attempt (round integer NOT NULL, ok boolean NOT NULL);
-- a row here stops the sampler
CREATE UNLOGGED TABLE public.ex_stop (round integer NOT NULL);

CREATE FUNCTION public.ex_debit(round integer, sink integer) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger.transfer('ex-acct', 'ex-sink-' || sink, 1,
                            metadata => jsonb_build_object('round', round, 'step', 'drain'));
    INSERT INTO public.ex_attempt VALUES (round, true);
    RETURN true;
EXCEPTION WHEN SQLSTATE 'LD001' THEN
    INSERT INTO public.ex_attempt VALUES (round, false);
    RETURN false;
END
$$;
SQL

cat >"$TMP/round1.sql" <<'EOF_SQL'
SELECT ex_debit(1, :client_id);
EOF_SQL
cat >"$TMP/round2.sql" <<'EOF_SQL'
\set r random(1, 10)
BEGIN;
SELECT ex_debit(2, :client_id);
\if :r = 1
ROLLBACK;
\else
COMMIT;
\endif
EOF_SQL
cat >"$TMP/round3.sql" <<'EOF_SQL'
\set r random(1, 2)
BEGIN;
SAVEPOINT s;
SELECT ex_debit(3, :client_id);
\if :r = 1
ROLLBACK TO SAVEPOINT s;
\endif
COMMIT;
EOF_SQL

# Sample the escrow every 10 ms until ex_stop has a row for the round (at
# most 120 s); print "samples|min available|min committed|min reserved".
sample() {
	psql_db -At -v round="$1" <<'SQL'
SET client_min_messages = notice;
CREATE TEMP TABLE s (n bigint, min_avail numeric, min_comm numeric, min_res numeric);
DO $$
DECLARE
    r record;
    n bigint := 0;
    a numeric; c numeric; res numeric;
    deadline timestamptz := clock_timestamp() + interval '120 s';
BEGIN
    LOOP
        SELECT available, committed, reserved INTO r
          FROM ledger.hot_accounts() WHERE account = 'ex-acct';
        n := n + 1;
        a := least(a, r.available); c := least(c, r.committed); res := least(res, r.reserved);
        EXIT WHEN EXISTS (SELECT 1 FROM public.ex_stop WHERE round = current_setting('ex.round')::int)
               OR clock_timestamp() > deadline;
        PERFORM pg_sleep(0.01);
    END LOOP;
    INSERT INTO s VALUES (n, a, c, res);
END
$$;
SELECT n || '|' || min_avail || '|' || min_comm || '|' || min_res FROM s;
SQL
}

# counters of the escrow: "accepted|refused"
escrow_counters() {
	psql_db -At -F '|' -c "SELECT debits_accepted, debits_refused FROM ledger.hot_accounts() WHERE account = 'ex-acct'"
}

run_round() {
	local round=$1 per_client=$2 label=$3
	local attempts=$((CLIENTS * per_client)) before after rc start
	local acc0 ref0 acc1 ref1 samples

	if [ "$round" -gt 1 ]; then
		psql_db -v n="$N" -v round="$round" >/dev/null <<'SQL' || { echo "hot_exhaustion: FAIL: round $round: refund failed" >&2; exit 1; }
SELECT ledger.transfer('ex-src', 'ex-acct', :n,
                       metadata => jsonb_build_object('round', :round, 'step', 'fund'));
SQL
	fi
	IFS='|' read -r acc0 ref0 <<<"$(escrow_counters)"

	PGOPTIONS="-c ex.round=$round" sample "$round" >"$TMP/sample$round.out" 2>&1 &
	SAMPLER=$!

	echo "hot_exhaustion: round $round ($label): $CLIENTS clients x $per_client attempts against $N units"
	start=$(date +%s)
	"$PGBIN/pgbench" -n -c "$CLIENTS" -j 2 -t "$per_client" -f "$TMP/round$round.sql" "$DB" \
		>"$TMP/pgbench$round.log" 2>&1
	rc=$?
	echo "hot_exhaustion: round $round: pgbench finished in $(($(date +%s) - start)) s (exit $rc);" \
		"$(grep -E '^tps' "$TMP/pgbench$round.log" | head -1)"

	psql_db -c "INSERT INTO public.ex_stop VALUES ($round)"
	wait "$SAMPLER"
	SAMPLER=

	local nf=$TEST_FAILURES
	[ "$rc" -eq 0 ] || fail "round $round: pgbench exited with status $rc"
	if grep -qiE 'aborted' "$TMP/pgbench$round.log"; then
		fail "round $round: pgbench aborted clients: $(grep -iE 'aborted' "$TMP/pgbench$round.log" | head -5 | tr '\n' ' ')"
	fi
	grep -qE "^number of transactions actually processed: $attempts/$attempts\$" "$TMP/pgbench$round.log" ||
		fail "round $round: pgbench did not process $attempts/$attempts transactions: $(grep -E 'actually processed' "$TMP/pgbench$round.log" || echo 'no summary')"
	if grep -qE '^number of failed transactions: [1-9]' "$TMP/pgbench$round.log"; then
		fail "round $round: pgbench reported failed transactions"
	fi
	if [ "$TEST_FAILURES" -gt "$nf" ]; then
		tail -n 30 "$TMP/pgbench$round.log" >&2
	fi

	# the escrow never went negative while the round ran
	samples=$(grep -E '^[0-9]+\|' "$TMP/sample$round.out")
	local sn savail scomm sres
	IFS='|' read -r sn savail scomm sres <<<"$samples"
	if [ -z "$samples" ]; then
		fail "round $round: the escrow sampler failed: $(cat "$TMP/sample$round.out")"
	elif [ "$sn" -lt 10 ]; then
		fail "round $round: only $sn escrow samples"
	elif psql_db -At -c "SELECT $savail >= 0 AND $scomm >= 0 AND $sres >= 0" | grep -qx t; then
		ok "round $round: escrow never negative over $sn samples (min available $savail, min committed $scomm, min reserved $sres)"
	else
		fail "round $round: escrow went negative: min available $savail, min committed $scomm, min reserved $sres over $sn samples"
	fi

	# a few attempts may have been refused while the last units were
	# reserved by transactions that then rolled back: finish the drain one
	# debit at a time (each counted like any other attempt of the round).
	# Nothing else runs now, so a refusal means the escrow has nothing left.
	local mop=0
	while psql_db -At -c "SELECT ledger.balance('ex-acct') > 0" | grep -qx t; do
		mop=$((mop + 1))
		psql_db -At -c "SELECT ex_debit($round, 0)" | grep -qx t || break
	done
	[ "$mop" -eq 0 ] || echo "hot_exhaustion: round $round: $mop more attempt(s), one at a time, to finish the drain"
	attempts=$((attempts + mop))

	IFS='|' read -r acc1 ref1 <<<"$(escrow_counters)"
	local checks
	checks=$(psql_db -At -F '|' -v n="$N" -v round="$round" -v attempts="$attempts" \
		-v accepted="$((acc1 - acc0))" -v refused="$((ref1 - ref0))" <<'SQL'
WITH acct AS (SELECT id FROM ledger.account WHERE code = 'ex-acct'),
     entries AS (
         SELECT j.amount FROM ledger.journal_entry j
           JOIN ledger.transaction t ON t.id = j.transaction_id
          WHERE j.account_id = (SELECT id FROM acct)
            AND t.metadata->>'step' = 'drain' AND (t.metadata->>'round')::int = :round)
SELECT 'exactly N committed successful attempts',
       count(*) FILTER (WHERE ok) = :n,
       format('%s committed successes, %s committed refusals; expected %s successes',
              count(*) FILTER (WHERE ok), count(*) FILTER (WHERE NOT ok), :n)
  FROM public.ex_attempt WHERE round = :round
UNION ALL
SELECT 'exactly N committed debits in the journal',
       count(*) = :n AND coalesce(bool_and(amount = -1), false),
       format('%s debit entries (sum %s); expected %s of -1', count(*), sum(amount), :n)
  FROM entries
UNION ALL
SELECT 'account drained to 0',
       ledger.balance('ex-acct') = 0, format('ledger.balance = %s', ledger.balance('ex-acct'))
UNION ALL
SELECT 'escrow settled at 0',
       committed = 0 AND reserved = 0 AND inflight = 0 AND state = 'active',
       format('committed %s, reserved %s, inflight %s, state %s', committed, reserved, inflight, state)
  FROM ledger.hot_accounts() WHERE account = 'ex-acct'
UNION ALL
SELECT 'every attempt reached the escrow',
       :accepted + :refused = :attempts,
       format('%s accepted + %s refused, %s attempts', :accepted, :refused, :attempts)
UNION ALL
SELECT CASE WHEN :round = 1 THEN 'every accepted debit committed'
            ELSE 'some accepted debits were rolled back and released' END,
       CASE WHEN :round = 1 THEN :accepted = :n ELSE :accepted > :n END,
       format('%s debits accepted by the escrow, %s committed', :accepted, :n);
SQL
	) || { fail "round $round: the checking query failed"; return; }
	check_rows "round $round: " <<<"$checks"
}

run_round 1 "$PER_CLIENT_1" "every transaction commits"
run_round 2 "$PER_CLIENT_2" "~10% of transactions roll back after debiting"
run_round 3 "$PER_CLIENT_3" "~50% of debits rolled back to a savepoint"

# Let the fold worker empty the queue, then compare the stored balances.
for _ in $(seq 1 300); do
	[ "$(psql_db -At -c "SELECT count(*) FROM ledger.hot_entry")" = 0 ] && break
	sleep 0.1
done

checks=$(psql_db -At -F '|' -v n="$N" <<'SQL'
WITH stored AS (
         SELECT a.code, b.balance
           FROM ledger.account a JOIN ledger.account_balance b ON b.account_id = a.id)
SELECT 'fold worker emptied the queue',
       count(*) = 0, format('%s unfolded hot entries', count(*))
  FROM ledger.hot_entry
UNION ALL
SELECT 'drained account folded to 0, sinks hold 3N',
       (SELECT balance FROM stored WHERE code = 'ex-acct') = 0
       AND (SELECT sum(balance) FROM stored WHERE code LIKE 'ex-sink-%') = 3 * :n,
       format('ex-acct %s, sinks %s', (SELECT balance FROM stored WHERE code = 'ex-acct'),
              (SELECT sum(balance) FROM stored WHERE code LIKE 'ex-sink-%'))
SQL
) || { fail "the final checking query failed"; checks=; }
check_rows "at the end: " <<<"$checks"
check_reconcile "$PGHOST" "$DB" "at the end: reconcile"
# balances = journal, nets to zero, floors, daily rows, escrow = balance
check_invariants "$PGHOST" "$DB" "at the end: invariants"
test_done
