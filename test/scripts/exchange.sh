#!/usr/bin/env bash
# test/scripts/exchange.sh: token exchange against a live rate feed, with
# the whole server around it.  Starts its own cluster (ledger preloaded,
# so the fold worker runs the rate monitor), the fake rate API
# (test/scripts/fake_rate_api.py) and the reference feeder
# (examples/rate_feeder.py).
#
#   wait     The TOK/USD rate is two minutes old.  An exchange with
#            wait => '5 s' waits; another session sets a fresh rate about
#            1 s later; the exchange completes at the new rate, after the
#            new rate and before its wait ran out.  With no rate arriving,
#            an exchange with wait => '2 s' fails with LD037 after about
#            2 s.
#   outage   The feeder polls the fake API every second; ledger.max_rate_age
#            is 3 s.  The API goes down: exchanges with a wait started
#            during the outage neither complete nor use an old rate; the
#            monitor announces the pair stale (alert rate_stale) and
#            exchange_status shows it paused.  The API comes back with a
#            new rate: the waiting exchanges complete at it, and the
#            feeder's first fresh rate announces the recovery (alert
#            rate_recovered).  No exchange
#            used a rate older than max_rate_age when it was made.
#   stress   pgbench, 32 clients: exchanges and transfers of the same 4
#            users' tokens: no overdraft, every token row matches its legs
#            and the rounding rule, balances equal the journal.
source "$LEDGER_ROOT/test/lib.sh"
test_begin exchange
NODE=$DIR/node
STATE=$DIR/rates.json
trap 'kill $(jobs -p) 2>/dev/null; node_stop $NODE immediate' EXIT
CONF="shared_preload_libraries = 'ledger'
ledger.database = 'xch'
ledger.max_rate_age = '3s'"
node_init "$NODE" "$CONF" && node_start "$NODE" || { echo "exchange: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" xch
X() { node_psql "$NODE" xch "$@"; }
X >/dev/null <<'SQL' || { echo "exchange: FAIL: setup" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_asset('TOK', 8);
SELECT ledger.create_account('mint', 'TOK', min_balance => NULL);
SELECT ledger.create_account('liq-tok', 'TOK', min_balance => NULL);
SELECT ledger.create_account('liq-usd', 'USD', min_balance => NULL);
SELECT ledger.create_account('fees-usd', 'USD');
SELECT ledger.set_exchange_accounts('TOK', 'liq-tok');
SELECT ledger.set_exchange_accounts('USD', 'liq-usd', 'fees-usd');
SELECT ledger.create_account('user-' || i || '-tok', 'TOK', owner_id => 'user-' || i) FROM generate_series(1, 4) i;
SELECT ledger.create_account('user-' || i || '-usd', 'USD', owner_id => 'user-' || i) FROM generate_series(1, 4) i;
SELECT ledger.transfer('mint', 'user-' || i || '-tok', 1000) FROM generate_series(1, 4) i;
SELECT ledger.set_exchange_rate('TOK', 'USD', 2, now() - interval '2 minutes', 'setup');
SQL

# seconds, with decimals
now_s() { date +%s.%N; }

# ---- wait -----------------------------------------------------------------
t0=$(now_s)
X -c "SELECT ledger.exchange('user-1-tok', 'user-1-usd', 1, wait => '5 s', idempotency_key => 'w1')" \
	>"$DIR/wait1.out" 2>&1 &
waiter=$!
sleep 1
t_rate=$(now_s)
X -c "SELECT ledger.set_exchange_rate('TOK', 'USD', 2.5, now(), 'late')" >/dev/null
wait "$waiter"; rc=$?
t1=$(now_s)
rows=$(X -F '|' <<SQL
SELECT 'the waiting exchange completed at the new rate', $rc = 0 AND k.rate = 2.5 AND k.quote_amount = 2.50,
       format('rc $rc, rate %s, quote %s', k.rate, k.quote_amount)
  FROM ledger.token_transaction k JOIN ledger.transaction t ON t.id = k.transaction_id
 WHERE t.idempotency_key = 'w1';
SELECT 'after the rate arrived, before its wait ran out',
       $t1 >= $t_rate AND $t1 - $t0 < 5,
       format('%s s after it began, the rate %s s after', round($t1 - $t0, 1), round($t_rate - $t0, 1));
SQL
)
check_rows "wait: " <<<"$rows"
X -c "SELECT ledger.set_exchange_rate('TOK', 'USD', 2.5, now() - interval '1 minute', 'old')" >/dev/null
# wait until the rate above is stale (3 s)
sleep 3.2
t0=$(now_s)
out=$(X -c "SELECT ledger.exchange('user-1-tok', 'user-1-usd', 1, wait => '2 s')" 2>&1)
t1=$(now_s)
if grep -q "LD037\|is stale" <<<"$out" && awk -v d="$(echo "$t1 - $t0" | bc -l)" 'BEGIN { exit !(d >= 1.9 && d < 6) }'; then
	ok "wait: with no fresh rate it failed as stale after $(printf '%.1f' "$(echo "$t1 - $t0" | bc -l)") s (wait 2 s): $(head -1 <<<"$out")"
else
	fail "wait: expected LD037 after about 2 s, got after $(echo "$t1 - $t0" | bc -l) s: $out"
fi
X -c "SELECT ledger.exchange('user-1-tok', 'user-1-usd', 1)" -v VERBOSITY=verbose >"$DIR/stale.out" 2>&1
grep -q "LD037" "$DIR/stale.out" && ok "wait: without a wait the stale rate is refused at once with LD037" ||
	fail "wait: no LD037: $(cat "$DIR/stale.out")"

# ---- outage ---------------------------------------------------------------
API_PORT=$(free_port "$DIR")
echo '{"up": true, "rates": {"TOK/USD": "3"}}' >"$STATE"
"$PYTHON" "$LEDGER_ROOT/test/scripts/fake_rate_api.py" "$API_PORT" "$STATE" >"$DIR/api.out" 2>"$DIR/api.err" &
for _ in $(seq 1 100); do grep -q ready "$DIR/api.out" 2>/dev/null && break; sleep 0.1; done
PGHOST=$NODE PGPORT=$(node_port "$NODE") PGUSER=postgres PGDATABASE=xch \
	"$PYTHON" "$LEDGER_ROOT/examples/rate_feeder.py" --url "http://127.0.0.1:$API_PORT/rate" \
	--pairs TOK/USD --interval 1 --max-backoff 2 >"$DIR/feeder.out" 2>&1 &
wait_for() { wait_sql "$NODE" xch "$1" 30; }
wait_for "SELECT count(*) > 0 FROM ledger.exchange_rate WHERE rate = 3" &&
	ok "outage: the feeder delivers" || fail "outage: no rate from the feeder: $(tail -3 "$DIR/feeder.out")"
wait_for "SELECT NOT paused FROM ledger.exchange_status WHERE base = 'TOK' AND quote = 'USD'" ||
	fail "outage: the pair is not fresh"
echo '{"up": false, "rates": {"TOK/USD": "3"}}' >"$STATE"
down_at=$(X -c "SELECT now()")
wait_for "SELECT paused FROM ledger.exchange_status WHERE base = 'TOK' AND quote = 'USD'" &&
	ok "outage: exchange_status shows the pair paused once its newest rate is 3 s old" ||
	fail "outage: never paused"
waiters=()
for i in 1 2 3; do
	X -c "SELECT ledger.exchange('user-$i-tok', 'user-$i-usd', 10, wait => '30 s', idempotency_key => 'outage-$i')" \
		>"$DIR/outage-$i.out" 2>&1 &
	waiters+=($!)
done
sleep 2
rows=$(X -F '|' <<'SQL'
SELECT 'exchanges started during the outage wait, none converted',
       count(*) = 0, count(*) || ' made' FROM ledger.transaction WHERE idempotency_key LIKE 'outage-%';
SELECT 'they wait on their latch, holding no row lock',
       count(*) = 3 AND count(*) FILTER (WHERE wait_event_type = 'Lock') = 0,
       string_agg(DISTINCT coalesce(wait_event_type, '-') || '/' || coalesce(wait_event, '-'), ',')
  FROM pg_stat_activity WHERE query LIKE '%outage-%' AND query NOT LIKE '%pg_stat_activity%';
SQL
)
check_rows "outage: " <<<"$rows"
wait_for "SELECT count(*) > 0 FROM ledger.alert WHERE kind = 'rate_stale'" &&
	ok "outage: the monitor raised rate_stale" || fail "outage: no rate_stale alert"
echo '{"up": true, "rates": {"TOK/USD": "3.5"}}' >"$STATE"
wait "${waiters[@]}"
wait_for "SELECT count(*) = 3 FROM ledger.transaction WHERE idempotency_key LIKE 'outage-%'"
wait_for "SELECT count(*) > 0 FROM ledger.alert WHERE kind = 'rate_recovered'" ||
	fail "outage: no rate_recovered alert"
rows=$(X -F '|' <<SQL
SELECT 'the waiting exchanges completed at the new rate', count(*) = 3 AND bool_and(k.rate = 3.5),
       count(*) || ' at ' || string_agg(DISTINCT k.rate::text, ',')
  FROM ledger.token_transaction k JOIN ledger.transaction t ON t.id = k.transaction_id
 WHERE t.idempotency_key LIKE 'outage-%';
SELECT 'no exchange used a rate observed during the outage or before it', count(*) = 0, count(*) || ' did'
  FROM ledger.token_transaction k JOIN ledger.transaction t ON t.id = k.transaction_id
 WHERE t.idempotency_key LIKE 'outage-%' AND k.rate_observed_at <= '$down_at';
SELECT 'the outage was announced stale, then recovered, once each',
       string_agg(kind, ',' ORDER BY id) = 'rate_stale,rate_recovered', string_agg(kind, ',' ORDER BY id)
  FROM ledger.alert WHERE kind LIKE 'rate_%' AND created_at > '$down_at';
SELECT 'the pair is fresh again', NOT paused AND announced_stale_since IS NULL, coalesce(paused::text, '?')
  FROM ledger.exchange_status WHERE base = 'TOK' AND quote = 'USD';
SQL
)
check_rows "outage: " <<<"$rows"
grep -qi "down\|retry\|fail\|503" "$DIR/feeder.out" && ok "outage: the feeder logged the outage and its retries" ||
	fail "outage: the feeder did not notice the outage: $(tail -3 "$DIR/feeder.out")"

# ---- stress ---------------------------------------------------------------
X >/dev/null <<'SQL'
CREATE TABLE public.stress_log (outcome text NOT NULL);
CREATE FUNCTION public.stress_step(kind int, u int, v int, amount numeric) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF kind < 3 THEN
        PERFORM ledger.exchange('user-' || u || '-tok', 'user-' || u || '-usd', amount, spread => 0.01);
        INSERT INTO public.stress_log VALUES ('exchanged');
    ELSIF u <> v THEN
        PERFORM ledger.transfer('user-' || u || '-tok', 'user-' || v || '-tok', amount);
        INSERT INTO public.stress_log VALUES ('transferred');
    END IF;
EXCEPTION WHEN SQLSTATE 'LD001' THEN
    INSERT INTO public.stress_log VALUES ('refused');
END
$$;
SELECT ledger.set_exchange_rate('TOK', 'USD', 3.25);
SQL
cat >"$DIR/stress.sql" <<'SQL'
\set u random(1, 4)
\set v random(1, 4)
\set milli random(10, 3000)
\set kind random(1, 3)
SELECT public.stress_step(:kind, :u, :v, (:milli * 0.001)::numeric);
SQL
"$PGBIN/pgbench" -h "$NODE" -p "$(node_port "$NODE")" -U postgres -n -c 32 -j 2 -T 10 \
	-f "$DIR/stress.sql" xch >"$DIR/stress.out" 2>&1 || fail "stress: pgbench: $(tail -3 "$DIR/stress.out")"
rows=$(X -F '|' <<'SQL'
SELECT 'pgbench ran exchanges and transfers, some refused for insufficient funds',
       count(*) FILTER (WHERE outcome = 'exchanged') > 50 AND count(*) FILTER (WHERE outcome = 'refused') > 0,
       format('%s exchanged, %s transferred, %s refused', count(*) FILTER (WHERE outcome = 'exchanged'),
              count(*) FILTER (WHERE outcome = 'transferred'), count(*) FILTER (WHERE outcome = 'refused'))
  FROM public.stress_log;
SELECT 'no token account overdrawn', count(*) = 0, count(*) || ' below 0'
  FROM ledger.account_overview WHERE code LIKE 'user-%' AND balance < 0;
SELECT 'one token row per exchange', count(*) = (SELECT count(*) FROM ledger.transaction WHERE kind = 'exchange'),
       count(*) || ' token rows'
  FROM ledger.token_transaction;
SQL
)
check_rows "stress: " <<<"$rows"
check_invariants "$NODE" xch "stress: invariants (token rows match their legs)"
check_reconcile "$NODE" xch "stress: reconcile"
test_done
