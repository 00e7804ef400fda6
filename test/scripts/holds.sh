#!/usr/bin/env bash
# test/scripts/holds.sh: holds under concurrency, with prepared
# transactions and with hot accounts.  Starts its own cluster (hot accounts
# in database hd, max_prepared_transactions = 10).
#
#   twophase  A prepared transaction holding a hold keeps the account's
#             balance row locked: a concurrent debit of the same account
#             waits (seen in pg_locks), and after COMMIT PREPARED it is
#             refused, because the hold now keeps the money.  A prepared
#             transfer makes a concurrent hold wait; after ROLLBACK
#             PREPARED the hold is taken with the money the transfer would
#             have moved.  Balances and holds are checked after each.
#   hot       A hold on a hot account is refused (LD028); an account with
#             an active hold cannot be switched to hot (LD028); a capture
#             into a hot account works, and its escrow equals its journal;
#             an expired hold on an account since gone hot: LD024.
#   stress    pgbench, 32 clients for 10 s on 4 users and a hot merchant:
#             random exclusive and shared holds (short submit windows, so
#             some expire mid-run), submissions, partial and full captures,
#             voids, plain debits, refills and sweeps.  Refusals (LD001,
#             LD024, LD025, LD027) are counted, never fatal; any other
#             error fails the run.  Afterwards: every account keeps
#             balance - held exclusive - largest shared >= floor, every
#             captured amount is in the journal exactly once, every hold's
#             amount = captured + remaining + released, each account's
#             open-hold count matches its holds, balances equal the journal
#             and the escrow its balance (test/invariants.sql).
source "$LEDGER_ROOT/test/lib.sh"
test_begin holds
NODE=$DIR/node
trap 'node_stop $NODE immediate' EXIT
node_init "$NODE" "shared_preload_libraries = 'ledger'
ledger.database = 'hd'
max_connections = 60" && node_start "$NODE" || { echo "holds: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" hd
H() { node_psql "$NODE" hd "$@"; }
node_ready "$NODE" hd >/dev/null
H >/dev/null <<'SQL' || { echo "holds: FAIL: setup" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('alice', 'USD');
SELECT ledger.create_account('shop', 'USD');
SELECT ledger.create_account('fees', 'USD');
SELECT ledger.transfer('world', 'alice', 100);
SQL
node_ready "$NODE" hd || fail "the fold worker did not get ready"

# waiting PID: is this backend waiting for a lock?
waiting() {
	[ "$(H -c "SELECT count(*) FROM pg_locks WHERE pid = $1 AND NOT granted")" -gt 0 ]
}
backend_of() {	# the pid of the session running a statement like $1
	H -c "SELECT pid FROM pg_stat_activity WHERE starts_with(query, \$q\$$1\$q\$) AND pid <> pg_backend_pid() LIMIT 1"
}
waits_for_lock() {	# waits_for_lock PREFIX: the session running it waits for a lock (5 s)
	local pid= _
	for _ in $(seq 1 50); do
		pid=$(backend_of "$1")
		[ -n "$pid" ] && waiting "$pid" && return 0
		sleep 0.1
	done
	return 1
}

# ---- twophase -------------------------------------------------------------
H -c "BEGIN" -c "SELECT ledger.hold('alice', 60, 'shop') IS NOT NULL" \
	-c "PREPARE TRANSACTION 'hold-1'" >/dev/null || fail "twophase: prepare a hold"
out=$DIR/debit.out
H -c "\\set VERBOSITY sqlstate" -c "SELECT ledger.transfer('alice', 'shop', 50) /* debit-1 */" >"$out" 2>&1 &
bg=$!
waits_for_lock "SELECT ledger.transfer('alice', 'shop', 50)" && ok "twophase: a debit waits for the prepared hold's row lock" ||
	fail "twophase: the debit did not wait for the prepared transaction"
H -c "COMMIT PREPARED 'hold-1'" || fail "twophase: COMMIT PREPARED"
wait "$bg"
grep -q "LD001" "$out" && ok "twophase: after COMMIT PREPARED the debit is refused (LD001): the hold keeps 60 of 100" ||
	fail "twophase: the debit was not refused: $(cat "$out")"
rows=$(H -F '|' <<'SQL'
SELECT 'balance and holds after COMMIT PREPARED', balance = 100 AND held_exclusive = 60 AND available = 40,
       format('balance %s, held %s, available %s', balance, held_exclusive, available)
  FROM ledger.account_overview WHERE code = 'alice';
SQL
)
check_rows "twophase: " <<<"$rows"

H -c "BEGIN" -c "SELECT ledger.transfer('alice', 'shop', 30) IS NOT NULL" \
	-c "PREPARE TRANSACTION 'transfer-1'" >/dev/null || fail "twophase: prepare a transfer"
H -c "SELECT ledger.hold('alice', 40, 'shop', idempotency_key => 'after-rollback') IS NOT NULL" >"$out" 2>&1 &
bg=$!
waits_for_lock "SELECT ledger.hold('alice', 40" && ok "twophase: a hold waits for the prepared transfer's row lock" ||
	fail "twophase: the hold did not wait for the prepared transfer"
H -c "ROLLBACK PREPARED 'transfer-1'" || fail "twophase: ROLLBACK PREPARED"
wait "$bg"
[ "$(cat "$out")" = t ] && ok "twophase: after ROLLBACK PREPARED the hold of 40 is taken" ||
	fail "twophase: the hold failed: $(cat "$out")"
rows=$(H -F '|' <<'SQL'
SELECT 'balance and holds after ROLLBACK PREPARED', balance = 100 AND held_exclusive = 100 AND available = 0,
       format('balance %s, held %s, available %s', balance, held_exclusive, available)
  FROM ledger.account_overview WHERE code = 'alice';
SELECT 'no prepared transaction left', count(*) = 0, count(*) || ' left' FROM pg_prepared_xacts;
SQL
)
check_rows "twophase: " <<<"$rows"
H -c "SELECT ledger.void(id, 'done') FROM ledger.hold WHERE state = 'reserved'" >/dev/null

# the sweeper never waits for an account a prepared transaction holds: it
# records what it can take now and leaves that account for a later call
H -c "SELECT ledger.hold('alice', 5, 'shop', submit_within => '100 milliseconds')" >/dev/null
H -c "SELECT ledger.hold('shop', 1, 'alice', submit_within => '100 milliseconds')" >/dev/null 2>&1 ||
	H -c "SELECT ledger.transfer('world', 'shop', 1)" -c "SELECT ledger.hold('shop', 1, 'alice', submit_within => '100 milliseconds')" >/dev/null
H -c "BEGIN" -c "SELECT ledger.transfer('alice', 'world', 1) IS NOT NULL" \
	-c "PREPARE TRANSACTION 'blocker'" >/dev/null || fail "twophase: prepare the blocker"
sleep 0.2
moved=$(H -c "SET statement_timeout = '5s'" -c "SELECT ledger.expire_holds()" 2>&1)
[ "$moved" = 1 ] && ok "twophase: expire_holds skipped the account a prepared transaction holds and recorded the other (1)" ||
	fail "twophase: expire_holds with a prepared transaction holding an account: $moved"
H -c "COMMIT PREPARED 'blocker'" >/dev/null || fail "twophase: COMMIT PREPARED the blocker"
[ "$(H -c "SELECT ledger.expire_holds()")" = 1 ] && ok "twophase: the next call recorded the skipped one" ||
	fail "twophase: the skipped hold was not recorded later"
check_invariants "$NODE" hd "twophase: invariants"

# ---- hot ------------------------------------------------------------------
H -c "SELECT ledger.set_account_mode('fees', 'hot')" >/dev/null || fail "hot: switching fees to hot"
st() { H -c "\\set VERBOSITY sqlstate" -c "$1" 2>&1 | tr -d '\n'; }
[ "$(st "SELECT ledger.hold('fees', 1, 'shop')")" = "ERROR:  LD028" ] &&
	ok "hot: a hold on a hot account is refused (LD028)" || fail "hot: a hold on a hot account was not refused"
h=$(H -c "SELECT ledger.hold('alice', 25, 'fees', external_ref => 'to-hot')")
[ "$(st "SELECT ledger.set_account_mode('alice', 'hot')")" = "ERROR:  LD028" ] &&
	ok "hot: an account with an active hold cannot turn hot (LD028)" || fail "hot: alice turned hot with a hold"
f=$(facts_of "$(H -c "SELECT ledger.set_account_mode('alice', 'hot')" 2>&1)")
grep -q '"account": "alice"' <<<"$f" && grep -q '"held_exclusive": "25.00"' <<<"$f" && grep -q '"sqlstate": "LD028"' <<<"$f" &&
	ok "hot: its facts name the account and what is held" || fail "hot: LD028 facts: $f"
f=$(facts_of "$(H -c "SELECT ledger.hold('fees', 1, 'shop')" 2>&1)")
[ "$f" = '{"account": "fees", "sqlstate": "LD028"}' ] && ok "hot: a hold's refusal names the hot account" ||
	fail "hot: LD028 facts of a hold: $f"
H -c "SELECT ledger.capture('$h', 10)" >/dev/null && H -c "SELECT ledger.capture('$h')" >/dev/null &&
	ok "hot: two captures into the hot account" || fail "hot: capture into a hot account failed"
# an expired hold does not keep its account cold; capturing it after the
# account went hot is refused as expired (LD024), like void
H -c "SELECT ledger.create_account('gone-hot', 'USD')" -c "SELECT ledger.transfer('world', 'gone-hot', 10)" >/dev/null
h2=$(H -c "SELECT ledger.hold('gone-hot', 5, 'shop', submit_within => '1 millisecond')")
sleep 0.1
H -c "SELECT ledger.set_account_mode('gone-hot', 'hot')" >/dev/null || fail "hot: an account whose hold expired cannot turn hot"
[ "$(st "SELECT ledger.capture('$h2')")" = "ERROR:  LD024" ] && [ "$(st "SELECT ledger.void('$h2', 'late')")" = "ERROR:  LD024" ] &&
	ok "hot: capture and void of an expired hold on an account gone hot: LD024" ||
	fail "hot: capture of an expired hold on a hot account: $(st "SELECT ledger.capture('$h2')")"
rows=$(H -F '|' <<'SQL'
SELECT 'the hot account got the captures', balance = 25, 'balance ' || balance
  FROM ledger.account_overview WHERE code = 'fees';
SQL
)
check_rows "hot: " <<<"$rows"
check_invariants "$NODE" hd "hot: invariants"

# ---- stress ---------------------------------------------------------------
H >/dev/null <<'SQL' || fail "stress: setup"
SELECT ledger.create_account('user-' || i, 'USD', min_balance => CASE WHEN i = 4 THEN -500 ELSE 0 END)
  FROM generate_series(1, 4) i;
SELECT ledger.create_account('merchant', 'USD');
SELECT ledger.set_account_mode('merchant', 'hot');
SELECT ledger.transfer('world', 'user-' || i, 2000) FROM generate_series(1, 4) i;
CREATE TABLE public.outcome (code text, n bigint);
CREATE FUNCTION public.pick(acct text, states text[], excl boolean) RETURNS uuid
LANGUAGE sql AS $$
    SELECT h.id FROM ledger.hold h JOIN ledger.account a ON a.id = h.account_id
     WHERE a.code = acct AND h.state = ANY (states) AND (NOT excl OR h.mode = 'exclusive')
     ORDER BY random() LIMIT 1
$$;
-- one random move; refusals are expected and returned, anything else raises
CREATE FUNCTION public.stress_op(r integer, u integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    acct text := 'user-' || u;
    amt numeric := round((random() * 300)::numeric + 0.01, 2);
    h uuid;
BEGIN
    IF r <= 30 THEN
        PERFORM ledger.hold(acct, amt, 'merchant', submit_within => '1.5 seconds',
                            confirm_within => '3 seconds');
    ELSIF r <= 38 THEN
        PERFORM ledger.hold(acct, amt * 2, mode => 'shared', submit_within => '1 second');
    ELSIF r <= 58 THEN
        h := public.pick(acct, '{reserved,submitted,timed_out}', true);
        IF h IS NOT NULL THEN
            PERFORM ledger.capture(h, CASE WHEN r % 2 = 0 THEN NULL ELSE round(amt / 3, 2) + 0.01 END);
        END IF;
    ELSIF r <= 68 THEN
        h := public.pick(acct, '{reserved,submitted,timed_out}', false);
        IF h IS NOT NULL THEN PERFORM ledger.void(h, 'stress'); END IF;
    ELSIF r <= 76 THEN
        h := public.pick(acct, '{reserved}', false);
        IF h IS NOT NULL THEN PERFORM ledger.mark_submitted(h); END IF;
    ELSIF r <= 93 THEN
        PERFORM ledger.transfer(acct, 'merchant', amt);
    ELSIF r <= 98 THEN
        PERFORM ledger.transfer('world', acct, 400);
    ELSE
        PERFORM ledger.expire_holds();
    END IF;
    RETURN 'ok';
EXCEPTION WHEN SQLSTATE 'LD001' OR SQLSTATE 'LD024' OR SQLSTATE 'LD025' OR SQLSTATE 'LD027' THEN
    RETURN SQLSTATE;
END
$$;
SELECT ledger.set_account_limits('user-3', 2);
SQL
cat > "$DIR/stress.sql" <<'EOF'
\set r random(1, 100)
\set u random(1, 4)
INSERT INTO public.outcome SELECT public.stress_op(:r, :u), 1;
EOF
chown -R postgres "$DIR"
log=$DIR/pgbench.log
if runuser -u postgres -- "$PGBIN/pgbench" -n -h "$NODE" -p "$(node_port "$NODE")" -U postgres \
	-c 32 -j 2 -T 10 -f "$DIR/stress.sql" hd >"$log" 2>&1; then
	ok "stress: pgbench ran: $(grep -E '^number of (transactions actually processed|failed)' "$log" | tr '\n' ' ')"
else
	fail "stress: pgbench failed: $(tail -5 "$log")"
fi
counts=$(H -c "SELECT string_agg(code || '=' || n, ' ' ORDER BY code) FROM
                 (SELECT code, sum(n) n FROM public.outcome GROUP BY code) s")
ok "stress: outcomes $counts"
for code in ok LD001 LD024; do
	grep -q "$code=" <<<"$counts" && ok "stress: some moves ended $code" || fail "stress: no move ended $code"
done
H -c "SELECT ledger.expire_holds()" >/dev/null
H -c "SELECT pg_sleep(0.3)" >/dev/null   # let in-flight hot entries settle
rows=$(H -F '|' <<'SQL'
SELECT 'holds were captured, voided and expired',
       count(*) FILTER (WHERE state = 'captured') > 0 AND count(*) FILTER (WHERE state = 'voided') > 0
           AND count(*) FILTER (WHERE state = 'expired') > 0,
       string_agg(DISTINCT state, ',')
  FROM ledger.hold;
SELECT 'partial captures happened', count(*) > 0, count(*) || ' holds captured in several parts'
  FROM (SELECT hold_id FROM ledger.hold_event WHERE event = 'captured' GROUP BY hold_id HAVING count(*) > 1) p;
SQL
)
check_rows "stress: " <<<"$rows"
check_invariants "$NODE" hd "stress: invariants"
check_reconcile "$NODE" hd "stress: reconcile"
test_done
