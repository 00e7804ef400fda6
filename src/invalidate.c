/*-------------------------------------------------------------------------
 *
 * invalidate.c
 *	  ledger.invalidate: a whole transaction is invalidated (its journal
 *	  entries and token transactions flagged, with who, when and why) and
 *	  every account it touched is rebuilt from the invalidated day on
 *	  (rebuild.c).  Refused (LD015) if an account would end below its
 *	  floor, unless forced, which raises an alert instead.
 *
 * Locking rules: the transaction row first (FOR UPDATE): two
 * invalidations of one transaction serialize, and the second finds it
 * invalidated (LD014); no posting ever waits for that lock.  Then the
 * touched accounts are taken as rebuild.c says: hot ones fenced first,
 * then every balance row locked, in ascending account id order.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"

/* A touched account: taken[i] of the call is the same account as touched[i]. */
typedef struct Touched
{
	int64		id;
	char	   *code;
	bool		unbounded;
	Numeric		min_balance;
	TimestampTz first;			/* earliest entry of the transaction */
	Numeric		before;
	Numeric		after;
} Touched;

static SPIPlanPtr inv_txn_plan = NULL;
static SPIPlanPtr inv_entries_plan = NULL;
static SPIPlanPtr inv_balance_plan = NULL;
static SPIPlanPtr inv_flag_txn_plan = NULL;
static SPIPlanPtr inv_flag_journal_plan = NULL;
static SPIPlanPtr inv_flag_token_plan = NULL;

static void
prepare_invalidate_plans(void)
{
	if (inv_flag_token_plan != NULL)	/* prepared last */
		return;
	inv_txn_plan = ledger_prepare(
		"SELECT is_invalidated, invalidated_at::text, invalidated_by, invalidation_reason, kind "
		"FROM ledger.transaction WHERE id = $1 FOR UPDATE",
		1, (Oid[]) {UUIDOID});
	inv_entries_plan = ledger_prepare(
		"SELECT j.account_id, a.code, a.min_balance, min(j.created_at) "
		"FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id "
		"WHERE j.transaction_id = $1 AND NOT j.is_invalidated "
		"GROUP BY j.account_id, a.code, a.min_balance ORDER BY j.account_id",
		1, (Oid[]) {UUIDOID});
	inv_balance_plan = ledger_prepare(
		"SELECT balance FROM ledger.account_balance WHERE account_id = $1",
		1, (Oid[]) {INT8OID});
	inv_flag_txn_plan = ledger_prepare(
		"UPDATE ledger.transaction SET is_invalidated = true, invalidated_at = pg_catalog.now(), "
		"invalidated_by = session_user, invalidation_reason = $2 WHERE id = $1",
		2, (Oid[]) {UUIDOID, TEXTOID});
	inv_flag_journal_plan = ledger_prepare(
		"UPDATE ledger.journal_entry SET is_invalidated = true, invalidated_at = pg_catalog.now() "
		"WHERE transaction_id = $1 AND NOT is_invalidated",
		1, (Oid[]) {UUIDOID});
	inv_flag_token_plan = ledger_prepare(
		"UPDATE ledger.token_transaction SET is_invalidated = true, invalidated_at = pg_catalog.now() "
		"WHERE transaction_id = $1 AND NOT is_invalidated",
		1, (Oid[]) {UUIDOID});
}


/* Lock the transaction row and refuse unknown or invalidated ones. */
static void
lock_transaction(pg_uuid_t *id)
{
	Datum		values[1];
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;

	values[0] = UUIDPGetDatum(id);
	ledger_spi_exec(inv_txn_plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_TRANSACTION),
				 errmsg("transaction %s does not exist", ledger_uuid_str(id)),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_TRANSACTION, LEDGER_FACT_ID("transaction_id", id), NULL), NULL)));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_ALREADY_INVALIDATED),
				 errmsg("transaction %s is already invalidated", ledger_uuid_str(id)),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_ALREADY_INVALIDATED, LEDGER_FACT_ID("transaction_id", id), NULL), "It was invalidated at %s by %s: %s.",
						   SPI_getvalue(tup, desc, 2),
						   SPI_getvalue(tup, desc, 3),
						   SPI_getvalue(tup, desc, 4))));
	if (strcmp(SPI_getvalue(tup, desc, 5), "capture") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_CAPTURE_NOT_INVALIDATED),
				 errmsg("transaction %s is a capture of a hold and cannot be invalidated", ledger_uuid_str(id)),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_CAPTURE_NOT_INVALIDATED,
													 LEDGER_FACT_ID("transaction_id", id), NULL),
										"Invalidating it would put the money back on the account while its hold stays captured."),
				 errhint("Record the reversal as a new transfer (a refund), so the hold, the processor's statement and the journal agree.")));
}

/* The accounts the transaction's live entries touch, ordered by id. */
static Touched *
touched_accounts(pg_uuid_t *id, int *n)
{
	Datum		values[1];
	Touched    *t;
	uint64		i;

	values[0] = UUIDPGetDatum(id);
	ledger_spi_exec(inv_entries_plan, values, NULL, SPI_OK_SELECT);
	*n = (int) SPI_processed;
	t = palloc0(sizeof(Touched) * Max(*n, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		t[i].id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		t[i].code = SPI_getvalue(tup, desc, 2);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		t[i].unbounded = isnull;
		t[i].min_balance = isnull ? NULL : DatumGetNumericCopy(d);
		t[i].first = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return t;
}

/*
 * Take the touched accounts (rebuild.c: fences first, then row locks, in
 * id order) and note their balances before.
 */
static LedgerTaken *
take_touched(Touched *t, int n)
{
	LedgerTaken *taken = palloc0(sizeof(LedgerTaken) * Max(n, 1));
	Datum		values[1];
	bool		isnull;
	int			j;

	for (j = 0; j < n; j++)
	{
		taken[j].id = t[j].id;
		taken[j].code = t[j].code;
	}
	ledger_take_accounts(taken, n);
	for (j = 0; j < n; j++)
	{
		Assert(taken[j].id == t[j].id);		/* both in id order */
		values[0] = Int64GetDatum(t[j].id);
		ledger_spi_exec(inv_balance_plan, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
			t[j].before = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1, &isnull));
		SPI_freetuptable(SPI_tuptable);
	}
	return taken;
}

/*
 * After the rebuild: an account that the invalidation pushed below its
 * floor refuses the whole call (LD015), unless force, which proceeds and
 * raises one critical alert per such account.
 */
static void
check_floors(pg_uuid_t *id, Touched *t, int n, bool force, const char *reason)
{
	StringInfoData detail;
	int			below = 0;
	int			first = -1;		/* the first account below: its facts */
	Numeric		first_shortfall = NULL;
	int			i;

	initStringInfo(&detail);
	for (i = 0; i < n; i++)
	{
		Numeric		shortfall;
		Numeric		kept = NULL;	/* after, less what holds keep */
		LedgerHeld	held;

		if (t[i].unbounded)
			continue;
		kept = t[i].after;
		if (ledger_schema()->has_holds)
		{
			/* under the balance row lock every hold move takes first */
			ledger_held(t[i].id, GetCurrentTimestamp(), &held);
			kept = ledger_not_held(kept, &held);
		}
		if (ledger_numeric_cmp(kept, t[i].min_balance) >= 0)
			continue;
		if (t[i].before != NULL && ledger_numeric_cmp(t[i].after, t[i].before) >= 0)
			continue;			/* already below before; this made it no worse */
		shortfall = ledger_numeric_add(t[i].min_balance, ledger_numeric_neg(kept));
		if (ledger_numeric_cmp(kept, t[i].after) == 0)
			appendStringInfo(&detail, "%sAccount \"%s\" would have balance %s, floor %s, shortfall %s",
							 below > 0 ? "; " : "", t[i].code,
							 ledger_numeric_str(t[i].after),
							 ledger_numeric_str(t[i].min_balance),
							 ledger_numeric_str(shortfall));
		else
			appendStringInfo(&detail, "%sAccount \"%s\" would have balance %s, of which holds keep all but %s, floor %s, shortfall %s",
							 below > 0 ? "; " : "", t[i].code,
							 ledger_numeric_str(t[i].after), ledger_numeric_str(kept),
							 ledger_numeric_str(t[i].min_balance),
							 ledger_numeric_str(shortfall));
		if (first < 0)
		{
			first = i;
			first_shortfall = shortfall;
		}
		below++;
		if (force)
		{
			LedgerJson *j = ledger_json_begin();

			ledger_json_text(j, "transaction_id", ledger_uuid_str(id));
			ledger_json_numeric(j, "balance", t[i].after);
			ledger_json_numeric(j, "not_held", kept);
			ledger_json_numeric(j, "min_balance", t[i].min_balance);
			ledger_json_numeric(j, "shortfall", shortfall);
			ledger_json_text(j, "reason", reason);
			ledger_raise_alert("critical", "invalidation_below_floor", t[i].id,
							   ledger_json_end(j));
		}
	}
	if (below > 0 && !force)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_BELOW_FLOOR),
				 errmsg_plural("invalidation would leave %d account below its floor",
							   "invalidation would leave %d accounts below their floor",
							   below, below),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_BELOW_FLOOR,
													 LEDGER_FACT_ID("transaction_id", id),
													 LEDGER_FACT_INT("accounts_below", below),
													 LEDGER_FACT_TEXT("account", t[first].code),
													 LEDGER_FACT_AMOUNT("balance", t[first].after),
													 LEDGER_FACT_AMOUNT("floor", t[first].min_balance),
													 LEDGER_FACT_AMOUNT("shortfall", first_shortfall),
													 NULL),
										"Invalidating transaction %s: %s.", ledger_uuid_str(id), detail.data),
				 errhint("Fund the accounts first, or pass force => true to invalidate anyway and raise an alert.")));
}

PG_FUNCTION_INFO_V1(ledger_invalidate);

Datum
ledger_invalidate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	pg_uuid_t  *id;
	char	   *reason;
	bool		force;
	Touched    *t;
	LedgerTaken *taken;
	int			n;
	int			i;
	Datum		values[2];

	LEDGER_REQUIRE_ARG(0, "transaction_id");
	LEDGER_REQUIRE_ARG(1, "reason");
	LEDGER_REQUIRE_ARG(2, "force");
	id = PG_GETARG_UUID_P(0);
	reason = ledger_check_code(PG_GETARG_TEXT_PP(1), "reason");
	force = PG_GETARG_BOOL(2);

	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	ledger_fold_begin();
	prepare_invalidate_plans();
	/*
	 * The transaction row lock first: no posting ever waits for it, so it
	 * cannot hold up a hot posting that a fence below waits for.
	 */
	lock_transaction(id);
	t = touched_accounts(id, &n);
	taken = take_touched(t, n);

	values[0] = UUIDPGetDatum(id);
	values[1] = CStringGetTextDatum(reason);
	ledger_spi_exec(inv_flag_txn_plan, values, NULL, SPI_OK_UPDATE);
	ledger_spi_exec(inv_flag_journal_plan, values, NULL, SPI_OK_UPDATE);
	ledger_spi_exec(inv_flag_token_plan, values, NULL, SPI_OK_UPDATE);

	for (i = 0; i < n; i++)
		ledger_finish_account(&taken[i], t[i].first, &t[i].after);
	check_floors(id, t, n, force, reason);

	for (i = 0; i < n; i++)
	{
		Datum		row[3];
		bool		nulls[3] = {false, false, false};

		row[0] = CStringGetTextDatum(t[i].code);
		row[1] = t[i].before ? NumericGetDatum(t[i].before) : (Datum) 0;
		nulls[1] = t[i].before == NULL;
		row[2] = NumericGetDatum(t[i].after);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}
	ledger_fold_end();
	SPI_finish();

	return (Datum) 0;
}

