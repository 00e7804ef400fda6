/*-------------------------------------------------------------------------
 *
 * external.c
 *	  The processor's side of holds: ledger.import_statement loads a
 *	  processor's statement records into ledger.external_record
 *	  (append-only, versioned), and ledger.reconcile_external compares
 *	  them with the holds that carry an external_ref.
 *
 * Import: each record is checked (LD030 names the record and field), then
 * compared with the stored versions of its (source, external_ref): equal
 * to any of them (a statement imported again, or an older one replayed),
 * nothing is written; else it becomes the next version, which counts.  Two imports racing on one reference meet at the unique index
 * on (source, external_ref, version): the second waits, then compares
 * again with what the first wrote.
 *
 * Reconcile: every external_ref that one side has in the window, compared
 * on both sides, whenever the other side's record is dated.  Our holds
 * with one reference count together (a retried payment is one payment):
 *	  missing_ours     they have a record, we have no hold;
 *	  missing_theirs   a hold of ours was submitted or captured, they have
 *	                   no record;
 *	  amount_mismatch  assets differ; they succeeded with another amount
 *	                   than we captured in all; pending with another
 *	                   amount than our newest hold's;
 *	  status_mismatch  they succeeded and we captured nothing; they failed
 *	                   or reversed and we captured or still hold money.
 * A hold's metadata key "source" ties it to one processor; holds without
 * it are compared with every source.  Each mismatch is alerted.
 *
 * Locking: none beyond the inserts' (and the unique index wait above).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

static const char *const statuses[] = {"pending", "succeeded", "failed", "reversed", NULL};

typedef struct Record
{
	char	   *ref;
	Numeric		amount;
	char	   *asset;
	char	   *status;
	TimestampTz occurred_at;
} Record;

static void
bad_record(int n, const char *field, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INVALID_RECORD),
			 errmsg("statement record %d: %s %s", n, field, why),
			 errhint("A record is {\"external_ref\": text, \"amount\": number, \"asset\": text, "
					 "\"status\": \"pending\"|\"succeeded\"|\"failed\"|\"reversed\", "
					 "\"occurred_at\": timestamptz text}."),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_RECORD,
														  LEDGER_FACT_INT("record", n),
														  LEDGER_FACT_TEXT("field", field),
														  NULL),
											NULL)));
}

/* A string field of a record, or LD030. */
static char *
string_field(JsonbContainer *obj, const char *field, int n)
{
	JsonbValue	v;
	int			i;

	if (getKeyJsonValueFromContainer(obj, field, strlen(field), &v) == NULL ||
		v.type != jbvString)
		bad_record(n, field, "is missing or not a string");
	if (v.val.string.len == 0 || v.val.string.len > LEDGER_MAX_CODE_LEN)
		bad_record(n, field, "must be between 1 and 255 bytes");
	for (i = 0; i < v.val.string.len; i++)
	{
		unsigned char c = (unsigned char) v.val.string.val[i];

		if (c < 0x20 || c == 0x7F)
			bad_record(n, field, "must not contain control characters");
	}
	return pnstrdup(v.val.string.val, v.val.string.len);
}

typedef struct TimeParse
{
	const char *text;
	TimestampTz ts;
} TimeParse;

static void
parse_time_step(void *arg)
{
	TimeParse  *p = (TimeParse *) arg;

	p->ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(p->text),
													ObjectIdGetDatum(InvalidOid),
													Int32GetDatum(-1)));
}

/* Parse a timestamptz, turning its input error into LD030. */
static TimestampTz
parse_time(const char *s, int n)
{
	TimeParse	p = {s, 0};
	ErrorData  *err = ledger_try(parse_time_step, &p);

	if (err != NULL || TIMESTAMP_NOT_FINITE(p.ts))
		bad_record(n, "occurred_at", "is not a finite timestamp");
	return p.ts;
}

static void
read_record(JsonbValue *elem, int n, Record *r)
{
	JsonbContainer *obj;
	JsonbValue	v;
	int			scale;
	int			i;

	if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
		bad_record(n, "record", "is not a JSON object");
	obj = elem->val.binary.data;
	r->ref = string_field(obj, "external_ref", n);
	r->asset = string_field(obj, "asset", n);
	r->status = string_field(obj, "status", n);
	for (i = 0; statuses[i] != NULL; i++)
		if (strcmp(r->status, statuses[i]) == 0)
			break;
	if (statuses[i] == NULL)
		bad_record(n, "status", "must be pending, succeeded, failed or reversed");
	r->occurred_at = parse_time(string_field(obj, "occurred_at", n), n);
	if (getKeyJsonValueFromContainer(obj, "amount", 6, &v) == NULL ||
		(v.type != jbvNumeric && v.type != jbvString))
		bad_record(n, "amount", "is missing or not a number");
	r->amount = v.type == jbvNumeric ? v.val.numeric
		: ledger_parse_amount(v.val.string.val, v.val.string.len, n);
	scale = ledger_asset_scale(r->asset);
	if (scale < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ASSET),
				 errmsg("asset \"%s\" does not exist", r->asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ASSET, LEDGER_FACT_TEXT("asset", r->asset), LEDGER_FACT_INT("record", n), NULL), "Statement record %d (external_ref \"%s\") names it.", n, r->ref)));
	r->amount = ledger_check_numeric_finite(r->amount, "amount", r->asset, scale);
	if (ledger_numeric_sign(r->amount) <= 0)
		bad_record(n, "amount", "must be positive");
}

/* Store a record unless a stored version is identical; true if written. */
static bool
store_record(const char *source, Record *r)
{
	static SPIPlanPtr latest_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	StringInfoData buf;
	bytea	   *hash;
	Datum		values[8];

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n%s\n%s\n%s\n" INT64_FORMAT, r->ref,
					 numeric_normalize(r->amount), r->asset, r->status, (int64) r->occurred_at);
	hash = ledger_fingerprint(buf.data, buf.len);
	if (latest_plan == NULL)
	{
		latest_plan = ledger_prepare(
			"SELECT max(version), bool_or(record_hash = $3) FROM ledger.external_record "
			" WHERE source = $1 AND external_ref = $2",
			3, (Oid[]) {TEXTOID, TEXTOID, BYTEAOID});
		insert_plan = ledger_prepare(
			"INSERT INTO ledger.external_record (source, external_ref, version, amount, asset, "
			"  status, occurred_at, record_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
			"ON CONFLICT (source, external_ref, version) DO NOTHING",
			8, (Oid[]) {TEXTOID, TEXTOID, INT4OID, NUMERICOID, TEXTOID, TEXTOID,
						TIMESTAMPTZOID, BYTEAOID});
	}
	values[0] = CStringGetTextDatum(source);
	values[1] = CStringGetTextDatum(r->ref);
	for (;;)
	{
		int			version = 1;
		bool		isnull;

		values[2] = PointerGetDatum(hash);
		ledger_spi_exec(latest_plan, values, NULL, SPI_OK_SELECT);
		{
			Datum		seen = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			Datum		last;

			if (!isnull && DatumGetBool(seen))
				return false;	/* this very record was imported before */
			last = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			if (!isnull)
				version = DatumGetInt32(last) + 1;
		}
		values[2] = Int32GetDatum(version);
		values[3] = NumericGetDatum(r->amount);
		values[4] = CStringGetTextDatum(r->asset);
		values[5] = CStringGetTextDatum(r->status);
		values[6] = TimestampTzGetDatum(r->occurred_at);
		values[7] = PointerGetDatum(hash);
		ledger_spi_exec(insert_plan, values, NULL, SPI_OK_INSERT);
		if (SPI_processed == 1)
			return true;
		/* a concurrent import wrote this version: compare with it */
	}
}

PG_FUNCTION_INFO_V1(ledger_import_statement);

Datum
ledger_import_statement(PG_FUNCTION_ARGS)
{
	char	   *source;
	Jsonb	   *doc;
	int			n;
	int			written = 0;
	int			i;

	LEDGER_REQUIRE_ARG(0, "source");
	LEDGER_REQUIRE_ARG(1, "records");
	source = ledger_check_code(PG_GETARG_TEXT_PP(0), "source");
	doc = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_ARRAY(doc) || JB_ROOT_IS_SCALAR(doc))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_RECORD),
				 errmsg("records must be a JSON array of statement records"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_RECORD,
													  LEDGER_FACT_TEXT("source", source),
													  NULL),
										"Source \"%s\".", source)));
	PreventCommandIfReadOnly("ledger.import_statement");
	n = JB_ROOT_COUNT(doc);
	SPI_connect();
	for (i = 0; i < n; i++)
	{
		Record		r;

		read_record(getIthJsonbValueFromContainer(&doc->root, i), i + 1, &r);
		if (store_record(source, &r))
			written++;
	}
	SPI_finish();
	PG_RETURN_INT32(written);
}

/* Columns of the comparison query, from 1: ours per reference, then theirs. */
enum
{
	C_REF = 1, C_HOLDS, C_ACCOUNT_ID, C_ACCOUNT, C_ASSET, C_AMOUNT, C_CAPTURED, C_OPEN,
	C_SENT, C_STATES, C_VERSION, C_T_AMOUNT, C_T_ASSET, C_T_STATUS
};

/*
 * Our side per external_ref, all holds carrying it together (a retry of a
 * payment under the same reference is the same payment): how many, the
 * newest one's account, their amounts and captures summed, whether any
 * still holds money, whether any may have been sent (submitted, or
 * captured), and their states now.
 */
static const char *compare_sql =
"WITH t AS (SELECT DISTINCT ON (r.external_ref) r.external_ref, r.version, r.amount, r.asset, "
"                  r.status, r.occurred_at "
"             FROM ledger.external_record r WHERE r.source = $1 "
"            ORDER BY r.external_ref, r.version DESC), "
"     h AS (SELECT h.*, b.account_id "
"             FROM ledger.holds h JOIN ledger.hold b ON b.id = h.id "
"            WHERE h.external_ref IS NOT NULL "
"              AND (h.metadata ->> 'source' IS NULL OR h.metadata ->> 'source' = $1)), "
"     o AS (SELECT h.external_ref, count(*) AS holds, "
"                  (array_agg(h.account_id ORDER BY h.created_at DESC, h.id DESC))[1] AS account_id, "
"                  (array_agg(h.account ORDER BY h.created_at DESC, h.id DESC))[1] AS account, "
"                  (array_agg(h.asset ORDER BY h.created_at DESC, h.id DESC))[1] AS asset, "
"                  (array_agg(h.amount ORDER BY h.created_at DESC, h.id DESC))[1] AS amount, "
"                  sum(h.captured) AS captured, "
"                  bool_or(h.state IN ('reserved', 'submitted', 'timed_out')) AS open, "
"                  bool_or(h.submitted_at IS NOT NULL OR h.captured > 0) AS sent, "
"                  string_agg(h.state, ',' ORDER BY h.created_at, h.id) AS states, "
"                  min(h.created_at) AS created_at "
"             FROM h GROUP BY h.external_ref), "
"     refs AS (SELECT external_ref FROM o WHERE created_at >= $2 AND created_at < $3 "
"              UNION SELECT external_ref FROM t WHERE occurred_at >= $2 AND occurred_at < $3) "
"SELECT refs.external_ref, o.holds, o.account_id, o.account, o.asset, o.amount, o.captured, "
"       o.open, o.sent, o.states, t.version, t.amount, t.asset, t.status "
"  FROM refs LEFT JOIN o USING (external_ref) LEFT JOIN t USING (external_ref) "
" ORDER BY refs.external_ref";

static Datum
cell(int row, int c, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, c, isnull);
}

/* What kind of mismatch a row is, or NULL. */
static const char *
classify(int row)
{
	bool		ours_null;
	bool		theirs_null;
	bool		isnull;
	const char *status;
	bool		captured;
	bool		open;

	(void) cell(row, C_HOLDS, &ours_null);
	(void) cell(row, C_VERSION, &theirs_null);
	if (ours_null)
		return "missing_ours";
	if (theirs_null)	/* never sent: nothing to find */
		return DatumGetBool(cell(row, C_SENT, &isnull)) ? "missing_theirs" : NULL;
	status = TextDatumGetCString(cell(row, C_T_STATUS, &isnull));
	captured = ledger_numeric_sign(DatumGetNumeric(cell(row, C_CAPTURED, &isnull))) > 0;
	open = DatumGetBool(cell(row, C_OPEN, &isnull));
	if (strcmp(status, "succeeded") == 0 && !captured)
		return "status_mismatch";
	if ((strcmp(status, "failed") == 0 || strcmp(status, "reversed") == 0) && (captured || open))
		return "status_mismatch";
	if (strcmp(TextDatumGetCString(cell(row, C_ASSET, &isnull)),
			   TextDatumGetCString(cell(row, C_T_ASSET, &isnull))) != 0)
		return "amount_mismatch";
	/* succeeded: what we captured in all; else: what we asked for */
	if (strcmp(status, "failed") != 0 && strcmp(status, "reversed") != 0 &&
		ledger_numeric_cmp(DatumGetNumeric(cell(row, strcmp(status, "succeeded") == 0 ?
												 C_CAPTURED : C_AMOUNT, &isnull)),
						   DatumGetNumeric(cell(row, C_T_AMOUNT, &isnull))) != 0)
		return "amount_mismatch";
	return NULL;
}

PG_FUNCTION_INFO_V1(ledger_reconcile_external);

Datum
ledger_reconcile_external(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *source;
	Datum		args[3];
	int			i;
	int			n;

	LEDGER_REQUIRE_ARG(0, "source");
	LEDGER_REQUIRE_ARG(1, "since");
	LEDGER_REQUIRE_ARG(2, "until");
	source = ledger_check_code(PG_GETARG_TEXT_PP(0), "source");
	if (PG_GETARG_TIMESTAMPTZ(1) >= PG_GETARG_TIMESTAMPTZ(2))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("since must be before until"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "since"),
													  LEDGER_FACT_TEXT("source", source),
													  NULL),
										"Source \"%s\".", source)));
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	if (plan == NULL)
		plan = ledger_prepare_scan(compare_sql, 3,
								   (Oid[]) {TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID});
	args[0] = CStringGetTextDatum(source);
	args[1] = PG_GETARG_DATUM(1);
	args[2] = PG_GETARG_DATUM(2);
	ledger_spi_exec(plan, args, NULL, SPI_OK_SELECT);
	n = (int) SPI_processed;
	for (i = 0; i < n; i++)
	{
		SPITupleTable *tt = SPI_tuptable;
		const char *kind = classify(i);
		char	   *ref;
		Jsonb	   *ours = NULL;
		Jsonb	   *theirs = NULL;
		LedgerJson *j;
		bool		isnull;
		int64		account_id = 0;
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		if (kind == NULL)
			continue;
		ref = TextDatumGetCString(cell(i, C_REF, &isnull));
		(void) cell(i, C_HOLDS, &isnull);
		if (!isnull)
		{
			j = ledger_json_begin();
			ledger_json_int(j, "holds", DatumGetInt64(cell(i, C_HOLDS, &isnull)));
			ledger_json_text(j, "account", TextDatumGetCString(cell(i, C_ACCOUNT, &isnull)));
			ledger_json_text(j, "asset", TextDatumGetCString(cell(i, C_ASSET, &isnull)));
			ledger_json_numeric(j, "amount", DatumGetNumeric(cell(i, C_AMOUNT, &isnull)));
			ledger_json_numeric(j, "captured", DatumGetNumeric(cell(i, C_CAPTURED, &isnull)));
			ledger_json_text(j, "state", TextDatumGetCString(cell(i, C_STATES, &isnull)));
			ours = ledger_json_end(j);
			account_id = DatumGetInt64(cell(i, C_ACCOUNT_ID, &isnull));
		}
		(void) cell(i, C_VERSION, &isnull);
		if (!isnull)
		{
			j = ledger_json_begin();
			ledger_json_int(j, "version", DatumGetInt32(cell(i, C_VERSION, &isnull)));
			ledger_json_text(j, "asset", TextDatumGetCString(cell(i, C_T_ASSET, &isnull)));
			ledger_json_numeric(j, "amount", DatumGetNumeric(cell(i, C_T_AMOUNT, &isnull)));
			ledger_json_text(j, "status", TextDatumGetCString(cell(i, C_T_STATUS, &isnull)));
			theirs = ledger_json_end(j);
		}
		j = ledger_json_begin();
		ledger_json_text(j, "source", source);
		ledger_json_text(j, "external_ref", ref);
		if (ours)
			ledger_json_jsonb(j, "ours", ours);
		if (theirs)
			ledger_json_jsonb(j, "theirs", theirs);
		ledger_raise_alert("warning", psprintf("external_%s", kind), account_id, ledger_json_end(j));
		SPI_tuptable = tt;		/* the alert ran its own statement */

		values[0] = CStringGetTextDatum(ref);
		values[1] = CStringGetTextDatum(kind);
		values[2] = ours ? JsonbPGetDatum(ours) : (Datum) 0;
		nulls[2] = ours == NULL;
		values[3] = theirs ? JsonbPGetDatum(theirs) : (Datum) 0;
		nulls[3] = theirs == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	SPI_finish();
	return (Datum) 0;
}
