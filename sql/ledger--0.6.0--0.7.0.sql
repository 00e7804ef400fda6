/* ledger 0.6.0 -> 0.7.0: the background event applier, catch_up, event
 * ids on transactions and holds, and the outbox. */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.7.0'" to load this file. \quit

/*
 * Which event last created or changed a transaction or a hold.  Set by the
 * applier (src/apply.c) through ledger.stamp_event (src/guard.c); the
 * number only moves forward, and an event older than the recorded one is
 * refused (LD033).
 */
ALTER TABLE ledger.transaction ADD COLUMN event_id uuid, ADD COLUMN event_seq bigint;
ALTER TABLE ledger.hold ADD COLUMN event_id uuid, ADD COLUMN event_seq bigint;
COMMENT ON COLUMN ledger.transaction.event_id IS
    'The event that made or last changed this transaction (NULL: direct calls only).';
COMMENT ON COLUMN ledger.hold.event_id IS
    'The event that made or last changed this hold (direct calls leave it as it was).';
-- which rows did an event make: the invariants and operators ask
CREATE INDEX transaction_event_idx ON ledger.transaction (event_id) WHERE event_id IS NOT NULL;

CREATE FUNCTION ledger.stamp_event()
RETURNS trigger
AS 'MODULE_PATHNAME', 'ledger_stamp_event'
LANGUAGE C;
COMMENT ON FUNCTION ledger.stamp_event() IS
    'Trigger: records the event being applied on the row (event_id, event_seq); the number only moves forward, and only the applier sets it.';

-- after the append-only guard (triggers fire in name order)
CREATE TRIGGER transaction_event_stamp
    BEFORE INSERT OR UPDATE ON ledger.transaction
    FOR EACH ROW EXECUTE FUNCTION ledger.stamp_event();
ALTER TABLE ledger.transaction ENABLE ALWAYS TRIGGER transaction_event_stamp;
CREATE TRIGGER hold_event_stamp
    BEFORE INSERT OR UPDATE ON ledger.hold
    FOR EACH ROW EXECUTE FUNCTION ledger.stamp_event();
ALTER TABLE ledger.hold ENABLE ALWAYS TRIGGER hold_event_stamp;

/*
 * Freshness on read: apply pending events (all, or up to a stream's last)
 * before reading balances.
 */
CREATE FUNCTION ledger.catch_up(stream text DEFAULT NULL, timeout interval DEFAULT '1 s')
RETURNS integer
AS 'MODULE_PATHNAME', 'ledger_catch_up'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.catch_up(text, interval) IS
    'Waits until every event committed before the call (or every event of one stream) is applied or rejected, applying them itself when no event worker runs; LD034 if that takes longer than timeout. Returns how many events it applied itself.';

CREATE FUNCTION ledger.event_worker_status(
    OUT state text, OUT pid integer, OUT batches bigint, OUT applied bigint,
    OUT rejected bigint, OUT errors bigint, OUT last_batch_at timestamptz,
    OUT last_error text, OUT last_error_at timestamptz)
RETURNS record
AS 'MODULE_PATHNAME', 'ledger_event_worker_status'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.event_worker_status() IS
    'The background event applier: its state, pid, batches, events applied and rejected, failed batches and the last error.';

CREATE VIEW ledger.event_worker AS
SELECT w.state, w.pid, w.batches, w.applied, w.rejected, w.errors, w.last_batch_at,
       w.last_error, w.last_error_at,
       CASE WHEN w.state <> 'not preloaded' THEN ledger.event_horizon() END AS horizon,
       COALESCE((SELECT p.last_sequence FROM ledger.projection p WHERE p.name = 'ledger'), 0)
           AS last_sequence,
       l.events AS lag_events, l.seconds AS lag_seconds
  FROM ledger.event_worker_status() w CROSS JOIN ledger.projection_lag() l;
COMMENT ON VIEW ledger.event_worker IS
    'The event applier at a glance: worker state and counters, the horizon, the pointer, and how far behind it is.';

/*
 * The outbox (src/outbox.c): messages written in the caller's transaction,
 * delivered at least once by consumers that claim, then ack or fail them.
 */
CREATE TABLE ledger.outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic         text NOT NULL,
    key           text NOT NULL,
    payload       jsonb NOT NULL,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'leased', 'delivered', 'dead')),
    attempts      integer NOT NULL DEFAULT 0,
    available_at  timestamptz NOT NULL DEFAULT now(),
    leased_by     text,
    leased_until  timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);
-- the unfinished messages, per topic and key in order: what outbox_claim reads
CREATE INDEX outbox_unfinished_idx ON ledger.outbox (topic, key, id)
    WHERE state IN ('pending', 'leased');
CREATE INDEX outbox_dead_idx ON ledger.outbox (id) WHERE state = 'dead';
COMMENT ON TABLE ledger.outbox IS
    'Messages for the outside world, written in the transaction that caused them: pending, leased to a consumer, delivered, or dead (after ledger.outbox_max_attempts).';
SELECT pg_catalog.pg_extension_config_dump('ledger.outbox', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.outbox', 'id')::regclass, '');

CREATE FUNCTION ledger.enqueue(topic text, key text, payload jsonb)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ledger_enqueue'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.enqueue(text, text, jsonb) IS
    'Writes an outbox message in the caller''s transaction (it exists exactly when that transaction commits; NOTIFY ledger_outbox at commit). Returns its id.';

CREATE FUNCTION ledger.outbox_claim(consumer text, max_messages integer DEFAULT 100,
                                    lease interval DEFAULT '30 s', topics text[] DEFAULT NULL)
RETURNS TABLE (id bigint, topic text, key text, payload jsonb, attempts integer,
               created_at timestamptz)
AS 'MODULE_PATHNAME', 'ledger_outbox_claim'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.outbox_claim(text, integer, interval, text[]) IS
    'Leases up to max_messages available messages (of the given topics, or all) to a consumer for lease; only the oldest unfinished message of each topic and key, so a key''s messages of a topic are delivered in order.';

CREATE FUNCTION ledger.outbox_ack(id bigint, consumer text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ledger_outbox_ack'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.outbox_ack(bigint, text) IS
    'Marks a leased message delivered: true, or false if it was delivered already. With consumer, only the holder of the lease may.';

CREATE FUNCTION ledger.outbox_fail(id bigint, error text, consumer text DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'ledger_outbox_fail'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.outbox_fail(bigint, text, text) IS
    'Gives a leased message back after a failed delivery: retried after a backoff (pending), or dead after ledger.outbox_max_attempts attempts. Returns the new state. With consumer, only the holder of the lease may.';

CREATE FUNCTION ledger.outbox_release(id bigint, consumer text DEFAULT NULL)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ledger_outbox_release'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.outbox_release(bigint, text) IS
    'Gives a leased message back unsent (a consumer shutting down), without counting the attempt; with consumer, only the holder of the lease may.';

CREATE FUNCTION ledger.outbox_retry(id bigint)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ledger_outbox_retry'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.outbox_retry(bigint) IS
    'Gives a dead message another round of attempts (an operator''s move after fixing the cause).';

CREATE VIEW ledger.outbox_status AS
SELECT topic,
       count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'leased') AS leased,
       count(*) FILTER (WHERE state = 'dead') AS dead,
       count(*) FILTER (WHERE state = 'delivered') AS delivered,
       COALESCE(extract(epoch FROM clock_timestamp()
                        - min(created_at) FILTER (WHERE state IN ('pending', 'leased'))), 0)::float8
           AS oldest_seconds,
       max(attempts) FILTER (WHERE state IN ('pending', 'leased')) AS max_attempts
  FROM ledger.outbox
 GROUP BY topic;
COMMENT ON VIEW ledger.outbox_status IS
    'Outbox depth per topic: pending, leased, dead and delivered messages, the age of the oldest undelivered one in seconds, and the most attempts of one.';

CREATE VIEW ledger.outbox_dead_letters AS
SELECT id, topic, key, payload, attempts, last_error, created_at
  FROM ledger.outbox WHERE state = 'dead';
COMMENT ON VIEW ledger.outbox_dead_letters IS
    'Messages given up on after ledger.outbox_max_attempts attempts; ledger.outbox_retry(id) tries one again.';

REVOKE ALL ON ledger.outbox, ledger.outbox_status, ledger.outbox_dead_letters,
              ledger.event_worker FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.catch_up(text, interval), ledger.event_worker_status(), ledger.stamp_event(),
                       ledger.enqueue(text, text, jsonb),
                       ledger.outbox_claim(text, integer, interval, text[]),
                       ledger.outbox_ack(bigint, text), ledger.outbox_fail(bigint, text, text),
                       ledger.outbox_release(bigint, text),
                       ledger.outbox_retry(bigint) FROM PUBLIC;
