/*-------------------------------------------------------------------------
 *
 * hold.c
 *	  Holds: ledger.hold, ledger.mark_submitted, ledger.void,
 *	  ledger.set_account_limits and ledger.available_balance, and what
 *	  capture.c and holdexpiry.c share: a hold's effective state, the
 *	  refusal of an illegal move, and taking a hold for a move.
 *
 * A hold keeps money on its account: exclusive holds add up, shared holds
 * overlap (only the largest counts), and for every account at every
 * instant
 *	  balance - sum(active exclusive) - max(active shared) >= min_balance.
 * Every move checks it in one atomic step with the change: the account's
 * balance row is locked first (FOR UPDATE, newest version), then what is
 * held is read with a fresh snapshot (holdstore.c), then the move is
 * written.  Debits check the same rule under the same lock (balance.c).
 * No lock outlives the caller's transaction.
 *
 * A hold's life: reserved -> submitted -> captured (partial captures may
 * repeat) or voided.  A reserved hold past submit_within is expired from
 * that instant (it keeps nothing, and every move but a read is refused);
 * a submitted one past confirm_within is timed out: still held, alerted
 * by expire_holds, listed by stale_holds().  ledger_hold_state gives the
 * effective state at a time; expire_holds records it.
 *
 * Locking: the balance row of the hold's account, then the hold's row,
 * both FOR UPDATE until the transaction ends (holdstore.c).  Captures lock
 * the cold balance rows of both accounts in id order before the hold's.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

/* Longest submit_within or confirm_within. */
#define HOLD_MAX_WINDOW_DAYS	90

/* The state a hold is in at time now. */
const char *
ledger_hold_state(const LedgerHold *h, TimestampTz now)
{
	if (strcmp(h->state, "reserved") == 0 && h->submit_deadline <= now)
		return "expired";
	if (strcmp(h->state, "submitted") == 0 && !TIMESTAMP_IS_NOBEGIN(h->confirm_deadline) &&
		h->confirm_deadline <= now)
		return "timed_out";
	return h->state;
}


/* Refuse a move of a hold that has finished (LD024), naming it and its state. */
void
ledger_hold_refuse(const LedgerHold *h, const char *state, const char *move)
{
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_HOLD_FINISHED),
			 errmsg("hold %s is %s and cannot be %s", ledger_uuid_str(&h->id), state, move),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOLD_FINISHED, LEDGER_FACT_ID("hold_id", &h->id), LEDGER_FACT_TEXT("account", h->account_code), LEDGER_FACT_TEXT("state", state), LEDGER_FACT_AMOUNT("amount", h->amount), LEDGER_FACT_AMOUNT("captured", h->captured), LEDGER_FACT_AMOUNT("remaining", h->remaining), NULL), "Hold %s on account \"%s\" is %s: %s of %s was captured, %s remains.",
					   ledger_uuid_str(&h->id), h->account_code, state,
					   ledger_numeric_str(h->captured), ledger_numeric_str(h->amount),
					   ledger_numeric_str(h->remaining))));
}

/*
 * Take a hold for a move: lock its account's balance row, then the hold's
 * row, and read both.  LD023 if there is no such hold.  With skip_locked,
 * false when another transaction holds the account's row (nothing taken).
 */
bool
ledger_hold_take(const pg_uuid_t *id, bool skip_locked, LedgerHold *h, LedgerHoldAccount *acct)
{
	ledger_hold_get(id, false, h);
	if (!ledger_hold_lock_account(h->account_id, skip_locked, acct))
		return false;
	ledger_hold_get(id, true, h);
	return true;
}

/*
 * Read a hold (locked: FOR UPDATE, after its account's balance row);
 * LD023 if there is none.  Holds are never deleted: one read unlocked is
 * still there when read again locked.
 */
void
ledger_hold_get(const pg_uuid_t *id, bool lock, LedgerHold *h)
{
	if (ledger_hold_read(id, lock, h))
		return;
	if (lock)
		elog(ERROR, "hold %s disappeared", ledger_uuid_str(id));
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_UNKNOWN_HOLD),
			 errmsg("hold %s does not exist", ledger_uuid_str(id)),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_HOLD, LEDGER_FACT_ID("hold_id", id), NULL), NULL)));
}

/* Does a hold in this (effective) state still keep money, and move? */
bool
ledger_hold_open(const char *state)
{
	return strcmp(state, "reserved") == 0 || strcmp(state, "submitted") == 0 ||
		strcmp(state, "timed_out") == 0;
}

/* A deadline now + window, refused unless 0 < window <= HOLD_MAX_WINDOW_DAYS. */
static TimestampTz
window_end(TimestampTz now, Interval *window, const char *name)
{
	TimestampTz end = 0;

	/* fields far beyond the bound could overflow the addition: refused as is */
	if (window->month >= -1200 && window->month <= 1200 &&
		window->day >= -36500 && window->day <= 36500 &&
		window->time >= -36500 * USECS_PER_DAY && window->time <= 36500 * USECS_PER_DAY)
		end = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													  TimestampTzGetDatum(now),
													  IntervalPGetDatum(window)));
	if (end <= now || end - now > (TimestampTz) HOLD_MAX_WINDOW_DAYS * USECS_PER_DAY)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("%s must be positive and at most %d days", name, HOLD_MAX_WINDOW_DAYS),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", name),
													  LEDGER_FACT_TEXT("given", DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(window)))),
													  NULL),
										"%s is %s.", name,
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(window))))));
	return end;
}

/* Fingerprint of a hold request, for its idempotency key. */
static bytea *
hold_hash(LedgerLeg *legs, bool exclusive, Numeric amount, const char *ref,
		  Interval *submit, Interval *confirm, Jsonb *metadata)
{
	StringInfoData buf;

	/* intervals by their fields: their text form follows IntervalStyle */
	initStringInfo(&buf);
	appendStringInfo(&buf, "hold\n%zu:%s\n%zu:%s\n%s\n%s\n%s%s\n%d:%d:" INT64_FORMAT "\n%d:%d:" INT64_FORMAT "\n",
					 strlen(legs[0].code), legs[0].code,
					 exclusive ? strlen(legs[1].code) : 0, exclusive ? legs[1].code : "",
					 exclusive ? "exclusive" : "shared", numeric_normalize(amount),
					 ref ? "ref:" : "noref", ref ? ref : "",
					 submit->month, submit->day, submit->time,
					 confirm->month, confirm->day, confirm->time);
	appendStringInfoString(&buf, JsonbToCString(NULL, &metadata->root, VARSIZE(metadata)));
	return ledger_fingerprint(buf.data, buf.len);
}

/* A hold key taken before: the same request gets its hold, another LD007. */
static bool
hold_replay(const char *key, int64 account_id, bytea *hash, pg_uuid_t *id)
{
	bytea	   *taken;

	if (!ledger_hold_find_key(key, account_id, id, &taken))
		return false;
	ledger_require_same_request(key, taken, hash, "hold", id);
	return true;
}

/* A numeric copied out of SPI's memory into the caller's, before SPI_finish. */
static Numeric
keep_numeric(MemoryContext caller, Numeric n)
{
	MemoryContext old = MemoryContextSwitchTo(caller);
	Numeric		copy = DatumGetNumericCopy(NumericGetDatum(n));

	MemoryContextSwitchTo(old);
	return copy;
}

static void
refuse_hot(const char *code)
{
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_HOLD_HOT),
			 errmsg("account \"%s\" is hot and takes no holds", code),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOLD_HOT, LEDGER_FACT_TEXT("account", code), NULL), "Account \"%s\" keeps its balance in shared memory; holds are checked at the balance row.", code),
			 errhint("Switch the account to cold with ledger.set_account_mode to hold its money.")));
}

PG_FUNCTION_INFO_V1(ledger_hold);

Datum
ledger_hold(PG_FUNCTION_ARGS)
{
	LedgerLeg	legs[2];
	Numeric		amount;
	char	   *mode;
	bool		exclusive;
	char	   *ref;
	Interval   *submit;
	Interval   *confirm;
	char	   *key;
	Jsonb	   *metadata;
	bytea	   *hash;
	LedgerHoldAccount acct;
	LedgerHeld	held = {0};
	LedgerHold	h;
	TimestampTz now;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	LEDGER_REQUIRE_ARG(0, "from_account");
	LEDGER_REQUIRE_ARG(1, "amount");
	LEDGER_REQUIRE_ARG(3, "mode");
	LEDGER_REQUIRE_ARG(5, "submit_within");
	LEDGER_REQUIRE_ARG(6, "confirm_within");
	LEDGER_REQUIRE_ARG(8, "metadata");
	legs[0].code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	amount = PG_GETARG_NUMERIC(1);
	legs[1].code = ledger_optional_code(fcinfo, 2, "account code");
	mode = text_to_cstring(PG_GETARG_TEXT_PP(3));
	ref = ledger_optional_code(fcinfo, 4, "external_ref");
	submit = PG_GETARG_INTERVAL_P(5);
	confirm = PG_GETARG_INTERVAL_P(6);
	key = ledger_optional_code(fcinfo, 7, "idempotency_key");
	metadata = PG_GETARG_JSONB_P(8);
	ledger_check_metadata(metadata);

	if (strcmp(mode, "exclusive") != 0 && strcmp(mode, "shared") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("hold mode must be \"exclusive\" or \"shared\""),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "mode"),
													  LEDGER_FACT_TEXT("given", strlen(mode) <= 200 ? mode : NULL),
													  NULL),
										"The mode given is \"%s\".", mode)));
	exclusive = mode[0] == 'e';
	if (exclusive && legs[1].code == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("an exclusive hold needs to_account"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("account", legs[0].code),
													  LEDGER_FACT_TEXT("argument", "to_account"),
													  NULL),
										"The hold on account \"%s\" names no account to capture to.",
						   legs[0].code)));
	if (!exclusive && legs[1].code != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("a shared hold cannot name to_account"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("account", legs[0].code),
													  LEDGER_FACT_TEXT("argument", "to_account"),
													  NULL),
										"Shared holds keep money in place on account \"%s\"; they are never captured.",
						   legs[0].code)));
	if (exclusive && strcmp(legs[0].code, legs[1].code) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("cannot hold money for a capture to the same account"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("account", legs[0].code),
													  NULL),
										"Both sides name account \"%s\".", legs[0].code)));
	now = GetCurrentTimestamp();
	(void) window_end(now, submit, "submit_within");
	(void) window_end(now, confirm, "confirm_within");
	PreventCommandIfReadOnly("ledger.hold");
	ledger_rate_check("ledger.hold");

	SPI_connect();
	ledger_check_debit_owner(legs[0].code, "ledger.hold");
	ledger_resolve_accounts(legs, exclusive ? 2 : 1);
	if (exclusive)
		ledger_check_same_asset(legs);
	amount = ledger_check_amount(amount, legs[0].account, false);
	hash = key ? hold_hash(legs, exclusive, amount, ref, submit, confirm, metadata) : NULL;

	/* the atomic step: balance row lock, then what is held, then the write */
	(void) ledger_hold_lock_account(legs[0].account->id, false, &acct);
	if (key && hold_replay(key, legs[0].account->id, hash, id))
	{
		SPI_finish();
		PG_RETURN_UUID_P(id);
	}
	if (acct.hot)
		refuse_hot(legs[0].code);
	now = GetCurrentTimestamp();
	if (acct.open_holds > 0)
		ledger_held(legs[0].account->id, now, &held);
	if (acct.max_active_holds >= 0 && held.active >= acct.max_active_holds)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOLD_LIMIT),
				 errmsg("account \"%s\" has reached its limit of %d active holds",
						legs[0].code, acct.max_active_holds),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOLD_LIMIT, LEDGER_FACT_TEXT("account", legs[0].code), LEDGER_FACT_INT("active", held.active), LEDGER_FACT_INT("max_active_holds", acct.max_active_holds), NULL), "Account \"%s\" has %d active holds; ledger.set_account_limits allows %d.",
						   legs[0].code, held.active, acct.max_active_holds)));
	ledger_check_room(legs[0].account, acct.balance, NULL, acct.open_holds > 0 ? &held : NULL,
					  exclusive ? amount : NULL, exclusive ? NULL : amount,
					  exclusive ? "exclusive hold" : "shared hold");

	memset(&h, 0, sizeof(h));
	ledger_uuidv7(&h.id);
	h.account_id = legs[0].account->id;
	h.account_code = legs[0].code;
	h.to_account_id = exclusive ? legs[1].account->id : 0;
	h.exclusive = exclusive;
	h.amount = amount;
	h.captured = ledger_numeric_add(amount, ledger_numeric_neg(amount));	/* 0, at scale */
	h.remaining = amount;
	h.state = "reserved";
	h.external_ref = ref;
	h.submit_deadline = window_end(now, submit, "submit_within");
	h.confirm_within = confirm;
	h.confirm_deadline = DT_NOBEGIN;
	if (!ledger_hold_insert(&h, submit, now, key, hash, metadata))
	{
		/* a concurrent hold with this key committed meanwhile */
		if (!hold_replay(key, legs[0].account->id, hash, id))
			elog(ERROR, "idempotency key \"%s\" conflicted but its hold is not visible", key);
		SPI_finish();
		PG_RETURN_UUID_P(id);
	}
	SPI_finish();

	memcpy(id, &h.id, sizeof(pg_uuid_t));
	PG_RETURN_UUID_P(id);
}

PG_FUNCTION_INFO_V1(ledger_mark_submitted);

/*
 * reserved -> submitted, before the request goes out.  Marking a hold
 * that is already submitted (or timed out) again is a no-op, so a retry
 * is safe; a different external_ref than the one recorded is refused.
 */
Datum
ledger_mark_submitted(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	char	   *ref;
	LedgerHold	h;
	LedgerHoldAccount acct;
	const char *state;
	TimestampTz now;

	LEDGER_REQUIRE_ARG(0, "hold_id");
	id = PG_GETARG_UUID_P(0);
	ref = ledger_optional_code(fcinfo, 1, "external_ref");
	PreventCommandIfReadOnly("ledger.mark_submitted");

	SPI_connect();
	(void) ledger_hold_take(id, false, &h, &acct);
	now = GetCurrentTimestamp();
	state = ledger_hold_state(&h, now);
	if (ref && h.external_ref && strcmp(ref, h.external_ref) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("hold %s already has external_ref \"%s\"", ledger_uuid_str(&h.id), h.external_ref),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_ID("hold_id", &h.id),
													  LEDGER_FACT_TEXT("account", h.account_code),
													  LEDGER_FACT_TEXT("external_ref", h.external_ref),
													  LEDGER_FACT_TEXT("argument", "external_ref"),
													  LEDGER_FACT_TEXT("given", ref),
													  NULL),
										"Hold %s on account \"%s\" was given external_ref \"%s\".",
						   ledger_uuid_str(&h.id), h.account_code, ref)));
	if (strcmp(state, "submitted") == 0 || strcmp(state, "timed_out") == 0)
	{
		if (ref && !h.external_ref)
		{
			LedgerJson *j = ledger_json_begin();

			h.external_ref = ref;
			ledger_json_text(j, "external_ref", ref);
			(void) ledger_hold_move(&h, now, 0, "submitted", NULL, NULL, NULL, NULL,
									ledger_json_end(j));
		}
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (strcmp(state, "reserved") != 0)
		ledger_hold_refuse(&h, state, "submitted");
	h.state = "submitted";
	if (ref)
		h.external_ref = ref;
	h.confirm_deadline = window_end(now, h.confirm_within, "confirm_within");
	(void) ledger_hold_move(&h, now, 0, "submitted", NULL, NULL, NULL, NULL, NULL);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(ledger_void);

/*
 * Release what remains of a hold; returns it.  With an idempotency key, a
 * retry returns the first call's amount and writes nothing.
 */
Datum
ledger_void(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id;
	char	   *reason;
	char	   *key;
	LedgerHold	h;
	LedgerHoldAccount acct;
	const char *state;
	TimestampTz now;
	Numeric		released;
	MemoryContext caller = CurrentMemoryContext;

	LEDGER_REQUIRE_ARG(0, "hold_id");
	LEDGER_REQUIRE_ARG(1, "reason");
	id = PG_GETARG_UUID_P(0);
	reason = ledger_check_code(PG_GETARG_TEXT_PP(1), "reason");
	key = ledger_optional_code(fcinfo, 2, "idempotency_key");
	PreventCommandIfReadOnly("ledger.void");
	ledger_rate_check("ledger.void");

	SPI_connect();
	(void) ledger_hold_take(id, false, &h, &acct);
	ledger_check_debit_owner(h.account_code, "ledger.void");
	if (key)
	{
		pg_uuid_t	other;
		char	   *event;
		Numeric		amount;

		if (ledger_hold_event_by_key(key, h.account_id, &other, &event, &amount))
		{
			if (memcmp(&other, id, sizeof(pg_uuid_t)) != 0 || strcmp(event, "voided") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT),
						 errmsg("idempotency key \"%s\" was already used for a different request", key),
						 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT, LEDGER_FACT_TEXT("idempotency_key", key), LEDGER_FACT_TEXT("original_kind", "hold_event"), LEDGER_FACT_ID("original_id", &other), LEDGER_FACT_TEXT("original_event", event), NULL), "The key belongs to the %s event of hold %s.",
								   event, ledger_uuid_str(&other))));
			amount = keep_numeric(caller, amount);
			SPI_finish();
			PG_RETURN_NUMERIC(amount);
		}
	}
	now = GetCurrentTimestamp();
	state = ledger_hold_state(&h, now);
	if (!ledger_hold_open(state))
		ledger_hold_refuse(&h, state, "voided");
	released = h.remaining;
	h.remaining = ledger_numeric_add(released, ledger_numeric_neg(released));	/* 0, at scale */
	h.state = "voided";
	if (!ledger_hold_move(&h, now, -1, "voided", released, NULL, reason, key, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT),
				 errmsg("idempotency key \"%s\" was already used for a different request", key),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT, LEDGER_FACT_TEXT("idempotency_key", key), LEDGER_FACT_TEXT("original_kind", "hold_event"), LEDGER_FACT_TEXT("original_id", NULL), NULL), "The key was taken by a move of another hold while hold %s was voided.",
						   ledger_uuid_str(&h.id))));
	released = keep_numeric(caller, released);
	SPI_finish();
	PG_RETURN_NUMERIC(released);
}

/* An account by code, resolved as a posting resolves it (LD002 if unknown). */
static LedgerAccount *
resolve_one(const char *code)
{
	LedgerLeg	leg;

	leg.code = (char *) code;
	ledger_resolve_accounts(&leg, 1);
	return leg.account;
}

PG_FUNCTION_INFO_V1(ledger_set_account_limits);

Datum
ledger_set_account_limits(PG_FUNCTION_ARGS)
{
	char	   *code;
	int			max = -1;
	LedgerAccount *a;
	LedgerHoldAccount acct;

	LEDGER_REQUIRE_ARG(0, "account");
	code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	if (!PG_ARGISNULL(1))
	{
		max = PG_GETARG_INT32(1);
		if (max < 0)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
					 errmsg("max_active_holds must not be negative"),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
														  LEDGER_FACT_TEXT("account", code),
														  LEDGER_FACT_TEXT("argument", "max_active_holds"),
														  LEDGER_FACT_INT("given", max),
														  NULL),
											"Account \"%s\", max_active_holds %d.", code, max)));
	}
	PreventCommandIfReadOnly("ledger.set_account_limits");
	SPI_connect();
	a = resolve_one(code);
	(void) ledger_hold_lock_account(a->id, false, &acct);
	ledger_hold_set_limit(a->id, max);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(ledger_available_balance);

/*
 * balance - held exclusive - largest shared - min_balance, now; NULL for
 * an unbounded account.  A hot account's balance is its effective balance
 * (folded plus unfolded); it has no holds.
 */
Datum
ledger_available_balance(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *code;
	LedgerAccount *a;
	LedgerHeld	held;
	Datum		arg;
	bool		isnull;
	Numeric		v;
	MemoryContext caller = CurrentMemoryContext;

	LEDGER_REQUIRE_ARG(0, "account");
	code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	SPI_connect();
	a = resolve_one(code);
	if (a->unbounded)
	{
		SPI_finish();
		PG_RETURN_NULL();
	}
	if (plan == NULL)
		plan = ledger_prepare("SELECT balance FROM ledger.effective_balance WHERE account_id = $1",
							  1, (Oid[]) {INT8OID});
	arg = Int64GetDatum(a->id);
	ledger_spi_exec(plan, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "account \"%s\" has no balance row", code);
	v = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ledger_held(a->id, GetCurrentTimestamp(), &held);
	v = ledger_numeric_add(ledger_not_held(v, &held), ledger_numeric_neg(a->min_balance));
	v = keep_numeric(caller, v);
	SPI_finish();
	PG_RETURN_NUMERIC(v);
}
