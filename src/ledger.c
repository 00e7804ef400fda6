/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  Module entry point: _PG_init, the ledger.* settings, and the small SPI
 *	  helpers every other file uses to prepare plans once per backend.
 *
 * Locking: none.  Plans prepared here are kept (SPI_keepplan) in the
 * backend's TopMemoryContext and live until the backend exits; they are
 * backend-local, so no shared state is touched.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "catalog/namespace.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/plancache.h"
#include "utils/resowner.h"
#include "utils/lsyscache.h"

PG_MODULE_MAGIC;

/* GUC: largest number of legs ledger.post accepts. */
int			ledger_max_legs = 64;

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("ledger.max_legs",
							"Largest number of legs one ledger.post call may carry.",
							"Postings with more legs are refused with SQLSTATE LD012.",
							&ledger_max_legs,
							64, 2, 10000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	ledger_schema_init();
	ledger_cache_init();
	ledger_hot_init();
	ledger_worker_init();

	MarkGUCPrefixReserved("ledger");
}

/*
 * Prepare a statement and keep it for the life of the backend.  The caller
 * stores the result in a static and prepares only when that is NULL.
 *
 * Plans are generic: every statement here is a keyed lookup or write whose
 * best plan does not depend on the parameter values, and a custom plan per
 * call would spend more time planning than executing (the account lookup's
 * "= ANY ($1)" otherwise never switches to its generic plan).
 */
SPIPlanPtr
ledger_prepare(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	CachedPlan *cplan;
	int			level;

	plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");

	/*
	 * Build the generic plan now, with sequential scans off: every
	 * statement here is a keyed lookup or write, and a plan built at first
	 * use while a table is still tiny (a bulk load) would otherwise scan it
	 * until the next ANALYZE invalidates the plan.  Plans rebuilt after an
	 * invalidation see real statistics.
	 */
	level = ledger_keyed_begin();
	cplan = SPI_plan_get_cached_plan(plan);
	if (cplan != NULL)
		ReleaseCachedPlan(cplan, CurrentResourceOwner);
	ledger_keyed_end(level);
	return plan;
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
 * Kept plans are generic and built at first use: one built while a table
 * was still small would scan it for the rest of the backend's life (a
 * rebuild writing daily rows account after account in one transaction is
 * the worst case).  SQL functions get the same with SET enable_seqscan.
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
 * The UTC day of a timestamp: both count from 2000-01-01 00:00 UTC.  The
 * infinities map to the infinite dates.
 */
DateADT
ledger_utc_day(TimestampTz ts)
{
	if (TIMESTAMP_IS_NOBEGIN(ts))
		return DATEVAL_NOBEGIN;
	if (TIMESTAMP_IS_NOEND(ts))
		return DATEVAL_NOEND;
	if (ts >= 0)
		return (DateADT) (ts / USECS_PER_DAY);
	return (DateADT) (-((-ts - 1) / USECS_PER_DAY) - 1);
}

PG_FUNCTION_INFO_V1(ledger_version);

Datum
ledger_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(LEDGER_VERSION));
}
