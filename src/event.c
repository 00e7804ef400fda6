/*-------------------------------------------------------------------------
 *
 * event.c
 *	  ledger.append_event accepts a request with one insert, and
 *	  ledger.event_horizon shows the horizon.  Applying events is apply.c's.
 *
 * Append: the payload's shape is checked for its type (eventtype.c:
 * required and optional keys and their JSON types, nothing more), the
 * appender's right to make the call is checked, a number is taken from
 * horizon.c (claimed by this transaction until it ends) and the row
 * inserted.  With an idempotency key, the same request again returns the
 * first event's id; another request with the key gets LD007.  At commit,
 * horizon.c wakes the event worker.
 *
 * Locking: none of its own; the number's claim is horizon.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(ledger_append_event);

Datum
ledger_append_event(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr key_plan = NULL;
	char	   *stream;
	char	   *type;
	const LedgerEventType *t;
	Jsonb	   *payload;
	char	   *key = NULL;
	bytea	   *hash = NULL;
	Oid			relid;
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	LEDGER_REQUIRE_ARG(0, "stream");
	LEDGER_REQUIRE_ARG(1, "type");
	LEDGER_REQUIRE_ARG(2, "payload");
	stream = ledger_check_code(PG_GETARG_TEXT_PP(0), "stream");
	type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	payload = PG_GETARG_JSONB_P(2);
	key = ledger_optional_code(fcinfo, 3, "idempotency_key");
	t = ledger_event_type(type);
	if (t == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("unknown event type \"%s\"", type),
				 errhint("Event types: transfer, post, hold, mark_submitted, capture, void, invalidate."),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
														  LEDGER_FACT_TEXT("type", strlen(type) <= 200 ? type : NULL),
														  NULL),
											NULL)));
	if (VARSIZE(payload) > LEDGER_MAX_METADATA_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("the payload of an event must be at most %d bytes", LEDGER_MAX_METADATA_SIZE),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
														  LEDGER_FACT_TEXT("type", type),
														  LEDGER_FACT_INT("bytes", VARSIZE(payload)),
														  LEDGER_FACT_INT("max_bytes", LEDGER_MAX_METADATA_SIZE),
														  NULL),
											NULL)));
	ledger_event_check_payload(t, payload);
	PreventCommandIfReadOnly("ledger.append_event");
	ledger_horizon_require();

	SPI_connect();
	relid = ledger_event_relid();
	ledger_event_check_rights(GetUserNameFromId(GetOuterUserId(), false), t, -1);
	if (key)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfo(&buf, "event\n%u\n%zu:%s\n%s\n", GetOuterUserId(), strlen(stream), stream,
						 ledger_event_type_name(t));
		appendStringInfoString(&buf, JsonbToCString(NULL, &payload->root, VARSIZE(payload)));
		hash = ledger_fingerprint(buf.data, buf.len);
	}
	if (insert_plan == NULL)
	{
		insert_plan = ledger_prepare(
			"INSERT INTO ledger.event (seq, id, stream, type, payload, idempotency_key, request_hash, "
			"  appended_by) "
			"VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
			"ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
			8, (Oid[]) {INT8OID, UUIDOID, TEXTOID, TEXTOID, JSONBOID, TEXTOID, BYTEAOID, TEXTOID});
		key_plan = ledger_prepare(
			"SELECT id, request_hash FROM ledger.event WHERE idempotency_key = $1",
			1, (Oid[]) {TEXTOID});
	}
	ledger_uuidv7(id);
	values[0] = Int64GetDatum(ledger_horizon_next(relid));
	values[1] = UUIDPGetDatum(id);
	values[2] = CStringGetTextDatum(stream);
	values[3] = CStringGetTextDatum(ledger_event_type_name(t));
	values[4] = JsonbPGetDatum(payload);
	values[5] = key ? CStringGetTextDatum(key) : (Datum) 0;
	nulls[5] = key ? ' ' : 'n';
	values[6] = hash ? PointerGetDatum(hash) : (Datum) 0;
	nulls[6] = hash ? ' ' : 'n';
	/* the calling role (outside SECURITY DEFINER): the event runs with its rights */
	values[7] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	ledger_spi_exec(insert_plan, values, nulls, SPI_OK_INSERT);
	if (SPI_processed == 0)
	{
		bool		isnull;
		Datum		h;

		/* the key is taken (its number is left unused: a gap, never applied) */
		ledger_spi_exec(key_plan, &values[5], NULL, SPI_OK_SELECT);
		if (SPI_processed != 1)
			elog(ERROR, "idempotency key \"%s\" conflicted but its event is not visible", key);
		memcpy(id, DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull)), sizeof(pg_uuid_t));
		h = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		ledger_require_same_request(key, isnull ? NULL : DatumGetByteaPP(h), hash, "event", id);
	}
	SPI_finish();
	PG_RETURN_UUID_P(id);
}

PG_FUNCTION_INFO_V1(ledger_event_horizon);

Datum
ledger_event_horizon(PG_FUNCTION_ARGS)
{
	Oid			relid;

	ledger_horizon_require();
	SPI_connect();
	relid = ledger_event_relid();
	SPI_finish();
	PG_RETURN_INT64(ledger_horizon(relid));
}
