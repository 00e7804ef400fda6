-- search_path: transfer and post run without a pinned search_path (it would
-- cost a fifth of a posting); a hostile search_path must not change what
-- their statements mean, even when their plans are first prepared under it.
CREATE SCHEMA evil;
CREATE FUNCTION evil.num_add(numeric, numeric) RETURNS numeric
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked numeric +'; END $$;
CREATE OPERATOR evil.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.num_add);
CREATE FUNCTION evil.num_ge(numeric, numeric) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked numeric >='; END $$;
CREATE OPERATOR evil.>= (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.num_ge);
CREATE FUNCTION evil.txt_eq(text, text) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked text ='; END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.txt_eq);
CREATE FUNCTION evil.int_eq(bigint, bigint) RETURNS boolean
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked bigint ='; END $$;
CREATE OPERATOR evil.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.int_eq);
CREATE FUNCTION evil.now() RETURNS timestamptz
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked now()'; END $$;
SELECT ledger.create_asset('SPX', 2);
SELECT ledger.create_account('sp-world', 'SPX', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('sp-a', 'SPX') > 0 AS ok;
SELECT ledger.create_account('sp-b', 'SPX') > 0 AS ok;

-- a fresh backend, so that the posting plans are prepared under the hostile path
\c
SET search_path = evil, pg_catalog, public;
-- the attack is real for unqualified SQL
SELECT 1.0::numeric + 2.0::numeric AS hijacked;
-- the posting API is not affected (plain calls: any helper would be hijacked)
SELECT ledger.transfer('sp-world', 'sp-a', 10) IS NOT NULL AS funded;
SELECT ledger.transfer('sp-a', 'sp-b', 2.50, idempotency_key => 'sp-1') AS first \gset
SELECT ledger.transfer('sp-a', 'sp-b', 2.50, idempotency_key => 'sp-1') OPERATOR(pg_catalog.=) :'first' AS same_id;
SELECT ledger.post('[{"account": "sp-b", "amount": "-1"}, {"account": "sp-a", "amount": "1"}]') IS NOT NULL AS posted;
SELECT ledger.transfer('sp-b', 'sp-a', 100);
RESET search_path;

-- pg_temp, searched first: temporary tables and views named like the
-- ledger's, a temporary type named like a built-in one, temporary
-- functions and operators.  A rate limit makes the first posting reload
-- the limits under this path too.
CREATE ROLE sp_limited NOLOGIN;
SELECT ledger.set_rate_limit('sp_limited', 1000, 1000);
\c
CREATE TEMP TABLE account (id bigint, code text, asset text, owner_id text, min_balance numeric);
INSERT INTO account VALUES (1, 'sp-a', 'SPX', 'evil', -1000000);
CREATE TEMP TABLE transaction (id uuid, kind text, metadata jsonb, idempotency_key text,
                               idempotency_scope text, request_hash bytea);
CREATE TEMP VIEW journal_entry AS SELECT 1::bigint AS id, 1::bigint AS account_id, 0::numeric AS amount;
CREATE TEMP VIEW account_balance AS SELECT 1::bigint AS account_id, 1e9::numeric AS balance;
CREATE TEMP TABLE rate_limit (role_name name, per_second numeric, burst int, per_owner boolean);
CREATE TYPE pg_temp.float8 AS (hijacked int);
CREATE TYPE pg_temp.jsonb AS (hijacked int);
CREATE FUNCTION pg_temp.now() RETURNS timestamptz
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked pg_temp.now()'; END $$;
CREATE FUNCTION pg_temp.tmp_add(numeric, numeric) RETURNS numeric
    LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'hijacked pg_temp +'; END $$;
CREATE OPERATOR pg_temp.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = pg_temp.tmp_add);
SET search_path = pg_temp, evil, pg_catalog, public;
-- the attack is real for unqualified SQL
SELECT count(*) AS temp_rows_shadow_the_ledger FROM account;
SELECT ledger.transfer('sp-a', 'sp-b', 1.25, idempotency_key => 'sp-2') AS second \gset
SELECT ledger.transfer('sp-a', 'sp-b', 1.25, idempotency_key => 'sp-2') OPERATOR(pg_catalog.=) :'second' AS same_id;
SELECT ledger.post('[{"account": "sp-b", "amount": "-0.25"}, {"account": "sp-a", "amount": "0.25"}]', 'sp-3') IS NOT NULL AS posted;
SELECT ledger.transfer('sp-b', 'sp-a', 100);
RESET search_path;
SELECT role, burst FROM ledger.rate_limits WHERE role = 'sp_limited';
SELECT ledger.remove_rate_limit('sp_limited');
DROP ROLE sp_limited;
SELECT ledger.balance('sp-a') AS a, ledger.balance('sp-b') AS b;
SELECT count(*) AS clean FROM ledger.reconcile(repair => false);
DROP SCHEMA evil CASCADE;
