/*-------------------------------------------------------------------------
 *
 * txkey.c
 *	  The idempotency keys of postings: find the transaction a key belongs
 *	  to, and claim a key by inserting the transaction row with it.  Used
 *	  by transfer, post, exchange, capture and the batches; the lookup by
 *	  key (ledger_key_select) also by holds and their timeline
 *	  (holdstore.c).
 *
 * The key space is (idempotency_scope, idempotency_key), the scope being
 * an account id's owner (posting.c says whose); a database still at a
 * version before scoped keys gets the unscoped statements (schema.c).
 *
 * Locking: the claim's insert waits on the unique index for a concurrent
 *	  transaction inserting the same key, until it commits or aborts.  No
 *	  other lock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"

static SPIPlanPtr claim_plan[2];	/* [ledger_keys_scoped()] */
static SPIPlanPtr find_key_plan[2];

/*
 * Run "select WHERE key = $1 in scope $2" (select: the select list and
 * table of a table with idempotency keys, a constant), with its plan kept
 * in plans[ledger_keys_scoped()]; true if a row was found, in SPI_tuptable.
 */
bool
ledger_key_select(SPIPlanPtr *plans, const char *select, const char *key, int64 scope_account)
{
	Datum		values[2];
	bool		scoped = ledger_keys_scoped();

	if (plans[scoped] == NULL)
		plans[scoped] = ledger_prepare(
			ledger_key_scope_sql(scoped,
								 psprintf("%s WHERE (idempotency_key%%s) OPERATOR(pg_catalog.=) ($1%%s)",
										  select), 2),
			2, (Oid[]) {TEXTOID, INT8OID});
	values[0] = CStringGetTextDatum(key);
	values[1] = Int64GetDatum(scope_account);
	ledger_spi_exec(plans[scoped], values, NULL, SPI_OK_SELECT);
	return SPI_processed > 0;
}

/*
 * The transaction an idempotency key belongs to: false if none; LD007 if
 * it was taken for a request with another fingerprint; else its id in *id.
 */
bool
ledger_find_key(const char *key, int64 scope_account, bytea *hash, pg_uuid_t *id)
{
	Datum		d;
	bool		isnull;

	if (!ledger_key_select(find_key_plan, "SELECT id, request_hash FROM ledger.transaction",
						   key, scope_account))
		return false;
	memcpy(id, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   &isnull)), sizeof(pg_uuid_t));
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	ledger_require_same_request(key, isnull ? NULL : DatumGetByteaPP(d), hash, "transaction", id);
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/*
 * Claim an idempotency key: insert the transaction row with it, or find
 * it taken.  A concurrent call with the same key waits on the unique index
 * until the first commits or aborts, so exactly one transaction is
 * written.  Returns false when the key belongs to an earlier identical
 * request, whose id is copied to *id; LD007 if to a different one.
 */
bool
ledger_claim_key(pg_uuid_t *id, const char *kind, const char *key, int64 scope_account,
				 bytea *hash, Jsonb *metadata)
{
	if (ledger_claim_key_insert(id, kind, key, scope_account, hash, metadata))
		return true;
	ledger_key_taken(key, scope_account, hash, id);
	return false;
}

/*
 * After a claim's insert found the key taken by a committed transaction:
 * the same request (its id into *id), or LD007.
 */
void
ledger_key_taken(const char *key, int64 scope_account, bytea *hash, pg_uuid_t *id)
{
	if (!ledger_find_key(key, scope_account, hash, id))
		elog(ERROR, "idempotency key \"%s\" conflicted but its transaction is not visible", key);
}

/*
 * The claim's insert alone: true if this call wrote the transaction row
 * with the key, false (nothing written) if the key was taken.
 */
bool
ledger_claim_key_insert(pg_uuid_t *id, const char *kind, const char *key, int64 scope_account,
						bytea *hash, Jsonb *metadata)
{
	Datum		values[6];
	bool		scoped = ledger_keys_scoped();

	if (claim_plan[scoped] == NULL)
		claim_plan[scoped] = ledger_prepare(
			ledger_key_scope_sql(scoped,
								 "INSERT INTO ledger.transaction (id, kind, metadata, idempotency_key, "
								 "  request_hash%s) VALUES ($1, $2, $3, $4, $5%s) "
								 "ON CONFLICT (%sidempotency_key) WHERE idempotency_key IS NOT NULL "
								 "DO NOTHING", 6),
			6, (Oid[]) {UUIDOID, TEXTOID, JSONBOID, TEXTOID, BYTEAOID, INT8OID});
	values[0] = UUIDPGetDatum(id);
	values[1] = CStringGetTextDatum(kind);
	values[2] = JsonbPGetDatum(metadata);
	values[3] = CStringGetTextDatum(key);
	values[4] = PointerGetDatum(hash);
	values[5] = Int64GetDatum(scope_account);
	ledger_spi_exec(claim_plan[scoped], values, NULL, SPI_OK_INSERT);
	return SPI_processed == 1;
}
