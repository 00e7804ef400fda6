/*-------------------------------------------------------------------------
 *
 * hot.c
 *	  Hot accounts: escrow balances in shared memory, the hot posting path,
 *	  the transaction callbacks that settle it, and ledger.set_account_mode.
 *
 * A hot account's balance row is not updated by postings.  Instead shared
 * memory holds, per hot account, the committed balance C and the amount R
 * reserved by debits whose transactions are still open, as integers scaled
 * by 10^scale (int128: the commit callback must not allocate).
 *
 *	- A debit is accepted only if C - R - amount >= min_balance, and is added
 *	  to R under the slot's spinlock, before the posting writes anything.
 *	- A credit is only noted; it counts after commit.
 *	- At commit (XACT_EVENT_COMMIT, after the commit record is flushed and
 *	  the transaction is visible) each debit moves from R into C and each
 *	  credit is added to C.  The callback takes only spinlocks and cannot
 *	  fail.  On abort debits are released from R; on subtransaction abort
 *	  only those made in the aborted subtransaction.
 *	- PREPARE TRANSACTION with hot reservations is refused (LD018): they
 *	  would outlive the backend that holds them.
 * The posting also appends a row per hot account to ledger.hot_entry; the
 * fold worker (worker.c) folds committed rows into the balance rows.  The
 * journal stays the only source of truth: after any restart C is rebuilt
 * from the folded balance plus the unfolded rows before hot postings are
 * accepted (LD020 until then).
 *
 * Locking rules:
 *	- HotLock (LWLock) guards the slot table: allocation, freeing, state.
 *	  Lookups hold it shared.  Slot fields C, R and the counters are guarded
 *	  by the slot's spinlock, held only for a few arithmetic operations.
 *	- Switching an account's mode locks its account_balance row first, which
 *	  waits out cold postings in flight; a cold posting re-checks the hot
 *	  flag under that row lock (LD019 if the account turned hot meanwhile).
 *	  Switching to cold closes the slot to new postings, waits until no
 *	  posting of the account is in flight, folds it and frees the slot at
 *	  commit.
 *	- Slot changes made by set_account_mode take effect in the commit
 *	  callback and are undone by the abort callback.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/* GUCs */
int			ledger_max_hot_accounts = 64;
int			ledger_hot_wait_ms = 5000;
char	   *ledger_database = NULL;

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_PENDING,				/* being made hot by an open transaction */
	SLOT_ACTIVE,
	SLOT_CLOSING				/* being made cold by an open transaction */
} SlotState;

static const char *const slot_state_names[] = {"free", "pending", "active", "closing"};

typedef struct HotSlot
{
	slock_t		mutex;
	SlotState	state;
	int64		account_id;
	Oid			relid;			/* ledger.account_balance it belongs to */
	int			scale;
	bool		unbounded;
	int128		min_balance;
	int128		committed;		/* C */
	int128		reserved;		/* R */
	int32		inflight;		/* open postings holding entries on it */
	int64		debits_accepted;
	int64		debits_refused;
} HotSlot;

typedef struct HotShared
{
	LWLock	   *lock;
	bool		ready;			/* C loaded after the last start */
	int			nslots;
	LedgerWorkerStats worker;
	HotSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} HotShared;

static HotShared *hot = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Backend-local list of what the open transaction did to hot slots, applied
 * by the commit callback and undone by the abort callbacks.
 */
typedef enum EntryKind
{
	ENTRY_DEBIT,				/* reserved; moves into C at commit */
	ENTRY_CREDIT,				/* added to C at commit */
	ENTRY_ACTIVATE,				/* slot PENDING -> ACTIVE at commit */
	ENTRY_CLOSE,				/* slot CLOSING -> FREE at commit */
	ENTRY_RESET					/* slot CLOSING -> ACTIVE with C = amount at commit */
} EntryKind;

typedef struct HotEntry
{
	EntryKind	kind;
	int			slot;
	int64		account_id;
	int128		amount;
	SubTransactionId subid;
} HotEntry;

static HotEntry *entries = NULL;
static int	nentries = 0;
static int	maxentries = 0;

static Size
hot_shmem_size(void)
{
	return add_size(offsetof(HotShared, slots),
					mul_size(sizeof(HotSlot), ledger_max_hot_accounts));
}

static void
hot_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(hot_shmem_size());
	RequestNamedLWLockTranche("ledger_hot", 1);
}

static void
hot_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	hot = ShmemInitStruct("ledger hot accounts", hot_shmem_size(), &found);
	if (!found)
	{
		memset(hot, 0, hot_shmem_size());
		hot->lock = &(GetNamedLWLockTranche("ledger_hot"))->lock;
		hot->ready = false;
		hot->nslots = ledger_max_hot_accounts;
		SpinLockInit(&hot->worker.mutex);
		for (i = 0; i < hot->nslots; i++)
			SpinLockInit(&hot->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ---------------------------------------------------------------------
 * Scaled integers
 * ---------------------------------------------------------------------
 */

/* |values| must stay below 10^36 so that sums of two never overflow. */
static const int128 SCALED_LIMIT = (int128) 1000000000000000000LL * (int128) 1000000000000000000LL;

/*
 * A numeric with at most "scale" decimals as an integer scaled by
 * 10^scale.  Returns false if it does not fit.
 */
bool
ledger_numeric_to_scaled(Numeric n, int scale, int128 *out)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	bool		neg = false;
	int128		v = 0;
	int			frac = -1;

	if (*s == '-')
	{
		neg = true;
		s++;
	}
	for (; *s; s++)
	{
		if (*s == '.')
		{
			frac = 0;
			continue;
		}
		if (*s < '0' || *s > '9')
			return false;
		if (frac >= 0)
		{
			if (frac == scale)
			{
				if (*s != '0')
					return false;
				continue;
			}
			frac++;
		}
		v = v * 10 + (*s - '0');
		if (v >= SCALED_LIMIT)
			return false;
	}
	for (frac = Max(frac, 0); frac < scale; frac++)
	{
		v *= 10;
		if (v >= SCALED_LIMIT)
			return false;
	}
	*out = neg ? -v : v;
	return true;
}

Numeric
ledger_scaled_to_numeric(int128 v, int scale)
{
	char		buf[64];
	char		digits[48];
	int			nd = 0;
	int			pos = 0;
	bool		neg = v < 0;
	int			i;

	if (neg)
		v = -v;
	do
	{
		digits[nd++] = '0' + (int) (v % 10);
		v /= 10;
	} while (v > 0);
	while (nd <= scale)
		digits[nd++] = '0';
	if (neg)
		buf[pos++] = '-';
	for (i = nd - 1; i >= 0; i--)
	{
		buf[pos++] = digits[i];
		if (i == scale && scale > 0)
			buf[pos++] = '.';
	}
	buf[pos] = '\0';
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

/* ---------------------------------------------------------------------
 * Slots
 * ---------------------------------------------------------------------
 */

bool
ledger_hot_available(void)
{
	return hot != NULL;
}

static void
require_hot_shmem(void)
{
	if (hot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("hot accounts require the ledger library to be preloaded"),
				 errhint("Add 'ledger' to shared_preload_libraries and restart the server.")));
}

/*
 * The OID of ledger.account_balance identifies the extension's incarnation:
 * slots left by an extension that was dropped (and maybe created again)
 * belong to an older one and count as free.  Look it up before taking
 * HotLock.
 */
static Oid
current_relid(void)
{
	Oid			nsp = get_namespace_oid("ledger", true);

	return OidIsValid(nsp) ? get_relname_relid("account_balance", nsp) : InvalidOid;
}

/* Find an account's slot; HotLock must be held.  -1 if none. */
static int
find_slot(int64 account_id, Oid relid)
{
	int			i;

	for (i = 0; i < hot->nslots; i++)
		if (hot->slots[i].state != SLOT_FREE && hot->slots[i].account_id == account_id &&
			hot->slots[i].relid == relid)
			return i;
	return -1;
}

static int	alloc_slot(int64 account_id, Oid relid, SlotState state, int scale,
					   bool unbounded, int128 min_balance, int128 committed);

/*
 * Wait, up to ledger.hot_wait_ms, until the worker has rebuilt the escrow
 * after a start; then LD020.
 */
static void
wait_until_ready(void)
{
	int			waited = 0;

	while (!hot->ready)
	{
		if (waited >= ledger_hot_wait_ms)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_HOT_NOT_READY),
					 errmsg("hot account balances are being rebuilt after a restart"),
					 errdetail("The fold worker has not finished loading hot accounts within %d ms.",
							   ledger_hot_wait_ms),
					 errhint("Retry the posting; if this persists, check that the ledger fold worker runs in database \"%s\".",
							 ledger_database)));
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
		waited += 10;
	}
}

static void
reserve_entry_space(void)
{
	if (nentries < maxentries)
		return;
	if (entries == NULL)
	{
		maxentries = 16;
		entries = MemoryContextAlloc(TopMemoryContext, sizeof(HotEntry) * maxentries);
	}
	else
	{
		maxentries *= 2;
		entries = repalloc(entries, sizeof(HotEntry) * maxentries);
	}
}

static void
push_entry(EntryKind kind, int slot, int64 account_id, int128 amount)
{
	HotEntry   *e = &entries[nentries++];

	e->kind = kind;
	e->slot = slot;
	e->account_id = account_id;
	e->amount = amount;
	e->subid = GetCurrentSubTransactionId();
}

/* One hot account as read from the tables, ready to install in a slot. */
typedef struct LoadedAccount
{
	int64		id;
	int			scale;
	bool		unbounded;
	int128		min_balance;
	int128		committed;
	bool		fits;			/* both fit the escrow's bounds */
} LoadedAccount;

/*
 * The statement that reads hot accounts for the escrow: C = the folded
 * balance plus the unfolded hot entries, in one snapshot.  $1 NULL reads
 * every hot account (the worker's load), else that one.
 */
static SPIPlanPtr load_plan = NULL;

static int
read_hot_accounts(Datum account_id, bool all, LoadedAccount **out)
{
	int			n;
	int			i;

	if (load_plan == NULL)
		load_plan = ledger_prepare(
			"SELECT b.account_id, s.scale, a.min_balance, "
			"       b.balance + coalesce((SELECT sum(q.credits - q.debits) "
			"          FROM ledger.hot_entry q WHERE q.account_id = b.account_id), 0) "
			"  FROM ledger.account_balance b "
			"  JOIN ledger.account a ON a.id = b.account_id "
			"  JOIN ledger.asset s ON s.code = a.asset "
			" WHERE b.hot AND ($1 IS NULL OR b.account_id = $1) ORDER BY b.account_id",
			1, (Oid[]) {INT8OID});
	ledger_spi_exec(load_plan, &account_id, all ? "n" : NULL, SPI_OK_SELECT);
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
	}
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * A hot account that has no slot on this server (restored from a dump,
 * switched to hot by an older server, or not loaded at start for want of
 * a slot): load it for a posting.  Its balance row lock, taken before the
 * read, waits out a correction or mode switch in flight, and makes
 * concurrent loads of one account take turns; no posting can be in flight
 * on an account without a slot.  The lock is kept until the posting's
 * transaction ends.  Inside SPI; HotLock is not held.
 */
static void
load_slot(LedgerAccount *acct, Oid relid)
{
	LoadedAccount *a;
	int			slot;

	ledger_lock_balance(acct->id);
	if (read_hot_accounts(Int64GetDatum(acct->id), false, &a) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("account \"%s\" is changing mode", acct->code),
				 errdetail("The account was switched to cold mode while the posting ran."),
				 errhint("Retry the posting.")));
	if (!a->fits)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("hot account \"%s\" holds amounts too large for the escrow", acct->code),
				 errdetail("Hot accounts hold amounts below 10^36 units of 10^-%d.", acct->scale),
				 errhint("Switch the account to cold mode.")));
	LWLockAcquire(hot->lock, LW_EXCLUSIVE);
	slot = find_slot(acct->id, relid);
	if (slot < 0)
		slot = alloc_slot(a->id, relid, SLOT_ACTIVE, a->scale, a->unbounded, a->min_balance,
						  a->committed);
	LWLockRelease(hot->lock);
	if (slot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("no room for hot account \"%s\"", acct->code),
				 errdetail("All %d hot-account slots are in use.", hot->nslots),
				 errhint("Raise ledger.max_hot_accounts and restart.")));
}

/*
 * The hot posting step for one account: reserve a debit or note a credit.
 * Raises LD001 when the debit does not fit, LD019 when the account is not
 * (or no longer) hot, LD020 while the escrow is being rebuilt.
 */
void
ledger_hot_apply(LedgerDelta *d)
{
	LedgerAccount *acct = d->account;
	int128		delta;
	int			slot;
	HotSlot    *s;
	int128		available = 0;
	bool		refused = false;
	Oid			relid;

	require_hot_shmem();
	wait_until_ready();
	if (!ledger_numeric_to_scaled(d->delta, acct->scale, &delta))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("amount is too large for hot account \"%s\"", acct->code),
				 errdetail("Hot accounts hold amounts below 10^36 units of 10^-%d.", acct->scale)));
	reserve_entry_space();

	relid = current_relid();
	LWLockAcquire(hot->lock, LW_SHARED);
	slot = find_slot(acct->id, relid);
	if (slot < 0)
	{
		/* a hot account this server has not loaded: load it, look again */
		LWLockRelease(hot->lock);
		load_slot(acct, relid);
		LWLockAcquire(hot->lock, LW_SHARED);
		slot = find_slot(acct->id, relid);
	}
	if (slot < 0 || hot->slots[slot].state != SLOT_ACTIVE)
	{
		LWLockRelease(hot->lock);
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("account \"%s\" is changing mode", acct->code),
				 errdetail("The account was switched between hot and cold while the posting ran."),
				 errhint("Retry the posting.")));
	}
	s = &hot->slots[slot];
	SpinLockAcquire(&s->mutex);
	if (delta < 0)
	{
		available = s->committed - s->reserved;
		if (!s->unbounded && available + delta < s->min_balance)
		{
			s->debits_refused++;
			refused = true;
		}
		else
		{
			s->reserved -= delta;
			s->inflight++;
			s->debits_accepted++;
			push_entry(ENTRY_DEBIT, slot, acct->id, -delta);
		}
	}
	else
	{
		s->inflight++;
		push_entry(ENTRY_CREDIT, slot, acct->id, delta);
	}
	SpinLockRelease(&s->mutex);
	LWLockRelease(hot->lock);

	if (refused)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
				 errmsg("insufficient funds in account \"%s\"", acct->code),
				 errdetail("Account \"%s\" (hot) has %s available above its floor %s; the posting requests %s.",
						   acct->code,
						   ledger_numeric_str(ledger_scaled_to_numeric(available - s->min_balance,
																	   acct->scale)),
						   ledger_numeric_str(acct->min_balance),
						   ledger_numeric_str(ledger_numeric_neg(d->delta)))));
}

/*
 * Wait, up to ledger.hot_wait_ms, until no posting holds an entry on a slot
 * that the caller has closed (CLOSING) to new ones; then LD019.  Every
 * posting that committed on it is then visible to a new snapshot.
 */
static void
wait_drained(int slot, const char *code)
{
	int			waited = 0;
	int32		own = 0;
	int			i;

	/* this transaction's own postings settle with it: don't wait for them */
	for (i = 0; i < nentries; i++)
		if (entries[i].slot == slot &&
			(entries[i].kind == ENTRY_DEBIT || entries[i].kind == ENTRY_CREDIT))
			own++;

	for (;;)
	{
		int32		inflight;

		SpinLockAcquire(&hot->slots[slot].mutex);
		inflight = hot->slots[slot].inflight;
		SpinLockRelease(&hot->slots[slot].mutex);
		if (inflight <= own)
			return;
		if (waited >= ledger_hot_wait_ms)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_MODE_CHANGED),
					 errmsg("hot account \"%s\" still has %d posting(s) in flight", code, inflight - own),
					 errhint("Retry when they have committed or rolled back.")));
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
		waited++;
	}
}

/*
 * Close a hot account's slot to new postings (they fail with LD019) and
 * wait until none of its postings is in flight, so that every committed
 * posting is visible to a new snapshot and C is exactly the journal's sum.
 * Returns false if the account is not hot.  The slot reopens when the
 * calling transaction ends: at commit with C set by ledger_hot_fence_set,
 * at abort unchanged.  Call it before taking any row lock: a posting in
 * flight may be waiting for one.
 */
bool
ledger_hot_fence(int64 account_id, const char *code)
{
	int			slot;

	Oid			relid;

	if (hot == NULL)
		return false;
	wait_until_ready();
	reserve_entry_space();
	relid = current_relid();
	LWLockAcquire(hot->lock, LW_EXCLUSIVE);
	slot = find_slot(account_id, relid);
	if (slot < 0)
	{
		LWLockRelease(hot->lock);
		return false;
	}
	if (hot->slots[slot].state != SLOT_ACTIVE)
	{
		LWLockRelease(hot->lock);
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("hot account \"%s\" is busy with another correction or mode change", code),
				 errhint("Retry.")));
	}
	hot->slots[slot].state = SLOT_CLOSING;
	push_entry(ENTRY_RESET, slot, account_id, 0);
	entries[nentries - 1].amount = hot->slots[slot].committed;
	LWLockRelease(hot->lock);

	wait_drained(slot, code);
	return true;
}

/* The committed balance a fenced account gets when this transaction commits. */
void
ledger_hot_fence_set(int64 account_id, Numeric balance)
{
	int			i;

	for (i = nentries - 1; i >= 0; i--)
	{
		if (entries[i].kind == ENTRY_RESET && entries[i].account_id == account_id)
		{
			if (!ledger_numeric_to_scaled(balance, hot->slots[entries[i].slot].scale,
										  &entries[i].amount))
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
						 errmsg("balance %s is too large for a hot account",
								ledger_numeric_str(balance))));
			return;
		}
	}
	elog(ERROR, "hot account " INT64_FORMAT " is not fenced", account_id);
}

/* ---------------------------------------------------------------------
 * Transaction callbacks: no allocation, no errors, spinlocks only.
 * ---------------------------------------------------------------------
 */

static void
settle(HotEntry *e, bool commit)
{
	HotSlot    *s = &hot->slots[e->slot];

	SpinLockAcquire(&s->mutex);
	if (s->account_id == e->account_id)
	{
		switch (e->kind)
		{
			case ENTRY_DEBIT:
				s->reserved -= e->amount;
				if (commit)
					s->committed -= e->amount;
				s->inflight--;
				break;
			case ENTRY_CREDIT:
				if (commit)
					s->committed += e->amount;
				s->inflight--;
				break;
			case ENTRY_ACTIVATE:
				if (commit)
					s->state = SLOT_ACTIVE;
				else
				{
					s->state = SLOT_FREE;
					s->account_id = 0;
				}
				break;
			case ENTRY_CLOSE:
				if (commit)
				{
					s->state = SLOT_FREE;
					s->account_id = 0;
				}
				else
					s->state = SLOT_ACTIVE;
				break;
			case ENTRY_RESET:
				if (commit)
					s->committed = e->amount;
				s->state = SLOT_ACTIVE;
				break;
		}
	}
	SpinLockRelease(&s->mutex);
}

static void
hot_xact_callback(XactEvent event, void *arg)
{
	int			i;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (nentries > 0)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_HOT_PREPARE),
						 errmsg("cannot PREPARE a transaction that posted to a hot account"),
						 errdetail("The transaction holds %d hot-account reservation(s) in this backend's shared-memory escrow.",
								   nentries),
						 errhint("Commit it directly, or switch the account to cold mode for two-phase commit.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (nentries > 0 && hot != NULL)
			{
				bool		commit = (event == XACT_EVENT_COMMIT ||
									  event == XACT_EVENT_PARALLEL_COMMIT);

				for (i = 0; i < nentries; i++)
					settle(&entries[i], commit);
			}
			nentries = 0;
			break;
		default:
			break;
	}
}

static void
hot_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	int			i;
	int			keep = 0;

	if (nentries == 0)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		for (i = 0; i < nentries; i++)
			if (entries[i].subid == mySubid)
				entries[i].subid = parentSubid;
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		for (i = 0; i < nentries; i++)
		{
			if (entries[i].subid == mySubid)
				settle(&entries[i], false);
			else
				entries[keep++] = entries[i];
		}
		nentries = keep;
	}
}

/* ---------------------------------------------------------------------
 * Loading (the worker, after a start) and mode switches
 * ---------------------------------------------------------------------
 */

/* Install an ACTIVE slot while loading; HotLock held exclusively. */
static int
alloc_slot(int64 account_id, Oid relid, SlotState state, int scale, bool unbounded,
		   int128 min_balance, int128 committed)
{
	int			i;

	for (i = 0; i < hot->nslots; i++)
	{
		HotSlot    *s = &hot->slots[i];

		/* free, or left active by an older incarnation of the extension */
		if (s->state != SLOT_FREE && !(s->state == SLOT_ACTIVE && s->relid != relid))
			continue;
		SpinLockAcquire(&s->mutex);
		s->state = state;
		s->account_id = account_id;
		s->relid = relid;
		s->scale = scale;
		s->unbounded = unbounded;
		s->min_balance = min_balance;
		s->committed = committed;
		s->reserved = 0;
		s->inflight = 0;
		s->debits_accepted = 0;
		s->debits_refused = 0;
		SpinLockRelease(&s->mutex);
		return i;
	}
	return -1;
}

/*
 * Rebuild the escrow from the tables after a start, before any hot
 * posting is accepted: read every hot account first (inside the worker's
 * transaction and SPI), then take HotLock only to install the slots and
 * mark the escrow ready.  Accounts that do not fit (no free slot, amounts
 * too large) are left without a slot and logged; a posting loads them
 * when there is room (load_slot).
 */
void
ledger_hot_load(void)
{
	LoadedAccount *a;
	int			n = read_hot_accounts((Datum) 0, true, &a);
	Oid			relid = current_relid();
	int			i;
	int			missed = 0;

	LWLockAcquire(hot->lock, LW_EXCLUSIVE);
	for (i = 0; i < hot->nslots; i++)
	{
		hot->slots[i].state = SLOT_FREE;
		hot->slots[i].account_id = 0;
	}
	for (i = 0; i < n; i++)
	{
		if (!a[i].fits ||
			alloc_slot(a[i].id, relid, SLOT_ACTIVE, a[i].scale, a[i].unbounded,
					   a[i].min_balance, a[i].committed) < 0)
			missed++;
	}
	hot->ready = true;
	LWLockRelease(hot->lock);
	if (missed > 0)
		ereport(WARNING,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("%d of %d hot accounts could not be loaded into shared memory", missed, n),
				 errhint("Raise ledger.max_hot_accounts; postings to them load them when a slot is free.")));
}

/* The extension (at a version with hot accounts) is not installed: nothing to load. */
void
ledger_hot_load_empty(void)
{
	LWLockAcquire(hot->lock, LW_EXCLUSIVE);
	hot->ready = true;
	LWLockRelease(hot->lock);
}

bool
ledger_hot_is_ready(void)
{
	return hot != NULL && hot->ready;
}

LedgerWorkerStats *
ledger_hot_worker_stats(void)
{
	return hot ? &hot->worker : NULL;
}

static SPIPlanPtr mode_lock_plan = NULL;
static SPIPlanPtr mode_set_plan = NULL;

PG_FUNCTION_INFO_V1(ledger_set_account_mode);

Datum
ledger_set_account_mode(PG_FUNCTION_ARGS)
{
	char	   *code;
	char	   *mode;
	bool		to_hot;
	Datum		values[2];
	bool		isnull;
	int64		id;
	bool		was_hot;
	int			scale;
	bool		unbounded;
	Numeric		min_balance = NULL;
	Numeric		balance;
	int128		min_scaled = 0;
	int128		committed;
	int			slot;
	Oid			relid = current_relid();

	LEDGER_REQUIRE_ARG(0, "account");
	LEDGER_REQUIRE_ARG(1, "mode");
	code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	mode = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(mode, "hot") != 0 && strcmp(mode, "cold") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("mode must be 'hot' or 'cold'"),
				 errdetail("Account \"%s\", mode \"%s\".", code, mode)));
	to_hot = strcmp(mode, "hot") == 0;

	require_hot_shmem();
	if (ledger_database == NULL || strcmp(get_database_name(MyDatabaseId), ledger_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("hot accounts are served in database \"%s\" only",
						ledger_database ? ledger_database : ""),
				 errdetail("This is database \"%s\".", get_database_name(MyDatabaseId)),
				 errhint("Set ledger.database to this database and restart.")));
	wait_until_ready();

	SPI_connect();
	ledger_fold_begin();
	if (mode_set_plan == NULL)
	{
		mode_lock_plan = ledger_prepare(
			"SELECT a.id, b.hot, s.scale, a.min_balance, "
			"       b.balance + coalesce((SELECT sum(q.credits - q.debits) FROM ledger.hot_entry q "
			"                             WHERE q.account_id = a.id), 0) "
			"  FROM ledger.account a "
			"  JOIN ledger.account_balance b ON b.account_id = a.id "
			"  JOIN ledger.asset s ON s.code = a.asset "
			" WHERE a.code = $1 FOR UPDATE OF b",
			1, (Oid[]) {TEXTOID});
		mode_set_plan = ledger_prepare(
			"WITH b AS (UPDATE ledger.account_balance SET hot = $2 WHERE account_id = $1) "
			"UPDATE ledger.account SET mode = CASE WHEN $2 THEN 'hot' ELSE 'cold' END WHERE id = $1",
			2, (Oid[]) {INT8OID, BOOLOID});
	}
	values[0] = CStringGetTextDatum(code);
	ledger_spi_exec(mode_lock_plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
				 errmsg("account \"%s\" does not exist", code)));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	was_hot = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	scale = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	values[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	unbounded = isnull;
	if (!unbounded)
		min_balance = DatumGetNumericCopy(values[1]);
	balance = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5,
												&isnull));

	if (was_hot == to_hot)
	{
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(mode));
	}

	reserve_entry_space();
	if (to_hot)
	{
		if ((!unbounded && !ledger_numeric_to_scaled(min_balance, scale, &min_scaled)) ||
			!ledger_numeric_to_scaled(balance, scale, &committed))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
					 errmsg("account \"%s\" holds amounts too large for hot mode", code)));
		LWLockAcquire(hot->lock, LW_EXCLUSIVE);

		/*
		 * We hold the balance row lock and the table says cold, so a slot
		 * still naming this account is stale (the extension was dropped
		 * and created again since the server started): free it.
		 */
		slot = find_slot(id, relid);
		if (slot >= 0)
		{
			SpinLockAcquire(&hot->slots[slot].mutex);
			hot->slots[slot].state = SLOT_FREE;
			hot->slots[slot].account_id = 0;
			SpinLockRelease(&hot->slots[slot].mutex);
		}
		slot = alloc_slot(id, relid, SLOT_PENDING, scale, unbounded, min_scaled, committed);
		if (slot >= 0)
			push_entry(ENTRY_ACTIVATE, slot, id, 0);
		LWLockRelease(hot->lock);
		if (slot < 0)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
					 errmsg("no room for another hot account"),
					 errdetail("All %d hot-account slots are in use.", hot->nslots),
					 errhint("Raise ledger.max_hot_accounts and restart.")));
	}
	else
	{
		LWLockAcquire(hot->lock, LW_EXCLUSIVE);
		slot = find_slot(id, relid);
		if (slot >= 0 && hot->slots[slot].state == SLOT_ACTIVE)
		{
			hot->slots[slot].state = SLOT_CLOSING;
			push_entry(ENTRY_CLOSE, slot, id, 0);
		}
		LWLockRelease(hot->lock);
		if (slot >= 0)
			wait_drained(slot, code);
		/* everything committed is now in hot_entry: fold it in */
		ledger_fold_account(id, INT_MAX);
	}

	values[0] = Int64GetDatum(id);
	values[1] = BoolGetDatum(to_hot);
	ledger_spi_exec(mode_set_plan, values, NULL, SPI_OK_UPDATE);
	ledger_fold_end();
	SPI_finish();

	PG_RETURN_TEXT_P(cstring_to_text(to_hot ? "cold" : "hot"));
}

PG_FUNCTION_INFO_V1(ledger_hot_accounts);

Datum
ledger_hot_accounts(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i;
	Oid			relid;

	InitMaterializedSRF(fcinfo, 0);
	if (hot == NULL)
		return (Datum) 0;
	relid = current_relid();

	SPI_connect();
	for (i = 0; i < hot->nslots; i++)
	{
		HotSlot    *s = &hot->slots[i];
		HotSlot		copy;
		Datum		values[9];
		bool		nulls[9] = {false, false, false, false, false, false, false, false, false};
		char	   *code;

		SpinLockAcquire(&s->mutex);
		copy = *s;
		SpinLockRelease(&s->mutex);
		if (copy.state == SLOT_FREE || copy.relid != relid)
			continue;

		code = SPI_execute_with_args("SELECT code FROM ledger.account WHERE id = $1", 1,
									 (Oid[]) {INT8OID}, (Datum[]) {Int64GetDatum(copy.account_id)},
									 NULL, true, 1) == SPI_OK_SELECT && SPI_processed == 1 ?
			SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1) : NULL;
		values[0] = code ? CStringGetTextDatum(code) : (Datum) 0;
		nulls[0] = code == NULL;
		values[1] = Int64GetDatum(copy.account_id);
		values[2] = NumericGetDatum(ledger_scaled_to_numeric(copy.committed, copy.scale));
		values[3] = NumericGetDatum(ledger_scaled_to_numeric(copy.reserved, copy.scale));
		if (copy.unbounded)
			nulls[4] = true;
		else
			values[4] = NumericGetDatum(ledger_scaled_to_numeric(copy.committed - copy.reserved - copy.min_balance,
																 copy.scale));
		values[5] = Int32GetDatum(copy.inflight);
		values[6] = Int64GetDatum(copy.debits_accepted);
		values[7] = Int64GetDatum(copy.debits_refused);
		values[8] = CStringGetTextDatum(slot_state_names[copy.state]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}

void
ledger_hot_init(void)
{
	DefineCustomIntVariable("ledger.hot_wait_ms",
							"How long a hot posting waits for the escrow to be rebuilt after a restart before failing with LD020.",
							"Also how long switching an account to cold waits for its postings in flight.",
							&ledger_hot_wait_ms,
							5000, 0, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Hot accounts need shared memory and the fold worker, so they exist
	 * only when the library is preloaded; their postmaster settings can
	 * only be defined then.  Loaded later, cold accounts work as ever and
	 * hot mode is refused with LD021.
	 */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("ledger.max_hot_accounts",
							"Largest number of accounts that can be in hot mode at once.",
							"Each hot account takes one slot of shared memory.",
							&ledger_max_hot_accounts,
							64, 0, 100000,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
	DefineCustomStringVariable("ledger.database",
							   "The database whose hot accounts the fold worker serves.",
							   "Hot mode is available in this database only.",
							   &ledger_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = hot_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = hot_shmem_startup;
	RegisterXactCallback(hot_xact_callback, NULL);
	RegisterSubXactCallback(hot_subxact_callback, NULL);
}
