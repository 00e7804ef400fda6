/*-------------------------------------------------------------------------
 *
 * escrow.h
 *	  The hot-account family's shared memory and what its files share:
 *	  escrow.c (slots, the posting step, the transaction callbacks),
 *	  escrowload.c (loading, corrections' fences) and hotmode.c (mode
 *	  switches, hot_accounts()).  Other files use the API in ledger.h.
 *
 * Locking rules (asserted where they are relied on):
 *	- HotLock (escrow->lock) guards slot membership: state, account_id,
 *	  relid, generation, scale, unbounded and min_balance.  These change
 *	  only with HotLock held exclusively and the slot's spinlock held; they
 *	  may be read with either held.
 *	- A slot's spinlock guards its money: committed, reserved, pending,
 *	  inflight, settled and the counters, for a few arithmetic operations
 *	  at a time.
 *	- HotLock is taken before a spinlock, never after.  Nothing that can
 *	  fail (a query, an allocation, an ereport) runs while either is held.
 *
 *-------------------------------------------------------------------------
 */
#ifndef ESCROW_H
#define ESCROW_H

#include "ledger.h"

#include "storage/lwlock.h"
#include "storage/spin.h"

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_PENDING,				/* being made hot by an open transaction */
	SLOT_ACTIVE,
	SLOT_CLOSING,				/* being made cold by an open transaction */
	SLOT_FENCED					/* being corrected by an open transaction */
} SlotState;

typedef struct HotSlot
{
	slock_t		mutex;
	/* membership (see the locking rules) */
	SlotState	state;
	int64		account_id;
	Oid			dboid;			/* the database it belongs to */
	Oid			relid;			/* ledger.account_balance it belongs to */
	uint64		generation;		/* moves each time the slot is taken or freed */
	int			scale;
	bool		unbounded;
	int128		min_balance;
	/* money, scaled by 10^scale, under mutex */
	int128		committed;		/* C */
	int128		reserved;		/* R: debits of open transactions */
	int128		pending;		/* P: credits of open transactions */
	int32		inflight;		/* open postings holding entries on it */
	int64		settled;		/* postings settled on it, ever */
	int64		debits_accepted;
	int64		debits_refused;
} HotSlot;

typedef struct HotShared
{
	LWLock	   *lock;			/* HotLock */
	bool		ready;			/* C loaded after the last start */
	int			nslots;
	LedgerWorkerStats worker;
	HotSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} HotShared;

/*
 * What the open transaction did to slots, applied by the commit callback
 * and undone by the abort callbacks.  Entries name their slot's
 * generation: one whose slot was freed and taken again since settles
 * nothing.
 */
typedef enum EntryKind
{
	ENTRY_DEBIT,				/* reserved; moves into C at commit */
	ENTRY_CREDIT,				/* pending; added to C at commit */
	ENTRY_ACTIVATE,				/* PENDING -> ACTIVE at commit, freed at abort */
	ENTRY_CLOSE,				/* CLOSING -> FREE at commit, ACTIVE at abort */
	ENTRY_RESET					/* FENCED -> ACTIVE; C = amount at commit */
} EntryKind;

extern HotShared *escrow;
extern int	ledger_hot_wait_ms;
extern const char *const ledger_slot_state_names[];

extern void ledger_escrow_require(void);
extern bool ledger_escrow_served(void);
extern void ledger_escrow_require_served(const char *code);
extern Oid	ledger_escrow_relid(void);
extern void ledger_escrow_wait_ready(void);
extern int	ledger_escrow_find(int64 account_id, Oid relid);
extern int	ledger_escrow_alloc(int64 account_id, Oid relid, SlotState state, int scale,
								bool unbounded, int128 min_balance, int128 committed);
extern void ledger_escrow_set_state(int slot, SlotState state);
extern void ledger_escrow_reserve_entries(void);
extern void ledger_escrow_push(EntryKind kind, int slot, int64 account_id, int128 amount);
extern void ledger_escrow_wait_drained(int slot, const char *code);
extern void ledger_escrow_set_reset(int64 account_id, int128 amount);
extern bool ledger_escrow_own(int slot, EntryKind kind);

#endif							/* ESCROW_H */
