/*-------------------------------------------------------------------------
 *
 * batch.c
 *	  Many postings per call, one result row per item, in input order:
 *	  ledger.transfer_batch (parallel arrays) and ledger.post_batch (a JSON
 *	  array of postings).  Each item runs the single call's own code
 *	  (posting.c: ledger_transfer_item, ledger_post_item), so every
 *	  guarantee of a single call holds for every item: conditional debits
 *	  at the row, idempotency keys, floors, hot accounts, the acting owner.
 *	  Items run in order, so a later item sees what earlier ones did.
 *
 *	  Each item is checked against running balances kept in memory and
 *	  writes its rows only once every check has passed (batchapply.c).
 *	  atomic => false: an item refused with an LD error has written
 *	  nothing, so it is reported with its SQLSTATE and message, without a
 *	  subtransaction, and the others stand; an item that must run alone
 *	  (batchapply.c) gets a subtransaction of its own.  Any other error (a
 *	  cancel, a serialization failure, out of memory) ends the whole call.
 *	  atomic => true: the first refusal fails the call (its context names
 *	  the item) and nothing is written.
 *
 *	  A batch counts as one call for the rate limit.
 *
 * Locking: before the first item, the balance rows of every cold account
 *	  the batch names are locked in account id order, the order in which a
 *	  single posting locks its own rows: two batches, or a batch and single
 *	  calls, never wait for each other in a circle.  The items then find
 *	  their rows locked by their own transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/*
 * Most items of one batch call; of one that is not atomic, whose items may
 * each run in a subtransaction of their own (those that run alone): each
 * that writes holds a lock on its transaction id until the commit (a lock
 * table entry).
 */
#define LEDGER_MAX_BATCH	10000
#define LEDGER_MAX_BATCH_ITEMS_SUBXACT 1000

/* One item as given, what it needs to run, and its result. */
typedef struct BatchItem
{
	/* transfer_batch */
	char	   *from;
	char	   *to;
	Numeric		amount;
	/* post_batch */
	LedgerLeg  *legs;
	int			nlegs;
	/* both */
	char	   *key;
	Jsonb	   *metadata;
	ErrorData  *refused;		/* found before running: bad input */
	/* result: the transaction, or the refusal's SQLSTATE and text */
	pg_uuid_t	id;
	int			sqlerrcode;		/* 0: ok */
	char	   *message;
	Jsonb	   *facts;			/* the refusal's structured facts */
} BatchItem;

typedef struct BatchRun
{
	BatchItem  *item;
	bool		transfer;
} BatchRun;

static int	current_item = 0;
static ErrorContextCallback item_ctx;

static void
item_context(void *arg)
{
	if (current_item > 0)
		errcontext("%s item %d", (const char *) arg, current_item);
}

/*
 * Name the item in every error's context from here to the end of the call
 * (ledger_batch_pop_context); also for holdbatch.c.
 */
void
ledger_batch_push_context(const char *what)
{
	current_item = 0;
	item_ctx.callback = item_context;
	item_ctx.arg = (void *) what;
	item_ctx.previous = error_context_stack;
	error_context_stack = &item_ctx;
}

/* The item errors now belong to (1-based; 0: the call itself). */
void
ledger_batch_set_item(int item)
{
	current_item = item;
}

void
ledger_batch_pop_context(void)
{
	current_item = 0;
	error_context_stack = item_ctx.previous;
}

/* Run one item (in SPI); the subtransaction is the caller's. */
static void
run_item(void *arg)
{
	BatchRun   *r = arg;
	BatchItem  *it = r->item;

	if (it->refused)
		ReThrowError(it->refused);
	if (r->transfer)
		ledger_transfer_item(it->from, it->to, it->amount, it->key, it->metadata, &it->id);
	else
		ledger_post_item(it->legs, it->nlegs, it->key, it->metadata, &it->id);
}

/*
 * Catch an item's own refusal (an LD error), while its input is read or
 * while it runs in a batch that is not atomic, so that the batch reports
 * it in the item's row.  Anything else is raised.  No subtransaction is
 * needed: the ledger raises its LD errors from its own checks, outside any
 * statement, with no buffer pinned and no lightweight lock held, before
 * the item has written anything (batchapply.c), so the state after the
 * catch is the state before the item; an item that runs alone was rolled
 * back in its own subtransaction before its error reaches here.  An LD
 * error raised once the item has begun to write (from a trigger on the
 * ledger's tables, say) is not a refusal: it fails the call.
 */
static ErrorData *
catch_refusal(void (*fn) (void *), void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	ErrorData  *volatile err = NULL;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		err = CopyErrorData();
		if (!LEDGER_ERRCODE_IS_LD(err->sqlerrcode) || !ledger_batch_refusable())
			PG_RE_THROW();
		FlushErrorState();
	}
	PG_END_TRY();
	return err;
}

/*
 * Lock the balance rows of every cold account the items name, in id order
 * (batchapply.c).  Unknown accounts are skipped: their items fail with
 * LD002 when they run.
 */
static void
lock_accounts(char **codes, int ncodes)
{
	int64	   *ids = palloc(sizeof(int64) * Max(ncodes, 1));
	int			n = 0;
	int			i;

	for (i = 0; i < ncodes; i++)
	{
		LedgerAccount a;

		if (codes[i] != NULL && ledger_find_account(codes[i], &a) && !a.hot)
			ids[n++] = a.id;
	}
	qsort(ids, n, sizeof(int64), ledger_id_cmp);
	ledger_batch_lock(ids, n);
}

/*
 * Run the items in order and emit a row per item.  what names the call.
 * Each item's work is done in a memory context reset after it; its result
 * is kept in the caller's.
 */
static void
run_batch(FunctionCallInfo fcinfo, BatchItem *items, int n, bool transfer, bool atomic,
		  char **codes, int ncodes, const char *what)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext itemcxt;
	int			i;

	current_item = 0;			/* what fails now is the call's, not an item's */
	ledger_batch_check_subxacts(n, atomic, what);
	ledger_rate_check(what);
	PreventCommandIfReadOnly(what);
	SPI_connect();
	itemcxt = AllocSetContextCreate(caller, "ledger batch item", ALLOCSET_DEFAULT_SIZES);
	ledger_batch_begin(atomic);
	PG_TRY();
	{
		lock_accounts(codes, ncodes);
		for (i = 0; i < n; i++)
		{
			BatchRun	r = {&items[i], transfer};
			MemoryContext spi = MemoryContextSwitchTo(itemcxt);
			ErrorData  *e;

			CHECK_FOR_INTERRUPTS();
			current_item = i + 1;
			if (atomic)
				run_item(&r);
			else if ((e = catch_refusal(run_item, &r)) != NULL)
			{
				/* refused before it wrote anything (batchapply.c) */
				MemoryContext old = MemoryContextSwitchTo(caller);

				ledger_batch_refusal(e, &items[i].sqlerrcode, &items[i].message, &items[i].facts);
				MemoryContextSwitchTo(old);
			}
			ledger_batch_item_done();
			MemoryContextSwitchTo(spi);
			MemoryContextReset(itemcxt);
		}
		current_item = 0;
		ledger_batch_end();
	}
	PG_CATCH();
	{
		ledger_batch_forget();
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
	MemoryContextDelete(itemcxt);

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < n; i++)
		ledger_batch_row(rsinfo, i + 1, items[i].sqlerrcode, items[i].message,
						 UUIDPGetDatum(&items[i].id), items[i].facts);
	ledger_batch_pop_context();
}

/*
 * A refused item's result (in the current memory context): its SQLSTATE,
 * "message / detail" without the facts line, and the facts.
 */
void
ledger_batch_refusal(ErrorData *e, int *sqlerrcode, char **message, Jsonb **facts)
{
	char	   *prose = e->detail ? ledger_facts_strip(e->detail) : NULL;

	*sqlerrcode = e->sqlerrcode;
	*message = prose ? psprintf("%s / %s", e->message, prose) : pstrdup(e->message);
	*facts = ledger_facts_of(e->detail);
}

/*
 * One result row of a batch: item, result ('ok' or the SQLSTATE), message,
 * the item's value (its id, or an amount; NULL when refused) and facts.
 * A database before 0.12.0 has no facts column.
 */
void
ledger_batch_row(ReturnSetInfo *rsinfo, int item, int sqlerrcode, const char *message,
				 Datum value, Jsonb *facts)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	values[0] = Int32GetDatum(item);
	values[1] = CStringGetTextDatum(sqlerrcode == 0 ? "ok" : unpack_sql_state(sqlerrcode));
	values[2] = message ? CStringGetTextDatum(message) : (Datum) 0;
	nulls[2] = message == NULL;
	values[3] = value;
	nulls[3] = sqlerrcode != 0;
	values[4] = facts ? JsonbPGetDatum(facts) : (Datum) 0;
	nulls[4] = facts == NULL;
	Assert(rsinfo->setDesc->natts == 4 || rsinfo->setDesc->natts == 5);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* qsort order of account ids (also holdbatch.c). */
int
ledger_id_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * A batch that is not atomic has at most LEDGER_MAX_BATCH_ITEMS_SUBXACT
 * items: each may run in a subtransaction of its own.
 */
void
ledger_batch_check_subxacts(int n, bool atomic, const char *what)
{
	if (!atomic && n > LEDGER_MAX_BATCH_ITEMS_SUBXACT)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("a batch that is not atomic has 1 to %d items", LEDGER_MAX_BATCH_ITEMS_SUBXACT),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_INT("count", n),
													  LEDGER_FACT_INT("limit", LEDGER_MAX_BATCH_ITEMS_SUBXACT),
													  NULL),
										"%s was given %d items; an item of a batch that is not atomic may run in a subtransaction, which holds a lock until the commit.",
						   what, n),
				 errhint("Split the batch, or make it atomic (up to %d items).", LEDGER_MAX_BATCH)));
}

/* The number of items of a batch: LD011 unless 1..LEDGER_MAX_BATCH. */
void
ledger_batch_check_count(int n, const char *what)
{
	if (n < 1 || n > LEDGER_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("a batch has 1 to %d items", LEDGER_MAX_BATCH),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_INT("count", n),
													  LEDGER_FACT_INT("limit", LEDGER_MAX_BATCH),
													  NULL),
										"%s was given %d items.", what, n)));
}

/* Elements of a one-dimensional array argument (NULL elements kept). */
static int
array_elements(FunctionCallInfo fcinfo, int argno, Oid type, Datum **values, bool **nulls)
{
	ArrayType  *a = PG_GETARG_ARRAYTYPE_P(argno);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			n;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("batch arrays must have one dimension"),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_INVALID_ARGUMENT), "Argument %d has %d dimensions.", argno + 1, ARR_NDIM(a))));
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(a, type, typlen, typbyval, typalign, values, nulls, &n);
	return n;
}

/* Read one transfer item's input (for catch_refusal). */
typedef struct TransferInput
{
	BatchItem  *it;
	Datum		from,
				to,
				amount,
				key,
				metadata;
	bool		from_null,
				to_null,
				amount_null,
				key_null,
				metadata_null;
} TransferInput;

static void
read_transfer(void *arg)
{
	TransferInput *in = arg;
	BatchItem  *it = in->it;
	const char *missing = in->from_null ? "from_account" : in->to_null ? "to_account" :
		in->amount_null ? "amount" : in->metadata_null ? "metadata" : NULL;

	if (missing != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("%s must not be NULL", missing),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", missing),
													  NULL),
										NULL)));
	it->from = ledger_check_code(DatumGetTextPP(in->from), "account code");
	it->to = ledger_check_code(DatumGetTextPP(in->to), "account code");
	it->amount = DatumGetNumeric(in->amount);
	it->key = in->key_null ? NULL : ledger_check_code(DatumGetTextPP(in->key), "idempotency_key");
	it->metadata = DatumGetJsonbP(in->metadata);
	ledger_check_metadata(it->metadata);
}

PG_FUNCTION_INFO_V1(ledger_transfer_batch);

/*
 * ledger.transfer_batch(from_accounts, to_accounts, amounts,
 * idempotency_keys, metadata, atomic)
 */
Datum
ledger_transfer_batch(PG_FUNCTION_ARGS)
{
	Datum	   *from,
			   *to,
			   *amount,
			   *key = NULL,
			   *meta = NULL;
	bool	   *from_n,
			   *to_n,
			   *amount_n,
			   *key_n = NULL,
			   *meta_n = NULL;
	int			n,
				i;
	bool		atomic;
	BatchItem  *items;
	char	  **codes;
	Jsonb	   *empty = NULL;

	ledger_batch_push_context("ledger.transfer_batch");
	LEDGER_REQUIRE_ARG(0, "from_accounts");
	LEDGER_REQUIRE_ARG(1, "to_accounts");
	LEDGER_REQUIRE_ARG(2, "amounts");
	LEDGER_REQUIRE_ARG(5, "atomic");
	atomic = PG_GETARG_BOOL(5);
	n = array_elements(fcinfo, 0, TEXTOID, &from, &from_n);
	ledger_batch_check_count(n, "ledger.transfer_batch");
	if (array_elements(fcinfo, 1, TEXTOID, &to, &to_n) != n ||
		array_elements(fcinfo, 2, NUMERICOID, &amount, &amount_n) != n ||
		(!PG_ARGISNULL(3) && array_elements(fcinfo, 3, TEXTOID, &key, &key_n) != n) ||
		(!PG_ARGISNULL(4) && array_elements(fcinfo, 4, JSONBOID, &meta, &meta_n) != n))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("the arrays of a transfer batch must have the same length"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_INT("count", n),
													  NULL),
										"from_accounts has %d elements; every other array given must have as many.", n)));

	items = palloc0(sizeof(BatchItem) * n);
	codes = palloc0(sizeof(char *) * n * 2);
	for (i = 0; i < n; i++)
	{
		TransferInput in = {&items[i], from[i], to[i], amount[i],
			key ? key[i] : (Datum) 0, meta ? meta[i] : (Datum) 0,
			from_n[i], to_n[i], amount_n[i], key ? key_n[i] : true, false};

		if (meta == NULL)
		{
			if (empty == NULL)
				empty = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
			in.metadata = JsonbPGetDatum(empty);
		}
		else
			in.metadata_null = meta_n[i];
		current_item = i + 1;
		items[i].refused = catch_refusal(read_transfer, &in);
		if (items[i].refused && atomic)
			ReThrowError(items[i].refused);
		codes[2 * i] = items[i].from;
		codes[2 * i + 1] = items[i].to;
	}
	run_batch(fcinfo, items, n, true, atomic, codes, 2 * n, "ledger.transfer_batch");
	return (Datum) 0;
}

/* Read one post_batch item: {"legs": [...], "idempotency_key": s, "metadata": {}} */
typedef struct PostInput
{
	BatchItem  *it;
	JsonbValue	v;
	int			number;
} PostInput;

static void
read_post(void *arg)
{
	PostInput  *in = arg;
	BatchItem  *it = in->it;
	JsonbValue	legs,
				key,
				meta;
	JsonbContainer *c;
	int			known = 0;

	if (in->v.type != jbvBinary || !JsonContainerIsObject(in->v.val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_LEGS),
				 errmsg("posting %d is not a JSON object", in->number),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
													  LEDGER_FACT_INT("posting", in->number),
													  NULL),
										"Each posting is {\"legs\": [...], \"idempotency_key\": ..., \"metadata\": {...}}.")));
	c = in->v.val.binary.data;
	if (getKeyJsonValueFromContainer(c, "legs", 4, &legs) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_LEGS),
				 errmsg("posting %d has no \"legs\"", in->number),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
														  LEDGER_FACT_INT("posting", in->number),
														  NULL),
											NULL)));
	known++;
	it->legs = ledger_parse_legs(JsonbValueToJsonb(&legs), &it->nlegs);
	if (getKeyJsonValueFromContainer(c, "idempotency_key", 15, &key) != NULL)
	{
		known++;
		if (key.type != jbvNull && key.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
					 errmsg("the idempotency_key of posting %d is not a string", in->number),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
														  LEDGER_FACT_INT("posting", in->number),
														  LEDGER_FACT_TEXT("argument", "idempotency_key"),
														  NULL),
											NULL)));
		if (key.type == jbvString)
			it->key = ledger_check_code(cstring_to_text_with_len(key.val.string.val,
																 key.val.string.len),
										"idempotency_key");
	}
	if (getKeyJsonValueFromContainer(c, "metadata", 8, &meta) != NULL)
	{
		known++;
		it->metadata = JsonbValueToJsonb(&meta);
		ledger_check_metadata(it->metadata);
	}
	else
		it->metadata = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	if (JsonContainerSize(c) != known)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_LEGS),
				 errmsg("posting %d has keys other than \"legs\", \"idempotency_key\" and \"metadata\"",
						in->number),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
														  LEDGER_FACT_INT("posting", in->number),
														  NULL),
											NULL)));
}

PG_FUNCTION_INFO_V1(ledger_post_batch);

/* ledger.post_batch(postings jsonb, atomic boolean) */
Datum
ledger_post_batch(PG_FUNCTION_ARGS)
{
	Jsonb	   *doc;
	int			n,
				i,
				j,
				ncodes = 0;
	bool		atomic;
	BatchItem  *items;
	char	  **codes;

	ledger_batch_push_context("ledger.post_batch");
	LEDGER_REQUIRE_ARG(0, "postings");
	LEDGER_REQUIRE_ARG(1, "atomic");
	doc = PG_GETARG_JSONB_P(0);
	atomic = PG_GETARG_BOOL(1);
	if (!JB_ROOT_IS_ARRAY(doc) || JB_ROOT_IS_SCALAR(doc))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_LEGS),
				 errmsg("postings must be a JSON array of postings"),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_INVALID_LEGS), "Each posting is {\"legs\": [...], \"idempotency_key\": ..., \"metadata\": {...}}.")));
	n = JB_ROOT_COUNT(doc);
	ledger_batch_check_count(n, "ledger.post_batch");

	items = palloc0(sizeof(BatchItem) * n);
	for (i = 0; i < n; i++)
	{
		PostInput	in;
		JsonbValue *v = getIthJsonbValueFromContainer(&doc->root, i);

		in.it = &items[i];
		in.v = *v;
		in.number = i + 1;
		current_item = i + 1;
		items[i].refused = catch_refusal(read_post, &in);
		if (items[i].refused && atomic)
			ReThrowError(items[i].refused);
		if (!items[i].refused)
			ncodes += items[i].nlegs;
	}
	codes = palloc0(sizeof(char *) * Max(ncodes, 1));
	for (i = 0, ncodes = 0; i < n; i++)
		for (j = 0; !items[i].refused && j < items[i].nlegs; j++)
			codes[ncodes++] = items[i].legs[j].code;
	run_batch(fcinfo, items, n, false, atomic, codes, ncodes, "ledger.post_batch");
	return (Datum) 0;
}
