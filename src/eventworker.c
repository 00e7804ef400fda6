/*-------------------------------------------------------------------------
 *
 * eventworker.c
 *	  The event worker, a background worker in ledger.database that applies
 *	  events (apply.c) within milliseconds of their commit while
 *	  ledger.event_worker is on; ledger.catch_up, which makes a reader
 *	  fresh; ledger.event_worker_status.
 *
 * The worker: each batch is one transaction (ledger_apply_batch with SKIP
 * LOCKED, so a concurrent ledger.apply_events or catch_up simply takes the
 * batch).  It sleeps on its latch, which the commit of every transaction
 * that appended events sets (horizon.c), with ledger.event_poll_interval
 * as a safety net; a full batch is followed at once.  A failed batch is
 * rolled back whole, counted and reported in the status, and retried after
 * a second: the worker survives errors.  If it dies (even by SIGKILL, after
 * which the postmaster restarts the whole server) it is started again; the
 * events and the pointer commit together, so none is lost or applied
 * twice.  When ledger.event_worker is off it sleeps until a reload.
 *
 * catch_up: the target is the newest event committed before the call (of
 * one stream, or of all); it returns once the pointer reaches it.  When
 * the worker runs, catch_up wakes it and sleeps on the condition variable
 * it broadcasts after each batch; otherwise it applies batches itself in
 * the caller's transaction (then the projection's row stays locked until
 * the caller commits).  Past the timeout: LD034.
 *
 * Locking: the worker's state in horizon.c's shared memory (its spinlock);
 * the batches lock as apply.c says.
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
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ledger_event_worker_main(Datum main_arg);

static bool event_worker_enabled = false;
static int	event_poll_interval_ms = 1000;
static int	event_batch = 1000;

/* How long a failed batch waits before the next try. */
#define EVENT_RETRY_MS 1000

static const char *const state_names[] = {"not running", "starting", "disabled", "applying", "idle"};

PG_FUNCTION_INFO_V1(ledger_event_worker_status);

Datum
ledger_event_worker_status(PG_FUNCTION_ARGS)
{
	LedgerApplierStats st;
	TupleDesc	desc;
	Datum		values[9];
	bool		nulls[9] = {false, false, false, false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(ledger_applier_read(&st) ? state_names[st.state] :
									"not preloaded");
	values[1] = Int32GetDatum(st.pid);
	nulls[1] = st.pid == 0;
	values[2] = Int64GetDatum(st.batches);
	values[3] = Int64GetDatum(st.applied);
	values[4] = Int64GetDatum(st.rejected);
	values[5] = Int64GetDatum(st.errors);
	values[6] = TimestampTzGetDatum(st.last_batch_at);
	nulls[6] = st.last_batch_at == 0;
	values[7] = CStringGetTextDatum(st.last_error);
	nulls[7] = st.last_error[0] == '\0';
	values[8] = TimestampTzGetDatum(st.last_error_at);
	nulls[8] = st.last_error_at == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* ---------------------------------------------------------------------
 * ledger.catch_up
 * ---------------------------------------------------------------------
 */

/* The newest committed event (of a stream, or of all); 0 if none. */
static int64
catch_up_target(const char *stream)
{
	static SPIPlanPtr all_plan = NULL;
	static SPIPlanPtr stream_plan = NULL;
	Datum		arg;
	bool		isnull;
	Datum		d;

	if (all_plan == NULL)
	{
		all_plan = ledger_prepare("SELECT max(seq) FROM ledger.event", 0, NULL);
		stream_plan = ledger_prepare("SELECT max(seq) FROM ledger.event WHERE stream = $1",
									 1, (Oid[]) {TEXTOID});
	}
	if (stream)
	{
		arg = CStringGetTextDatum(stream);
		ledger_spi_exec(stream_plan, &arg, NULL, SPI_OK_SELECT);
	}
	else
		ledger_spi_exec(all_plan, NULL, NULL, SPI_OK_SELECT);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

PG_FUNCTION_INFO_V1(ledger_catch_up);

Datum
ledger_catch_up(PG_FUNCTION_ARGS)
{
	char	   *stream = NULL;
	Interval   *timeout;
	int64		timeout_ms;
	TimestampTz deadline;
	int64		target;
	int64		pointer;
	int			total = 0;

	if (!PG_ARGISNULL(0))
		stream = ledger_check_code(PG_GETARG_TEXT_PP(0), "stream");
	LEDGER_REQUIRE_ARG(1, "timeout");
	timeout = PG_GETARG_INTERVAL_P(1);
	if (timeout->month != 0 || timeout->day != 0 || timeout->time < 0 ||
		timeout->time > INT64CONST(3600) * USECS_PER_SEC)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("timeout must be between 0 and 1 hour"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "timeout"),
													  LEDGER_FACT_TEXT("given", DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(timeout)))),
													  NULL),
										"timeout is %s.",
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(timeout))))));
	timeout_ms = timeout->time / 1000;
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("ledger.catch_up runs under READ COMMITTED only"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("isolation", ledger_isolation_name()),
													  NULL),
										"It reads the pointer as others move it; this transaction's snapshot would never see them move.")));
	PreventCommandIfReadOnly("ledger.catch_up");
	ledger_horizon_require();
	if (ledger_horizon_claimed())
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_CATCH_UP_TIMEOUT),
				 errmsg("ledger.catch_up cannot wait for events this transaction appended"),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_CATCH_UP_TIMEOUT), "They can be applied only after this transaction commits."),
				 errhint("Commit the append first, then call ledger.catch_up.")));

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	SPI_connect();
	(void) ledger_event_relid();
	target = catch_up_target(stream);
	for (;;)
	{
		long		left;

		pointer = ledger_projection_pointer();
		if (pointer >= target)
			break;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0)
		{
			int64		at_horizon = ledger_horizon(ledger_event_relid());

			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_CATCH_UP_TIMEOUT),
					 errmsg("events are not applied within %s",
							DatumGetCString(DirectFunctionCall1(interval_out,
																IntervalPGetDatum(timeout)))),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_CATCH_UP_TIMEOUT,
														  LEDGER_FACT_TEXT("stream", stream),
														  LEDGER_FACT_INT("pointer", pointer),
														  LEDGER_FACT_INT("target", target),
														  LEDGER_FACT_INT("horizon", at_horizon),
														  LEDGER_FACT_INT("timeout_ms", timeout_ms),
														  NULL),
											"The pointer is at " INT64_FORMAT ", the %s " INT64_FORMAT "; the horizon is " INT64_FORMAT ".",
							   pointer, stream ? "stream's last event is" : "last event is",
							   target, at_horizon),
					 errhint("See ledger.event_worker: an open transaction that appended events holds the horizon back, or the applier is stopped or failing.")));
		}
		/* the worker applies, unless this transaction holds the projection's row */
		if (!ledger_projection_locked() && ledger_applier_wake())
			ledger_applier_wait(Min(left, 10));
		else
		{
			int			applied;
			int			rejected;
			bool		locked;

			total += ledger_apply_batch(event_batch, true, &locked, &applied, &rejected);
			if (!locked || ledger_projection_pointer() < target)
			{
				/* another applier has the batch, or the horizon is held back */
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 Min(left, 10), PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
		}
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	PG_RETURN_INT32(total);
}

/* ---------------------------------------------------------------------
 * The background worker
 * ---------------------------------------------------------------------
 */

static void
worker_exit(int code, Datum arg)
{
	ledger_applier_set(APPLIER_NOT_RUNNING, NULL);
}

/* Is the extension, at a version with events, installed here?  Syscache only. */
static bool
events_installed(void)
{
	Oid			nsp = get_namespace_oid("ledger", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("event", nsp));
}

/* State kept across the PG_TRY of one batch. */
static int	batch_n = 0;
static int	batch_applied = 0;
static int	batch_rejected = 0;

void
ledger_event_worker_main(Datum main_arg)
{
	MemoryContext batch_cxt;
	char		error[256];

	ledger_worker_connect("ledger event worker");
	on_shmem_exit(worker_exit, (Datum) 0);
	ledger_applier_set(APPLIER_STARTING, NULL);
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "ledger event batch",
									  ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long		sleep_ms = event_poll_interval_ms;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		ResetLatch(MyLatch);
		if (!event_worker_enabled)
		{
			ledger_applier_set(APPLIER_DISABLED, NULL);
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1, PG_WAIT_EXTENSION);
			continue;
		}
		ledger_applier_set(APPLIER_APPLYING, MyLatch);
		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		batch_n = batch_applied = batch_rejected = 0;
		error[0] = '\0';
		PG_TRY();
		{
			bool		locked = false;

			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			/* whatever default_transaction_isolation says: see apply.c */
			XactIsoLevel = XACT_READ_COMMITTED;
			SPI_connect();
			PushActiveSnapshot(GetTransactionSnapshot());
			pgstat_report_activity(STATE_RUNNING, "ledger apply events");
			if (events_installed())
				batch_n = ledger_apply_batch(event_batch, true, &locked, &batch_applied,
											 &batch_rejected);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(batch_cxt);
			edata = CopyErrorData();
			strlcpy(error, edata->message ? edata->message : "unknown error", sizeof(error));
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			batch_n = batch_applied = batch_rejected = 0;
		}
		PG_END_TRY();
		pgstat_report_activity(STATE_IDLE, NULL);
		ledger_applier_record(batch_applied, batch_rejected, error[0] ? error : NULL);
		ledger_applier_set(APPLIER_IDLE, MyLatch);
		if (batch_n >= event_batch)
			continue;			/* a full batch: more is waiting */
		if (error[0])
		{
			/* a failed batch waits out its delay, whatever commits meanwhile */
			TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EVENT_RETRY_MS);
			long		left;

			while ((left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until)) > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 left, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
	}
}

void
ledger_event_worker_init(void)
{
	DefineCustomBoolVariable("ledger.event_worker",
							 "Whether the background event worker applies events in ledger.database.",
							 "The worker runs when ledger is preloaded; off, it sleeps until a reload.",
							 &event_worker_enabled,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("ledger.event_poll_interval",
							"How long the event worker sleeps when no commit wakes it.",
							"Appending transactions wake it at commit; this is the safety net.",
							&event_poll_interval_ms,
							1000, 10, 3600000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("ledger.event_batch",
							"Most events the event worker or ledger.catch_up applies in one transaction.",
							NULL,
							&event_batch,
							1000, 1, 100000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	ledger_register_worker("ledger_event_worker_main", "ledger event worker");
}
