/*-------------------------------------------------------------------------
 *
 * outboxstore.c
 *	  ledger_outbox_put: write one outbox message in the current
 *	  transaction and queue a NOTIFY ledger_outbox (its topic) for commit.
 *	  Used by ledger.enqueue (outbox.c) and by the ledger's own messages:
 *	  every alert (alert.c, which includes every rejected event) and every
 *	  hold that expires (holdexpiry.c).
 *
 * The message exists exactly when the transaction that wrote it commits.
 * Before 0.7.0 there is no outbox: the ledger's own messages are skipped
 * (the install or upgrade is in progress), ledger.enqueue does not exist.
 *
 * Locking: none of its own (a row insert).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "utils/builtins.h"

#define OUTBOX_CHANNEL "ledger_outbox"

/*
 * Write a message; inside SPI.  Returns its id, or 0 when the installed
 * schema has no outbox yet.
 */
int64
ledger_outbox_put(const char *topic, const char *key, Jsonb *payload)
{
	static SPIPlanPtr plan = NULL;
	const LedgerSchema *schema = ledger_schema();
	Datum		values[3];
	bool		isnull;
	int64		id;

	if (schema == NULL || !schema->has_outbox)
		return 0;
	if (plan == NULL)
		plan = ledger_prepare(
			"INSERT INTO ledger.outbox (topic, key, payload) VALUES ($1, $2, $3) RETURNING id",
			3, (Oid[]) {TEXTOID, TEXTOID, JSONBOID});
	values[0] = CStringGetTextDatum(topic);
	values[1] = CStringGetTextDatum(key);
	values[2] = JsonbPGetDatum(payload);
	ledger_spi_exec(plan, values, NULL, SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	/* one notification per topic and transaction: PostgreSQL folds duplicates */
	Async_Notify(OUTBOX_CHANNEL, topic);
	return id;
}
