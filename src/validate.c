/*-------------------------------------------------------------------------
 *
 * validate.c
 *	  Input checks shared by the API: codes, keys, amounts and metadata, and
 *	  the few numeric helpers the posting code needs.  Every failure here is
 *	  a user error and raises an LD SQLSTATE with the offending value in
 *	  errdetail; nothing here touches a table.
 *
 * Locking: none.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "common/int.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

static Numeric max_amount = NULL;	/* 10^LEDGER_MAX_AMOUNT_DIGITS */

/*
 * A code (account, asset, owner, idempotency key): not NULL (checked by the
 * caller), 1..LEDGER_MAX_CODE_LEN bytes, no control characters.  Anything
 * else is allowed: codes only ever travel as parameters.
 */
char *
ledger_check_code(text *t, const char *what)
{
	char	   *s = text_to_cstring(t);
	size_t		len = strlen(s);
	size_t		i;

	if (len == 0 || len > LEDGER_MAX_CODE_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("%s must be between 1 and %d bytes long", what, LEDGER_MAX_CODE_LEN),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													 LEDGER_FACT_TEXT("argument", what),
													 LEDGER_FACT_INT("bytes", len),
													 LEDGER_FACT_INT("max_bytes", LEDGER_MAX_CODE_LEN),
													 NULL),
										"The %s given is %zu bytes long.", what, len)));
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == 0x7F)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
					 errmsg("%s must not contain control characters", what),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
														 LEDGER_FACT_TEXT("argument", what),
														 LEDGER_FACT_INT("byte", i + 1),
														 NULL),
											"Control character 0x%02X at byte %zu.", c, i + 1)));
	}
	return s;
}

/*
 * A role argument (argument argno, type name): not NULL and an existing
 * role, else LD011.  what says what the role is for.
 */
char *
ledger_known_role(FunctionCallInfo fcinfo, int argno, const char *what)
{
	char	   *role;

	LEDGER_REQUIRE_ARG(argno, "role");
	role = NameStr(*PG_GETARG_NAME(argno));
	if (!OidIsValid(get_role_oid(role, true)))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("role \"%s\" does not exist", role),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "role"),
													  LEDGER_FACT_TEXT("role", role),
													  NULL),
										"%s apply to an existing role.", what)));
	return role;
}

/* 10^LEDGER_MAX_AMOUNT_DIGITS: amounts and rates stay below it. */
Numeric
ledger_max_amount(void)
{
	if (max_amount == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		max_amount = DatumGetNumeric(DirectFunctionCall3(numeric_in,
														 CStringGetDatum("1e30"),
														 ObjectIdGetDatum(InvalidOid),
														 Int32GetDatum(-1)));
		MemoryContextSwitchTo(old);
	}
	return max_amount;
}

/*
 * A finite number, below the size limit, with no more decimals than the
 * asset allows.  "what" names the value in the message ("amount",
 * "min_balance").  Trailing zeros beyond the scale are accepted: 10.500 is
 * 10.50.  Returns the value at exactly the asset's scale, as it is stored.
 */
Numeric
ledger_check_numeric_finite(Numeric n, const char *what, const char *asset, int scale)
{
	Numeric		abs;
	Numeric		rounded;

	if (numeric_is_nan(n) || numeric_is_inf(n))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("%s must be a finite number", what),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT,
													 LEDGER_FACT_TEXT("argument", what),
													 LEDGER_FACT_TEXT("given", ledger_numeric_str(n)),
													 LEDGER_FACT_TEXT("reason", "not_finite"),
													 NULL),
										"The %s given is %s.", what, ledger_numeric_str(n))));

	abs = DatumGetNumeric(DirectFunctionCall1(numeric_abs, NumericGetDatum(n)));
	if (ledger_numeric_cmp(abs, ledger_max_amount()) >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("%s is too large", what),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT,
													 LEDGER_FACT_TEXT("argument", what),
													 LEDGER_FACT_AMOUNT("given", n),
													 LEDGER_FACT_TEXT("reason", "too_large"),
													 LEDGER_FACT_INT("max_digits", LEDGER_MAX_AMOUNT_DIGITS),
													 NULL),
										"The %s given is %s; amounts must be below 10^%d.",
						   what, ledger_numeric_str(n), LEDGER_MAX_AMOUNT_DIGITS)));

	rounded = DatumGetNumeric(DirectFunctionCall2(numeric_round,
												  NumericGetDatum(n),
												  Int32GetDatum(scale)));
	if (ledger_numeric_cmp(rounded, n) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("%s has more decimals than asset \"%s\" allows", what, asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT,
													 LEDGER_FACT_TEXT("argument", what),
													 LEDGER_FACT_AMOUNT("given", n),
													 LEDGER_FACT_TEXT("reason", "too_many_decimals"),
													 LEDGER_FACT_TEXT("asset", asset),
													 LEDGER_FACT_INT("scale", scale),
													 NULL),
										"The %s given is %s; asset \"%s\" has scale %d.",
						   what, ledger_numeric_str(n), asset, scale)));
	return rounded;
}

/*
 * A posting amount for one account: finite, non-zero, within the asset's
 * scale, and positive unless allow_negative (signed legs).  Returns it at
 * the asset's scale.
 */
Numeric
ledger_check_amount(Numeric amount, const LedgerAccount *account, bool allow_negative)
{
	Numeric		result;
	int			sign;

	result = ledger_check_numeric_finite(amount, "amount", account->asset, account->scale);
	sign = ledger_numeric_sign(amount);
	if (sign == 0 || (sign < 0 && !allow_negative))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 errmsg("amount must be %s", allow_negative ? "non-zero" : "positive"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT,
													 LEDGER_FACT_TEXT("argument", "amount"),
													 LEDGER_FACT_AMOUNT("given", amount),
													 LEDGER_FACT_TEXT("reason", allow_negative ? "zero" : "not_positive"),
													 LEDGER_FACT_TEXT("account", account->code),
													 NULL),
										"Account \"%s\", amount %s.",
						   account->code, ledger_numeric_str(amount))));
	return result;
}

/*
 * Parse an amount given as a JSON string: what names it, leg its leg (0:
 * not a leg).  Only plain decimal notation is accepted
 * ([+-]digits[.digits]), so numeric_in can never fail on it.
 */
Numeric
ledger_parse_decimal(const char *str, int len, const char *what, int leg)
{
	int			i = 0;
	int			digits = 0;
	bool		dot = false;
	char	   *cstr;

	if (len > 0 && (str[0] == '+' || str[0] == '-'))
		i++;
	for (; i < len; i++)
	{
		if (str[i] >= '0' && str[i] <= '9')
			digits++;
		else if (str[i] == '.' && !dot)
			dot = true;
		else
			break;
	}
	if (i != len || digits == 0 || len > 64)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_AMOUNT),
				 leg > 0 ? errmsg("amount of leg %d is not a decimal number", leg)
				 : errmsg("%s is not a decimal number", what),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT,
													 LEDGER_FACT_TEXT("argument", what),
													 LEDGER_FACT_TEXT("given", pnstrdup(str, pg_mbcliplen(str, len, 64))),
													 LEDGER_FACT_TEXT("reason", "not_a_decimal"),
													 /* last: a NULL key ends the facts */
													 leg > 0 ? "leg" : NULL, 'i', (int64) leg,
													 NULL),
										"The amount given is \"%.*s\".", pg_mbcliplen(str, len, 64), str),
				 errhint("Give amounts as JSON numbers or strings such as \"-10.25\".")));

	cstr = pnstrdup(str, len);
	return DatumGetNumeric(DirectFunctionCall3(numeric_in,
											   CStringGetDatum(cstr),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
}

/* A leg's amount given as a JSON string (ledger_parse_decimal). */
Numeric
ledger_parse_amount(const char *str, int len, int leg)
{
	return ledger_parse_decimal(str, len, "amount", leg);
}

/*
 * Metadata: a JSON object of at most LEDGER_MAX_METADATA_SIZE bytes.
 */
void
ledger_check_metadata(Jsonb *metadata)
{
	if (!JB_ROOT_IS_OBJECT(metadata) || JB_ROOT_IS_SCALAR(metadata))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("metadata must be a JSON object"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "metadata"),
													  NULL),
										"The metadata given is a JSON %s.",
						   JB_ROOT_IS_ARRAY(metadata) && !JB_ROOT_IS_SCALAR(metadata) ?
						   "array" : "scalar")));
	if (VARSIZE(metadata) > LEDGER_MAX_METADATA_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("metadata is too large"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "metadata"),
													  LEDGER_FACT_INT("bytes", VARSIZE(metadata)),
													  LEDGER_FACT_INT("max_bytes", LEDGER_MAX_METADATA_SIZE),
													  NULL),
										"The metadata is %u bytes; the limit is %d.",
						   (unsigned int) VARSIZE(metadata), LEDGER_MAX_METADATA_SIZE)));
}

/* An optional code argument (an owner, a key, a reference): NULL, or checked as a code. */
char *
ledger_optional_code(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		return NULL;
	return ledger_check_code(PG_GETARG_TEXT_PP(argno), what);
}

/*
 * An idempotency key found taken by a transaction, hold or event (what,
 * owner): the request stored with it (taken, NULL if none) must be this
 * one (hash), else LD007.
 */
void
ledger_require_same_request(const char *key, bytea *taken, bytea *hash, const char *what,
							const pg_uuid_t *owner)
{
	if (taken != NULL &&
		DatumGetBool(DirectFunctionCall2(byteaeq, PointerGetDatum(taken), PointerGetDatum(hash))))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT),
			 errmsg("idempotency key \"%s\" was already used for a different request", key),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IDEMPOTENCY_CONFLICT,
											 LEDGER_FACT_TEXT("idempotency_key", key),
											 LEDGER_FACT_TEXT("original_kind", what),
											 LEDGER_FACT_ID("original_id", owner),
											 NULL),
								"The key belongs to %s %s, whose request differs from this one.",
					   what, ledger_uuid_str(owner))));
}

/*
 * An interval argument as microseconds, LD011 unless it has no months, at
 * most one day part, and lies in [min_us, max_us]; range says so in the
 * message ("between 1 second and 1 day").
 */
int64
ledger_check_interval(Interval *iv, const char *what, int64 min_us, int64 max_us,
					  const char *range)
{
	int64		us = 0;
	bool		bad;

	/* the day part is checked before it is multiplied: it may be huge */
	bad = iv->month != 0 || iv->day < 0 || iv->day > 1 ||
		pg_add_s64_overflow((int64) iv->day * USECS_PER_DAY, iv->time, &us) ||
		us < min_us || us > max_us;
	if (bad)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("%s must be %s", what, range),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", what),
													  LEDGER_FACT_TEXT("given", DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(iv)))),
													  NULL),
										"%s is %s.", what,
						   DatumGetCString(DirectFunctionCall1(interval_out,
															   IntervalPGetDatum(iv))))));
	return us;
}
