/* ledger 0.10.0 -> 0.11.0: batches (src/batch.c): many transfers or
 * posts per call, one result row per item, in input order. */

\echo Use "ALTER EXTENSION ledger UPDATE TO '0.11.0'" to load this file. \quit

CREATE FUNCTION ledger.transfer_batch(from_accounts text[], to_accounts text[], amounts numeric[],
                                      idempotency_keys text[] DEFAULT NULL,
                                      metadata jsonb[] DEFAULT NULL,
                                      atomic boolean DEFAULT false)
RETURNS TABLE (item integer, result text, message text, transaction_id uuid)
AS 'MODULE_PATHNAME', 'ledger_transfer_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.transfer_batch(text[], text[], numeric[], text[], jsonb[], boolean) IS
    'Applies transfer i = (from_accounts[i], to_accounts[i], amounts[i], idempotency_keys[i], metadata[i]) in input order; one row per item: result ''ok'' with the transaction id, or the item''s LD SQLSTATE and message. atomic: the first refusal fails the whole call and nothing is written; otherwise a refused item is skipped and the others stand.';

CREATE FUNCTION ledger.post_batch(postings jsonb, atomic boolean DEFAULT false)
RETURNS TABLE (item integer, result text, message text, transaction_id uuid)
AS 'MODULE_PATHNAME', 'ledger_post_batch'
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off;
COMMENT ON FUNCTION ledger.post_batch(jsonb, boolean) IS
    'Applies postings [{"legs": [...], "idempotency_key": ..., "metadata": {...}}, ...] in input order, each as ledger.post would; one row per item, as ledger.transfer_batch.';

REVOKE ALL ON FUNCTION ledger.transfer_batch(text[], text[], numeric[], text[], jsonb[], boolean),
                       ledger.post_batch(jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger.transfer_batch(text[], text[], numeric[], text[], jsonb[], boolean),
                          ledger.post_batch(jsonb, boolean) TO ledger_writer;
