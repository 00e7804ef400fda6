/*-------------------------------------------------------------------------
 *
 * fold.c
 *	  Folding: committed ledger.hot_entry rows applied to
 *	  ledger.account_balance and ledger.daily_balance, many entries per
 *	  balance write.  Worker rounds (worker.c), ledger.fold(), and the
 *	  folds mode switches and corrections make of one account.
 *
 * What may be folded: a fold deletes hot_entry rows and applies them in
 * one transaction.  Its snapshot sees only rows whose inserting
 * transactions have committed; rows of transactions still in progress are
 * invisible to it (the xid horizon of its snapshot) and wait for a later
 * round.  A row is folded exactly when it is deleted, so a fold killed at
 * any moment rolls back: nothing is folded twice or skipped.  Each worker
 * round also moves fold_state.generation from g to g+1 conditionally
 * (WHERE generation = g): if another fold (ledger.fold(), a mode switch, a
 * correction) advanced it meanwhile, the round raises, is rolled back
 * whole and is retried; other folds only add to the counters.  fold_state
 * is always the last row a fold writes, after all balance row locks, so
 * folds never deadlock on it.
 *
 * Locking rules: an account is folded under its account_balance row lock
 * (FOR UPDATE, accounts in ascending id order).  Rebuilds, invalidations,
 * reconciliation repairs and mode switches of hot accounts take the same
 * lock, so they never interleave with a fold of that account.  Hot
 * postings never take it.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

static SPIPlanPtr fold_plan = NULL;
static SPIPlanPtr fold_accounts_plan = NULL;
static SPIPlanPtr fold_state_plan = NULL;
static SPIPlanPtr fold_advance_plan = NULL;
static SPIPlanPtr fold_count_plan = NULL;

static void
prepare_plans(void)
{
	if (fold_advance_plan != NULL)	/* prepared last */
		return;
	fold_accounts_plan = ledger_prepare(
		"SELECT DISTINCT account_id FROM ledger.hot_entry ORDER BY 1", 0, NULL);
	/*
	 * One account: take its rows, add them to the balance, and fold them
	 * into the daily rows.  A day's closing balance is the old closing of
	 * the latest row on or before it plus the folded net of all folded days
	 * up to it; later days shift by the same net.  All subqueries read the
	 * statement's snapshot, before the writes.
	 */
	fold_plan = ledger_prepare(
		"WITH del AS (DELETE FROM ledger.hot_entry WHERE ctid = ANY (ARRAY("
		"          SELECT ctid FROM ledger.hot_entry WHERE account_id = $1 LIMIT $2))"
		"         RETURNING day, debits, credits, created_at),"
		" agg AS (SELECT day, sum(debits) AS dr, sum(credits) AS cr, sum(credits - debits) AS net,"
		"                count(*) AS n FROM del GROUP BY day),"
		" tot AS (SELECT coalesce(sum(net), 0) AS net, coalesce(sum(n), 0) AS n FROM agg),"
		" bal AS (UPDATE ledger.account_balance SET balance = balance + (SELECT net FROM tot),"
		"                updated_at = pg_catalog.now()"
		"          WHERE account_id = $1 AND (SELECT n FROM tot) > 0 RETURNING 1),"
		" days AS (SELECT day FROM agg UNION"
		"          SELECT d.day FROM ledger.daily_balance d"
		"           WHERE d.account_id = $1 AND d.day >= (SELECT min(day) FROM agg)),"
		" newrows AS (SELECT dd.day, coalesce(a.dr, 0) AS dr, coalesce(a.cr, 0) AS cr,"
		"       coalesce((SELECT d.balance FROM ledger.daily_balance d"
		"                  WHERE d.account_id = $1 AND d.day <= dd.day"
		"                  ORDER BY d.day DESC LIMIT 1), 0)"
		"       + (SELECT coalesce(sum(a2.net), 0) FROM agg a2 WHERE a2.day <= dd.day) AS closing"
		"      FROM days dd LEFT JOIN agg a ON a.day = dd.day),"
		" ups AS (INSERT INTO ledger.daily_balance AS d (account_id, day, debits, credits, balance)"
		"         SELECT $1, day, dr, cr, closing FROM newrows"
		"         ON CONFLICT (account_id, day) DO UPDATE"
		"            SET debits = d.debits + excluded.debits, credits = d.credits + excluded.credits,"
		"                balance = excluded.balance"
		"         RETURNING 1)"
		" SELECT (SELECT n FROM tot)::integer, (SELECT count(*) FROM bal)::integer,"
		"        (SELECT count(*) FROM ups)::integer",
		2, (Oid[]) {INT8OID, INT4OID});
	fold_state_plan = ledger_prepare(
		"SELECT generation FROM ledger.fold_state WHERE id = 1", 0, NULL);
	fold_advance_plan = ledger_prepare(
		"UPDATE ledger.fold_state SET generation = generation + 1,"
		"       folded_rows = folded_rows + $2, balance_writes = balance_writes + $3,"
		"       last_fold_at = pg_catalog.now()"
		" WHERE id = 1 AND generation = $1",
		3, (Oid[]) {INT8OID, INT8OID, INT8OID});
}

/*
 * Fold up to max_rows entries of one account.  Inside SPI.  Returns the
 * entries folded; *writes gets the balance rows written.
 */
static int
fold_one(int64 account_id, int max_rows, int *writes)
{
	Datum		values[2];
	bool		isnull;
	int			n;

	prepare_plans();
	/* lock first: the fold statement's snapshot must be taken after it */
	ledger_lock_balance(account_id);
	values[0] = Int64GetDatum(account_id);
	values[1] = Int32GetDatum(max_rows);
	ledger_spi_exec(fold_plan, values, NULL, SPI_OK_SELECT);
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (writes)
		*writes = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2,
											  &isnull));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * Add folds made outside a worker round (a mode switch, a correction) to
 * fold_state.  Called as the last write of the caller, after every balance
 * row lock it takes, so it never waits for a fold round while holding a
 * lock that round needs.
 */
static void
count_folds(int64 folded, int64 writes)
{
	Datum		values[2];

	if (folded == 0)
		return;
	if (fold_count_plan == NULL)
		fold_count_plan = ledger_prepare(
			"UPDATE ledger.fold_state SET generation = generation + 1,"
			"       folded_rows = folded_rows + $1, balance_writes = balance_writes + $2,"
			"       last_fold_at = pg_catalog.now() WHERE id = 1",
			2, (Oid[]) {INT8OID, INT8OID});
	values[0] = Int64GetDatum(folded);
	values[1] = Int64GetDatum(writes);
	ledger_spi_exec(fold_count_plan, values, NULL, SPI_OK_UPDATE);
}

/* Folds made by the current correction or mode switch, not yet counted. */
static int64 pending_folded = 0;
static int64 pending_writes = 0;

/* Start tallying: called first by each function that folds on the side. */
void
ledger_fold_begin(void)
{
	pending_folded = 0;
	pending_writes = 0;
}

/*
 * Fold one account now, for a mode switch or a correction.  The caller
 * holds the account's balance row lock.  Counted by ledger_fold_end.
 */
int
ledger_fold_account(int64 account_id, int max_rows)
{
	int			writes = 0;
	int			n = fold_one(account_id, max_rows, &writes);

	pending_folded += n;
	pending_writes += writes;
	return n;
}

/* Count the tallied folds, after the caller's last balance row lock. */
void
ledger_fold_end(void)
{
	count_folds(pending_folded, pending_writes);
	pending_folded = 0;
	pending_writes = 0;
}

/*
 * One fold round over every account with entries, up to max_rows entries.
 * Inside a transaction and SPI.  Returns the entries folded; *writes gets
 * the account_balance writes.  A worker round (worker) advances
 * fold_state.generation conditionally; ledger.fold() only counts.
 */
int
ledger_fold_round(int max_rows, int64 *writes, bool worker)
{
	int64	   *ids;
	uint64		nids;
	uint64		i;
	int64		generation;
	int			folded = 0;
	Datum		values[3];
	bool		isnull;

	prepare_plans();
	*writes = 0;
	ledger_spi_exec(fold_state_plan, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "ledger.fold_state has no row");
	generation = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											 &isnull));
	SPI_freetuptable(SPI_tuptable);

	ledger_spi_exec(fold_accounts_plan, NULL, NULL, SPI_OK_SELECT);
	nids = SPI_processed;
	ids = palloc(sizeof(int64) * Max(nids, 1));
	for (i = 0; i < nids; i++)
		ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1,
											 &isnull));
	SPI_freetuptable(SPI_tuptable);

	for (i = 0; i < nids && folded < max_rows; i++)
	{
		int			w = 0;

		folded += fold_one(ids[i], max_rows - folded, &w);
		*writes += w;
	}

	if (folded == 0)
		return 0;				/* nothing applied: leave fold_state alone */
	if (!worker)
	{
		/* ledger.fold(): its rows were already claimed by the deletes */
		count_folds(folded, *writes);
		return folded;
	}
	values[0] = Int64GetDatum(generation);
	values[1] = Int64GetDatum(folded);
	values[2] = Int64GetDatum(*writes);
	ledger_spi_exec(fold_advance_plan, values, NULL, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("another fold advanced the fold state concurrently"),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_MODE_CHANGED), "Expected generation " INT64_FORMAT ".", generation),
				 errhint("Retry; this round is rolled back.")));
	return folded;
}

void
ledger_fold_record(int folded, int64 writes)
{
	LedgerWorkerStats *st = ledger_hot_worker_stats();

	if (st == NULL)
		return;
	SpinLockAcquire(&st->mutex);
	st->rounds++;
	st->folded_rows += folded;
	st->balance_writes += writes;
	if (folded > 0)
		st->last_fold_at = GetCurrentTimestamp();
	SpinLockRelease(&st->mutex);
}

PG_FUNCTION_INFO_V1(ledger_fold);

Datum
ledger_fold(PG_FUNCTION_ARGS)
{
	int			max_rows;
	int			folded;
	int64		writes;

	LEDGER_REQUIRE_ARG(0, "max_rows");
	max_rows = PG_GETARG_INT32(0);
	if (max_rows < 1)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("max_rows must be positive"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "max_rows"),
													  LEDGER_FACT_INT("given", max_rows),
													  NULL),
										"max_rows %d.", max_rows)));
	SPI_connect();
	folded = ledger_fold_round(max_rows, &writes, false);
	SPI_finish();
	ledger_fold_record(folded, writes);
	PG_RETURN_INT32(folded);
}

