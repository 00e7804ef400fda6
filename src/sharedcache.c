/*-------------------------------------------------------------------------
 *
 * sharedcache.c
 *	  The accounts every backend resolved, in shared memory: a backend
 *	  whose own account cache (cache.c) misses finds an account another
 *	  backend looked up, instead of reading ledger.account's index.  A
 *	  fresh connection's postings, and each of many pooled connections
 *	  spreading over many accounts, then skip most lookups.
 *
 * This file only stores: entries are keyed by database, the ledger.account
 * relation and the account code, and carry the stamp (cache.c) the code
 * had before the lookup that filled them.  cache.c decides whether an
 * entry found here is still current (its code's bucket generation, the
 * epoch, and the epoch of relcache invalidations of ledger.account all
 * unchanged) and what may be put: never a row the putting transaction
 * wrote.  An entry a later put for the same key replaces.
 *
 * Size: ledger.shared_account_cache_size entries (server start), fixed:
 * the table never takes more shared memory than it was given.  When it
 * is full, a put empties it first (like the backend caches), so that
 * accounts in use come back and stale entries go.  0: no shared cache.
 * Only with ledger in shared_preload_libraries.
 *
 * Locking: the table is split in CACHE_PARTITIONS partitions by key hash,
 * each with an LWLock: shared to copy an entry out, exclusive to put one.
 * Emptying takes every partition's lock, in partition order.  Nothing is
 * done under these locks but hash table operations that cannot fail
 * (HASH_ENTER_NULL on a fixed-size table returns NULL when full) and
 * copies.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/hsearch.h"

#define CACHE_PARTITIONS	16
#define CACHE_TRANCHE		"ledger_account_cache"

/* GUC: entries in the shared table; 0: none */
int			ledger_shared_account_cache_size = 50000;

typedef struct SharedKey
{
	Oid			database;
	Oid			relid;			/* the ledger.account it caches */
	char		code[LEDGER_CACHED_CODE_LEN];	/* zero-padded: compared as bytes */
} SharedKey;

typedef struct SharedEntry
{
	SharedKey	key;
	LedgerCacheStamp stamp;
	LedgerPackedAccount account;
} SharedEntry;

typedef struct SharedCacheState
{
	LWLockPadded *locks;		/* CACHE_PARTITIONS */
	pg_atomic_uint64 puts;
	pg_atomic_uint64 empties;
} SharedCacheState;

static SharedCacheState *state = NULL;
static HTAB *table = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shared_cache_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SharedCacheState)) +
						   hash_estimate_size(ledger_shared_account_cache_size, sizeof(SharedEntry)));
	RequestNamedLWLockTranche(CACHE_TRANCHE, CACHE_PARTITIONS);
}

static void
shared_cache_startup(void)
{
	HASHCTL		info;
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	state = ShmemInitStruct("ledger shared account cache", sizeof(SharedCacheState), &found);
	if (!found)
	{
		state->locks = GetNamedLWLockTranche(CACHE_TRANCHE);
		pg_atomic_init_u64(&state->puts, 0);
		pg_atomic_init_u64(&state->empties, 0);
	}
	info.keysize = sizeof(SharedKey);
	info.entrysize = sizeof(SharedEntry);
	info.num_partitions = CACHE_PARTITIONS;
	table = ShmemInitHash("ledger shared accounts",
						  ledger_shared_account_cache_size, ledger_shared_account_cache_size,
						  &info, HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);
}

void
ledger_shared_cache_init(void)
{
	DefineCustomIntVariable("ledger.shared_account_cache_size",
							"Most accounts kept resolved in shared memory, for every backend.",
							"About 250 bytes each; 0: none. Emptied when full.",
							&ledger_shared_account_cache_size,
							50000, 0, 10000000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress || ledger_shared_account_cache_size == 0)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shared_cache_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shared_cache_startup;
}

/* The key of a code; false if the code is too long to be cached. */
static bool
make_key(Oid relid, const char *code, SharedKey *key)
{
	size_t		len = strlen(code);

	if (len >= LEDGER_CACHED_CODE_LEN)
		return false;
	memset(key, 0, sizeof(SharedKey));
	key->database = MyDatabaseId;
	key->relid = relid;
	memcpy(key->code, code, len);
	return true;
}

static LWLock *
partition_lock(uint32 hash)
{
	return &state->locks[hash % CACHE_PARTITIONS].lock;
}

/*
 * Copy out the entry of a code, with the stamp it was put with; false if
 * there is none (or no shared cache).  The caller judges the stamp.
 */
bool
ledger_shared_account_get(Oid relid, const char *code, LedgerPackedAccount *out,
						  LedgerCacheStamp *stamp)
{
	SharedKey	key;
	SharedEntry *e;
	uint32		hash;
	bool		found = false;

	if (table == NULL || !make_key(relid, code, &key))
		return false;
	hash = get_hash_value(table, &key);
	LWLockAcquire(partition_lock(hash), LW_SHARED);
	e = hash_search_with_hash_value(table, &key, hash, HASH_FIND, NULL);
	if (e != NULL)
	{
		*out = e->account;
		*stamp = e->stamp;
		found = true;
	}
	LWLockRelease(partition_lock(hash));
	return found;
}

/* Remove every entry; the caller holds no partition lock. */
static void
empty_table(void)
{
	HASH_SEQ_STATUS scan;
	SharedEntry *e;
	int			i;

	for (i = 0; i < CACHE_PARTITIONS; i++)
		LWLockAcquire(&state->locks[i].lock, LW_EXCLUSIVE);
	hash_seq_init(&scan, table);
	while ((e = hash_seq_search(&scan)) != NULL)
		hash_search(table, &e->key, HASH_REMOVE, NULL);
	for (i = CACHE_PARTITIONS - 1; i >= 0; i--)
		LWLockRelease(&state->locks[i].lock);
	pg_atomic_fetch_add_u64(&state->empties, 1);
}

/* Put an account with its stamp, replacing the code's entry; a full table is emptied first. */
void
ledger_shared_account_put(Oid relid, const LedgerPackedAccount *a, const LedgerCacheStamp *stamp)
{
	SharedKey	key;
	SharedEntry *e;
	uint32		hash;
	int			attempt;

	if (table == NULL || !make_key(relid, a->code, &key))
		return;
	hash = get_hash_value(table, &key);
	for (attempt = 0; attempt < 2; attempt++)
	{
		LWLockAcquire(partition_lock(hash), LW_EXCLUSIVE);
		e = hash_search_with_hash_value(table, &key, hash, HASH_ENTER_NULL, NULL);
		if (e != NULL)
		{
			e->stamp = *stamp;
			e->account = *a;
		}
		LWLockRelease(partition_lock(hash));
		if (e != NULL)
		{
			pg_atomic_fetch_add_u64(&state->puts, 1);
			return;
		}
		empty_table();
	}
}

/*
 * ledger.shared_account_cache(): capacity, entries now (read without
 * locks: approximate while postings run), puts and emptyings since the
 * server started.  All zero without a shared cache.
 */
PG_FUNCTION_INFO_V1(ledger_shared_account_cache);

Datum
ledger_shared_account_cache(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "ledger.shared_account_cache must return a record");
	values[0] = Int64GetDatum(table == NULL ? 0 : ledger_shared_account_cache_size);
	values[1] = Int64GetDatum(table == NULL ? 0 : (int64) hash_get_num_entries(table));
	values[2] = Int64GetDatum(state == NULL ? 0 : (int64) pg_atomic_read_u64(&state->puts));
	values[3] = Int64GetDatum(state == NULL ? 0 : (int64) pg_atomic_read_u64(&state->empties));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
