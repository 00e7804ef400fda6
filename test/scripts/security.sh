#!/usr/bin/env bash
# test/scripts/security.sh: encryption in transit and the audit trail,
# with the README's lines.  Starts its own clusters.
#
#   tls    A cluster with ssl = on (a self-signed certificate made here
#          with openssl) and a pg_hba.conf that lets the ledger's login
#          role in only over hostssl with scram-sha-256: a client without
#          TLS is refused, one with TLS and the password posts (and
#          pg_stat_ssl shows the connection encrypted), a wrong password
#          is refused.
#   audit  A cluster with pgaudit preloaded (pgaudit.log = 'function',
#          pgaudit.log_parameter = on): a transfer by a writer and an
#          invalidation by an operator appear in the server log with the
#          role, the time and the arguments.
source "$LEDGER_ROOT/test/lib.sh"
test_begin security
TLS=$DIR/tls
AUDIT=$DIR/audit
trap 'node_stop $TLS immediate; node_stop $AUDIT immediate' EXIT

setup_sql() {
	cat <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('alice', 'USD', owner_id => 'user-alice');
SELECT ledger.create_account('bob', 'USD', owner_id => 'user-bob');
CREATE ROLE app LOGIN PASSWORD 'app-secret' IN ROLE ledger_writer;
CREATE ROLE ops LOGIN PASSWORD 'ops-secret' IN ROLE ledger_operator;
SQL
}

# ---- tls --------------------------------------------------------------------
node_init "$TLS" "listen_addresses = '127.0.0.1'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
password_encryption = 'scram-sha-256'
shared_preload_libraries = 'ledger'" || { echo "security: FAIL: initdb" >&2; exit 1; }
openssl req -new -x509 -days 2 -nodes -subj "/CN=localhost" \
	-keyout "$TLS/data/server.key" -out "$TLS/data/server.crt" >/dev/null 2>&1
chown postgres:postgres "$TLS/data/server.key" "$TLS/data/server.crt"
chmod 600 "$TLS/data/server.key"
cat >"$TLS/data/pg_hba.conf" <<'HBA'
# the superuser over the local socket only; applications over TLS only
local     all  postgres                 trust
hostssl   all  app       127.0.0.1/32   scram-sha-256
hostnossl all  all       127.0.0.1/32   reject
HBA
node_start "$TLS" || { echo "security: FAIL: tls cluster: $(tail -5 "$TLS/server.log")" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$TLS" -p "$(node_port "$TLS")" sec
setup_sql | node_psql "$TLS" sec >/dev/null || fail "tls: setup"
node_psql "$TLS" sec -c "SELECT ledger.transfer('world', 'alice', 100)" >/dev/null
app() {	# app SSLMODE PASSWORD SQL
	PGSSLMODE=$1 PGPASSWORD=$2 "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 \
		"host=127.0.0.1 port=$(node_port "$TLS") user=app dbname=sec" -c "$3" 2>&1
}
out=$(app disable app-secret "SELECT 1")
if grep -q "no encryption\|rejects connection\|pg_hba.conf" <<<"$out"; then
	ok "tls: a client without TLS is refused ($(head -1 <<<"$out" | cut -c1-100))"
else
	fail "tls: a client without TLS got in: $out"
fi
out=$(app require app-secret "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid();
                              SELECT ledger.transfer('alice', 'bob', 10) IS NOT NULL")
if [ "$(sed -n 2p <<<"$out")" = t ] && grep -q "^t|TLS" <<<"$out"; then
	ok "tls: over TLS with the password the writer posts ($(head -1 <<<"$out"))"
else
	fail "tls: over TLS: $out"
fi
out=$(app require wrong "SELECT 1")
grep -q "password authentication failed" <<<"$out" && ok "tls: a wrong password is refused" ||
	fail "tls: wrong password: $out"
[ "$(node_psql "$TLS" sec -c "SELECT ledger.balance('bob')")" = 10.00 ] &&
	ok "tls: exactly the one transfer landed" || fail "tls: bob has $(node_psql "$TLS" sec -c "SELECT ledger.balance('bob')")"

# ---- audit ------------------------------------------------------------------
node_init "$AUDIT" "shared_preload_libraries = 'ledger,pgaudit'
pgaudit.log = 'function'
pgaudit.log_parameter = on
pgaudit.log_relation = off
log_line_prefix = '%m [%p] %u@%d '" || { echo "security: FAIL: initdb" >&2; exit 1; }
node_start "$AUDIT" || { echo "security: FAIL: audit cluster: $(tail -5 "$AUDIT/server.log")" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$AUDIT" -p "$(node_port "$AUDIT")" sec
setup_sql | node_psql "$AUDIT" sec >/dev/null || fail "audit: setup"
node_psql "$AUDIT" sec -c "SELECT ledger.transfer('world', 'alice', 100)" >/dev/null
as() {	# as ROLE SQL: psql logged in as ROLE
	"$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$AUDIT" -p "$(node_port "$AUDIT")" -U "$1" -d sec -c "$2"
}
tx=$(as app "SELECT ledger.transfer('alice', 'bob', 12.34, 'audit-key-1')")
as ops "SELECT count(*) FROM ledger.invalidate('$tx', 'audit test')" >/dev/null
sleep 0.5
log=$AUDIT/server.log
if grep "AUDIT: SESSION" "$log" | grep "ledger.transfer" | grep -q "12.34"; then
	ok "audit: the transfer is logged with its arguments: $(grep "AUDIT: SESSION" "$log" | grep "ledger.transfer" | grep "12.34" | head -1 | cut -c1-160)"
else
	fail "audit: no AUDIT line for the transfer: $(grep -c AUDIT "$log") AUDIT lines"
fi
if grep "AUDIT: SESSION" "$log" | grep "ledger.invalidate" | grep "audit test" | grep -q " ops@sec "; then
	ok "audit: the invalidation is logged with its arguments, as role ops"
else
	fail "audit: no AUDIT line for the invalidation"
fi
# the log line carries the time and the login role (the prefix's %m, %u)
grep "AUDIT: SESSION" "$log" | grep "ledger.transfer" | grep "12.34" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ [A-Z]+ \[[0-9]+\] app@sec ' &&
	ok "audit: the transfer's line has the time and the writer's role" || fail "audit: no time or role in the line"
check_invariants "$AUDIT" sec "audit: invariants"
test_done
