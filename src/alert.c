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
 * Every alert is also an outbox message (topic ledger.alert), for
 * consumers that must not miss one.
 *
 * Details are built from values (LedgerJson below, jsonb's own builder):
 * numbers go in as numerics, text as JSON strings, never pasted from
 * display text, so any amount within the ledger's limits and any hostile
 * string make a valid document.
 *
 * Locking: the row lock of the UPDATE in acknowledge_alert, nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#define ALERT_CHANNEL "ledger_alerts"
#define MAX_PAYLOAD 7900		/* NOTIFY payloads must stay below 8000 bytes */

static SPIPlanPtr insert_alert_plan = NULL;
static SPIPlanPtr ack_plan = NULL;
static SPIPlanPtr alert_exists_plan = NULL;

/* ---------------------------------------------------------------------
 * A JSON object built from values
 * ---------------------------------------------------------------------
 */
struct LedgerJson
{
	JsonbParseState *state;
};

LedgerJson *
ledger_json_begin(void)
{
	LedgerJson *j = palloc0(sizeof(LedgerJson));

	pushJsonbValue(&j->state, WJB_BEGIN_OBJECT, NULL);
	return j;
}

static void
put(LedgerJson *j, const char *key, JsonbValue *v)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(&j->state, WJB_KEY, &k);
	pushJsonbValue(&j->state, WJB_VALUE, v);
}

/* A numeric value; NULL gives JSON null. */
void
ledger_json_numeric(LedgerJson *j, const char *key, Numeric n)
{
	JsonbValue	v;

	v.type = n ? jbvNumeric : jbvNull;
	if (n)
		v.val.numeric = n;
	put(j, key, &v);
}

void
ledger_json_int(LedgerJson *j, const char *key, int64 i)
{
	ledger_json_numeric(j, key, int64_to_numeric(i));
}

/* A string value; NULL gives JSON null. */
void
ledger_json_text(LedgerJson *j, const char *key, const char *s)
{
	JsonbValue	v;

	v.type = s ? jbvString : jbvNull;
	if (s)
	{
		v.val.string.val = (char *) s;
		v.val.string.len = strlen(s);
	}
	put(j, key, &v);
}

/* A timestamp as an ISO 8601 string in UTC, whatever the session's DateStyle and TimeZone. */
void
ledger_json_timestamptz(LedgerJson *j, const char *key, TimestampTz ts)
{
	ledger_json_text(j, key, ledger_timestamptz_iso(ts));	/* kept until ledger_json_end */
}

/* A time as JSON writes it, in UTC (ISO 8601). */
char *
ledger_timestamptz_iso(TimestampTz ts)
{
	char		buf[MAXDATELEN + 1];
	int			utc = 0;

	JsonEncodeDateTime(buf, TimestampTzGetDatum(ts), TIMESTAMPTZOID, &utc);
	return pstrdup(buf);
}

void
ledger_json_bool(LedgerJson *j, const char *key, bool b)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = b;
	put(j, key, &v);
}

/* A JSON document, nested as it is. */
void
ledger_json_jsonb(LedgerJson *j, const char *key, Jsonb *doc)
{
	JsonbValue	v;

	v.type = jbvBinary;
	v.val.binary.data = &doc->root;
	v.val.binary.len = VARSIZE(doc) - VARHDRSZ;
	put(j, key, &v);
}

Jsonb *
ledger_json_end(LedgerJson *j)
{
	JsonbValue *res = pushJsonbValue(&j->state, WJB_END_OBJECT, NULL);

	return JsonbValueToJsonb(res);
}

/*
 * Write an alert, queue its NOTIFY, and write it as an outbox message
 * (topic ledger.alert, key the account code or "ledger": outboxstore.c).
 * account_id 0 means no account.
 * Must be called inside SPI.  Returns the alert id.
 */
int64
ledger_raise_alert(const char *severity, const char *kind, int64 account_id,
				   Jsonb *details)
{
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;
	char	   *payload;
	Jsonb	   *message;
	char	   *key;

	if (insert_alert_plan == NULL)
		insert_alert_plan = ledger_prepare(
			"INSERT INTO ledger.alert (severity, kind, account_id, account, owner_id, details) "
			"SELECT $1, $2, $3, a.code, a.owner_id, $4 "
			"FROM (SELECT 1) one LEFT JOIN ledger.account a ON a.id = $3 "
			"RETURNING id, pg_catalog.jsonb_build_object('alert_id', id, 'severity', severity, "
			"'kind', kind, 'account', account, 'owner_id', owner_id, "
			"'details', details)::text, "
			"pg_catalog.jsonb_build_object('alert_id', id, 'severity', severity, "
			"'kind', kind, 'account', account, 'owner_id', owner_id)::text, "
			"pg_catalog.jsonb_build_object('alert_id', id, 'severity', severity, "
			"'kind', kind, 'account', account, 'owner_id', owner_id, "
			"'details', details, 'created_at', created_at), "
			"COALESCE(account, 'ledger')",
			4, (Oid[]) {TEXTOID, TEXTOID, INT8OID, JSONBOID});

	values[0] = CStringGetTextDatum(severity);
	values[1] = CStringGetTextDatum(kind);
	values[2] = Int64GetDatum(account_id);
	nulls[2] = account_id != 0 ? ' ' : 'n';
	values[3] = JsonbPGetDatum(details);
	ledger_spi_exec(insert_alert_plan, values, nulls, SPI_OK_INSERT_RETURNING);

	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	payload = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (strlen(payload) > MAX_PAYLOAD)
		payload = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	Async_Notify(ALERT_CHANNEL, payload);
	message = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5);
	SPI_freetuptable(SPI_tuptable);
	/* and an outbox message, topic ledger.alert, keyed by the account */
	(void) ledger_outbox_put("ledger.alert", key, message);

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
					 errmsg("alert " INT64_FORMAT " does not exist", id),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ALERT,
														  LEDGER_FACT_INT("alert_id", id),
														  NULL),
											NULL)));
	}
	SPI_finish();

	PG_RETURN_BOOL(acknowledged);
}
