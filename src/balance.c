/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  The balance step of a posting, in one place: for each account the
 *	  posting touches, the conditional balance change (a cold account's
 *	  balance row, a hot account's escrow in escrow.c), then the journal
 *	  entries, the daily rows, the hot queue rows and, when the caller has
 *	  not written it, the transaction row.  Rows are written through
 *	  store.c, without SQL statements.
 *
 * Holds (hold.c): a debit of an account with unfinished holds is checked
 * against what its active holds keep (ledger_check_room), read under the
 * balance row lock that every hold move takes first.
 *
 * Locking rules:
 *	- Accounts are taken in ascending account id order, whatever order the
 *	  caller's legs came in, so two postings touching the same accounts lock
 *	  their balance rows in the same order and never deadlock.
 *	- The debit is conditional at the row: the balance row is locked in its
 *	  newest version (store.c), and the floor is checked against that
 *	  version's balance before it is written.  Under READ COMMITTED a
 *	  concurrent posting makes the lock wait and the check then sees the
 *	  newest committed balance, so there is no read-then-write window.
 *	  Under REPEATABLE READ or SERIALIZABLE the same conflict raises a
 *	  serialization failure (40001) to retry.
 *	- A cold account that turned hot since it was resolved is refused with
 *	  LD019 under its balance row lock, which set_account_mode holds while
 *	  it switches.
 *	- The posting timestamp is taken after every balance row lock is held.
 *	  The lock is kept until commit, so per account the timestamps of
 *	  postings are in the same order as their balance changes, and the
 *	  closing balance stored for a day is the running sum of the journal up
 *	  to the end of that day.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

int
ledger_delta_cmp(const void *a, const void *b)
{
	int64		ia = ((const LedgerDelta *) a)->account->id;
	int64		ib = ((const LedgerDelta *) b)->account->id;

	return (ia > ib) - (ia < ib);
}

/*
 * Collapse legs into one delta per account.
 */
LedgerDelta *
ledger_build_deltas(LedgerLeg *legs, int nlegs, int *ndeltas)
{
	LedgerDelta *deltas = palloc0(sizeof(LedgerDelta) * nlegs);
	Numeric		zero = int64_to_numeric(0);
	int			n = 0;
	int			i;
	int			j;

	for (i = 0; i < nlegs; i++)
	{
		LedgerDelta *d = NULL;

		for (j = 0; j < n; j++)
			if (deltas[j].account == legs[i].account)
				d = &deltas[j];
		if (d == NULL)
		{
			d = &deltas[n++];
			d->account = legs[i].account;
			d->debits = zero;
			d->credits = zero;
			d->delta = zero;
		}
		if (ledger_numeric_sign(legs[i].amount) < 0)
			d->debits = ledger_numeric_add(d->debits, ledger_numeric_neg(legs[i].amount));
		else
			d->credits = ledger_numeric_add(d->credits, legs[i].amount);
		d->delta = ledger_numeric_add(d->delta, legs[i].amount);
	}
	*ndeltas = n;
	return deltas;
}

/* A refused debit: the balance is the locked row's. */
static void
report_insufficient(LedgerDelta *d, Numeric balance)
{
	Numeric		available = ledger_numeric_add(balance,
											   ledger_numeric_neg(d->account->min_balance));

	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
			 errmsg("insufficient funds in account \"%s\"", d->account->code),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INSUFFICIENT_FUNDS,
												 LEDGER_FACT_TEXT("account", d->account->code),
												 LEDGER_FACT_TEXT("asset", d->account->asset),
												 LEDGER_FACT_AMOUNT("balance", balance),
												 LEDGER_FACT_AMOUNT("floor", d->account->min_balance),
												 LEDGER_FACT_AMOUNT("available", available),
												 LEDGER_FACT_AMOUNT("requested", ledger_numeric_neg(d->delta)),
												 NULL),
									"Account \"%s\" has balance %s and floor %s, so %s is available; the posting requests %s.",
					   d->account->code,
					   ledger_numeric_str(balance),
					   ledger_numeric_str(d->account->min_balance),
					   ledger_numeric_str(available),
					   ledger_numeric_str(ledger_numeric_neg(d->delta)))));
}

/* What of amount (a balance) its active holds leave free: amount - exclusive - largest shared. */
Numeric
ledger_not_held(Numeric amount, const LedgerHeld *held)
{
	return ledger_numeric_add(ledger_numeric_add(amount, ledger_numeric_neg(held->exclusive)),
							  ledger_numeric_neg(held->shared));
}

/*
 * The hold rule, for an account whose balance row this transaction has
 * locked: after the change,
 *	  balance - debit - (held exclusive + add_exclusive)
 *		- max(largest shared, shared) >= min_balance,
 * else LD001 naming the account, the amounts held and what the request
 * (what) needs.  held NULL: nothing is held.  Unbounded accounts pass.
 */
void
ledger_check_room(const LedgerAccount *a, Numeric balance, Numeric debit,
				  const LedgerHeld *held, Numeric add_exclusive, Numeric shared,
				  const char *what)
{
	Numeric		zero = ledger_numeric_add(balance, ledger_numeric_neg(balance));	/* at scale */
	Numeric		excl = held && ledger_numeric_sign(held->exclusive) != 0 ? held->exclusive : zero;
	Numeric		sh = held && ledger_numeric_sign(held->shared) != 0 ? held->shared : zero;
	Numeric		available;
	Numeric		need;

	if (a->unbounded)
		return;
	/* what the balance can give beyond the floor and what is held now */
	available = ledger_numeric_add(held ? ledger_not_held(balance, held) : balance,
								   ledger_numeric_neg(a->min_balance));
	/* what this request takes of it: a debit, a new exclusive hold, or a
	 * shared hold's excess over the largest shared hold */
	need = debit ? debit : zero;
	if (add_exclusive)
		need = ledger_numeric_add(need, add_exclusive);
	if (shared && ledger_numeric_cmp(shared, sh) > 0)
		need = ledger_numeric_add(need, ledger_numeric_add(shared, ledger_numeric_neg(sh)));
	if (ledger_numeric_cmp(need, available) <= 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
			 errmsg("insufficient funds in account \"%s\"", a->code),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INSUFFICIENT_FUNDS,
												 LEDGER_FACT_TEXT("account", a->code),
												 LEDGER_FACT_TEXT("asset", a->asset),
												 LEDGER_FACT_AMOUNT("balance", balance),
												 LEDGER_FACT_AMOUNT("floor", a->min_balance),
												 LEDGER_FACT_AMOUNT("held_exclusive", excl),
												 LEDGER_FACT_AMOUNT("held_shared", sh),
												 LEDGER_FACT_AMOUNT("available", available),
												 LEDGER_FACT_AMOUNT("requested", debit ? debit : add_exclusive ? add_exclusive : shared),
												 LEDGER_FACT_TEXT("request", what),
												 NULL),
									"Account \"%s\" has balance %s and floor %s, with %s held exclusively and %s under shared holds, so %s is available; the %s requests %s.",
					   a->code, ledger_numeric_str(balance), ledger_numeric_str(a->min_balance),
					   ledger_numeric_str(excl), ledger_numeric_str(sh),
					   ledger_numeric_str(available), what,
					   ledger_numeric_str(debit ? debit : add_exclusive ? add_exclusive : shared))));
}

/*
 * A capture takes money held for it: it is not refused (the processor may
 * have paid already), but if what the account's other holds keep no
 * longer fits above the floor (an operator raised the floor, or forced an
 * invalidation, since the money was held), a critical alert says so.
 */
static void
check_capture(LedgerDelta *d, int open_holds)
{
	LedgerHeld	held;
	Numeric		kept;

	Assert(open_holds > 0);		/* the captured hold itself */
	ledger_held(d->account->id, GetCurrentTimestamp(), &held);
	/* the captured hold's part leaves the exclusive sum as it leaves the balance */
	kept = ledger_numeric_add(ledger_not_held(d->new_balance, &held), ledger_numeric_neg(d->delta));
	if (ledger_numeric_cmp(kept, d->account->min_balance) < 0)
	{
		LedgerJson *j = ledger_json_begin();

		ledger_json_numeric(j, "balance", d->new_balance);
		ledger_json_numeric(j, "held_exclusive", ledger_numeric_add(held.exclusive, d->delta));
		ledger_json_numeric(j, "held_shared", held.shared);
		ledger_json_numeric(j, "min_balance", d->account->min_balance);
		ledger_json_numeric(j, "captured", ledger_numeric_neg(d->delta));
		ledger_raise_alert("critical", "capture_below_floor", d->account->id, ledger_json_end(j));
	}
}

/*
 * A cold account's balance change, against the balance of its locked row:
 * refuse a debit that would cross the floor (LD001), or take money held
 * (LD001), or an account that turned hot (LD019); else set
 * d->new_balance.  A capture's debit takes money held for it and is not
 * checked.  Writes nothing but an alert.
 */
void
ledger_check_cold(LedgerDelta *d, Numeric balance, bool hot, int open_holds)
{
	if (hot)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("account \"%s\" is changing mode", d->account->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", d->account->code), LEDGER_FACT_TEXT("mode", "hot"), NULL), "The account was switched to hot mode while the posting ran."),
				 errhint("Retry the posting.")));
	d->new_balance = ledger_numeric_add(balance, d->delta);
	if (ledger_numeric_sign(d->delta) < 0 && !d->account->unbounded && !d->from_hold)
	{
		if (open_holds > 0)
		{
			LedgerHeld	held;

			/* under the row lock: every hold writer takes it first */
			ledger_held(d->account->id, GetCurrentTimestamp(), &held);
			ledger_check_room(d->account, balance, ledger_numeric_neg(d->delta), &held,
							  NULL, NULL, "posting");
		}
		else if (ledger_numeric_cmp(d->new_balance, d->account->min_balance) < 0)
			report_insufficient(d, balance);
	}
	else if (d->from_hold && !d->account->unbounded)
		check_capture(d, open_holds);
}

/* A cold account's balance change: lock its row, check, write. */
static void
apply_cold(LedgerStore *st, LedgerDelta *d)
{
	bool		hot;
	int			open_holds;
	Numeric		balance = ledger_store_lock_balance(st, d->account->id, false, &hot, &open_holds);

	ledger_check_cold(d, balance, hot, open_holds);
	ledger_store_set_balance(st, d->new_balance);
}

/*
 * A hot account's balance change: a reservation or credit in its escrow
 * (escrow.c), loading the account on this server first if need be.
 */
void
ledger_apply_hot(LedgerDelta *d)
{
	if (ledger_hot_apply(d))
		return;
	/* a hot account this server has not loaded (escrowload.c) */
	ledger_hot_load_account(d->account);
	if (!ledger_hot_apply(d))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("account \"%s\" is changing mode", d->account->code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", d->account->code), LEDGER_FACT_TEXT("mode", "cold"), NULL), "The account was switched to cold mode while the posting ran."),
				 errhint("Retry the posting.")));
}

/*
 * Apply a posting: the net effect on each account's balance, then its
 * journal entries, and its transaction row when kind is not NULL.  Sorts
 * deltas by account id (the lock order).  For a cold account: the
 * conditional change of its balance row, then its daily row.  For a hot
 * account: a reservation or credit in shared memory (escrow.c) and a
 * ledger.hot_entry row for the fold worker.  Everything is stamped with
 * the time taken once every cold balance row is locked.  Raises LD001
 * when a debit would cross min_balance.
 */
void
ledger_apply_balances(LedgerDelta *deltas, int ndeltas, pg_uuid_t *txid,
					  LedgerLeg *legs, int nlegs, const char *kind, Jsonb *metadata)
{
	LedgerStore *st;
	TimestampTz ts;
	DateADT		day;
	int			i;

	qsort(deltas, ndeltas, sizeof(LedgerDelta), ledger_delta_cmp);
	st = ledger_store_begin();
	for (i = 0; i < ndeltas; i++)
	{
		if (!deltas[i].account->hot)
			apply_cold(st, &deltas[i]);
		else
			ledger_apply_hot(&deltas[i]);
	}

	/* every cold balance row of the posting is locked: now stamp it */
	ts = GetCurrentTimestamp();
	day = ledger_utc_day(ts);
	for (i = 0; i < ndeltas; i++)
	{
		LedgerDelta *d = &deltas[i];

		if (d->account->hot)
			ledger_store_insert_hot_entry(st, txid, d->account->id, day,
										  d->debits, d->credits, ts);
		else
			ledger_store_add_daily(st, d->account->id, day, d->debits, d->credits,
								   d->new_balance);
	}
	for (i = 0; i < nlegs; i++)
		ledger_store_insert_journal(st, txid, legs[i].account->id, legs[i].amount, ts);
	if (kind != NULL)
		ledger_store_insert_transaction(st, txid, kind, metadata);
	ledger_store_end(st);
	ledger_count_posting(ledger_batch_active());
}
