/*-------------------------------------------------------------------------
 *
 * escrowapply.c
 *	  The hot posting step: a debit reserved against a hot account's
 *	  escrow, or a credit noted, in shared memory, before the posting
 *	  writes anything (escrow.c settles them at commit or abort).
 *
 *	- A debit is accepted only if C - R - amount >= min_balance, and is
 *	  added to R.  A credit is added to P.
 *	- Bounds: a debit must also keep C - R above -LEDGER_SCALED_LIMIT and a
 *	  credit keep C + P below LEDGER_SCALED_LIMIT (10^36), so that whatever
 *	  commits and aborts, C stays within the bound: the callbacks cannot
 *	  overflow and a restart can always reload C (LD022 otherwise).
 *	- An account without a slot on this server is the caller's to load
 *	  (escrowload.c); one whose slot is closing, pending or fenced refuses
 *	  the posting (LD019), saying which.
 *
 * Locking: HotLock shared to find the slot, then its spinlock for the
 * arithmetic (escrow.h); every ereport comes after both are released.
 *
 *-------------------------------------------------------------------------
 */
#include "escrow.h"

/* Why a slot takes no posting now, for the caller's LD019. */
static const char *
busy_reason(SlotState state)
{
	switch (state)
	{
		case SLOT_FENCED:
			return "The account is being corrected (invalidate, rebuild_balances or a reconcile repair); it takes postings again when the correction commits.";
		case SLOT_PENDING:
			return "The account is being switched to hot mode.";
		default:
			return "The account is being switched to cold mode.";
	}
}

/*
 * The hot posting step for one account: reserve a debit or note a credit.
 * Returns false, touching nothing, when this server has no slot for the
 * account (the caller loads it: escrowload.c).  Raises LD001 when the
 * debit does not fit, LD022 when the escrow's bound would be crossed,
 * LD019 when the account is changing mode or being corrected, LD020 while
 * the escrow is being rebuilt.
 */
bool
ledger_hot_apply(LedgerDelta *d)
{
	LedgerAccount *acct = d->account;
	int128		delta;
	int			slot;
	HotSlot    *s;
	int128		available = 0;
	int128		total = 0;
	int128		floor = 0;
	bool		unbounded;
	int			scale;
	SlotState	state;
	enum
	{
		APPLIED, REFUSED, OUT_OF_RANGE
	}			outcome = APPLIED;
	Oid			relid;

	ledger_escrow_require_served(acct->code);
	ledger_escrow_wait_ready();
	if (!ledger_numeric_to_scaled(d->delta, acct->scale, &delta))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_OUT_OF_RANGE),
				 errmsg("amount is too large for hot account \"%s\"", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_OUT_OF_RANGE,
													  LEDGER_FACT_TEXT("account", acct->code),
													  LEDGER_FACT_TEXT("asset", acct->asset),
													  LEDGER_FACT_AMOUNT("amount", d->delta),
													  LEDGER_FACT_INT("scale", acct->scale),
													  NULL),
										"Hot accounts hold amounts below 10^36 units of 10^-%d; the posting moves %s.",
						   acct->scale, ledger_numeric_str(d->delta))));
	ledger_escrow_reserve_entries();

	relid = ledger_escrow_relid();
	LWLockAcquire(escrow->lock, LW_SHARED);
	slot = ledger_escrow_find(acct->id, relid);
	if (slot < 0)
	{
		LWLockRelease(escrow->lock);
		return false;
	}
	s = &escrow->slots[slot];
	state = s->state;
	scale = s->scale;
	unbounded = s->unbounded;
	if (state == SLOT_ACTIVE && scale != acct->scale)
	{
		/* the asset was dropped and made again with another scale */
		LWLockRelease(escrow->lock);
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("hot account \"%s\" changed under its escrow", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", acct->code), NULL), "The escrow counts in units of 10^-%d, the account's asset in units of 10^-%d.",
						   scale, acct->scale),
				 errhint("Switch the account to cold mode and back.")));
	}
	if (state != SLOT_ACTIVE)
	{
		LWLockRelease(escrow->lock);
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("hot account \"%s\" takes no postings for the moment", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", acct->code), LEDGER_FACT_TEXT("state", ledger_slot_state_names[state]), NULL), "%s", busy_reason(state)),
				 errhint("Retry the posting.")));
	}
	SpinLockAcquire(&s->mutex);
	floor = s->min_balance;
	if (delta < 0)
	{
		available = s->committed - s->reserved;
		total = available;
		if (!unbounded && available + delta < floor)
		{
			s->debits_refused++;
			outcome = REFUSED;
		}
		else if (available + delta <= -LEDGER_SCALED_LIMIT)
			outcome = OUT_OF_RANGE;
		else
		{
			s->reserved -= delta;
			s->inflight++;
			s->debits_accepted++;
			ledger_escrow_push(ENTRY_DEBIT, slot, acct->id, -delta);
		}
	}
	else
	{
		total = s->committed + s->pending;
		if (total + delta >= LEDGER_SCALED_LIMIT)
			outcome = OUT_OF_RANGE;
		else
		{
			s->pending += delta;
			s->inflight++;
			ledger_escrow_push(ENTRY_CREDIT, slot, acct->id, delta);
		}
	}
	SpinLockRelease(&s->mutex);
	LWLockRelease(escrow->lock);

	/* the escrow decided: its floor, not the account row's, is the one to name */
	if (outcome == REFUSED)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
				 errmsg("insufficient funds in account \"%s\"", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INSUFFICIENT_FUNDS,
													 LEDGER_FACT_TEXT("account", acct->code),
													 LEDGER_FACT_TEXT("asset", acct->asset),
													 LEDGER_FACT_AMOUNT("balance", ledger_scaled_to_numeric(available, scale)),
													 LEDGER_FACT_AMOUNT("floor", ledger_scaled_to_numeric(floor, scale)),
													 LEDGER_FACT_AMOUNT("available", ledger_scaled_to_numeric(available - floor, scale)),
													 LEDGER_FACT_AMOUNT("requested", ledger_numeric_neg(d->delta)),
													 NULL),
										"Account \"%s\" (hot) has %s available above its floor %s; the posting requests %s.",
						   acct->code,
						   ledger_numeric_str(ledger_scaled_to_numeric(available - floor, scale)),
						   ledger_numeric_str(ledger_scaled_to_numeric(floor, scale)),
						   ledger_numeric_str(ledger_numeric_neg(d->delta)))));
	if (outcome == OUT_OF_RANGE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_OUT_OF_RANGE),
				 errmsg("hot account \"%s\" would hold more than its escrow can", acct->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_OUT_OF_RANGE,
													  LEDGER_FACT_TEXT("account", acct->code),
													  LEDGER_FACT_TEXT("asset", acct->asset),
													  LEDGER_FACT_AMOUNT("balance", ledger_scaled_to_numeric(total, scale)),
													  LEDGER_FACT_AMOUNT("amount", d->delta),
													  LEDGER_FACT_INT("scale", scale),
													  NULL),
										"Hot accounts hold balances below 10^36 units of 10^-%d in absolute value; account \"%s\" stands at %s with postings in flight, and this posting moves %s.",
						   scale, acct->code,
						   ledger_numeric_str(ledger_scaled_to_numeric(total, scale)),
						   ledger_numeric_str(d->delta)),
				 errhint("Switch the account to cold mode to hold larger balances.")));
	return true;
}

