/*-------------------------------------------------------------------------
 *
 * holdexpiry.c
 *	  ledger.expire_holds: record what time has done to holds.
 *	  - A reserved hold past its submit deadline was never sent: it is
 *	    recorded expired (it stopped keeping money at the deadline; see
 *	    ledger_hold_state).
 *	  - A submitted hold past its confirm deadline is recorded timed_out:
 *	    the processor may have paid, so the money stays held.  Each one is
 *	    alerted (ledger.alert, kind hold_timed_out, NOTIFY ledger_alerts at
 *	    commit, naming account and owner) and listed by stale_holds().
 *	  Each expired hold is an outbox message (topic ledger.hold_expired);
 *	  each timed-out one is one through its alert (topic ledger.alert).
 *	Scheduled by ledger.schedule_hold_expiry (pg_cron).  Nothing depends on
 *	it running: every check reads the effective state.
 *
 * Each hold is taken as any move takes it (hold.c): its account's balance
 * row, then its row, and checked again under those locks, so a capture or
 * void that won the race is left alone.  Holds are taken in account id
 * order, as postings take accounts, and an account whose row another
 * transaction holds is skipped (SKIP LOCKED), not waited for: the next
 * call records its holds.
 *
 * Locking: see hold.c; the row locks are held until the caller commits.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"

/* Most holds one call records; the rest wait for the next call. */
#define EXPIRE_BATCH	10000

static SPIPlanPtr due_plan = NULL;


/* A submitted hold past its deadline: timed out, alerted, still held. */
static void
record_time_out(LedgerHold *h, TimestampTz now)
{
	LedgerJson *j = ledger_json_begin();

	h->state = "timed_out";
	(void) ledger_hold_move(h, now, 0, "timed_out", NULL, NULL, NULL, NULL, NULL);
	ledger_json_text(j, "hold_id", ledger_uuid_str(&h->id));
	if (h->external_ref)
		ledger_json_text(j, "external_ref", h->external_ref);
	ledger_json_numeric(j, "amount", h->amount);
	ledger_json_numeric(j, "remaining", h->remaining);
	ledger_json_timestamptz(j, "confirm_deadline", h->confirm_deadline);
	ledger_raise_alert("warning", "hold_timed_out", h->account_id, ledger_json_end(j));
}

/* A reserved hold never sent: an outbox message (ledger.hold_expired), keyed by its account. */
static void
record_expiry(LedgerHold *h, Numeric released)
{
	LedgerJson *j = ledger_json_begin();

	ledger_json_text(j, "hold_id", ledger_uuid_str(&h->id));
	ledger_json_text(j, "account", h->account_code);
	if (h->external_ref)
		ledger_json_text(j, "external_ref", h->external_ref);
	ledger_json_numeric(j, "amount", h->amount);
	ledger_json_numeric(j, "released", released);
	ledger_json_timestamptz(j, "submit_deadline", h->submit_deadline);
	(void) ledger_outbox_put("ledger.hold_expired", h->account_code, ledger_json_end(j));
}

PG_FUNCTION_INFO_V1(ledger_expire_holds);

Datum
ledger_expire_holds(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();
	pg_uuid_t  *ids;
	int			n;
	int			moved = 0;
	int			i;
	Datum		arg;

	PreventCommandIfReadOnly("ledger.expire_holds");
	SPI_connect();
	if (due_plan == NULL)
		due_plan = ledger_prepare(
			"SELECT id FROM ("
			"  SELECT id, account_id FROM ledger.hold "
			"   WHERE state = 'reserved' AND submit_deadline OPERATOR(pg_catalog.<=) $1 "
			"  UNION ALL "
			"  SELECT id, account_id FROM ledger.hold "
			"   WHERE state = 'submitted' AND confirm_deadline OPERATOR(pg_catalog.<=) $1) d "
			" ORDER BY account_id, id LIMIT " CppAsString2(EXPIRE_BATCH),
			1, (Oid[]) {TIMESTAMPTZOID});
	arg = TimestampTzGetDatum(now);
	ledger_spi_exec(due_plan, &arg, NULL, SPI_OK_SELECT);
	n = (int) SPI_processed;
	ids = palloc(sizeof(pg_uuid_t) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		memcpy(&ids[i], DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1, &isnull)),
			   sizeof(pg_uuid_t));
	}
	SPI_freetuptable(SPI_tuptable);

	for (i = 0; i < n; i++)
	{
		LedgerHold	h;
		LedgerHoldAccount acct;
		const char *state;

		/*
		 * Never wait for an account another transaction holds (a prepared
		 * transaction, a long one): this call would keep every account it
		 * took so far locked meanwhile.  Nothing depends on the record;
		 * the next call takes it.
		 */
		if (!ledger_hold_take(&ids[i], true, &h, &acct))
			continue;
		now = GetCurrentTimestamp();
		state = ledger_hold_state(&h, now);
		if (strcmp(state, "expired") == 0 && strcmp(h.state, "reserved") == 0)
		{
			Numeric		released = h.remaining;

			h.state = "expired";
			h.remaining = ledger_numeric_add(released, ledger_numeric_neg(released));
			(void) ledger_hold_move(&h, now, -1, "expired", released, NULL, NULL, NULL, NULL);
			record_expiry(&h, released);
			moved++;
		}
		else if (strcmp(state, "timed_out") == 0 && strcmp(h.state, "submitted") == 0)
		{
			record_time_out(&h, now);
			moved++;
		}
		/* else a capture or void got there first */
	}
	SPI_finish();
	PG_RETURN_INT32(moved);
}
