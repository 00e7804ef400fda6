/*-------------------------------------------------------------------------
 *
 * hotmode.c
 *	  ledger.set_account_mode, which moves an account between cold mode
 *	  (its balance row is updated by each posting) and hot mode (an escrow
 *	  in shared memory, escrow.c), and ledger.hot_accounts(), the escrow as
 *	  operators see it.
 *
 * Switching locks the account's balance row first (FOR UPDATE), which
 * waits out cold postings in flight; a cold posting checks the hot flag
 * again under that row lock (LD019 if the account turned hot meanwhile).
 *	- To hot: a PENDING slot takes the balance (folded plus unfolded) and
 *	  becomes ACTIVE when the switch commits, free again if it aborts.
 *	- To cold: the ACTIVE slot becomes CLOSING, so new postings fail with
 *	  LD019; the switch waits until none of the account's postings is in
 *	  flight, folds its entries and frees the slot at commit.  A slot that
 *	  is not ACTIVE (a correction has fenced it, or another switch holds
 *	  it) refuses the switch with LD019: the correction would otherwise
 *	  reopen the slot of an account that is cold by then.
 *
 * Locking: the balance row lock above, and escrow.h's rules for the slot
 * table (HotLock exclusive to change a slot's state).
 *
 *-------------------------------------------------------------------------
 */
#include "escrow.h"

#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/builtins.h"

static SPIPlanPtr mode_lock_plan = NULL;
static SPIPlanPtr mode_read_plan = NULL;
static SPIPlanPtr mode_set_plan = NULL;
static SPIPlanPtr code_plan = NULL;

/* The account switched, as read under its balance row lock. */
typedef struct ModeTarget
{
	int64		id;
	bool		hot;
	int			scale;
	bool		unbounded;
	Numeric		min_balance;
	Numeric		balance;		/* folded plus unfolded */
} ModeTarget;

/*
 * Lock the account's balance row, then read what a switch needs with a
 * statement of its own.  Under READ COMMITTED that statement's snapshot is
 * taken after the lock was granted, so it sees what the lock waited for:
 * another switch's fold, say, which moved unfolded entries into the
 * balance row.  Read in the locking statement, the row would come in its
 * newest version but the entries through the snapshot taken before the
 * wait, and entries already folded would be counted twice.
 */
static void
lock_target(const char *code, ModeTarget *t)
{
	Datum		arg = CStringGetTextDatum(code);
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (mode_lock_plan == NULL)
		mode_lock_plan = ledger_prepare(
			"SELECT a.id FROM ledger.account a "
			"  JOIN ledger.account_balance b ON b.account_id = a.id "
			" WHERE a.code = $1 FOR UPDATE OF b",
			1, (Oid[]) {TEXTOID});
	if (mode_read_plan == NULL)
		mode_read_plan = ledger_prepare(
			"SELECT a.id, b.hot, s.scale, a.min_balance, "
			"       b.balance + coalesce((SELECT sum(q.credits - q.debits) FROM ledger.hot_entry q "
			"                             WHERE q.account_id = a.id), 0) "
			"  FROM ledger.account a "
			"  JOIN ledger.account_balance b ON b.account_id = a.id "
			"  JOIN ledger.asset s ON s.code = a.asset "
			" WHERE a.id = $1",
			1, (Oid[]) {INT8OID});
	ledger_spi_exec(mode_lock_plan, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
				 errmsg("account \"%s\" does not exist", code),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ACCOUNT, LEDGER_FACT_TEXT("account", code), NULL), NULL)));
	arg = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	SPI_freetuptable(SPI_tuptable);
	ledger_spi_exec(mode_read_plan, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "locked account \"%s\" could not be read", code);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	t->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	t->hot = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	t->scale = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	t->unbounded = isnull;
	t->min_balance = isnull ? NULL : DatumGetNumericCopy(d);
	t->balance = DatumGetNumericCopy(SPI_getbinval(tup, desc, 5, &isnull));
	SPI_freetuptable(SPI_tuptable);
}

/* Cold to hot: a PENDING slot, ACTIVE at commit. */
static void
make_hot(const char *code, ModeTarget *t, Oid relid)
{
	int128		min_scaled = 0;
	int128		committed;
	int			slot;

	if (ledger_schema()->has_holds)
	{
		LedgerHeld	held;

		/* under the balance row lock every hold move takes first */
		ledger_held(t->id, GetCurrentTimestamp(), &held);
		if (held.active > 0)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_HOLD_HOT),
					 errmsg("account \"%s\" has active holds and cannot become hot", code),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOLD_HOT,
														  LEDGER_FACT_TEXT("account", code),
														  LEDGER_FACT_INT("active", held.active),
														  LEDGER_FACT_AMOUNT("held_exclusive", held.exclusive),
														  LEDGER_FACT_AMOUNT("held_shared", held.shared),
														  NULL),
											"Account \"%s\" has %d active holds keeping %s exclusively and %s shared.",
							   code, held.active, ledger_numeric_str(held.exclusive),
							   ledger_numeric_str(held.shared)),
					 errhint("Capture, void or let them expire first.")));
	}

	if ((!t->unbounded && !ledger_numeric_to_scaled(t->min_balance, t->scale, &min_scaled)) ||
		!ledger_numeric_to_scaled(t->balance, t->scale, &committed))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_OUT_OF_RANGE),
				 errmsg("account \"%s\" holds amounts too large for hot mode", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_OUT_OF_RANGE,
													  LEDGER_FACT_TEXT("account", code),
													  LEDGER_FACT_AMOUNT("balance", t->balance),
													  LEDGER_FACT_AMOUNT("floor", t->unbounded ? NULL : t->min_balance),
													  LEDGER_FACT_INT("scale", t->scale),
													  NULL),
										"Hot accounts hold balances and floors below 10^36 units of 10^-%d; the balance is %s.",
						   t->scale, ledger_numeric_str(t->balance))));
	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);

	/*
	 * We hold the balance row lock and the table says cold, so a slot
	 * still naming this account is stale (the extension was dropped and
	 * created again since the server started): free it.
	 */
	slot = ledger_escrow_find(t->id, relid);
	if (slot >= 0)
		ledger_escrow_set_state(slot, SLOT_FREE);
	slot = ledger_escrow_alloc(t->id, relid, SLOT_PENDING, t->scale, t->unbounded,
							   min_scaled, committed);
	if (slot >= 0)
		ledger_escrow_push(ENTRY_ACTIVATE, slot, t->id, 0);
	LWLockRelease(escrow->lock);
	if (slot < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOT_UNAVAILABLE),
				 errmsg("no room for another hot account"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOT_UNAVAILABLE,
													  LEDGER_FACT_TEXT("account", code),
													  LEDGER_FACT_INT("limit", escrow->nslots),
													  NULL),
										"All %d hot-account slots are in use; account \"%s\" was not switched.",
						   escrow->nslots, code),
				 errhint("Raise ledger.max_hot_accounts and restart.")));
}

/* Hot to cold: close the slot, wait for postings in flight, fold. */
static void
make_cold(const char *code, ModeTarget *t, Oid relid)
{
	int			slot;
	SlotState	state = SLOT_FREE;

	LWLockAcquire(escrow->lock, LW_EXCLUSIVE);
	slot = ledger_escrow_find(t->id, relid);
	if (slot >= 0)
	{
		state = escrow->slots[slot].state;
		if (state == SLOT_ACTIVE)
		{
			ledger_escrow_set_state(slot, SLOT_CLOSING);
			ledger_escrow_push(ENTRY_CLOSE, slot, t->id, 0);
		}
	}
	LWLockRelease(escrow->lock);
	if (slot >= 0 && state == SLOT_ACTIVE && IsolationUsesXactSnapshot())
		ledger_refuse_snapshot_isolation(code);	/* its CLOSING is undone at abort */
	if (slot >= 0 && state != SLOT_ACTIVE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("hot account \"%s\" is busy with a correction or another mode change", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", code), NULL), "Its escrow slot is %s; it can be switched once that commits or rolls back.",
						   ledger_slot_state_names[state]),
				 errhint("Retry.")));
	if (slot >= 0)
		ledger_escrow_wait_drained(slot, code);
	/* everything committed is now in hot_entry: fold it in */
	ledger_fold_account(t->id, INT_MAX);
}

PG_FUNCTION_INFO_V1(ledger_set_account_mode);

Datum
ledger_set_account_mode(PG_FUNCTION_ARGS)
{
	char	   *code;
	char	   *mode;
	bool		to_hot;
	Datum		values[2];
	ModeTarget	t;
	Oid			relid;

	LEDGER_REQUIRE_ARG(0, "account");
	LEDGER_REQUIRE_ARG(1, "mode");
	code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	mode = ledger_check_code(PG_GETARG_TEXT_PP(1), "mode");
	if (strcmp(mode, "hot") != 0 && strcmp(mode, "cold") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("mode must be 'hot' or 'cold'"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("account", code),
													  LEDGER_FACT_TEXT("argument", "mode"),
													  LEDGER_FACT_TEXT("given", mode),
													  NULL),
										"Account \"%s\", mode \"%s\".", code, mode)));
	to_hot = strcmp(mode, "hot") == 0;

	/* to hot only where hot accounts are served; to cold anywhere */
	if (to_hot)
		ledger_escrow_require_served(code);
	else
		ledger_escrow_require();
	ledger_escrow_wait_ready();
	relid = ledger_escrow_relid();

	SPI_connect();
	ledger_fold_begin();
	lock_target(code, &t);
	if (t.hot == to_hot)
	{
		SPI_finish();
		PG_RETURN_TEXT_P(cstring_to_text(mode));
	}
	ledger_escrow_reserve_entries();
	if (to_hot)
		make_hot(code, &t, relid);
	else
		make_cold(code, &t, relid);

	if (mode_set_plan == NULL)
		mode_set_plan = ledger_prepare(
			"WITH b AS (UPDATE ledger.account_balance SET hot = $2 WHERE account_id = $1) "
			"UPDATE ledger.account SET mode = CASE WHEN $2 THEN 'hot' ELSE 'cold' END WHERE id = $1",
			2, (Oid[]) {INT8OID, BOOLOID});
	values[0] = Int64GetDatum(t.id);
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
	LedgerEscrowView *v;
	int			n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	n = ledger_escrow_view(&v);
	if (n == 0)
		return (Datum) 0;

	SPI_connect();
	if (code_plan == NULL)
		code_plan = ledger_prepare("SELECT code FROM ledger.account WHERE id = $1",
								   1, (Oid[]) {INT8OID});
	for (i = 0; i < n; i++)
	{
		Datum		values[9];
		bool		nulls[9] = {false, false, false, false, false, false, false, false, false};
		Datum		arg = Int64GetDatum(v[i].account_id);
		char	   *code = NULL;

		ledger_spi_exec(code_plan, &arg, NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
			code = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		values[0] = code ? CStringGetTextDatum(code) : (Datum) 0;
		nulls[0] = code == NULL;
		values[1] = Int64GetDatum(v[i].account_id);
		values[2] = NumericGetDatum(ledger_scaled_to_numeric(v[i].committed, v[i].scale));
		values[3] = NumericGetDatum(ledger_scaled_to_numeric(v[i].reserved, v[i].scale));
		nulls[4] = v[i].unbounded;
		if (!v[i].unbounded)
			values[4] = NumericGetDatum(ledger_numeric_add(
				ledger_scaled_to_numeric(v[i].committed - v[i].reserved, v[i].scale),
				ledger_numeric_neg(ledger_scaled_to_numeric(v[i].min_balance, v[i].scale))));
		values[5] = Int32GetDatum(v[i].inflight);
		values[6] = Int64GetDatum(v[i].debits_accepted);
		values[7] = Int64GetDatum(v[i].debits_refused);
		values[8] = CStringGetTextDatum(ledger_slot_state_names[v[i].state]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
