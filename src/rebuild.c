/*-------------------------------------------------------------------------
 *
 * rebuild.c
 *	  Corrections: ledger.invalidate and ledger.rebuild_balances, built on
 *	  one routine (also used by reconcile.c) that rebuilds an account's
 *	  daily_balance rows from a given day on, and its account_balance, from
 *	  the non-invalidated journal.
 *
 * Locking rules:
 *	- Whoever rebuilds an account holds its account_balance row lock (FOR
 *	  UPDATE), taken in ascending account id order, the same order postings
 *	  use, so rebuilds and postings never deadlock.  Postings take that lock
 *	  before they touch daily_balance or write journal entries, so while it
 *	  is held the account's journal and balance rows cannot change, and each
 *	  rebuild statement (a fresh READ COMMITTED snapshot, taken after the
 *	  lock was granted) sees every posting that committed before.
 *	- invalidate first locks the transaction row (FOR UPDATE): two
 *	  invalidations of one transaction serialize, and the second finds it
 *	  invalidated (LD014).
 *	- Under REPEATABLE READ or SERIALIZABLE, locking a balance row that
 *	  changed since the snapshot raises a serialization failure (40001)
 *	  instead of rebuilding from a stale view.
 *
 * Cost: invalidate rebuilds each touched account from the day of the
 * invalidated transaction on, starting from the closing balance of the
 * account's last daily_balance row before that day; it reads only the
 * journal entries of that account from that day on (index
 * journal_entry_account_idx).  rebuild_balances and reconcile repairs start
 * from the beginning of the account's history.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/json.h"

static SPIPlanPtr rebuild_plan = NULL;
static SPIPlanPtr lock_balance_plan = NULL;

/* The start of a timestamp's UTC day, as a timestamptz and as a date. */
static void
utc_day_start(TimestampTz ts, TimestampTz *start, DateADT *day)
{
	*day = ledger_utc_day(ts);
	*start = TIMESTAMP_NOT_FINITE(ts) ? ts : (TimestampTz) *day * USECS_PER_DAY;
}

/*
 * Lock an account's balance row (FOR UPDATE).  Must be called inside SPI.
 */
void
ledger_lock_balance(int64 account_id)
{
	Datum		values[1];

	if (lock_balance_plan == NULL)
		lock_balance_plan = ledger_prepare(
			"SELECT 1 FROM ledger.account_balance WHERE account_id = $1 FOR UPDATE",
			1, (Oid[]) {INT8OID});
	values[0] = Int64GetDatum(account_id);
	ledger_spi_exec(lock_balance_plan, values, NULL, SPI_OK_SELECT);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Rebuild one account from the UTC day of "from" on (DT_NOBEGIN: its whole
 * history).  The caller holds the account's balance row lock and is inside
 * SPI.  Days before "from" are trusted: the closing balance of the last
 * daily row before it is the starting point.  Writes only rows that differ;
 * returns how many balance rows it inserted, updated or deleted, and the
 * account's balance in *balance.
 */
int
ledger_rebuild_account(int64 account_id, TimestampTz from, Numeric *balance)
{
	TimestampTz start;
	DateADT		day;
	Datum		values[3];
	bool		isnull;
	int			changed;

	if (rebuild_plan == NULL)
		rebuild_plan = ledger_prepare(
			"WITH sc AS ("
			"  SELECT s.scale FROM ledger.account a JOIN ledger.asset s ON s.code = a.asset"
			"   WHERE a.id = $1),"
			" base AS ("
			"  SELECT coalesce((SELECT d.balance FROM ledger.daily_balance d"
			"                    WHERE d.account_id = $1 AND d.day < $3"
			"                    ORDER BY d.day DESC LIMIT 1), 0) AS b),"
			" exp AS ("
			"  SELECT e.day, e.debits, e.credits,"
			"         (SELECT b FROM base) + sum(e.net) OVER (ORDER BY e.day) AS balance"
			"    FROM (SELECT (j.created_at AT TIME ZONE 'UTC')::date AS day,"
			"                 coalesce(sum(-j.amount) FILTER (WHERE j.amount < 0), 0) AS debits,"
			"                 coalesce(sum(j.amount) FILTER (WHERE j.amount > 0), 0) AS credits,"
			"                 sum(j.amount) AS net"
			"            FROM ledger.journal_entry j"
			"           WHERE j.account_id = $1 AND j.created_at >= $2 AND NOT j.is_invalidated"
			"           GROUP BY 1) e),"
			" final AS ("
			"  SELECT pg_catalog.round(coalesce((SELECT balance FROM exp ORDER BY day DESC LIMIT 1),"
			"                  (SELECT b FROM base)), coalesce((SELECT scale FROM sc), 0)) AS balance),"
			" del AS ("
			"  DELETE FROM ledger.daily_balance d"
			"   WHERE d.account_id = $1 AND d.day >= $3"
			"     AND NOT EXISTS (SELECT 1 FROM exp WHERE exp.day = d.day)"
			"  RETURNING 1),"
			" ups AS ("
			"  INSERT INTO ledger.daily_balance AS d (account_id, day, debits, credits, balance)"
			"  SELECT $1, day, debits, credits, balance FROM exp"
			"  ON CONFLICT (account_id, day) DO UPDATE"
			"     SET debits = excluded.debits, credits = excluded.credits, balance = excluded.balance"
			"   WHERE (d.debits, d.credits, d.balance)"
			"         IS DISTINCT FROM (excluded.debits, excluded.credits, excluded.balance)"
			"  RETURNING 1),"
			" bal AS ("
			"  INSERT INTO ledger.account_balance AS b (account_id, balance)"
			"  SELECT $1, balance FROM final"
			"  ON CONFLICT (account_id) DO UPDATE"
			"     SET balance = excluded.balance, updated_at = pg_catalog.now()"
			"   WHERE b.balance IS DISTINCT FROM excluded.balance"
			"  RETURNING 1)"
			" SELECT ((SELECT count(*) FROM del) + (SELECT count(*) FROM ups)"
			"         + (SELECT count(*) FROM bal))::integer,"
			"        (SELECT balance FROM final)",
			3, (Oid[]) {INT8OID, TIMESTAMPTZOID, DATEOID});

	utc_day_start(from, &start, &day);
	values[0] = Int64GetDatum(account_id);
	values[1] = TimestampTzGetDatum(start);
	values[2] = DateADTGetDatum(day);
	ledger_spi_exec(rebuild_plan, values, NULL, SPI_OK_SELECT);

	changed = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (balance != NULL)
		*balance = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return changed;
}

/*
 * Take one account for a correction: fence it if it is hot (before any row
 * lock: see ledger_hot_fence), lock its balance row and fold its unfolded
 * hot entries, so that its balance row holds everything committed.
 * Callers take accounts in ascending id order, the order postings lock in.
 * Returns whether it was fenced, for ledger_finish_account.
 */
bool
ledger_take_account(int64 account_id, const char *code)
{
	bool		fenced = ledger_hot_fence(account_id, code);

	ledger_lock_balance(account_id);
	if (ledger_schema_has_hot())
		ledger_fold_account(account_id, INT_MAX);
	return fenced;
}

/*
 * Rebuild a taken account from the UTC day of "from" on; a fenced (hot)
 * account's escrow takes the rebuilt balance when the transaction commits.
 * Returns the balance rows changed; the balance in *balance.
 */
int
ledger_finish_account(int64 account_id, bool fenced, TimestampTz from, Numeric *balance)
{
	Numeric		after;
	int			changed;

	changed = ledger_rebuild_account(account_id, from, &after);
	if (fenced)
		ledger_hot_fence_set(account_id, after);
	if (balance)
		*balance = after;
	return changed;
}

/* Take and rebuild one account from the UTC day of "from" on. */
int
ledger_correct_account(int64 account_id, const char *code, TimestampTz from,
					   Numeric *balance)
{
	bool		fenced = ledger_take_account(account_id, code);

	return ledger_finish_account(account_id, fenced, from, balance);
}

/* ---------------------------------------------------------------------
 * ledger.invalidate
 * ---------------------------------------------------------------------
 */

typedef struct Touched
{
	int64		id;
	char	   *code;
	bool		unbounded;
	Numeric		min_balance;
	TimestampTz first;			/* earliest entry of the transaction */
	Numeric		before;
	Numeric		after;
	bool		fenced;			/* hot: escrow reset at commit */
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
		"SELECT is_invalidated, invalidated_at::text, invalidated_by, invalidation_reason "
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

static char *
uuid_str(pg_uuid_t *id)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
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
				 errmsg("transaction %s does not exist", uuid_str(id))));
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	if (DatumGetBool(SPI_getbinval(tup, desc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_ALREADY_INVALIDATED),
				 errmsg("transaction %s is already invalidated", uuid_str(id)),
				 errdetail("It was invalidated at %s by %s: %s.",
						   SPI_getvalue(tup, desc, 2),
						   SPI_getvalue(tup, desc, 3),
						   SPI_getvalue(tup, desc, 4))));
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
 * Take the touched accounts in id order, and note their balances before.
 */
static void
lock_touched(Touched *t, int n)
{
	Datum		values[1];
	bool		isnull;
	int			j;

	for (j = 0; j < n; j++)
	{
		t[j].fenced = ledger_take_account(t[j].id, t[j].code);
		values[0] = Int64GetDatum(t[j].id);
		ledger_spi_exec(inv_balance_plan, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
			t[j].before = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0],
															SPI_tuptable->tupdesc, 1, &isnull));
		SPI_freetuptable(SPI_tuptable);
	}
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
	int			i;

	initStringInfo(&detail);
	for (i = 0; i < n; i++)
	{
		Numeric		shortfall;

		if (t[i].unbounded || ledger_numeric_cmp(t[i].after, t[i].min_balance) >= 0)
			continue;
		if (t[i].before != NULL && ledger_numeric_cmp(t[i].after, t[i].before) >= 0)
			continue;			/* already below before; this made it no worse */
		shortfall = ledger_numeric_add(t[i].min_balance, ledger_numeric_neg(t[i].after));
		appendStringInfo(&detail, "%sAccount \"%s\" would have balance %s, floor %s, shortfall %s",
						 below > 0 ? "; " : "", t[i].code,
						 ledger_numeric_str(t[i].after),
						 ledger_numeric_str(t[i].min_balance),
						 ledger_numeric_str(shortfall));
		below++;
		if (force)
		{
			StringInfoData js;

			initStringInfo(&js);
			appendStringInfo(&js,
							 "{\"transaction_id\": \"%s\", \"balance\": %s, \"min_balance\": %s, "
							 "\"shortfall\": %s, \"reason\": ",
							 uuid_str(id), ledger_numeric_str(t[i].after),
							 ledger_numeric_str(t[i].min_balance),
							 ledger_numeric_str(shortfall));
			escape_json(&js, reason);
			appendStringInfoChar(&js, '}');
			ledger_raise_alert("critical", "invalidation_below_floor", t[i].id, js.data);
		}
	}
	if (below > 0 && !force)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_BELOW_FLOOR),
				 errmsg_plural("invalidation would leave %d account below its floor",
							   "invalidation would leave %d accounts below their floor",
							   below, below),
				 errdetail("Invalidating transaction %s: %s.", uuid_str(id), detail.data),
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
	lock_touched(t, n);

	values[0] = UUIDPGetDatum(id);
	values[1] = CStringGetTextDatum(reason);
	ledger_spi_exec(inv_flag_txn_plan, values, NULL, SPI_OK_UPDATE);
	ledger_spi_exec(inv_flag_journal_plan, values, NULL, SPI_OK_UPDATE);
	ledger_spi_exec(inv_flag_token_plan, values, NULL, SPI_OK_UPDATE);

	for (i = 0; i < n; i++)
		ledger_finish_account(t[i].id, t[i].fenced, t[i].first, &t[i].after);
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

/* ---------------------------------------------------------------------
 * ledger.rebuild_balances
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr account_id_plan = NULL;
static SPIPlanPtr all_accounts_plan = NULL;
static SPIPlanPtr orphans_plan = NULL;

static int64
account_id_by_code(const char *code)
{
	Datum		values[1];
	bool		isnull;
	int64		id;

	if (account_id_plan == NULL)
		account_id_plan = ledger_prepare(
			"SELECT id FROM ledger.account WHERE code = $1", 1, (Oid[]) {TEXTOID});
	values[0] = CStringGetTextDatum(code);
	ledger_spi_exec(account_id_plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
				 errmsg("account \"%s\" does not exist", code)));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return id;
}

/* Balance and daily rows of accounts that do not exist: delete them. */
int
ledger_remove_orphans(void)
{
	int			n;

	if (orphans_plan == NULL)
		orphans_plan = ledger_prepare(
			"WITH b AS (DELETE FROM ledger.account_balance b WHERE NOT EXISTS "
			"  (SELECT 1 FROM ledger.account a WHERE a.id = b.account_id) RETURNING 1),"
			" d AS (DELETE FROM ledger.daily_balance d WHERE NOT EXISTS "
			"  (SELECT 1 FROM ledger.account a WHERE a.id = d.account_id) RETURNING 1)"
			" SELECT ((SELECT count(*) FROM b) + (SELECT count(*) FROM d))::integer",
			0, NULL);
	ledger_spi_exec(orphans_plan, NULL, NULL, SPI_OK_SELECT);
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									&(bool) {false}));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

PG_FUNCTION_INFO_V1(ledger_rebuild_balances);

Datum
ledger_rebuild_balances(PG_FUNCTION_ARGS)
{
	int			changed = 0;

	SPI_connect();
	ledger_fold_begin();
	if (!PG_ARGISNULL(0))
	{
		char	   *code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
		int64		id = account_id_by_code(code);

		changed = ledger_correct_account(id, code, DT_NOBEGIN, NULL);
	}
	else
	{
		int64	   *ids;
		uint64		n;
		uint64		i;

		if (all_accounts_plan == NULL)
			all_accounts_plan = ledger_prepare(
				"SELECT id FROM ledger.account ORDER BY id", 0, NULL);
		ledger_spi_exec(all_accounts_plan, NULL, NULL, SPI_OK_SELECT);
		n = SPI_processed;
		ids = palloc(sizeof(int64) * Max(n, 1));
		for (i = 0; i < n; i++)
			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
												 1, &(bool) {false}));
		SPI_freetuptable(SPI_tuptable);

		for (i = 0; i < n; i++)
			changed += ledger_correct_account(ids[i], psprintf("#" INT64_FORMAT, ids[i]),
											  DT_NOBEGIN, NULL);
		changed += ledger_remove_orphans();
	}
	ledger_fold_end();
	SPI_finish();

	PG_RETURN_INT32(changed);
}
