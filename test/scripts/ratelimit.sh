#!/usr/bin/env bash
# test/scripts/ratelimit.sh: rate limits per role, enforced in shared
# memory, stored in ledger.rate_limit.  Starts its own cluster.
#
#   burst    a writer with a limit of 20 per second and a burst of 5 makes
#            40 calls as fast as it can: some are refused with LD041 (whose
#            detail says when to retry), at most 5 + 20/s of elapsed time
#            pass, and a role without a limit making the same calls is
#            never refused
#   paced    the same writer making 30 calls at 10 per second (half its
#            limit) is never refused
#   restart  after a restart (shared memory gone), the stored limit is
#            loaded again and a burst is refused again; after a reload of
#            the configuration too
#   removed  after ledger.remove_rate_limit, the burst passes
# Then: balances equal the journal, reconcile finds nothing.
source "$LEDGER_ROOT/test/lib.sh"
test_begin ratelimit
ledger_node rl
node_psql "$N" rl >/dev/null <<'SQL' || fail "setup"
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('a', 'USD');
SELECT ledger.create_account('b', 'USD');
SELECT ledger.transfer('world', 'a', 1000);
CREATE ROLE app LOGIN IN ROLE ledger_writer;
CREATE ROLE other LOGIN IN ROLE ledger_writer;
SELECT ledger.set_rate_limit('app', 20, 5);
SQL

# calls ROLE N SLEEP: N transfers of 0.01 from a to b, SLEEP seconds apart;
# prints "passed refused elapsed_ms retry_after_ms first_detail": the
# first refusal's retry_after_ms fact and the prose of its detail
calls() {
	node_psql "$N" rl -U "$1" <<SQL 2>&1 | tail -1
DO \$\$
DECLARE passed int := 0; refused int := 0; started timestamptz := clock_timestamp(); detail text := '-';
BEGIN
  FOR i IN 1..$2 LOOP
    BEGIN
      PERFORM ledger.transfer('a', 'b', 0.01);
      passed := passed + 1;
    EXCEPTION WHEN SQLSTATE 'LD041' THEN
      refused := refused + 1;
      IF detail = '-' THEN GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL; END IF;
    END;
    PERFORM pg_sleep($3);
  END LOOP;
  RAISE NOTICE 'result % % % % %', passed, refused,
    round(extract(epoch FROM clock_timestamp() - started) * 1000),
    coalesce((substring(detail FROM '\n(\{.*\})$')::jsonb ->> 'retry_after_ms'), '-'),
    split_part(detail, E'\n', 1);
END \$\$;
SQL
}
# burst LABEL: 40 calls at once must see refusals, and pass no more than
# the bucket allows
burst() {
	local out passed refused ms retry detail
	out=$(calls app 40 0)
	read -r _ _ passed refused ms retry detail <<<"$out"
	if [ -z "$refused" ]; then
		fail "$1: no result: $out"
	elif [ "$refused" -gt 0 ] && [ "$passed" -le $((5 + 20 * (ms + 999) / 1000 + 1)) ] &&
		grep -q "retry after [0-9]* ms" <<<"$detail" && [[ $retry =~ ^[0-9]+$ ]] && [ "$retry" -gt 0 ]; then
		ok "$1: $passed passed, $refused refused with LD041 in $ms ms ($detail; retry_after_ms $retry)"
	else
		fail "$1: $passed passed, $refused refused in $ms ms: $out"
	fi
}

burst "burst"
read -r _ _ passed refused _ <<<"$(calls other 40 0)"
[ "$refused" = 0 ] && [ "$passed" = 40 ] && ok "a role without a limit: 40 of 40 pass" ||
	fail "role without a limit: $passed passed, $refused refused"
sleep 1
read -r _ _ passed refused ms _ <<<"$(calls app 30 0.1)"
[ "$refused" = 0 ] && [ "$passed" = 30 ] && ok "paced at 10/s under a 20/s limit: 30 of 30 pass in $ms ms" ||
	fail "paced client: $passed passed, $refused refused"

node_stop "$N" fast
node_start "$N" || fail "restart"
burst "after a restart"
node_psql "$N" rl -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
burst "after a reload"
[ "$(node_psql "$N" rl -c "SELECT refused > 0 FROM ledger.rate_limits WHERE role = 'app'")" = t ] &&
	ok "ledger.rate_limits counts the refusals" || fail "rate_limits shows no refusal"

node_psql "$N" rl -c "SELECT ledger.remove_rate_limit('app')" >/dev/null
read -r _ _ passed refused _ <<<"$(calls app 40 0)"
[ "$refused" = 0 ] && ok "removed: 40 of 40 pass" || fail "after removal: $refused refused"

check_invariants "$N" rl
check_reconcile "$N" rl
test_done
