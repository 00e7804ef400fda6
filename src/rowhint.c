/*-------------------------------------------------------------------------
 *
 * rowhint.c
 *	  Where a unique index last led to a row: balance and daily rows
 *	  (store.c) and accounts (lookup.c) are found again from the hint, a
 *	  heap fetch instead of a descent of the index.  A hint is never
 *	  trusted: the row found from it is used only if it is visible to the
 *	  caller's snapshot and its key columns equal the key sought;
 *	  otherwise the index is read as before.
 *
 * A hint is the root of the row's HOT chain (the TID the index holds),
 * which stays where it is while the row is updated in place (HOT).  A row
 * moved by a non-HOT update, pruned, or rewritten (VACUUM FULL, CLUSTER)
 * leaves a stale hint: its chain has no visible version with the key, or
 * the tag (which includes the relation's file) no longer matches.  The
 * caller checks the block is inside the relation before reading it.
 *
 * Storage: HINT_SLOTS slots in shared memory, each a tag (a 64-bit hash
 * of database, relation file and key) and a TID, two atomics.  Readers
 * and writers do not lock: a slot read while it is rewritten may pair one
 * row's tag with another's TID, which validation catches like any stale
 * hint.  Two keys hashing to one slot take turns.  Without shared memory
 * (ledger not preloaded) or with ledger.row_hints off there are none.
 *
 * Locking: none (atomics).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/bufmgr.h"
#include "storage/ipc.h"
#include "storage/itemptr.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/guc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define HINT_SLOTS	(1 << 16)		/* 1 MiB */

typedef struct HintSlot
{
	pg_atomic_uint64 tag;
	pg_atomic_uint64 tid;		/* block << 16 | offset */
} HintSlot;

/* GUC: find rows from hints */
bool		ledger_row_hints = true;

static HintSlot *slots = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
hints_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(sizeof(HintSlot) * HINT_SLOTS);
}

static void
hints_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slots = ShmemInitStruct("ledger row hints", sizeof(HintSlot) * HINT_SLOTS, &found);
	if (!found)
		for (i = 0; i < HINT_SLOTS; i++)
		{
			pg_atomic_init_u64(&slots[i].tag, 0);
			pg_atomic_init_u64(&slots[i].tid, 0);
		}
	LWLockRelease(AddinShmemInitLock);
}

void
ledger_row_hint_init(void)
{
	DefineCustomBoolVariable("ledger.row_hints",
							 "Finds balance and daily rows from where they were last seen.",
							 "Each hint is checked against the row; off reads the index every time.",
							 &ledger_row_hints,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = hints_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = hints_shmem_startup;
}

/* The tag of a key of a relation; never 0 (an empty slot). */
static uint64
hint_tag(Relation rel, uint64 key)
{
	uint64		tag = hash_bytes_uint32_extended((uint32) MyDatabaseId, key);

	tag = hash_combine64(tag, hash_bytes_uint32_extended(rel->rd_node.relNode, (uint64) RelationGetRelid(rel)));
	return tag == 0 ? 1 : tag;
}

/* Where a key's row may be; false if there is no hint. */
static bool
ledger_row_hint_get(Relation rel, uint64 key, ItemPointer tid)
{
	uint64		tag;
	HintSlot   *s;
	uint64		packed;

	if (slots == NULL || !ledger_row_hints)
		return false;
	tag = hint_tag(rel, key);
	s = &slots[tag % HINT_SLOTS];
	if (pg_atomic_read_u64(&s->tag) != tag)
		return false;
	packed = pg_atomic_read_u64(&s->tid);
	ItemPointerSet(tid, (BlockNumber) (packed >> 16), (OffsetNumber) (packed & 0xFFFF));
	return true;
}

/* Remember where a key's row is (the root of its HOT chain). */
void
ledger_row_hint_put(Relation rel, uint64 key, ItemPointer tid)
{
	uint64		tag;
	HintSlot   *s;

	if (slots == NULL || !ledger_row_hints || !ItemPointerIsValid(tid))
		return;
	tag = hint_tag(rel, key);
	s = &slots[tag % HINT_SLOTS];
	pg_atomic_write_u64(&s->tid, ((uint64) ItemPointerGetBlockNumber(tid) << 16) |
						ItemPointerGetOffsetNumber(tid));
	pg_atomic_write_u64(&s->tag, tag);
}

/*
 * Fetch into slot the version visible to snap of the row a key's hint
 * leads to, if it has the key: its columns under the unique index idx
 * equal to the scan keys, compared with their own equality functions and
 * collations, as the index would.  False (slot cleared) if there is no
 * hint, it leads outside the relation, to no visible version or to
 * another key's row.  Not under SERIALIZABLE, whose index reads take
 * predicate locks this would skip.  *nblocks caches the relation's size
 * across calls (the caller holds a lock that keeps the relation from
 * shrinking; InvalidBlockNumber at first); a hint past it reads the size
 * again, since the relation may have grown.
 */
bool
ledger_row_hint_fetch(Relation rel, Relation idx, ScanKey keys, int nkeys, uint64 key,
					  Snapshot snap, TupleTableSlot *slot, BlockNumber *nblocks)
{
	ItemPointerData tid;
	IndexFetchTableData *fetch;
	bool		call_again = false;
	bool		found;
	int			i;

	if (IsolationIsSerializable() || !ledger_row_hint_get(rel, key, &tid))
		return false;
	if (*nblocks == InvalidBlockNumber || ItemPointerGetBlockNumber(&tid) >= *nblocks)
		*nblocks = RelationGetNumberOfBlocks(rel);
	if (ItemPointerGetBlockNumber(&tid) >= *nblocks)
		return false;
	fetch = table_index_fetch_begin(rel);
	found = table_index_fetch_tuple(fetch, &tid, snap, slot, &call_again, NULL);
	table_index_fetch_end(fetch);
	for (i = 0; found && i < nkeys; i++)
	{
		AttrNumber	attno = idx->rd_index->indkey.values[keys[i].sk_attno - 1];
		bool		isnull;
		Datum		d = slot_getattr(slot, attno, &isnull);

		Assert(attno > 0);
		found = !isnull && DatumGetBool(FunctionCall2Coll(&keys[i].sk_func, keys[i].sk_collation,
														  d, keys[i].sk_argument));
	}
	if (!found)
		ExecClearTuple(slot);
	return found;
}

/*
 * index_getnext_slot for a unique index scan with an MVCC snapshot, which
 * also remembers where the row was found: the TID the index holds (the
 * root of the row's HOT chain), copied before the heap fetch replaces the
 * scan's TID with the visible member's, which a later fetch could not
 * start from.
 */
bool
ledger_index_next_hinted(IndexScanDesc scan, TupleTableSlot *slot, Relation rel, uint64 key)
{
	ItemPointer tid;

	Assert(IsMVCCSnapshot(scan->xs_snapshot));
	while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
	{
		ItemPointerData root = *tid;

		if (index_fetch_heap(scan, slot))
		{
			ledger_row_hint_put(rel, key, &root);
			return true;
		}
	}
	return false;
}
