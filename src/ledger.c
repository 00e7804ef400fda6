/*-------------------------------------------------------------------------
 *
 * ledger.c
 *	  Module entry point: _PG_init calls each subsystem's init, which
 *	  defines its own ledger.* settings.  Also ledger.version().
 *
 * Locking: none.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * Each subsystem defines its own settings and hooks.  Shared memory, the
 * transaction callbacks of the escrow and the fold worker exist only when
 * the library is preloaded.
 */
void
_PG_init(void)
{
	ledger_schema_init();
	ledger_cache_init();
	ledger_row_hint_init();
	ledger_posting_init();
	ledger_hot_init();
	ledger_worker_init();
	ledger_horizon_init();
	ledger_event_worker_init();
	ledger_outbox_init();
	ledger_rates_init();
	ledger_owner_init();
	ledger_ratelimit_init();
	ledger_counters_init();
	ledger_callerror_init();

	MarkGUCPrefixReserved("ledger");
}

PG_FUNCTION_INFO_V1(ledger_version);

Datum
ledger_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(LEDGER_VERSION));
}
