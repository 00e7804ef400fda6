/* ledger 0.9.0 -> 0.10.0: managers see only their people (row-level
 * security behind security_invoker views), idempotency keys per owner,
 * and rate limits (src/ratelimit.c, shared memory). */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.10.0'" to load this file. \quit

/*
 * Idempotency keys per owner.  A key is unique within a scope: the owner of
 * the account a call debits (a transfer's from_account, a post's debited
 * leg with the smallest account code, an exchange's from_account, a hold's
 * account; a capture's and a void's are their hold's account), '' for
 * accounts without an owner.  One owner cannot take another's key, and an LD007 only ever
 * names the same owner's transaction.  Keys taken before this version get
 * the scope the same rule gives them, so a retry across the upgrade still
 * finds its first result.  The guards are off for the backfill only: no
 * other column changes.
 */
ALTER TABLE ledger.transaction ADD COLUMN idempotency_scope text;
ALTER TABLE ledger.hold ADD COLUMN idempotency_scope text;
ALTER TABLE ledger.hold_event ADD COLUMN idempotency_scope text;
COMMENT ON COLUMN ledger.transaction.idempotency_scope IS
    'Whose key space idempotency_key is in: the owner of the debited account (for a post, the debited account with the smallest code; '''' if it has none), set with the key.';

ALTER TABLE ledger.transaction DISABLE TRIGGER transaction_append_only;
ALTER TABLE ledger.transaction DISABLE TRIGGER transaction_event_stamp;
UPDATE ledger.transaction t
   SET idempotency_scope = COALESCE((SELECT a.owner_id
                                       FROM ledger.journal_entry j
                                       JOIN ledger.account a ON a.id = j.account_id
                                      WHERE j.transaction_id = t.id AND j.amount < 0
                                      ORDER BY CASE WHEN t.kind = 'post' THEN a.code COLLATE "C" END,
                                               j.id
                                      LIMIT 1), '')
 WHERE t.idempotency_key IS NOT NULL;
ALTER TABLE ledger.transaction ENABLE ALWAYS TRIGGER transaction_append_only;
ALTER TABLE ledger.transaction ENABLE ALWAYS TRIGGER transaction_event_stamp;

ALTER TABLE ledger.hold DISABLE TRIGGER hold_event_stamp;
UPDATE ledger.hold h
   SET idempotency_scope = COALESCE((SELECT a.owner_id FROM ledger.account a
                                      WHERE a.id = h.account_id), '')
 WHERE h.idempotency_key IS NOT NULL;
ALTER TABLE ledger.hold ENABLE ALWAYS TRIGGER hold_event_stamp;

ALTER TABLE ledger.hold_event DISABLE TRIGGER hold_event_append_only;
UPDATE ledger.hold_event e
   SET idempotency_scope = COALESCE((SELECT a.owner_id FROM ledger.hold h
                                       JOIN ledger.account a ON a.id = h.account_id
                                      WHERE h.id = e.hold_id), '')
 WHERE e.idempotency_key IS NOT NULL;
ALTER TABLE ledger.hold_event ENABLE ALWAYS TRIGGER hold_event_append_only;

ALTER TABLE ledger.transaction ADD CONSTRAINT transaction_key_scoped
    CHECK (idempotency_key IS NULL OR idempotency_scope IS NOT NULL);
ALTER TABLE ledger.hold ADD CONSTRAINT hold_key_scoped
    CHECK (idempotency_key IS NULL OR idempotency_scope IS NOT NULL);
ALTER TABLE ledger.hold_event ADD CONSTRAINT hold_event_key_scoped
    CHECK (idempotency_key IS NULL OR idempotency_scope IS NOT NULL);

DROP INDEX ledger.transaction_idempotency_key_idx;
CREATE UNIQUE INDEX transaction_idempotency_key_idx
    ON ledger.transaction (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX ledger.hold_idempotency_key_idx;
CREATE UNIQUE INDEX hold_idempotency_key_idx
    ON ledger.hold (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP INDEX ledger.hold_event_idempotency_key_idx;
CREATE UNIQUE INDEX hold_event_idempotency_key_idx
    ON ledger.hold_event (idempotency_scope, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

/*
 * Rate limits: stored here, enforced in shared memory (no row is touched
 * per call).  ledger.set_rate_limit refuses without the library preloaded.
 */
CREATE TABLE ledger.rate_limit (
    role_name   name PRIMARY KEY,
    per_second  numeric NOT NULL CHECK (per_second > 0),
    burst       integer NOT NULL CHECK (burst > 0),
    per_owner   boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.rate_limit IS
    'Rate limits per calling role (token buckets in shared memory): per_second calls, bursts of up to burst; with per_owner, one bucket per ledger.acting_owner.';
SELECT pg_catalog.pg_extension_config_dump('ledger.rate_limit', '');

CREATE FUNCTION ledger.set_rate_limit(role name, per_second numeric, burst integer,
                                      per_owner boolean DEFAULT false)
RETURNS void
AS 'MODULE_PATHNAME', 'ledger_set_rate_limit'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.set_rate_limit(name, numeric, integer, boolean) IS
    'Limits the money-moving calls (transfer, post, hold, capture, void, exchange) of a role to per_second, with bursts of up to burst; per_owner gives each acting owner its own bucket. In force from the commit; over the limit a call fails with LD041.';

CREATE FUNCTION ledger.remove_rate_limit(role name)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ledger_remove_rate_limit'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.remove_rate_limit(name) IS
    'Removes a role''s rate limit (from the commit); true if it had one.';

CREATE FUNCTION ledger.rate_limit_status(OUT role text, OUT per_second float8, OUT burst integer,
                                         OUT per_owner boolean, OUT calls bigint, OUT refused bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ledger_rate_limit_status'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.rate_limit_status() IS
    'The rate limits in force in this database, with the calls checked and refused since they were loaded (a restart or a change reloads them).';

CREATE VIEW ledger.rate_limits AS SELECT * FROM ledger.rate_limit_status();
COMMENT ON VIEW ledger.rate_limits IS
    'Rate limits in force: per role, calls checked and refused since they were loaded.';

/*
 * Managers see only their people.  ledger.owner_access says which owners a
 * role may read; row-level security on the tables behind the reading views
 * (made security_invoker) shows a scoped role those owners' rows and no
 * others.  Scoped: a member of ledger_manager that is neither an auditor
 * nor an operator.  Everyone else reads as before: the first term of each
 * policy is evaluated once per query.  The table owner (the functions,
 * the workers) and superusers bypass row-level security.
 */
CREATE TABLE ledger.owner_access (
    role_name   name NOT NULL,
    owner_id    text NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    granted_by  text NOT NULL,
    PRIMARY KEY (role_name, owner_id)
);
COMMENT ON TABLE ledger.owner_access IS
    'Which owners'' accounts a (manager) role may read: ledger.grant_owner_access and ledger.revoke_owner_access keep it.';
SELECT pg_catalog.pg_extension_config_dump('ledger.owner_access', '');

CREATE FUNCTION ledger.grant_owner_access(role name, owner_id text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ledger_grant_owner_access'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.grant_owner_access(name, text) IS
    'Lets a manager role (and its members) read the accounts, balances, journal, daily balances, holds and alerts of one owner. True if newly granted.';

CREATE FUNCTION ledger.revoke_owner_access(role name, owner_id text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'ledger_revoke_owner_access'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.revoke_owner_access(name, text) IS
    'Takes back a grant of ledger.grant_owner_access. True if it was granted.';

-- is the calling role scoped to its granted owners?
CREATE FUNCTION ledger.owner_scoped()
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT pg_catalog.pg_has_role('ledger_manager', 'USAGE')
       AND NOT pg_catalog.pg_has_role('ledger_auditor', 'USAGE')
       AND NOT pg_catalog.pg_has_role('ledger_operator', 'USAGE')
$$;
COMMENT ON FUNCTION ledger.owner_scoped() IS
    'True when the calling role reads only the owners granted to it (a manager that is not an auditor or operator).';

-- the owners granted to the calling role or a role it belongs to
CREATE FUNCTION ledger.visible_owners()
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT o.owner_id FROM ledger.owner_access o
  JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) o.role_name
 WHERE pg_catalog.pg_has_role(r.oid, 'USAGE')
$$;
COMMENT ON FUNCTION ledger.visible_owners() IS
    'The owners whose rows the calling role was granted (ledger.grant_owner_access), directly or through a role it belongs to.';

ALTER TABLE ledger.owner_access ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.owner_access FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR role_name IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                             WHERE pg_catalog.pg_has_role(r.oid, 'USAGE')));

ALTER TABLE ledger.account ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.account FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped()) OR owner_id IN (SELECT ledger.visible_owners()));

ALTER TABLE ledger.alert ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.alert FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped()) OR owner_id IN (SELECT ledger.visible_owners()));

-- tables keyed by account: visible when the account is (its own policy);
-- correlated, so each row is one index probe
ALTER TABLE ledger.account_balance ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.account_balance FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = account_balance.account_id));
ALTER TABLE ledger.daily_balance ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.daily_balance FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = daily_balance.account_id));
ALTER TABLE ledger.journal_entry ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.journal_entry FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = journal_entry.account_id));
ALTER TABLE ledger.hot_entry ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.hot_entry FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = hot_entry.account_id));
ALTER TABLE ledger.hold ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.hold FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = hold.account_id));
ALTER TABLE ledger.hold_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.hold_event FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR EXISTS (SELECT 1 FROM ledger.hold h WHERE h.id = hold_event.hold_id));
-- a transaction is visible with any of its visible entries
ALTER TABLE ledger.transaction ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_scope ON ledger.transaction FOR SELECT
    USING ((SELECT NOT ledger.owner_scoped())
           OR EXISTS (SELECT 1 FROM ledger.journal_entry j WHERE j.transaction_id = transaction.id));

-- the reading views check their tables as the caller, so the policies apply
ALTER VIEW ledger.journal SET (security_invoker = true);
ALTER VIEW ledger.effective_balance SET (security_invoker = true);
ALTER VIEW ledger.effective_daily_balance SET (security_invoker = true);
ALTER VIEW ledger.expected_balance SET (security_invoker = true);
ALTER VIEW ledger.expected_daily_balance SET (security_invoker = true);
ALTER VIEW ledger.held_balance SET (security_invoker = true);
ALTER VIEW ledger.account_overview SET (security_invoker = true);
ALTER VIEW ledger.holds SET (security_invoker = true);
ALTER VIEW ledger.hold_timeline SET (security_invoker = true);

REVOKE ALL ON ledger.rate_limit, ledger.rate_limits, ledger.owner_access FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.set_rate_limit(name, numeric, integer, boolean),
                       ledger.remove_rate_limit(name),
                       ledger.rate_limit_status(),
                       ledger.grant_owner_access(name, text),
                       ledger.revoke_owner_access(name, text),
                       ledger.owner_scoped(),
                       ledger.visible_owners() FROM PUBLIC;

-- operators set limits and grants; everyone who reads evaluates the policies
GRANT EXECUTE ON FUNCTION
    ledger.set_rate_limit(name, numeric, integer, boolean),
    ledger.remove_rate_limit(name),
    ledger.rate_limit_status(),
    ledger.grant_owner_access(name, text),
    ledger.revoke_owner_access(name, text)
TO ledger_operator;
GRANT EXECUTE ON FUNCTION ledger.rate_limit_status() TO ledger_auditor, ledger_monitor;
-- the policies call these; visible_owners() reads owner_access, which the
-- writer and the monitor do not read (nor any table under a policy)
GRANT EXECUTE ON FUNCTION ledger.owner_scoped()
TO ledger_writer, ledger_operator, ledger_manager, ledger_auditor, ledger_monitor;
GRANT EXECUTE ON FUNCTION ledger.visible_owners()
TO ledger_operator, ledger_manager, ledger_auditor;
GRANT SELECT ON ledger.rate_limit, ledger.rate_limits, ledger.owner_access
TO ledger_operator, ledger_auditor;
GRANT SELECT ON ledger.rate_limits TO ledger_monitor;

-- managers: the history and statistics of their owners, through the views
GRANT SELECT ON ledger.account, ledger.account_balance, ledger.daily_balance,
                ledger.journal_entry, ledger.hot_entry, ledger.transaction, ledger.hold,
                ledger.hold_event, ledger.alert, ledger.owner_access,
                ledger.journal, ledger.effective_balance, ledger.effective_daily_balance,
                ledger.held_balance, ledger.account_overview, ledger.holds,
                ledger.hold_timeline
TO ledger_manager;
