/*-------------------------------------------------------------------------
 *
 * rates.c
 *	  Exchange rates and the accounts of exchanges:
 *	  ledger.set_exchange_rate appends an observed rate to the rate history
 *	  (append-only); ledger.set_exchange_accounts names, per asset, the
 *	  liquidity account and the spread account; ledger.check_rate_feeds
 *	  announces feeds that went stale and came back (alerts rate_stale and
 *	  rate_recovered, also outbox messages), called by the fold worker every
 *	  second; ledger_newest_rate reads a pair's rate for exchange.c.
 *
 * A rate is quote units per one base unit: rate 2.5 for TOKEN/USD means
 * one TOKEN is worth 2.50 USD.  A pair's rate is its newest observation
 * (by observed_at, then id).  It is stale when older than
 * ledger.max_rate_age; a rate observed more than RATE_CLOCK_SKEW in the
 * future is refused, one slightly ahead (a feeder's clock) counts as fresh.
 *
 * Locking: rate rows are only inserted; ledger.rate_feed rows are updated
 * under row locks taken with SKIP LOCKED (the monitor runs inside the fold
 * worker's round and must never wait; a pair another transaction holds is
 * announced by the next check), and each change is announced once, since
 * the UPDATE re-checks the row's state.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/* GUC: how old a pair's newest rate may be for exchanges and the monitor. */
int			ledger_max_rate_age_s = 60;

/* How far in the future an observation may be (a feeder's clock). */
#define RATE_CLOCK_SKEW_S 5
/* Most decimals of a rate. */
#define RATE_MAX_SCALE 30

void
ledger_rates_init(void)
{
	DefineCustomIntVariable("ledger.max_rate_age",
							"How old the newest rate of a pair may be for an exchange to use it.",
							"ledger.exchange's max_rate_age overrides it per call; the rate monitor uses it.",
							&ledger_max_rate_age_s, 60, 1, 86400, PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* The asset's code, checked: LD003 unless it exists. */
static char *
known_asset(text *t, const char *what)
{
	char	   *code = ledger_check_code(t, what);

	if (ledger_asset_scale(code) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ASSET),
				 errmsg("asset \"%s\" does not exist", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ASSET, LEDGER_FACT_TEXT("asset", code), LEDGER_FACT_TEXT("argument", what), NULL), "The %s given names no asset.", what)));
	return code;
}

/*
 * The newest rate of a pair, read with a fresh snapshot (READ COMMITTED):
 * false if the pair has none.  Inside SPI.
 */
bool
ledger_newest_rate(const char *base, const char *quote, Numeric *rate, TimestampTz *observed_at)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2];
	bool		isnull;

	if (plan == NULL)
		plan = ledger_prepare(
			"SELECT rate, observed_at FROM ledger.exchange_rate "
			" WHERE base = $1 AND quote = $2 ORDER BY observed_at DESC, id DESC LIMIT 1",
			2, (Oid[]) {TEXTOID, TEXTOID});
	values[0] = CStringGetTextDatum(base);
	values[1] = CStringGetTextDatum(quote);
	ledger_spi_exec(plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return false;
	*rate = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											  &isnull));
	*observed_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);	/* a waiting exchange reads this every 20 ms */
	return true;
}

PG_FUNCTION_INFO_V1(ledger_set_exchange_rate);

Datum
ledger_set_exchange_rate(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr insert_plan = NULL;
	static SPIPlanPtr feed_plan = NULL;
	char	   *base;
	char	   *quote;
	Numeric		rate;
	TimestampTz observed_at;
	char	   *source = NULL;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int64		id;

	LEDGER_REQUIRE_ARG(0, "base");
	LEDGER_REQUIRE_ARG(1, "quote");
	LEDGER_REQUIRE_ARG(2, "rate");
	LEDGER_REQUIRE_ARG(3, "observed_at");
	base = known_asset(PG_GETARG_TEXT_PP(0), "base");
	quote = known_asset(PG_GETARG_TEXT_PP(1), "quote");
	rate = PG_GETARG_NUMERIC(2);
	observed_at = PG_GETARG_TIMESTAMPTZ(3);
	source = ledger_optional_code(fcinfo, 4, "source");
	if (strcmp(base, quote) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_RATE),
				 errmsg("an exchange rate needs two different assets"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_RATE,
													 LEDGER_FACT_TEXT("base", base),
													 LEDGER_FACT_TEXT("quote", base), NULL),
										"Both base and quote are \"%s\".", base)));
	if (numeric_is_nan(rate) || numeric_is_inf(rate) || ledger_numeric_sign(rate) <= 0 ||
		ledger_numeric_cmp(rate, ledger_max_amount()) >= 0 ||
		DatumGetInt32(DirectFunctionCall1(numeric_scale,
										  DirectFunctionCall1(numeric_trim_scale,
															  NumericGetDatum(rate)))) > RATE_MAX_SCALE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_RATE),
				 errmsg("an exchange rate must be a positive finite number below 10^%d with at most %d decimals",
						LEDGER_MAX_AMOUNT_DIGITS, RATE_MAX_SCALE),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_RATE,
													 LEDGER_FACT_TEXT("base", base),
													 LEDGER_FACT_TEXT("quote", quote),
													 LEDGER_FACT_TEXT("rate", ledger_numeric_str(rate)), NULL),
										"The rate given for %s/%s is %s.", base, quote,
						   ledger_numeric_str(rate))));
	if (TIMESTAMP_NOT_FINITE(observed_at) ||
		observed_at > TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RATE_CLOCK_SKEW_S * 1000))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_RATE),
				 errmsg("observed_at must not be more than %d seconds in the future", RATE_CLOCK_SKEW_S),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_RATE, LEDGER_FACT_TEXT("base", base), LEDGER_FACT_TEXT("quote", quote), NULL), "The rate for %s/%s was given as observed at %s.", base, quote,
						   DatumGetCString(DirectFunctionCall1(timestamptz_out,
															   TimestampTzGetDatum(observed_at))))));
	PreventCommandIfReadOnly("ledger.set_exchange_rate");

	SPI_connect();
	if (feed_plan == NULL)
		feed_plan = ledger_prepare(
			"INSERT INTO ledger.rate_feed (base, quote) VALUES ($1, $2) ON CONFLICT DO NOTHING",
			2, (Oid[]) {TEXTOID, TEXTOID});
	if (insert_plan == NULL)
		insert_plan = ledger_prepare(
			"INSERT INTO ledger.exchange_rate (base, quote, rate, observed_at, source, created_by) "
			"VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
			6, (Oid[]) {TEXTOID, TEXTOID, NUMERICOID, TIMESTAMPTZOID, TEXTOID, TEXTOID});
	values[0] = CStringGetTextDatum(base);
	values[1] = CStringGetTextDatum(quote);
	values[2] = NumericGetDatum(rate);
	values[3] = TimestampTzGetDatum(observed_at);
	values[4] = source ? CStringGetTextDatum(source) : (Datum) 0;
	nulls[4] = source ? ' ' : 'n';
	values[5] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	ledger_spi_exec(insert_plan, values, nulls, SPI_OK_INSERT_RETURNING);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	ledger_spi_exec(feed_plan, values, NULL, SPI_OK_INSERT);
	/* a stale pair with a fresh rate again: its recovery is announced now */
	(void) ledger_rate_feeds_check(base, quote, false);
	SPI_finish();
	PG_RETURN_INT64(id);
}

/* The account of an exchange_account column: LD002 unless it exists in that asset. */
static int64
exchange_account_id(text *t, const char *asset, const char *what)
{
	char	   *code = ledger_check_code(t, what);
	LedgerAccount a;
	TransactionId xmin;

	if (!ledger_lookup_account(code, &a, &xmin))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
				 errmsg("account \"%s\" does not exist", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ACCOUNT, LEDGER_FACT_TEXT("account", code), NULL), "The %s of asset %s must be an existing account.", what, asset)));
	if (strcmp(a.asset, asset) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_ASSET_MISMATCH),
				 errmsg("account \"%s\" holds %s, not %s", code, a.asset, asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_ASSET_MISMATCH, LEDGER_FACT_TEXT("account", code), LEDGER_FACT_TEXT("asset", a.asset), LEDGER_FACT_TEXT("expected_asset", asset), NULL), "The %s of asset %s must hold %s.", what, asset, asset)));
	return a.id;
}

PG_FUNCTION_INFO_V1(ledger_set_exchange_accounts);

Datum
ledger_set_exchange_accounts(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	char	   *asset;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};

	LEDGER_REQUIRE_ARG(0, "asset");
	LEDGER_REQUIRE_ARG(1, "liquidity_account");
	asset = known_asset(PG_GETARG_TEXT_PP(0), "asset");
	PreventCommandIfReadOnly("ledger.set_exchange_accounts");
	SPI_connect();
	values[0] = CStringGetTextDatum(asset);
	values[1] = Int64GetDatum(exchange_account_id(PG_GETARG_TEXT_PP(1), asset, "liquidity account"));
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	else
		values[2] = Int64GetDatum(exchange_account_id(PG_GETARG_TEXT_PP(2), asset, "spread account"));
	if (plan == NULL)
		plan = ledger_prepare(
			"INSERT INTO ledger.exchange_account (asset, liquidity_account_id, spread_account_id) "
			"VALUES ($1, $2, $3) ON CONFLICT (asset) DO UPDATE SET "
			"  liquidity_account_id = excluded.liquidity_account_id, "
			"  spread_account_id = excluded.spread_account_id, updated_at = pg_catalog.now()",
			3, (Oid[]) {TEXTOID, INT8OID, INT8OID});
	ledger_spi_exec(plan, values, nulls, SPI_OK_INSERT);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Announce what changed in the feeds (of one pair, or all with NULLs):
 * stale ones with a fresh rate recover (alert rate_recovered), and with
 * stale_too (the monitor) pairs whose newest rate is older than
 * ledger.max_rate_age become stale (alert rate_stale).  Inside SPI;
 * returns how many pairs changed.
 */
int
ledger_rate_feeds_check(const char *base, const char *quote, bool stale_too)
{
	static SPIPlanPtr stale_plan = NULL;
	static SPIPlanPtr fresh_plan = NULL;
	Datum		values[3];
	char		nulls[3] = {' ', ' ', ' '};
	int			changed = 0;
	int			pass;
	Interval   *max_age;

	if (fresh_plan == NULL)
	{
		/* the newest observation of the row's pair */
#define NEWEST "(SELECT max(x.observed_at) FROM ledger.exchange_rate x " \
			   " WHERE x.base = f.base AND x.quote = f.quote)"
		SPIPlanPtr	stale = ledger_prepare(
			"WITH due AS (SELECT base, quote FROM ledger.rate_feed f "
			"  WHERE f.stale_since IS NULL AND ($2 IS NULL OR f.base = $2) AND ($3 IS NULL OR f.quote = $3) "
			"    AND COALESCE(" NEWEST ", '-infinity') OPERATOR(pg_catalog.<) "
			"        (pg_catalog.now() OPERATOR(pg_catalog.-) $1) "
			"  FOR UPDATE SKIP LOCKED) "
			"UPDATE ledger.rate_feed f SET "
			"  stale_since = COALESCE(" NEWEST " OPERATOR(pg_catalog.+) $1, pg_catalog.now()), "
			"  checked_at = pg_catalog.now() "
			"  FROM due WHERE f.base = due.base AND f.quote = due.quote AND f.stale_since IS NULL "
			"RETURNING f.base, f.quote, f.stale_since, " NEWEST,
			3, (Oid[]) {INTERVALOID, TEXTOID, TEXTOID});

		fresh_plan = ledger_prepare(
			"WITH was AS (SELECT base, quote, stale_since FROM ledger.rate_feed f "
			"  WHERE f.stale_since IS NOT NULL AND ($2 IS NULL OR f.base = $2) "
			"    AND ($3 IS NULL OR f.quote = $3) "
			"    AND " NEWEST " OPERATOR(pg_catalog.>=) (pg_catalog.now() OPERATOR(pg_catalog.-) $1) "
			"  FOR UPDATE SKIP LOCKED) "
			"UPDATE ledger.rate_feed f SET stale_since = NULL, checked_at = pg_catalog.now() "
			"  FROM was WHERE f.base = was.base AND f.quote = was.quote AND f.stale_since IS NOT NULL "
			"RETURNING f.base, f.quote, was.stale_since, " NEWEST,
			3, (Oid[]) {INTERVALOID, TEXTOID, TEXTOID});
		stale_plan = stale;
#undef NEWEST
	}
	max_age = palloc0(sizeof(Interval));
	max_age->time = (int64) ledger_max_rate_age_s * USECS_PER_SEC;
	values[0] = IntervalPGetDatum(max_age);
	values[1] = base ? CStringGetTextDatum(base) : (Datum) 0;
	nulls[1] = base ? ' ' : 'n';
	values[2] = quote ? CStringGetTextDatum(quote) : (Datum) 0;
	nulls[2] = quote ? ' ' : 'n';
	for (pass = stale_too ? 0 : 1; pass < 2; pass++)
	{
		SPITupleTable *rows;
		uint64		n;
		uint64		i;

		ledger_spi_exec(pass == 0 ? stale_plan : fresh_plan, values, nulls,
						SPI_OK_UPDATE_RETURNING);
		rows = SPI_tuptable;
		n = SPI_processed;
		for (i = 0; i < n; i++)
		{
			LedgerJson *j = ledger_json_begin();
			bool		isnull;
			Datum		newest = SPI_getbinval(rows->vals[i], rows->tupdesc, 4, &isnull);

			ledger_json_text(j, "base", SPI_getvalue(rows->vals[i], rows->tupdesc, 1));
			ledger_json_text(j, "quote", SPI_getvalue(rows->vals[i], rows->tupdesc, 2));
			ledger_json_timestamptz(j, "stale_since",
									DatumGetTimestampTz(SPI_getbinval(rows->vals[i], rows->tupdesc,
																	  3, &isnull)));
			if (newest != (Datum) 0 && !isnull)
				ledger_json_timestamptz(j, "newest_observed_at", DatumGetTimestampTz(newest));
			ledger_json_int(j, "max_rate_age_seconds", ledger_max_rate_age_s);
			if (pass == 0)
				ledger_raise_alert("warning", "rate_stale", 0, ledger_json_end(j));
			else
				ledger_raise_alert("info", "rate_recovered", 0, ledger_json_end(j));
			changed++;
		}
	}
	return changed;
}

PG_FUNCTION_INFO_V1(ledger_check_rate_feeds);

Datum
ledger_check_rate_feeds(PG_FUNCTION_ARGS)
{
	int			changed;

	PreventCommandIfReadOnly("ledger.check_rate_feeds");
	SPI_connect();
	changed = ledger_rate_feeds_check(NULL, NULL, true);
	SPI_finish();
	PG_RETURN_INT32(changed);
}
