/*-------------------------------------------------------------------------
 *
 * escrow.c
 *	  Hot accounts' balances in shared memory: the slot table, its entries
 *	  for the open transaction, and the transaction callbacks that settle
 *	  them.  The posting step is escrowapply.c.
 *
 * A hot account's balance row is not updated by postings.  Instead shared
 * memory holds, per hot account, the committed balance C, the debits R and
 * credits P of transactions still open, as integers scaled by 10^scale
 * (int128: the commit callback must not allocate).
 *
 *	- A debit is accepted only if C - R - amount >= min_balance, and is added
 *	  to R under the slot's spinlock, before the posting writes anything.
 *	- A credit is added to P; it counts after commit.
 *	- Bounds: a debit must also keep C - R above -LEDGER_SCALED_LIMIT and a
 *	  credit keep C + P below LEDGER_SCALED_LIMIT (10^36), so that whatever
 *	  commits and aborts, C stays within the bound: the callbacks cannot
 *	  overflow and a restart can always reload C (LD022 otherwise).
 *	- At commit (XACT_EVENT_COMMIT, after the commit record is flushed and
 *	  the transaction is visible) each debit moves from R into C and each
 *	  credit from P into C.  On abort they are released; on subtransaction
 *	  abort only those made in the aborted subtransaction.
 *	- PREPARE TRANSACTION with hot entries is refused (LD018): they would
 *	  outlive the backend that holds them.
 * The posting also appends a row per hot account to ledger.hot_entry; the
 * fold worker folds committed rows into the balance rows.  The journal
 * stays the only source of truth: after any start C is rebuilt from the
 * folded balance plus the unfolded rows (escrowload.c) before hot postings
 * are accepted (LD020 until then).
 *
 * Locking: see escrow.h.  The callbacks take spinlocks, and HotLock for
 * the membership changes of mode switches and corrections; they never fail.
 *
 *-------------------------------------------------------------------------
 */
#include "escrow.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "commands/dbcommands.h"
#include "utils/guc.h"
#include "utils/memutils.h"

/* GUCs */
int			ledger_max_hot_accounts = 64;
int			ledger_hot_wait_ms = 5000;
char	   *ledger_database = NULL;

const char *const ledger_slot_state_names[] = {"free", "pending", "active", "closing", "fenced"};

HotShared  *escrow = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

typedef struct HotEntry
{
	EntryKind	kind;
	int			slot;
	int64		account_id;
	uint64		generation;
	int128		amount;
	SubTransactionId subid;
} HotEntry;

static HotEntry *entries = NULL;
static int	nentries = 0;
static int	maxentries = 0;
/* the transaction the entries belong to: they never outlive it */
static LocalTransactionId entries_lxid = InvalidLocalTransactionId;

static Size
escrow_size(void)
{
	return add_size(offsetof(HotShared, slots),
					mul_size(sizeof(HotSlot), ledger_max_hot_accounts));
}

static void
escrow_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(escrow_size());
	RequestNamedLWLockTranche("ledger_hot", 1);
}

static void
escrow_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	escrow = ShmemInitStruct("ledger hot accounts", escrow_size(), &found);
	if (!found)
	{
		memset(escrow, 0, escrow_size());
		escrow->lock = &(GetNamedLWLockTranche("ledger_hot"))->lock;
		escrow->ready = false;
		escrow->nslots = ledger_max_hot_accounts;
		SpinLockInit(&escrow->worker.mutex);
		for (i = 0; i < escrow->nslots; i++)
			SpinLockInit(&escrow->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
ledger_hot_available(void)
{
	return escrow != NULL;
}

void
ledger_escrow_require(void)
{
	if (escrow == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("hot accounts require the ledger library to be preloaded"),
				 errhint("Add 'ledger' to shared_preload_libraries and restart the server."),
					 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_HOT_UNAVAILABLE), NULL)));
}

/*
 * Is this the database ledger.database names, whose hot accounts this
 * server serves?  A backend's database never changes: asked once.
 */
bool
ledger_escrow_served(void)
{
	static int	served = -1;

	if (served < 0)
	{
		char	   *name = get_database_name(MyDatabaseId);

		served = ledger_database != NULL && name != NULL && strcmp(name, ledger_database) == 0;
	}
	return served == 1;
}

/* Refuse hot postings and mode switches to hot outside ledger.database. */
void
ledger_escrow_require_served(const char *code)
{
	ledger_escrow_require();
	if (!ledger_escrow_served())
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("hot accounts are served in database \"%s\" only",
						ledger_database ? ledger_database : ""),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_UNAVAILABLE,
													 LEDGER_FACT_TEXT("account", code), NULL),
										"Account \"%s\"; this is database \"%s\".", code,
						   get_database_name(MyDatabaseId)),
				 errhint("Switch the account to cold mode here, or set ledger.database to this database and restart.")));
}

/*
 * The OID of ledger.account_balance identifies the extension's incarnation:
 * slots left by an extension that was dropped (and maybe created again)
 * belong to an older one and count as free.  InvalidOid if not installed.
 */
Oid
ledger_escrow_relid(void)
{
	const LedgerSchema *s = ledger_schema();

	return s ? s->account_balance : InvalidOid;
}

/* An account's slot in this database, -1 if none.  HotLock held. */
int
ledger_escrow_find(int64 account_id, Oid relid)
{
	int			i;

	Assert(LWLockHeldByMe(escrow->lock));
	for (i = 0; i < escrow->nslots; i++)
		if (escrow->slots[i].state != SLOT_FREE && escrow->slots[i].account_id == account_id &&
			escrow->slots[i].dboid == MyDatabaseId && escrow->slots[i].relid == relid)
			return i;
	return -1;
}

/*
 * Take a free slot, or one left in this database by an older incarnation
 * of the extension, for an account; -1 if there is none.  HotLock held
 * exclusively.
 */
int
ledger_escrow_alloc(int64 account_id, Oid relid, SlotState state, int scale, bool unbounded,
					int128 min_balance, int128 committed)
{
	int			i;

	Assert(LWLockHeldByMeInMode(escrow->lock, LW_EXCLUSIVE));
	Assert(state == SLOT_ACTIVE || state == SLOT_PENDING);
	Assert(committed < LEDGER_SCALED_LIMIT && committed > -LEDGER_SCALED_LIMIT);
	for (i = 0; i < escrow->nslots; i++)
	{
		HotSlot    *s = &escrow->slots[i];

		if (s->state != SLOT_FREE &&
			!(s->state == SLOT_ACTIVE && s->dboid == MyDatabaseId && s->relid != relid))
			continue;
		SpinLockAcquire(&s->mutex);
		s->state = state;
		s->account_id = account_id;
		s->dboid = MyDatabaseId;
		s->relid = relid;
		s->generation++;
		s->scale = scale;
		s->unbounded = unbounded;
		s->min_balance = min_balance;
		s->committed = committed;
		s->reserved = 0;
		s->pending = 0;
		s->inflight = 0;
		s->debits_accepted = 0;
		s->debits_refused = 0;
		SpinLockRelease(&s->mutex);
		return i;
	}
	return -1;
}

/* Change a slot's state; freeing it moves its generation.  HotLock exclusive. */
void
ledger_escrow_set_state(int slot, SlotState state)
{
	HotSlot    *s = &escrow->slots[slot];

	Assert(LWLockHeldByMeInMode(escrow->lock, LW_EXCLUSIVE));
	SpinLockAcquire(&s->mutex);
	s->state = state;
	if (state == SLOT_FREE)
	{
		s->account_id = 0;
		s->generation++;
	}
	SpinLockRelease(&s->mutex);
}

/*
 * Wait, up to ledger.hot_wait_ms, until the worker has rebuilt the escrow
 * after a start; then LD020.
 */
void
ledger_escrow_wait_ready(void)
{
	int			waited = 0;

	while (!escrow->ready)
	{
		if (waited >= ledger_hot_wait_ms)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_HOT_NOT_READY),
					 errmsg("hot account balances are being rebuilt after a restart"),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_NOT_READY,
														  LEDGER_FACT_INT("waited_ms", waited),
														  NULL),
											"The fold worker has not finished loading hot accounts within %d ms.",
							   ledger_hot_wait_ms),
					 errhint("Retry the posting; if this persists, check that the ledger fold worker runs in database \"%s\".",
							 ledger_database)));
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
		waited += 10;
	}
}

/* Make room for one more entry; called before any slot is touched. */
void
ledger_escrow_reserve_entries(void)
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

/* Note an entry; room was reserved, so this cannot fail.  Under HotLock. */
void
ledger_escrow_push(EntryKind kind, int slot, int64 account_id, int128 amount)
{
	HotEntry   *e;

	Assert(nentries < maxentries);
	Assert(LWLockHeldByMe(escrow->lock));
	Assert(nentries == 0 || entries_lxid == MyProc->lxid);
	entries_lxid = MyProc->lxid;
	e = &entries[nentries++];
	e->kind = kind;
	e->slot = slot;
	e->account_id = account_id;
	e->generation = escrow->slots[slot].generation;
	e->amount = amount;
	e->subid = GetCurrentSubTransactionId();
}

/*
 * Wait, up to ledger.hot_wait_ms, until no other posting holds an entry on
 * a slot the caller has closed or fenced; then LD019.  Every posting that
 * committed on it is then visible to a new snapshot.
 */
void
ledger_escrow_wait_drained(int slot, const char *code)
{
	int			waited = 0;
	int32		own = 0;
	int			i;

	/* this transaction's own postings settle with it: don't wait for them */
	for (i = 0; i < nentries; i++)
		if (entries[i].slot == slot && entries[i].generation == escrow->slots[slot].generation &&
			(entries[i].kind == ENTRY_DEBIT || entries[i].kind == ENTRY_CREDIT))
			own++;

	for (;;)
	{
		int32		inflight;

		SpinLockAcquire(&escrow->slots[slot].mutex);
		inflight = escrow->slots[slot].inflight;
		SpinLockRelease(&escrow->slots[slot].mutex);
		Assert(inflight >= own);
		if (inflight <= own)
			return;
		if (waited >= ledger_hot_wait_ms)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_MODE_CHANGED),
					 errmsg("hot account \"%s\" still has %d posting(s) in flight", code, inflight - own),
					 errhint("Retry when they have committed or rolled back."),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", code), NULL), NULL)));
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
		waited++;
	}
}

/*
 * The balance C takes, when this transaction commits, on a slot it fenced
 * (escrowload.c).
 */
void
ledger_escrow_set_reset(int64 account_id, int128 amount)
{
	int			i;

	for (i = nentries - 1; i >= 0; i--)
	{
		if (entries[i].kind == ENTRY_RESET && entries[i].account_id == account_id)
		{
			entries[i].amount = amount;
			return;
		}
	}
	elog(ERROR, "hot account " INT64_FORMAT " was not fenced by this transaction", account_id);
}

/*
 * Did this transaction put the slot, as it is now, in its state with an
 * entry of this kind (a fence: ENTRY_RESET, a switch: ENTRY_CLOSE or
 * ENTRY_ACTIVATE)?  HotLock held.
 */
bool
ledger_escrow_own(int slot, EntryKind kind)
{
	int			i;

	Assert(LWLockHeldByMe(escrow->lock));
	for (i = 0; i < nentries; i++)
		if (entries[i].slot == slot && entries[i].kind == kind &&
			entries[i].generation == escrow->slots[slot].generation)
			return true;
	return false;
}

/* ---------------------------------------------------------------------
 * Transaction callbacks: no allocation, no errors.
 * ---------------------------------------------------------------------
 */

static void
settle(HotEntry *e, bool commit)
{
	HotSlot    *s = &escrow->slots[e->slot];
	bool		membership = (e->kind == ENTRY_ACTIVATE || e->kind == ENTRY_CLOSE ||
							  e->kind == ENTRY_RESET);

	if (membership)
		LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&s->mutex);
	if (s->account_id == e->account_id && s->generation == e->generation)
	{
		switch (e->kind)
		{
			case ENTRY_DEBIT:
				s->reserved -= e->amount;
				if (commit)
					s->committed -= e->amount;
				s->inflight--;
				s->settled++;
				break;
			case ENTRY_CREDIT:
				s->pending -= e->amount;
				if (commit)
					s->committed += e->amount;
				s->inflight--;
				s->settled++;
				break;
			case ENTRY_ACTIVATE:
				Assert(s->state == SLOT_PENDING);
				if (commit)
					s->state = SLOT_ACTIVE;
				else
				{
					s->state = SLOT_FREE;
					s->account_id = 0;
					s->generation++;
				}
				break;
			case ENTRY_CLOSE:
				Assert(s->state == SLOT_CLOSING);
				if (commit)
				{
					s->state = SLOT_FREE;
					s->account_id = 0;
					s->generation++;
				}
				else
					s->state = SLOT_ACTIVE;
				break;
			case ENTRY_RESET:
				Assert(s->state == SLOT_FENCED);
				if (commit)
					s->committed = e->amount;
				s->state = SLOT_ACTIVE;
				s->settled++;
				break;
		}
		Assert(s->inflight >= 0 && s->reserved >= 0 && s->pending >= 0);
		Assert(s->committed < LEDGER_SCALED_LIMIT && s->committed > -LEDGER_SCALED_LIMIT);
	}
	SpinLockRelease(&s->mutex);
	if (membership)
		LWLockRelease(escrow->lock);
}

static void
escrow_xact_callback(XactEvent event, void *arg)
{
	int			i;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (nentries > 0)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_HOT_PREPARE),
						 errmsg("cannot PREPARE a transaction that posted to a hot account"),
						 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_PREPARE,
															  LEDGER_FACT_INT("reservations", nentries),
															  NULL),
												"The transaction holds %d hot-account reservation(s) in this backend's shared-memory escrow.",
								   nentries),
						 errhint("Commit it directly, or switch the account to cold mode for two-phase commit.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (nentries > 0 && escrow != NULL)
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
escrow_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
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
 * Readers
 * ---------------------------------------------------------------------
 */

bool
ledger_hot_is_ready(void)
{
	return escrow != NULL && escrow->ready;
}

LedgerWorkerStats *
ledger_hot_worker_stats(void)
{
	return escrow ? &escrow->worker : NULL;
}

/*
 * A copy of every hot account's escrow of the installed extension, each
 * read under its spinlock, in slot order; returns how many.
 */
int
ledger_escrow_view(LedgerEscrowView **out)
{
	Oid			relid = ledger_escrow_relid();
	int			n = 0;
	int			i;

	*out = palloc0(sizeof(LedgerEscrowView) * Max(escrow ? escrow->nslots : 0, 1));
	if (escrow == NULL)
		return 0;
	for (i = 0; i < escrow->nslots; i++)
	{
		HotSlot    *s = &escrow->slots[i];
		LedgerEscrowView *v = &(*out)[n];
		bool		ours;

		SpinLockAcquire(&s->mutex);
		ours = s->state != SLOT_FREE && s->relid == relid;
		v->state = (int) s->state;
		v->active = s->state == SLOT_ACTIVE;
		v->account_id = s->account_id;
		v->generation = s->generation;
		v->scale = s->scale;
		v->unbounded = s->unbounded;
		v->min_balance = s->min_balance;
		v->committed = s->committed;
		v->reserved = s->reserved;
		v->pending = s->pending;
		v->inflight = s->inflight;
		v->settled = s->settled;
		v->debits_accepted = s->debits_accepted;
		v->debits_refused = s->debits_refused;
		SpinLockRelease(&s->mutex);
		if (ours)
			n++;
	}
	return n;
}

void
ledger_hot_init(void)
{
	DefineCustomIntVariable("ledger.hot_wait_ms",
							"How long a hot posting waits for the escrow to be rebuilt after a restart before failing with LD020.",
							"Also how long a mode switch or a correction waits for a hot account's postings in flight, or for another correction of it, before failing with LD019.",
							&ledger_hot_wait_ms,
							5000, 0, 600000,
							PGC_SUSET,
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
	shmem_request_hook = escrow_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = escrow_shmem_startup;
	RegisterXactCallback(escrow_xact_callback, NULL);
	RegisterSubXactCallback(escrow_subxact_callback, NULL);
}
