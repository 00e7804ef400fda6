#!/usr/bin/env bash
# test/scripts/client_node.sh: the Node.js client (clients/node, package
# @ledger/client) against a throwaway cluster and pgbouncer.
#
# Installs Node.js and npm with apt only when they are missing (a node from
# another source counts), runs `npm ci`, `npm run build` and `npm run
# typecheck` (what a TypeScript caller may write: a JS number amount does
# not compile) in clients/node (node_modules and dist are git-ignored), starts a node with ledger
# preloaded (ledger.database = 'client_node'), two databases with the
# extension (the second for LD021: hot mode outside ledger.database) and
# pgbouncer in transaction pooling mode (pool of 2), then runs each test
# file with node's built-in runner (node:test), one ok line per file:
#   offline    amounts (JS numbers refused), exact JSON, the class per
#              SQLSTATE (checked against the README's table), translate()
#              and the facts line, statements: named arguments, parameters
#              only, never a named statement
#   errors     every LD error a caller can cause, triggered through the
#              client and mapped to its class with its facts (LD020 and
#              LD033 need server states: mapping only); real 40001, 40P01
#              and 42501
#   decimal    exact round trips at scale 2 and 18 through transfer, post,
#              transferBatch, postBatch; numeric, bigint, uuid as strings
#   api        holds, batches, corrections, events, outbox, statements,
#              status functions, transactions over a pool
#   retry      idempotent(): backends killed before and after COMMIT, one
#              transaction per key, balances moved once; 40001, 40P01,
#              LD019 and LD041 retried; LD001 thrown at once
#   pgbouncer  concurrent keyed transfers, a batch, SET LOCAL acting owner
#              and idempotent() through pgbouncer; balances checked
#   knex       the SQL functions through Knex (npm knex, client pg) in a
#              Knex transaction, a keyed replay, an LD001 translated with
#              its facts
# Then the invariants and reconcile over everything the tests wrote.
#
# Run as root: LEDGER_ROOT=/path/to/repo WORK=$(mktemp -d) bash test/scripts/client_node.sh
source "$LEDGER_ROOT/test/lib.sh"
test_begin client_node
# The cluster runs as postgres, which must reach $DIR: a WORK made by a bare
# `mktemp -d` is 0700.  Let others search it.
runuser -u postgres -- test -x "$DIR" 2>/dev/null || chmod o+x "${WORK:-/tmp}"
NODE=$DIR/node
PKG=$LEDGER_ROOT/clients/node
trap 'kill $(cat "$DIR/pgbouncer.pid" 2>/dev/null) 2>/dev/null; node_stop $NODE immediate' EXIT

# --- Node.js and npm: from apt only when truly missing ----------------------
need=()
command -v node >/dev/null 2>&1 || pkg_installed nodejs || need+=(nodejs)
command -v npm >/dev/null 2>&1 || pkg_installed npm || need+=(npm)
pkg_installed pgbouncer || need+=(pgbouncer)
if [ ${#need[@]} -gt 0 ]; then
	echo "== installing ${need[*]}"
	apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
		{ echo "client_node: FAIL: apt-get install ${need[*]}" >&2; exit 1; }
fi
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
	{ echo "client_node: FAIL: node or npm still missing" >&2; exit 1; }
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 18 ] || { echo "client_node: FAIL: node $(node --version) is older than 18" >&2; exit 1; }

# --- build the package -------------------------------------------------------
if (cd "$PKG" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm run --silent build &&
	npm run --silent typecheck) >"$DIR/npm.out" 2>&1; then
	ok "npm ci, build, typecheck of test/typecheck.ts (node $(node --version), npm $(npm --version), pg $(node -p "require('$PKG/node_modules/pg/package.json').version"))"
else
	fail "npm ci / build: $(tail -20 "$DIR/npm.out")"
	test_done
fi

# --- cluster and pgbouncer ---------------------------------------------------
node_init "$NODE" "shared_preload_libraries = 'ledger'
ledger.database = 'client_node'
max_connections = 40" && node_start "$NODE" || { echo "client_node: FAIL: cluster" >&2; exit 1; }
PORT=$(node_port "$NODE")
for db in client_node client_node_other; do
	runuser -u postgres -- "$PGBIN/createdb" -h "$NODE" -p "$PORT" "$db" &&
		node_psql "$NODE" "$db" -c "SET client_min_messages = warning" -c "CREATE EXTENSION ledger" ||
		{ echo "client_node: FAIL: setup of $db" >&2; exit 1; }
done
node_ready "$NODE" client_node || fail "the fold worker never loaded"

pgbouncer_start "$NODE" client_node 2 || fail "pgbouncer did not start"

# --- the tests ---------------------------------------------------------------
export LEDGER_TEST_HOST=$NODE LEDGER_TEST_PORT=$PORT LEDGER_TEST_USER=postgres
export LEDGER_TEST_DB=client_node LEDGER_TEST_DB_OTHER=client_node_other
export LEDGER_TEST_BOUNCER_HOST=$DIR LEDGER_TEST_BOUNCER_PORT=$BPORT
export LEDGER_README=$LEDGER_ROOT/README.md

for t in offline errors decimal api retry pgbouncer knex; do
	out=$DIR/test_$t.out
	if (cd "$PKG" && timeout 300 node --test --test-reporter=tap "test/$t.test.js") >"$out" 2>&1; then
		if grep -q '^# fail 0' "$out" && ! grep -Eq '^# (skipped|todo) [1-9]' "$out"; then
			ok "$t: $(sed -n 's/^# pass \([0-9]*\)/\1 tests passed/p' "$out")"
		else
			fail "$t: tests skipped or no result: $(tail -8 "$out" | tr '\n' ' ')"
		fi
	else
		fail "$t: $(grep -E '^not ok' "$out" | tr '\n' ';' | head -c 2000)"
		# the failing tests' blocks only
		awk '/^ *not ok /{p=1} p{print "    " $0} p && /^ *\.\.\.$/{p=0}' "$out" | head -150 >&2
	fi
done

check_invariants "$NODE" client_node "after the client tests: invariants"
check_reconcile "$NODE" client_node "after the client tests: reconcile"
test_done
