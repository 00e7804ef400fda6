/*-------------------------------------------------------------------------
 *
 * cache.c
 *	  Backend-local caches that spare a posting its catalog lookups: where
 *	  the ledger schema's tables are (and whether it has hot accounts), and
 *	  the accounts this backend's postings resolved (id, asset, scale,
 *	  floor, mode).  A posting whose accounts are all cached and that
 *	  carries no idempotency key skips its lookup statement (posting.c).
 *
 * Filling: on a miss only.  A posting that misses looks its accounts up
 * (the claim statement it runs anyway) and puts what it found.  Nothing is
 * loaded at connection start, so a fresh connection's first posting costs
 * the same whatever the number of accounts.  The table holds at most
 * ledger.account_cache_size accounts; when full it is emptied and fills
 * again from the postings that follow.
 *
 * Invalidation, when ledger is preloaded (shared memory):
 *	- Shared memory holds a generation per bucket of account codes
 *	  (CHANGE_BUCKETS, hashed with the database) and a global epoch.  The
 *	  row trigger account_changed (AFTER UPDATE on ledger.account) notes the
 *	  buckets of the old and new code; the commit callback increments their
 *	  generations (the epoch instead, when one transaction changed more than
 *	  MAX_PENDING codes).  The callback runs after the transaction became
 *	  visible and before COMMIT returns to the client.
 *	- An entry remembers the epoch and its bucket's generation as read
 *	  before the lookup that filled it (with a read barrier, so before the
 *	  lookup's snapshot).  A hit whose epoch or generation moved since is a
 *	  miss: only the accounts of changed buckets are looked up again, by
 *	  the backends that use them.  A change committed before the lookup's
 *	  snapshot is in what the lookup read; one committed after moves the
 *	  generation, so the next hit looks again.  A posting therefore sees
 *	  every change whose COMMIT returned before the posting started.
 *	- The updating backend drops those codes from its own cache at once:
 *	  within its transaction the next posting looks them up, and rows its
 *	  own transaction wrote are never cached.
 *	- PREPARE TRANSACTION of an account update falls back to a relcache
 *	  invalidation of ledger.account (sent at COMMIT PREPARED), which
 *	  empties every backend's table.
 * Without shared memory (ledger not preloaded) the trigger sends that
 * relcache invalidation for every update; entries then carry no stamp.
 * A 0.4.0 schema's statement-level trigger does the same.
 *
 * Other invalidation:
 *	- A relcache invalidation of ledger.account, or of every relation (a
 *	  sinval overflow), empties the table; one of ledger.account_balance or
 *	  ledger.asset refreshes the schema state.  DDL, ALTER EXTENSION UPDATE
 *	  and DROP EXTENSION send them.  Each lookup first accepts pending
 *	  invalidations.
 *	- Without the account_changed trigger enabled ALWAYS on ledger.account
 *	  accounts are not cached.  Unknown codes are never cached; accounts are
 *	  never deleted.
 *	- A posting that used an entry older than a mode change is caught where
 *	  the mode is checked again, under the balance row lock or the hot
 *	  slot's lock (LD019).
 *	- Callbacks only mark things stale; tables are rebuilt on next use,
 *	  never while a posting holds pointers into them (lookups copy).
 *
 * Locking: the generations are atomics (no lock); the commit callback does
 * nothing but atomic increments.  Everything else here is backend-local;
 * refreshing the schema state opens ledger.account with AccessShareLock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* GUC: most accounts one backend caches; 0 turns the cache off. */
int			ledger_account_cache_size = 50000;

/*
 * Entry sizes: an account whose code, asset code or floor does not fit is
 * looked up each time instead.  About 190 bytes an entry with the table's
 * overhead.
 */
#define CACHED_CODE_LEN		64
#define CACHED_ASSET_LEN	32
#define CACHED_NUMERIC_LEN	40

/* Buckets of account codes with a change generation each (shared memory). */
#define CHANGE_BUCKETS		16384
/* More codes changed by one transaction bump the epoch instead. */
#define MAX_PENDING			256

typedef struct AccountChanges
{
	pg_atomic_uint64 epoch;
	pg_atomic_uint64 gen[CHANGE_BUCKETS];
} AccountChanges;

/*
 * Entries hold everything inline, so that replacing or removing one never
 * leaves memory behind: removed entries go to the table's free list.
 */
typedef struct CachedAccount
{
	char		code[CACHED_CODE_LEN];	/* hash key */
	LedgerCacheStamp stamp;		/* as read before the filling lookup */
	int64		id;
	char		asset[CACHED_ASSET_LEN];
	int			scale;
	bool		unbounded;
	bool		hot;
	union
	{
		char		data[CACHED_NUMERIC_LEN];	/* a Numeric, unless unbounded */
		int64		align;
	}			min_balance;
} CachedAccount;

static MemoryContext account_cxt = NULL;
static HTAB *accounts = NULL;
/* relcache invalidations that emptied the table, ever: a lookup read before one is not put */
static uint64 inval_count = 0;
static Oid	accounts_relid = InvalidOid;	/* the ledger.account it caches */
static AccountChanges *changes = NULL;

/* Buckets changed by the open transaction, bumped at commit. */
static uint32 pending[MAX_PENDING];
static int	npending = 0;
static bool pending_overflow = false;
static Oid	pending_relid = InvalidOid;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
changes_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(AccountChanges));
}

static void
changes_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	changes = ShmemInitStruct("ledger account changes", sizeof(AccountChanges), &found);
	if (!found)
	{
		pg_atomic_init_u64(&changes->epoch, 0);
		for (i = 0; i < CHANGE_BUCKETS; i++)
			pg_atomic_init_u64(&changes->gen[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

static uint32
code_bucket(const char *code)
{
	return hash_combine(hash_bytes((const unsigned char *) code, strlen(code)),
						(uint32) MyDatabaseId) % CHANGE_BUCKETS;
}

/*
 * Commit: announce the changed buckets.  Atomic increments only: this
 * cannot fail.  Abort: the changes never happened.  PREPARE: the commit
 * will happen elsewhere, so fall back to a relcache invalidation, which
 * two-phase commit carries to COMMIT PREPARED.
 */
static void
changes_xact_callback(XactEvent event, void *arg)
{
	int			i;

	if (npending == 0 && !pending_overflow)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			CacheInvalidateRelcacheByRelid(pending_relid);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			Assert(changes != NULL);
			if (pending_overflow)
				pg_atomic_fetch_add_u64(&changes->epoch, 1);
			else
				for (i = 0; i < npending; i++)
					pg_atomic_fetch_add_u64(&changes->gen[pending[i]], 1);
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	npending = 0;
	pending_overflow = false;
}

/*
 * A relcache invalidation of ledger.account (DDL, a fallback invalidation
 * from account_changed) or of every relation empties the table.
 */
static void
invalidate_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == accounts_relid)
	{
		accounts = NULL;		/* its memory is reset on next use */
		inval_count++;
	}
}

void
ledger_cache_init(void)
{
	DefineCustomIntVariable("ledger.account_cache_size",
							"Most accounts one backend keeps resolved for postings.",
							"0 resolves every account with a query. The cache is emptied when full.",
							&ledger_account_cache_size,
							50000, 0, 10000000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(invalidate_callback, (Datum) 0);

	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = changes_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = changes_shmem_startup;
	RegisterXactCallback(changes_xact_callback, NULL);
}

/*
 * The account table, created empty when missing, or NULL when accounts
 * cannot be cached.  Accepts pending invalidations first, so that a lookup
 * sees every relcache invalidation committed before it.
 */
static HTAB *
account_table(void)
{
	HASHCTL		ctl;
	const LedgerSchema *s;

	if (ledger_account_cache_size <= 0)
		return NULL;
	AcceptInvalidationMessages();
	s = ledger_schema();
	if (s == NULL || !s->account_trigger)
		return NULL;
	if (accounts != NULL && accounts_relid == s->account)
		return accounts;
	if (account_cxt == NULL)
		account_cxt = AllocSetContextCreate(TopMemoryContext, "ledger account cache",
											ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(account_cxt);
	ctl.keysize = CACHED_CODE_LEN;
	ctl.entrysize = sizeof(CachedAccount);
	ctl.hcxt = account_cxt;
	accounts = hash_create("ledger accounts", 256, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	accounts_relid = s->account;
	return accounts;
}

/*
 * The stamp of a code as of now: the epoch and its bucket's generation.
 * Taken for every code before the lookup that resolves them; the read
 * barrier keeps these reads before the lookup's snapshot.
 */
void
ledger_account_cache_stamp(const char *code, LedgerCacheStamp *stamp)
{
	stamp->local = inval_count;
	if (changes == NULL)
	{
		stamp->epoch = 0;
		stamp->gen = 0;
		return;
	}
	stamp->epoch = pg_atomic_read_u64(&changes->epoch);
	stamp->gen = pg_atomic_read_u64(&changes->gen[code_bucket(code)]);
	pg_read_barrier();
}

static bool
stamp_current(const char *code, const LedgerCacheStamp *stamp)
{
	LedgerCacheStamp now;

	if (changes == NULL)
		return true;
	ledger_account_cache_stamp(code, &now);
	return now.epoch == stamp->epoch && now.gen == stamp->gen;
}

/*
 * Look an account up by code.  On a hit, fills *out with copies in the
 * current memory context and returns true.  An entry whose bucket changed
 * since it was filled is dropped: a miss.
 */
bool
ledger_account_cache_get(const char *code, LedgerAccount *out)
{
	HTAB	   *table = account_table();
	CachedAccount *e;

	if (table == NULL || strlen(code) >= CACHED_CODE_LEN)
		return false;
	e = hash_search(table, code, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	if (!stamp_current(code, &e->stamp))
	{
		hash_search(table, code, HASH_REMOVE, NULL);
		return false;
	}
	out->id = e->id;
	out->code = pstrdup(e->code);
	out->asset = pstrdup(e->asset);
	out->scale = e->scale;
	out->unbounded = e->unbounded;
	out->min_balance = e->unbounded ? NULL :
		(Numeric) DatumGetPointer(datumCopy(PointerGetDatum(e->min_balance.data), false, -1));
	out->hot = e->hot;
	return true;
}

/*
 * Remember an account a posting resolved, with the stamp its code had
 * before the lookup, unless its row was written by the current transaction
 * (which may still roll back).  A full table is emptied first.
 */
void
ledger_account_cache_put(const LedgerAccount *a, TransactionId xmin,
						 const LedgerCacheStamp *stamp)
{
	HTAB	   *table = account_table();
	CachedAccount *e;

	/* account_table() accepted invalidations: one since the stamp voids the lookup */
	if (table == NULL || stamp->local != inval_count ||
		strlen(a->code) >= CACHED_CODE_LEN ||
		strlen(a->asset) >= CACHED_ASSET_LEN ||
		(!a->unbounded && VARSIZE(a->min_balance) > CACHED_NUMERIC_LEN) ||
		TransactionIdIsCurrentTransactionId(xmin))
		return;
	if (hash_get_num_entries(table) >= ledger_account_cache_size)
	{
		accounts = NULL;
		table = account_table();
	}
	e = hash_search(table, a->code, HASH_ENTER, NULL);
	e->stamp = *stamp;
	e->id = a->id;
	strlcpy(e->asset, a->asset, CACHED_ASSET_LEN);
	e->scale = a->scale;
	e->unbounded = a->unbounded;
	if (!a->unbounded)
		memcpy(e->min_balance.data, a->min_balance, VARSIZE(a->min_balance));
	e->hot = a->hot;
}

/* Note a changed code: bumped at commit, dropped from this backend now. */
static void
note_changed(const char *code)
{
	uint32		b = code_bucket(code);
	int			i;

	if (accounts != NULL && strlen(code) < CACHED_CODE_LEN)
		hash_search(accounts, code, HASH_REMOVE, NULL);
	for (i = 0; i < npending; i++)
		if (pending[i] == b)
			return;
	if (npending < MAX_PENDING)
		pending[npending++] = b;
	else
		pending_overflow = true;
}

/*
 * ledger.account_changed(): trigger AFTER UPDATE on ledger.account.  As a
 * row trigger with shared memory, it notes the old and new code's buckets
 * for the commit callback.  Otherwise (not preloaded, or the statement
 * trigger of a 0.4.0 schema) it sends a relcache invalidation of
 * ledger.account at commit, which empties every backend's table.
 */
PG_FUNCTION_INFO_V1(ledger_account_changed);

Datum
ledger_account_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	int			attno;
	char	   *oldcode;
	char	   *newcode;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.account_changed() must be called as a trigger")));
	rel = trigdata->tg_relation;
	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) || changes == NULL)
	{
		CacheInvalidateRelcache(rel);
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ||
		(attno = SPI_fnumber(RelationGetDescr(rel), "code")) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.account_changed() must fire on UPDATE of ledger.account")));
	pending_relid = RelationGetRelid(rel);
	oldcode = SPI_getvalue(trigdata->tg_trigtuple, RelationGetDescr(rel), attno);
	newcode = SPI_getvalue(trigdata->tg_newtuple, RelationGetDescr(rel), attno);
	if (oldcode != NULL)
		note_changed(oldcode);
	if (newcode != NULL && (oldcode == NULL || strcmp(oldcode, newcode) != 0))
		note_changed(newcode);
	return PointerGetDatum(NULL);
}
