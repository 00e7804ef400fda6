#!/usr/bin/env bash
# test/scripts/batch.sh: batches and single calls together under load.
# Starts its own cluster (ledger preloaded, so one account can be hot).
#
# 8 pgbench clients for 10 s over 20 cold accounts and one hot account,
# mixing six scripts: transfer_batch of 40 random transfers (not atomic),
# post_batch of 10 three-leg postings (atomic), single transfers,
# transfer_batch items that credit or debit the hot account, hold_batch of
# 10 holds captured by a capture_batch (some into the hot account), and
# 10 shared holds released by a void_batch (both atomic).  Batches take
# their accounts in random orders, so without the id-ordered locking they
# would deadlock.
#
# Checks: no client aborted (no deadlock, no error besides the items'
# own), every batch reported one row per item, the invariants of
# test/invariants.sql (balances equal the journal after the fold, assets
# net to zero, floors) and reconcile finds nothing.
source "$LEDGER_ROOT/test/lib.sh"
test_begin batch
ledger_node bt "max_connections = 40"
node_psql "$N" bt >/dev/null <<'SQL' || fail "setup"
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('acct-' || i, 'USD') FROM generate_series(1, 20) i;
SELECT ledger.transfer('world', 'acct-' || i, 100000) FROM generate_series(1, 20) i;
SELECT ledger.create_account('hot', 'USD');
SELECT ledger.transfer('world', 'hot', 100000);
SQL
node_ready "$N" bt || fail "the fold worker is not ready"
node_psql "$N" bt -c "SELECT ledger.set_account_mode('hot', 'hot')" >/dev/null || fail "hot mode"

S=$DIR/scripts
mkdir -p "$S"
# every script fails the transaction unless every item of its batch is ok
cat >"$S/tbatch.sql" <<'SQL'
WITH p AS MATERIALIZED (
    SELECT 1 + floor(random() * 20)::int AS a, floor(random() * 19)::int AS r,
           (1 + floor(random() * 100)::int) * 0.01 AS amount
      FROM generate_series(1, 40))
SELECT 1 / (count(*) FILTER (WHERE result = 'ok') / 40) AS all_ok
  FROM ledger.transfer_batch((SELECT array_agg('acct-' || a) FROM p),
                             (SELECT array_agg('acct-' || (1 + (a + r) % 20)) FROM p),
                             (SELECT array_agg(amount) FROM p));
SQL
cat >"$S/pbatch.sql" <<'SQL'
WITH p AS MATERIALIZED (
    SELECT 1 + floor(random() * 20)::int AS a, 1 + floor(random() * 20)::int AS b,
           1 + floor(random() * 20)::int AS c, (1 + floor(random() * 100)::int) * 0.01 AS amount
      FROM generate_series(1, 10))
SELECT 1 / (count(*) FILTER (WHERE result = 'ok') / 10) AS all_ok
  FROM ledger.post_batch((SELECT jsonb_agg(jsonb_build_object('legs', jsonb_build_array(
            jsonb_build_object('account', 'acct-' || a, 'amount', -2 * amount),
            jsonb_build_object('account', 'acct-' || b, 'amount', amount),
            jsonb_build_object('account', 'acct-' || c, 'amount', amount)))) FROM p), atomic => true);
SQL
cat >"$S/single.sql" <<'SQL'
\set a random(1, 20)
\set b 1 + (:a + random(0, 18)) % 20
\set cents random(1, 100)
SELECT ledger.transfer('acct-' || :a, 'acct-' || :b, :cents * 0.01);
SQL
cat >"$S/hbatch.sql" <<'SQL'
WITH p AS MATERIALIZED (
    SELECT 1 + floor(random() * 20)::int AS a, random() < 0.5 AS in_, (1 + floor(random() * 100)::int) * 0.01 AS amount
      FROM generate_series(1, 40))
SELECT 1 / (count(*) FILTER (WHERE result = 'ok') / 40) AS all_ok
  FROM ledger.transfer_batch((SELECT array_agg(CASE WHEN in_ THEN 'acct-' || a ELSE 'hot' END) FROM p),
                             (SELECT array_agg(CASE WHEN in_ THEN 'hot' ELSE 'acct-' || a END) FROM p),
                             (SELECT array_agg(amount) FROM p));
SQL
# hold batches: 10 holds, then all of them captured (some into the hot
# account) or, for shared holds, voided, by a second batch in its own
# transaction (two batches in one transaction would take their rows in two
# passes, out of one id order, as two single calls would)
cat >"$S/holds.sql" <<'SQL'
WITH p AS MATERIALIZED (
    SELECT 1 + floor(random() * 20)::int AS a, floor(random() * 19)::int AS r,
           (1 + floor(random() * 100)::int) * 0.01 AS amount, random() < 0.2 AS to_hot
      FROM generate_series(1, 10))
SELECT jsonb_agg(jsonb_build_object('hold_id', hold_id)) AS holds, count(*) AS held
  FROM ledger.hold_batch((SELECT jsonb_agg(jsonb_build_object(
           'from_account', 'acct-' || a, 'amount', amount,
           'to_account', CASE WHEN to_hot THEN 'hot' ELSE 'acct-' || (1 + (a + r) % 20) END)) FROM p))
 WHERE result = 'ok' \gset
SELECT 1 / (:held / 10) / (count(*) FILTER (WHERE result = 'ok') / 10) AS all_ok
  FROM ledger.capture_batch(':holds');
SQL
cat >"$S/voids.sql" <<'SQL'
WITH p AS MATERIALIZED (
    SELECT 1 + floor(random() * 20)::int AS a, (1 + floor(random() * 100)::int) * 0.01 AS amount
      FROM generate_series(1, 10))
SELECT jsonb_agg(jsonb_build_object('hold_id', hold_id, 'reason', 'load')) AS holds, count(*) AS held
  FROM ledger.hold_batch((SELECT jsonb_agg(jsonb_build_object(
           'from_account', 'acct-' || a, 'amount', amount, 'mode', 'shared')) FROM p), atomic => true)
 WHERE result = 'ok' \gset
SELECT 1 / (:held / 10) / (count(*) FILTER (WHERE result = 'ok') / 10) AS all_ok
  FROM ledger.void_batch(':holds', atomic => true);
SQL
out=$("$PGBIN/pgbench" -n -h "$N" -p "$(node_port "$N")" -U postgres -c 8 -j 2 -T 10 \
	-f "$S/tbatch.sql@3" -f "$S/pbatch.sql@2" -f "$S/single.sql@3" -f "$S/hbatch.sql@2" \
	-f "$S/holds.sql@1" -f "$S/voids.sql@1" bt 2>&1)
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
done_=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
if grep -q "aborted\|deadlock\|ERROR" <<<"$out" || [ "${failed:-1}" != 0 ] || [ "${done_:-0}" -lt 100 ]; then
	fail "pgbench: $(grep -E 'aborted|ERROR|deadlock|processed|failed' <<<"$out" | head -5)"
else
	ok "8 clients, 10 s: $done_ transactions of batches and single calls, none failed, no deadlock"
fi
node_psql "$N" bt -c "SELECT ledger.fold()" >/dev/null
[ "$(node_psql "$N" bt -c "SELECT count(*) FILTER (WHERE state = 'captured') > 0 AND count(*) FILTER (WHERE state = 'voided') > 0
                             AND count(*) FILTER (WHERE state NOT IN ('captured', 'voided')) = 0 FROM ledger.hold")" = t ] &&
	ok "every hold of the hold batches was captured or voided" ||
	fail "holds left: $(node_psql "$N" bt -c "SELECT state, count(*) FROM ledger.hold GROUP BY state")"
[ "$(node_psql "$N" bt -c "SELECT count(*) > 0 FROM ledger.journal WHERE account = 'hot'")" = t ] &&
	ok "the hot account took part" || fail "no posting reached the hot account"

# Items with hot accounts, one at a time: a hot debit refused by the escrow
# leaves nothing behind; an item with a key and a hot account, or with two
# hot accounts, runs alone (in a subtransaction of its own) and its refusal
# too leaves nothing; ordering still holds around them.
node_psql "$N" bt >/dev/null <<'SQL' || fail "hot item setup"
SET client_min_messages = warning;
SELECT ledger.create_account(c, 'USD') FROM unnest(ARRAY['c1', 'c2', 'h1', 'h2']) c;
SELECT ledger.transfer('world', 'c2', 50);
SELECT ledger.transfer('world', 'h1', 100);
SELECT ledger.transfer('world', 'h2', 100);
SELECT ledger.set_account_mode('h1', 'hot');
SELECT ledger.set_account_mode('h2', 'hot');
SQL
got=$(node_psql "$N" bt -c "SELECT string_agg(result, ',' ORDER BY item) FROM ledger.transfer_batch(
    ARRAY['c2', 'h1', 'c1', 'h2', 'c1', 'c1'], ARRAY['c1', 'c2', 'h1', 'c1', 'c2', 'c2'],
    ARRAY[10, 1000, 5, 500, 5, 1], ARRAY[NULL, NULL, 'k3', 'k4', NULL, NULL])")
[ "$got" = "ok,LD001,ok,LD001,ok,LD001" ] && ok "transfer items with hot accounts: $got" ||
	fail "transfer items with hot accounts: $got, expected ok,LD001,ok,LD001,ok,LD001"
got=$(node_psql "$N" bt -c "SELECT string_agg(result, ',' ORDER BY item) FROM ledger.post_batch('[
    {\"legs\": [{\"account\": \"h1\", \"amount\": -3}, {\"account\": \"h2\", \"amount\": 3}]},
    {\"legs\": [{\"account\": \"h1\", \"amount\": -1000}, {\"account\": \"h2\", \"amount\": 1000}]},
    {\"legs\": [{\"account\": \"c2\", \"amount\": -5}, {\"account\": \"h2\", \"amount\": 5}]}]')")
[ "$got" = "ok,LD001,ok" ] && ok "post items with two hot accounts: $got" ||
	fail "post items with two hot accounts: $got, expected ok,LD001,ok"
got=$(node_psql "$N" bt -c "SELECT t.id = b.transaction_id FROM ledger.transfer_batch(ARRAY['c1'], ARRAY['h1'], ARRAY[5], ARRAY['k3']) b
    JOIN ledger.transaction t ON t.idempotency_key = 'k3'")
[ "$got" = t ] && ok "a hot item's key replays its transaction" || fail "replay of k3: $got"
node_psql "$N" bt -c "SELECT ledger.fold()" >/dev/null
got=$(node_psql "$N" bt -c "SELECT string_agg(a || '=' || ledger.balance(a)::numeric(12,2), ' ' ORDER BY a)
    FROM unnest(ARRAY['c1', 'c2', 'h1', 'h2']) a")
[ "$got" = "c1=0.00 c2=40.00 h1=102.00 h2=108.00" ] && ok "balances after the hot items: $got" ||
	fail "balances after the hot items: $got, expected c1=0.00 c2=40.00 h1=102.00 h2=108.00"

check_invariants "$N" bt
check_reconcile "$N" bt
test_done
