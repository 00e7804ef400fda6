-- calls: a ledger function called with a binary float where an amount
-- belongs, or with text, json or an array where post's legs belong, gets
-- LD005 or LD012 with the structured facts instead of PostgreSQL's
-- "function ... does not exist" (src/callerror.c).  Every other failed
-- lookup keeps 42883.
SELECT ledger.create_asset('CLL', 2);
SELECT ledger.create_account('call-a', 'CLL', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('call-b', 'CLL') > 0 AS ok;

-- amounts: double precision and real, positional and named
SELECT ledger.transfer('call-a', 'call-b', 10.25::double precision);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.transfer('call-a', 'call-b', 0.1::real, 'key-1');
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.transfer(from_account => 'call-a', to_account => 'call-b', amount => 1::float8);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.hold('call-a', 5::float8, 'call-b');
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.capture('00000000-0000-0000-0000-000000000000', 1.5::float4);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.exchange('call-a', 'call-b', 2.5::float8);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.exchange('call-a', 'call-b', 2.5, spread => 0.01::float8);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.create_account('call-c', 'CLL', 0::float8);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.set_exchange_rate('CLL', 'XXX', 1.1::float8);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.set_rate_limit('postgres', 10::float8, 5);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ledger.transfer_batch(ARRAY['call-a'], ARRAY['call-b'], ARRAY[1.5::float8]);
\echo :LAST_ERROR_SQLSTATE

-- legs: a text array, text, json
SELECT ledger.post(ARRAY['{"account": "c-a", "amount": "-1"}', '{"account": "c-b", "amount": "1"}']);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.post('[]'::text);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.post('[]'::json, 'key-2');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ledger.post_batch(ARRAY['[]']);
\echo :LAST_ERROR_SQLSTATE

-- a language array that a driver sent as an array literal of JSON texts
SELECT ledger.post('{"{\"account\": \"call-a\", \"amount\": \"-1\"}","{\"account\": \"call-b\", \"amount\": \"1\"}"}');
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM ledger.post_batch('{"{\"legs\": []}"}');
\echo :LAST_ERROR_SQLSTATE
-- other malformed JSON keeps 22P02
SELECT ledger.post('{"account" 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.transfer('call-a', 'call-b', 1, metadata => '{"{\"x\": 1}"}');
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.post('[]', NULL, '{"{\"x\": 1}"}');
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.post(legs => '{"{\"account\": \"call-a\"}"}');
\echo :LAST_ERROR_SQLSTATE

-- unchanged: the right types pass; other lookups keep 42883
SELECT ledger.transfer('call-a', 'call-b', 10.25) IS NOT NULL AS ok;
SELECT ledger.transfer('call-a', 'call-b', 1) IS NOT NULL AS ok;
SELECT ledger.transfer('call-a', 'call-b', '0.75'::text::numeric) IS NOT NULL AS ok;
SELECT ledger.no_such_function(1.5::float8);
\echo :LAST_ERROR_SQLSTATE
SELECT ledger.transfer('call-a', 1.5::float8);
\echo :LAST_ERROR_SQLSTATE
-- too few arguments besides the float: the float is not the only problem
SELECT ledger.set_rate_limit('postgres', 10::float8);
\echo :LAST_ERROR_SQLSTATE
-- DDL naming a signature, and a schema whose name only ends in ledger
DROP FUNCTION ledger.transfer(text, text, double precision);
\echo :LAST_ERROR_SQLSTATE
CREATE SCHEMA general_ledger;
SELECT general_ledger.transfer('call-a', 'call-b', 1::float8);
\echo :LAST_ERROR_SQLSTATE
DROP SCHEMA general_ledger;
SELECT ledger.transfer('call-a', 'call-b', 1.5::float8::numeric) IS NOT NULL AS explicit_cast_ok;
SELECT balance FROM ledger.account_balance b JOIN ledger.account a ON a.id = b.account_id
 WHERE a.code = 'call-b';

-- nothing was written by the refused calls: the four transfers above
SELECT count(*) FROM ledger.transaction t
  JOIN ledger.journal_entry j ON j.transaction_id = t.id
  JOIN ledger.account a ON a.id = j.account_id
 WHERE a.code = 'call-b';

-- the rewrite is for what reaches the client: a PL/pgSQL handler still
-- sees the original 42883 (README, "Errors")
DO $$
BEGIN
    PERFORM ledger.transfer('call-a', 'call-b', 1::float8);
EXCEPTION WHEN undefined_function THEN
    RAISE NOTICE 'caught %', SQLSTATE;
END
$$;
