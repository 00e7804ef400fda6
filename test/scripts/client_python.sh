#!/usr/bin/env bash
# test/scripts/client_python.sh: the Python client (clients/python,
# package ledger_client) against a throwaway cluster and pgbouncer.
#
# Starts a node with ledger preloaded (ledger.database = 'client'), two
# databases with the extension (the second for LD021: hot mode outside
# ledger.database) and pgbouncer in transaction pooling mode (pool of 2),
# then runs the client's unittest modules with Debian's python3
# (python3-psycopg), one ok line per module:
#   offline    amount types (float refused before any call), the class per
#              SQLSTATE, retryable codes, parsing of the DETAIL's facts line
#   errors     every LD error a caller can cause, triggered through the API
#              and mapped to its class (LD019, LD020, LD033 need server
#              states and are raised with their SQLSTATE by plpgsql);
#              40001, 40P01, 42501 and a killed backend (ConnectionLost)
#   decimal    exact round trips at scale 2 and 18: transfers, post legs,
#              transfer_batch, post_batch
#   api        holds, batches with per-item refusals, corrections, events,
#              outbox, exchange, status functions
#   retry      idempotent(): backends killed before COMMIT, after COMMIT and
#              while waiting for a lock; one transaction per key, balances
#              moved once; 40001 retried; other errors raised at once
#   pgbouncer  transfers, keyed retries, batches, SET LOCAL and the retry
#              helper through pgbouncer with connect(pgbouncer=True); the
#              default settings shown to break there
#   sqlalchemy the SQL functions from a SQLAlchemy 1.4 session (Debian's,
#              with psycopg2): Decimal both ways, a keyed retry, an LD001's
#              class and facts read from the driver's diagnostics
# Then the invariants and reconcile over everything the tests wrote.
#
# Run by test/run.sh as root.  Starts its own cluster and pgbouncer.
source "$LEDGER_ROOT/test/lib.sh"
test_begin client_python
# SQLAlchemy as Debian ships it (1.4, whose PostgreSQL driver is psycopg2)
need=()
for p in python3-psycopg python3-sqlalchemy python3-psycopg2; do
	pkg_installed "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${need[@]}" >/dev/null 2>&1 || { echo "client_python: FAIL: apt-get install ${need[*]}" >&2; exit 1; }
fi
# The cluster runs as postgres, which must reach $DIR: a WORK made by a bare
# `mktemp -d` is 0700 (test/run.sh makes it 0755).  Let others search it.
runuser -u postgres -- test -x "$DIR" 2>/dev/null || chmod o+x "${WORK:-/tmp}"
NODE=$DIR/node
trap 'kill $(cat "$DIR/pgbouncer.pid" 2>/dev/null) 2>/dev/null; node_stop $NODE immediate' EXIT

node_init "$NODE" "shared_preload_libraries = 'ledger'
ledger.database = 'client'
max_connections = 40" && node_start "$NODE" || { echo "client_python: FAIL: cluster" >&2; exit 1; }
PORT=$(node_port "$NODE")
for db in client client_other; do
	runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$PORT" "$db" &&
		node_psql "$NODE" "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION ledger" ||
		{ echo "client_python: FAIL: setup of $db" >&2; exit 1; }
done
node_ready "$NODE" client || fail "the fold worker never loaded"

pgbouncer_start "$NODE" client 2 || fail "pgbouncer did not start"

export PYTHONPATH=$LEDGER_ROOT/clients/python${PYTHONPATH:+:$PYTHONPATH}
export LEDGER_TEST_DSN="host=$NODE port=$PORT user=postgres dbname=client"
export LEDGER_TEST_DSN_OTHER="host=$NODE port=$PORT user=postgres dbname=client_other"
export LEDGER_TEST_PGBOUNCER_DSN="host=$DIR port=$BPORT user=postgres dbname=client"
export LEDGER_TEST_STRICT=1        # a missing DSN fails instead of skipping
export PYTHONDONTWRITEBYTECODE=1   # leave no __pycache__ in the tree

for module in offline errors decimal api retry pgbouncer sqlalchemy; do
	out=$DIR/unittest_$module.out
	if (cd "$LEDGER_ROOT/clients/python" && "$PYTHON" -m unittest -v "tests.test_$module") >"$out" 2>&1; then
		if grep -q '^OK' "$out" && ! grep -q 'skipped' "$out"; then
			ok "$module: $(sed -n 's/^Ran \([0-9]*\) tests\{0,1\} .*/\1 tests passed/p' "$out")"
		else
			fail "$module: tests skipped or no result: $(tail -3 "$out" | tr '\n' ' ')"
		fi
	else
		fail "$module: $(grep -E '^(FAIL|ERROR):' "$out" | tr '\n' ';' | head -c 2000)"
		sed 's/^/    /' "$out" | tail -60 >&2
	fi
done

check_invariants "$NODE" client "after the client tests: invariants"
check_reconcile "$NODE" client "after the client tests: reconcile"
test_done
