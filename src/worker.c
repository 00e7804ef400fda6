/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The fold worker: after every start it rebuilds the hot-account escrow
 *	  (hot.c) from the tables, then folds committed ledger.hot_entry rows
 *	  into ledger.account_balance and ledger.daily_balance, many entries per
 *	  balance write.  Also ledger.fold(), the same fold on demand.
 *
 * What may be folded: the fold deletes hot_entry rows and applies them in
 * one transaction.  Its snapshot sees only rows whose inserting
 * transactions have committed; rows of transactions still in progress are
 * invisible to it (the xid horizon of its snapshot) and wait for a later
 * round.  A row is folded exactly when it is deleted, so a worker killed
 * at any moment rolls back its round: nothing is folded twice or skipped.
 * Each worker round also moves fold_state.generation from g to g+1
 * conditionally (WHERE generation = g): if another fold (ledger.fold(), a
 * mode switch, a correction) advanced it meanwhile, the round raises, is
 * rolled back whole and is retried; other folds only add to the counters.
 * fold_state is always the last row a fold writes, after all balance row
 * locks, so folds never deadlock on it.
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

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ledger_worker_main(Datum main_arg);

int			ledger_fold_interval_ms = 100;

/* Most entries one worker round folds; a full round is followed at once. */
#define FOLD_BATCH 100000
int			ledger_fold_lag_alert_s = 10;

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
 * One fold round over every account with entries.  Inside a transaction and
 * SPI.  Returns the entries folded; *writes gets the account_balance writes.
 */
static int
fold_round(int max_rows, int64 *writes, bool worker)
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
				 errdetail("Expected generation " INT64_FORMAT ".", generation),
				 errhint("Retry; this round is rolled back.")));
	return folded;
}

static void
record_round(int folded, int64 writes)
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
				 errdetail("max_rows %d.", max_rows)));
	SPI_connect();
	folded = fold_round(max_rows, &writes, false);
	SPI_finish();
	record_round(folded, writes);
	PG_RETURN_INT32(folded);
}

PG_FUNCTION_INFO_V1(ledger_fold_worker_status);

Datum
ledger_fold_worker_status(PG_FUNCTION_ARGS)
{
	LedgerWorkerStats *st = ledger_hot_worker_stats();
	LedgerWorkerStats copy;
	TupleDesc	desc;
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};
	static const char *const names[] = {"not running", "starting", "loading", "folding", "idle"};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (st == NULL)
	{
		memset(&copy, 0, sizeof(copy));
		values[0] = CStringGetTextDatum("not preloaded");
	}
	else
	{
		SpinLockAcquire(&st->mutex);
		copy = *st;
		SpinLockRelease(&st->mutex);
		values[0] = CStringGetTextDatum(names[copy.state]);
	}
	values[1] = Int32GetDatum(copy.pid);
	nulls[1] = copy.pid == 0;
	values[2] = Int64GetDatum(copy.rounds);
	values[3] = Int64GetDatum(copy.folded_rows);
	values[4] = Int64GetDatum(copy.balance_writes);
	values[5] = TimestampTzGetDatum(copy.last_fold_at);
	nulls[5] = copy.last_fold_at == 0;
	values[6] = BoolGetDatum(ledger_hot_is_ready());
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* ---------------------------------------------------------------------
 * The background worker
 * ---------------------------------------------------------------------
 */

static void
set_state(LedgerWorkerState state)
{
	LedgerWorkerStats *st = ledger_hot_worker_stats();

	SpinLockAcquire(&st->mutex);
	st->state = state;
	st->pid = state == WORKER_NOT_RUNNING ? 0 : MyProcPid;
	SpinLockRelease(&st->mutex);
}

static void
worker_exit(int code, Datum arg)
{
	set_state(WORKER_NOT_RUNNING);
}

/*
 * Is the extension, at a version with hot accounts, installed here?  Two
 * syscache lookups, no query.
 */
static bool
extension_ready(void)
{
	Oid			nsp = get_namespace_oid("ledger", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("hot_entry", nsp));
}

/*
 * Alert when the oldest unfolded entry is older than ledger.fold_lag_alert,
 * at most once a minute.
 */
static void
check_lag(TimestampTz *last_alert)
{
	double		lag;
	bool		isnull;
	Datum		d;

	if (ledger_fold_lag_alert_s <= 0 ||
		!TimestampDifferenceExceeds(*last_alert, GetCurrentTimestamp(), 60000))
		return;
	if (SPI_execute("SELECT extract(epoch FROM pg_catalog.clock_timestamp() - min(created_at))::float8 "
					"FROM ledger.hot_entry", true, 1) != SPI_OK_SELECT)
		return;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;
	lag = DatumGetFloat8(d);
	if (lag > ledger_fold_lag_alert_s)
	{
		char	   *details = psprintf("{\"fold_lag_seconds\": %.3f, \"threshold_seconds\": %d}",
									   lag, ledger_fold_lag_alert_s);

		ledger_raise_alert("warning", "fold_lag", 0, details);
		*last_alert = GetCurrentTimestamp();
	}
}

/* The worker loop's state lives outside its PG_TRY block. */
static TimestampTz last_alert = 0;
static int	round_folded = 0;
static int64 round_writes = 0;

void
ledger_worker_main(Datum main_arg)
{
	MemoryContext round_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(ledger_database, NULL, 0);
	/* every statement of the fold is keyed: see ledger_keyed_begin */
	SetConfigOption("enable_seqscan", "off", PGC_USERSET, PGC_S_OVERRIDE);
	/* and a plan that must scan would cost enough to be compiled each round */
	SetConfigOption("jit", "off", PGC_USERSET, PGC_S_OVERRIDE);

	/*
	 * A fold commits without waiting for its WAL flush.  It is one atomic
	 * transaction: if a crash loses it, its hot_entry rows come back with
	 * the balances they had not yet been added to, and the next round folds
	 * them again.  The journal and hot_entry rows themselves are written by
	 * the postings, with the posting's own synchronous_commit.
	 */
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_OVERRIDE);
	on_shmem_exit(worker_exit, (Datum) 0);
	set_state(WORKER_STARTING);
	pgstat_report_appname("ledger fold worker");

	round_cxt = AllocSetContextCreate(TopMemoryContext, "ledger fold round",
									  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		round_folded = 0;
		round_writes = 0;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(round_cxt);
		MemoryContextSwitchTo(round_cxt);

		/*
		 * A failed round (a concurrent fold won the generation, the
		 * extension was dropped under it, a deadlock) is rolled back as a
		 * whole and retried after the sleep: nothing of it was applied.
		 */
		PG_TRY();
		{
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			pgstat_report_activity(STATE_RUNNING, "ledger fold");

			if (extension_ready())
			{
				if (!ledger_hot_is_ready())
				{
					set_state(WORKER_LOADING);
					ledger_hot_load();
					elog(LOG, "ledger fold worker: hot accounts loaded");
				}
				set_state(WORKER_FOLDING);
				round_folded = fold_round(FOLD_BATCH, &round_writes, true);
				check_lag(&last_alert);
			}
			else if (!ledger_hot_is_ready())
				ledger_hot_load_empty();

			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(round_cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			round_folded = 0;
			round_writes = 0;
		}
		PG_END_TRY();
		pgstat_report_activity(STATE_IDLE, NULL);
		record_round(round_folded, round_writes);
		set_state(WORKER_IDLE);

		/*
		 * Sleep between rounds, so that a round folds many entries per
		 * balance write; go on at once only when a round hit its cap.
		 */
		if (round_folded < FOLD_BATCH)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 ledger_fold_interval_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

void
ledger_worker_init(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("ledger.fold_interval",
							"How long the fold worker sleeps between fold rounds.",
							NULL,
							&ledger_fold_interval_ms,
							100, 1, 60000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("ledger.fold_lag_alert",
							"Fold lag beyond which the worker raises a fold_lag alert (0 disables it).",
							"Fold lag is the age of the oldest unfolded hot entry.",
							&ledger_fold_lag_alert_s,
							10, 0, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "ledger");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ledger_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "ledger fold worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "ledger fold worker");
	RegisterBackgroundWorker(&worker);
}
