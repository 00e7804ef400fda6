/*-------------------------------------------------------------------------
 *
 * alert.c
 *	  ledger.alert rows and their NOTIFY on channel ledger_alerts, and
 *	  ledger.acknowledge_alert.
 *
 * An alert is written in the caller's transaction and its NOTIFY is sent
 * when that transaction commits, so listeners never hear of an alert that
 * was rolled back.  The payload is a JSON object naming the alert id,
 * severity, kind, account, owner and details; if that exceeds NOTIFY's
 * limit the details are left out of the payload (they stay in the table).
 *
 * Locking: the row lock of the UPDATE in acknowledge_alert, nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "fmgr.h"
#include "utils/builtins.h"

#define ALERT_CHANNEL "ledger_alerts"
#define MAX_PAYLOAD 7900		/* NOTIFY payloads must stay below 8000 bytes */

static SPIPlanPtr insert_alert_plan = NULL;
static SPIPlanPtr ack_plan = NULL;
static SPIPlanPtr alert_exists_plan = NULL;

/*
 * Write an alert and queue its NOTIFY.  account_id 0 means no account.
 * Must be called inside SPI.  Returns the alert id.
 */
int64
ledger_raise_alert(const char *severity, const char *kind, int64 account_id,
				   const char *details_json)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;
	char	   *payload;

	if (insert_alert_plan == NULL)
		insert_alert_plan = ledger_prepare(
			"INSERT INTO ledger.alert (severity, kind, account_id, account, owner_id, details) "
			"SELECT $1, $2, $3, a.code, a.owner_id, $4::jsonb "
			"FROM (SELECT 1) one LEFT JOIN ledger.account a ON a.id = $3 "
			"RETURNING id, pg_catalog.jsonb_build_object('alert_id', id, 'severity', severity, "
			"'kind', kind, 'account', account, 'owner_id', owner_id, "
			"'details', details)::text, "
			"pg_catalog.jsonb_build_object('alert_id', id, 'severity', severity, "
			"'kind', kind, 'account', account, 'owner_id', owner_id)::text",
			4, (Oid[]) {TEXTOID, TEXTOID, INT8OID, TEXTOID});

	values[0] = CStringGetTextDatum(severity);
	values[1] = CStringGetTextDatum(kind);
	values[2] = Int64GetDatum(account_id);
	nulls[2] = account_id != 0 ? ' ' : 'n';
	values[3] = CStringGetTextDatum(details_json);
	ledger_spi_exec(insert_alert_plan, values, nulls, SPI_OK_INSERT_RETURNING);

	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	payload = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (strlen(payload) > MAX_PAYLOAD)
		payload = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	Async_Notify(ALERT_CHANNEL, payload);
	SPI_freetuptable(SPI_tuptable);

	return id;
}

PG_FUNCTION_INFO_V1(ledger_acknowledge_alert);

Datum
ledger_acknowledge_alert(PG_FUNCTION_ARGS)
{
	int64		id;
	Datum		values[1];
	bool		acknowledged;

	LEDGER_REQUIRE_ARG(0, "id");
	id = PG_GETARG_INT64(0);

	SPI_connect();
	if (alert_exists_plan == NULL)
	{
		ack_plan = ledger_prepare(
			"UPDATE ledger.alert SET acknowledged_at = pg_catalog.now(), "
			"acknowledged_by = session_user "
			"WHERE id = $1 AND acknowledged_at IS NULL",
			1, (Oid[]) {INT8OID});
		alert_exists_plan = ledger_prepare(
			"SELECT 1 FROM ledger.alert WHERE id = $1", 1, (Oid[]) {INT8OID});
	}
	values[0] = Int64GetDatum(id);
	ledger_spi_exec(ack_plan, values, NULL, SPI_OK_UPDATE);
	acknowledged = SPI_processed == 1;
	if (!acknowledged)
	{
		ledger_spi_exec(alert_exists_plan, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_UNKNOWN_ALERT),
					 errmsg("alert " INT64_FORMAT " does not exist", id)));
	}
	SPI_finish();

	PG_RETURN_BOOL(acknowledged);
}
