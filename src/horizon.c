/*-------------------------------------------------------------------------
 *
 * horizon.c
 *	  Event sequence numbers and the safe horizon below which no event can
 *	  still commit, in shared memory.
 *
 * Every event gets its sequence number here (ledger_horizon_next), not
 * from a SQL sequence: the number is allocated and this backend's claim on
 * it recorded in one step under the spinlock, so no reader can see the
 * number taken and the claim missing.  A backend's claim is the lowest
 * number its open transaction allocated in this database; the commit and
 * abort callbacks drop it.  Commit callbacks run after the transaction
 * became visible to new snapshots, so:
 *
 *	  horizon = (lowest claim of any open transaction in this database) - 1,
 *	            or the last number allocated when there is no claim.
 *
 * Every event numbered at or below the horizon is committed and visible
 * to a snapshot taken after the horizon was read, or aborted for good.  A
 * reader takes the horizon first, then its snapshot.  Only transactions
 * that appended hold it back (until they end); nothing else does: not
 * other databases, not long transactions that append nothing, not the
 * time of day.
 *
 * After a start (or a crash restart, which clears shared memory and every
 * open transaction) a database's counter is loaded from max(seq) of its
 * ledger.event before the first number is given out (ledger_horizon_load),
 * and again whenever that table is another one (its relid changed: the
 * extension was dropped and created again, or a restore made it anew).
 * A transaction that appended events cannot be prepared (two-phase
 * commit would carry its claim to another backend or past a restart).
 *
 * Also here, beside the numbers: the event worker's latch, which the
 * commit of a transaction that appended sets (so the worker applies
 * within milliseconds, not at its next poll); a condition variable the
 * worker broadcasts after each batch (ledger.catch_up sleeps on it); the
 * worker's counters; and this backend's event being applied, which
 * ledger.stamp_event records on the rows it touches.
 *
 * Locking: one spinlock guards everything here; it is held only to read
 * or write these fields, never across anything that can fail (the latch
 * is set, and the condition variable broadcast, after it is released).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/wait_event.h"

/* Databases whose events one server numbers. */
#define HORIZON_MAX_DBS 32

typedef struct HorizonDb
{
	Oid			dboid;			/* InvalidOid: free */
	Oid			relid;			/* the ledger.event it numbers */
	int64		last;			/* last number given out */
} HorizonDb;

typedef struct HorizonClaim
{
	Oid			dboid;
	int64		lowest;			/* 0: no claim */
} HorizonClaim;

typedef struct HorizonShared
{
	slock_t		mutex;
	HorizonDb	dbs[HORIZON_MAX_DBS];
	Latch	   *applier_latch;	/* the event worker's, while it runs */
	LedgerApplierStats applier;
	ConditionVariable applied;	/* broadcast after each worker batch */
	int			nclaims;
	HorizonClaim claims[FLEXIBLE_ARRAY_MEMBER];	/* one per backend id */
} HorizonShared;

static HorizonShared *horizon = NULL;
static bool claimed = false;	/* this backend holds a claim */

/* The event this backend is applying (ledger_event_context_set). */
static int64 current_seq = 0;
static pg_uuid_t current_id;

/* This transaction holds the projection's row (it applied events). */
static bool projection_locked = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static Size
horizon_size(void)
{
	return add_size(offsetof(HorizonShared, claims),
					mul_size(sizeof(HorizonClaim), MaxBackends));
}

static void
horizon_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(horizon_size());
}

static void
horizon_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	horizon = ShmemInitStruct("ledger event horizon", horizon_size(), &found);
	if (!found)
	{
		memset(horizon, 0, horizon_size());
		SpinLockInit(&horizon->mutex);
		ConditionVariableInit(&horizon->applied);
		horizon->nclaims = MaxBackends;
	}
	LWLockRelease(AddinShmemInitLock);
}

static HorizonClaim *
my_claim(void)
{
	Assert(MyBackendId >= 1 && MyBackendId <= horizon->nclaims);
	return &horizon->claims[MyBackendId - 1];
}

/* The database's entry, or NULL; under the spinlock. */
static HorizonDb *
find_db(Oid dboid)
{
	int			i;

	for (i = 0; i < HORIZON_MAX_DBS; i++)
		if (horizon->dbs[i].dboid == dboid)
			return &horizon->dbs[i];
	return NULL;
}

static void
drop_claim(void)
{
	if (!claimed)
		return;
	SpinLockAcquire(&horizon->mutex);
	my_claim()->lowest = 0;
	my_claim()->dboid = InvalidOid;
	SpinLockRelease(&horizon->mutex);
	claimed = false;
}

static void
horizon_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (claimed)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_EVENTS_UNAVAILABLE),
						 errmsg("cannot PREPARE a transaction that appended events"),
						 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_EVENTS_UNAVAILABLE), "Its events hold back the horizon of event appliers until it ends in this backend."),
						 errhint("Append events in transactions that commit directly.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			current_seq = 0;
			projection_locked = false;
			if (claimed)
			{
				Latch	   *latch;

				/*
				 * Events committed: drop the claim, then wake the worker
				 * (SetLatch never errors).  In this order: a worker woken
				 * while the claim stood would read a horizon below these
				 * events, apply nothing and sleep.
				 */
				drop_claim();
				SpinLockAcquire(&horizon->mutex);
				latch = horizon->applier_latch;
				SpinLockRelease(&horizon->mutex);
				if (latch != NULL)
					SetLatch(latch);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			current_seq = 0;
			projection_locked = false;
			drop_claim();
			break;
		default:
			break;
	}
}

void
ledger_horizon_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = horizon_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = horizon_shmem_startup;
	RegisterXactCallback(horizon_xact_callback, NULL);
}

/* LD031 unless the library was preloaded (events need shared memory). */
void
ledger_horizon_require(void)
{
	if (horizon == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_EVENTS_UNAVAILABLE),
				 errmsg("events need ledger in shared_preload_libraries"),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_EVENTS_UNAVAILABLE), "Event numbers and the applier's horizon live in shared memory."),
				 errhint("Add 'ledger' to shared_preload_libraries and restart.")));
}

/*
 * Has this database's counter been loaded for this ledger.event (relid)
 * since the server started?  A table made again (DROP and CREATE
 * EXTENSION, pg_restore --clean) is another table: its counter is loaded
 * afresh.
 */
bool
ledger_horizon_loaded(Oid relid)
{
	HorizonDb  *db;
	bool		loaded;

	ledger_horizon_require();
	SpinLockAcquire(&horizon->mutex);
	db = find_db(MyDatabaseId);
	loaded = db != NULL && db->relid == relid;
	SpinLockRelease(&horizon->mutex);
	return loaded;
}

/*
 * Load this database's counter for ledger.event (relid) from the largest
 * number stored; a no-op if another backend did it first.  No lock is
 * needed: nobody appends to that table before its counter is loaded.
 */
void
ledger_horizon_load(Oid relid, int64 max_seq)
{
	HorizonDb  *db;
	bool		full = false;
	int			i;

	ledger_horizon_require();
	SpinLockAcquire(&horizon->mutex);
	db = find_db(MyDatabaseId);
	if (db == NULL)
	{
		for (i = 0; i < HORIZON_MAX_DBS && db == NULL; i++)
			if (horizon->dbs[i].dboid == InvalidOid)
				db = &horizon->dbs[i];
		if (db != NULL)
		{
			db->dboid = MyDatabaseId;
			db->relid = relid;
			db->last = max_seq;
		}
		else
			full = true;
	}
	else if (db->relid != relid)
	{
		/* the table was made again: its numbers start after what it holds */
		db->relid = relid;
		db->last = max_seq;
	}
	SpinLockRelease(&horizon->mutex);
	if (full)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_EVENTS_UNAVAILABLE),
				 errmsg("events are served in at most %d databases of one server", HORIZON_MAX_DBS),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_EVENTS_UNAVAILABLE,
													  LEDGER_FACT_TEXT("database", get_database_name(MyDatabaseId)),
													  LEDGER_FACT_INT("limit", HORIZON_MAX_DBS),
													  NULL),
										"Database %u would be one more.", MyDatabaseId)));
}

/*
 * The next event number of this database, claimed by this transaction in
 * the same step.  The counter must be loaded.
 */
int64
ledger_horizon_next(Oid relid)
{
	HorizonDb  *db;
	HorizonClaim *c;
	int64		seq = 0;

	ledger_horizon_require();
	SpinLockAcquire(&horizon->mutex);
	db = find_db(MyDatabaseId);
	if (db != NULL && db->relid != relid)
		db = NULL;
	if (db != NULL)
	{
		seq = ++db->last;
		c = my_claim();
		if (!claimed)
		{
			/* this transaction's first number: its claim */
			c->dboid = MyDatabaseId;
			c->lowest = seq;
		}
		Assert(c->dboid == MyDatabaseId && c->lowest <= seq);
	}
	SpinLockRelease(&horizon->mutex);
	if (db == NULL)
		elog(ERROR, "event numbers of database %u are not loaded", MyDatabaseId);
	claimed = true;
	return seq;
}

/*
 * The horizon of this database: every event numbered at or below it is
 * committed or aborted for good.  0 before the counter is loaded (nothing
 * to apply yet: the loader sees every committed event).
 */
int64
ledger_horizon(Oid relid)
{
	HorizonDb  *db;
	int64		h = 0;
	int			i;

	ledger_horizon_require();
	SpinLockAcquire(&horizon->mutex);
	db = find_db(MyDatabaseId);
	if (db != NULL && db->relid == relid)
	{
		h = db->last;
		for (i = 0; i < horizon->nclaims; i++)
			if (horizon->claims[i].lowest != 0 && horizon->claims[i].dboid == MyDatabaseId &&
				horizon->claims[i].lowest - 1 < h)
				h = horizon->claims[i].lowest - 1;
	}
	SpinLockRelease(&horizon->mutex);
	Assert(h >= 0);
	return h;
}

/*
 * This database's ledger.event, and its counter of event numbers, loaded
 * on first use (and again when the table is another one).  Inside SPI.
 */
Oid
ledger_event_relid(void)
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

/* Does this transaction hold a claim (it appended events)? */
bool
ledger_horizon_claimed(void)
{
	return claimed;
}

/*
 * The event this backend applies now, recorded by ledger.stamp_event on
 * the transactions and holds it writes; seq 0 clears it.
 */
void
ledger_event_context_set(int64 seq, const pg_uuid_t *id)
{
	current_seq = seq;
	if (seq > 0)
		memcpy(&current_id, id, sizeof(pg_uuid_t));
}

/* This transaction locked the projection's row: another applier cannot apply. */
void
ledger_projection_locked_set(void)
{
	projection_locked = true;
}

bool
ledger_projection_locked(void)
{
	return projection_locked;
}

bool
ledger_event_context(int64 *seq, pg_uuid_t *id)
{
	if (current_seq <= 0)
		return false;
	*seq = current_seq;
	memcpy(id, &current_id, sizeof(pg_uuid_t));
	return true;
}

/*
 * The event worker's state: set by the worker (state, and its latch while
 * it runs), read by ledger.event_worker_status.
 */
void
ledger_applier_set(LedgerApplierState state, Latch *latch)
{
	ledger_horizon_require();
	SpinLockAcquire(&horizon->mutex);
	horizon->applier.state = state;
	horizon->applier.pid = state == APPLIER_NOT_RUNNING ? 0 : MyProcPid;
	horizon->applier.dboid = MyDatabaseId;
	horizon->applier_latch = latch;
	SpinLockRelease(&horizon->mutex);
}

/* Count a worker batch (error: why it failed, or NULL), then wake catch_up. */
void
ledger_applier_record(int applied, int rejected, const char *error)
{
	TimestampTz now = GetCurrentTimestamp();

	SpinLockAcquire(&horizon->mutex);
	horizon->applier.batches++;
	horizon->applier.applied += applied;
	horizon->applier.rejected += rejected;
	horizon->applier.last_batch_at = now;
	if (error != NULL)
	{
		horizon->applier.errors++;
		strlcpy(horizon->applier.last_error, error, sizeof(horizon->applier.last_error));
		horizon->applier.last_error_at = now;
	}
	SpinLockRelease(&horizon->mutex);
	ConditionVariableBroadcast(&horizon->applied);
}

/* A copy of the worker's state; false if the library was not preloaded. */
bool
ledger_applier_read(LedgerApplierStats *out)
{
	if (horizon == NULL)
	{
		memset(out, 0, sizeof(*out));
		return false;
	}
	SpinLockAcquire(&horizon->mutex);
	*out = horizon->applier;
	SpinLockRelease(&horizon->mutex);
	return true;
}

/*
 * Wake the event worker if it runs and applies in this database; false if
 * it does not (the caller applies itself).
 */
bool
ledger_applier_wake(void)
{
	Latch	   *latch;

	if (horizon == NULL)
		return false;
	SpinLockAcquire(&horizon->mutex);
	latch = (horizon->applier.state == APPLIER_APPLYING ||
			 horizon->applier.state == APPLIER_IDLE) &&
		horizon->applier.dboid == MyDatabaseId ? horizon->applier_latch : NULL;
	SpinLockRelease(&horizon->mutex);
	if (latch == NULL)
		return false;
	SetLatch(latch);
	return true;
}

/* Sleep until the worker's next batch ends, or timeout_ms. */
void
ledger_applier_wait(long timeout_ms)
{
	ConditionVariablePrepareToSleep(&horizon->applied);
	(void) ConditionVariableTimedSleep(&horizon->applied, timeout_ms, PG_WAIT_EXTENSION);
	ConditionVariableCancelSleep();
}
