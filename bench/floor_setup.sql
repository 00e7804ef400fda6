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

-- The rows of one transfer as a plain PL/pgSQL ledger writes them (plans
-- kept per session): the transaction row, the two journal entries, the
-- two balance rows in id order, then the two daily rows.  No check, no
-- key, no event: less than ledger.transfer does.  a and b are numbers
-- 1 .. 10000 (acct-a, acct-b), as transfer_uniform picks them.
CREATE FUNCTION bench.floor_transfer(a int, b int, amount numeric) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    x bigint := (SELECT lo + (a - 1) * stride FROM bench.f_ids);
    y bigint := (SELECT lo + (b - 1) * stride FROM bench.f_ids);
    t uuid := gen_random_uuid();
BEGIN
    INSERT INTO bench.f_tx (id, kind, created_at) VALUES (t, 'transfer', now());
    INSERT INTO bench.f_je (transaction_id, account_id, amount, created_at)
    VALUES (t, x, -amount, now()), (t, y, amount, now());
    UPDATE bench.f_bal SET balance = balance + CASE WHEN account_id = x THEN -amount ELSE amount END,
                           updated_at = now()
     WHERE account_id = least(x, y);
    UPDATE bench.f_bal SET balance = balance + CASE WHEN account_id = x THEN -amount ELSE amount END,
                           updated_at = now()
     WHERE account_id = greatest(x, y);
    INSERT INTO bench.f_daily (account_id, day, debits, credits, balance)
    SELECT account_id, current_date, CASE WHEN account_id = x THEN amount ELSE 0 END,
           CASE WHEN account_id = y THEN amount ELSE 0 END, balance
      FROM bench.f_bal WHERE account_id IN (x, y)
     ORDER BY account_id
    ON CONFLICT (account_id, day) DO UPDATE
       SET debits = f_daily.debits + excluded.debits, credits = f_daily.credits + excluded.credits,
           balance = excluded.balance;
    RETURN t;
END
$$;

-- What bench/floor.sh's COPY workload reads: the 1,000 transaction rows
-- (ids from a column default) and the 2,000 journal entries of 1,000
-- uniform transfers, made once per run.
ALTER TABLE bench.f_tx ALTER id SET DEFAULT gen_random_uuid();
CREATE TABLE bench.f_copy_tx AS
SELECT 'transfer'::text AS kind, now() AS created_at FROM generate_series(1, 1000);
CREATE TABLE bench.f_copy_je AS
SELECT p.t AS transaction_id, l.account_id, l.amount, now() AS created_at
  FROM (SELECT gen_random_uuid() AS t, f.lo + a * f.stride AS x, f.lo + ((a + r) % 10000) * f.stride AS y,
               (1 + floor(random() * 100)::int) * 0.01 AS m
          FROM bench.f_ids f,
               LATERAL (SELECT floor(random() * 10000)::int AS a, 1 + floor(random() * 9999)::int AS r
                          FROM generate_series(1, 1000)) s) p,
       LATERAL (VALUES (p.x, -p.m), (p.y, p.m)) l(account_id, amount);
