/*-------------------------------------------------------------------------
 *
 * store.c
 *	  The rows a posting writes, written straight through the table and
 *	  index access methods, as logical replication applies rows: no SQL
 *	  statement is parsed, planned or started.  A posting locks and
 *	  updates balance rows, upserts daily rows and inserts its journal
 *	  entries, transaction row and hot queue rows here (balance.c decides
 *	  what to write).
 *
 * Rows are found through the unique indexes schema.c names (or from a
 * hint of where the index led before, checked against the row:
 * rowhint.c), and written
 * with ExecSimpleRelationInsert/Update, which keep the indexes, check the
 * constraints and fire any row triggers.  Columns are set by name; one
 * this file does not know is left NULL (its table's constraints apply).
 * The journal's id comes from its identity sequence; the transaction's
 * created_at is the transaction start time, as now() gives.
 *
 * Snapshots and isolation, as an UPDATE statement would have them:
 *	- A command counter increment first, so that earlier writes of this
 *	  transaction (an earlier posting, the key claim) are seen.
 *	- READ COMMITTED: balance rows are found with the latest snapshot and
 *	  locked in their latest version (the update chain is followed, waiting
 *	  for concurrent updaters), and the new balance is computed from that
 *	  version: the EvalPlanQual rule.
 *	- REPEATABLE READ and SERIALIZABLE: balance rows are found with the
 *	  transaction snapshot; one updated since fails with 40001.  The access
 *	  methods take SSI's predicate locks and conflict checks.
 *	- Daily rows are derived from balance rows: they are found with a
 *	  snapshot taken after the account's balance row lock was granted, and
 *	  written under it; every writer of an account's daily rows holds that
 *	  lock (postings, folds, rebuilds, repairs), so the row found is the
 *	  newest and no other can be inserted meanwhile.
 *
 * Locking: RowExclusiveLock on every relation written, taken here before
 * it is opened (the executor's range table does not lock), and the
 * balance and daily row locks; all kept to the end of the transaction.
 * No lock of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* Range table indexes of the relations a posting may write. */
enum
{
	RT_BALANCE = 1,
	RT_DAILY,
	RT_JOURNAL,
	RT_TRANSACTION,
	RT_HOT,
	RT_COUNT = RT_HOT
};

struct LedgerStore
{
	const LedgerSchema *schema;
	EState	   *estate;
	EPQState	epq;
	ResultRelInfo *rels[RT_COUNT + 1];	/* opened on first use */
	TupleTableSlot *slots[RT_COUNT + 1];	/* a row to fill, per relation */
	TupleTableSlot *found[RT_COUNT + 1];	/* a row found, per relation */
	TupleTableSlot *balance_row;	/* locked by ledger_store_lock_balance */
	BlockNumber nblocks[RT_COUNT + 1];	/* relation sizes read for hints */
};

static void ledger_store_set_balance_of(LedgerStore *st, TupleTableSlot *old, Numeric balance);

static Oid
rt_relid(const LedgerSchema *s, int rti)
{
	switch (rti)
	{
		case RT_BALANCE:
			return s->account_balance;
		case RT_DAILY:
			return s->daily_balance;
		case RT_JOURNAL:
			return s->journal_entry;
		case RT_TRANSACTION:
			return s->transaction;
		default:
			return s->hot_entry;
	}
}

LedgerStore *
ledger_store_begin(void)
{
	const LedgerSchema *s = ledger_schema();
	LedgerStore *st = palloc0(sizeof(LedgerStore));
	List	   *rtable = NIL;
	int			rti;

	if (s == NULL)
		elog(ERROR, "the ledger schema is not installed in this database");
	st->schema = s;
	CommandCounterIncrement();
	st->estate = CreateExecutorState();
	for (rti = 1; rti <= RT_COUNT; rti++)
	{
		RangeTblEntry *rte = makeNode(RangeTblEntry);

		rte->rtekind = RTE_RELATION;
		rte->relid = rt_relid(s, rti);
		rte->relkind = RELKIND_RELATION;
		rte->rellockmode = RowExclusiveLock;
		rtable = lappend(rtable, rte);
		st->nblocks[rti] = InvalidBlockNumber;	/* read by the first hint */
	}
	ExecInitRangeTable(st->estate, rtable);
	st->estate->es_output_cid = GetCurrentCommandId(true);
	st->estate->es_snapshot = RegisterSnapshot(IsolationUsesXactSnapshot() ?
											   GetTransactionSnapshot() :
											   GetLatestSnapshot());
	EvalPlanQualInit(&st->epq, st->estate, NULL, NIL, -1);
	AfterTriggerBeginQuery();
	return st;
}

/* The result relation of a range table entry, opened with its indexes on first use. */
static ResultRelInfo *
result_rel(LedgerStore *st, int rti)
{
	if (st->rels[rti] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(st->estate->es_query_cxt);
		ResultRelInfo *rri = makeNode(ResultRelInfo);
		Oid			relid = rt_relid(st->schema, rti);

		if (!OidIsValid(relid))
			elog(ERROR, "the installed ledger schema has no hot queue");

		/*
		 * The executor opens range table relations without locking them
		 * (a plan's relations are locked when it is planned): take the
		 * lock an INSERT or UPDATE would, as logical replication's apply
		 * does, so that no rewrite, TRUNCATE or index build runs under the
		 * posting.
		 */
		LockRelationOid(relid, RowExclusiveLock);
		ExecInitResultRelation(st->estate, rri, rti);
		ExecOpenIndices(rri, false);
		ledger_checks_prepare(rri);
		st->rels[rti] = rri;
		st->slots[rti] = table_slot_create(rri->ri_RelationDesc, &st->estate->es_tupleTable);
		st->found[rti] = table_slot_create(rri->ri_RelationDesc, &st->estate->es_tupleTable);
		MemoryContextSwitchTo(old);
	}
	return st->rels[rti];
}

/* An empty virtual row for a relation, every column NULL. */
static TupleTableSlot *
new_row(LedgerStore *st, int rti)
{
	TupleTableSlot *slot;

	(void) result_rel(st, rti);
	slot = st->slots[rti];
	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	return slot;
}

/* Set a column by name, if the installed table has it. */
static void
set_col(LedgerStore *st, int rti, const char *name, Datum value, bool isnull)
{
	TupleTableSlot *slot = st->slots[rti];
	int			attno = attnameAttNum(st->rels[rti]->ri_RelationDesc, name, false);

	if (attno <= 0)
		return;
	slot->tts_values[attno - 1] = value;
	slot->tts_isnull[attno - 1] = isnull;
}

static void
insert_row(LedgerStore *st, int rti)
{
	ExecStoreVirtualTuple(st->slots[rti]);
	ExecSimpleRelationInsert(st->rels[rti], st->estate, st->slots[rti]);
	ResetPerTupleExprContext(st->estate);	/* what the checks allocated */
}

/* Are an index's columns all table columns (no expression)? */
static bool
plain_columns(Relation idx)
{
	for (int i = 0; i < idx->rd_index->indnatts; i++)
		if (idx->rd_index->indkey.values[i] == 0)
			return false;
	return true;
}

/*
 * Find a row through a unique index (or a hint of where the index led
 * before: ledger_row_hint_fetch) and lock its newest version; the row is in the
 * returned slot (the relation's found slot, valid until the next lock_row
 * of the relation), NULL if there is none.  With use_latest a snapshot
 * taken now is used (after the caller's row locks were granted) and
 * updates are followed whatever the isolation level; otherwise the
 * posting's snapshot (see the header).  hint_key names the key for hints.
 */
static TupleTableSlot *
lock_row(LedgerStore *st, int rti, Oid indexid, ScanKey keys, int nkeys, bool use_latest,
		 uint64 hint_key)
{
	ResultRelInfo *rri = result_rel(st, rti);
	Relation	rel = rri->ri_RelationDesc;
	Relation	idx = index_open(indexid, RowExclusiveLock);
	Snapshot	snap = use_latest ? RegisterSnapshot(GetLatestSnapshot()) :
		st->estate->es_snapshot;
	TupleTableSlot *slot = st->found[rti];
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;
	int			i;

	ExecClearTuple(slot);
	if (idx->rd_index->indrelid != RelationGetRelid(rel) || idx->rd_index->indnatts != nkeys ||
		!idx->rd_index->indisunique || !plain_columns(idx))
		elog(ERROR, "index \"%s\" is not the unique index a posting expects on \"%s\"",
			 RelationGetRelationName(idx), RelationGetRelationName(rel));
	for (i = 0; i < nkeys; i++)
		keys[i].sk_collation = idx->rd_indcollation[i];
	found = ledger_row_hint_fetch(rel, idx, keys, nkeys, hint_key, snap, slot, &st->nblocks[rti]);
	if (!found)
	{
		IndexScanDesc scan = index_beginscan(rel, idx, snap, nkeys, 0);

		index_rescan(scan, keys, nkeys, NULL, 0);
		found = ledger_index_next_hinted(scan, slot, rel, hint_key);
		index_endscan(scan);
	}
	index_close(idx, NoLock);
	if (found)
		res = table_tuple_lock(rel, &slot->tts_tid, snap, slot, st->estate->es_output_cid,
							   LockTupleNoKeyExclusive, LockWaitBlock,
							   use_latest || !IsolationUsesXactSnapshot() ?
							   TUPLE_LOCK_FLAG_FIND_LAST_VERSION : 0,
							   &tmfd);
	if (use_latest)
		UnregisterSnapshot(snap);
	if (!found)
		return NULL;

	switch (res)
	{
		case TM_Ok:
			return slot;
		case TM_Updated:
		case TM_Deleted:
			if (IsolationUsesXactSnapshot())
				ereport(ERROR,
						(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						 errmsg("could not serialize access due to concurrent update")));
			if (res == TM_Deleted)
				return NULL;
			break;
		default:
			break;
	}
	elog(ERROR, "unexpected result %d locking a row of \"%s\"", (int) res,
		 RelationGetRelationName(rel));
	return NULL;				/* keep compiler quiet */
}

static Datum
slot_col(LedgerStore *st, TupleTableSlot *slot, int rti, const char *name, bool *isnull)
{
	int			attno = attnameAttNum(st->rels[rti]->ri_RelationDesc, name, false);

	*isnull = true;
	return attno > 0 ? slot_getattr(slot, attno, isnull) : (Datum) 0;
}

/*
 * Lock an account's balance row (see the header for the snapshot rules)
 * and return its balance; *hot gets the row's hot flag (false before
 * 0.3.0), *open_holds its count of unfinished holds (0 before 0.6.0).
 * The row stays current for ledger_store_set_balance.  latest: under READ
 * COMMITTED, find the row with a snapshot taken now rather than the
 * store's (a batch's store outlives accounts created meanwhile).
 */
Numeric
ledger_store_lock_balance(LedgerStore *st, int64 account_id, bool latest, bool *hot,
						  int *open_holds)
{
	ScanKeyData key;
	bool		isnull;
	Datum		d;

	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(account_id));
	st->balance_row = lock_row(st, RT_BALANCE, st->schema->account_balance_index, &key, 1,
							   latest && !IsolationUsesXactSnapshot(), (uint64) account_id);
	if (st->balance_row == NULL && IsolationUsesXactSnapshot())
		ereport(ERROR,		/* an account created after this transaction's snapshot */
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not serialize access: account " INT64_FORMAT " is newer than this transaction",
						account_id)));
	if (st->balance_row == NULL)
		elog(ERROR, "account " INT64_FORMAT " has no balance row", account_id);
	d = slot_col(st, st->balance_row, RT_BALANCE, "hot", &isnull);
	*hot = !isnull && DatumGetBool(d);
	d = slot_col(st, st->balance_row, RT_BALANCE, "open_holds", &isnull);
	*open_holds = isnull ? 0 : DatumGetInt32(d);
	d = slot_col(st, st->balance_row, RT_BALANCE, "balance", &isnull);
	return DatumGetNumericCopy(d);
}

/* Where the row the last ledger_store_lock_balance locked is (a batch keeps it). */
ItemPointerData
ledger_store_balance_tid(LedgerStore *st)
{
	Assert(st->balance_row != NULL);
	return st->balance_row->tts_tid;
}

/* Write a new balance into the row the last ledger_store_lock_balance locked. */
void
ledger_store_set_balance(LedgerStore *st, Numeric balance)
{
	Assert(st->balance_row != NULL);
	ledger_store_set_balance_of(st, st->balance_row, balance);
	st->balance_row = NULL;
}

/*
 * Write a new balance into the balance row at tid, which this transaction
 * has locked in that version (ledger_store_balance_tid after a lock): no
 * other can have replaced it since.
 */
void
ledger_store_set_balance_at(LedgerStore *st, ItemPointer tid, Numeric balance)
{
	ResultRelInfo *rri = result_rel(st, RT_BALANCE);
	TupleTableSlot *old = st->found[RT_BALANCE];

	if (!table_tuple_fetch_row_version(rri->ri_RelationDesc, tid, SnapshotAny, old))
		elog(ERROR, "locked balance row (%u,%u) is gone",
			 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
	ledger_store_set_balance_of(st, old, balance);
}

/* Write a new balance into a balance row this transaction locked, in its newest version. */
static void
ledger_store_set_balance_of(LedgerStore *st, TupleTableSlot *old, Numeric balance)
{
	TupleTableSlot *slot = new_row(st, RT_BALANCE);
	TupleDesc	desc = slot->tts_tupleDescriptor;

	Assert(old != NULL);
	slot_getallattrs(old);
	memcpy(slot->tts_values, old->tts_values, sizeof(Datum) * desc->natts);
	memcpy(slot->tts_isnull, old->tts_isnull, sizeof(bool) * desc->natts);
	set_col(st, RT_BALANCE, "balance", NumericGetDatum(balance), false);
	set_col(st, RT_BALANCE, "updated_at",
			TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	ExecStoreVirtualTuple(slot);
	ExecSimpleRelationUpdate(st->rels[RT_BALANCE], st->estate, &st->epq, old, slot);
	ResetPerTupleExprContext(st->estate);
}

/*
 * Add a posting's debits and credits to an account's daily row and set
 * its closing balance, inserting the row if the day has none.  The caller
 * holds the account's balance row lock.
 */
void
ledger_store_add_daily(LedgerStore *st, int64 account_id, DateADT day,
					   Numeric debits, Numeric credits, Numeric closing)
{
	ScanKeyData keys[2];
	TupleTableSlot *old;
	TupleTableSlot *slot;
	bool		isnull;
	uint64		hint_key = hash_combine64((uint64) account_id, (uint64) day);

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(account_id));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_DATE_EQ, DateADTGetDatum(day));
	old = lock_row(st, RT_DAILY, st->schema->daily_balance_index, keys, 2, true, hint_key);
	slot = new_row(st, RT_DAILY);
	if (old != NULL)
	{
		slot_getallattrs(old);
		memcpy(slot->tts_values, old->tts_values, sizeof(Datum) * slot->tts_tupleDescriptor->natts);
		memcpy(slot->tts_isnull, old->tts_isnull, sizeof(bool) * slot->tts_tupleDescriptor->natts);
		debits = ledger_numeric_add(debits, DatumGetNumeric(slot_col(st, old, RT_DAILY, "debits", &isnull)));
		credits = ledger_numeric_add(credits, DatumGetNumeric(slot_col(st, old, RT_DAILY, "credits", &isnull)));
	}
	set_col(st, RT_DAILY, "account_id", Int64GetDatum(account_id), false);
	set_col(st, RT_DAILY, "day", DateADTGetDatum(day), false);
	set_col(st, RT_DAILY, "debits", NumericGetDatum(debits), false);
	set_col(st, RT_DAILY, "credits", NumericGetDatum(credits), false);
	set_col(st, RT_DAILY, "balance", NumericGetDatum(closing), false);
	if (old == NULL)
	{
		insert_row(st, RT_DAILY);	/* the new row is its chain's root */
		ledger_row_hint_put(st->rels[RT_DAILY]->ri_RelationDesc, hint_key, &slot->tts_tid);
	}
	else
	{
		ExecStoreVirtualTuple(slot);
		ExecSimpleRelationUpdate(st->rels[RT_DAILY], st->estate, &st->epq, old, slot);
		ResetPerTupleExprContext(st->estate);
	}
}

void
ledger_store_insert_journal(LedgerStore *st, pg_uuid_t *txid, int64 account_id,
							Numeric amount, TimestampTz ts)
{
	new_row(st, RT_JOURNAL);
	set_col(st, RT_JOURNAL, "id",
			Int64GetDatum(nextval_internal(st->schema->journal_entry_id_seq, false)), false);
	set_col(st, RT_JOURNAL, "transaction_id", UUIDPGetDatum(txid), false);
	set_col(st, RT_JOURNAL, "account_id", Int64GetDatum(account_id), false);
	set_col(st, RT_JOURNAL, "amount", NumericGetDatum(amount), false);
	set_col(st, RT_JOURNAL, "created_at", TimestampTzGetDatum(ts), false);
	set_col(st, RT_JOURNAL, "is_invalidated", BoolGetDatum(false), false);
	insert_row(st, RT_JOURNAL);
}

void
ledger_store_insert_transaction(LedgerStore *st, pg_uuid_t *txid, const char *kind,
								Jsonb *metadata)
{
	new_row(st, RT_TRANSACTION);
	set_col(st, RT_TRANSACTION, "id", UUIDPGetDatum(txid), false);
	set_col(st, RT_TRANSACTION, "kind", CStringGetTextDatum(kind), false);
	set_col(st, RT_TRANSACTION, "metadata", JsonbPGetDatum(metadata), false);
	set_col(st, RT_TRANSACTION, "created_at",
			TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	set_col(st, RT_TRANSACTION, "is_invalidated", BoolGetDatum(false), false);
	insert_row(st, RT_TRANSACTION);
}

void
ledger_store_insert_hot_entry(LedgerStore *st, pg_uuid_t *txid, int64 account_id,
							  DateADT day, Numeric debits, Numeric credits, TimestampTz ts)
{
	new_row(st, RT_HOT);
	set_col(st, RT_HOT, "transaction_id", UUIDPGetDatum(txid), false);
	set_col(st, RT_HOT, "account_id", Int64GetDatum(account_id), false);
	set_col(st, RT_HOT, "day", DateADTGetDatum(day), false);
	set_col(st, RT_HOT, "debits", NumericGetDatum(debits), false);
	set_col(st, RT_HOT, "credits", NumericGetDatum(credits), false);
	set_col(st, RT_HOT, "created_at", TimestampTzGetDatum(ts), false);
	insert_row(st, RT_HOT);
}

/* Fire queued AFTER triggers, close everything.  Errors clean up by abort. */
void
ledger_store_end(LedgerStore *st)
{
	AfterTriggerEndQuery(st->estate);
	EvalPlanQualEnd(&st->epq);
	ExecCloseResultRelations(st->estate);
	ExecCloseRangeTableRelations(st->estate);
	ExecResetTupleTable(st->estate->es_tupleTable, false);
	UnregisterSnapshot(st->estate->es_snapshot);
	FreeExecutorState(st->estate);
	pfree(st);
}
