-- test/pgtap/invariants.sql: a randomized, reproducible workload, then the
-- ledger's invariants checked against the journal and against an independent
-- model of the balances.
--
-- Run by test/run.sh with pg_prove in a fresh database where pgtap and ledger
-- are installed.  The helpers below (tap_* in schema public) and the data
-- stay behind.
--
-- Workload (setseed, so every run makes the same calls):
--   two assets of different scales, USD (2) and BTC (8); 20 accounts in each:
--   an unbounded source, 14 with floor 0 and 5 with negative floors;
--   ten days of backdated credits written directly to the journal (the API
--   cannot fake time) and turned into balances by ledger.rebuild_balances(),
--   so that daily balances span several UTC days;
--   ~4000 random transfers and 2-5 leg posts (some mixing both assets, each
--   asset netting to zero), amounts as JSON numbers or strings; some
--   requests carry idempotency keys and are retried later, written
--   differently, or reused for a different request (LD007);
--   then 300 exchanges of BTC into USD with random spreads (tap_exchange_one),
--   then 150 random ledger.invalidate calls (force => false), a third of
--   them on backdated transactions.
-- Every call's outcome is predicted by a model (tap_model) that tracks each
-- account's balance and floor: a posting must fail with LD001, and an
-- invalidation with LD015, exactly when it would take an account below its
-- floor.  Any other error stops the file (ON_ERROR_STOP), which pg_prove
-- reports as a failure.

SET client_min_messages = warning;

CREATE TABLE tap_model (
    code   text PRIMARY KEY,
    asset  text NOT NULL,
    floor  numeric,                 -- NULL: unbounded
    bal    numeric NOT NULL DEFAULT 0
);

CREATE TABLE tap_stats (
    name text PRIMARY KEY,
    n    bigint NOT NULL
);

CREATE SEQUENCE tap_idem_seq;
CREATE TABLE tap_idem (
    ikey        text PRIMARY KEY,
    kind        text NOT NULL,
    legs        jsonb NOT NULL,
    meta        jsonb NOT NULL,
    first_id    uuid,               -- id of the first successful attempt
    attempts    int NOT NULL DEFAULT 0,
    successes   int NOT NULL DEFAULT 0,
    mismatches  int NOT NULL DEFAULT 0  -- successes that returned another id
);

CREATE FUNCTION tap_count(p_name text, p_n bigint DEFAULT 1) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO tap_stats VALUES (p_name, p_n)
    ON CONFLICT (name) DO UPDATE SET n = tap_stats.n + excluded.n;
$$;

CREATE FUNCTION tap_stat(p_name text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT n FROM tap_stats WHERE name = p_name), 0);
$$;

CREATE FUNCTION tap_asset() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN random() < 0.5 THEN 'USD' ELSE 'BTC' END;
$$;

CREATE FUNCTION tap_scale(p_asset text) RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT scale FROM ledger.asset WHERE code = p_asset;
$$;

-- A random positive amount of at most p_max, at exactly the asset's scale.
CREATE FUNCTION tap_amount(p_asset text, p_max numeric) RETURNS numeric
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    s int := tap_scale(p_asset);
    units numeric := 1 + floor(random() * (p_max * 10::numeric ^ s));
BEGIN
    RETURN round(units / 10::numeric ^ s, s);
END
$$;

-- The largest amount a single random leg moves, per asset.
CREATE FUNCTION tap_max(p_asset text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_asset WHEN 'USD' THEN 300.00 ELSE 0.30000000 END;
$$;

-- A random account of the asset (the source included).
CREATE FUNCTION tap_pick(p_asset text) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT format('%s-%s', lower(p_asset),
                  CASE WHEN n = 19 THEN 'src' ELSE to_char(n, 'FM00') END)
      FROM (SELECT floor(random() * 20)::int AS n) r;
$$;

-- An amount as a leg carries it: a JSON number or a decimal string.
CREATE FUNCTION tap_json_amount(p_amount numeric) RETURNS jsonb
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN random() < 0.5 THEN to_jsonb(p_amount) ELSE to_jsonb(p_amount::text) END;
$$;

-- A transfer as legs: [{from, -amount}, {to, amount}].
CREATE FUNCTION tap_transfer_legs(p_asset text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_from text := tap_pick(p_asset);
    v_to text;
    v_amount numeric := tap_amount(p_asset, tap_max(p_asset));
BEGIN
    LOOP
        v_to := tap_pick(p_asset);
        EXIT WHEN v_to <> v_from;
    END LOOP;
    RETURN jsonb_build_array(
        jsonb_build_object('account', v_from, 'amount', (-v_amount)::text),
        jsonb_build_object('account', v_to, 'amount', v_amount::text));
END
$$;

-- k legs in one asset netting to zero: k-1 random signed amounts on random
-- accounts (repeats allowed), and a last leg that balances them.
CREATE FUNCTION tap_group(p_asset text, p_k int) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_legs jsonb;
    v_total numeric;
    v_amount numeric;
BEGIN
    LOOP
        v_legs := '[]';
        v_total := 0;
        FOR j IN 1 .. p_k - 1 LOOP
            v_amount := tap_amount(p_asset, tap_max(p_asset) / (p_k - 1));
            IF random() < 0.5 THEN
                v_amount := -v_amount;
            END IF;
            v_total := v_total + v_amount;
            v_legs := v_legs || jsonb_build_array(jsonb_build_object(
                'account', tap_pick(p_asset), 'amount', tap_json_amount(v_amount)));
        END LOOP;
        EXIT WHEN v_total <> 0;
    END LOOP;
    RETURN v_legs || jsonb_build_array(jsonb_build_object(
        'account', tap_pick(p_asset), 'amount', tap_json_amount(-v_total)));
END
$$;

-- 2-5 legs, shuffled; with 4 or 5 legs, often both assets (2+2 or 2+3).
CREATE FUNCTION tap_post_legs() RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n int := 2 + floor(random() * 4)::int;
    k int;
    v_legs jsonb;
BEGIN
    IF n >= 4 AND random() < 0.6 THEN
        k := 2 + floor(random() * (n - 3))::int;
        v_legs := tap_group('USD', k) || tap_group('BTC', n - k);
    ELSE
        v_legs := tap_group(tap_asset(), n);
    END IF;
    SELECT jsonb_agg(l ORDER BY random()) INTO v_legs FROM jsonb_array_elements(v_legs) l;
    RETURN v_legs;
END
$$;

-- The same request written differently: amounts with extra trailing zeros,
-- numbers as strings and strings as numbers; post legs in reverse order.
CREATE FUNCTION tap_rewrite(p_kind text, p_legs jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_agg(jsonb_build_object(
               'account', l->>'account',
               'amount', CASE WHEN jsonb_typeof(l->'amount') = 'number'
                              THEN to_jsonb(((l->>'amount')::numeric * 1.000)::text)
                              ELSE to_jsonb((l->>'amount')::numeric * 1.00) END)
           ORDER BY CASE WHEN p_kind = 'post' THEN -ord ELSE ord END)
      FROM jsonb_array_elements(p_legs) WITH ORDINALITY AS t(l, ord);
$$;

-- Net effect of legs per account.
CREATE FUNCTION tap_deltas(p_legs jsonb)
RETURNS TABLE (code text, delta numeric)
LANGUAGE sql STABLE AS $$
    SELECT l->>'account', sum((l->>'amount')::numeric)
      FROM jsonb_array_elements(p_legs) l
     GROUP BY 1;
$$;

-- Would the ledger accept these legs, given the model's balances?
CREATE FUNCTION tap_predict(p_legs jsonb) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM tap_deltas(p_legs) d JOIN tap_model m USING (code)
         WHERE d.delta < 0 AND m.floor IS NOT NULL AND m.bal + d.delta < m.floor);
$$;

CREATE FUNCTION tap_apply(p_legs jsonb) RETURNS void
LANGUAGE sql AS $$
    UPDATE tap_model m SET bal = m.bal + d.delta
      FROM tap_deltas(p_legs) d WHERE m.code = d.code;
$$;

-- Make one call.  Returns the transaction id, or NULL if the ledger refused
-- it with LD001.  Counts outcomes, and those the model did not predict.
-- p_replay: the key already has a transaction, so the call must return it
-- and change nothing, whatever the balances.
CREATE FUNCTION tap_run(p_kind text, p_legs jsonb, p_key text, p_meta jsonb,
                        p_replay boolean DEFAULT false)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_expect boolean := p_replay OR tap_predict(p_legs);
    v_id uuid;
BEGIN
    BEGIN
        IF p_kind = 'transfer' THEN
            v_id := ledger.transfer(p_legs->0->>'account', p_legs->1->>'account',
                                    (p_legs->1->>'amount')::numeric, p_key, p_meta);
        ELSE
            v_id := ledger.post(p_legs, p_key, p_meta);
        END IF;
    EXCEPTION WHEN SQLSTATE 'LD001' THEN
        PERFORM tap_count(CASE WHEN v_expect THEN 'unexpected_failure'
                               ELSE p_kind || '_failed' END);
        RETURN NULL;
    END;
    IF NOT v_expect THEN
        PERFORM tap_count('unexpected_success');
    END IF;
    IF p_replay THEN
        PERFORM tap_count('replay_ok');
    ELSE
        PERFORM tap_apply(p_legs);
        PERFORM tap_count(p_kind || '_ok');
        IF (SELECT count(DISTINCT m.asset) FROM tap_deltas(p_legs) d JOIN tap_model m USING (code)) > 1 THEN
            PERFORM tap_count('post_mixed_ok');
        END IF;
    END IF;
    RETURN v_id;
END
$$;

-- One attempt of a keyed request, written as p_legs (the stored legs or a
-- rewrite of them).
CREATE FUNCTION tap_idem_try(p_key text, p_legs jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r tap_idem;
    v_id uuid;
BEGIN
    SELECT * INTO STRICT r FROM tap_idem WHERE ikey = p_key;
    v_id := tap_run(r.kind, p_legs, p_key, r.meta, r.first_id IS NOT NULL);
    IF v_id IS NOT NULL AND r.first_id IS NULL AND r.attempts > 0 THEN
        PERFORM tap_count('idem_success_after_failure');
    END IF;
    UPDATE tap_idem
       SET attempts = attempts + 1,
           successes = successes + (v_id IS NOT NULL)::int,
           first_id = coalesce(first_id, v_id),
           mismatches = mismatches + (v_id IS NOT NULL AND first_id IS NOT NULL AND v_id <> first_id)::int
     WHERE ikey = p_key;
END
$$;

-- The same key for a different request must raise LD007 and write nothing.
CREATE FUNCTION tap_idem_conflict() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r tap_idem;
BEGIN
    SELECT * INTO r FROM tap_idem WHERE first_id IS NOT NULL ORDER BY random() LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    BEGIN
        IF r.kind = 'transfer' AND random() < 0.5 THEN
            -- another amount
            PERFORM ledger.transfer(r.legs->0->>'account', r.legs->1->>'account',
                                    2 * (r.legs->1->>'amount')::numeric, r.ikey, r.meta);
        ELSIF r.kind = 'transfer' THEN
            -- same legs, as a post: another kind of request
            PERFORM ledger.post(r.legs, r.ikey, r.meta);
        ELSE
            -- same legs, other metadata
            PERFORM ledger.post(r.legs, r.ikey, r.meta || '{"conflict": true}');
        END IF;
        PERFORM tap_count('idem_conflict_accepted');
    EXCEPTION WHEN SQLSTATE 'LD007' THEN
        PERFORM tap_count('idem_conflict');
    END;
END
$$;

CREATE PROCEDURE tap_workload(p_ops int)
LANGUAGE plpgsql AS $$
DECLARE
    r float8;
    v_kind text;
    v_legs jsonb;
    v_key text;
BEGIN
    FOR i IN 1 .. p_ops LOOP
        r := random();
        IF r < 0.45 THEN
            PERFORM tap_run('transfer', tap_transfer_legs(tap_asset()), NULL, '{}');
        ELSIF r < 0.88 THEN
            PERFORM tap_run('post', tap_post_legs(), NULL, jsonb_build_object('op', i));
        ELSIF r < 0.94 THEN
            -- a new keyed request
            v_kind := CASE WHEN random() < 0.5 THEN 'transfer' ELSE 'post' END;
            IF v_kind = 'transfer' THEN
                v_legs := tap_transfer_legs(tap_asset());
            ELSE
                v_legs := tap_post_legs();
            END IF;
            v_key := 'idem-' || nextval('tap_idem_seq');
            INSERT INTO tap_idem (ikey, kind, legs, meta)
            VALUES (v_key, v_kind, v_legs, jsonb_build_object('key', v_key, 'op', i));
            PERFORM tap_idem_try(v_key, v_legs);
        ELSIF r < 0.99 THEN
            -- a retry of an earlier keyed request, written differently
            SELECT ikey, kind, legs INTO v_key, v_kind, v_legs
              FROM tap_idem ORDER BY random() LIMIT 1;
            IF FOUND THEN
                IF random() < 0.5 THEN
                    v_legs := tap_rewrite(v_kind, v_legs);
                END IF;
                PERFORM tap_idem_try(v_key, v_legs);
            END IF;
        ELSE
            PERFORM tap_idem_conflict();
        END IF;
    END LOOP;
END
$$;

-- Invalidate a random transaction (force => false).  The ledger must refuse
-- it (LD015) exactly when reversing its legs would take a bounded account
-- below its floor, and lower than it was.
CREATE FUNCTION tap_invalidate_one() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_txn uuid;
    v_reverse jsonb;
    v_expect boolean;
    v_last bigint;
    v_from bigint;
BEGIN
    -- one time in three, a backdated transaction: a rebuild from a past day
    IF random() < 0.3 THEN
        SELECT max(j.id) INTO v_last FROM ledger.journal_entry j
          JOIN ledger.transaction t ON t.id = j.transaction_id
         WHERE t.metadata ? 'backdated';
    ELSE
        SELECT max(id) INTO v_last FROM ledger.journal_entry;
    END IF;
    v_from := floor(random() * v_last);
    SELECT j.transaction_id INTO v_txn
      FROM ledger.journal_entry j
     WHERE j.id >= v_from AND j.id <= v_last
       AND NOT j.is_invalidated
     ORDER BY j.id LIMIT 1;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT jsonb_agg(jsonb_build_object('account', a.code, 'amount', -j.amount) ORDER BY j.id)
      INTO v_reverse
      FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
     WHERE j.transaction_id = v_txn;
    v_expect := tap_predict(v_reverse);
    BEGIN
        PERFORM ledger.invalidate(v_txn, 'invariants test');
    EXCEPTION WHEN SQLSTATE 'LD015' THEN
        PERFORM tap_count(CASE WHEN v_expect THEN 'unexpected_failure' ELSE 'invalidate_refused' END);
        RETURN;
    END;
    IF NOT v_expect THEN
        PERFORM tap_count('unexpected_success');
    END IF;
    PERFORM tap_apply(v_reverse);
    PERFORM tap_count('invalidate_ok');
END
$$;

-- One exchange of a random bounded BTC account's BTC into a random bounded
-- USD account (not usd-00, the spread account), at the fixed rate, with a
-- random spread.  The model predicts LD001 exactly when the BTC account
-- would go below its floor; a success applies the journal's legs to it.
CREATE FUNCTION tap_exchange_one() RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_from text := format('btc-%s', to_char(floor(random() * 19)::int, 'FM00'));
    v_to text := format('usd-%s', to_char(1 + floor(random() * 18)::int, 'FM00'));
    v_amount numeric := tap_amount('BTC', tap_max('BTC') / 4);
    v_spread numeric := (ARRAY[0, 0.001, 0.0125, 0.05])[1 + floor(random() * 4)::int];
    v_expect boolean;
    v_txn uuid;
BEGIN
    SELECT m.bal - v_amount >= m.floor INTO v_expect FROM tap_model m WHERE m.code = v_from;
    BEGIN
        v_txn := ledger.exchange(v_from, v_to, v_amount, spread => v_spread);
    EXCEPTION WHEN SQLSTATE 'LD001' THEN
        PERFORM tap_count(CASE WHEN v_expect THEN 'unexpected_failure' ELSE 'exchange_failed' END);
        RETURN;
    END;
    IF NOT v_expect THEN
        PERFORM tap_count('unexpected_success');
    END IF;
    UPDATE tap_model m SET bal = m.bal + j.amount
      FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
     WHERE j.transaction_id = v_txn AND m.code = a.code;
    PERFORM tap_count('exchange_ok');
END
$$;

-- Setup: assets, accounts, initial funding from the sources.
DO $$
DECLARE
    v_asset text;
    v_code text;
    v_floor numeric;
    v_unit numeric;
    v_amount numeric;
    v_ts timestamptz;
    v_txn uuid;
BEGIN
    PERFORM setseed(0.4242);
    PERFORM ledger.create_asset('USD', 2);
    PERFORM ledger.create_asset('BTC', 8);
    FOREACH v_asset IN ARRAY ARRAY['USD', 'BTC'] LOOP
        v_unit := CASE v_asset WHEN 'USD' THEN 1 ELSE 0.001 END;
        v_code := lower(v_asset) || '-src';
        PERFORM ledger.create_account(v_code, v_asset, min_balance => NULL);
        INSERT INTO tap_model VALUES (v_code, v_asset, NULL);
        FOR n IN 0 .. 18 LOOP
            -- 00-13: floor 0; 14-18: overdraft down to -100 .. -500 units
            v_code := format('%s-%s', lower(v_asset), to_char(n, 'FM00'));
            v_floor := CASE WHEN n < 14 THEN 0 ELSE -(n - 13) * 100 * v_unit END;
            PERFORM ledger.create_account(v_code, v_asset, min_balance => v_floor);
            INSERT INTO tap_model VALUES (v_code, v_asset, v_floor);
        END LOOP;
    END LOOP;
    -- Backdated history, so that daily balances span several UTC days: the
    -- API stamps postings with the current time, so these are written
    -- directly (as the superuser), then ledger.rebuild_balances() computes
    -- account_balance and daily_balance from the journal.  Credits only, from
    -- the source, on about half the accounts each day for 10 days.
    FOR d IN REVERSE 10 .. 1 LOOP
        v_ts := (date_trunc('day', now() AT TIME ZONE 'UTC') - d * interval '1 day')
                AT TIME ZONE 'UTC' + interval '1 hour';
        FOR v_code, v_asset IN SELECT code, asset FROM tap_model WHERE floor IS NOT NULL ORDER BY code LOOP
            CONTINUE WHEN random() < 0.5;
            v_ts := v_ts + interval '1 minute';
            v_amount := tap_amount(v_asset, tap_max(v_asset) / 3);
            v_txn := ledger.new_id();
            INSERT INTO ledger.transaction (id, kind, metadata, created_at)
            VALUES (v_txn, 'transfer', '{"backdated": true}', v_ts);
            INSERT INTO ledger.journal_entry (transaction_id, account_id, amount, created_at)
            SELECT v_txn, a.id, x.amount, v_ts
              FROM (VALUES (lower(v_asset) || '-src', -v_amount), (v_code, v_amount)) x (code, amount)
              JOIN ledger.account a ON a.code = x.code;
            PERFORM tap_apply(jsonb_build_array(
                jsonb_build_object('account', lower(v_asset) || '-src', 'amount', -v_amount),
                jsonb_build_object('account', v_code, 'amount', v_amount)));
            PERFORM tap_count('backdated');
        END LOOP;
    END LOOP;
    PERFORM ledger.rebuild_balances();

    -- fund every bounded account from its source with up to 400 USD / 0.4 BTC
    FOR v_code, v_asset IN SELECT code, asset FROM tap_model WHERE floor IS NOT NULL ORDER BY code LOOP
        v_amount := tap_amount(v_asset, 4 * tap_max(v_asset) / 3);
        PERFORM tap_run('transfer', jsonb_build_array(
            jsonb_build_object('account', lower(v_asset) || '-src', 'amount', (-v_amount)::text),
            jsonb_build_object('account', v_code, 'amount', v_amount::text)), NULL, '{}');
    END LOOP;
END
$$;

-- The workload, in four transactions, then invalidations in a fifth.
CALL tap_workload(1000);
CALL tap_workload(1000);
CALL tap_workload(1000);
CALL tap_workload(1000);
-- Exchanges of BTC into USD at a fixed rate, with spreads (0.8.0).
SELECT ledger.set_exchange_accounts('BTC', 'btc-src');
SELECT ledger.set_exchange_accounts('USD', 'usd-src', 'usd-00');
SELECT ledger.set_exchange_rate('BTC', 'USD', 30123.45678901) > 0;
DO $$ BEGIN FOR i IN 1 .. 300 LOOP PERFORM tap_exchange_one(); END LOOP; END $$;
-- Then some invalidations, after every posting: the journal's history in id
-- order is the history the postings applied.
DO $$ BEGIN FOR i IN 1 .. 150 LOOP PERFORM tap_invalidate_one(); END LOOP; END $$;

SELECT plan(35);

SELECT diag(string_agg(format('%s = %s', name, n), ', ' ORDER BY name)) FROM tap_stats;

/*
 * The workload did what it is meant to exercise.
 */
SELECT ok(tap_stat('transfer_ok') > 100, 'many transfers succeeded');
SELECT ok(tap_stat('transfer_failed') > 10, 'some transfers failed with insufficient funds (LD001)');
SELECT ok(tap_stat('post_ok') > 100, 'many multi-leg posts succeeded');
SELECT ok(tap_stat('post_failed') > 10, 'some multi-leg posts failed with insufficient funds (LD001)');
SELECT ok(tap_stat('post_mixed_ok') > 10, 'some posts mixing USD and BTC succeeded');
SELECT ok(EXISTS (
    SELECT 1
      FROM (SELECT j.account_id,
                   sum(sum(j.amount)) OVER (PARTITION BY j.account_id ORDER BY min(j.id)) AS running
              FROM ledger.journal_entry j
             GROUP BY j.account_id, j.transaction_id) r
      JOIN ledger.account a ON a.id = r.account_id
     WHERE a.min_balance < 0 AND r.running < 0),
    'some overdraft account went below zero');

/*
 * Every call failed exactly when a debit would have crossed a floor.
 */
SELECT is(tap_stat('unexpected_failure'), 0::bigint,
          'no call failed (LD001, or LD015 for invalidate) that the balance model says keeps every account above its floor');
SELECT is(tap_stat('unexpected_success'), 0::bigint,
          'no call succeeded that the balance model says takes an account below its floor');
SELECT results_eq(
    $$SELECT a.code, b.balance FROM ledger.account a
        JOIN ledger.account_balance b ON b.account_id = a.id ORDER BY a.code$$,
    $$SELECT code, bal FROM tap_model ORDER BY code$$,
    'every account_balance equals the balance the model computed from the successful calls');

/*
 * Balances are the journal.
 */
SELECT results_eq(
    $$SELECT a.id, b.balance FROM ledger.account a
        LEFT JOIN ledger.account_balance b ON b.account_id = a.id ORDER BY a.id$$,
    $$SELECT a.id, coalesce(sum(j.amount) FILTER (WHERE NOT j.is_invalidated), 0)
        FROM ledger.account a LEFT JOIN ledger.journal_entry j ON j.account_id = a.id
       GROUP BY a.id ORDER BY a.id$$,
    'every account''s balance equals the sum of its non-invalidated journal entries');
SELECT results_eq(
    $$SELECT a.code, ledger.balance(a.code) FROM ledger.account a ORDER BY a.code$$,
    $$SELECT a.code, b.balance FROM ledger.account a
        JOIN ledger.account_balance b ON b.account_id = a.id ORDER BY a.code$$,
    'ledger.balance() returns account_balance for every account');
SELECT results_eq(
    $$SELECT a.asset, sum(b.balance) FROM ledger.account a
        JOIN ledger.account_balance b ON b.account_id = a.id GROUP BY a.asset ORDER BY a.asset$$,
    $$VALUES ('BTC'::text, 0::numeric), ('USD', 0)$$,
    'the balances of each asset sum to zero');
SELECT is_empty(
    $$SELECT j.transaction_id, a.asset, sum(j.amount)
        FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
       GROUP BY j.transaction_id, a.asset HAVING sum(j.amount) <> 0$$,
    'every transaction''s journal entries net to zero in each asset');
SELECT is_empty(
    $$SELECT t.id, count(j.id) FROM ledger.transaction t
        LEFT JOIN ledger.journal_entry j ON j.transaction_id = t.id
       GROUP BY t.id HAVING count(j.id) < 2$$,
    'every transaction has at least two journal entries');
SELECT is_empty(
    $$SELECT j.id FROM ledger.journal_entry j
       WHERE NOT EXISTS (SELECT 1 FROM ledger.transaction t WHERE t.id = j.transaction_id)
          OR NOT EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = j.account_id)$$,
    'every journal entry belongs to a transaction and an account');
SELECT is((SELECT count(*) FROM ledger.transaction),
          tap_stat('transfer_ok') + tap_stat('post_ok') + tap_stat('backdated') + tap_stat('exchange_ok'),
          'one transaction per successful call (first use of a key included), none for failed calls or replays');
SELECT is_empty(
    $$SELECT id, prev_id FROM (
        SELECT t.id, lag(t.id) OVER (ORDER BY min(j.id)) AS prev_id
          FROM ledger.transaction t JOIN ledger.journal_entry j ON j.transaction_id = t.id
         GROUP BY t.id) x
       WHERE id <= prev_id$$,
    'transaction ids (UUIDv7) strictly increase in the order one session posted them');
SELECT is_empty(
    $$SELECT j.id, j.amount, s.scale FROM ledger.journal_entry j
        JOIN ledger.account a ON a.id = j.account_id
        JOIN ledger.asset s ON s.code = a.asset
       WHERE j.amount = 0 OR j.amount <> round(j.amount, s.scale)$$,
    'every journal amount is non-zero and within its asset''s scale');

/*
 * Floors.
 */
SELECT is_empty(
    $$SELECT a.code, b.balance, a.min_balance FROM ledger.account a
        JOIN ledger.account_balance b ON b.account_id = a.id
       WHERE b.balance < a.min_balance$$,
    'no account is below its min_balance');
SELECT is_empty(
    $$SELECT a.code, r.transaction_id, r.running, a.min_balance
        FROM (SELECT j.account_id, j.transaction_id,
                     sum(sum(j.amount)) OVER (PARTITION BY j.account_id ORDER BY min(j.id)) AS running
                FROM ledger.journal_entry j
               GROUP BY j.account_id, j.transaction_id) r
        JOIN ledger.account a ON a.id = r.account_id
       WHERE r.running < a.min_balance$$,
    'no posting left an account below its min_balance (running sum of the journal in id order, invalidated entries included: they were invalidated after every posting)');

/*
 * Daily balances: per account and UTC day, debits, credits and the closing
 * balance, as the journal says.
 */
SELECT cmp_ok((SELECT count(DISTINCT day) FROM ledger.daily_balance), '>=', 10::bigint,
              'daily balances span at least ten UTC days');
SELECT results_eq(
    $$SELECT account_id, day, debits, credits, balance FROM ledger.daily_balance ORDER BY 1, 2$$,
    $$WITH e AS (SELECT account_id, (created_at AT TIME ZONE 'UTC')::date AS day, amount
                   FROM ledger.journal_entry WHERE NOT is_invalidated)
      SELECT d.account_id, d.day,
             (SELECT coalesce(sum(-e.amount), 0) FROM e
               WHERE e.account_id = d.account_id AND e.day = d.day AND e.amount < 0),
             (SELECT coalesce(sum(e.amount), 0) FROM e
               WHERE e.account_id = d.account_id AND e.day = d.day AND e.amount > 0),
             (SELECT coalesce(sum(e.amount), 0) FROM e
               WHERE e.account_id = d.account_id AND e.day <= d.day)
        FROM ledger.daily_balance d ORDER BY 1, 2$$,
    'every daily_balance row has the debits, credits and closing balance of the journal for its account and UTC day');
SELECT is_empty(
    $$SELECT DISTINCT j.account_id, (j.created_at AT TIME ZONE 'UTC')::date
        FROM ledger.journal_entry j
       WHERE NOT j.is_invalidated
         AND NOT EXISTS (SELECT 1 FROM ledger.daily_balance d
                          WHERE d.account_id = j.account_id
                            AND d.day = (j.created_at AT TIME ZONE 'UTC')::date)$$,
    'no daily_balance row is missing for an account and UTC day with journal entries');
SELECT is_empty(
    $$SELECT d.account_id, d.day FROM ledger.daily_balance d
       WHERE NOT EXISTS (SELECT 1 FROM ledger.journal_entry j
                          WHERE j.account_id = d.account_id AND NOT j.is_invalidated
                            AND (j.created_at AT TIME ZONE 'UTC')::date = d.day)$$,
    'no daily_balance row exists for an account and UTC day without non-invalidated journal entries');

/*
 * Idempotency keys.
 */
SELECT ok((SELECT count(*) FROM tap_idem WHERE successes >= 2) > 10
          AND tap_stat('replay_ok') > 10 AND tap_stat('idem_conflict') > 0,
          'keyed requests were replayed after succeeding, and keys were reused for other requests');
SELECT results_eq(
    $$SELECT ikey, first_id FROM tap_idem WHERE first_id IS NOT NULL ORDER BY ikey$$,
    $$SELECT idempotency_key, id FROM ledger.transaction
       WHERE idempotency_key IS NOT NULL ORDER BY idempotency_key$$,
    'each key that ever succeeded has exactly one transaction, with the id of its first success; keys that never succeeded have none');
SELECT is((SELECT sum(mismatches) FROM tap_idem), 0::bigint,
          'every successful retry of a key returned the original transaction id');
SELECT is(tap_stat('idem_conflict_accepted'), 0::bigint,
          'reusing a key for a different request never succeeded (LD007 every time)');
SELECT is_empty(
    $$SELECT i.ikey, count(j.id), jsonb_array_length(i.legs)
        FROM tap_idem i JOIN ledger.journal_entry j ON j.transaction_id = i.first_id
       GROUP BY i.ikey, i.legs HAVING count(j.id) <> jsonb_array_length(i.legs)$$,
    'the transaction of each key has one journal entry per leg, however often it was retried');

/*
 * Invalidations, and the extension's own checker.
 */
SELECT ok(tap_stat('invalidate_ok') > 10 AND tap_stat('invalidate_refused') > 0,
          'some invalidations went through and some were refused with LD015');
SELECT is_empty(
    $$SELECT t.id FROM ledger.transaction t JOIN ledger.journal_entry j ON j.transaction_id = t.id
       WHERE j.is_invalidated <> t.is_invalidated$$,
    'a transaction and its journal entries are invalidated together');
SELECT is((SELECT count(*) FROM ledger.transaction WHERE is_invalidated), tap_stat('invalidate_ok'),
          'one invalidated transaction per successful invalidate, none for refused ones');
SELECT ok(tap_stat('exchange_ok') > 100, 'many exchanges succeeded');
SELECT is_empty(
    $$SELECT k.id FROM ledger.token_transaction k
        JOIN ledger.asset q ON q.code = k.quote_asset
       WHERE NOT k.is_invalidated
         AND (k.quote_amount <> trunc(k.token_amount * k.rate, q.scale)
              OR k.spread_amount <> trunc(k.quote_amount * k.spread, q.scale)
              OR (SELECT sum(j.amount) FROM ledger.journal_entry j
                   WHERE j.transaction_id = k.transaction_id AND j.account_id = k.account_id)
                 <> -k.token_amount
              OR (SELECT sum(j.amount) FROM ledger.journal_entry j
                   WHERE j.transaction_id = k.transaction_id AND j.account_id = k.to_account_id)
                 <> k.quote_amount - k.spread_amount)$$,
    'every token row matches its legs: quote = token amount x rate cut to the quote scale, spread = quote x spread cut, the customer legs -token amount and +quote - spread');
SELECT is_empty($$SELECT * FROM ledger.reconcile(repair => false)$$,
                'ledger.reconcile(repair => false) finds no mismatch');

SELECT * FROM finish();
