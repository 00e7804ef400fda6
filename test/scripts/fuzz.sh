#!/usr/bin/env bash
# test/scripts/fuzz.sh: every public function called with random and
# hostile input (test/scripts/fuzz.py), as the writer, as an operator and
# as the superuser, on a cluster of its own (ledger preloaded, the event
# worker on, so hot accounts, the fold worker and the applier take part).
#
#   setup    assets of scales 0, 2 and 18; funding accounts (no floor),
#            customer accounts with owners, an overdraft, hot merchants,
#            liquidity and spread accounts with rates; a LOGIN role in
#            ledger_writer and one in ledger_operator.
#   fuzz     FUZZ_CALLS calls in all (default 20,000): 40% as the writer,
#            20% as the operator, 40% as postgres.  Every error a caller
#            causes must have an LD SQLSTATE, except the few fuzz.py lists
#            (type errors of the casts before the call, timeouts, retryable
#            serialization failures and deadlocks); anything else is a
#            finding, printed with the SQL that makes it.
#   after    no backend crashed, no assertion or sanitizer report in the
#            server log, no background worker failed with a non-LD error;
#            the invariants hold; reconcile(repair => false) finds nothing.
#
# The seed is printed; replay with FUZZ_SEED=N (and the same FUZZ_CALLS).
source "$LEDGER_ROOT/test/lib.sh"
test_begin fuzz
NODE=$DIR/node
DB=fuzz
trap 'node_stop $NODE immediate' EXIT
SEED=${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
CALLS=${FUZZ_CALLS:-20000}
echo "fuzz: seed $SEED, $CALLS calls (replay: FUZZ_SEED=$SEED FUZZ_CALLS=$CALLS bash test/scripts/fuzz.sh)"

# max_rate_age: the rates set below stay fresh through the run (a fuzzed
# exchange with a valid wait must not sleep).  %b %e: each log line's backend
# type and SQLSTATE, for the workers' check.
node_init "$NODE" "shared_preload_libraries = 'ledger'
ledger.database = '$DB'
ledger.event_worker = on
ledger.max_rate_age = '1d'
log_line_prefix = '%m [%p] %b %e '
log_min_error_statement = panic" && node_start "$NODE" || { echo "fuzz: FAIL: cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$(node_port "$NODE")" "$DB"
X() { node_psql "$NODE" "$DB" "$@"; }
X >/dev/null <<'SQL' || { echo "fuzz: FAIL: setup" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('JPY', 0);
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_asset('ETH', 18);
SELECT ledger.create_account('world-' || a, a, min_balance => NULL) FROM unnest('{JPY,USD,ETH}'::text[]) a;
SELECT ledger.create_account('liq-' || a, a, min_balance => NULL) FROM unnest('{JPY,USD,ETH}'::text[]) a;
SELECT ledger.create_account('fees-' || a, a) FROM unnest('{JPY,USD,ETH}'::text[]) a;
SELECT ledger.set_exchange_accounts(a, 'liq-' || a, 'fees-' || a) FROM unnest('{JPY,USD,ETH}'::text[]) a;
SELECT ledger.create_account('user-' || i || '-' || a, a, owner_id => 'user-' || i)
  FROM generate_series(1, 3) i, unnest('{JPY,USD,ETH}'::text[]) a;
SELECT ledger.create_account('plain-usd', 'USD');
SELECT ledger.create_account('overdraft-usd', 'USD', min_balance => -100, owner_id => 'user-1');
SELECT ledger.create_account('merchant-' || a, a, owner_id => 'merchant') FROM unnest('{USD,ETH}'::text[]) a;
SELECT ledger.set_account_mode('merchant-' || a, 'hot') FROM unnest('{USD,ETH}'::text[]) a;
SELECT ledger.transfer('world-' || a, 'user-' || i || '-' || a, 1000000)
  FROM generate_series(1, 3) i, unnest('{JPY,USD,ETH}'::text[]) a;
SELECT ledger.transfer('world-USD', 'plain-usd', 500);
SELECT ledger.set_exchange_rate(b, q, r, source => 'setup')
  FROM (VALUES ('ETH', 'USD', 3150.25), ('USD', 'ETH', 0.000317), ('USD', 'JPY', 151.5),
               ('JPY', 'USD', 0.0066), ('JPY', 'ETH', 0.0000021), ('ETH', 'JPY', 477000)) v(b, q, r);
SELECT ledger.hold('user-1-USD', 10, 'plain-usd', external_ref => 'ref-1');
SELECT ledger.enqueue('t1', 'k1', '{"n": 1}');
CREATE ROLE fz_writer LOGIN IN ROLE ledger_writer;
CREATE ROLE fz_ops LOGIN IN ROLE ledger_operator;
SQL
node_ready "$NODE" "$DB" || fail "setup: the fold worker never loaded the escrow"
LOG=$NODE/server.log
LOG_FROM=$(($(stat -c %s "$LOG") + 1))	# the workers' start before the database was made

# ---- fuzz ---------------------------------------------------------------------
t0=$(date +%s)
phase() {	# phase ROLE CALLS
	PGHOST=$NODE PGPORT=$(node_port "$NODE") PGDATABASE=$DB "$PYTHON" \
		"$LEDGER_ROOT/test/scripts/fuzz.py" --user "$1" --calls "$2" --seed "$SEED" 2>&1
	case $? in
	0) ok "fuzz: $2 calls as $1, every error an LD error or an allowed one" ;;
	1) fail "fuzz: $2 calls as $1: findings (above; seed $SEED)" ;;
	*) fail "fuzz: as $1 the fuzzer itself failed (seed $SEED)" ;;
	esac
}
phase fz_writer $((CALLS * 2 / 5))
phase fz_ops $((CALLS / 5))
phase postgres $((CALLS - CALLS * 2 / 5 - CALLS / 5))
echo "fuzz: $CALLS calls in $(($(date +%s) - t0)) s"

# ---- after ----------------------------------------------------------------------
# let the event worker and the fold worker settle before the invariants
X -c "SELECT ledger.catch_up(timeout => '30 s')" >/dev/null 2>&1 || X -c "SELECT ledger.apply_events(100000)" >/dev/null
X -c "SELECT ledger.fold()" >/dev/null
crashes=$(grep -E "terminated by signal|server process .* was terminated|PANIC|TRAP:|runtime error:" "$LOG")
if [ -z "$crashes" ]; then
	ok "no backend crashed, no assertion or sanitizer report ($(wc -l <"$LOG") log lines)"
else
	fail "the server log: $(head -5 <<<"$crashes")"
fi
# a background process (fold worker, event worker) failing otherwise than
# with an LD error, or a WARNING naming a non-LD SQLSTATE (a stuck event)
bg=$(tail -c +"$LOG_FROM" "$LOG" | grep -E '^[0-9-]+ [0-9:.]+ [A-Z]+ \[[0-9]+\] ' | grep -vE '\] client backend ' |
	grep -E ' (ERROR|FATAL|WARNING): ' | grep -vE '\] [^]]* LD[0-9A-Z]{3} (ERROR|WARNING)' |
	grep -vE ' 57P01 FATAL: .*administrator command')
if [ -z "$bg" ]; then
	ok "no background worker failed with a non-LD error"
else
	fail "background errors: $(head -5 <<<"$bg" | cut -c1-300)"
fi
stuck=$(X -c "SELECT stuck_sqlstate || ': ' || stuck_message FROM ledger.projection
               WHERE stuck_sqlstate IS NOT NULL AND stuck_sqlstate NOT LIKE 'LD%'")
if [ -z "$stuck" ]; then ok "no event stuck on a non-LD error"; else fail "a stuck event: $stuck"; fi
check_invariants "$NODE" "$DB" "invariants after fuzzing"
check_reconcile "$NODE" "$DB" "reconcile after fuzzing"
echo "fuzz: seed $SEED (replay: FUZZ_SEED=$SEED FUZZ_CALLS=$CALLS bash test/scripts/fuzz.sh)"
test_done
