/*-------------------------------------------------------------------------
 *
 * spi.c
 *	  The SPI helpers every file that runs SQL uses: plans prepared once
 *	  per backend and kept, run with a checked result, and the one row lock
 *	  every writer of an account's balance rows takes outside a posting.
 *
 * Plans are generic and kept (SPI_keepplan) in the backend's
 * TopMemoryContext until the backend exits: backend-local, no shared
 * state.  Two kinds:
 *	- keyed (ledger_prepare): lookups and writes by key.  Their generic
 *	  plan is built at prepare time with sequential scans off: a plan built
 *	  while a table is still tiny (a bulk load) would otherwise scan it
 *	  until the next ANALYZE invalidates the plan.
 *	- scans (ledger_prepare_scan): statements that read whole tables
 *	  (reconciliation's detection, the account list of a full rebuild).
 *	  Planned with the server's settings, at first use.
 * No user input is ever put into SQL text: values travel as parameters.
 *
 * Also ledger_try: run a step in a subtransaction and hand back its error
 * instead of raising it (the pattern of PL/pgSQL's exception blocks).
 *
 * Locking: the balance row lock of ledger_lock_balance (FOR UPDATE, until
 * the transaction ends); nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/guc.h"
#include "utils/plancache.h"
#include "utils/resowner.h"

static SPIPlanPtr
prepare_kept(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

/*
 * Prepare a keyed statement and keep it for the life of the backend.  The
 * caller stores the result in a static and prepares only when that is
 * NULL.  Generic: every such statement is a lookup or write by key whose
 * best plan does not depend on the values, and a custom plan per call
 * would spend more time planning than executing.
 */
SPIPlanPtr
ledger_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = prepare_kept(sql, nargs, argtypes);
	CachedPlan *cplan;
	int			level;

	level = ledger_keyed_begin();
	cplan = SPI_plan_get_cached_plan(plan);
	if (cplan != NULL)
		ReleaseCachedPlan(cplan, CurrentResourceOwner);
	ledger_keyed_end(level);
	return plan;
}

/* Prepare a statement that reads whole tables; planned as the server would. */
SPIPlanPtr
ledger_prepare_scan(const char *sql, int nargs, Oid *argtypes)
{
	return prepare_kept(sql, nargs, argtypes);
}

/*
 * Run a kept plan; SPI failures are internal errors, never user errors.
 */
void
ledger_spi_exec(SPIPlanPtr plan, Datum *values, const char *nulls, int expected)
{
	int			rc;

	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI_execute_plan returned %s, expected %s",
			 SPI_result_code_string(rc), SPI_result_code_string(expected));
}

/*
 * Run keyed statements with enable_seqscan = off until ledger_keyed_end.
 * Kept plans built later (after an invalidation) are built at first use:
 * a rebuild writing daily rows account after account in one transaction
 * is the worst case of a plan made while a table was small.  SQL functions
 * get the same with SET enable_seqscan.
 */
int
ledger_keyed_begin(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/*
	 * A plan that must scan anyway carries the disabled scan's huge cost,
	 * which would have it JIT-compiled at every execution.
	 */
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
ledger_keyed_end(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * Lock an account's balance row (FOR UPDATE) until the transaction ends:
 * what folds, rebuilds, repairs and mode switches hold while they change
 * an account's balance rows, and what a posting loading a hot account
 * holds.  Inside SPI.
 */
void
ledger_lock_balance(int64 account_id)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1];

	if (plan == NULL)
		plan = ledger_prepare(
			"SELECT 1 FROM ledger.account_balance WHERE account_id = $1 FOR UPDATE",
			1, (Oid[]) {INT8OID});
	values[0] = Int64GetDatum(account_id);
	ledger_spi_exec(plan, values, NULL, SPI_OK_SELECT);
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Run fn(arg) in a subtransaction: NULL if it succeeded (its work stays),
 * else its error, copied into the caller's memory context, with the
 * subtransaction rolled back.  Usable inside SPI.
 */
ErrorData *
ledger_try(void (*fn) (void *arg), void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile err = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		err = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();
	return err;
}
