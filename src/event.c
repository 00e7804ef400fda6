/*-------------------------------------------------------------------------
 *
 * event.c
 *	  Events: ledger.append_event accepts a request with one insert;
 *	  ledger.apply_events applies accepted events in sequence order, up to
 *	  the horizon (horizon.c), each with the projection's pointer in one
 *	  subtransaction; ledger.event_horizon shows the horizon.
 *
 * Append: the payload's shape is checked for its type (required and
 * optional keys and their JSON types, nothing more), a number is taken
 * from horizon.c and the row inserted.  With an idempotency key, the same
 * request again returns the first event's id; another request with the
 * key gets LD007.
 *
 * Apply: the projection's row is locked first (FOR UPDATE), so appliers
 * take turns and never wait on each other in a circle; then the horizon is
 * read, then the events above the pointer and at or below the horizon are
 * read with a snapshot taken after it (READ COMMITTED only).  Each event
 * runs in a subtransaction: the ledger call its type names.  An event the
 * ledger refuses is rolled back alone, recorded in ledger.event_rejection
 * with its SQLSTATE and message, and alerted (event_rejected, naming the
 * stream's account and owner when the stream is an account).  Then the
 * pointer moves past the batch, conditionally on its previous value, in
 * the same transaction: events and pointer commit together.  An event
 * that fails otherwise (a deadlock, an internal error) ends the batch
 * before it; the attempt is counted on the projection's row, and after
 * EVENT_MAX_ATTEMPTS failures in a row the event is rejected.  A cancel,
 * a shutdown or no memory fails the whole call.  Events run with the
 * rights of the role that appended them (checked at append and apply).  Only refusals (SQLSTATE class LD) and bad data in
 * the event (class 22) reject it; any other error (a deadlock, a
 * serialization failure, a cancel) fails the whole call, so the event is
 * applied by a later one.  An event is applied or rejected exactly once.
 *
 * Locking: the projection row (FOR UPDATE until the caller commits), and
 * whatever the applied calls lock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* A payload key: its name and JSON type ('s' string, 'o' object, 'a' array, 'b' boolean). */
typedef struct EventKey
{
	const char *name;
	char		type;
	bool		required;
} EventKey;

/* An event type: its keys in the order of the call's parameters, and the call. */
typedef struct EventType
{
	const char *name;
	EventKey	keys[9];
	const char *call;
	const char *function;		/* whose EXECUTE right the appender needs */
} EventType;

static const EventType types[] = {
	{"transfer", {{"from_account", 's', true}, {"to_account", 's', true}, {"amount", 's', true},
	 {"idempotency_key", 's', false}, {"metadata", 'o', false}},
	"SELECT ledger.transfer($1, $2, $3::pg_catalog.numeric, $4, COALESCE($5::pg_catalog.jsonb, '{}'))",
	"ledger.transfer(text, text, numeric, text, jsonb)"},
	{"post", {{"legs", 'a', true}, {"idempotency_key", 's', false}, {"metadata", 'o', false}},
	"SELECT ledger.post($1::pg_catalog.jsonb, $2, COALESCE($3::pg_catalog.jsonb, '{}'))",
	"ledger.post(jsonb, text, jsonb)"},
	{"hold", {{"from_account", 's', true}, {"amount", 's', true}, {"to_account", 's', false},
	 {"mode", 's', false}, {"external_ref", 's', false}, {"submit_within", 's', false},
	 {"confirm_within", 's', false}, {"idempotency_key", 's', false}, {"metadata", 'o', false}},
	"SELECT ledger.hold($1, $2::pg_catalog.numeric, $3, COALESCE($4, 'exclusive'), $5, "
	"COALESCE($6::pg_catalog.interval, '3 minutes'), COALESCE($7::pg_catalog.interval, '6 minutes'), "
	"$8, COALESCE($9::pg_catalog.jsonb, '{}'))",
	"ledger.hold(text, numeric, text, text, text, interval, interval, text, jsonb)"},
	{"mark_submitted", {{"hold_id", 's', true}, {"external_ref", 's', false}},
	"SELECT ledger.mark_submitted($1::pg_catalog.uuid, $2)",
	"ledger.mark_submitted(uuid, text)"},
	{"capture", {{"hold_id", 's', true}, {"amount", 's', false}, {"idempotency_key", 's', false}},
	"SELECT ledger.capture($1::pg_catalog.uuid, $2::pg_catalog.numeric, $3)",
	"ledger.capture(uuid, numeric, text)"},
	{"void", {{"hold_id", 's', true}, {"reason", 's', true}, {"idempotency_key", 's', false}},
	"SELECT ledger.void($1::pg_catalog.uuid, $2, $3)",
	"ledger.void(uuid, text, text)"},
	{"invalidate", {{"transaction_id", 's', true}, {"reason", 's', true}, {"force", 'b', false}},
	"SELECT pg_catalog.count(*) FROM ledger.invalidate($1::pg_catalog.uuid, $2, "
	"COALESCE($3::pg_catalog.bool, false))",
	"ledger.invalidate(uuid, text, boolean)"},
};

typedef struct Pending
{
	int64		seq;
	pg_uuid_t	id;
	char	   *stream;
	char	   *type;
	Jsonb	   *payload;
	char	   *appended_by;	/* the role that appended it */
} Pending;

#define NTYPES lengthof(types)

/* An event that fails otherwise than by a refusal this many times is rejected. */
#define EVENT_MAX_ATTEMPTS 5

static void check_rights(const char *role, const EventType *t, int64 seq);
static SPIPlanPtr call_plans[NTYPES];

static int
nkeys(const EventType *t)
{
	int			n = 0;

	while (n < (int) lengthof(t->keys) && t->keys[n].name != NULL)
		n++;
	return n;
}

static const EventType *
find_type(const char *name)
{
	int			i;

	for (i = 0; i < (int) NTYPES; i++)
		if (strcmp(types[i].name, name) == 0)
			return &types[i];
	return NULL;
}

static bool
json_type_is(JsonbValue *v, char type)
{
	switch (type)
	{
		case 's':
			return v->type == jbvString;
		case 'b':
			return v->type == jbvBool;
		case 'o':
			return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
		case 'a':
			return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
	}
	return false;
}

static const char *
json_type_name(char type)
{
	return type == 's' ? "a string" : type == 'b' ? "a boolean" :
		type == 'o' ? "an object" : "an array";
}

/* LD032 unless the payload has the keys of its type, of their JSON types. */
static void
check_payload(const EventType *t, Jsonb *payload)
{
	int			n = nkeys(t);
	int			found = 0;
	int			i;

	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("the payload of a %s event must be a JSON object", t->name)));
	for (i = 0; i < n; i++)
	{
		JsonbValue	v;
		const EventKey *k = &t->keys[i];

		if (getKeyJsonValueFromContainer(&payload->root, k->name, strlen(k->name), &v) == NULL)
		{
			if (k->required)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_INVALID_EVENT),
						 errmsg("the payload of a %s event needs \"%s\"", t->name, k->name)));
			continue;
		}
		found++;
		if (!json_type_is(&v, k->type))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_EVENT),
					 errmsg("\"%s\" in the payload of a %s event must be %s", k->name, t->name,
							json_type_name(k->type)),
					 k->type == 's' && strcmp(k->name, "amount") == 0 ?
					 errhint("Give amounts as decimal strings, such as \"10.25\".") : 0));
	}
	if (found != JsonContainerSize(&payload->root))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("the payload of a %s event has keys other than the arguments of ledger.%s",
						t->name, t->name)));
}

/*
 * This database's ledger.event, and its counter of event numbers, loaded
 * on first use (and again when the table is another one).
 */
static Oid
ensure_loaded(void)
{
	static SPIPlanPtr max_plan = NULL;
	const LedgerSchema *schema = ledger_schema();
	Oid			relid = schema ? schema->event : InvalidOid;
	bool		isnull;
	Datum		d;

	if (!OidIsValid(relid))
		elog(ERROR, "table ledger.event does not exist");
	if (ledger_horizon_loaded(relid))
		return relid;
	if (max_plan == NULL)
		max_plan = ledger_prepare("SELECT max(seq) FROM ledger.event", 0, NULL);
	ledger_spi_exec(max_plan, NULL, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	ledger_horizon_load(relid, isnull ? 0 : DatumGetInt64(d));
	return relid;
}

PG_FUNCTION_INFO_V1(ledger_append_event);

Datum
ledger_append_event(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr key_plan = NULL;
	char	   *stream;
	char	   *type;
	const EventType *t;
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
	t = find_type(type);
	if (t == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("unknown event type \"%s\"", type),
				 errhint("Event types: transfer, post, hold, mark_submitted, capture, void, invalidate.")));
	if (VARSIZE(payload) > LEDGER_MAX_METADATA_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("the payload of an event must be at most %d bytes", LEDGER_MAX_METADATA_SIZE)));
	check_payload(t, payload);
	PreventCommandIfReadOnly("ledger.append_event");
	ledger_horizon_require();

	SPI_connect();
	relid = ensure_loaded();
	check_rights(GetUserNameFromId(GetOuterUserId(), false), t, -1);
	if (key)
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfo(&buf, "event\n%u\n%zu:%s\n%s\n", GetOuterUserId(), strlen(stream), stream,
						 t->name);
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
	values[3] = CStringGetTextDatum(t->name);
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

/* The payload's value of a key as a parameter: text, jsonb for objects and arrays. */
static void
payload_arg(Jsonb *payload, const EventKey *k, Datum *value, char *null)
{
	JsonbValue	v;

	*null = ' ';
	if (getKeyJsonValueFromContainer(&payload->root, k->name, strlen(k->name), &v) == NULL)
	{
		*null = 'n';
		*value = (Datum) 0;
	}
	else if (v.type == jbvString)
		*value = PointerGetDatum(cstring_to_text_with_len(v.val.string.val, v.val.string.len));
	else if (v.type == jbvBool)
		*value = CStringGetTextDatum(v.val.boolean ? "true" : "false");
	else
		*value = CStringGetTextDatum(JsonbToCString(NULL, v.val.binary.data, v.val.binary.len));
}

/*
 * The appender must be allowed to make the call itself: appending is no
 * way around a missing EXECUTE right (an application role that may append
 * must not get an invalidation with force run by the applier's rights).
 * Checked when appending (seq -1) and again when applying, since rights
 * may have been revoked meanwhile; a role that no longer exists may do
 * nothing.
 */
static void
check_rights(const char *role, const EventType *t, int64 seq)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2];
	bool		isnull;
	bool		allowed;

	if (plan == NULL)
		plan = ledger_prepare(
			"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1) "
			"   AND pg_catalog.has_function_privilege($1, $2, 'EXECUTE')",
			2, (Oid[]) {TEXTOID, TEXTOID});
	values[0] = CStringGetTextDatum(role);
	values[1] = CStringGetTextDatum(t->function);
	ledger_spi_exec(plan, values, NULL, SPI_OK_SELECT);
	allowed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (!isnull && allowed)
		return;
	if (seq < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("role \"%s\" may not call %s", role, t->function),
				 errdetail("Events of type %s run with the rights of the role that appends them.", t->name)));
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INVALID_EVENT),
			 errmsg("role \"%s\" may not call %s", role, t->function),
			 errdetail("Event " INT64_FORMAT " was appended by role \"%s\", which lacks EXECUTE on %s.",
					   seq, role, t->function)));
}

/* Run one event's call. */
static void
run_event(const EventType *t, Jsonb *payload)
{
	int			idx = t - types;
	int			n = nkeys(t);
	Datum		values[9];
	char		nulls[9];
	Oid			argtypes[9];
	int			i;

	for (i = 0; i < n; i++)
	{
		argtypes[i] = TEXTOID;
		payload_arg(payload, &t->keys[i], &values[i], &nulls[i]);
	}
	if (call_plans[idx] == NULL)
		call_plans[idx] = ledger_prepare(t->call, n, argtypes);
	ledger_spi_exec(call_plans[idx], values, nulls, SPI_OK_SELECT);
}


/*
 * Is an error the ledger's refusal of the event (class LD: insufficient
 * funds, an unknown account, an illegal hold move, ...; not the retryable
 * LD019, LD020 and LD021) or bad data in it (class 22: an amount or id that does
 * not parse)?  Anything else (a
 * deadlock, a serialization failure, a cancel, no memory) is not the
 * event's fault: the whole call fails and the event is applied later.
 */
static bool
is_refusal(int sqlerrcode)
{
	/* a hot account changing mode, not yet loaded or not served here: retry */
	if (sqlerrcode == ERRCODE_LEDGER_MODE_CHANGED || sqlerrcode == ERRCODE_LEDGER_HOT_NOT_READY ||
		sqlerrcode == ERRCODE_LEDGER_HOT_UNAVAILABLE)
		return false;
	return ERRCODE_TO_CATEGORY(sqlerrcode) == MAKE_SQLSTATE('L', 'D', '0', '0', '0') ||
		ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION;
}

/* Record a refused event and alert. */
static void
reject(Pending *e, ErrorData *err)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	LedgerAccount a;
	TransactionId xmin;
	LedgerJson *j;

	if (plan == NULL)
		plan = ledger_prepare(
			"INSERT INTO ledger.event_rejection (seq, event_id, sqlstate, message, detail) "
			"VALUES ($1, $2, $3, $4, $5)",
			5, (Oid[]) {INT8OID, UUIDOID, TEXTOID, TEXTOID, TEXTOID});
	values[0] = Int64GetDatum(e->seq);
	values[1] = UUIDPGetDatum(&e->id);
	values[2] = CStringGetTextDatum(unpack_sql_state(err->sqlerrcode));
	values[3] = CStringGetTextDatum(err->message ? err->message : "");
	values[4] = err->detail ? CStringGetTextDatum(err->detail) : (Datum) 0;
	nulls[4] = err->detail ? ' ' : 'n';
	ledger_spi_exec(plan, values, nulls, SPI_OK_INSERT);

	j = ledger_json_begin();
	ledger_json_text(j, "event_id", ledger_uuid_str(&e->id));
	ledger_json_int(j, "seq", e->seq);
	ledger_json_text(j, "stream", e->stream);
	ledger_json_text(j, "type", e->type);
	ledger_json_text(j, "sqlstate", unpack_sql_state(err->sqlerrcode));
	ledger_json_text(j, "message", err->message ? err->message : "");
	ledger_raise_alert("warning", "event_rejected",
					   ledger_lookup_account(e->stream, &a, &xmin) ? a.id : 0,
					   ledger_json_end(j));
}

/*
 * Count a failed attempt at an event on the projection's row (locked):
 * returns how many times in a row it has failed.
 */
static int
count_attempt(Pending *e, ErrorData *err)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];
	bool		isnull;

	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.projection SET "
			"  stuck_attempts = CASE WHEN stuck_seq = $1 THEN stuck_attempts + 1 ELSE 1 END, "
			"  stuck_seq = $1, stuck_sqlstate = $2, stuck_message = $3, updated_at = pg_catalog.now() "
			" WHERE name = 'ledger' RETURNING stuck_attempts",
			3, (Oid[]) {INT8OID, TEXTOID, TEXTOID});
	values[0] = Int64GetDatum(e->seq);
	values[1] = CStringGetTextDatum(unpack_sql_state(err->sqlerrcode));
	values[2] = CStringGetTextDatum(err->message ? err->message : "");
	ledger_spi_exec(plan, values, NULL, SPI_OK_UPDATE_RETURNING);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
move_pointer(int64 from, int64 to, int applied, int rejected)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[4];

	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.projection SET last_sequence = $2, applied = applied + $3, "
			"  rejected = rejected + $4, updated_at = pg_catalog.now() "
			" WHERE name = 'ledger' AND last_sequence = $1",
			4, (Oid[]) {INT8OID, INT8OID, INT4OID, INT4OID});
	values[0] = Int64GetDatum(from);
	values[1] = Int64GetDatum(to);
	values[2] = Int32GetDatum(applied);
	values[3] = Int32GetDatum(rejected);
	ledger_spi_exec(plan, values, NULL, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		elog(ERROR, "the projection's pointer moved from " INT64_FORMAT " under its row lock", from);
}

/* Lock the projection's row (made on first use) and read its pointer. */
static int64
lock_pointer(void)
{
	static SPIPlanPtr make_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	bool		isnull;

	if (make_plan == NULL)
	{
		make_plan = ledger_prepare(
			"INSERT INTO ledger.projection (name) VALUES ('ledger') ON CONFLICT DO NOTHING",
			0, NULL);
		lock_plan = ledger_prepare(
			"SELECT last_sequence FROM ledger.projection WHERE name = 'ledger' FOR UPDATE",
			0, NULL);
	}
	ledger_spi_exec(make_plan, NULL, NULL, SPI_OK_INSERT);
	ledger_spi_exec(lock_plan, NULL, NULL, SPI_OK_SELECT);
	Assert(SPI_processed == 1);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* The events after the pointer, up to the horizon, in order. */
static Pending *
read_pending(int64 last, int64 horizon, int max, int *n)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];
	Pending    *p;
	uint64		i;

	if (plan == NULL)
		plan = ledger_prepare(
			"SELECT seq, id, stream, type, payload, appended_by FROM ledger.event "
			" WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
			3, (Oid[]) {INT8OID, INT8OID, INT4OID});
	values[0] = Int64GetDatum(last);
	values[1] = Int64GetDatum(horizon);
	values[2] = Int32GetDatum(max);
	ledger_spi_exec(plan, values, NULL, SPI_OK_SELECT);
	*n = (int) SPI_processed;
	p = palloc0(sizeof(Pending) * Max(*n, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		p[i].seq = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		memcpy(&p[i].id, DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull)), sizeof(pg_uuid_t));
		p[i].stream = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		p[i].type = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		p[i].payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 5, &isnull));
		p[i].appended_by = TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return p;
}

/* One event's call, with the appender's rights checked (run by ledger_try). */
static void
apply_one(void *arg)
{
	Pending    *e = (Pending *) arg;
	const EventType *t = find_type(e->type);

	if (t == NULL)
		elog(ERROR, "unknown event type \"%s\"", e->type);
	check_rights(e->appended_by, t, e->seq);
	run_event(t, e->payload);
}

PG_FUNCTION_INFO_V1(ledger_apply_events);

Datum
ledger_apply_events(PG_FUNCTION_ARGS)
{
	int			max;
	int64		last;
	int64		horizon;
	Pending    *p;
	int			n;
	int			applied = 0;
	int			rejected = 0;
	int			i;
	Oid			relid;

	LEDGER_REQUIRE_ARG(0, "max_events");
	max = PG_GETARG_INT32(0);
	if (max < 1 || max > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("max_events must be between 1 and 100000"),
				 errdetail("max_events is %d.", max)));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("ledger.apply_events runs under READ COMMITTED only"),
				 errdetail("It reads events with a snapshot taken after the horizon; this transaction's snapshot is older.")));
	PreventCommandIfReadOnly("ledger.apply_events");
	ledger_horizon_require();

	SPI_connect();
	relid = ensure_loaded();
	last = lock_pointer();
	horizon = ledger_horizon(relid);	/* first the horizon, then the snapshot */
	p = read_pending(last, horizon, max, &n);
	for (i = 0; i < n; i++)
	{
		ErrorData  *err;

		Assert(p[i].seq > (i == 0 ? last : p[i - 1].seq) && p[i].seq <= horizon);
		err = ledger_try(apply_one, &p[i]);	/* its own subtransaction */
		if (err != NULL && !is_refusal(err->sqlerrcode))
		{
			/* a cancel, a shutdown, no memory: this call ends here */
			if (ERRCODE_TO_CATEGORY(err->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION ||
				ERRCODE_TO_CATEGORY(err->sqlerrcode) == ERRCODE_INSUFFICIENT_RESOURCES)
				ReThrowError(err);
			/*
			 * Not the event's fault, as far as we know (a deadlock, a
			 * serialization failure, an internal error): stop before it,
			 * keeping what the batch applied, and count the attempt.  The
			 * next call tries again; after EVENT_MAX_ATTEMPTS failures in a
			 * row the event is rejected, so one bad event cannot stop
			 * every later one for good.
			 */
			if (count_attempt(&p[i], err) < EVENT_MAX_ATTEMPTS)
			{
				ereport(WARNING,
						(errmsg("event " INT64_FORMAT " could not be applied: %s", p[i].seq, err->message),
						 errdetail("It is retried by the next call of ledger.apply_events; after %d failures in a row it is rejected.",
								   EVENT_MAX_ATTEMPTS)));
				FreeErrorData(err);
				n = i;			/* the batch ends before it */
				break;
			}
		}
		if (err != NULL)
		{
			/* refused: recorded, alerted, and the pointer moves on */
			reject(&p[i], err);
			FreeErrorData(err);
			rejected++;
		}
		else
			applied++;
	}
	/*
	 * The pointer moves past every event of the batch, in the transaction
	 * that applied them, conditionally on where it was: the events and the
	 * pointer commit together or not at all.  (Once per batch: a row
	 * updated once per event in one transaction makes each update walk
	 * every earlier version.)
	 */
	if (n > 0)
		move_pointer(last, p[n - 1].seq, applied, rejected);
	SPI_finish();
	PG_RETURN_INT32(applied + rejected);
}

PG_FUNCTION_INFO_V1(ledger_event_horizon);

Datum
ledger_event_horizon(PG_FUNCTION_ARGS)
{
	Oid			relid;

	ledger_horizon_require();
	SPI_connect();
	relid = ensure_loaded();
	SPI_finish();
	PG_RETURN_INT64(ledger_horizon(relid));
}
