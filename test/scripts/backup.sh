#!/usr/bin/env bash
# test/scripts/backup.sh: backups keep the ledger, and what they restore
# serves at once.
#
# A source cluster holds a ledger with two assets (one of scale 18), 200
# accounts, postings with and without idempotency keys, an invalidated
# transaction, a reconciliation that found and repaired a tampered
# balance (its run, mismatch and alert rows), and a hot account with
# unfolded entries (the fold worker is kept from folding them).
#   dump:     pg_dump -Fc, pg_restore into a fresh cluster;
#   basebackup: pg_basebackup, started as a new server (not a standby).
# For each copy:
#   - every row of every table with user data is identical (compared by
#     digest), and the sequences go on past the restored ids;
#   - a replay of an idempotency key taken before the backup returns the
#     original transaction and writes nothing;
#   - new postings work, the hot account included, whose escrow is
#     rebuilt from the restored balance plus unfolded entries;
#   - reconcile finds nothing, and the invariants hold (test/invariants.sql).
#
# Run by test/run.sh as root.  Starts its own clusters.  About 15 s.
source "$LEDGER_ROOT/test/lib.sh"
test_begin backup
SRC=$DIR/src
DUMP=$DIR/restored
BASE=$DIR/base
trap 'node_stop $SRC immediate; node_stop $DUMP immediate; node_stop $BASE immediate' EXIT

# a long fold interval keeps the hot account's entries unfolded
CONF="shared_preload_libraries = 'ledger'
ledger.database = 'bk'
ledger.fold_interval = 60000
wal_level = replica
max_wal_senders = 4"
node_init "$SRC" "$CONF" && node_start "$SRC" || { echo "backup: FAIL: source cluster" >&2; exit 1; }
runuser -u postgres -- "$PGBIN/createdb" -h "$SRC" -p "$(node_port "$SRC")" bk
S() { node_psql "$SRC" bk "$@"; }

S >/dev/null <<'SQL' || { echo "backup: FAIL: loading the source ledger" >&2; exit 1; }
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_asset('TOK', 18);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);
SELECT ledger.create_account('tok-world', 'TOK', min_balance => NULL);
SELECT ledger.create_account('merchant', 'USD', owner_id => 'shop');
SELECT ledger.create_account('acct-' || i, 'USD', owner_id => 'user-' || i) FROM generate_series(1, 200) i;
SELECT ledger.create_account('tok-' || i, 'TOK') FROM generate_series(1, 5) i;
SELECT ledger.transfer('world', 'acct-' || i, 100, idempotency_key => 'fund-' || i) FROM generate_series(1, 200) i;
SELECT ledger.transfer('tok-world', 'tok-' || i, 0.000000000000000001 * i) FROM generate_series(1, 5) i;
SELECT ledger.post(format('[{"account": "acct-%s", "amount": "-1.50"}, {"account": "acct-%s", "amount": "1.50"}]',
                          i, i + 1)::jsonb) FROM generate_series(1, 199) i;
SELECT * FROM ledger.invalidate((SELECT transaction_id FROM ledger.journal
                                  WHERE idempotency_key = 'fund-7' LIMIT 1), 'backup test');
SELECT ledger.fold();
SQL
node_ready "$SRC" bk || fail "source: the fold worker never loaded"
S >/dev/null <<'SQL' || { echo "backup: FAIL: hot account setup" >&2; exit 1; }
SELECT ledger.set_account_mode('merchant', 'hot');
SELECT ledger.transfer('acct-' || i, 'merchant', 2.25) FROM generate_series(10, 49) i;
SELECT ledger.transfer('merchant', 'world', 10);
-- drift found and repaired: a run, a mismatch and an alert to keep
UPDATE ledger.account_balance SET balance = balance + 1
 WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'acct-3');
SELECT count(*) FROM ledger.reconcile();
SQL
unfolded=$(S -c "SELECT count(*) FROM ledger.hot_entry")
[ "$unfolded" -ge 41 ] && ok "source: $unfolded unfolded hot entries at backup time" ||
	fail "source: expected unfolded hot entries, found $unfolded"

# One digest per table with user data.  The balance tables are compared as
# readers see them (folded plus unfolded hot entries): a copy's fold worker
# folds the restored hot entries as soon as it starts.
TABLES="asset account transaction journal_entry token_transaction alert reconciliation_run reconciliation_mismatch"
BALANCES="effective_balance effective_daily_balance"
digests() {
	local t
	for t in $TABLES $BALANCES; do
		printf '%s %s\n' "$t" "$(node_psql "$1" bk -c "SELECT count(*) || ':' || coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '-') FROM ledger.$t r")"
	done
	printf 'hot flags %s\n' "$(node_psql "$1" bk -c "SELECT string_agg(account_id::text, ',' ORDER BY account_id) FROM ledger.account_balance WHERE hot")"
}
digests "$SRC" > "$DIR/src.digests"
max_journal=$(S -c "SELECT max(id) FROM ledger.journal_entry")
fund_tx=$(S -c "SELECT id FROM ledger.transaction WHERE idempotency_key = 'fund-42'")
merchant=$(S -c "SELECT ledger.balance('merchant')")

# the copies
"$PGBIN/pg_dump" -Fc -h "$SRC" -p "$(node_port "$SRC")" -f "$DIR/bk.dump" bk ||
	fail "pg_dump failed"
node_init "$DUMP" "$CONF" && node_start "$DUMP" || fail "restore cluster did not start"
runuser -u postgres -- "$PGBIN/createdb" -h "$DUMP" -p "$(node_port "$DUMP")" bk
if "$PGBIN/pg_restore" -h "$DUMP" -p "$(node_port "$DUMP")" -d bk \
	--exit-on-error "$DIR/bk.dump" 2>"$DIR/restore.err"; then
	ok "pg_restore of a pg_dump -Fc archive"
else
	fail "pg_restore: $(head -3 "$DIR/restore.err")"
fi

mkdir -p "$BASE"; chown postgres:postgres "$BASE"; chmod 700 "$BASE"
runuser -u postgres -- "$PGBIN/pg_basebackup" -h "$SRC" -p "$(node_port "$SRC")" -U postgres \
	-D "$BASE/data" -X stream --checkpoint=fast >/dev/null 2>"$DIR/base.err" ||
	fail "pg_basebackup: $(head -3 "$DIR/base.err")"
node_conf "$BASE" "$(free_port "$BASE")"
node_start "$BASE" && ok "a base backup starts as a new server" || fail "base backup did not start"

for node in "$DUMP" "$BASE"; do
	name=$(basename "$node")
	C() { node_psql "$node" bk "$@"; }
	node_ready "$node" bk || fail "$name: the fold worker never loaded"
	digests "$node" > "$DIR/$name.digests"
	if diff "$DIR/src.digests" "$DIR/$name.digests" >"$DIR/$name.diff"; then
		ok "$name: every row of the $(wc -w <<<"$TABLES") tables and of both balance views is identical ($(awk '{split($2, a, ":"); n += a[1]} END {print n}' "$DIR/src.digests") rows)"
	else
		fail "$name: tables differ: $(tr '\n' ' ' <"$DIR/$name.diff")"
	fi
	arrived=$(C -c "SELECT (SELECT folded_rows FROM ledger.fold_worker_status()) + (SELECT count(*) FROM ledger.hot_entry)")
	[ "$arrived" = "$unfolded" ] && ok "$name: all $unfolded unfolded hot entries arrived (folded or queued)" ||
		fail "$name: $arrived of $unfolded unfolded hot entries arrived"
	[ "$(C -c "SELECT ledger.balance('merchant')")" = "$merchant" ] &&
		ok "$name: hot account balance $merchant (folded plus unfolded)" ||
		fail "$name: merchant balance $(C -c "SELECT ledger.balance('merchant')"), expected $merchant"

	# a retry of a request made before the backup: the original id, nothing written
	before=$(C -c "SELECT count(*) FROM ledger.transaction")
	replay=$(C -c "SELECT ledger.transfer('world', 'acct-42', 100, idempotency_key => 'fund-42')")
	[ "$replay" = "$fund_tx" ] && [ "$(C -c "SELECT count(*) FROM ledger.transaction")" = "$before" ] &&
		ok "$name: a key taken before the backup replays to $fund_tx and writes nothing" ||
		fail "$name: replay of fund-42 gave $replay (expected $fund_tx)"
	out=$(C -c "SELECT ledger.transfer('world', 'acct-42', 99, idempotency_key => 'fund-42')" 2>&1)
	grep -q "already used for a different request" <<<"$out" &&
		ok "$name: the same key with another request is refused (LD007)" ||
		fail "$name: conflicting reuse of fund-42: $out"

	# postings go on, hot account included; ids continue
	if C >/dev/null <<'SQL'
SELECT ledger.transfer('acct-1', 'acct-2', 1);
SELECT ledger.transfer('acct-5', 'merchant', 3.50);
SELECT ledger.transfer('merchant', 'acct-6', 1.25);
SELECT ledger.transfer('tok-world', 'tok-1', 1.000000000000000001);
SQL
	then ok "$name: cold, hot and scale-18 postings work"; else fail "$name: postings failed"; fi
	[ "$(C -c "SELECT min(id) > $max_journal FROM ledger.journal_entry WHERE created_at > now() - interval '1 minute' AND id > $max_journal")" = t ] &&
	[ "$(C -c "SELECT count(*) FROM ledger.journal_entry WHERE id > $max_journal")" -ge 8 ] &&
		ok "$name: journal ids continue after $max_journal" ||
		fail "$name: new journal ids do not continue after $max_journal"
	[ "$(C -c "SELECT committed = ledger.balance('merchant') FROM ledger.hot_accounts() WHERE account = 'merchant'")" = t ] &&
		ok "$name: the escrow was rebuilt from the restored rows ($(C -c "SELECT committed FROM ledger.hot_accounts() WHERE account = 'merchant'"))" ||
		fail "$name: escrow: $(C -c "SELECT committed || ' vs ' || ledger.balance('merchant') FROM ledger.hot_accounts()")"
	check_reconcile "$node" bk "$name: reconcile"
	check_invariants "$node" bk "$name: invariants"
done
test_done
