/* ledger 0.7.0 -> 0.8.0: token exchange at a live rate, which pauses
 * while the rate feed is stale (src/exchange.c, src/rates.c). */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.8.0'" to load this file. \quit

/*
 * The rate history: quote units per one base unit, as observed by a feed.
 * Append-only; the newest observation of a pair is its rate.  Assets and
 * accounts are checked by the C functions that write these tables (no
 * foreign keys: assets and accounts are never deleted, and a TRUNCATE of
 * them must stay the guard's error, not a cascade).
 */
CREATE TABLE ledger.exchange_rate (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    base         text NOT NULL,
    quote        text NOT NULL,
    rate         numeric NOT NULL CHECK (rate > 0),
    observed_at  timestamptz NOT NULL,
    source       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text NOT NULL,
    CHECK (base <> quote)
);
CREATE INDEX exchange_rate_pair_idx ON ledger.exchange_rate (base, quote, observed_at DESC, id DESC);
COMMENT ON TABLE ledger.exchange_rate IS
    'Exchange rates (append-only): quote units per one base unit, when observed, by which source and role.';
CREATE TRIGGER exchange_rate_append_only
    BEFORE UPDATE OR DELETE ON ledger.exchange_rate
    FOR EACH ROW EXECUTE FUNCTION ledger.guard_append_only();
CREATE TRIGGER exchange_rate_no_truncate
    BEFORE TRUNCATE ON ledger.exchange_rate
    FOR EACH STATEMENT EXECUTE FUNCTION ledger.guard_append_only();
ALTER TABLE ledger.exchange_rate ENABLE ALWAYS TRIGGER exchange_rate_append_only;
ALTER TABLE ledger.exchange_rate ENABLE ALWAYS TRIGGER exchange_rate_no_truncate;

-- per asset: the account that provides and absorbs it in exchanges, and
-- the one that collects the spread taken in it
CREATE TABLE ledger.exchange_account (
    asset                 text PRIMARY KEY,
    liquidity_account_id  bigint NOT NULL,
    spread_account_id     bigint,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.exchange_account IS
    'Per asset, the liquidity account of exchanges and the account that collects the spread.';

-- per pair: whether the monitor has announced its feed stale, and since when
CREATE TABLE ledger.rate_feed (
    base         text NOT NULL,
    quote        text NOT NULL,
    stale_since  timestamptz,
    checked_at   timestamptz,
    PRIMARY KEY (base, quote)
);
COMMENT ON TABLE ledger.rate_feed IS
    'Every pair that has rates, and since when its feed has been announced stale (NULL: fresh).';

SELECT pg_catalog.pg_extension_config_dump('ledger.exchange_rate', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('ledger.exchange_rate', 'id')::regclass, '');
SELECT pg_catalog.pg_extension_config_dump('ledger.exchange_account', '');
SELECT pg_catalog.pg_extension_config_dump('ledger.rate_feed', '');

-- an exchange's token row also names where the quote went and the spread
ALTER TABLE ledger.token_transaction ADD COLUMN to_account_id bigint,
    ADD COLUMN spread numeric, ADD COLUMN spread_amount numeric;

CREATE FUNCTION ledger.set_exchange_rate(base text, quote text, rate numeric,
                                         observed_at timestamptz DEFAULT now(),
                                         source text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'ledger_set_exchange_rate'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.set_exchange_rate(text, text, numeric, timestamptz, text) IS
    'Appends an observed rate (quote units per base unit) to the rate history; a pair announced stale is announced recovered. Returns the row id.';

CREATE FUNCTION ledger.set_exchange_accounts(asset text, liquidity_account text,
                                             spread_account text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'ledger_set_exchange_accounts'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.set_exchange_accounts(text, text, text) IS
    'Names the account that provides and absorbs an asset in exchanges, and the one that collects the spread taken in it.';

CREATE FUNCTION ledger.exchange(from_account text, to_account text, amount numeric,
                                max_rate_age interval DEFAULT NULL, wait interval DEFAULT '0',
                                spread numeric DEFAULT 0, idempotency_key text DEFAULT NULL,
                                metadata jsonb DEFAULT '{}')
RETURNS uuid
AS 'MODULE_PATHNAME', 'ledger_exchange'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.exchange(text, text, numeric, interval, interval, numeric, text, jsonb) IS
    'Converts amount of from_account''s asset into to_account''s asset at the newest rate, through the liquidity accounts, with the spread as its own leg; refuses (LD037, retryable) or waits when the rate is older than max_rate_age. Returns the transaction id.';

CREATE FUNCTION ledger.check_rate_feeds()
RETURNS integer
AS 'MODULE_PATHNAME', 'ledger_check_rate_feeds'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION ledger.check_rate_feeds() IS
    'Announces pairs whose newest rate is older than ledger.max_rate_age (alert rate_stale) and stale pairs that have a fresh rate again (alert rate_recovered). The fold worker calls it every second. Returns how many pairs changed.';

CREATE VIEW ledger.exchange_status AS
SELECT f.base, f.quote, r.rate, r.observed_at, r.source,
       extract(epoch FROM clock_timestamp() - r.observed_at)::float8 AS age_seconds,
       (r.observed_at IS NULL
        OR clock_timestamp() - r.observed_at > COALESCE(current_setting('ledger.max_rate_age', true), '1min')::interval)
           AS paused,
       CASE WHEN clock_timestamp() - r.observed_at > COALESCE(current_setting('ledger.max_rate_age', true), '1min')::interval
            THEN r.observed_at + COALESCE(current_setting('ledger.max_rate_age', true), '1min')::interval END AS paused_since,
       f.stale_since AS announced_stale_since
  FROM ledger.rate_feed f
  LEFT JOIN LATERAL (SELECT x.rate, x.observed_at, x.source FROM ledger.exchange_rate x
                      WHERE x.base = f.base AND x.quote = f.quote
                      ORDER BY x.observed_at DESC, x.id DESC LIMIT 1) r ON true;
COMMENT ON VIEW ledger.exchange_status IS
    'Per pair: the newest rate, its age, whether exchanges are paused (older than ledger.max_rate_age) and since when, and since when the monitor announced it stale.';

REVOKE ALL ON ledger.exchange_rate, ledger.exchange_account, ledger.rate_feed,
              ledger.exchange_status FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger.set_exchange_rate(text, text, numeric, timestamptz, text),
                       ledger.set_exchange_accounts(text, text, text),
                       ledger.exchange(text, text, numeric, interval, interval, numeric, text, jsonb),
                       ledger.check_rate_feeds() FROM PUBLIC;
