-- facts: every LD error a caller can cause ends its DETAIL with a line of
-- structured facts, a JSON object with "sqlstate" and the error's facts
-- (README, "Errors").  facts() runs a statement and returns that object,
-- with the values that differ from run to run (ids, times, waits)
-- replaced by their key's name; NULL if the statement succeeded.
CREATE FUNCTION public.facts(stmt text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    det text;
    f jsonb;
BEGIN
    EXECUTE stmt;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    f := substring(det FROM '(?:^|\n)(\{[^\n]*\})$')::jsonb;
    RETURN (SELECT jsonb_object_agg(key,
                     CASE WHEN key IN ('original_id', 'hold_id', 'transaction_id', 'observed_at',
                                       'age_ms', 'retry_after_ms', 'row_id') AND value <> 'null'::jsonb
                          THEN to_jsonb('<' || key || '>') ELSE value END)
              FROM jsonb_each(f));
END
$$;

SELECT ledger.create_asset('FCT', 2);
SELECT ledger.create_asset('FCE', 18);
SELECT ledger.create_account('f-world', 'FCT', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('f-a', 'FCT', owner_id => 'owner-f') > 0 AS ok;
SELECT ledger.create_account('f-b', 'FCT') > 0 AS ok;
SELECT ledger.create_account('f-e', 'FCE') > 0 AS ok;
SELECT ledger.transfer('f-world', 'f-a', 100) IS NOT NULL AS funded;

-- LD001: the same keys for a debit and for a hold (which counts holds)
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 500)$$);
SELECT ledger.hold(from_account => 'f-a', amount => 60, to_account => 'f-b') IS NOT NULL AS held;
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 50)$$);
SELECT facts($$SELECT ledger.hold(from_account => 'f-a', amount => 50, to_account => 'f-b')$$);
-- LD002, LD003, LD004
SELECT facts($$SELECT ledger.transfer('f-a', 'f-nope', 1)$$);
SELECT facts($$SELECT ledger.create_account('f-x', 'NOPE')$$);
SELECT facts($$SELECT ledger.transfer('f-a', 'f-e', 1)$$);
-- LD005, by reason
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 0)$$);
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', -1)$$);
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 'NaN')$$);
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 0.001)$$);
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 1e30)$$);
SELECT facts($$SELECT ledger.post('[{"account": "f-a", "amount": "1x"}, {"account": "f-b", "amount": "1"}]')$$);
-- LD006
SELECT facts($$UPDATE ledger.journal_entry SET amount = 0$$);
-- LD007: names the original
SELECT ledger.transfer('f-a', 'f-b', 1, idempotency_key => 'f-key') IS NOT NULL AS keyed;
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 2, idempotency_key => 'f-key')$$);
-- LD008, LD009, LD010
SELECT facts($$SELECT ledger.post('[{"account": "f-a", "amount": "-1"}, {"account": "f-b", "amount": "2"}]')$$);
SELECT facts($$SELECT ledger.create_account('f-a', 'FCT')$$);
SELECT facts($$SELECT ledger.create_asset('FCT', 2)$$);
-- LD011: a NULL, a long code, a control character
SELECT facts($$SELECT ledger.transfer(NULL, 'f-b', 1)$$);
SELECT facts($$SELECT ledger.transfer(repeat('x', 300), 'f-b', 1)$$);
SELECT facts($$SELECT ledger.transfer(E'f\x01a', 'f-b', 1)$$);
-- LD012
SELECT facts($$SELECT ledger.post('[{"account": "f-a", "amount": "-1"}]')$$);
-- LD013, LD014
SELECT facts($$SELECT * FROM ledger.invalidate(ledger.new_id(), 'no such')$$);
SELECT ledger.transfer('f-b', 'f-a', 1) AS tx \gset
SELECT count(*) > 0 AS invalidated FROM ledger.invalidate(:'tx', 'test');
SELECT facts(format($$SELECT * FROM ledger.invalidate(%L, 'again')$$, :'tx'));
-- LD023..LD027: holds
SELECT facts($$SELECT ledger.void(ledger.new_id(), 'no such')$$);
SELECT ledger.hold(from_account => 'f-a', amount => 5, to_account => 'f-b') AS h \gset
SELECT ledger.void(:'h', 'test') AS released;
SELECT facts(format($$SELECT ledger.void(%L, 'again')$$, :'h'));
SELECT ledger.hold(from_account => 'f-a', amount => 5, to_account => 'f-b') AS h2 \gset
SELECT facts(format($$SELECT ledger.capture(%L, 6)$$, :'h2'));
SELECT ledger.hold(from_account => 'f-a', amount => 1, mode => 'shared') AS h3 \gset
SELECT facts(format($$SELECT ledger.capture(%L)$$, :'h3'));
SELECT ledger.set_account_limits('f-a', 3);
SELECT facts($$SELECT ledger.hold(from_account => 'f-a', amount => 1, to_account => 'f-b')$$);
-- LD039, LD040: the acting owner
BEGIN;
SET LOCAL ledger.acting_owner = 'owner-other';
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 1)$$);
COMMIT;
SET ledger.require_acting_owner = on;
SELECT facts($$SELECT ledger.transfer('f-a', 'f-b', 1)$$);
RESET ledger.require_acting_owner;
-- LD041: a role over its rate limit is told when to retry
CREATE ROLE f_limited;
GRANT ledger_writer TO f_limited;
SELECT ledger.set_rate_limit('f_limited', 0.001, 1);
SET ROLE f_limited;
SELECT ledger.transfer('f-world', 'f-b', 1) IS NOT NULL AS within_burst;
SELECT facts($$SELECT ledger.transfer('f-world', 'f-b', 1)$$);
RESET ROLE;
SELECT ledger.remove_rate_limit('f_limited');
DROP ROLE f_limited;
-- LD015: an invalidation that would leave an account below its floor
SELECT ledger.create_account('f-c', 'FCT') > 0 AS ok;
SELECT ledger.transfer('f-world', 'f-c', 30) AS dep \gset
SELECT ledger.transfer('f-c', 'f-b', 20) IS NOT NULL AS spent;
SELECT facts(format($$SELECT * FROM ledger.invalidate(%L, 'undo the deposit')$$, :'dep'));
-- LD029: a capture's transaction
SELECT ledger.capture(:'h2', 1) AS cap \gset
SELECT facts(format($$SELECT * FROM ledger.invalidate(%L, 'undo the capture')$$, :'cap'));
-- LD017, LD021: what this database lacks
SELECT facts($$SELECT ledger.schedule_reconciliation()$$);
SELECT facts($$SELECT ledger.set_account_mode('f-b', 'hot')$$);
-- LD030: a bad statement record
SELECT facts($$SELECT ledger.import_statement('psp', '[{"external_ref": ""}]')$$);
-- LD034: waiting for events this transaction appended
BEGIN;
SELECT ledger.append_event('f-stream', 'transfer',
       jsonb_build_object('from_account', 'f-world', 'to_account', 'f-b', 'amount', '1.00')) IS NOT NULL AS appended;
SELECT facts($$SELECT ledger.catch_up('f-stream')$$);
ROLLBACK;
-- LD036, LD037, LD038: exchanges
SELECT ledger.create_account('f-eworld', 'FCE', min_balance => NULL) > 0 AS ok;
SELECT facts($$SELECT ledger.exchange('f-a', 'f-e', 1)$$);
SELECT ledger.set_exchange_accounts('FCT', 'f-world');
SELECT ledger.set_exchange_accounts('FCE', 'f-eworld');
SELECT facts($$SELECT ledger.exchange('f-a', 'f-e', 1)$$);
SELECT facts($$SELECT ledger.set_exchange_rate('FCT', 'FCT', 1)$$);
-- every LD error carries at least its SQLSTATE, also those of other calls
SELECT facts($$SELECT ledger.acknowledge_alert(-1)$$);
SELECT facts($$SELECT ledger.outbox_ack(-1)$$);
SELECT facts($$SELECT ledger.append_event('s', 'no_such_type', '{}')$$);
