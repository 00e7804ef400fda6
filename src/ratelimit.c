/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  Rate limits per calling role (and optionally per acting owner), a
 *	  token bucket per key kept in shared memory: no table row is touched
 *	  per call.  ledger.set_rate_limit stores a limit in ledger.rate_limit
 *	  (so it survives restarts and dumps); the commit of that change bumps
 *	  a generation, and the next checking backend of each database reloads
 *	  its limits from the table into shared memory.  The money-moving calls
 *	  (transfer, post, hold, capture, void, exchange) call
 *	  ledger_rate_check first: with no limit configured anywhere it costs
 *	  two atomic reads; over the limit it fails fast with LD041, whose
 *	  detail says when to retry.
 *
 *	  The role is the login role (GetSessionUserId) if it has a limit, else
 *	  the current role outside the functions (GetOuterUserId, after SET
 *	  ROLE); never the groups it belongs to.  Calls made while applying an
 *	  event are not limited: the event was accepted when it was appended.  With
 *	  per_owner, each ledger.acting_owner of that role has its own bucket of
 *	  the role's size; calls without an acting owner share one.  The bucket
 *	  table is bounded (RATE_BUCKETS): when a probe finds no free slot, the
 *	  longest-idle bucket of the probe is reused, which starts that key
 *	  with a full bucket again.
 *
 * Locking: one spinlock (RateShared.mutex) guards the whole table; it is
 *	  held only for the bounded probe and the bucket arithmetic, never
 *	  across a call that can fail.  The reload queries the table before
 *	  taking it.  Without the library preloaded there is no shared memory:
 *	  set_rate_limit refuses (LD041 is never raised).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include <math.h>
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

/* Most limits per database and over all, buckets, databases with limits. */
#define RATE_DB_LIMITS		32
#define RATE_MAX_LIMITS		256
#define RATE_BUCKETS		4096
#define RATE_PROBE			16
#define RATE_MAX_DBS		64
/* Bounds of a limit: one call per 1,000 s to a million a second. */
#define RATE_MIN_PER_SECOND "0.001"
#define RATE_MAX_PER_SECOND 1000000
#define RATE_MAX_BURST		1000000

typedef struct RateLimit
{
	Oid			dbid;
	Oid			roleid;
	double		per_second;
	int			burst;
	bool		per_owner;
	uint64		calls;			/* checked calls since the limit was loaded */
	uint64		refused;
} RateLimit;

typedef struct RateBucket
{
	Oid			dbid;			/* InvalidOid: free */
	Oid			roleid;
	uint64		owner_hash;		/* 0: no acting owner, or not per owner */
	double		tokens;
	TimestampTz last;
} RateBucket;

typedef struct RateShared
{
	slock_t		mutex;
	pg_atomic_uint64 config_gen;	/* bumped by each committed change */
	pg_atomic_uint32 nlimits;	/* limits loaded, all databases */
	Oid			db[RATE_MAX_DBS];	/* databases that loaded ... */
	uint64		db_gen[RATE_MAX_DBS];	/* ... and the generation they loaded */
	int			nlimit;
	RateLimit	limit[RATE_MAX_LIMITS];
	RateBucket	bucket[RATE_BUCKETS];
} RateShared;

static RateShared *rate = NULL;
static bool change_pending = false;
/* The generation this backend last saw loaded for its database. */
static uint64 seen_gen = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
rate_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(RateShared));
}

static void
rate_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rate = ShmemInitStruct("ledger rate limits", sizeof(RateShared), &found);
	if (!found)
	{
		memset(rate, 0, sizeof(RateShared));
		SpinLockInit(&rate->mutex);
		pg_atomic_init_u64(&rate->config_gen, 1);
		pg_atomic_init_u32(&rate->nlimits, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Commit of a change: the next check of every database reloads. */
static void
rate_xact_callback(XactEvent event, void *arg)
{
	if (!change_pending)
		return;
	if (event == XACT_EVENT_PRE_PREPARE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("cannot PREPARE a transaction that changed rate limits"),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_INVALID_ARGUMENT), "The change would take effect at COMMIT PREPARED, which this backend would not announce."),
				 errhint("Change rate limits in a transaction of its own.")));
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		pg_atomic_fetch_add_u64(&rate->config_gen, 1);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		change_pending = false;
}

void
ledger_ratelimit_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = rate_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = rate_shmem_startup;
	RegisterXactCallback(rate_xact_callback, NULL);
}

/* This database's slot in db[], or -1 (caller holds the mutex). */
static int
db_slot(void)
{
	int			i;

	for (i = 0; i < RATE_MAX_DBS; i++)
		if (rate->db[i] == MyDatabaseId)
			return i;
	return -1;
}

/*
 * Load this database's limits from ledger.rate_limit into shared memory,
 * as of generation gen, with the latest snapshot.  The query runs before
 * the mutex is taken; a reload that finds a newer generation installed
 * meanwhile leaves it be.
 */
static void
reload(uint64 gen)
{
	static SPIPlanPtr plan = NULL;
	RateLimit	loaded[RATE_DB_LIMITS];
	int			n = 0;
	int			i,
				j,
				slot;
	int			dropped = 0;
	const LedgerSchema *schema = ledger_schema();

	SPI_connect();
	if (schema != NULL && schema->has_rate_limits)	/* else before 0.10.0: none */
	{
		if (plan == NULL)
			plan = ledger_prepare_scan(
				"SELECT r.oid, l.per_second::pg_catalog.float8, l.burst, l.per_owner "
				"FROM ledger.rate_limit l JOIN pg_catalog.pg_roles r "
				"ON r.rolname OPERATOR(pg_catalog.=) l.role_name "
				"ORDER BY r.oid LIMIT " CppAsString2(RATE_DB_LIMITS), 0, NULL);
		/* the latest committed limits, whatever this transaction's snapshot */
		if (SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot,
								 true, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "reading ledger.rate_limit failed");
		for (i = 0; i < (int) SPI_processed; i++)
		{
			HeapTuple	t = SPI_tuptable->vals[i];
			TupleDesc	d = SPI_tuptable->tupdesc;
			bool		isnull;

			loaded[n].dbid = MyDatabaseId;
			loaded[n].roleid = DatumGetObjectId(SPI_getbinval(t, d, 1, &isnull));
			loaded[n].per_second = DatumGetFloat8(SPI_getbinval(t, d, 2, &isnull));
			loaded[n].burst = DatumGetInt32(SPI_getbinval(t, d, 3, &isnull));
			loaded[n].per_owner = DatumGetBool(SPI_getbinval(t, d, 4, &isnull));
			loaded[n].calls = loaded[n].refused = 0;
			n++;
		}
	}
	SPI_finish();

	SpinLockAcquire(&rate->mutex);
	slot = db_slot();
	if (slot >= 0 && rate->db_gen[slot] > gen)
	{
		/* a reload of a newer change got here first: keep what it installed */
		SpinLockRelease(&rate->mutex);
		return;
	}
	if (slot < 0)
		for (i = 0; i < RATE_MAX_DBS && slot < 0; i++)
			if (rate->db[i] == InvalidOid)
				slot = i;
	/* keep the counters of limits that stay; drop this database's others */
	for (i = 0; i < n; i++)
		for (j = 0; j < rate->nlimit; j++)
			if (rate->limit[j].dbid == MyDatabaseId &&
				rate->limit[j].roleid == loaded[i].roleid)
			{
				loaded[i].calls = rate->limit[j].calls;
				loaded[i].refused = rate->limit[j].refused;
			}
	for (i = 0, j = 0; i < rate->nlimit; i++)
		if (rate->limit[i].dbid != MyDatabaseId)
			rate->limit[j++] = rate->limit[i];
	rate->nlimit = j;
	if (slot >= 0)
	{
		for (i = 0; i < n && rate->nlimit < RATE_MAX_LIMITS; i++)
			rate->limit[rate->nlimit++] = loaded[i];
		dropped = n - i;
		rate->db[slot] = MyDatabaseId;
		rate->db_gen[slot] = gen;
	}
	/* buckets of limits that went away start afresh if they come back */
	for (i = 0; i < RATE_BUCKETS; i++)
	{
		bool		kept = false;

		if (rate->bucket[i].dbid != MyDatabaseId)
			continue;
		for (j = 0; j < n && !kept; j++)
			kept = loaded[j].roleid == rate->bucket[i].roleid;
		if (!kept)
			rate->bucket[i].dbid = InvalidOid;
	}
	pg_atomic_write_u32(&rate->nlimits, rate->nlimit);
	SpinLockRelease(&rate->mutex);
	if (slot < 0 && n > 0)
		ereport(WARNING,
				(errmsg("rate limits of database %u are not enforced: more than %d databases use ledger rate limits",
						MyDatabaseId, RATE_MAX_DBS)));
	if (dropped > 0)
		ereport(WARNING,
				(errmsg("%d rate limits of database %u are not enforced: the server holds at most %d",
						dropped, MyDatabaseId, RATE_MAX_LIMITS)));
}

/*
 * Load this database's limits if a change was committed since they were
 * (by any backend).  The usual path is one atomic read.
 */
static void
ensure_loaded(void)
{
	uint64		gen = pg_atomic_read_u64(&rate->config_gen);
	bool		current;
	int			slot;

	if (gen == seen_gen || change_pending)
		return;					/* current, or would read our own uncommitted change */
	SpinLockAcquire(&rate->mutex);
	slot = db_slot();
	current = slot >= 0 && rate->db_gen[slot] == gen;
	SpinLockRelease(&rate->mutex);
	if (!current)
		reload(gen);
	seen_gen = gen;
}

/* The bucket of a key: found, a free one, or the longest idle of the probe. */
static RateBucket *
find_bucket(Oid roleid, uint64 owner_hash, double burst, TimestampTz now)
{
	uint32		h = hash_combine(hash_combine((uint32) MyDatabaseId, (uint32) roleid),
								 (uint32) (owner_hash ^ (owner_hash >> 32)));
	RateBucket *victim = NULL;
	int			i;

	for (i = 0; i < RATE_PROBE; i++)
	{
		RateBucket *b = &rate->bucket[(h + i) % RATE_BUCKETS];

		if (b->dbid == MyDatabaseId && b->roleid == roleid && b->owner_hash == owner_hash)
			return b;
		if (b->dbid == InvalidOid)
		{
			if (victim == NULL || victim->dbid != InvalidOid)
				victim = b;
		}
		else if (victim == NULL || (victim->dbid != InvalidOid && b->last < victim->last))
			victim = b;
	}
	victim->dbid = MyDatabaseId;
	victim->roleid = roleid;
	victim->owner_hash = owner_hash;
	victim->tokens = burst;
	victim->last = now;
	return victim;
}

/*
 * Take one token for this call, or LD041.  what names the call.
 */
/*
 * While a hold batch runs its items (holdbatch.c), each item's single call
 * skips the check: the batch was checked once, as one call.  Returns the
 * previous state, for the caller to restore (also on error).
 */
static bool rate_held_off = false;

bool
ledger_rate_hold_off(bool on)
{
	bool		was = rate_held_off;

	rate_held_off = on;
	return was;
}

void
ledger_rate_check(const char *what)
{
	Oid			session = GetSessionUserId();
	Oid			outer = GetOuterUserId();
	const char *owner;
	uint64		owner_hash = 0;
	TimestampTz now;
	RateLimit	lim = {0};
	RateLimit  *l = NULL;
	bool		refused = false;
	double		wait_s = 0;
	int64		event_seq;
	pg_uuid_t	event_id;
	int			i;

	if (rate == NULL || rate_held_off || ledger_event_context(&event_seq, &event_id))
		return;					/* events were accepted already: never refuse them now */
	ensure_loaded();
	if (pg_atomic_read_u32(&rate->nlimits) == 0)
		return;

	owner = ledger_acting_owner();
	if (owner != NULL)
		owner_hash = hash_bytes_extended((const unsigned char *) owner, strlen(owner), 0) | 1;
	now = GetCurrentTimestamp();

	SpinLockAcquire(&rate->mutex);
	/* the login role's limit, else the current role's (SET ROLE escapes neither) */
	for (i = 0; i < rate->nlimit && l == NULL; i++)
		if (rate->limit[i].dbid == MyDatabaseId && rate->limit[i].roleid == session)
			l = &rate->limit[i];
	for (i = 0; i < rate->nlimit && l == NULL; i++)
		if (rate->limit[i].dbid == MyDatabaseId && rate->limit[i].roleid == outer)
			l = &rate->limit[i];
	if (l != NULL)
	{
		RateBucket *b = find_bucket(l->roleid, l->per_owner ? owner_hash : 0, l->burst, now);

		if (now > b->last)
			b->tokens = Min((double) l->burst,
							b->tokens + (double) (now - b->last) / USECS_PER_SEC * l->per_second);
		b->last = now;			/* a clock stepped back refills nothing, and waits no longer */
		l->calls++;
		if (b->tokens >= 1.0)
			b->tokens -= 1.0;
		else
		{
			refused = true;
			l->refused++;
			wait_s = (1.0 - b->tokens) / l->per_second;
		}
		lim = *l;
	}
	SpinLockRelease(&rate->mutex);

	if (refused)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_RATE_LIMITED),
				 errmsg("%s refused: role \"%s\" is over its rate limit",
						what, GetUserNameFromId(lim.roleid, false)),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_RATE_LIMITED,
													 LEDGER_FACT_TEXT("role", GetUserNameFromId(lim.roleid, false)),
													 LEDGER_FACT_AMOUNT("per_second", DatumGetNumeric(DirectFunctionCall1(float8_numeric, Float8GetDatum(lim.per_second)))),
													 LEDGER_FACT_INT("burst", lim.burst),
													 LEDGER_FACT_TEXT("acting_owner", lim.per_owner ? owner : NULL),
													 LEDGER_FACT_INT("retry_after_ms", (int64) Min(ceil(wait_s * 1000.0), 1000000000.0)),
													 NULL),
										"The limit is %g calls per second with a burst of %d%s; retry after %d ms.",
						   lim.per_second, lim.burst,
						   lim.per_owner ? (owner ? ", per acting owner" : ", for calls without an acting owner") : "",
						   (int) Min(ceil(wait_s * 1000.0), 1000000000.0)),
				 errhint("Retry the call after the time the detail gives; an operator sets limits with ledger.set_rate_limit.")));
}

/* Refuse where limits would not be enforced, and remember to announce. */
static void
change_begin(const char *what)
{
	if (rate == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("%s needs the ledger library preloaded", what),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_INVALID_ARGUMENT), "Rate limits live in shared memory; without shared_preload_libraries = 'ledger' they would not be enforced."),
				 errhint("Add ledger to shared_preload_libraries and restart the server.")));
	PreventCommandIfReadOnly(what);
	change_pending = true;
}

PG_FUNCTION_INFO_V1(ledger_set_rate_limit);

/*
 * ledger.set_rate_limit(role, per_second, burst, per_owner): store (or
 * replace) a role's limit; in force from the commit.
 */
Datum
ledger_set_rate_limit(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	static SPIPlanPtr count_plan = NULL;
	char	   *role = ledger_known_role(fcinfo, 0, "Rate limits");
	Numeric		per_second;
	int32		burst;
	bool		per_owner;
	bool		isnull;
	Datum		values[4];

	LEDGER_REQUIRE_ARG(1, "per_second");
	LEDGER_REQUIRE_ARG(2, "burst");
	LEDGER_REQUIRE_ARG(3, "per_owner");
	per_second = PG_GETARG_NUMERIC(1);
	burst = PG_GETARG_INT32(2);
	per_owner = PG_GETARG_BOOL(3);
	if (numeric_is_nan(per_second) || numeric_is_inf(per_second) ||
		ledger_numeric_cmp(per_second,
						   DatumGetNumeric(DirectFunctionCall3(numeric_in,
															   CStringGetDatum(RATE_MIN_PER_SECOND),
															   ObjectIdGetDatum(InvalidOid),
															   Int32GetDatum(-1)))) < 0 ||
		ledger_numeric_cmp(per_second, DatumGetNumeric(DirectFunctionCall1(int4_numeric, Int32GetDatum(RATE_MAX_PER_SECOND)))) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("per_second must be between %s and %d", RATE_MIN_PER_SECOND, RATE_MAX_PER_SECOND),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("role", role),
													  LEDGER_FACT_TEXT("argument", "per_second"),
													  LEDGER_FACT_AMOUNT("given", per_second),
													  NULL),
										"Role \"%s\" was given %s calls per second.", role,
						   ledger_numeric_str(per_second))));
	if (burst < 1 || burst > RATE_MAX_BURST)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("burst must be between 1 and %d", RATE_MAX_BURST),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("role", role),
													  LEDGER_FACT_TEXT("argument", "burst"),
													  LEDGER_FACT_INT("given", burst),
													  NULL),
										"Role \"%s\" was given a burst of %d.", role, burst)));
	change_begin("ledger.set_rate_limit");

	SPI_connect();
	if (plan == NULL)
		plan = ledger_prepare(
			"INSERT INTO ledger.rate_limit AS l (role_name, per_second, burst, per_owner) "
			"VALUES ($1, $2, $3, $4) ON CONFLICT (role_name) DO UPDATE SET "
			"per_second = excluded.per_second, burst = excluded.burst, "
			"per_owner = excluded.per_owner, updated_at = pg_catalog.now()",
			4, (Oid[]) {NAMEOID, NUMERICOID, INT4OID, BOOLOID});
	if (count_plan == NULL)
		count_plan = ledger_prepare_scan("SELECT pg_catalog.count(*) FROM ledger.rate_limit", 0, NULL);
	values[0] = PG_GETARG_DATUM(0);
	values[1] = NumericGetDatum(per_second);
	values[2] = Int32GetDatum(burst);
	values[3] = BoolGetDatum(per_owner);
	ledger_spi_exec(plan, values, NULL, SPI_OK_INSERT);
	ledger_spi_exec(count_plan, NULL, NULL, SPI_OK_SELECT);
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) >
		RATE_DB_LIMITS)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("at most %d roles may have rate limits", RATE_DB_LIMITS),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("role", role),
													  LEDGER_FACT_INT("limit", RATE_DB_LIMITS),
													  NULL),
										"Role \"%s\" would be one too many.", role),
				 errhint("Limit a group's login roles one by one, or remove unused limits with ledger.remove_rate_limit.")));
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(ledger_remove_rate_limit);

/* ledger.remove_rate_limit(role): true if the role had a limit. */
Datum
ledger_remove_rate_limit(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		value;
	bool		removed;

	LEDGER_REQUIRE_ARG(0, "role");	/* a dropped role's limit may go too */
	value = PG_GETARG_DATUM(0);
	change_begin("ledger.remove_rate_limit");
	SPI_connect();
	if (plan == NULL)
		plan = ledger_prepare("DELETE FROM ledger.rate_limit WHERE role_name OPERATOR(pg_catalog.=) $1",
							  1, (Oid[]) {NAMEOID});
	ledger_spi_exec(plan, &value, NULL, SPI_OK_DELETE);
	removed = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(removed);
}

PG_FUNCTION_INFO_V1(ledger_rate_limit_status);

/*
 * ledger.rate_limit_status(): the limits in force in this database, with
 * the calls checked and refused since they were loaded.
 */
Datum
ledger_rate_limit_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RateLimit	copy[RATE_MAX_LIMITS];
	int			n = 0;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (rate == NULL)
		return (Datum) 0;
	ensure_loaded();
	SpinLockAcquire(&rate->mutex);
	for (i = 0; i < rate->nlimit; i++)
		if (rate->limit[i].dbid == MyDatabaseId)
			copy[n++] = rate->limit[i];
	SpinLockRelease(&rate->mutex);
	for (i = 0; i < n; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false};
		char	   *name = GetUserNameFromId(copy[i].roleid, true);

		if (name == NULL)
			continue;
		values[0] = CStringGetTextDatum(name);
		values[1] = Float8GetDatum(copy[i].per_second);
		values[2] = Int32GetDatum(copy[i].burst);
		values[3] = BoolGetDatum(copy[i].per_owner);
		values[4] = Int64GetDatum((int64) copy[i].calls);
		values[5] = Int64GetDatum((int64) copy[i].refused);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
