#!/usr/bin/env bash
# test/scripts/escrow.sh: the hot-account escrow's bounds, and what checks
# and repairs it.  Starts its own cluster (hot accounts in database esc).
#
#   bounds   A hot account of an asset with 18 decimals takes a credit of
#            999999999999999999.999999999999999999 (10^36 - 1 units); the
#            next 200 such credits are refused with LD022, each one, and a
#            debit too large for the escrow likewise.  Nothing overflows
#            (the UBSan build aborts on a signed overflow), and after a
#            restart the account is loaded and served: a debit works and
#            its escrow equals the journal.
#   drift    A hot_entry row inserted behind the ledger's back (as a
#            superuser could) is loaded into the escrow at the next
#            restart.  reconcile() reports escrow_mismatch (escrow against
#            journal) besides the balance mismatch, repairs both, and the
#            escrow equals the journal again.
#   fence    While rebuild_balances holds a hot account fenced, a posting
#            to it fails with LD019 saying the account is being corrected
#            (it used to say the account was changing mode).
#   cycle    A transaction posts to a hot account and, later, to a cold one,
#            while a correction of both accounts runs.  The correction
#            fences the hot account before it locks any row, so the
#            posting's second step is not blocked by it: the posting
#            commits within a second, and the correction then completes
#            (before the fix: it held the cold row while waiting for the
#            posting, which waited for that row, until ledger.hot_wait_ms
#            broke the cycle with LD019).
#   rules    Corrections and switches of a hot account under REPEATABLE
#            READ are refused (LD011); a second correction of an account in
#            the same transaction finds its own fence; a refused debit
#            names the escrow's floor even after the account row's floor
#            was set to NULL (it used to crash the backend); a hot account
#            without a slot is not loaded from a balance this transaction
#            changed (LD019).
#   databases A copy of the ledger in another database of the cluster
#            (pg_dump | psql) cannot post to or fence the served ledger's
#            escrow: hot postings there get LD021, switching the account
#            to cold there works, and the served escrow is untouched.
# Every part ends with the invariants of test/invariants.sql.
source "$LEDGER_ROOT/test/lib.sh"
test_begin escrow
NODE=$DIR/node
trap 'node_stop $NODE immediate' EXIT
node_init "$NODE" "shared_preload_libraries = 'ledger'
ledger.database = 'esc'
ledger.fold_interval = 60000" && node_start "$NODE" || { echo "escrow: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" esc
E() { node_psql "$NODE" esc "$@"; }
restart() {
	node_stop "$NODE" && node_start "$NODE" && node_ready "$NODE" esc
}
E >/dev/null <<'SQL' || { echo "escrow: FAIL: setup" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('TOK', 18);
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('tok-world', 'TOK', min_balance => NULL);
SELECT ledger.create_account('whale', 'TOK');
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('a-cold', 'USD');
SELECT ledger.create_account('b-hot', 'USD');
SELECT ledger.create_account('c-hot', 'USD');
SELECT ledger.transfer('world', 'a-cold', 100);
SELECT ledger.transfer('world', 'b-hot', 100);
SELECT ledger.transfer('world', 'c-hot', 100);
SELECT ledger.set_account_mode('whale', 'hot');
SELECT ledger.set_account_mode('b-hot', 'hot');
SELECT ledger.set_account_mode('c-hot', 'hot');
SQL

# ---- bounds ---------------------------------------------------------------
MAX=999999999999999999.999999999999999999
E -c "SELECT ledger.transfer('tok-world', 'whale', $MAX)" >/dev/null &&
	ok "bounds: a credit of 10^36 - 1 units into the hot account" || fail "bounds: the first credit was refused"
refused=0
for i in $(seq 1 200); do
	out=$(E -c "\\set VERBOSITY sqlstate" -c "SELECT ledger.transfer('tok-world', 'whale', $MAX)" 2>&1)
	[ "$out" = "ERROR:  LD022" ] && refused=$((refused + 1))
done
[ "$refused" = 200 ] && ok "bounds: 200 more such credits refused with LD022" ||
	fail "bounds: $refused of 200 further credits refused with LD022"
out=$(E -c "SELECT ledger.transfer('whale', 'tok-world', 1000000000000000000)" 2>&1)
grep -q "too large for hot account" <<<"$out" && ok "bounds: an amount beyond the escrow refused (LD022)" ||
	fail "bounds: debit of 10^18: $out"
f=$(facts_of "$out")
[ "$f" = '{"asset": "TOK", "scale": 18, "amount": "-1000000000000000000.000000000000000000", "account": "whale", "sqlstate": "LD022"}' ] &&
	ok "bounds: its facts name the account, asset, scale and amount" || fail "bounds: LD022 facts: $f"
out=$(E -c "SELECT ledger.transfer('tok-world', 'whale', $MAX)" 2>&1)
f=$(facts_of "$out")
grep -q '"account": "whale"' <<<"$f" && grep -q "\"balance\": \"$MAX\"" <<<"$f" && grep -q "\"amount\": \"$MAX\"" <<<"$f" &&
	ok "bounds: a credit past the bound: facts with the account, balance and amount" || fail "bounds: LD022 facts of a credit: $f"
restart || fail "bounds: no restart"
[ "$(E -c "SELECT committed FROM ledger.hot_accounts() WHERE account = 'whale'")" = "$MAX" ] &&
	ok "bounds: after a restart the escrow holds $MAX" ||
	fail "bounds: after a restart: $(E -c "SELECT committed FROM ledger.hot_accounts() WHERE account = 'whale'" 2>&1)"
E -c "SELECT ledger.transfer('whale', 'tok-world', 0.000000000000000001)" >/dev/null &&
	ok "bounds: the account is served after the restart" || fail "bounds: posting after the restart failed"
E -c "SELECT ledger.fold()" >/dev/null
check_invariants "$NODE" esc "bounds: invariants"

# ---- drift ----------------------------------------------------------------
E >/dev/null <<'SQL'
INSERT INTO ledger.hot_entry (transaction_id, account_id, day, debits, credits, created_at)
SELECT ledger.new_id(), id, current_date, 0, 7, now() FROM ledger.account WHERE code = 'b-hot';
SQL
restart || fail "drift: no restart"
E -c "SELECT ledger.fold()" >/dev/null
report=$(E -c "SELECT kind || ':' || expected || ':' || actual FROM ledger.reconcile() WHERE account = 'b-hot' ORDER BY kind")
grep -q "^escrow_mismatch:100.00:107.00$" <<<"$report" &&
	ok "drift: reconcile reports the escrow against the journal (100.00 vs 107.00)" ||
	fail "drift: reconcile reported: $(tr '\n' ' ' <<<"$report")"
grep -q "^balance_mismatch:100.00:107.00$" <<<"$report" &&
	ok "drift: and the balance against the journal" || fail "drift: no balance_mismatch: $(tr '\n' ' ' <<<"$report")"
[ "$(E -c "SELECT details->>'expected' || '/' || (details->>'actual') || '/' || (details->>'repaired') FROM ledger.alert WHERE kind = 'escrow_mismatch'")" = "100.00/107.00/true" ] &&
	ok "drift: its alert carries the values as JSON numbers" || fail "drift: escrow alert details"
[ "$(E -c "SELECT committed FROM ledger.hot_accounts() WHERE account = 'b-hot'")" = 100.00 ] &&
	[ "$(E -c "SELECT count(*) FROM ledger.reconcile(repair => false)")" = 0 ] &&
	ok "drift: repaired: the escrow is 100.00 and a second run finds nothing" ||
	fail "drift: after repair: escrow $(E -c "SELECT committed FROM ledger.hot_accounts() WHERE account = 'b-hot'")"
check_invariants "$NODE" esc "drift: invariants"

# ---- fence ----------------------------------------------------------------
{
	echo "BEGIN; SELECT ledger.rebuild_balances('b-hot'); SELECT pg_sleep(2); COMMIT;"
} | E >"$DIR/rebuilder.out" 2>&1 &
rebuilder=$!
sleep 0.7
out=$(E -c "SELECT ledger.transfer('b-hot', 'world', 1)" 2>&1)
wait "$rebuilder"
grep -q "is being corrected" <<<"$out" &&
	ok "fence: a posting during rebuild_balances() is told the account is being corrected" ||
	fail "fence: posting during the rebuild: $out; the rebuild: $(tr '\n' ' ' <"$DIR/rebuilder.out")"

# ---- cycle ----------------------------------------------------------------
txid=$(E -c "SELECT ledger.post('[{\"account\": \"a-cold\", \"amount\": \"-1\"}, {\"account\": \"c-hot\", \"amount\": \"1\"}]')")
# the posting transaction: hot first, then (after the correction started) cold
(
	echo "SET ledger.hot_wait_ms = 3000;"
	echo "BEGIN;"
	echo "SELECT ledger.transfer('world', 'c-hot', 2);"
	echo "SELECT pg_sleep(1);"
	echo "SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset"
	echo "SELECT ledger.transfer('world', 'a-cold', 3);"
	echo "SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 1) AS waited;"
	echo "COMMIT;"
) | E >"$DIR/poster.out" 2>&1 &
poster=$!
sleep 0.5
inv=$(E -c "SET ledger.hot_wait_ms = 3000" -c "SELECT count(*) FROM ledger.invalidate('$txid', 'cycle test')" 2>&1)
wait "$poster"
waited=$(tail -1 "$DIR/poster.out")
[ "$inv" = 2 ] && ok "cycle: the correction completed (2 accounts) after the posting committed" ||
	fail "cycle: the correction: $inv"
awk -v w="$waited" 'BEGIN { exit !(w + 0 < 1) }' &&
	ok "cycle: the posting's cold step waited ${waited}s, not for the correction" ||
	fail "cycle: the posting's cold step waited ${waited}s: $(tr '\n' ' ' <"$DIR/poster.out")"
check_invariants "$NODE" esc "cycle: invariants"

# ---- rules ----------------------------------------------------------------
out=$(E -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT ledger.rebuild_balances('b-hot')" 2>&1)
grep -q "can only be corrected or switched under READ COMMITTED" <<<"$out" &&
	ok "rules: a correction of a hot account under REPEATABLE READ is refused" ||
	fail "rules: correction under REPEATABLE READ: $out"
out=$(E -c "BEGIN ISOLATION LEVEL REPEATABLE READ" -c "SELECT ledger.set_account_mode('b-hot', 'cold')" 2>&1)
grep -q "can only be corrected or switched under READ COMMITTED" <<<"$out" &&
	[ "$(E -c "SELECT state FROM ledger.hot_accounts() WHERE account = 'b-hot'")" = active ] &&
	ok "rules: a switch to cold under REPEATABLE READ is refused, the slot stays active" ||
	fail "rules: switch under REPEATABLE READ: $out"
t0=$(date +%s%N)
out=$(E -c "BEGIN" -c "SELECT ledger.rebuild_balances('b-hot')" -c "SELECT ledger.rebuild_balances('b-hot')" -c "COMMIT" 2>&1)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -lt 3000 ] && ! grep -q ERROR <<<"$out" &&
	ok "rules: a second correction in the same transaction finds its own fence (${ms} ms)" ||
	fail "rules: second correction in one transaction: ${ms} ms, $out"
E -c "UPDATE ledger.account SET min_balance = NULL WHERE code = 'c-hot'" >/dev/null
out=$(E -c "SELECT ledger.transfer('c-hot', 'world', 100000)" 2>&1)
grep -q "available above its floor 0.00" <<<"$out" &&
	ok "rules: a refused hot debit names the escrow's floor (the row's is NULL now)" ||
	fail "rules: refused debit with the row's floor NULL: $out"
E -c "UPDATE ledger.account SET min_balance = 0 WHERE code = 'c-hot'" >/dev/null
# a hot account the server has no slot for (as a restore leaves it)
E >/dev/null <<'SQL'
SELECT ledger.create_account('d-hot', 'USD');
SELECT ledger.transfer('world', 'd-hot', 50);
SELECT ledger.transfer('a-cold', 'd-hot', 1);
UPDATE ledger.account SET mode = 'hot' WHERE code = 'd-hot';
UPDATE ledger.account_balance SET hot = true
 WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'd-hot');
SQL
dtx=$(E -c "SELECT transaction_id FROM ledger.journal WHERE account = 'd-hot' ORDER BY id DESC LIMIT 1")
out=$(E -c "BEGIN" -c "SELECT count(*) FROM ledger.invalidate('$dtx', 'rules')" \
	-c "SELECT ledger.transfer('d-hot', 'world', 1)" 2>&1)
grep -q "was changed by this transaction" <<<"$out" &&
	[ "$(E -c "SELECT count(*) FROM ledger.hot_accounts() WHERE account = 'd-hot'")" = 0 ] &&
	ok "rules: no slot is loaded from this transaction's uncommitted correction" ||
	fail "rules: load after an own correction: $out"
E -c "SELECT ledger.transfer('d-hot', 'world', 1)" >/dev/null &&
	[ "$(E -c "SELECT committed FROM ledger.hot_accounts() WHERE account = 'd-hot'")" = 50.00 ] &&
	ok "rules: loaded by a later posting from committed rows (51.00), 50.00 after its debit" ||
	fail "rules: d-hot: $(E -c "SELECT committed FROM ledger.hot_accounts() WHERE account = 'd-hot'")"
check_invariants "$NODE" esc "rules: invariants"

# ---- reswitch ---------------------------------------------------------------
# A switch to hot that waits for a switch to cold (which folds the
# account's unfolded entries under its row lock) must load the escrow from
# what that one left: the balance row after the fold, with the entries it
# folded no longer counted.  Read with the statement's snapshot, taken
# before the wait, those entries would be counted twice (the balance row
# is re-read at its newest version, the entries were not): found by a
# stress test of batches against mode switches.
E >/dev/null <<'SQL' || fail "reswitch: setup"
SELECT ledger.create_account('rs', 'USD');
SELECT ledger.transfer('world', 'rs', 10);
SELECT ledger.set_account_mode('rs', 'hot');
SELECT ledger.transfer('rs', 'world', 1.50);
SQL
[ "$(E -c "SELECT count(*) FROM ledger.hot_entry e JOIN ledger.account a ON a.id = e.account_id WHERE a.code = 'rs'")" = 1 ] &&
	ok "reswitch: one unfolded entry (the fold worker sleeps a minute here)" || fail "reswitch: no unfolded entry"
E -c "BEGIN" -c "SELECT ledger.set_account_mode('rs', 'cold')" -c "SELECT pg_sleep(1.5)" -c "COMMIT" >/dev/null 2>&1 &
cold=$!
sleep 0.5
E -c "SELECT ledger.set_account_mode('rs', 'hot')" >/dev/null 2>&1 || fail "reswitch: switching back to hot"
wait "$cold" || fail "reswitch: switching to cold"
got=$(E -c "SELECT h.committed || '/' || ledger.balance('rs') FROM ledger.hot_accounts() h WHERE h.account = 'rs'")
[ "$got" = "8.50/8.50" ] && ok "reswitch: the escrow took 8.50, the balance after the other switch's fold" ||
	fail "reswitch: escrow/balance $got, expected 8.50/8.50"
check_invariants "$NODE" esc "reswitch: invariants"

# ---- databases ------------------------------------------------------------
served=$(E -c "SELECT committed || '/' || debits_accepted FROM ledger.hot_accounts() WHERE account = 'b-hot'")
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" esc_copy
"$PGBIN/pg_dump" -h "$NODE" -p "$(node_port "$NODE")" -U postgres esc |
	node_psql "$NODE" esc_copy >/dev/null 2>&1
C() { node_psql "$NODE" esc_copy "$@"; }
out=$(C -c "SELECT ledger.transfer('b-hot', 'world', 1)" 2>&1)
grep -q "hot accounts are served in database \"esc\" only" <<<"$out" &&
	ok "databases: a hot posting in a copy of the ledger gets LD021" ||
	fail "databases: posting in the copy: $out"
[ "$(C -c "SELECT ledger.set_account_mode('b-hot', 'cold')")" = hot ] &&
	C -c "SELECT ledger.transfer('b-hot', 'world', 1)" >/dev/null &&
	ok "databases: the copy switches the account to cold and posts" ||
	fail "databases: switching to cold in the copy failed"
[ "$(E -c "SELECT committed || '/' || debits_accepted FROM ledger.hot_accounts() WHERE account = 'b-hot' AND state = 'active'")" = "$served" ] &&
	ok "databases: the served escrow is untouched ($served)" ||
	fail "databases: served escrow was $served, now $(E -c "SELECT committed || '/' || debits_accepted || '/' || state FROM ledger.hot_accounts() WHERE account = 'b-hot'")"
check_invariants "$NODE" esc "databases: invariants"
test_done
