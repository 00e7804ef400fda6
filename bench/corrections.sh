#!/usr/bin/env bash
# bench/corrections.sh: how long corrections and checks take on a large
# ledger.  Run as root:  bash bench/corrections.sh
#
#  - dataset A: 10,000 accounts, 500,000 two-leg transactions = 1,000,000
#    journal entries spread over 30 days;
#  - dataset B: one account ("big") with 1,000,000 entries over 30 days.
# History is generated directly in the tables (the API stamps the current
# time, and history needs past days), then the caches are built with
# ledger.rebuild_balances().  Timed: rebuild_balances, reconcile (clean,
# and with 100 tampered balances), and invalidate of a transaction on big's
# newest day and on its oldest day (the cost grows with the entries after
# the invalidated day).  Prints a markdown table; also writes
# bench/results/corrections.md.
source "$(dirname "$0")/../test/lib.sh"

ledger_packages
ledger_build
DIR=$(mktemp -d /tmp/ledger-bench-corr.XXXXXX)
CLUSTER_CONF="shared_buffers = 2GB
work_mem = 256MB
maintenance_work_mem = 1GB
max_wal_size = 16GB
checkpoint_timeout = 30min" cluster_start "$DIR"
runuser -u postgres -- "$PGBIN/createdb" bench
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d bench "$@"; }
# run SQL, print its duration in seconds
timed() {
	local t0 t1
	t0=$(date +%s.%N)
	psql -c "$1" >/dev/null
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l | xargs printf '%.2f'
}

echo "== loading (this takes a minute or two)"
psql <<'SQL'
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
DO $$ BEGIN
  FOR i IN 1..10000 LOOP
    PERFORM ledger.create_account('acct-' || i, 'USD', min_balance => NULL);
  END LOOP;
  PERFORM ledger.create_account('big', 'USD', min_balance => 0);
  PERFORM ledger.create_account('big-src', 'USD', min_balance => NULL);
END $$;
-- dataset A: 500,000 transfers between random accounts over 30 days
WITH t AS (
  INSERT INTO ledger.transaction (id, kind, created_at)
  SELECT ledger.new_id(), 'transfer', now() - random() * interval '30 days'
    FROM generate_series(1, 500000)
  RETURNING id, created_at)
INSERT INTO ledger.journal_entry (transaction_id, account_id, amount, created_at)
SELECT t.id, x.acct, x.amt, t.created_at
  FROM t
 CROSS JOIN LATERAL (SELECT 1 + floor(random() * 10000)::bigint AS a,
                            1 + floor(random() * 10000)::bigint AS b,
                            round((random() * 100)::numeric, 2) + 0.01 AS m
                       WHERE t.id IS NOT NULL) r
 CROSS JOIN LATERAL (VALUES (r.a, -r.m), (r.b, r.m)) x(acct, amt);
-- dataset B: 1,000,000 credits into big over 30 days
WITH t AS (
  INSERT INTO ledger.transaction (id, kind, created_at)
  SELECT ledger.new_id(), 'transfer', now() - (30 - n * 30.0 / 1000000) * interval '1 day'
    FROM generate_series(1, 1000000) n
  RETURNING id, created_at)
INSERT INTO ledger.journal_entry (transaction_id, account_id, amount, created_at)
SELECT t.id, x.acct, x.amt, t.created_at
  FROM t
 CROSS JOIN LATERAL (VALUES ((SELECT id FROM ledger.account WHERE code = 'big'), 1.00),
                            ((SELECT id FROM ledger.account WHERE code = 'big-src'), -1.00)) x(acct, amt);
VACUUM ANALYZE;
SQL
entries=$(psql -At -c "SELECT count(*) FROM ledger.journal_entry")
big_entries=$(psql -At -c "SELECT count(*) FROM ledger.journal_entry WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'big')")
accounts=$(psql -At -c "SELECT count(*) FROM ledger.account")
echo "== $entries journal entries, $accounts accounts, big has $big_entries entries"

t_rebuild_all=$(timed "SELECT ledger.rebuild_balances()")
t_rec_clean=$(timed "SELECT count(*) FROM ledger.reconcile()")
psql -c "UPDATE ledger.account_balance SET balance = balance + 1 WHERE account_id % 100 = 0"
t_rec_repair=$(timed "SELECT count(*) FROM ledger.reconcile()")
mism=$(psql -At -c "SELECT mismatches || ' found, ' || repaired || ' repaired' FROM ledger.reconciliation_run ORDER BY id DESC LIMIT 1")
t_rebuild_big=$(timed "SELECT ledger.rebuild_balances('big')")
newest=$(psql -At -c "SELECT transaction_id FROM ledger.journal_entry WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'big') ORDER BY created_at DESC LIMIT 1")
oldest=$(psql -At -c "SELECT transaction_id FROM ledger.journal_entry WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'big') ORDER BY created_at LIMIT 1")
t_inv_new=$(timed "SELECT * FROM ledger.invalidate('$newest', 'bench: newest day')")
t_inv_old=$(timed "SELECT * FROM ledger.invalidate('$oldest', 'bench: oldest day')")
left=$(psql -At -c "SELECT count(*) FROM ledger.reconcile(repair => false)")

mkdir -p "$LEDGER_ROOT/bench/results"
{
	echo "Corrections benchmark, $(date -u +%Y-%m-%d), PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), $(nproc) cores, shared_buffers 2GB, work_mem 256MB"
	echo
	echo "| operation | data | seconds |"
	echo "|---|---|---|"
	echo "| rebuild_balances() | $accounts accounts, $entries entries | $t_rebuild_all |"
	echo "| reconcile(), nothing wrong | $accounts accounts, $entries entries | $t_rec_clean |"
	echo "| reconcile(), 100 tampered balances | same ($mism) | $t_rec_repair |"
	echo "| rebuild_balances('big') | $big_entries entries | $t_rebuild_big |"
	echo "| invalidate, transaction on big's newest day | big: $big_entries entries | $t_inv_new |"
	echo "| invalidate, transaction on big's oldest day (rebuilds 30 days) | big: $big_entries entries | $t_inv_old |"
	echo
	echo "Mismatches left after all of it: $left"
} | tee "$LEDGER_ROOT/bench/results/corrections.md"
