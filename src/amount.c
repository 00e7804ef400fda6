/*-------------------------------------------------------------------------
 *
 * amount.c
 *	  Amounts and days as the C code handles them: numeric arithmetic
 *	  through fmgr, numerics as text for messages, the scaled 128-bit
 *	  integers the hot-account escrow keeps (a numeric with at most "scale"
 *	  decimals times 10^scale, below LEDGER_SCALED_LIMIT in absolute value),
 *	  and the UTC day of a posting time.
 *
 * Locking: none; nothing here touches a table or shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"

/*
 * A numeric as text for messages.  Every value within the documented
 * limits (30 integer digits, 18 decimals, a sign) is given whole; longer
 * input (a caller can send 100,000 digits) is cut, keeping its length
 * visible.  Never for JSON: alerts carry numeric values (alert.c).
 */
char *
ledger_numeric_str(Numeric n)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	size_t		len = strlen(s);

	if (len > 64)
		return psprintf("%.56s... (%zu characters)", s, len);
	return s;
}

Numeric
ledger_numeric_add(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_add,
											   NumericGetDatum(a),
											   NumericGetDatum(b)));
}

Numeric
ledger_numeric_mul(Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_mul,
											   NumericGetDatum(a),
											   NumericGetDatum(b)));
}

/* a cut to scale decimals, toward zero (never up for a positive amount) */
Numeric
ledger_numeric_trunc(Numeric a, int scale)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_trunc,
											   NumericGetDatum(a),
											   Int32GetDatum(scale)));
}

Numeric
ledger_numeric_neg(Numeric a)
{
	return DatumGetNumeric(DirectFunctionCall1(numeric_uminus, NumericGetDatum(a)));
}

int
ledger_numeric_cmp(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
											 NumericGetDatum(a),
											 NumericGetDatum(b)));
}

int
ledger_numeric_sign(Numeric a)
{
	Numeric		s = DatumGetNumeric(DirectFunctionCall1(numeric_sign,
														NumericGetDatum(a)));

	return DatumGetInt32(DirectFunctionCall1(numeric_int4, NumericGetDatum(s)));
}

/*
 * A numeric with at most "scale" decimals as an integer scaled by
 * 10^scale.  Returns false unless its absolute value is below
 * LEDGER_SCALED_LIMIT (10^36) and it has no more decimals.
 */
bool
ledger_numeric_to_scaled(Numeric n, int scale, int128 *out)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	bool		neg = false;
	int128		v = 0;
	int			frac = -1;

	if (*s == '-')
	{
		neg = true;
		s++;
	}
	for (; *s; s++)
	{
		if (*s == '.')
		{
			frac = 0;
			continue;
		}
		if (*s < '0' || *s > '9')
			return false;
		if (frac >= 0)
		{
			if (frac == scale)
			{
				if (*s != '0')
					return false;
				continue;
			}
			frac++;
		}
		v = v * 10 + (*s - '0');
		if (v >= LEDGER_SCALED_LIMIT)
			return false;
	}
	for (frac = Max(frac, 0); frac < scale; frac++)
	{
		v *= 10;
		if (v >= LEDGER_SCALED_LIMIT)
			return false;
	}
	*out = neg ? -v : v;
	return true;
}

/* A scaled integer, |v| < LEDGER_SCALED_LIMIT, back as a numeric. */
Numeric
ledger_scaled_to_numeric(int128 v, int scale)
{
	char		buf[64];
	char		digits[48];
	int			nd = 0;
	int			pos = 0;
	bool		neg = v < 0;
	int			i;

	/* balances, and in messages sums of two of them */
	Assert(v < LEDGER_SCALED_LIMIT * 10 && v > -LEDGER_SCALED_LIMIT * 10);
	Assert(scale >= 0 && scale <= 18);
	if (neg)
		v = -v;
	do
	{
		digits[nd++] = '0' + (int) (v % 10);
		v /= 10;
	} while (v > 0);
	while (nd <= scale)
		digits[nd++] = '0';
	if (neg)
		buf[pos++] = '-';
	for (i = nd - 1; i >= 0; i--)
	{
		buf[pos++] = digits[i];
		if (i == scale && scale > 0)
			buf[pos++] = '.';
	}
	buf[pos] = '\0';
	return DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(buf),
											   ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)));
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
