#!/usr/bin/env bash
# test/scripts/pooler.sh: the ledger behind pgbouncer in transaction
# pooling mode, where consecutive transactions of one client run on
# different backends and one backend serves many clients.
#
# pgbench runs 24 clients through pgbouncer (pool of 4 server connections,
# extended protocol) for 10 s.  Each transaction is one of:
#   - a transfer between two random users (LD001 refusals caught and
#     counted, so a client never aborts);
#   - a transfer to the hot account 'fees', or from it;
#   - a retried payment with an idempotency key drawn from a small set, so
#     the same key arrives on different backends;
#   - two transfers in one BEGIN ... COMMIT block;
#   - a change of a user's floor (min_balance: 0, -5 or -10), which every
#     backend's account cache must see at its next posting.
# Afterwards:
#   - pgbouncer served them with at most 4 server connections;
#   - each idempotency key names exactly one transaction, whose legs match
#     its key;
#   - no balance is below -10, the loosest floor any posting ran under
#     (the floors are set to -10 before the invariants are checked);
#   - balances equal the journal, escrow included (test/invariants.sql).
# Then the acting owner through the pool: 24 clients run transactions that
# SET LOCAL (set_config(..., true)) ledger.acting_owner and pay from their
# owner's account, or try to take another owner's money (refused with
# LD039, never paid), and transactions that set nothing and check that no
# acting owner leaked into them from an earlier client on the same server
# connection.
#
# Run by test/run.sh as root.  Starts its own cluster and pgbouncer.
source "$LEDGER_ROOT/test/lib.sh"
test_begin pooler
NODE=$DIR/node
trap 'kill $(cat $DIR/pgbouncer.pid 2>/dev/null) 2>/dev/null; node_stop $NODE immediate' EXIT

node_init "$NODE" "shared_preload_libraries = 'ledger'
ledger.database = 'pool'
max_connections = 40" && node_start "$NODE" || { echo "pooler: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" pool
P() { node_psql "$NODE" pool "$@"; }
for i in $(seq 1 100); do
	[ "$(P -c "SELECT 1" 2>/dev/null)" = 1 ] && break; sleep 0.1
done
P >/dev/null <<'SQL' || { echo "pooler: FAIL: setup" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('fees', 'USD');
SELECT ledger.create_account('user-' || i, 'USD') FROM generate_series(1, 40) i;
SELECT ledger.transfer('world', 'user-' || i, 50) FROM generate_series(1, 40) i;
SELECT ledger.transfer('world', 'fees', 100);
-- a posting that may be refused: the caller gets 'LD001' instead of an error
CREATE FUNCTION public.pay(src text, dst text, amount numeric, key text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN ledger.transfer(src, dst, amount, idempotency_key => key)::text;
EXCEPTION WHEN SQLSTATE 'LD001' THEN
    RETURN 'LD001';
END $$;
SQL
node_ready "$NODE" pool || fail "the fold worker never loaded"
P -c "SELECT ledger.set_account_mode('fees', 'hot')" >/dev/null || fail "fees did not turn hot"

pgbouncer_start "$NODE" pool 4 || { echo "pooler: FAIL: pgbouncer did not start" >&2; exit 1; }

cat >"$DIR/load.sql" <<'EOF'
\set a random(1, 40)
\set b 1 + (:a + random(0, 38)) % 40
\set cents random(1, 2000)
\set kind random(1, 20)
\set key random(1, 50)
\set keyuser 1 + :key % 40
\set floor -(:cents % 3) * 5
\if :kind <= 9
SELECT pay('user-' || :a, 'user-' || :b, :cents * 0.01);
\elif :kind <= 12
SELECT pay('user-' || :a, 'fees', :cents * 0.01);
\elif :kind <= 13
SELECT pay('fees', 'user-' || :a, :cents * 0.01);
\elif :kind <= 16
SELECT pay('world', 'user-' || :keyuser, 1.00, 'payment-' || :key);
\elif :kind <= 19
BEGIN;
SELECT pay('user-' || :a, 'user-' || :b, :cents * 0.01);
SELECT pay('user-' || :b, 'fees', :cents * 0.01);
COMMIT;
\else
UPDATE ledger.account SET min_balance = :floor WHERE code = 'user-' || :a;
\endif
EOF
"$PGBIN/pgbench" -n -M extended -c 24 -j 2 -T 10 -h "$DIR" -p "$BPORT" -U postgres \
	-f "$DIR/load.sql" pool >"$DIR/pgbench.out" 2>&1
rc=$?
txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$DIR/pgbench.out")
[ "$rc" = 0 ] && [ "${txns:-0}" -gt 500 ] && ok "pgbench through pgbouncer: $txns transactions, 24 clients, no error" ||
	fail "pgbench exited $rc after ${txns:-0} transactions: $(grep -m3 -i error "$DIR/pgbench.out")"

servers=$(P -c "SELECT count(*) FROM pg_stat_activity WHERE datname = 'pool' AND application_name <> 'psql' AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
[ "${servers:-99}" -le 4 ] && ok "24 clients were served by $servers server connections" ||
	fail "$servers server connections for a pool of 4"
[ "$(P -c "SELECT count(*) FROM ledger.journal WHERE account = 'fees' AND amount > 0") " != "0 " ] &&
	ok "hot postings went through the pool ($(P -c "SELECT count(*) FROM ledger.journal WHERE account = 'fees'") entries on fees)" ||
	fail "no hot posting went through the pool"

# every idempotency key: one transaction, of the request the key names
bad=$(P -c "SELECT count(*) FROM (SELECT t.idempotency_key FROM ledger.transaction t
            JOIN ledger.journal_entry j ON j.transaction_id = t.id JOIN ledger.account a ON a.id = j.account_id
           WHERE t.idempotency_key LIKE 'payment-%'
           GROUP BY t.id, t.idempotency_key
          HAVING bool_or(a.code = 'user-' || (1 + split_part(t.idempotency_key, '-', 2)::int % 40) AND j.amount = 1.00)
                 IS NOT TRUE OR count(*) <> 2) x")
keys=$(P -c "SELECT count(*), count(DISTINCT idempotency_key) FROM ledger.transaction WHERE idempotency_key LIKE 'payment-%'")
[ "$bad" = 0 ] && [ "$(cut -d'|' -f1 <<<"$keys")" = "$(cut -d'|' -f2 <<<"$keys")" ] &&
	ok "idempotency keys across backends: $(cut -d'|' -f1 <<<"$keys") keys, one transaction each" ||
	fail "idempotency keys: $keys (transactions, distinct keys), $bad wrong"

# ---- the acting owner through the pool --------------------------------------
P >/dev/null <<'SQL' || fail "acting owner: setup"
UPDATE ledger.account SET owner_id = 'owner-' || substr(code, 6) WHERE code LIKE 'user-%';
SELECT ledger.transfer('world', 'user-' || i, 50) FROM generate_series(1, 40) i;
CREATE TABLE public.owner_log (outcome text NOT NULL);
CREATE FUNCTION public.owner_step(a int, b int, steal boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF steal THEN
        PERFORM ledger.transfer('user-' || b, 'user-' || a, 0.01);
        INSERT INTO public.owner_log VALUES ('stolen');
    ELSE
        PERFORM ledger.transfer('user-' || a, 'user-' || b, 0.01);
        INSERT INTO public.owner_log VALUES ('paid');
    END IF;
EXCEPTION
    WHEN SQLSTATE 'LD039' THEN INSERT INTO public.owner_log VALUES ('refused');
    WHEN SQLSTATE 'LD001' THEN INSERT INTO public.owner_log VALUES ('insufficient');
END $$;
CREATE FUNCTION public.leak_check() RETURNS void
LANGUAGE sql AS $$
    INSERT INTO public.owner_log
    SELECT CASE WHEN coalesce(current_setting('ledger.acting_owner', true), '') = ''
                THEN 'clean' ELSE 'leaked' END;
$$;
SQL
cat >"$DIR/owner.sql" <<'EOF'
\set a random(1, 40)
\set b 1 + (:a + random(0, 38)) % 40
\set kind random(1, 3)
\if :kind = 1
SELECT leak_check();
\else
BEGIN;
SELECT set_config('ledger.acting_owner', 'owner-' || :a, true);
SELECT owner_step(:a, :b, :kind = 3);
COMMIT;
\endif
EOF
"$PGBIN/pgbench" -n -M extended -c 24 -j 2 -T 5 -h "$DIR" -p "$BPORT" -U postgres \
	-f "$DIR/owner.sql" pool >"$DIR/owner.out" 2>&1 || fail "acting owner: pgbench: $(grep -m3 -i error "$DIR/owner.out")"
rows=$(P -F '|' <<'SQL'
SELECT 'acting owner: own payments went through the pool', count(*) FILTER (WHERE outcome = 'paid') > 50,
       count(*) FILTER (WHERE outcome = 'paid') || ' paid' FROM public.owner_log;
SELECT 'acting owner: another owner''s money was never taken (LD039)',
       count(*) FILTER (WHERE outcome = 'stolen') = 0 AND count(*) FILTER (WHERE outcome = 'refused') > 50,
       count(*) FILTER (WHERE outcome = 'refused') || ' refused, ' || count(*) FILTER (WHERE outcome = 'stolen') || ' taken'
  FROM public.owner_log;
SELECT 'acting owner: SET LOCAL never leaked into a later transaction on the same server connection',
       count(*) FILTER (WHERE outcome = 'leaked') = 0 AND count(*) FILTER (WHERE outcome = 'clean') > 50,
       count(*) FILTER (WHERE outcome = 'clean') || ' clean, ' || count(*) FILTER (WHERE outcome = 'leaked') || ' leaked'
  FROM public.owner_log;
SQL
)
check_rows "" <<<"$rows"

P -c "SELECT ledger.fold()" >/dev/null
P -c "UPDATE ledger.account SET min_balance = -10 WHERE code LIKE 'user-%'"
check_invariants "$NODE" pool "after the pooled load: invariants"
test_done
