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
SELECT ledger.balance('sp-a') AS a, ledger.balance('sp-b') AS b;
SELECT count(*) AS clean FROM ledger.reconcile(repair => false);
DROP SCHEMA evil CASCADE;
