/*-------------------------------------------------------------------------
 *
 * escrowload.c
 *	  Filling the escrow from the tables, and fencing it for corrections.
 *
 *	- After every start the fold worker loads every hot account
 *	  (ledger_hot_load): C = the folded balance plus the unfolded hot
 *	  entries, read in one snapshot before any hot posting is accepted.
 *	- A hot account that has no slot on this server (restored from a dump,
 *	  or left out at start for want of a slot) is loaded by its first
 *	  posting (ledger_hot_load_account).
 *	- A correction fences a hot account (ledger_hot_fence): new postings to
 *	  it fail with LD019, the correction waits for those in flight, and at
 *	  commit C takes the rebuilt balance (ledger_hot_fence_set).
 *
 * Locking (and escrow.h's rules): every read is done first, with HotLock
 * not held; HotLock is then taken only to install slots or change their
 * state.  A posting loading an account holds its balance row lock, taken
 * before the read: it waits out a correction or mode switch in flight, and
 * makes concurrent loads of one account take turns.  Fences are taken
 * before any balance row lock (rebuild.c), so a correction never holds a
 * row lock that a posting it waits for may need.
 *
 *-------------------------------------------------------------------------
 */
#include "escrow.h"

#include "catalog/pg_type.h"
#include "access/xact.h"
#include "miscadmin.h"

/* One hot account as read from the tables, ready for a slot. */
typedef struct LoadedAccount
{
	int64		id;
	int			scale;
	bool		unbounded;
	int128		min_balance;
	int128		committed;
	bool		fits;			/* both within the escrow's bound */
	bool		own_change;		/* its balance row was written by this transaction */
} LoadedAccount;

static SPIPlanPtr load_plan = NULL;

/*
 * Read hot accounts for the escrow: C = the folded balance plus the
 * unfolded hot entries, in one snapshot.  Every hot account when all,
 * else the one given.  Inside SPI.
 */
static int
read_hot_accounts(int64 account_id, bool all, LoadedAccount **out)
{
	Datum		arg = Int64GetDatum(account_id);
	int			n;
	int			i;

	/* queries run with no lock of the escrow's held (escrow.h) */
	Assert(escrow == NULL || !LWLockHeldByMe(escrow->lock));
	if (load_plan == NULL)
		load_plan = ledger_prepare(
			"SELECT b.account_id, s.scale, a.min_balance, "
			"       b.balance + coalesce((SELECT sum(q.credits - q.debits) "
			"          FROM ledger.hot_entry q WHERE q.account_id = b.account_id), 0), b.xmin "
			"  FROM ledger.account_balance b "
			"  JOIN ledger.account a ON a.id = b.account_id "
			"  JOIN ledger.asset s ON s.code = a.asset "
			" WHERE b.hot AND ($1 IS NULL OR b.account_id = $1) ORDER BY b.account_id",
			1, (Oid[]) {INT8OID});
	ledger_spi_exec(load_plan, &arg, all ? "n" : NULL, SPI_OK_SELECT);
	n = (int) SPI_processed;
	*out = palloc0(sizeof(LoadedAccount) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		LoadedAccount *a = &(*out)[i];
		bool		isnull;
		Datum		minb;

		a->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		a->scale = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		minb = SPI_getbinval(tup, desc, 3, &isnull);
		a->unbounded = isnull;
		a->fits = (a->unbounded ||
				   ledger_numeric_to_scaled(DatumGetNumeric(minb), a->scale, &a->min_balance)) &&
			ledger_numeric_to_scaled(DatumGetNumeric(SPI_getbinval(tup, desc, 4, &isnull)),
									 a->scale, &a->committed);
		a->own_change = TransactionIdIsCurrentTransactionId(
			DatumGetTransactionId(SPI_getbinval(tup, desc, 5, &isnull)));
	}
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * Rebuild the escrow after a start, before any hot posting is accepted:
 * read every hot account first (in the worker's transaction), then take
 * HotLock only to install the slots and mark the escrow ready.  Accounts
 * that do not fit (no free slot, amounts beyond the bound) are left
 * without a slot and logged; a posting loads them when there is room.
 */
void
ledger_hot_load(void)
{
	LoadedAccount *a;
	int			n = read_hot_accounts(0, true, &a);
	Oid			relid = ledger_escrow_relid();
	int			missed = 0;
	int			i;

	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	for (i = 0; i < escrow->nslots; i++)
		if (escrow->slots[i].state != SLOT_FREE)
			ledger_escrow_set_state(i, SLOT_FREE);
	for (i = 0; i < n; i++)
		if (!a[i].fits ||
			ledger_escrow_alloc(a[i].id, relid, SLOT_ACTIVE, a[i].scale, a[i].unbounded,
								a[i].min_balance, a[i].committed) < 0)
			missed++;
	escrow->ready = true;
	LWLockRelease(escrow->lock);
	if (missed > 0)
		ereport(WARNING,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("%d of %d hot accounts could not be loaded into shared memory", missed, n),
				 errhint("Raise ledger.max_hot_accounts; postings to them load them when a slot is free."),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_UNAVAILABLE,
														  LEDGER_FACT_INT("count", missed),
														  LEDGER_FACT_INT("limit", escrow->nslots),
														  NULL),
											NULL)));
}

/* The extension (at a version with hot accounts) is not installed: nothing to load. */
void
ledger_hot_load_empty(void)
{
	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	escrow->ready = true;
	LWLockRelease(escrow->lock);
}

/*
 * Load a hot account that has no slot on this server, for a posting.  No
 * posting can be in flight on an account without a slot.  The balance row
 * lock is kept until the posting's transaction ends.  Inside SPI.
 */
void
ledger_hot_load_account(LedgerAccount *acct)
{
	LoadedAccount *a;
	Oid			relid = ledger_escrow_relid();
	int			slot;

	ledger_escrow_require();
	ledger_lock_balance(acct->id);
	if (read_hot_accounts(acct->id, false, &a) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("account \"%s\" is changing mode", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", acct->code), NULL), "The account was switched to cold mode while the posting ran."),
				 errhint("Retry the posting.")));
	/* a slot outlives the transaction: it must not hold what may roll back */
	if (a->own_change)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("hot account \"%s\" was changed by this transaction", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", acct->code), NULL), "Its escrow is not loaded on this server, and its balance row holds this transaction's uncommitted change (a correction)."),
				 errhint("Commit the change, then post.")));
	if (!a->fits)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_OUT_OF_RANGE),
				 errmsg("hot account \"%s\" holds amounts too large for the escrow", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_OUT_OF_RANGE,
													  LEDGER_FACT_TEXT("account", acct->code),
													  LEDGER_FACT_TEXT("asset", acct->asset),
													  LEDGER_FACT_INT("scale", acct->scale),
													  NULL),
										"Hot accounts hold amounts below 10^36 units of 10^-%d.", acct->scale),
				 errhint("Switch the account to cold mode.")));
	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	slot = ledger_escrow_find(acct->id, relid);
	if (slot < 0)
		slot = ledger_escrow_alloc(a->id, relid, SLOT_ACTIVE, a->scale, a->unbounded,
								   a->min_balance, a->committed);
	LWLockRelease(escrow->lock);
	if (slot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("no room for hot account \"%s\"", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_UNAVAILABLE,
													  LEDGER_FACT_TEXT("account", acct->code),
													  LEDGER_FACT_INT("limit", escrow->nslots),
													  NULL),
										"All %d hot-account slots are in use.", escrow->nslots),
				 errhint("Raise ledger.max_hot_accounts and restart.")));
}

/*
 * Fence a hot account for a correction: close its slot to new postings
 * (they fail with LD019) and wait until none of its postings is in
 * flight, so that every committed posting is visible to a new snapshot
 * and C is exactly the journal's sum.  A slot another correction or a
 * mode switch holds is waited for, up to ledger.hot_wait_ms.  Returns
 * false if the account has no slot (it is cold, or not loaded).  The slot
 * reopens when the calling transaction ends: at commit with C set by
 * ledger_hot_fence_set, at abort unchanged.  Callers fence before taking
 * any balance row lock, in ascending account id order.
 */
bool
ledger_hot_fence(int64 account_id, const char *code)
{
	Oid			relid;
	int			slot;
	int			waited = 0;

	if (escrow == NULL)
		return false;
	ledger_escrow_wait_ready();
	ledger_escrow_reserve_entries();
	relid = ledger_escrow_relid();
	for (;;)
	{
		SlotState	state;

		LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
		slot = ledger_escrow_find(account_id, relid);
		if (slot < 0)
		{
			LWLockRelease(escrow->lock);
			return false;
		}
		state = escrow->slots[slot].state;
		if (state == SLOT_FENCED && ledger_escrow_own(slot, ENTRY_RESET))
		{
			LWLockRelease(escrow->lock);	/* fenced already, by this transaction */
			return true;
		}
		if (state == SLOT_CLOSING && ledger_escrow_own(slot, ENTRY_CLOSE))
		{
			LWLockRelease(escrow->lock);	/* this transaction switches it to cold */
			return false;
		}
		if (state == SLOT_PENDING && ledger_escrow_own(slot, ENTRY_ACTIVATE))
		{
			LWLockRelease(escrow->lock);
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_MODE_CHANGED),
					 errmsg("hot account \"%s\" was switched to hot mode by this transaction", code),
					 errhint("Commit the switch, then correct the account."),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", code), NULL), NULL)));
		}
		if (state == SLOT_ACTIVE && IsolationUsesXactSnapshot())
		{
			LWLockRelease(escrow->lock);
			ledger_refuse_snapshot_isolation(code);
		}
		if (state == SLOT_ACTIVE)
		{
			int128		committed;

			ledger_escrow_set_state(slot, SLOT_FENCED);
			SpinLockAcquire(&escrow->slots[slot].mutex);
			committed = escrow->slots[slot].committed;
			SpinLockRelease(&escrow->slots[slot].mutex);
			ledger_escrow_push(ENTRY_RESET, slot, account_id, committed);
			LWLockRelease(escrow->lock);
			break;
		}
		LWLockRelease(escrow->lock);
		if (waited >= ledger_hot_wait_ms)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_MODE_CHANGED),
					 errmsg("hot account \"%s\" is busy with another correction or mode change", code),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", code), NULL), "Waited %d ms for its slot (state %s).", waited,
							   ledger_slot_state_names[state]),
					 errhint("Retry.")));
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
		waited++;
	}
	ledger_escrow_wait_drained(slot, code);
	return true;
}

/*
 * Corrections and mode switches of a hot account read what its postings
 * committed while they waited for them: a transaction snapshot taken
 * before would miss it.  They run under READ COMMITTED only.
 */
void
ledger_refuse_snapshot_isolation(const char *code)
{
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
			 errmsg("hot account \"%s\" can only be corrected or switched under READ COMMITTED", code),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
												  LEDGER_FACT_TEXT("account", code),
												  LEDGER_FACT_TEXT("isolation", ledger_isolation_name()),
												  NULL),
									"This transaction runs under %s; its snapshot would miss the postings the correction waits for.",
					   IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
			 errhint("Run it in a READ COMMITTED transaction.")));
}

/* Does the account have an escrow slot in this database now? */
bool
ledger_hot_has_slot(int64 account_id)
{
	Oid			relid;
	int			slot;

	if (escrow == NULL)
		return false;
	relid = ledger_escrow_relid();
	LWLockAcquire(escrow->lock, LW_SHARED);
	slot = ledger_escrow_find(account_id, relid);
	/* one this transaction switches to cold is as good as gone */
	if (slot >= 0 && escrow->slots[slot].state == SLOT_CLOSING &&
		ledger_escrow_own(slot, ENTRY_CLOSE))
		slot = -1;
	LWLockRelease(escrow->lock);
	return slot >= 0;
}

/* The committed balance a fenced account gets when this transaction commits. */
void
ledger_hot_fence_set(int64 account_id, Numeric balance)
{
	int			scale = -1;
	int			slot;
	int128		scaled;
	Oid			relid = ledger_escrow_relid();

	LWLockAcquire(escrow->lock, LW_SHARED);
	slot = ledger_escrow_find(account_id, relid);
	if (slot >= 0 && escrow->slots[slot].state == SLOT_FENCED)
		scale = escrow->slots[slot].scale;
	LWLockRelease(escrow->lock);
	if (scale < 0)
		elog(ERROR, "hot account " INT64_FORMAT " is not fenced", account_id);
	if (!ledger_numeric_to_scaled(balance, scale, &scaled))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_OUT_OF_RANGE),
				 errmsg("balance %s is too large for a hot account", ledger_numeric_str(balance)),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_OUT_OF_RANGE,
													  LEDGER_FACT_AMOUNT("balance", balance),
													  LEDGER_FACT_INT("scale", scale),
													  NULL),
										"Hot accounts hold balances below 10^36 units of 10^-%d; account " INT64_FORMAT " would hold %s.",
						   scale, account_id, ledger_numeric_str(balance)),
				 errhint("Switch the account to cold mode.")));
	ledger_escrow_set_reset(account_id, scaled);
}
