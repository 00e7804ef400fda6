-- event_apply: which event made or last changed each transaction and
-- hold (event_id, event_seq, guarded forward-only), ledger.catch_up, the
-- event worker's status, and the outbox messages of refused events.
SELECT ledger.create_account('ea-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('ea-alice', 'USD', owner_id => 'user-alice') > 0 AS ok;
SELECT ledger.create_account('ea-bob', 'USD') > 0 AS ok;
SELECT ledger.apply_events() >= 0 AS drained;

-- the worker is off in this suite: catch_up applies events itself
SELECT state FROM ledger.event_worker_status();
SELECT ledger.append_event('ea-alice', 'transfer',
    '{"from_account": "ea-world", "to_account": "ea-alice", "amount": "50.00", "idempotency_key": "ea-dep"}') AS dep_event \gset
SELECT ledger.append_event('ea-alice', 'hold',
    '{"from_account": "ea-alice", "amount": "20.00", "to_account": "ea-bob", "idempotency_key": "ea-hold"}') AS hold_event \gset
SELECT ledger.catch_up('ea-alice') AS applied_by_catch_up;
SELECT ledger.catch_up() AS nothing_left;
SELECT ledger.balance('ea-alice') AS alice;

-- each row names the event that made it
SELECT t.event_id = :'dep_event' AS tx_names_its_event,
       t.event_seq = (SELECT seq FROM ledger.event WHERE id = :'dep_event') AS tx_seq
  FROM ledger.transaction t WHERE t.idempotency_key = 'ea-dep';
SELECT id AS hold1, event_id = :'hold_event' AS hold_names_its_event
  FROM ledger.hold WHERE idempotency_key = 'ea-hold' \gset
SELECT :'hold_names_its_event' AS hold_names_its_event;
-- a call made directly leaves the columns alone
SELECT ledger.transfer('ea-alice', 'ea-bob', 1.00, 'ea-direct') IS NOT NULL AS direct;
SELECT event_id IS NULL AND event_seq IS NULL AS direct_names_no_event
  FROM ledger.transaction WHERE idempotency_key = 'ea-direct';
-- a later event that changes the hold moves its columns forward
SELECT ledger.append_event('ea-alice', 'capture', jsonb_build_object('hold_id', :'hold1', 'amount', '5.00')) AS cap1 \gset
SELECT ledger.append_event('ea-alice', 'capture', jsonb_build_object('hold_id', :'hold1', 'amount', '5.00')) AS cap2 \gset
SELECT ledger.catch_up() AS applied;
SELECT event_id = :'cap2' AS hold_names_last_event, captured FROM ledger.hold WHERE id = :'hold1';
SELECT count(*) AS captures_name_their_events FROM ledger.transaction
 WHERE event_id IN (:'cap1', :'cap2') AND kind = 'capture';

-- only the applier sets them, and only forward
SELECT regexp_replace(try($$UPDATE ledger.hold SET event_seq = event_seq + 1 WHERE idempotency_key = 'ea-hold'$$),
                      '[0-9a-f-]{36}|[0-9]+', 'N', 'g') AS try;
SELECT regexp_replace(try($$UPDATE ledger.transaction SET event_seq = 1 WHERE idempotency_key = 'ea-dep'$$),
                      '[0-9a-f-]{36}', '<id>') AS try;
SELECT regexp_replace(try($$UPDATE ledger.hold SET event_id = NULL WHERE idempotency_key = 'ea-hold'$$),
                      '[0-9a-f-]{36}|[0-9]+', 'N', 'g') AS try;
-- an operator who rewinds the pointer replays the older capture: the
-- hold, last changed by a newer event, refuses it (LD033, recorded)
SELECT last_sequence AS pointer FROM ledger.projection \gset
UPDATE ledger.projection SET last_sequence = (SELECT seq - 1 FROM ledger.event WHERE id = :'cap1');
SELECT ledger.apply_events(1) AS replayed;
SELECT r.sqlstate, regexp_replace(r.message, '[0-9]+', 'N', 'g') AS message
  FROM ledger.event_rejection r JOIN ledger.event e USING (seq) WHERE e.id = :'cap1';
-- its structured facts: the table, the row, the refused event and the one
-- that last changed the row (ids and numbers checked, then masked)
SELECT f ->> 'table' AS "table", f ->> 'row_id' = :'hold1' AS row_is_hold,
       (f ->> 'seq')::bigint = e.seq AS seq_is_event, f ->> 'event_id' = :'cap1' AS event_id_is_event,
       (f ->> 'last_seq')::bigint > e.seq AS last_is_newer,
       f ->> 'last_event_id' = (SELECT id::text FROM ledger.event WHERE seq = (f ->> 'last_seq')::bigint) AS last_id_matches
  FROM ledger.event_rejection r JOIN ledger.event e USING (seq),
       LATERAL (SELECT substring(r.detail FROM '\n(\{[^\n]*\})$')::jsonb AS f) x
 WHERE e.id = :'cap1';
UPDATE ledger.projection SET last_sequence = :pointer;
SELECT captured FROM ledger.hold WHERE id = :'hold1';

-- a refused event is an alert, and the alert an outbox message naming
-- the stream's account and owner
SELECT ledger.append_event('ea-alice', 'transfer',
    '{"from_account": "ea-alice", "to_account": "ea-bob", "amount": "9999.00"}') IS NOT NULL AS too_much;
SELECT ledger.catch_up('ea-alice') AS applied;
SELECT topic, key, payload ->> 'kind' AS kind, payload ->> 'owner_id' AS owner,
       payload -> 'details' ->> 'sqlstate' AS sqlstate, state
  FROM ledger.outbox WHERE topic = 'ledger.alert' ORDER BY id DESC LIMIT 1;

-- catch_up: bad input, its own uncommitted events, and a timeout
SELECT try($$SELECT ledger.catch_up(NULL, NULL)$$);
SELECT try($$SELECT ledger.catch_up(NULL, '-1 s')$$);
SELECT try($$SELECT ledger.catch_up(NULL, '2 hours')$$);
SELECT try($$SELECT ledger.catch_up(NULL, '1 day')$$);
SELECT try($$SELECT ledger.catch_up(repeat('x', 300))$$);
BEGIN;
SELECT ledger.append_event('ea-bob', 'transfer',
    '{"from_account": "ea-world", "to_account": "ea-bob", "amount": "1.00"}') IS NOT NULL AS appended;
SELECT try($$SELECT ledger.catch_up('ea-bob')$$);
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT ledger.catch_up()$$);
ROLLBACK;
SELECT ledger.catch_up('ea-nobody') AS no_events_of_stream;
SELECT ledger.catch_up(NULL, '0 s') AS nothing_pending_no_wait;

-- the operators' view
-- (a rolled-back append left a gap: the next batch moves the pointer past it)
SELECT ledger.apply_events() AS nothing_to_apply;
SELECT state, horizon = last_sequence AS caught_up, lag_events FROM ledger.event_worker;
