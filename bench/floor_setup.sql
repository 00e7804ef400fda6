-- floor_setup: shadow copies of the four tables a transfer writes
-- (transaction, journal_entry, account_balance, daily_balance) with the
-- same columns, defaults, constraints and indexes, but no triggers, no
-- row-level security and no ledger code; and bench.floor_batch(n), which
-- writes what n uniform transfers write with set-based SQL and nothing
-- else: no validation, no floors, no keys, no hot accounts.  The fastest
-- any implementation could write the same rows with the same indexes;
-- bench/floor.sh measures it beside the real calls.
CREATE TABLE bench.f_tx (LIKE ledger.transaction INCLUDING ALL);
CREATE TABLE bench.f_je (LIKE ledger.journal_entry INCLUDING ALL);
CREATE TABLE bench.f_bal (LIKE ledger.account_balance INCLUDING ALL);
CREATE TABLE bench.f_daily (LIKE ledger.daily_balance INCLUDING ALL);
INSERT INTO bench.f_bal (account_id, balance, updated_at)
SELECT account_id, balance, updated_at FROM ledger.account_balance;
INSERT INTO bench.f_daily SELECT * FROM ledger.daily_balance;
ANALYZE bench.f_tx, bench.f_je, bench.f_bal, bench.f_daily;
-- floor_batch picks the ids of acct-1 .. acct-10000 by arithmetic:
-- bench/load.sql creates them in order, one EUR account between two
CREATE TABLE bench.f_ids AS
SELECT (SELECT id FROM ledger.account WHERE code = 'acct-1') AS lo,
       (SELECT id FROM ledger.account WHERE code = 'acct-2') - (SELECT id FROM ledger.account WHERE code = 'acct-1') AS stride;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM ledger.account a, bench.f_ids f
                WHERE a.code ~ '^acct-[0-9]+$' AND a.id <> f.lo + (substr(a.code, 6)::int - 1) * f.stride) THEN
        RAISE EXCEPTION 'the ids of acct-1 .. acct-10000 are not evenly spaced';
    END IF;
END
$$;

-- n transfers between random distinct accounts among the ids of acct-1 ..
-- acct-10000 (as batch_uniform): balance rows locked in id order first,
-- then the transaction rows, two journal entries each, each touched
-- balance row once and each touched daily row once.
CREATE FUNCTION bench.floor_batch(n int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lo bigint := (SELECT lo FROM bench.f_ids);
    stride bigint := (SELECT stride FROM bench.f_ids);
    ids uuid[];
    fa bigint[];
    tb bigint[];
    am numeric[];
BEGIN
    SELECT array_agg(gen_random_uuid()), array_agg(lo + a * stride), array_agg(lo + ((a + r) % 10000) * stride),
           array_agg((1 + floor(random() * 100)::int) * 0.01)
      INTO ids, fa, tb, am
      FROM (SELECT floor(random() * 10000)::int AS a, 1 + floor(random() * 9999)::int AS r
              FROM generate_series(1, n)) p;
    PERFORM 1 FROM bench.f_bal WHERE account_id = ANY (fa || tb) ORDER BY account_id FOR UPDATE;
    INSERT INTO bench.f_tx (id, kind, created_at) SELECT i, 'transfer', now() FROM unnest(ids) i;
    INSERT INTO bench.f_je (transaction_id, account_id, amount, created_at)
    SELECT i, a, -m, now() FROM unnest(ids, fa, am) u(i, a, m)
    UNION ALL
    SELECT i, b, m, now() FROM unnest(ids, tb, am) u(i, b, m);
    WITH d AS (
        SELECT acct, sum(delta) AS delta, sum(greatest(-delta, 0)) AS debits, sum(greatest(delta, 0)) AS credits
          FROM (SELECT a, -m FROM unnest(fa, am) u(a, m) UNION ALL SELECT b, m FROM unnest(tb, am) u(b, m)) x(acct, delta)
         GROUP BY acct),
    u AS (
        UPDATE bench.f_bal f SET balance = f.balance + d.delta, updated_at = now()
          FROM d WHERE f.account_id = d.acct
        RETURNING f.account_id, f.balance)
    INSERT INTO bench.f_daily (account_id, day, debits, credits, balance)
    SELECT d.acct, current_date, d.debits, d.credits, u.balance FROM d JOIN u ON u.account_id = d.acct
    ON CONFLICT (account_id, day) DO UPDATE
       SET debits = f_daily.debits + excluded.debits, credits = f_daily.credits + excluded.credits,
           balance = excluded.balance;
END
$$;
