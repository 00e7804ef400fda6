/*-------------------------------------------------------------------------
 *
 * callerror.c
 *	  Clear errors for calls that name a ledger function with the wrong
 *	  kind of value where no overload could help.
 *
 *	  A driver that sends a binary float as an amount (Python's float,
 *	  psycopg's default for it) or a text array as the legs of ledger.post
 *	  gets PostgreSQL's "function ledger.transfer(unknown, unknown, double
 *	  precision) does not exist" (42883).  An overload taking double
 *	  precision is no cure: PostgreSQL prefers double precision for an
 *	  untyped literal or parameter, so every call passing '10.25' untyped
 *	  (every node-postgres call) would then go through a binary float.
 *
 *	  Instead, emit_log_hook looks at each 42883 raised by a call's function
 *	  lookup just before it is reported.  When the missing signature is one
 *	  of the ledger's money functions, qualified with "ledger.", with as
 *	  many arguments as the function takes, and the argument at an amount's
 *	  place (by position or by name) is double precision or real (or arrays
 *	  of them), the error becomes LD005 with the structured facts; a text, json or array value where post's legs or post_batch's
 *	  postings belong becomes LD012, and so does the 22P02 of a language
 *	  array that a driver sent to ledger.post as an array literal.  Every
 *	  other error passes unchanged.
 *
 *	  Limits, documented in the README: the hook runs only where the
 *	  library is loaded (preloaded, as Setup says, or already used by the
 *	  session), only for errors that reach the client or log (not those a
 *	  PL/pgSQL EXCEPTION block catches), and only when log_min_messages
 *	  lets errors through (the default).  PostgreSQL calls the hook for
 *	  filtering; changing the error's fields there works in PostgreSQL 15
 *	  (the client and the log are written from them afterwards) but is not
 *	  an interface core promises, so the regression test `calls` pins it.
 *
 * Locking: none.  The hook allocates only in the error's own context and
 *	  reads no catalog.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "mb/pg_wchar.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"

static emit_log_hook_type prev_emit_log_hook = NULL;

/* What belongs at an argument's place. */
typedef enum
{
	WANT_AMOUNT,				/* numeric */
	WANT_AMOUNTS,				/* numeric[] */
	WANT_JSONB					/* jsonb (legs, postings) */
} Want;

typedef struct
{
	const char *function;
	int			min_args;		/* the function's arguments without defaults */
	int			max_args;		/* and with them */
	int			position;		/* 1-based */
	const char *argument;
	Want		want;
} CheckedArg;

/* Keep in step with the functions' signatures in sql/ (upgrade test). */
static const CheckedArg checked_args[] = {
	{"transfer", 3, 5, 3, "amount", WANT_AMOUNT},
	{"hold", 2, 9, 2, "amount", WANT_AMOUNT},
	{"capture", 1, 3, 2, "amount", WANT_AMOUNT},
	{"exchange", 3, 8, 3, "amount", WANT_AMOUNT},
	{"exchange", 3, 8, 6, "spread", WANT_AMOUNT},
	{"create_account", 2, 5, 3, "min_balance", WANT_AMOUNT},
	{"set_exchange_rate", 3, 5, 3, "rate", WANT_AMOUNT},
	{"set_rate_limit", 3, 4, 2, "per_second", WANT_AMOUNT},
	{"transfer_batch", 3, 6, 3, "amounts", WANT_AMOUNTS},
	{"post", 1, 3, 1, "legs", WANT_JSONB},
	{"post_batch", 1, 2, 1, "postings", WANT_JSONB},
};

static bool
is_float_type(const char *type, bool array)
{
	if (array)
		return strcmp(type, "double precision[]") == 0 || strcmp(type, "real[]") == 0;
	return strcmp(type, "double precision") == 0 || strcmp(type, "real") == 0;
}

static bool
is_not_jsonb(const char *type)
{
	static const char *const wrong[] = {
		"text", "text[]", "character varying", "character varying[]",
		"json", "json[]", "jsonb[]", "record", "record[]"
	};

	for (int i = 0; i < lengthof(wrong); i++)
		if (strcmp(type, wrong[i]) == 0)
			return true;
	return false;
}

/*
 * Split "name(arg, arg, ...)" at the first parenthesis; each argument is
 * "type" or "argname => type".  Types from format_type_be never contain
 * a comma at the top level, nor do the ones we look for.
 */
static int
split_args(char *args, char **names, char **types, int max)
{
	int			n = 0;
	char	   *p = args;

	if (*p == '\0')
		return 0;
	while (n < max)
	{
		char	   *end = strstr(p, ", ");
		char	   *arrow;

		if (end != NULL)
			*end = '\0';
		arrow = strstr(p, " => ");
		if (arrow != NULL)
		{
			*arrow = '\0';
			names[n] = p;
			types[n] = arrow + 4;
		}
		else
		{
			names[n] = NULL;
			types[n] = p;
		}
		n++;
		if (end == NULL)
			break;
		p = end + 2;
	}
	return n;
}

static void
rewrite(ErrorData *edata, const char *function, const CheckedArg *c, const char *type)
{
	if (c->want == WANT_JSONB)
	{
		edata->sqlerrcode = ERRCODE_LEDGER_INVALID_LEGS;
		edata->message = psprintf("%s of ledger.%s must be jsonb, not %s",
								  c->argument, function, type);
		ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
											 LEDGER_FACT_TEXT("function", function),
											 LEDGER_FACT_TEXT("argument", c->argument),
											 LEDGER_FACT_TEXT("given_type", type),
											 NULL),
							   "The call passed %s where a JSON array of objects belongs.", type);
		edata->hint = pstrdup("Pass one jsonb array, e.g. '[{\"account\": \"a\", \"amount\": \"-1.00\"}, ...]'::jsonb; "
							  "from a driver, send the JSON text of the whole array, not a language array.");
	}
	else
	{
		edata->sqlerrcode = ERRCODE_LEDGER_INVALID_AMOUNT;
		edata->message = psprintf("%s of ledger.%s must be numeric or a decimal string, not %s",
								  c->argument, function, type);
		ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_AMOUNT,
											 LEDGER_FACT_TEXT("function", function),
											 LEDGER_FACT_TEXT("argument", c->argument),
											 LEDGER_FACT_TEXT("given_type", type),
											 LEDGER_FACT_TEXT("reason", "binary_float"),
											 NULL),
							   "A binary float cannot hold most decimal amounts exactly (0.1 is stored as 0.1000000000000000055511...).");
		edata->hint = pstrdup("Pass the amount as a decimal string ('10.25') or as numeric: Decimal in Python, a string in JavaScript.");
	}
}

/* Does the text before end (after blanks) end with suffix? */
static bool
ends_with(const char *start, const char *end, const char *suffix)
{
	size_t		n = strlen(suffix);

	while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	return (size_t) (end - start) >= n && strncmp(end - n, suffix, n) == 0;
}

/* Is this where post's legs or post_batch's postings go? */
static bool
at_legs(const char *start, const char *end)
{
	return ends_with(start, end, "ledger.post(") || ends_with(start, end, "ledger.post_batch(") ||
		ends_with(start, end, "legs =>") || ends_with(start, end, "postings =>");
}

/*
 * A language array sent as post's legs: node-postgres and psycopg turn
 * [...] into a PostgreSQL array literal, {"{\"account\": ...}", ...}, and
 * jsonb's input function refuses it with 22P02.  Recognised by where the
 * JSON parser stopped, which the error's context shows (its last 30
 * characters or so): right after a first "key" that is a quoted JSON
 * object's text, with escaped quotes inside, ending }" and followed by
 * the literal's comma or closing brace.  And by the value being the legs:
 * a parameter $N bound for a statement that passes $N first to
 * ledger.post or ledger.post_batch (or as legs => / postings =>), or a
 * literal at such a place in the statement (the error's cursor position).
 * The refused text is not repeated: it may be long, and it is the
 * caller's.
 */
static bool
array_literal_as_legs(ErrorData *edata)
{
	const char *q = debug_query_string;
	const char *param;

	if (!(edata->sqlerrcode == ERRCODE_INVALID_TEXT_REPRESENTATION &&
		  edata->message_id != NULL &&
		  strcmp(edata->message_id, "invalid input syntax for type %s") == 0 &&
		  edata->message != NULL && strstr(edata->message, "json") != NULL &&
		  edata->context != NULL && strstr(edata->context, "\\\"") != NULL &&
		  (strstr(edata->context, "}\",") != NULL || strstr(edata->context, "}\"}") != NULL) &&
		  q != NULL))
		return false;

	/* a bound parameter: "... parameter $N = ..." in the context */
	param = strstr(edata->context, "parameter $");
	if (param != NULL)
	{
		char		ref[16];
		int			n = atoi(param + strlen("parameter $"));
		const char *at;

		if (n <= 0)
			return false;
		snprintf(ref, sizeof(ref), "$%d", n);
		for (at = strstr(q, ref); at != NULL; at = strstr(at + 1, ref))
		{
			char		next = at[strlen(ref)];

			if (!(next >= '0' && next <= '9') && at_legs(q, at))
				return true;
		}
		return false;
	}

	/* a literal in the statement: the cursor points at it (in characters) */
	if (edata->cursorpos > 0)
	{
		const char *at = q;

		for (int i = 1; i < edata->cursorpos && *at != '\0'; i++)
			at += pg_mblen(at);
		return at_legs(q, at);
	}
	return false;
}

/*
 * The "ledger." of a qualified name in the message, not the tail of a
 * longer schema name (general_ledger.transfer) or a quoted one.
 */
static const char *
schema_prefix(const char *message)
{
	for (const char *at = strstr(message, "ledger."); at != NULL; at = strstr(at + 1, "ledger."))
	{
		unsigned char before = at == message ? ' ' : (unsigned char) at[-1];

		if (!(isalnum(before) || before == '_' || before == '$' || before == '.' ||
			  before == '"' || before >= 0x80))
			return at;
	}
	return NULL;
}

static void
ledger_emit_log_hook(ErrorData *edata)
{
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);

	if (edata->elevel == ERROR && array_literal_as_legs(edata))
	{
		edata->sqlerrcode = ERRCODE_LEDGER_INVALID_LEGS;
		edata->message = pstrdup("legs (postings of a batch) must be one JSON array, not a PostgreSQL array literal");
		ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
											 LEDGER_FACT_TEXT("given_type", "array literal"),
											 NULL),
							   "The value is written {\"{...}\", ...}, as a driver writes a language array of JSON texts.");
		edata->hint = pstrdup("Send the JSON text of the whole array as one parameter (JSON.stringify(legs), psycopg's Jsonb(legs)).");
		edata->context = NULL;
		return;
	}

	/*
	 * Only a call's lookup (ParseFuncOrColumn), not DDL naming a signature
	 * (DROP, GRANT, COMMENT ON FUNCTION), which raises the same message.
	 */
	if (edata->elevel == ERROR &&
		edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION &&
		edata->message_id != NULL &&
		strcmp(edata->message_id, "function %s does not exist") == 0 &&
		edata->funcname != NULL && strcmp(edata->funcname, "ParseFuncOrColumn") == 0 &&
		edata->message != NULL)
	{
		const char *start = schema_prefix(edata->message);
		char	   *sig;
		char	   *open;
		char	   *close;
		char	   *names[FUNC_MAX_ARGS];
		char	   *types[FUNC_MAX_ARGS];
		int			nargs;

		if (start == NULL)
			return;
		sig = pstrdup(start + strlen("ledger."));
		open = strchr(sig, '(');
		close = strrchr(sig, ')');
		if (open == NULL || close == NULL || close < open)
			return;
		*open = '\0';
		*close = '\0';
		nargs = split_args(open + 1, names, types, FUNC_MAX_ARGS);

		for (int i = 0; i < lengthof(checked_args); i++)
		{
			const CheckedArg *c = &checked_args[i];

			if (strcmp(c->function, sig) != 0 || nargs < c->min_args || nargs > c->max_args)
				continue;
			for (int a = 0; a < nargs; a++)
			{
				bool		here = names[a] != NULL ?
					strcmp(names[a], c->argument) == 0 :
					a + 1 == c->position;
				bool		wrong;

				if (!here)
					continue;
				if (c->want == WANT_JSONB)
					wrong = is_not_jsonb(types[a]);
				else
					wrong = is_float_type(types[a], c->want == WANT_AMOUNTS);
				if (wrong)
				{
					rewrite(edata, sig, c, types[a]);
					return;
				}
			}
		}
	}
}

void
ledger_callerror_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = ledger_emit_log_hook;
}
