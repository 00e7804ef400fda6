/*-------------------------------------------------------------------------
 *
 * batchapply.c
 *	  The balance step of a batch (batch.c): running balances in memory.
 *	  A batch locks the balance rows of its cold accounts once, in account
 *	  id order, before its first item; each item is then checked against
 *	  the running balance of each account it touches, and its journal
 *	  entries and transaction row are written at once, through one store
 *	  (store.c) kept for the whole batch.  Each touched balance row, and
 *	  each account's daily row, is written once, when the batch ends.
 *
 * An item writes nothing until every check has passed: the checks of
 *	  posting.c, then ledger_check_cold against the running balance (floor
 *	  and holds), then, last, the reservation of at most one hot account
 *	  (escrow.c), then the claim of its idempotency key.  So an item
 *	  refused with an LD error has nothing to undo, and a batch that is not
 *	  atomic reports it without a subtransaction (batch.c).  An item that
 *	  does not fit this rule (two hot accounts, or a hot account and a
 *	  key: a refusal could come after a reservation or a claim) runs
 *	  alone, as a single call does, in a subtransaction of its own when
 *	  the batch is not atomic: the running balances are written first and
 *	  the rows locked again afterwards.
 *
 * Locking: the balance rows of the batch's cold accounts, taken in id
 *	  order by ledger_batch_lock and held to the end of the transaction,
 *	  as a single posting holds its own.  An account the lock step did not
 *	  see (it was hot then, or created since) is locked when an item first
 *	  touches it.  Daily rows are written under their account's balance
 *	  row lock, as every writer of them does (store.c).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

/* One cold account of the batch: its locked row and running balance. */
typedef struct BatchAccount
{
	int64		id;				/* hash key */
	bool		locked;			/* by the current store; else lock again */
	ItemPointerData tid;		/* the locked row's newest version */
	Numeric		balance;		/* running: the row's balance plus the items' */
	bool		hot;			/* the row's hot flag when it was locked */
	int			open_holds;
	bool		dirty;			/* balance differs from the row's */
	bool		has_day;		/* debits and credits of day not yet written */
	DateADT		day;
	Numeric		debits;
	Numeric		credits;
} BatchAccount;

typedef struct LedgerBatch
{
	MemoryContext cxt;
	HTAB	   *accounts;
	LedgerStore *store;			/* NULL between a flush and the next use */
	bool		atomic;
	bool		busy;			/* inside an item's posting or a flush */
	bool		writing;		/* an item has begun to write */
	TimestampTz last_ts;		/* the newest posting time of the batch */
} LedgerBatch;

static LedgerBatch *batch = NULL;

bool
ledger_batch_active(void)
{
	return batch != NULL;
}

/*
 * Whether an error raised now may be reported as an item's refusal: not
 * once the item has begun to write (batch.c re-raises it then, failing the
 * call).
 */
bool
ledger_batch_refusable(void)
{
	return batch == NULL || !batch->writing;
}

/* Between items (batch.c): whatever the last item did, none runs now. */
void
ledger_batch_item_done(void)
{
	Assert(batch != NULL);
	Assert(!batch->writing);
	batch->busy = false;
}

/*
 * A posting reached while a batch item or flush runs (a trigger on the
 * ledger's tables calling the ledger) would bypass the running balances:
 * refused, failing the batch.
 */
static void
refuse_nested(void)
{
	if (batch->busy)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a posting cannot run inside a batch item"),
				 errdetail("A trigger or function called ledger postings while ledger.transfer_batch or ledger.post_batch was writing.")));
}

/* Start a batch's running balances, for a call that ends with ledger_batch_end. */
void
ledger_batch_begin(bool atomic)
{
	HASHCTL		ctl;
	MemoryContext cxt;
	LedgerBatch *b;

	if (batch != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("a batch cannot run inside another batch"),
				 errdetail("A trigger or function called a batch while a batch was running.")));
	cxt = AllocSetContextCreate(CurrentMemoryContext, "ledger batch balances",
								ALLOCSET_DEFAULT_SIZES);
	b = MemoryContextAllocZero(cxt, sizeof(LedgerBatch));
	b->cxt = cxt;
	b->atomic = atomic;
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(BatchAccount);
	ctl.hcxt = cxt;
	b->accounts = hash_create("ledger batch accounts", 1024, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	batch = b;					/* last: nothing above can leave it dangling */
}

/* Forget the batch after an error: the transaction's abort undoes its work. */
void
ledger_batch_forget(void)
{
	batch = NULL;
}

/* A copy in the batch's memory. */
static Numeric
numeric_copy(Numeric n)
{
	MemoryContext old = MemoryContextSwitchTo(batch->cxt);
	Numeric		copy = DatumGetNumericCopy(NumericGetDatum(n));

	MemoryContextSwitchTo(old);
	return copy;
}

static LedgerStore *
batch_store(void)
{
	if (batch->store == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(batch->cxt);

		batch->store = ledger_store_begin();
		MemoryContextSwitchTo(old);
	}
	return batch->store;
}

/* An account's entry, its balance row locked (now, if it was not). */
static BatchAccount *
batch_account(int64 id)
{
	bool		found;
	BatchAccount *a = hash_search(batch->accounts, &id, HASH_ENTER, &found);

	if (!found)
	{
		memset(((char *) a) + sizeof(int64), 0, sizeof(BatchAccount) - sizeof(int64));
		Assert(a->id == id);
	}
	if (!a->locked)
	{
		LedgerStore *st = batch_store();
		Numeric		balance;

		Assert(!a->dirty);
		balance = ledger_store_lock_balance(st, id, true, &a->hot, &a->open_holds);
		a->balance = numeric_copy(balance);
		a->tid = ledger_store_balance_tid(st);
		a->locked = true;
	}
	return a;
}

/* Lock the balance rows of cold accounts: ids sorted, duplicates allowed. */
void
ledger_batch_lock(const int64 *ids, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		Assert(i == 0 || ids[i] >= ids[i - 1]);
		if (i == 0 || ids[i] != ids[i - 1])
			(void) batch_account(ids[i]);
	}
}

/* Write one account's pending day: its debits, credits and closing balance. */
static void
write_day(BatchAccount *a, Numeric closing)
{
	if (!a->has_day)
		return;
	ledger_store_add_daily(batch_store(), a->id, a->day, a->debits, a->credits, closing);
	a->has_day = false;
}

/*
 * Write every running balance and pending day, and close the store: the
 * rows must be locked again before the next item uses them.
 */
static void
batch_flush(void)
{
	HASH_SEQ_STATUS seq;
	BatchAccount *a;

	LedgerStore *st = batch->store;

	if (st == NULL)
		return;
	batch->busy = true;
	hash_seq_init(&seq, batch->accounts);
	while ((a = hash_seq_search(&seq)) != NULL)
	{
		if (a->dirty)
			ledger_store_set_balance_at(st, &a->tid, a->balance);
		write_day(a, a->balance);
		a->dirty = false;
		a->locked = false;
	}
	batch->store = NULL;		/* its AFTER triggers fire in ledger_store_end */
	ledger_store_end(st);
}

/* End the batch: write what it holds in memory. */
void
ledger_batch_end(void)
{
	batch_flush();
	MemoryContextDelete(batch->cxt);
	batch = NULL;
}

/*
 * Move an account's running balance by a checked delta, on day (which
 * never goes back within a batch: see ledger_batch_post).
 */
static void
batch_move(BatchAccount *a, LedgerDelta *d, DateADT day)
{
	Numeric		debits = d->debits;
	Numeric		credits = d->credits;

	Assert(!a->has_day || day >= a->day);
	if (a->has_day && a->day != day)
		write_day(a, a->balance);	/* the batch ran past midnight (UTC) */
	if (a->has_day)
	{
		debits = ledger_numeric_add(a->debits, debits);
		credits = ledger_numeric_add(a->credits, credits);
		pfree(a->debits);
		pfree(a->credits);
	}
	a->has_day = true;
	a->day = day;
	a->debits = numeric_copy(debits);
	a->credits = numeric_copy(credits);
	pfree(a->balance);
	a->balance = numeric_copy(d->new_balance);
	a->dirty = true;
}

typedef struct AloneArgs
{
	pg_uuid_t  *id;
	const char *kind;
	LedgerLeg  *legs;
	int			nlegs;
	LedgerDelta *deltas;
	int			ndeltas;
	const char *key;
	int64		scope;
	bytea	   *hash;
	Jsonb	   *metadata;
	bool		written;
} AloneArgs;

static void
post_alone(void *arg)
{
	AloneArgs  *a = arg;

	a->written = a->key == NULL ||
		ledger_claim_key(a->id, a->kind, a->key, a->scope, a->hash, a->metadata);
	if (a->written)
		ledger_apply_balances(a->deltas, a->ndeltas, a->id, a->legs, a->nlegs,
							  a->key == NULL ? a->kind : NULL, a->metadata);
}

/*
 * One item of a batch, after posting.c's checks: its legs resolved and
 * checked, its key's scope and fingerprint computed when it has a key.
 * Returns false for an idempotent replay (the original id in *id).  See
 * the header for the order of checks and writes.
 */
bool
ledger_batch_post(pg_uuid_t *id, const char *kind, LedgerLeg *legs, int nlegs,
				  const char *key, int64 scope, bytea *hash, Jsonb *metadata)
{
	LedgerStore *st;
	LedgerDelta *deltas;
	LedgerDelta *hot = NULL;
	int			ndeltas;
	int			nhot = 0;
	TimestampTz ts;
	DateADT		day;
	int			i;

	Assert(batch != NULL);
	refuse_nested();
	batch->busy = true;
	if (key != NULL && ledger_find_key(key, scope, hash, id))
		return false;			/* an earlier identical request; else LD007 */
	deltas = ledger_build_deltas(legs, nlegs, &ndeltas);
	qsort(deltas, ndeltas, sizeof(LedgerDelta), ledger_delta_cmp);
	for (i = 0; i < ndeltas; i++)
		if (deltas[i].account->hot)
		{
			nhot++;
			hot = &deltas[i];
		}

	if (nhot > 1 || (nhot == 1 && key != NULL))
	{
		AloneArgs	args = {id, kind, legs, nlegs, deltas, ndeltas, key, scope, hash, metadata, false};
		ErrorData  *err;

		batch_flush();
		if (batch->atomic)
			post_alone(&args);
		else if ((err = ledger_try(post_alone, &args)) != NULL)
			ReThrowError(err);
		return args.written;
	}

	/* checks: nothing is written until they pass */
	for (i = 0; i < ndeltas; i++)
	{
		BatchAccount *a;

		if (deltas[i].account->hot)
			continue;
		a = batch_account(deltas[i].account->id);
		ledger_check_cold(&deltas[i], a->balance, a->hot, a->open_holds);
	}
	if (hot != NULL)
		ledger_apply_hot(hot);	/* the last check: a reservation, settled at commit or abort */

	/*
	 * Writes, from the key's claim on: an error from here on is no longer
	 * the item's refusal but the call's failure (ledger_batch_refusable).
	 * The claim's insert writes nothing when a concurrent call took the key
	 * after ledger_find_key looked: the item is then a replay, or refused
	 * with LD007 like any other item.
	 */
	batch->writing = true;
	if (key != NULL && !ledger_claim_key_insert(id, kind, key, scope, hash, metadata))
	{
		/* nothing written: the key's owner is a replay, or LD007 refuses the item */
		batch->writing = false;
		ledger_key_taken(key, scope, hash, id);
		return false;
	}
	st = batch_store();
	/* the clock may step back; a batch's days and times do not */
	ts = Max(GetCurrentTimestamp(), batch->last_ts);
	batch->last_ts = ts;
	day = ledger_utc_day(ts);
	for (i = 0; i < ndeltas; i++)
	{
		LedgerDelta *d = &deltas[i];

		if (d->account->hot)
			ledger_store_insert_hot_entry(st, id, d->account->id, day, d->debits, d->credits, ts);
		else
			batch_move(batch_account(d->account->id), d, day);
	}
	for (i = 0; i < nlegs; i++)
		ledger_store_insert_journal(st, id, legs[i].account->id, legs[i].amount, ts);
	if (key == NULL)
		ledger_store_insert_transaction(st, id, kind, metadata);
	ledger_count_posting(true);
	batch->writing = false;
	return true;
}
