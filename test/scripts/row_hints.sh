#!/usr/bin/env bash
# test/scripts/row_hints.sh: postings that find balance rows, daily rows
# and accounts from row hints (src/rowhint.c) stay correct while the rows
# move under them.  Starts its own cluster (ledger preloaded).
#
# 12 rounds of 3 s: 8 pgbench clients post single transfers and transfer
# batches among 12 accounts (few rows on few pages: long HOT chains,
# pruned often; from round 7, indexes on the balance columns make every
# update move its row), while one client in eight moves the rows: VACUUM of the
# balance, daily and account tables (pruned line pointers freed and
# reused), VACUUM FULL or CLUSTER of one of them (every row moved to a new
# file), an UPDATE of account_balance's updated_at alone (a row version no
# posting wrote) or a floor change of an account (a new account row
# version).  Hints then lead to rows that are gone, moved, not visible or
# another's; each must be caught.  No call may fail other than by a refusal
# (LD) or a retryable conflict; after each round reconcile finds nothing,
# and at the end the invariants of test/invariants.sql hold and the hints
# were used (the balance index read for fewer than a quarter of the
# balance rows locked).
#
# First, in a database of its own, the case the rounds reach only by
# chance, made step by step: the slots x's balance and daily hints name
# are freed by VACUUM and reused by y's rows, so each hint leads to a
# visible row with another key.  A posting on x must change x's rows and
# not y's.
source "$LEDGER_ROOT/test/lib.sh"
test_begin row_hints
ledger_node rh "max_connections = 40"
R() { node_psql "$N" rh "$@"; }
R >/dev/null <<'SQL' || fail "setup"
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('w', 'USD', min_balance => NULL);
SELECT ledger.create_account('a' || i, 'USD') FROM generate_series(1, 12) i;
SELECT ledger.transfer('w', 'a' || i, 100000) FROM generate_series(1, 12) i;
SQL
load_try_sql | R >/dev/null || fail "setup: load_try"

node_psql "$N" postgres -c "CREATE DATABASE reuse" >/dev/null
U() { node_psql "$N" reuse "$@"; }
# x's hints name its first slots (balance and daily rows: the index led
# there, or the row was inserted there); its rows then move out (non-HOT
# updates: indexes on balance), VACUUM frees the old slots, and the next
# non-HOT updates or inserts (w's, then y's) take the lowest free slots
got=$(U 2>&1 <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2) IS NULL;
SELECT ledger.create_account('w', 'USD', min_balance => NULL) > 0;
SELECT ledger.create_account('x', 'USD') > 0;
SELECT ledger.create_account('y', 'USD') > 0;
CREATE FUNCTION slot(tab regclass, code text) RETURNS tid LANGUAGE plpgsql AS
$$ DECLARE t tid;
   BEGIN EXECUTE format('SELECT ctid FROM %s WHERE account_id = (SELECT id FROM ledger.account WHERE code = $1)', tab)
           INTO t USING code;
         RETURN t; END $$;
SELECT slot('ledger.account_balance', 'x') AS x0 \gset
SELECT ledger.transfer('w', 'x', 10) IS NOT NULL;
SELECT slot('ledger.daily_balance', 'x') AS dx0 \gset
CREATE INDEX reuse_by_balance ON ledger.account_balance (balance);
CREATE INDEX reuse_daily_by_balance ON ledger.daily_balance (balance);
SELECT ledger.transfer('w', 'x', 10) IS NOT NULL;
DROP INDEX ledger.reuse_by_balance, ledger.reuse_daily_by_balance;
VACUUM ledger.account_balance, ledger.daily_balance;
CREATE INDEX reuse_by_balance ON ledger.account_balance (balance);
CREATE INDEX reuse_daily_by_balance ON ledger.daily_balance (balance);
SELECT ledger.transfer('w', 'y', 10) IS NOT NULL;
DROP INDEX ledger.reuse_by_balance, ledger.reuse_daily_by_balance;
SELECT 'y now in x hinted slots: ' ||
       (slot('ledger.account_balance', 'y') = :'x0' AND slot('ledger.account_balance', 'x') <> :'x0') || ' ' ||
       (slot('ledger.daily_balance', 'y') = :'dx0' AND slot('ledger.daily_balance', 'x') <> :'dx0');
SELECT ledger.transfer('x', 'w', 5) IS NOT NULL;
SELECT 'after: x ' || ledger.balance('x') || ', y ' || ledger.balance('y') ||
       ', reconcile ' || (SELECT count(*) FROM ledger.reconcile(repair => false));
SELECT 'daily: ' || string_agg(a.code || ' ' || d.debits || '/' || d.credits || '/' || d.balance, ', ' ORDER BY a.code)
  FROM ledger.daily_balance d JOIN ledger.account a ON a.id = d.account_id WHERE a.code IN ('x', 'y');
SQL
)
grep -q "y now in x hinted slots: true true" <<<"$got" ||
	fail "reuse: y's rows did not land in the slots x's hints name: $(grep 'slots' <<<"$got")"
grep -q "after: x 15.00, y 10.00, reconcile 0" <<<"$got" && grep -q "daily: x 5.00/20.00/15.00, y 0/10.00/10.00" <<<"$got" &&
	ok "hints whose slots now hold another account's balance and daily rows: the posting changed x (15.00; daily 5.00 out, 20.00 in), not y (10.00); reconcile clean" ||
	fail "reuse: $(grep -E 'after|daily|ERROR' <<<"$got")"

S=$DIR/scripts
mkdir -p "$S"
cat >"$S/single.sql" <<'SQL'
\set a random(1, 12)
\set b 1 + (:a + random(0, 10)) % 12
\set c random(1, 5000)
SELECT load_try(format('SELECT ledger.transfer(%L, %L, %s)', 'a' || :a, 'a' || :b, :c * 0.01));
SQL
cat >"$S/batch.sql" <<'SQL'
\set a random(1, 12)
\set b 1 + (:a + random(0, 10)) % 12
SELECT load_try(format('SELECT count(*) FROM ledger.transfer_batch(%L::text[], %L::text[], %L::numeric[])',
                     ARRAY['a' || :a, 'a' || :b, 'w'], ARRAY['a' || :b, 'a' || :a, 'a' || :a],
                     ARRAY[1.5, 2.25, 0.75]));
SQL
cat >"$S/move.sql" <<'SQL'
\set m random(1, 9)
\set a random(1, 12)
SELECT CASE :m
  WHEN 1 THEN 'VACUUM ledger.account_balance'
  WHEN 2 THEN 'VACUUM ledger.daily_balance'
  WHEN 3 THEN 'VACUUM ledger.account'
  WHEN 4 THEN 'VACUUM FULL ledger.account_balance'
  WHEN 5 THEN 'VACUUM FULL ledger.daily_balance'
  WHEN 6 THEN 'CLUSTER ledger.account USING account_pkey'
  WHEN 7 THEN 'UPDATE ledger.account_balance SET updated_at = now() WHERE account_id = (SELECT id FROM ledger.account WHERE code = ''a' || :a || ''')'
  ELSE 'UPDATE ledger.account SET min_balance = ' || CASE WHEN :m = 8 THEN '0' ELSE '-1' END || ' WHERE code = ''a' || :a || ''''
END AS stmt \gset
:stmt;
SQL
R -c "SELECT pg_stat_reset()" >/dev/null
files0=$(R -c "SELECT string_agg(pg_relation_filenode(c)::text, ' ' ORDER BY c)
                 FROM unnest(ARRAY['ledger.account_balance', 'ledger.daily_balance', 'ledger.account']::regclass[]) c")
bad=0
for r in $(seq 1 12); do
	# from round 7 on, indexes on the updated columns make every balance
	# and daily update a non-HOT one: each moves its row out of the chain
	# its hint names, and VACUUM frees the old slots for other rows
	if [ "$r" = 7 ]; then
		# the hints were used in the first six rounds: index scans of
		# account_balance (statistics sent by now) per balance row locked
		sleep 1
		got=$(R -c "SELECT s.idx_scan || ' ' || (SELECT count(*) FROM ledger.journal_entry)
		              FROM pg_stat_user_tables s WHERE s.relid = 'ledger.account_balance'::regclass")
		read -r scans entries <<<"$got"
	fi
	[ "$r" = 7 ] && R -c "CREATE INDEX rh_balance_by_balance ON ledger.account_balance (balance);
	                     CREATE INDEX rh_daily_by_balance ON ledger.daily_balance (balance)" >/dev/null
	out=$("$PGBIN/pgbench" -n -h "$N" -p "$(node_port "$N")" -U postgres -c 8 -j 2 -T 3 --max-tries=10 \
		-f "$S/single.sql@6" -f "$S/batch.sql@3" -f "$S/move.sql@1" rh 2>&1)
	grep -qE "aborted|ERROR" <<<"$out" && { bad=$((bad + 1)); fail "round $r: pgbench: $(grep -E 'aborted|ERROR' <<<"$out" | head -3)"; }
	n=$(R -c "SELECT count(*) FROM ledger.reconcile(repair => false)")
	[ "$n" = 0 ] || { bad=$((bad + 1)); fail "round $r: reconcile: $(R -c "SELECT * FROM ledger.reconcile(repair => false)" | head -5)"; }
done
[ "$bad" = 0 ] && ok "12 rounds of postings while rows were vacuumed, rewritten and updated: no call failed, reconcile clean after each"
# the rows did move: each table was rewritten and vacuumed
files1=$(R -c "SELECT string_agg(pg_relation_filenode(c)::text, ' ' ORDER BY c)
                 FROM unnest(ARRAY['ledger.account_balance', 'ledger.daily_balance', 'ledger.account']::regclass[]) c")
vacuums=$(R -c "SELECT count(*) FROM pg_stat_user_tables
                 WHERE relid IN ('ledger.account_balance'::regclass, 'ledger.daily_balance'::regclass, 'ledger.account'::regclass)
                   AND vacuum_count > 0")
read -r -a f0 <<<"$files0"
read -r -a f1 <<<"$files1"
[ "${f0[0]}" != "${f1[0]}" ] && [ "${f0[1]}" != "${f1[1]}" ] && [ "${f0[2]}" != "${f1[2]}" ] && [ "$vacuums" = 3 ] &&
	ok "every table was rewritten (files $files0 -> $files1) and vacuumed" ||
	fail "the rows did not all move: files $files0 -> $files1, $vacuums of 3 tables vacuumed"
check_invariants "$N" rh "invariants"
[ "${entries:-0}" -gt 1000 ] && [ "$scans" -lt "$((entries / 4))" ] &&
	ok "hints used: $scans scans of account_balance's indexes for $entries journal entries in the first six rounds" ||
	fail "hints not used: $scans scans of account_balance's indexes for $entries journal entries in the first six rounds"
test_done
