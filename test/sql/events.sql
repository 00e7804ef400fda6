-- events: append_event accepts a request with one insert, apply_events
-- applies accepted events in order; every type end to end, refusals
-- recorded and alerted, idempotent appends, bad payloads.
SELECT ledger.create_account('e-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('e-alice', 'USD', owner_id => 'user-alice') > 0 AS ok;
SELECT ledger.create_account('e-bob', 'USD') > 0 AS ok;
SELECT ledger.apply_events() AS applied_nothing_yet;

-- every type, in one batch, applied in order
SELECT ledger.append_event('e-alice', 'transfer',
    '{"from_account": "e-world", "to_account": "e-alice", "amount": "100.00", "idempotency_key": "ev-dep-1"}') IS NOT NULL AS transfer;
SELECT ledger.append_event('e-alice', 'post',
    '{"legs": [{"account": "e-alice", "amount": "-10.00"}, {"account": "e-bob", "amount": "10.00"}], "metadata": {"memo": "lunch"}}') IS NOT NULL AS post;
SELECT ledger.append_event('e-alice', 'hold',
    '{"from_account": "e-alice", "amount": "30.00", "to_account": "e-bob", "idempotency_key": "ev-hold-1", "external_ref": "ev-psp-1"}') IS NOT NULL AS hold;
SELECT ledger.append_event('e-alice', 'hold',
    '{"from_account": "e-alice", "amount": "5.00", "mode": "shared", "submit_within": "1 hour", "idempotency_key": "ev-hold-2"}') IS NOT NULL AS shared_hold;
SELECT ledger.apply_events() AS applied;
SELECT code, balance, held_exclusive, held_shared FROM ledger.account_overview
 WHERE code LIKE 'e-%' ORDER BY code;
SELECT id AS hold1 FROM ledger.hold WHERE idempotency_key = 'ev-hold-1' \gset
SELECT id AS hold2 FROM ledger.hold WHERE idempotency_key = 'ev-hold-2' \gset
SELECT ledger.append_event('e-alice', 'mark_submitted', jsonb_build_object('hold_id', :'hold1')) IS NOT NULL AS mark_submitted;
SELECT ledger.append_event('e-alice', 'capture', jsonb_build_object('hold_id', :'hold1', 'amount', '20.00', 'idempotency_key', 'ev-cap-1')) IS NOT NULL AS capture;
SELECT ledger.append_event('e-alice', 'void', jsonb_build_object('hold_id', :'hold1', 'reason', 'rest not needed')) IS NOT NULL AS void;
SELECT ledger.append_event('e-alice', 'void', jsonb_build_object('hold_id', :'hold2', 'reason', 'done')) IS NOT NULL AS void_shared;
SELECT ledger.apply_events() AS applied;
SELECT state, captured, remaining FROM ledger.holds WHERE id IN (:'hold1', :'hold2') ORDER BY amount DESC;
SELECT t.id AS lunch FROM ledger.transaction t WHERE t.metadata ->> 'memo' = 'lunch' \gset
SELECT ledger.append_event('e-alice', 'invalidate', jsonb_build_object('transaction_id', :'lunch', 'reason', 'duplicate')) IS NOT NULL AS invalidate;
SELECT ledger.apply_events() AS applied;
SELECT code, balance, held_exclusive, held_shared FROM ledger.account_overview
 WHERE code LIKE 'e-%' ORDER BY code;
SELECT name, applied, rejected FROM ledger.projection;

-- refusals: recorded with their SQLSTATE, alerted (naming the stream's
-- account and owner), and the pointer moves on to the next event
SELECT ledger.append_event('e-alice', 'transfer', '{"from_account": "e-alice", "to_account": "e-bob", "amount": "1000.00"}') IS NOT NULL AS too_much;
SELECT ledger.append_event('e-alice', 'capture', jsonb_build_object('hold_id', :'hold1')) IS NOT NULL AS capture_voided;
SELECT ledger.append_event('e-alice', 'transfer', '{"from_account": "e-nobody", "to_account": "e-bob", "amount": "1.00"}') IS NOT NULL AS unknown_account;
SELECT ledger.append_event('e-alice', 'transfer', '{"from_account": "e-alice", "to_account": "e-bob", "amount": "abc"}') IS NOT NULL AS bad_amount;
SELECT ledger.append_event('e-alice', 'transfer', '{"from_account": "e-alice", "to_account": "e-bob", "amount": "1.00"}') IS NOT NULL AS fine;
SELECT ledger.apply_events() AS applied;
SELECT e.type, r.sqlstate, regexp_replace(r.message, '[0-9a-f-]{36}', '<id>') AS message
  FROM ledger.event_rejection r JOIN ledger.event e USING (seq) ORDER BY r.seq;
SELECT kind, account, owner_id, details ->> 'sqlstate' AS sqlstate, details ->> 'type' AS type
  FROM ledger.alert WHERE kind = 'event_rejected' ORDER BY id;
SELECT name, applied, rejected FROM ledger.projection;
SELECT ledger.balance('e-bob') AS bob;
SELECT events, seconds >= 0 AS seconds_known FROM ledger.projection_lag();
SELECT ledger.event_horizon() = (SELECT max(seq) FROM ledger.event) AS horizon_at_the_last_event;

-- idempotent appends: the same request returns the same event
SELECT ledger.append_event('e-bob', 'transfer', '{"from_account": "e-world", "to_account": "e-bob", "amount": "1.00"}', 'ev-key-1') AS k1 \gset
SELECT ledger.append_event('e-bob', 'transfer', '{"to_account": "e-bob", "from_account": "e-world", "amount": "1.00"}', 'ev-key-1') = :'k1' AS same_event;
SELECT count(*) AS events_for_key FROM ledger.event WHERE idempotency_key = 'ev-key-1';
SELECT regexp_replace(try($$SELECT ledger.append_event('e-bob', 'transfer', '{"from_account": "e-world", "to_account": "e-bob", "amount": "2.00"}', 'ev-key-1')$$),
                      '[0-9a-f-]{36}', '<id>') AS try;
SELECT ledger.apply_events() AS applied;

-- bad payloads and arguments: refused at append, nothing written
SELECT count(*) AS events FROM ledger.event \gset before_
SELECT try($$SELECT ledger.append_event(NULL, 'transfer', '{}')$$);
SELECT try($$SELECT ledger.append_event('s', NULL, '{}')$$);
SELECT try($$SELECT ledger.append_event('s', 'transfer', NULL)$$);
SELECT try($$SELECT ledger.append_event('s', 'refund', '{}')$$);
SELECT try($$SELECT ledger.append_event('s', 'transfer', '[]')$$);
SELECT try($$SELECT ledger.append_event('s', 'transfer', '{"from_account": "a", "to_account": "b"}')$$);
SELECT try($$SELECT ledger.append_event('s', 'transfer', '{"from_account": "a", "to_account": "b", "amount": 10}')$$);
SELECT try($$SELECT ledger.append_event('s', 'transfer', '{"from_account": "a", "to_account": "b", "amount": "10", "memo": "x"}')$$);
SELECT try($$SELECT ledger.append_event('s', 'post', '{"legs": {}}')$$);
SELECT try($$SELECT ledger.append_event('s', 'invalidate', '{"transaction_id": "x", "reason": "r", "force": "yes"}')$$);
SELECT try($$SELECT ledger.append_event('', 'transfer', '{}')$$);
SELECT try($$SELECT ledger.append_event(E'a\x01', 'transfer', '{}')$$);
SELECT try(format('SELECT ledger.append_event(%L, %L, %L)', 's', 'transfer',
                  jsonb_build_object('from_account', 'a', 'to_account', 'b', 'amount', '1', 'metadata',
                                     jsonb_build_object('pad', repeat('x', 70000)))));
SELECT count(*) = :before_events AS nothing_written FROM ledger.event;
SELECT try($$SELECT ledger.apply_events(0)$$);
SELECT try($$SELECT ledger.apply_events(100001)$$);
SELECT try($$SELECT ledger.apply_events(NULL)$$);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT ledger.apply_events()$$);
ROLLBACK;
-- an event runs only if the role that appended it may make the call:
-- checked when it is appended, and again when it is applied (a right
-- revoked in between counts), so EXECUTE on append_event is no way to an
-- invalidation with force run by the applier
CREATE ROLE regress_ledger_app;
GRANT USAGE ON SCHEMA ledger TO regress_ledger_app;
GRANT EXECUTE ON FUNCTION ledger.append_event(text, text, jsonb, text),
                          ledger.transfer(text, text, numeric, text, jsonb),
                          ledger.invalidate(uuid, text, boolean) TO regress_ledger_app;
SET ROLE regress_ledger_app;
SELECT ledger.append_event('e-bob', 'transfer', '{"from_account": "e-world", "to_account": "e-bob", "amount": "3.00"}') IS NOT NULL AS appended_transfer;
SELECT ledger.append_event('e-bob', 'invalidate', jsonb_build_object('transaction_id', (SELECT ledger.new_id()), 'reason', 'x', 'force', true)) IS NOT NULL AS appended_invalidate;
SELECT try($$SELECT ledger.append_event('e-bob', 'void', '{"hold_id": "00000000-0000-0000-0000-000000000000", "reason": "x"}')$$);
RESET ROLE;
REVOKE EXECUTE ON FUNCTION ledger.invalidate(uuid, text, boolean) FROM regress_ledger_app;
SELECT appended_by FROM ledger.event ORDER BY seq DESC LIMIT 1;
SELECT ledger.apply_events() AS applied;
SELECT e.type, r.sqlstate, r.message FROM ledger.event_rejection r JOIN ledger.event e USING (seq)
 WHERE e.appended_by = 'regress_ledger_app' ORDER BY r.seq;
SELECT ledger.balance('e-bob') AS bob;
REVOKE ALL ON FUNCTION ledger.append_event(text, text, jsonb, text),
                       ledger.transfer(text, text, numeric, text, jsonb) FROM regress_ledger_app;
REVOKE USAGE ON SCHEMA ledger FROM regress_ledger_app;
DROP ROLE regress_ledger_app;

-- an appending transaction cannot be prepared
BEGIN;
SELECT ledger.append_event('e-bob', 'transfer', '{"from_account": "e-world", "to_account": "e-bob", "amount": "1.00"}') IS NOT NULL AS appended;
PREPARE TRANSACTION 'ledger-events-1';
SELECT count(*) AS prepared FROM pg_prepared_xacts WHERE gid = 'ledger-events-1';
-- the event log is append-only
SELECT try($$UPDATE ledger.event SET stream = 'x'$$) LIKE 'LD006:%' AS append_only;
SELECT try($$DELETE FROM ledger.event_rejection$$) LIKE 'LD006:%' AS append_only;
SELECT count(*) AS clean FROM ledger.reconcile();
