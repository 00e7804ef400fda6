/* ledger 0.12.0 -> 0.13.0: batches of hold moves */
\echo Use "ALTER EXTENSION ledger UPDATE TO '0.13.0'" to load this file. \quit

CREATE FUNCTION ledger.hold_batch(holds jsonb, atomic boolean DEFAULT false)
RETURNS TABLE (item integer, result text, message text, hold_id uuid, facts jsonb)
AS 'MODULE_PATHNAME', 'ledger_hold_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.hold_batch(jsonb, boolean) IS
    'Makes holds [{"from_account": ..., "amount": ..., "to_account": ..., "mode": ..., "external_ref": ..., "submit_within": ..., "confirm_within": ..., "idempotency_key": ..., "metadata": {...}}, ...] in input order, each as ledger.hold would (left-out keys take its defaults); one row per item: result ''ok'' with the hold id, or the item''s LD SQLSTATE, message and structured facts. atomic: the first refusal fails the whole call and nothing is written.';

CREATE FUNCTION ledger.capture_batch(captures jsonb, atomic boolean DEFAULT false)
RETURNS TABLE (item integer, result text, message text, transaction_id uuid, facts jsonb)
AS 'MODULE_PATHNAME', 'ledger_capture_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.capture_batch(jsonb, boolean) IS
    'Captures [{"hold_id": ..., "amount": ..., "idempotency_key": ...}, ...] in input order, each as ledger.capture would; one row per item with the capture''s transaction id, as ledger.hold_batch.';

CREATE FUNCTION ledger.void_batch(voids jsonb, atomic boolean DEFAULT false)
RETURNS TABLE (item integer, result text, message text, released numeric, facts jsonb)
AS 'MODULE_PATHNAME', 'ledger_void_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.void_batch(jsonb, boolean) IS
    'Voids [{"hold_id": ..., "reason": ..., "idempotency_key": ...}, ...] in input order, each as ledger.void would; one row per item with the amount released, as ledger.hold_batch.';

REVOKE ALL ON FUNCTION ledger.hold_batch(jsonb, boolean), ledger.capture_batch(jsonb, boolean),
                       ledger.void_batch(jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.hold_batch(jsonb, boolean), ledger.capture_batch(jsonb, boolean),
                          ledger.void_batch(jsonb, boolean) TO ledger_writer;
