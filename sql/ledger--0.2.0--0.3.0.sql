/* ledger--0.2.0--0.3.0.sql: hot accounts — escrow balances in shared
 * memory, an append-only hot path, and a fold worker */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.3.0'" to load this file. \quit

/*
 * An account's mode: 'cold' (the balance row is updated by each posting)
 * or 'hot' (postings append to ledger.hot_entry; the fold worker folds
 * them into the balance rows).  account_balance.hot mirrors it where the
 * posting path re-checks it under the row lock.
 */
ALTER TABLE ledger.account ADD COLUMN mode text NOT NULL DEFAULT 'cold'
    CHECK (mode IN ('cold', 'hot'));
ALTER TABLE ledger.account_balance ADD COLUMN hot boolean NOT NULL DEFAULT false;

/*
 * The hot queue: one row per hot account per posting, appended in the
 * posting's transaction, deleted by the fold in the transaction that
 * applies it.  A row is folded exactly when it is deleted.
 */
CREATE TABLE ledger.hot_entry (
    transaction_id  uuid NOT NULL,
    account_id      bigint NOT NULL,
    day             date NOT NULL,
    debits          numeric NOT NULL,
    credits         numeric NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX hot_entry_account_idx ON ledger.hot_entry (account_id);
COMMENT ON TABLE ledger.hot_entry IS
    'Committed-but-unfolded balance changes of hot accounts. Balance = account_balance + these rows, always, in any snapshot.';

/* The fold worker's progress, advanced conditionally on its generation. */
CREATE TABLE ledger.fold_state (
    id              integer PRIMARY KEY CHECK (id = 1),
    generation      bigint NOT NULL,
    folded_rows     bigint NOT NULL,
    balance_writes  bigint NOT NULL,
    last_fold_at    timestamptz
);
INSERT INTO ledger.fold_state VALUES (1, 0, 0, 0, NULL);
COMMENT ON TABLE ledger.fold_state IS
    'Fold worker progress: each fold moves generation from g to g+1 conditionally, so two folders never apply the same round.';

/*
 * What a reader sees: folded plus unfolded, in one snapshot.
 */
CREATE VIEW ledger.effective_balance AS
SELECT b.account_id, b.balance + coalesce(q.net, 0) AS balance
  FROM ledger.account_balance b
  LEFT JOIN (SELECT account_id, sum(credits - debits) AS net
               FROM ledger.hot_entry GROUP BY account_id) q USING (account_id);
COMMENT ON VIEW ledger.effective_balance IS
    'Every account''s exact balance: the balance row plus unfolded hot entries.';

CREATE VIEW ledger.effective_daily_balance AS
SELECT d.account_id, d.day, d.debits, d.credits, d.balance
  FROM ledger.daily_balance d
 WHERE NOT EXISTS (SELECT 1 FROM ledger.hot_entry q WHERE q.account_id = d.account_id)
UNION ALL
SELECT k.account_id, k.day,
       coalesce(d.debits, 0) + coalesce(q.debits, 0),
       coalesce(d.credits, 0) + coalesce(q.credits, 0),
       coalesce((SELECT d2.balance FROM ledger.daily_balance d2
                  WHERE d2.account_id = k.account_id AND d2.day <= k.day
                  ORDER BY d2.day DESC LIMIT 1), 0)
       + (SELECT sum(q2.credits - q2.debits) FROM ledger.hot_entry q2
           WHERE q2.account_id = k.account_id AND q2.day <= k.day)
  FROM (SELECT DISTINCT account_id, day FROM ledger.hot_entry
        UNION
        SELECT d.account_id, d.day FROM ledger.daily_balance d
         WHERE EXISTS (SELECT 1 FROM ledger.hot_entry q WHERE q.account_id = d.account_id)) k
  LEFT JOIN ledger.daily_balance d ON d.account_id = k.account_id AND d.day = k.day
  LEFT JOIN (SELECT account_id, day, sum(debits) AS debits, sum(credits) AS credits
               FROM ledger.hot_entry GROUP BY account_id, day) q
         ON q.account_id = k.account_id AND q.day = k.day;
COMMENT ON VIEW ledger.effective_daily_balance IS
    'Every account''s daily rows including unfolded hot entries: what daily_balance will hold once folded.';

CREATE OR REPLACE VIEW ledger.account_overview AS
SELECT a.code, a.asset, a.owner_id, e.balance, a.min_balance,
       e.balance - a.min_balance AS available,
       b.updated_at AS balance_updated_at, a.created_at, a.mode
  FROM ledger.account a
  JOIN ledger.account_balance b ON b.account_id = a.id
  JOIN ledger.effective_balance e ON e.account_id = a.id;

/*
 * API (C)
 */
CREATE FUNCTION ledger.set_account_mode(account text, mode text)
RETURNS text
AS 'MODULE_PATHNAME', 'ledger_set_account_mode'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.set_account_mode(text, text) IS
    'Switches an account between cold (conditional UPDATE per posting) and hot (escrow in shared memory, folded by the worker). Returns the previous mode.';

CREATE FUNCTION ledger.fold(max_rows integer DEFAULT 100000)
RETURNS integer
AS 'MODULE_PATHNAME', 'ledger_fold'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.fold(integer) IS
    'Folds committed hot entries into the balance rows now (what the worker does); returns how many entries it folded.';

CREATE FUNCTION ledger.hot_accounts(
    OUT account text, OUT account_id bigint, OUT committed numeric, OUT reserved numeric,
    OUT available numeric, OUT inflight integer, OUT debits_accepted bigint,
    OUT debits_refused bigint, OUT state text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'ledger_hot_accounts'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.hot_accounts() IS
    'The shared-memory escrow of every hot account: committed, reserved, available, in-flight postings.';

CREATE FUNCTION ledger.fold_worker_status(
    OUT state text, OUT pid integer, OUT rounds bigint, OUT folded_rows bigint,
    OUT balance_writes bigint, OUT last_fold_at timestamptz, OUT ready boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'ledger_fold_worker_status'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.fold_worker_status() IS
    'The fold worker: its state, pid, rounds, rows folded, balance writes, last fold, and whether hot accounts are loaded.';

CREATE VIEW ledger.hot_account_stats AS
SELECT h.account, h.committed, h.reserved, h.available, h.inflight,
       coalesce(q.unfolded, 0) AS unfolded_entries,
       coalesce(extract(epoch FROM pg_catalog.clock_timestamp() - q.oldest), 0)::float8 AS fold_lag_seconds,
       CASE WHEN w.balance_writes > 0 THEN w.folded_rows::float8 / w.balance_writes END AS aggregation_ratio,
       h.debits_accepted, h.debits_refused, w.state AS worker_state, h.state
  FROM ledger.hot_accounts() h
  CROSS JOIN ledger.fold_worker_status() w
  LEFT JOIN (SELECT account_id, count(*) AS unfolded, min(created_at) AS oldest
               FROM ledger.hot_entry GROUP BY account_id) q ON q.account_id = h.account_id
UNION ALL
SELECT '*', sum(h.committed), sum(h.reserved), sum(h.available), sum(h.inflight)::integer,
       (SELECT count(*) FROM ledger.hot_entry),
       coalesce(extract(epoch FROM pg_catalog.clock_timestamp()
                        - (SELECT min(created_at) FROM ledger.hot_entry)), 0)::float8,
       CASE WHEN max(w.balance_writes) > 0 THEN max(w.folded_rows)::float8 / max(w.balance_writes) END,
       sum(h.debits_accepted), sum(h.debits_refused), max(w.state), NULL
  FROM ledger.hot_accounts() h CROSS JOIN ledger.fold_worker_status() w;
COMMENT ON VIEW ledger.hot_account_stats IS
    'Per hot account and overall (account *): committed and reserved amounts, unfolded entries (queue depth), fold lag, aggregation ratio (journal rows folded per balance write) and the worker state.';

REVOKE ALL ON ledger.hot_entry, ledger.fold_state, ledger.effective_balance,
              ledger.effective_daily_balance, ledger.hot_account_stats FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.set_account_mode(text, text), ledger.fold(integer),
                       ledger.hot_accounts(), ledger.fold_worker_status() FROM PUBLIC;
