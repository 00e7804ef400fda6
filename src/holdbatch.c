/*-------------------------------------------------------------------------
 *
 * holdbatch.c
 *	  Batches of hold moves: ledger.hold_batch, ledger.capture_batch and
 *	  ledger.void_batch.  Each takes a JSON array of items, each an object
 *	  with the single call's argument names as keys, and returns one row
 *	  per item in input order: 'ok' with the hold id, the capture's
 *	  transaction or the amount released, or the item's LD SQLSTATE, its
 *	  message and structured facts.
 *
 *	  Each item runs the single call's own code (hold.c, capture.c) with
 *	  its arguments read from the object, and the single call's defaults
 *	  for the keys left out.  So floors, limits, windows, keys, hot
 *	  accounts and the acting owner hold for every item, and a later item
 *	  sees what earlier ones did.  A hold move writes through prepared
 *	  statements, so an item of a batch that is not atomic runs in a
 *	  subtransaction of its own (as many as LEDGER_MAX_BATCH_ITEMS_SUBXACT):
 *	  a refused item (an LD error, or bad input of class 22) is rolled back
 *	  alone and reported; any other error ends the call.  atomic => true:
 *	  the first refusal fails the call, its context naming the item.  A
 *	  batch counts as one call for the rate limit.
 *
 * Locking: before the first item, the balance rows of the cold accounts
 *	  the items lock (a hold's or a void's held account; a capture's held
 *	  account and destination) are locked in account id order.  A hold move
 *	  locks balance rows, in id order, before the hold's own row; so the
 *	  items find their balance rows locked by their own transaction, and
 *	  two batches, or a batch and single moves, never wait for each other
 *	  in a circle.  Items whose hold or account does not exist are skipped
 *	  here and refused when they run.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#define HB_MAX_ARGS 9

/* One argument of the single call: its name, type and default. */
typedef struct HoldArg
{
	const char *name;
	Oid			type;
	const char *dflt;			/* input text of its SQL default; NULL: none */
} HoldArg;

/* One kind of batch: the single call and its arguments, as sql/ declares them. */
typedef struct HoldKind
{
	const char *what;			/* the batch's name, for errors */
	const char *items;			/* its argument's name */
	const char *single;			/* the single call, as a regprocedure */
	PGFunction	fn;
	int			nargs;
	HoldArg		args[HB_MAX_ARGS];
	Oid			result;			/* of the single call: its row's value */
} HoldKind;

static const HoldKind hold_kind = {
	"ledger.hold_batch", "holds",
	"ledger.hold(text, numeric, text, text, text, interval, interval, text, jsonb)", ledger_hold, 9,
	{{"from_account", TEXTOID, NULL}, {"amount", NUMERICOID, NULL},
	 {"to_account", TEXTOID, NULL}, {"mode", TEXTOID, "exclusive"},
	 {"external_ref", TEXTOID, NULL}, {"submit_within", INTERVALOID, "3 minutes"},
	 {"confirm_within", INTERVALOID, "6 minutes"}, {"idempotency_key", TEXTOID, NULL},
	 {"metadata", JSONBOID, "{}"}},
	UUIDOID
};

static const HoldKind capture_kind = {
	"ledger.capture_batch", "captures", "ledger.capture(uuid, numeric, text)", ledger_capture, 3,
	{{"hold_id", UUIDOID, NULL}, {"amount", NUMERICOID, NULL},
	 {"idempotency_key", TEXTOID, NULL}},
	UUIDOID
};

static const HoldKind void_kind = {
	"ledger.void_batch", "voids", "ledger.void(uuid, text, text)", ledger_void, 3,
	{{"hold_id", UUIDOID, NULL}, {"reason", TEXTOID, NULL},
	 {"idempotency_key", TEXTOID, NULL}},
	NUMERICOID
};

typedef struct HoldItem
{
	const HoldKind *kind;
	JsonbValue	v;				/* the item as given */
	int			number;			/* 1-based */
	/* result */
	Datum		value;
	int			sqlerrcode;		/* 0: ok */
	char	   *message;
	Jsonb	   *facts;
} HoldItem;

/*
 * The batch runs the single call's C function directly, past its EXECUTE
 * privilege: the caller (the role outside the batch's SECURITY DEFINER)
 * must hold that privilege too, so revoking ledger.capture from a role
 * also takes capture_batch's items from it.
 */
static void
require_single_call(const HoldKind *k)
{
	Oid			fn = DatumGetObjectId(DirectFunctionCall1(regprocedurein,
														  CStringGetDatum(k->single)));

	if (pg_proc_aclcheck(fn, GetOuterUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function %s", k->single),
				 errdetail("%s runs %s for each item; role \"%s\" may not execute it.",
						   k->what, k->single, GetUserNameFromId(GetOuterUserId(), false))));
}

/* LD011 for an item's argument; name NULL: the item itself. */
static void
refuse_item(const HoldItem *it, const char *name, const char *msg)
{
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
			 errmsg("item %d of %s: %s", it->number, it->kind->items, msg),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
												  LEDGER_FACT_TEXT("argument", name ? name : it->kind->items),
												  LEDGER_FACT_INT("item", it->number),
												  NULL),
									"Each item is a JSON object whose keys are %s's argument names.",
									it->kind->what)));
}

/*
 * A value given as text (or an argument's default): the type's input
 * function; class 22 errors become LD011.
 */
static Datum
from_text(const HoldItem *it, const HoldArg *a, const char *str)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		d = (Datum) 0;
	Oid			fn;
	Oid			ioparam;

	if (a->type == TEXTOID)
		return CStringGetTextDatum(str);
	if (a->type == NUMERICOID)
		return NumericGetDatum(ledger_parse_decimal(str, strlen(str), a->name, 0));
	getTypeInputInfo(a->type, &fn, &ioparam);
	PG_TRY();
	{
		d = OidInputFunctionCall(fn, (char *) str, ioparam, -1);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(caller);
		e = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(e->sqlerrcode) != ERRCODE_DATA_EXCEPTION)
			PG_RE_THROW();
		FlushErrorState();
		refuse_item(it, a->name, psprintf("%s is not a valid %s", a->name, format_type_be(a->type)));
	}
	PG_END_TRY();
	return d;
}

/* The first key of an item that names no argument of the call. */
static char *
unknown_key(const HoldItem *it)
{
	JsonbIterator *iter = JsonbIteratorInit(it->v.val.binary.data);
	JsonbValue	v;
	JsonbIteratorToken t;

	while ((t = JsonbIteratorNext(&iter, &v, true)) != WJB_DONE)
	{
		bool		found = false;

		if (t != WJB_KEY)
			continue;
		for (int i = 0; i < it->kind->nargs && !found; i++)
			found = strlen(it->kind->args[i].name) == (size_t) v.val.string.len &&
				strncmp(it->kind->args[i].name, v.val.string.val, v.val.string.len) == 0;
		if (!found)
			return pnstrdup(v.val.string.val, pg_mbcliplen(v.val.string.val, v.val.string.len, 64));
	}
	return NULL;
}

/* Read an item's arguments into fcinfo, defaults where keys are left out. */
static void
read_args(const HoldItem *it, FunctionCallInfo fcinfo)
{
	const HoldKind *k = it->kind;
	JsonbContainer *c;
	int			known = 0;

	if (it->v.type != jbvBinary || !JsonContainerIsObject(it->v.val.binary.data))
		refuse_item(it, NULL, "not a JSON object");
	c = it->v.val.binary.data;
	for (int i = 0; i < k->nargs; i++)
	{
		const HoldArg *a = &k->args[i];
		JsonbValue	jv;
		bool		given = getKeyJsonValueFromContainer(c, a->name, strlen(a->name), &jv) != NULL;

		known += given;
		fcinfo->args[i].isnull = false;
		if (!given || jv.type == jbvNull)
		{
			/* left out: the default; null given: NULL, which the call may refuse */
			if (!given && a->dflt != NULL)
				fcinfo->args[i].value = from_text(it, a, a->dflt);
			else
				fcinfo->args[i].isnull = true;
		}
		else if (a->type == JSONBOID)
			fcinfo->args[i].value = JsonbPGetDatum(JsonbValueToJsonb(&jv));
		else if (a->type == NUMERICOID && jv.type == jbvNumeric)
			fcinfo->args[i].value = NumericGetDatum(jv.val.numeric);
		else if (jv.type == jbvString)
			fcinfo->args[i].value = from_text(it, a, pnstrdup(jv.val.string.val, jv.val.string.len));
		else
			refuse_item(it, a->name, psprintf("%s must be a JSON %s", a->name,
											  a->type == NUMERICOID ? "number or string" : "string"));
	}
	if (JsonContainerSize(c) != known)
	{
		char	   *key = unknown_key(it);

		refuse_item(it, key, psprintf("\"%s\" is not an argument of %s", key ? key : "?", k->what));
	}
}

/* Run one item: read its arguments, then the single call. */
static void
run_item(void *arg)
{
	HoldItem   *it = arg;
	LOCAL_FCINFO(fcinfo, HB_MAX_ARGS);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, it->kind->nargs, InvalidOid, NULL, NULL);
	read_args(it, fcinfo);
	result = it->kind->fn(fcinfo);
	Assert(!fcinfo->isnull);
	it->value = result;
}

static bool read_uuid(const char *s, int len, pg_uuid_t *out);

/*
 * The account ids whose balance rows an item will lock, appended to ids:
 * unknown accounts and holds are left to the item to refuse.
 */
static int
item_accounts(const HoldItem *it, int64 *ids)
{
	const char *codes[2] = {NULL, NULL};
	JsonbValue	jv;
	int			n = 0;

	if (it->v.type != jbvBinary || !JsonContainerIsObject(it->v.val.binary.data))
		return 0;
	if (it->kind == &hold_kind)
	{
		if (getKeyJsonValueFromContainer(it->v.val.binary.data, "from_account", 12, &jv) &&
			jv.type == jbvString)
			codes[0] = pnstrdup(jv.val.string.val, jv.val.string.len);
	}
	else if (getKeyJsonValueFromContainer(it->v.val.binary.data, "hold_id", 7, &jv) &&
			 jv.type == jbvString)
	{
		pg_uuid_t	id;
		LedgerHold	h;

		if (read_uuid(jv.val.string.val, jv.val.string.len, &id) && ledger_hold_read(&id, false, &h))
		{
			codes[0] = h.account_code;
			if (it->kind == &capture_kind && h.exclusive)
				codes[1] = h.to_code;
		}
	}

	/*
	 * The held (debited) account's row is locked by every move, hot or not
	 * (a hold on a hot account is refused only under that lock); a
	 * capture's destination only when it is cold.
	 */
	for (int i = 0; i < 2; i++)
	{
		LedgerAccount a;

		if (codes[i] != NULL && ledger_find_account(codes[i], &a) && (i == 0 || !a.hot))
			ids[n++] = a.id;
	}
	return n;
}

/*
 * Read a uuid written in any form uuid_in reads (hex digit pairs, a dash
 * allowed after each group of four digits, optionally within braces),
 * without raising an error: false if it is not one.
 */
static bool
read_uuid(const char *s, int len, pg_uuid_t *out)
{
	int			at = 0;
	int			end = len;

	if (len > 0 && s[0] == '{')
	{
		if (len < 2 || s[len - 1] != '}')
			return false;
		at = 1;
		end = len - 1;
	}
	for (int i = 0; i < UUID_LEN; i++)
	{
		char		pair[3];

		if (at + 2 > end || !isxdigit((unsigned char) s[at]) || !isxdigit((unsigned char) s[at + 1]))
			return false;
		pair[0] = s[at];
		pair[1] = s[at + 1];
		pair[2] = '\0';
		out->data[i] = (unsigned char) strtoul(pair, NULL, 16);
		at += 2;
		if (at < end && s[at] == '-' && i % 2 == 1 && i < UUID_LEN - 1)
			at++;
	}
	return at == end;
}

/* Lock the balance rows the items will lock, in account id order. */
static void
lock_accounts(HoldItem *items, int n)
{
	int64	   *ids = palloc(sizeof(int64) * 2 * n);
	int			nids = 0;

	for (int i = 0; i < n; i++)
		nids += item_accounts(&items[i], ids + nids);
	qsort(ids, nids, sizeof(int64), ledger_id_cmp);
	for (int i = 0; i < nids; i++)
		if (i == 0 || ids[i] != ids[i - 1])
			ledger_lock_balance(ids[i]);
}

static Datum
run_batch(FunctionCallInfo fcinfo, const HoldKind *k)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller = CurrentMemoryContext;
	Jsonb	   *doc;
	bool		atomic;
	HoldItem   *items;
	int			n;
	int16		typlen;
	bool		typbyval;
	volatile bool held_off;
	MemoryContext itemcxt;

	ledger_batch_push_context(k->what);
	LEDGER_REQUIRE_ARG(0, k->items);
	LEDGER_REQUIRE_ARG(1, "atomic");
	doc = PG_GETARG_JSONB_P(0);
	atomic = PG_GETARG_BOOL(1);
	if (!JB_ROOT_IS_ARRAY(doc) || JB_ROOT_IS_SCALAR(doc))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("%s must be a JSON array of objects", k->items),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", k->items),
													  NULL),
										"Each item is an object whose keys are %s's argument names.", k->what)));
	n = JB_ROOT_COUNT(doc);
	ledger_batch_check_count(n, k->what);
	ledger_batch_check_subxacts(n, atomic, k->what);
	require_single_call(k);
	ledger_rate_check(k->what);
	PreventCommandIfReadOnly(k->what);

	items = palloc0(sizeof(HoldItem) * n);
	for (int i = 0; i < n; i++)
	{
		items[i].kind = k;
		items[i].v = *getIthJsonbValueFromContainer(&doc->root, i);
		items[i].number = i + 1;
	}

	get_typlenbyval(k->result, &typlen, &typbyval);
	itemcxt = AllocSetContextCreate(caller, "ledger hold batch item", ALLOCSET_DEFAULT_SIZES);
	SPI_connect();
	lock_accounts(items, n);
	held_off = ledger_rate_hold_off(true);
	PG_TRY();
	{
		for (int i = 0; i < n; i++)
		{
			MemoryContext spi = MemoryContextSwitchTo(itemcxt);
			ErrorData  *e = NULL;

			CHECK_FOR_INTERRUPTS();
			ledger_batch_set_item(i + 1);
			if (atomic)
				run_item(&items[i]);
			else
				e = ledger_try(run_item, &items[i]);
			/* keep the result in the caller's memory; the item's goes */
			MemoryContextSwitchTo(caller);
			if (e == NULL)
				items[i].value = datumCopy(items[i].value, typbyval, typlen);
			else if (LEDGER_ERRCODE_IS_LD(e->sqlerrcode) ||
					 ERRCODE_TO_CATEGORY(e->sqlerrcode) == ERRCODE_DATA_EXCEPTION)
				ledger_batch_refusal(e, &items[i].sqlerrcode, &items[i].message, &items[i].facts);
			else
				ReThrowError(e);
			MemoryContextSwitchTo(spi);
			MemoryContextReset(itemcxt);
		}
	}
	PG_FINALLY();
	{
		ledger_rate_hold_off(held_off);
	}
	PG_END_TRY();
	ledger_batch_set_item(0);
	SPI_finish();
	MemoryContextDelete(itemcxt);

	MemoryContextSwitchTo(caller);
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
		ledger_batch_row(rsinfo, i + 1, items[i].sqlerrcode, items[i].message, items[i].value,
						 items[i].facts);
	ledger_batch_pop_context();
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(ledger_hold_batch);

/* ledger.hold_batch(holds jsonb, atomic boolean) */
Datum
ledger_hold_batch(PG_FUNCTION_ARGS)
{
	return run_batch(fcinfo, &hold_kind);
}

PG_FUNCTION_INFO_V1(ledger_capture_batch);

/* ledger.capture_batch(captures jsonb, atomic boolean) */
Datum
ledger_capture_batch(PG_FUNCTION_ARGS)
{
	return run_batch(fcinfo, &capture_kind);
}

PG_FUNCTION_INFO_V1(ledger_void_batch);

/* ledger.void_batch(voids jsonb, atomic boolean) */
Datum
ledger_void_batch(PG_FUNCTION_ARGS)
{
	return run_batch(fcinfo, &void_kind);
}
