/*-------------------------------------------------------------------------
 *
 * lookup.c
 *	  Accounts and asset scales read straight from the unique indexes on
 *	  their codes, without SPI: no statement to parse, plan or start, which
 *	  is most of what a fresh connection's first posting would otherwise
 *	  pay.  Asset scales are kept for the life of the backend: assets are
 *	  never updated or deleted (a guard trigger refuses both); one created
 *	  by the current transaction is not kept, since it may roll back.
 *
 * Rows are found from a hint of where the index led before (rowhint.c),
 * checked against the row, or else through the index.
 *
 * Snapshot: each lookup reads with the latest snapshot, after a command
 * counter increment (as an SPI statement would), whatever the isolation
 * level.  The account cache (cache.c) stamps a code before looking it up,
 * and what it keeps must be at least as new as the stamp.  An account's
 * mode is checked again where it matters (balance.c, escrow.c), and its
 * floor is the one the balance update applies.
 *
 * Locking: AccessShareLock on the table and its index, kept to the end of
 * the transaction, as any query's.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "parser/parse_relation.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* What a lookup does with the row it found. */
typedef void (*RowReader) (Relation rel, TupleTableSlot *slot, void *arg);

/*
 * Find the row whose code (the index's only column) equals code, and call
 * fn on it: from a hint of where the index led before, else through the
 * index.  Returns whether there was one.
 */
static bool
lookup_by_code(Oid relid, Oid indexid, const char *code, RowReader fn, void *arg)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Relation	idx = index_open(indexid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	AttrNumber	codeatt = attnameAttNum(rel, "code", false);
	uint64		key = hash_bytes_extended((const unsigned char *) code, strlen(code), 0);
	Snapshot	snap;
	IndexScanDesc scan;
	ScanKeyData skey;
	BlockNumber nblocks = InvalidBlockNumber;
	bool		found;

	if (idx->rd_index->indrelid != relid || idx->rd_index->indnatts != 1 ||
		!idx->rd_index->indisunique || idx->rd_index->indkey.values[0] != codeatt)
		elog(ERROR, "index \"%s\" is not the unique index on %s.code",
			 RelationGetRelationName(idx), RelationGetRelationName(rel));
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&skey, 1, BTEqualStrategyNumber, F_TEXTEQ, CStringGetTextDatum(code));
	skey.sk_collation = idx->rd_indcollation[0];
	found = ledger_row_hint_fetch(rel, idx, &skey, 1, key, snap, slot, &nblocks);
	if (!found)
	{
		scan = index_beginscan(rel, idx, snap, 1, 0);
		index_rescan(scan, &skey, 1, NULL, 0);
		found = ledger_index_next_hinted(scan, slot, rel, key);
		index_endscan(scan);
	}
	if (found)
		fn(rel, slot, arg);
	UnregisterSnapshot(snap);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return found;
}

typedef struct AccountRow
{
	LedgerAccount *out;
	TransactionId xmin;
} AccountRow;

/* A column by name; NULL when the installed table does not have it. */
static Datum
column(Relation rel, TupleTableSlot *slot, const char *name, bool *isnull)
{
	int			attno = attnameAttNum(rel, name, false);

	*isnull = true;
	return attno > 0 ? slot_getattr(slot, attno, isnull) : (Datum) 0;
}

static void
read_account(Relation rel, TupleTableSlot *slot, void *arg)
{
	AccountRow *r = arg;
	bool		isnull;
	bool		should_free;
	Datum		d;
	HeapTuple	tup;

	r->out->id = DatumGetInt64(column(rel, slot, "id", &isnull));
	r->out->code = TextDatumGetCString(column(rel, slot, "code", &isnull));
	r->out->asset = TextDatumGetCString(column(rel, slot, "asset", &isnull));
	d = column(rel, slot, "min_balance", &isnull);
	r->out->unbounded = isnull;
	r->out->min_balance = isnull ? NULL : DatumGetNumericCopy(d);
	d = column(rel, slot, "mode", &isnull);	/* 0.3.0 and later */
	r->out->hot = !isnull && strcmp(TextDatumGetCString(d), "hot") == 0;
	tup = ExecFetchSlotHeapTuple(slot, false, &should_free);
	r->xmin = HeapTupleHeaderGetXmin(tup->t_data);
	if (should_free)
		heap_freetuple(tup);
}

/*
 * Look an account up by code, scale included.  Returns false if there is
 * no such account; *xmin gets the row's inserting transaction.
 */
bool
ledger_lookup_account(const char *code, LedgerAccount *out, TransactionId *xmin)
{
	const LedgerSchema *s = ledger_schema();
	AccountRow	r;

	if (s == NULL)
		elog(ERROR, "the ledger schema is not installed in this database");
	r.out = out;
	if (!lookup_by_code(s->account, s->account_code_index, code, read_account, &r))
		return false;
	out->scale = ledger_asset_scale(out->asset);
	if (out->scale < 0)
		elog(ERROR, "asset \"%s\" of account \"%s\" does not exist", out->asset, code);
	*xmin = r.xmin;
	return true;
}

/* The owner of an account, read from its row; for ledger_lookup_owner. */
static void
read_owner(Relation rel, TupleTableSlot *slot, void *arg)
{
	char	  **owner = arg;
	bool		isnull;
	Datum		d = column(rel, slot, "owner_id", &isnull);

	*owner = isnull ? NULL : TextDatumGetCString(d);
}

/*
 * An account's owner_id (NULL: none) by code, through the unique index, no
 * statement run.  Returns false if there is no such account.
 */
bool
ledger_lookup_owner(const char *code, char **owner)
{
	const LedgerSchema *s = ledger_schema();

	if (s == NULL)
		elog(ERROR, "the ledger schema is not installed in this database");
	*owner = NULL;
	return lookup_by_code(s->account, s->account_code_index, code, read_owner, owner);
}

/* ---------------------------------------------------------------------
 * Asset scales
 * ---------------------------------------------------------------------
 */

typedef struct AssetScale
{
	char		code[LEDGER_MAX_CODE_LEN + 1];
	int			scale;
} AssetScale;

static HTAB *asset_scales = NULL;
static Oid	asset_scales_relid = InvalidOid;

typedef struct ScaleRow
{
	int			scale;
	bool		own;			/* written by this transaction: may roll back */
} ScaleRow;

static void
read_scale(Relation rel, TupleTableSlot *slot, void *arg)
{
	ScaleRow   *r = arg;
	bool		isnull;
	bool		should_free;
	HeapTuple	tup;

	r->scale = DatumGetInt32(column(rel, slot, "scale", &isnull));
	tup = ExecFetchSlotHeapTuple(slot, false, &should_free);
	r->own = TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data));
	if (should_free)
		heap_freetuple(tup);
}

/*
 * An asset's scale, or -1 if there is no such asset.  Cached for the life
 * of the backend; the cache is flushed when ledger.asset is another table
 * (the extension was dropped and created again).
 */
int
ledger_asset_scale(const char *code)
{
	const LedgerSchema *s = ledger_schema();
	AssetScale *entry;
	ScaleRow	r;

	if (s == NULL)
		elog(ERROR, "the ledger schema is not installed in this database");
	if (strlen(code) > LEDGER_MAX_CODE_LEN)
		return -1;
	if (asset_scales == NULL || s->asset != asset_scales_relid)
	{
		HASHCTL		ctl;

		if (asset_scales != NULL)
			hash_destroy(asset_scales);
		ctl.keysize = sizeof(((AssetScale *) NULL)->code);
		ctl.entrysize = sizeof(AssetScale);
		asset_scales = hash_create("ledger asset scales", 16, &ctl, HASH_ELEM | HASH_STRINGS);
		asset_scales_relid = s->asset;
	}
	entry = hash_search(asset_scales, code, HASH_FIND, NULL);
	if (entry != NULL)
		return entry->scale;

	if (!lookup_by_code(s->asset, s->asset_code_index, code, read_scale, &r))
		return -1;
	if (r.own)
		return r.scale;			/* not kept: the asset may still roll back */
	entry = hash_search(asset_scales, code, HASH_ENTER, NULL);
	entry->scale = r.scale;
	return r.scale;
}
