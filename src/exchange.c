/*-------------------------------------------------------------------------
 *
 * exchange.c
 *	  ledger.exchange: convert an amount of one asset (the base, a token)
 *	  into another (the quote) at the pair's newest rate, in one posting:
 *
 *	    from_account            - amount          (base)
 *	    base liquidity account  + amount          (base)
 *	    quote liquidity account - gross           (quote)
 *	    to_account              + gross - spread  (quote)
 *	    quote spread account    + spread          (quote, when spread > 0)
 *
 *	  and one ledger.token_transaction row (token amount, rate and when it
 *	  was observed, gross quote amount, spread rate and amount), so every
 *	  asset nets to zero and rate and spread stay recoverable.
 *
 * Rounding, in favour of the liquidity account (and of the customer for
 * the spread): gross = amount * rate cut (toward zero) to the quote
 * asset's scale; spread amount = gross * spread cut the same way.  Either
 * must leave something: a gross or net amount of 0 is refused (LD005).
 *
 * Freshness: the newest rate must be younger than max_rate_age (default
 * ledger.max_rate_age).  Otherwise LD037 (retryable), or with wait > 0
 * the call sleeps on its latch (CHECK_FOR_INTERRUPTS between naps)
 * re-reading the rate with a fresh snapshot, until one arrives or wait
 * runs out.  It waits before it writes or locks anything.  With an
 * idempotency key, a retry of a committed exchange returns its id without
 * reading the rate: the key is looked up first.
 *
 * Locking: the posting's (balance rows in account id order, balance.c);
 * nothing while waiting.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/wait_event.h"

/* How long one nap of a waiting exchange lasts. */
#define EXCHANGE_NAP_MS 20
/* Longest max_rate_age a call may ask for. */
#define EXCHANGE_MAX_AGE_S 3600
/* Longest wait: its statement's snapshot holds back vacuum meanwhile. */
#define EXCHANGE_MAX_WAIT_S 60

/* The liquidity (and spread) accounts of an asset: LD036 unless configured. */
static void
exchange_accounts(const char *asset, bool need_spread, char **liquidity, char **spread)
{
	static SPIPlanPtr plan = NULL;
	Datum		arg;

	if (plan == NULL)
		plan = ledger_prepare(
			"SELECT l.code, s.code FROM ledger.exchange_account e "
			"  JOIN ledger.account l ON l.id = e.liquidity_account_id "
			"  LEFT JOIN ledger.account s ON s.id = e.spread_account_id "
			" WHERE e.asset = $1",
			1, (Oid[]) {TEXTOID});
	arg = CStringGetTextDatum(asset);
	ledger_spi_exec(plan, &arg, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_EXCHANGE_NOT_CONFIGURED),
				 errmsg("asset \"%s\" has no liquidity account for exchanges", asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_EXCHANGE_NOT_CONFIGURED,
													 LEDGER_FACT_TEXT("asset", asset),
													 LEDGER_FACT_TEXT("missing", "liquidity_account"), NULL),
										"An exchange in or out of %s needs the account that provides and absorbs it.", asset),
				 errhint("Name one with ledger.set_exchange_accounts.")));
	*liquidity = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	*spread = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (need_spread && *spread == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_EXCHANGE_NOT_CONFIGURED),
				 errmsg("asset \"%s\" has no spread account", asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_EXCHANGE_NOT_CONFIGURED,
													 LEDGER_FACT_TEXT("asset", asset),
													 LEDGER_FACT_TEXT("missing", "spread_account"), NULL),
										"An exchange into %s with a spread needs one.", asset),
				 errhint("Name one with ledger.set_exchange_accounts.")));
}

/* An interval argument as microseconds: LD011 unless 0 <= it <= max_s (or > 0). */
static int64
interval_arg(Interval *iv, const char *what, bool positive, int max_s)
{
	return ledger_check_interval(iv, what, positive ? 1 : 0, (int64) max_s * USECS_PER_SEC,
								 psprintf("%s 0 and at most %d seconds",
										  positive ? "above" : "at least", max_s));
}

/*
 * The pair's newest rate no older than max_age_us, waiting up to wait_us
 * for one; LD037 otherwise.
 */
static void
fresh_rate(const char *base, const char *quote, int64 max_age_us, int64 wait_us,
		   Numeric *rate, TimestampTz *observed_at)
{
	TimestampTz deadline = GetCurrentTimestamp() + wait_us;

	for (;;)
	{
		TimestampTz now;
		bool		found = ledger_newest_rate(base, quote, rate, observed_at);

		now = GetCurrentTimestamp();
		if (found && now - *observed_at <= max_age_us)
			return;
		if (now >= deadline)
		{
			if (!found)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_STALE_RATE),
						 errmsg("no exchange rate for %s/%s", base, quote),
						 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_STALE_RATE,
															 LEDGER_FACT_TEXT("base", base),
															 LEDGER_FACT_TEXT("quote", quote),
															 LEDGER_FACT_TEXT("observed_at", NULL),
															 NULL),
												"Pair %s/%s has no rate at all%s.", base, quote,
								   wait_us > 0 ? " after the wait" : ""),
						 errhint("Retry once the rate feed delivers.")));
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_STALE_RATE),
					 errmsg("the exchange rate for %s/%s is stale", base, quote),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_STALE_RATE,
														 LEDGER_FACT_TEXT("base", base),
														 LEDGER_FACT_TEXT("quote", quote),
														 LEDGER_FACT_TEXT("observed_at", ledger_timestamptz_iso(*observed_at)),
														 LEDGER_FACT_INT("age_ms", (now - *observed_at) / 1000),
														 LEDGER_FACT_INT("max_age_ms", max_age_us / 1000),
														 NULL),
											"The newest rate of %s/%s was observed %.3f s ago, at %s; at most %.3f s is allowed.",
							   base, quote, (double) (now - *observed_at) / USECS_PER_SEC,
							   DatumGetCString(DirectFunctionCall1(timestamptz_out,
																   TimestampTzGetDatum(*observed_at))),
							   (double) max_age_us / USECS_PER_SEC),
					 errhint("Retry once the rate feed delivers; exchanges resume by themselves.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(EXCHANGE_NAP_MS, (deadline - now) / 1000 + 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The request's fingerprint (not its legs: they depend on the rate). */
static bytea *
exchange_hash(const char *from, const char *to, Numeric amount, Numeric spread, Jsonb *metadata)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "exchange\n%zu:%s\n%zu:%s\n%s\n%s\n", strlen(from), from, strlen(to), to,
					 numeric_normalize(amount), numeric_normalize(spread));
	appendStringInfoString(&buf, JsonbToCString(NULL, &metadata->root, VARSIZE(metadata)));
	return ledger_fingerprint(buf.data, buf.len);
}

static void
insert_token_row(pg_uuid_t *txid, const LedgerAccount *from, const LedgerAccount *to,
				 Numeric amount, Numeric rate, Numeric gross, TimestampTz observed_at,
				 Numeric spread, Numeric spread_amount)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[11];

	if (plan == NULL)
		plan = ledger_prepare(
			"INSERT INTO ledger.token_transaction (transaction_id, account_id, token, token_amount, "
			"  rate, quote_asset, quote_amount, rate_observed_at, to_account_id, spread, spread_amount) "
			"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
			11, (Oid[]) {UUIDOID, INT8OID, TEXTOID, NUMERICOID, NUMERICOID, TEXTOID, NUMERICOID,
						 TIMESTAMPTZOID, INT8OID, NUMERICOID, NUMERICOID});
	values[0] = UUIDPGetDatum(txid);
	values[1] = Int64GetDatum(from->id);
	values[2] = CStringGetTextDatum(from->asset);
	values[3] = NumericGetDatum(amount);
	values[4] = NumericGetDatum(rate);
	values[5] = CStringGetTextDatum(to->asset);
	values[6] = NumericGetDatum(gross);
	values[7] = TimestampTzGetDatum(observed_at);
	values[8] = Int64GetDatum(to->id);
	values[9] = NumericGetDatum(spread);
	values[10] = NumericGetDatum(spread_amount);
	ledger_spi_exec(plan, values, NULL, SPI_OK_INSERT);
}

/* The account of a code: LD002 unless it exists. */
static void
exchange_account(const char *code, LedgerAccount *a)
{
	TransactionId xmin;

	if (!ledger_lookup_account(code, a, &xmin))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
				 errmsg("account \"%s\" does not exist", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ACCOUNT, LEDGER_FACT_TEXT("account", code), NULL), "An exchange names account \"%s\".", code)));
}

PG_FUNCTION_INFO_V1(ledger_exchange);

Datum
ledger_exchange(PG_FUNCTION_ARGS)
{
	char	   *from_code;
	char	   *to_code;
	Numeric		amount;
	int64		max_age_us;
	int64		wait_us;
	Numeric		spread;
	char	   *key;
	Jsonb	   *metadata;
	bytea	   *hash = NULL;
	LedgerAccount from;
	LedgerAccount to;
	char	   *base_liquidity;
	char	   *quote_liquidity;
	char	   *spread_account;
	char	   *unused;
	Numeric		rate;
	TimestampTz observed_at;
	Numeric		gross;
	Numeric		spread_amount;
	Numeric		net;
	LedgerLeg	legs[5];
	int			nlegs;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	LEDGER_REQUIRE_ARG(0, "from_account");
	LEDGER_REQUIRE_ARG(1, "to_account");
	LEDGER_REQUIRE_ARG(2, "amount");
	LEDGER_REQUIRE_ARG(4, "wait");
	LEDGER_REQUIRE_ARG(5, "spread");
	LEDGER_REQUIRE_ARG(7, "metadata");
	from_code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	to_code = ledger_check_code(PG_GETARG_TEXT_PP(1), "account code");
	amount = PG_GETARG_NUMERIC(2);
	max_age_us = PG_ARGISNULL(3) ? (int64) ledger_max_rate_age_s * USECS_PER_SEC :
		interval_arg(PG_GETARG_INTERVAL_P(3), "max_rate_age", true, EXCHANGE_MAX_AGE_S);
	wait_us = interval_arg(PG_GETARG_INTERVAL_P(4), "wait", false, EXCHANGE_MAX_WAIT_S);
	spread = PG_GETARG_NUMERIC(5);
	key = ledger_optional_code(fcinfo, 6, "idempotency_key");
	metadata = PG_GETARG_JSONB_P(7);
	ledger_check_metadata(metadata);
	if (numeric_is_nan(spread) || numeric_is_inf(spread) || ledger_numeric_sign(spread) < 0 ||
		ledger_numeric_cmp(spread, int64_to_numeric(1)) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("spread must be at least 0 and below 1"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "spread"),
													  LEDGER_FACT_AMOUNT("given", spread),
													  NULL),
										"The spread given is %s (a fraction of the converted amount).",
						   ledger_numeric_str(spread))));
	if (strcmp(from_code, to_code) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("cannot exchange from an account to itself"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("account", from_code),
													  NULL),
										"Both sides name account \"%s\".", from_code)));
	if (wait_us > 0 && IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("ledger.exchange with a wait runs under READ COMMITTED only"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("isolation", ledger_isolation_name()),
													  NULL),
										"It waits for a rate committed after the call began, which this transaction's snapshot would never show.")));
	PreventCommandIfReadOnly("ledger.exchange");
	ledger_rate_check("ledger.exchange");

	SPI_connect();
	ledger_check_debit_owner(from_code, "ledger.exchange");
	exchange_account(from_code, &from);
	exchange_account(to_code, &to);
	if (strcmp(from.asset, to.asset) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_ASSET_MISMATCH),
				 errmsg("an exchange needs accounts of two different assets"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_ASSET_MISMATCH, LEDGER_FACT_TEXT("account", from_code), LEDGER_FACT_TEXT("asset", from.asset), LEDGER_FACT_TEXT("other_account", to_code), LEDGER_FACT_TEXT("other_asset", to.asset), NULL), "Accounts \"%s\" and \"%s\" both hold %s; use ledger.transfer.",
						   from_code, to_code, from.asset)));
	amount = ledger_check_amount(amount, &from, false);

	/* a retry of a committed exchange returns its id, whatever the rate now */
	if (key)
	{
		hash = exchange_hash(from_code, to_code, amount, spread, metadata);
		if (ledger_find_key(key, from.id, hash, id))
		{
			SPI_finish();
			PG_RETURN_UUID_P(id);
		}
	}
	exchange_accounts(from.asset, false, &base_liquidity, &unused);
	exchange_accounts(to.asset, ledger_numeric_sign(spread) > 0, &quote_liquidity, &spread_account);
	/* the house's own accounts are not customers: their legs would cancel out */
	if (strcmp(from_code, base_liquidity) == 0 || strcmp(to_code, quote_liquidity) == 0 ||
		(spread_account && strcmp(to_code, spread_account) == 0) ||
		(unused && strcmp(from_code, unused) == 0))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("an exchange cannot name a liquidity or spread account"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("account", strcmp(from_code, base_liquidity) == 0 || (unused && strcmp(from_code, unused) == 0) ? from_code : to_code),
													  NULL),
										"Accounts \"%s\" and \"%s\": liquidity and spread accounts are the other side of every exchange.",
						   from_code, to_code)));

	fresh_rate(from.asset, to.asset, max_age_us, wait_us, &rate, &observed_at);

	gross = ledger_numeric_trunc(ledger_numeric_mul(amount, rate), to.scale);
	if (ledger_numeric_cmp(gross, ledger_max_amount()) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("%s %s converts to too much %s", ledger_numeric_str(amount), from.asset, to.asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT, LEDGER_FACT_TEXT("argument", "amount"), LEDGER_FACT_AMOUNT("given", amount), LEDGER_FACT_TEXT("reason", "too_large"), LEDGER_FACT_AMOUNT("rate", rate), LEDGER_FACT_AMOUNT("converted", gross), LEDGER_FACT_TEXT("asset", to.asset), NULL), "At rate %s it is %s %s; amounts must be below 10^%d.",
						   ledger_numeric_str(rate), ledger_numeric_str(gross), to.asset,
						   LEDGER_MAX_AMOUNT_DIGITS)));
	spread_amount = ledger_numeric_trunc(ledger_numeric_mul(gross, spread), to.scale);
	net = ledger_numeric_add(gross, ledger_numeric_neg(spread_amount));
	if (ledger_numeric_sign(net) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("%s %s converts to nothing in %s", ledger_numeric_str(amount), from.asset,
						to.asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT, LEDGER_FACT_TEXT("argument", "amount"), LEDGER_FACT_AMOUNT("given", amount), LEDGER_FACT_TEXT("reason", "converts_to_nothing"), LEDGER_FACT_AMOUNT("rate", rate), LEDGER_FACT_AMOUNT("converted", gross), LEDGER_FACT_AMOUNT("net", net), LEDGER_FACT_TEXT("asset", to.asset), NULL), "At rate %s, %s %s is %s %s at scale %d, and %s after the spread.",
						   ledger_numeric_str(rate), ledger_numeric_str(amount), from.asset,
						   ledger_numeric_str(gross), to.asset, to.scale,
						   ledger_numeric_str(net))));

	legs[0] = (LedgerLeg) {from_code, ledger_numeric_neg(amount), NULL};
	legs[1] = (LedgerLeg) {base_liquidity, amount, NULL};
	legs[2] = (LedgerLeg) {quote_liquidity, ledger_numeric_neg(gross), NULL};
	legs[3] = (LedgerLeg) {to_code, net, NULL};
	nlegs = 4;
	if (ledger_numeric_sign(spread_amount) > 0)
		legs[nlegs++] = (LedgerLeg) {spread_account, spread_amount, NULL};
	if (ledger_post_legs(id, "exchange", legs, nlegs, key, hash, metadata, false))
		insert_token_row(id, &from, &to, amount, rate, gross, observed_at, spread, spread_amount);
	SPI_finish();
	PG_RETURN_UUID_P(id);
}
