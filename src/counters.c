/*-------------------------------------------------------------------------
 *
 * counters.c
 *	  Server-wide counters for monitoring (ledger.counters()): postings
 *	  committed, of which batch items, and LD errors raised, by SQLSTATE.
 *
 *	- A posting counts when its transaction commits: a backend counts its
 *	  postings in local memory, forgets those of a subtransaction that
 *	  rolls back, and adds the rest to shared memory at commit.  A
 *	  prepared transaction's postings are not counted.
 *	- An LD error counts when it is raised (errfacts.c), whether or not the
 *	  caller catches it: a refused batch item counts, and so does an
 *	  error a PL/pgSQL block handles.  LD001 is the refused debits.
 *	- Only with ledger in shared_preload_libraries; otherwise the counters
 *	  read zero.  They start at zero with the server; Prometheus counters
 *	  may reset.
 *	- Bounds: each counter is an unsigned 64-bit integer, which at a
 *	  million increments a second would wrap after more than 500,000 years;
 *	  nothing else is summed.
 *
 * Locking: atomic additions only, no lock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* LD001 .. LD099: the class's codes are numbered, three digits */
#define LEDGER_MAX_CODE 99

typedef struct CounterShared
{
	pg_atomic_uint64 postings;
	pg_atomic_uint64 batch_items;
	pg_atomic_uint64 raised[LEDGER_MAX_CODE + 1];
} CounterShared;

static CounterShared *counters = NULL;

/* this transaction's postings, not yet committed */
static uint64 pending_postings = 0;
static uint64 pending_items = 0;

/* what was pending when each open subtransaction began, by nesting level */
static uint64 *marks = NULL;
static int	nmarks = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
counters_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(CounterShared));
}

static void
counters_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	counters = ShmemInitStruct("ledger counters", sizeof(CounterShared), &found);
	if (!found)
	{
		pg_atomic_init_u64(&counters->postings, 0);
		pg_atomic_init_u64(&counters->batch_items, 0);
		for (i = 0; i <= LEDGER_MAX_CODE; i++)
			pg_atomic_init_u64(&counters->raised[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
counters_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (counters != NULL && pending_postings > 0)
			{
				pg_atomic_fetch_add_u64(&counters->postings, pending_postings);
				pg_atomic_fetch_add_u64(&counters->batch_items, pending_items);
			}
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			pending_postings = 0;
			pending_items = 0;
			break;
		default:
			break;
	}
}

/* Two values per level: postings, then batch items. */
static void
counters_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();

	if (event == SUBXACT_EVENT_START_SUB)
	{
		if (level >= nmarks)
		{
			int			n = Max(16, level * 2);

			marks = marks ? repalloc(marks, sizeof(uint64) * 2 * n)
				: MemoryContextAlloc(TopMemoryContext, sizeof(uint64) * 2 * n);
			nmarks = n;
		}
		marks[2 * level] = pending_postings;
		marks[2 * level + 1] = pending_items;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB && level < nmarks)
	{
		pending_postings = marks[2 * level];
		pending_items = marks[2 * level + 1];
	}
}

void
ledger_counters_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = counters_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = counters_shmem_startup;
	RegisterXactCallback(counters_xact_callback, NULL);
	RegisterSubXactCallback(counters_subxact_callback, NULL);
}

/* A posting written by this transaction (counted if it commits). */
void
ledger_count_posting(bool batch_item)
{
	if (counters == NULL)
		return;
	pending_postings++;
	if (batch_item)
		pending_items++;
}

/* An LD error being raised; other codes are not counted. */
void
ledger_count_raised(int sqlerrcode)
{
	const char *s;
	int			n;

	if (counters == NULL || !LEDGER_ERRCODE_IS_LD(sqlerrcode))
		return;
	s = unpack_sql_state(sqlerrcode);
	if (s[2] < '0' || s[2] > '9' || s[3] < '0' || s[3] > '9' || s[4] < '0' || s[4] > '9')
		return;
	n = (s[2] - '0') * 100 + (s[3] - '0') * 10 + (s[4] - '0');
	if (n <= LEDGER_MAX_CODE)
		pg_atomic_fetch_add_u64(&counters->raised[n], 1);
}

PG_FUNCTION_INFO_V1(ledger_counters);

/*
 * ledger.counters(): (counter, sqlstate, value) rows: postings,
 * batch_items, and one 'raised' row per LD SQLSTATE raised at least once.
 */
Datum
ledger_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[3];
	bool		nulls[3] = {false, true, false};
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	values[0] = CStringGetTextDatum("postings");
	values[2] = Int64GetDatum(counters ? (int64) pg_atomic_read_u64(&counters->postings) : 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	values[0] = CStringGetTextDatum("batch_items");
	values[2] = Int64GetDatum(counters ? (int64) pg_atomic_read_u64(&counters->batch_items) : 0);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	for (i = 1; counters != NULL && i <= LEDGER_MAX_CODE; i++)
	{
		uint64		v = pg_atomic_read_u64(&counters->raised[i]);

		if (v == 0)
			continue;
		nulls[1] = false;
		values[0] = CStringGetTextDatum("raised");
		values[1] = CStringGetTextDatum(psprintf("LD%03d", i));
		values[2] = Int64GetDatum((int64) v);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
