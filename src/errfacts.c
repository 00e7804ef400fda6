/*-------------------------------------------------------------------------
 *
 * errfacts.c
 *	  The facts of an LD error in machine-readable form.  Every error a
 *	  caller can cause ends its DETAIL with one line holding a JSON object:
 *	  "sqlstate" and the error's facts (the account, the asset,
 *	  amounts, the original transaction, a hold's state, how long to wait
 *	  before a retry), under the keys the README's error table lists.
 *	  Amounts are JSON strings of the exact decimal (a JSON number would
 *	  become a binary float in most clients); ids are strings; counts and
 *	  milliseconds are numbers.  The prose before that line is for people
 *	  and may change; the keys are for programs and do not.  Built from
 *	  values with jsonb, never from display text.
 *
 * Locking: none.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"

/* Begin an error's facts: {"sqlstate": "LDnnn", ...}; counts the error (counters.c). */
LedgerJson *
ledger_facts(int sqlerrcode)
{
	LedgerJson *j = ledger_json_begin();

	ledger_count_raised(sqlerrcode);
	ledger_json_text(j, "sqlstate", pstrdup(unpack_sql_state(sqlerrcode)));
	return j;
}

/*
 * An error's facts in one call: ledger_facts(code) and then, up to a NULL
 * key, triples of a key, a kind and a value, written with the
 * LEDGER_FACT_* macros of ledger.h: 's' text (const char *), 'a' amount
 * (Numeric), 'i' integer (int64), 'u' id (const pg_uuid_t *).  A NULL
 * value gives JSON null.
 */
LedgerJson *
ledger_factsv(int sqlerrcode,...)
{
	LedgerJson *j = ledger_facts(sqlerrcode);
	va_list		args;
	const char *key;

	va_start(args, sqlerrcode);
	while ((key = va_arg(args, const char *)) != NULL)
	{
		int			kind = va_arg(args, int);

		switch (kind)
		{
			case 's':
				ledger_json_text(j, key, va_arg(args, const char *));
				break;
			case 'a':
				ledger_fact_amount(j, key, va_arg(args, Numeric));
				break;
			case 'i':
				ledger_json_int(j, key, va_arg(args, int64));
				break;
			case 'u':
				{
					const pg_uuid_t *id = va_arg(args, const pg_uuid_t *);

					ledger_json_text(j, key, id ? ledger_uuid_str(id) : NULL);
					break;
				}
			default:
				elog(ERROR, "unknown fact kind %d", kind);
		}
	}
	va_end(args);
	return j;
}

/*
 * An amount fact: the exact decimal as a JSON string; NULL gives null, and
 * so does a value of more than LEDGER_FACT_MAX_CHARS characters (only
 * refused input can be that long), with "<key>_chars" giving its length.
 */
#define LEDGER_FACT_MAX_CHARS 200

void
ledger_fact_amount(LedgerJson *j, const char *key, Numeric n)
{
	char	   *s = n ? DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n))) : NULL;

	if (s != NULL && strlen(s) > LEDGER_FACT_MAX_CHARS)
	{
		ledger_json_int(j, psprintf("%s_chars", key), (int64) strlen(s));
		s = NULL;
	}
	ledger_json_text(j, key, s);
}

/*
 * errdetail with facts: the prose (fmt, may be NULL for none), then a line
 * with the facts object.  For use inside ereport().
 */
int
ledger_errdetail_facts(LedgerJson *facts, const char *fmt,...)
{
	StringInfoData buf;
	Jsonb	   *doc = ledger_json_end(facts);

	initStringInfo(&buf);
	if (fmt != NULL)
	{
		for (;;)
		{
			va_list		args;
			int			needed;

			va_start(args, fmt);
			needed = appendStringInfoVA(&buf, fmt, args);
			va_end(args);
			if (needed == 0)
				break;
			enlargeStringInfo(&buf, needed);
		}
		appendStringInfoChar(&buf, '\n');
	}
	appendStringInfoString(&buf, JsonbToCString(NULL, &doc->root, VARSIZE(doc)));
	return errdetail_internal("%s", buf.data);
}

/*
 * The transaction's isolation level as the setting transaction_isolation
 * names it, for the facts of a refusal under a transaction snapshot.
 */
const char *
ledger_isolation_name(void)
{
	switch (XactIsoLevel)
	{
		case XACT_SERIALIZABLE:
			return "serializable";
		case XACT_REPEATABLE_READ:
			return "repeatable read";
		case XACT_READ_COMMITTED:
			return "read committed";
		default:
			return "read uncommitted";
	}
}

/* The facts line of a DETAIL (its last line, if a JSON object), or NULL. */
static const char *
facts_line(const char *detail)
{
	const char *nl = strrchr(detail, '\n');
	const char *line = nl ? nl + 1 : detail;

	return line[0] == '{' ? line : NULL;
}

/*
 * The facts of a DETAIL (the line errdetail_facts wrote from a jsonb
 * value), as jsonb again; NULL if it has none.  For a batch item's result
 * row.
 */
Jsonb *
ledger_facts_of(const char *detail)
{
	const char *line = detail ? facts_line(detail) : NULL;

	return line ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(line))) : NULL;
}

/*
 * A DETAIL without its facts line (the prose alone, NULL if none), for a
 * batch item's message.
 */
char *
ledger_facts_strip(const char *detail)
{
	const char *line = facts_line(detail);

	if (line == NULL)
		return pstrdup(detail);
	return line == detail ? NULL : pnstrdup(detail, line - 1 - detail);
}
