/*-------------------------------------------------------------------------
 *
 * eventtype.c
 *	  The event types: for each, the payload's keys (the named arguments
 *	  of the ledger function of that type, with their JSON types) and the
 *	  call that applies it.  Checks a payload's shape, checks that a role
 *	  may make the call, and makes it.
 *
 * A payload's values are passed to the call as text parameters (objects
 * and arrays as jsonb text) and cast there, so bad data in an event (an
 * amount or id that does not parse) fails as the call's own class 22
 * error.  Plans are prepared once per type and kept.
 *
 * Locking: none of its own; the calls lock what they lock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"

/* A payload key: its name and JSON type ('s' string, 'o' object, 'a' array, 'b' boolean). */
typedef struct EventKey
{
	const char *name;
	char		type;
	bool		required;
} EventKey;

/* An event type: its keys in the order of the call's parameters, and the call. */
struct LedgerEventType
{
	const char *name;
	EventKey	keys[9];
	const char *call;
	const char *function;		/* whose EXECUTE right the appender needs */
};

typedef struct LedgerEventType EventType;

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

#define NTYPES lengthof(types)

static SPIPlanPtr call_plans[NTYPES];

static int
nkeys(const EventType *t)
{
	int			n = 0;

	while (n < (int) lengthof(t->keys) && t->keys[n].name != NULL)
		n++;
	return n;
}

const LedgerEventType *
ledger_event_type(const char *name)
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

/* The JSON type a key must have, as a fact: string, boolean, object, array. */
static const char *
json_type_key(char type)
{
	return type == 's' ? "string" : type == 'b' ? "boolean" :
		type == 'o' ? "object" : "array";
}

/* LD032 unless the payload has the keys of its type, of their JSON types. */
void
ledger_event_check_payload(const EventType *t, Jsonb *payload)
{
	int			n = nkeys(t);
	int			found = 0;
	int			i;

	if (!JB_ROOT_IS_OBJECT(payload) || JB_ROOT_IS_SCALAR(payload))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("the payload of a %s event must be a JSON object", t->name),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
														  LEDGER_FACT_TEXT("type", t->name),
														  NULL),
											NULL)));
	for (i = 0; i < n; i++)
	{
		JsonbValue	v;
		const EventKey *k = &t->keys[i];

		if (getKeyJsonValueFromContainer(&payload->root, k->name, strlen(k->name), &v) == NULL)
		{
			if (k->required)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_INVALID_EVENT),
						 errmsg("the payload of a %s event needs \"%s\"", t->name, k->name),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
														  LEDGER_FACT_TEXT("type", t->name),
														  LEDGER_FACT_TEXT("key", k->name),
														  NULL),
											NULL)));
			continue;
		}
		found++;
		if (!json_type_is(&v, k->type))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_EVENT),
					 errmsg("\"%s\" in the payload of a %s event must be %s", k->name, t->name,
							json_type_name(k->type)),
					 k->type == 's' && strcmp(k->name, "amount") == 0 ?
					 errhint("Give amounts as decimal strings, such as \"10.25\".") : 0,
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
														  LEDGER_FACT_TEXT("type", t->name),
														  LEDGER_FACT_TEXT("key", k->name),
														  LEDGER_FACT_TEXT("json_type", json_type_key(k->type)),
														  NULL),
											NULL)));
	}
	if (found != JsonContainerSize(&payload->root))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_EVENT),
				 errmsg("the payload of a %s event has keys other than the arguments of ledger.%s",
						t->name, t->name),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
														  LEDGER_FACT_TEXT("type", t->name),
														  NULL),
											NULL)));
}

const char *
ledger_event_type_name(const LedgerEventType *t)
{
	return t->name;
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
void
ledger_event_check_rights(const char *role, const EventType *t, int64 seq)
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
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
													  LEDGER_FACT_TEXT("role", role),
													  LEDGER_FACT_TEXT("type", t->name),
													  LEDGER_FACT_TEXT("function", t->function),
													  NULL),
										"Events of type %s run with the rights of the role that appends them.", t->name)));
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INVALID_EVENT),
			 errmsg("role \"%s\" may not call %s", role, t->function),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_EVENT,
												  LEDGER_FACT_TEXT("role", role),
												  LEDGER_FACT_TEXT("type", t->name),
												  LEDGER_FACT_TEXT("function", t->function),
												  LEDGER_FACT_INT("seq", seq),
												  NULL),
									"Event " INT64_FORMAT " was appended by role \"%s\", which lacks EXECUTE on %s.",
					   seq, role, t->function)));
}

/* Run one event's call. */
void
ledger_event_run(const EventType *t, Jsonb *payload)
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
