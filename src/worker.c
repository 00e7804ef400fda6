/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The fold worker, a background worker in ledger.database: after every
 *	  start it rebuilds the hot-account escrow from the tables
 *	  (escrowload.c), then runs a fold round (fold.c) every
 *	  ledger.fold_interval, and raises a fold_lag alert when the oldest
 *	  unfolded entry is older than ledger.fold_lag_alert, and once a second
 *	  announces stale and recovered exchange rate feeds (rates.c).  Also
 *	  ledger.fold_worker_status().
 *
 * Each round is one transaction; a failed round (a concurrent fold won the
 * generation, the extension was dropped under it, a deadlock) is rolled
 * back whole and retried after the sleep.  The worker sleeps on its latch
 * between rounds, with WL_EXIT_ON_PM_DEATH, also when a round hit its cap
 * (then without a timeout), so a long backlog never keeps it from noticing
 * the postmaster's death or a SIGTERM.
 *
 * Locking: its state in shared memory (LedgerWorkerStats) under its
 * spinlock; the rounds lock as fold.c says.
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
	static SPIPlanPtr lag_plan = NULL;
	bool		isnull;
	Datum		d;
	Numeric		lag;
	Numeric		threshold;

	if (ledger_fold_lag_alert_s <= 0 ||
		!TimestampDifferenceExceeds(*last_alert, GetCurrentTimestamp(), 60000))
		return;
	if (lag_plan == NULL)
		lag_plan = ledger_prepare(
			"SELECT extract(epoch FROM pg_catalog.clock_timestamp() - min(created_at)) "
			"FROM ledger.hot_entry", 0, NULL);
	ledger_spi_exec(lag_plan, NULL, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;				/* nothing unfolded */
	lag = DatumGetNumeric(d);
	threshold = int64_to_numeric(ledger_fold_lag_alert_s);
	if (ledger_numeric_cmp(lag, threshold) > 0)
	{
		LedgerJson *j = ledger_json_begin();

		ledger_json_numeric(j, "fold_lag_seconds", lag);
		ledger_json_numeric(j, "threshold_seconds", threshold);
		ledger_raise_alert("warning", "fold_lag", 0, ledger_json_end(j));
		*last_alert = GetCurrentTimestamp();
	}
}

/* The rate monitor's check, in a subtransaction of the round. */
static void
rate_check(void *arg)
{
	(void) ledger_rate_feeds_check(NULL, NULL, true);
}

/*
 * Announce stale and recovered rate feeds (rates.c) once a second; a
 * failure is logged and leaves the fold round alone.
 */
static void
check_rates(TimestampTz *last_check)
{
	const LedgerSchema *schema = ledger_schema();
	ErrorData  *err;

	if (schema == NULL || !schema->has_rates ||
		!TimestampDifferenceExceeds(*last_check, GetCurrentTimestamp(), 1000))
		return;
	*last_check = GetCurrentTimestamp();
	err = ledger_try(rate_check, NULL);
	if (err != NULL)
	{
		ereport(LOG, (errmsg("ledger fold worker: rate check failed: %s", err->message)));
		FreeErrorData(err);
	}
}

/* The worker loop's state lives outside its PG_TRY block. */
static TimestampTz last_alert = 0;
static TimestampTz last_rate_check = 0;
static int	round_folded = 0;
static int64 round_writes = 0;

void
ledger_worker_main(Datum main_arg)
{
	MemoryContext round_cxt;

	ledger_worker_connect("ledger fold worker");
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
				round_folded = ledger_fold_round(FOLD_BATCH, &round_writes, true);
				check_lag(&last_alert);
				check_rates(&last_rate_check);
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
		ledger_fold_record(round_folded, round_writes);
		set_state(WORKER_IDLE);

		/*
		 * Sleep between rounds, so that a round folds many entries per
		 * balance write; go on at once only when a round hit its cap.
		 */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 round_folded < FOLD_BATCH ? ledger_fold_interval_ms : 0,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

void
ledger_worker_init(void)
{
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

	ledger_register_worker("ledger_worker_main", "ledger fold worker");
}

/*
 * Register one of the ledger's background workers (at preload): connected
 * to a database, started once recovery is over, restarted a second after
 * it dies.
 */
void
ledger_register_worker(const char *function, const char *name)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "ledger");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", name);
	RegisterBackgroundWorker(&worker);
}

/* A worker's start: its signals, its connection to ledger.database, its name. */
void
ledger_worker_connect(const char *name)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(ledger_database, NULL, 0);
	pgstat_report_appname(name);
}
