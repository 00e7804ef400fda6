/* ledger--0.5.0--0.6.0.sql: holds (two-phase payments and reservations),
 * their timeline, limits, and statements imported from processors; events
 * applied up to a safe horizon */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.6.0'" to load this file. \quit

/*
 * Per-account hold bookkeeping, on the balance row every hold move locks
 * first (src/hold.c):
 *   open_holds        holds in reserved, submitted or timed_out; a hold
 *                     whose submit deadline passed still counts here until
 *                     expire_holds records it, but is no longer held;
 *   max_active_holds  NULL: no limit (ledger.set_account_limits).
 */
ALTER TABLE ledger.account_balance
    ADD COLUMN open_holds integer NOT NULL DEFAULT 0 CHECK (open_holds >= 0),
    ADD COLUMN max_active_holds integer CHECK (max_active_holds >= 0);

CREATE TABLE ledger.hold (
    id                uuid PRIMARY KEY,
    account_id        bigint NOT NULL REFERENCES ledger.account (id),
    to_account_id     bigint REFERENCES ledger.account (id),
    mode              text NOT NULL CHECK (mode IN ('exclusive', 'shared')),
    amount            numeric NOT NULL CHECK (amount > 0),
    captured          numeric NOT NULL DEFAULT 0 CHECK (captured >= 0),
    remaining         numeric NOT NULL CHECK (remaining >= 0),
    state             text NOT NULL CHECK (state IN ('reserved', 'submitted', 'captured',
                                                     'voided', 'expired', 'timed_out')),
    external_ref      text,
    submit_within     interval NOT NULL,
    confirm_within    interval NOT NULL,
    created_at        timestamptz NOT NULL,
    submit_deadline   timestamptz NOT NULL,
    submitted_at      timestamptz,
    confirm_deadline  timestamptz,
    finished_at       timestamptz,
    idempotency_key   text,
    request_hash      bytea,
    metadata          jsonb NOT NULL DEFAULT '{}',
    CHECK (captured + remaining <= amount),
    CHECK ((mode = 'exclusive') = (to_account_id IS NOT NULL))
);
CREATE UNIQUE INDEX hold_idempotency_key_idx ON ledger.hold (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- what every check scans, under the account's balance row lock
CREATE INDEX hold_open_idx ON ledger.hold (account_id)
    WHERE state IN ('reserved', 'submitted', 'timed_out');
-- what expire_holds scans
CREATE INDEX hold_deadline_idx ON ledger.hold (submit_deadline)
    WHERE state = 'reserved';
CREATE INDEX hold_confirm_idx ON ledger.hold (confirm_deadline)
    WHERE state = 'submitted';
CREATE INDEX hold_external_ref_idx ON ledger.hold (external_ref)
    WHERE external_ref IS NOT NULL;
COMMENT ON TABLE ledger.hold IS
    'Holds: money reserved on an account (exclusive: to be captured to to_account; shared: to stay in place). Changed only by the ledger''s functions, each move checked and recorded in hold_event.';

CREATE TABLE ledger.hold_event (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hold_id          uuid NOT NULL REFERENCES ledger.hold (id),
    event            text NOT NULL CHECK (event IN ('reserved', 'submitted', 'captured',
                                                    'voided', 'expired', 'timed_out')),
    at               timestamptz NOT NULL,
    actor            text NOT NULL,
    amount           numeric,
    remaining        numeric NOT NULL,
    transaction_id   uuid,
    reason           text,
    idempotency_key  text,
    detail           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX hold_event_hold_idx ON ledger.hold_event (hold_id, id);
CREATE UNIQUE INDEX hold_event_idempotency_key_idx ON ledger.hold_event (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
COMMENT ON TABLE ledger.hold_event IS
    'Every move of every hold, append-only: when, by whom (the calling role), the amount moved and what remained.';

CREATE TRIGGER hold_event_append_only
    BEFORE UPDATE OR DELETE ON ledger.hold_event
    FOR EACH ROW EXECUTE FUNCTION ledger.guard_append_only();
CREATE TRIGGER hold_event_no_truncate
    BEFORE TRUNCATE ON ledger.hold_event
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_append_only();
ALTER TABLE ledger.hold_event ENABLE ALWAYS TRIGGER hold_event_append_only;
ALTER TABLE ledger.hold_event ENABLE ALWAYS TRIGGER hold_event_no_truncate;
CREATE TRIGGER hold_no_delete
    BEFORE DELETE ON ledger.hold
    FOR EACH ROW EXECUTE FUNCTION ledger.guard_append_only();
CREATE TRIGGER hold_no_truncate
    BEFORE TRUNCATE ON ledger.hold
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_append_only();
ALTER TABLE ledger.hold ENABLE ALWAYS TRIGGER hold_no_delete;
ALTER TABLE ledger.hold ENABLE ALWAYS TRIGGER hold_no_truncate;

/*
 * A processor's statements: every record version ever imported.  A record
 * identical to the newest version of its (source, external_ref) is not
 * stored again; a changed one becomes the next version.
 */
CREATE TABLE ledger.external_record (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        text NOT NULL,
    external_ref  text NOT NULL,
    version       integer NOT NULL,
    amount        numeric NOT NULL,
    asset         text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'reversed')),
    occurred_at   timestamptz NOT NULL,
    record_hash   bytea NOT NULL,
    imported_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source, external_ref, version)
);
COMMENT ON TABLE ledger.external_record IS
    'Processor statement records, append-only and versioned per (source, external_ref).';
CREATE TRIGGER external_record_append_only
    BEFORE UPDATE OR DELETE ON ledger.external_record
    FOR EACH ROW EXECUTE FUNCTION ledger.guard_append_only();
CREATE TRIGGER external_record_no_truncate
    BEFORE TRUNCATE ON ledger.external_record
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_append_only();
ALTER TABLE ledger.external_record ENABLE ALWAYS TRIGGER external_record_append_only;
ALTER TABLE ledger.external_record ENABLE ALWAYS TRIGGER external_record_no_truncate;

SELECT pg_catalog.pg_extension_config_dump('ledger.hold', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.hold_event', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.external_record', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.hold_event', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.external_record', 'id')::regclass, '');

/*
 * Views.  A hold's effective state: a reserved hold past its submit
 * deadline is expired, and a submitted one past its confirm deadline
 * timed out, from that instant, whether or not expire_holds has run.
 */
CREATE VIEW ledger.holds AS
SELECT h.id, a.code AS account, a.owner_id, t.code AS to_account, a.asset, h.mode,
       h.amount, h.captured, h.remaining,
       CASE WHEN h.state = 'reserved' AND h.submit_deadline <= pg_catalog.clock_timestamp()
                THEN 'expired'
            WHEN h.state = 'submitted' AND h.confirm_deadline <= pg_catalog.clock_timestamp()
                THEN 'timed_out'
            ELSE h.state END AS state,
       h.state AS recorded_state, h.external_ref, h.created_at, h.submit_deadline,
       h.submitted_at, h.confirm_deadline, h.finished_at, h.idempotency_key, h.metadata
  FROM ledger.hold h
  JOIN ledger.account a ON a.id = h.account_id
  LEFT JOIN ledger.account t ON t.id = h.to_account_id;
COMMENT ON VIEW ledger.holds IS
    'Every hold with account codes and its effective state (expiry and time-out apply at their deadline, before expire_holds records them).';

CREATE VIEW ledger.held_balance AS
SELECT h.account_id,
       coalesce(sum(h.remaining) FILTER (WHERE h.mode = 'exclusive'), 0) AS held_exclusive,
       coalesce(max(h.remaining) FILTER (WHERE h.mode = 'shared'), 0) AS held_shared,
       count(*) AS active_holds
  FROM ledger.hold h
 WHERE h.state IN ('submitted', 'timed_out')
    OR (h.state = 'reserved' AND h.submit_deadline > pg_catalog.clock_timestamp())
 GROUP BY h.account_id;
COMMENT ON VIEW ledger.held_balance IS
    'Per account with active holds: the sum of exclusive holds, the largest shared hold, and how many are active.';

CREATE OR REPLACE VIEW ledger.account_overview AS
SELECT a.code, a.asset, a.owner_id, e.balance, a.min_balance,
       e.balance - coalesce(h.held_exclusive, 0) - coalesce(h.held_shared, 0)
           - a.min_balance AS available,
       b.updated_at AS balance_updated_at, a.created_at, a.mode,
       coalesce(h.held_exclusive, 0) AS held_exclusive,
       coalesce(h.held_shared, 0) AS held_shared,
       coalesce(h.active_holds, 0) AS active_holds,
       b.max_active_holds
  FROM ledger.account a
  JOIN ledger.account_balance b ON b.account_id = a.id
  JOIN ledger.effective_balance e ON e.account_id = a.id
  LEFT JOIN ledger.held_balance h ON h.account_id = a.id;
COMMENT ON VIEW ledger.account_overview IS
    'Every account with its balance, floor, held amounts (exclusive sum, largest shared) and available = balance - held - floor (NULL: unbounded).';

CREATE VIEW ledger.hold_timeline AS
SELECT e.id, e.hold_id, a.code AS account, e.event, e.at, e.actor, e.amount, e.remaining,
       e.transaction_id, e.reason, e.idempotency_key, e.detail
  FROM ledger.hold_event e
  JOIN ledger.hold h ON h.id = e.hold_id
  JOIN ledger.account a ON a.id = h.account_id;
COMMENT ON VIEW ledger.hold_timeline IS
    'Every move of every hold with its account code, in order of id.';

/*
 * API (C).  SECURITY DEFINER with a pinned search_path, like the other
 * write functions.
 */
CREATE FUNCTION ledger.hold(from_account text, amount numeric,
                            to_account text DEFAULT NULL,
                            mode text DEFAULT 'exclusive',
                            external_ref text DEFAULT NULL,
                            submit_within interval DEFAULT '3 minutes',
                            confirm_within interval DEFAULT '6 minutes',
                            idempotency_key text DEFAULT NULL,
                            metadata jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'ledger_hold'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.hold(text, numeric, text, text, text, interval, interval, text, jsonb) IS
    'Reserves amount on an account (exclusive: for a later capture to to_account; shared: to stay in place). Checked at the balance row: balance - held exclusive - largest shared >= min_balance. Returns the hold id.';

CREATE FUNCTION ledger.mark_submitted(hold_id uuid, external_ref text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'ledger_mark_submitted'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.mark_submitted(uuid, text) IS
    'Records that a reserved hold may have been sent to its processor (call it before sending). From then on it is never released by time, only by capture or void.';

CREATE FUNCTION ledger.capture(hold_id uuid, amount numeric DEFAULT NULL,
                               idempotency_key text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'ledger_capture'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.capture(uuid, numeric, text) IS
    'Moves amount (default: all that remains) of an exclusive hold to its to_account; returns the transaction id. Partial captures may repeat until nothing remains.';

CREATE FUNCTION ledger.void(hold_id uuid, reason text, idempotency_key text DEFAULT NULL)
RETURNS numeric
AS 'MODULE_PATHNAME', 'ledger_void'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.void(uuid, text, text) IS
    'Releases what remains of a hold; returns the amount released.';

CREATE FUNCTION ledger.expire_holds()
RETURNS integer
AS 'MODULE_PATHNAME', 'ledger_expire_holds'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.expire_holds() IS
    'Records expiries (reserved holds past submit_within: released) and time-outs (submitted holds past confirm_within: still held, alerted). Returns how many holds it moved.';

CREATE FUNCTION ledger.set_account_limits(account text, max_active_holds integer)
RETURNS void
AS 'MODULE_PATHNAME', 'ledger_set_account_limits'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.set_account_limits(text, integer) IS
    'Limits how many holds may be active on an account at once (NULL: no limit).';

CREATE FUNCTION ledger.available_balance(account text)
RETURNS numeric
AS 'MODULE_PATHNAME', 'ledger_available_balance'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.available_balance(text) IS
    'What a debit or exclusive hold could take now: balance - held exclusive - largest shared hold - min_balance (NULL: unbounded).';

CREATE FUNCTION ledger.stale_holds()
RETURNS TABLE (hold_id uuid, account text, owner_id text, to_account text, amount numeric,
               remaining numeric, state text, external_ref text, submitted_at timestamptz,
               confirm_deadline timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT h.id, h.account, h.owner_id, h.to_account, h.amount, h.remaining, h.state,
           h.external_ref, h.submitted_at, h.confirm_deadline
      FROM ledger.holds h
     WHERE h.state = 'timed_out'
     ORDER BY h.confirm_deadline, h.id
$$;
COMMENT ON FUNCTION ledger.stale_holds() IS
    'Submitted holds past confirm_within, still holding money: ask the processor by external_ref, then capture or void each.';

CREATE FUNCTION ledger.import_statement(source text, records jsonb)
RETURNS integer
AS 'MODULE_PATHNAME', 'ledger_import_statement'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.import_statement(text, jsonb) IS
    'Loads a processor statement: [{"external_ref", "amount", "asset", "status", "occurred_at"}, ...]. Returns how many records were new or changed.';

CREATE FUNCTION ledger.reconcile_external(source text, since timestamptz, until timestamptz)
RETURNS TABLE (external_ref text, kind text, ours jsonb, theirs jsonb)
AS 'MODULE_PATHNAME', 'ledger_reconcile_external'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.reconcile_external(text, timestamptz, timestamptz) IS
    'Compares holds with an external_ref against the newest imported statement records: missing_ours, missing_theirs, amount_mismatch, status_mismatch. Alerts each.';

/*
 * pg_cron scheduling.  One check of pg_cron's presence serves every
 * scheduling wrapper; the 0.2.0 ones are redefined to use it.
 */
CREATE FUNCTION ledger.require_pg_cron()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regprocedure('cron.schedule(text,text,text)') IS NULL
       OR to_regprocedure('cron.unschedule(name)') IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD017',
            MESSAGE = 'pg_cron is not installed in this database',
            DETAIL = format('Database %I has no extension pg_cron (1.4 or later).', current_database()),
            HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart, and run CREATE EXTENSION pg_cron.';
    END IF;
END
$$;
COMMENT ON FUNCTION ledger.require_pg_cron() IS
    'Raises LD017 unless pg_cron is installed in this database.';

CREATE FUNCTION ledger.unschedule_job(target text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM ledger.require_pg_cron();
    IF NOT EXISTS (SELECT 1 FROM cron.job j WHERE j.jobname = target) THEN
        RETURN false;
    END IF;
    RETURN cron.unschedule(target);
END
$$;
COMMENT ON FUNCTION ledger.unschedule_job(text) IS
    'Removes the named pg_cron job; false if there was none (used by the unschedule_ functions).';

CREATE OR REPLACE FUNCTION ledger.schedule_reconciliation(schedule text DEFAULT '15 3 * * *',
                                                          repair boolean DEFAULT true)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF schedule IS NULL OR repair IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD011',
            MESSAGE = 'schedule and repair must not be NULL';
    END IF;
    PERFORM ledger.require_pg_cron();
    RETURN cron.schedule('ledger-reconcile', schedule,
                         format('SELECT count(*) FROM ledger.reconcile(repair => %s)',
                                CASE WHEN repair THEN 'true' ELSE 'false' END));
END
$$;

CREATE OR REPLACE FUNCTION ledger.unschedule_reconciliation()
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ledger.unschedule_job('ledger-reconcile') $$;

CREATE FUNCTION ledger.schedule_hold_expiry(schedule text DEFAULT '* * * * *')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF schedule IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'LD011',
            MESSAGE = 'schedule must not be NULL';
    END IF;
    PERFORM ledger.require_pg_cron();
    RETURN cron.schedule('ledger-expire-holds', schedule, 'SELECT ledger.expire_holds()');
END
$$;
COMMENT ON FUNCTION ledger.schedule_hold_expiry(text) IS
    'Registers ledger.expire_holds() with pg_cron as job ledger-expire-holds (every minute by default; calling again replaces the schedule). Returns the job id.';

CREATE FUNCTION ledger.unschedule_hold_expiry()
RETURNS boolean
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT ledger.unschedule_job('ledger-expire-holds') $$;
COMMENT ON FUNCTION ledger.unschedule_hold_expiry() IS
    'Removes the ledger-expire-holds pg_cron job; false if there was none.';

REVOKE ALL ON ledger.hold, ledger.hold_event, ledger.external_record, ledger.holds,
              ledger.held_balance, ledger.hold_timeline FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.hold(text, numeric, text, text, text, interval, interval, text, jsonb),
                       ledger.mark_submitted(uuid, text), ledger.capture(uuid, numeric, text),
                       ledger.void(uuid, text, text), ledger.expire_holds(),
                       ledger.set_account_limits(text, integer), ledger.available_balance(text),
                       ledger.stale_holds(), ledger.import_statement(text, jsonb),
                       ledger.reconcile_external(text, timestamptz, timestamptz),
                       ledger.schedule_hold_expiry(text), ledger.unschedule_hold_expiry(),
                       ledger.require_pg_cron(), ledger.unschedule_job(text)
    FROM PUBLIC;

/*
 * Events: requests accepted with one insert, applied later in sequence
 * order up to the horizon below which none can still commit (src/event.c,
 * src/horizon.c).  seq is given by the ledger, not by a SQL sequence.
 */
CREATE TABLE ledger.event (
    seq              bigint PRIMARY KEY,
    id               uuid NOT NULL UNIQUE,
    stream           text NOT NULL,
    type             text NOT NULL CHECK (type IN ('transfer', 'post', 'hold', 'mark_submitted',
                                                   'capture', 'void', 'invalidate')),
    payload          jsonb NOT NULL,
    idempotency_key  text,
    request_hash     bytea,
    appended_by      text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX event_idempotency_key_idx ON ledger.event (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX event_stream_idx ON ledger.event (stream, seq);
COMMENT ON TABLE ledger.event IS
    'Accepted requests (append-only): stream, type and payload (the named arguments of the ledger function of that type), in sequence order.';
CREATE TRIGGER event_append_only
    BEFORE UPDATE OR DELETE ON ledger.event
    FOR EACH ROW EXECUTE FUNCTION ledger.guard_append_only();
CREATE TRIGGER event_no_truncate
    BEFORE TRUNCATE ON ledger.event
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_append_only();
ALTER TABLE ledger.event ENABLE ALWAYS TRIGGER event_append_only;
ALTER TABLE ledger.event ENABLE ALWAYS TRIGGER event_no_truncate;

CREATE TABLE ledger.projection (
    name           text PRIMARY KEY,
    last_sequence  bigint NOT NULL DEFAULT 0,
    applied        bigint NOT NULL DEFAULT 0,
    rejected       bigint NOT NULL DEFAULT 0,
    stuck_seq      bigint,
    stuck_attempts integer NOT NULL DEFAULT 0,
    stuck_sqlstate text,
    stuck_message  text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.projection IS
    'The appliers'' pointer: the last event applied or rejected (row ''ledger'', made by the first apply_events), and the event that last failed otherwise than by a refusal, with its attempts (rejected after 5).';

CREATE TABLE ledger.event_rejection (
    seq          bigint PRIMARY KEY REFERENCES ledger.event (seq),
    event_id     uuid NOT NULL,
    sqlstate     text NOT NULL,
    message      text NOT NULL,
    detail       text,
    rejected_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.event_rejection IS
    'Events the ledger refused when applying them, with the SQLSTATE and message (append-only).';
CREATE TRIGGER event_rejection_append_only
    BEFORE UPDATE OR DELETE ON ledger.event_rejection
    FOR EACH ROW EXECUTE FUNCTION ledger.guard_append_only();
CREATE TRIGGER event_rejection_no_truncate
    BEFORE TRUNCATE ON ledger.event_rejection
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_append_only();
ALTER TABLE ledger.event_rejection ENABLE ALWAYS TRIGGER event_rejection_append_only;
ALTER TABLE ledger.event_rejection ENABLE ALWAYS TRIGGER event_rejection_no_truncate;

SELECT pg_catalog.pg_extension_config_dump('ledger.event', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.projection', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.event_rejection', '');

CREATE FUNCTION ledger.append_event(stream text, type text, payload jsonb,
                                    idempotency_key text DEFAULT NULL)
RETURNS uuid
AS 'MODULE_PATHNAME', 'ledger_append_event'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.append_event(text, text, jsonb, text) IS
    'Accepts a request as an event (one insert; the payload''s shape is checked for its type). Returns the event id; a retry with the same key returns it again.';

CREATE FUNCTION ledger.apply_events(max_events integer DEFAULT 1000)
RETURNS integer
AS 'MODULE_PATHNAME', 'ledger_apply_events'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.apply_events(integer) IS
    'Applies up to max_events events after the pointer and up to the horizon, in order, each with the pointer in one subtransaction; refused events are recorded and alerted. Returns how many it applied or rejected.';

CREATE FUNCTION ledger.event_horizon()
RETURNS bigint
AS 'MODULE_PATHNAME', 'ledger_event_horizon'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.event_horizon() IS
    'The largest event number below which no event can still commit in this database.';

CREATE FUNCTION ledger.projection_lag(OUT events bigint, OUT seconds double precision)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*),
           COALESCE(extract(epoch FROM clock_timestamp() - min(e.created_at))::double precision, 0)
      FROM ledger.event e
     WHERE e.seq > COALESCE((SELECT p.last_sequence FROM ledger.projection p WHERE p.name = 'ledger'), 0)
$$;
COMMENT ON FUNCTION ledger.projection_lag() IS
    'How far the appliers are behind: events after the pointer (committed ones), and the age of the oldest in seconds.';

REVOKE ALL ON ledger.event, ledger.projection, ledger.event_rejection FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.append_event(text, text, jsonb, text), ledger.apply_events(integer),
                       ledger.event_horizon(), ledger.projection_lag() FROM PUBLIC;
