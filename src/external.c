/*-------------------------------------------------------------------------
 *
 * external.c
 *	  The processor's side of holds: ledger.import_statement loads a
 *	  processor's statement records into ledger.external_record
 *	  (append-only, versioned), and ledger.reconcile_external compares
 *	  them with the holds that carry an external_ref.
 *
 * Import: each record is checked (LD030 names the record and field), then
 * compared with the newest stored version of its (source, external_ref):
 * identical, nothing is written; changed or new, it becomes the next
 * version.  Two imports racing on one reference meet at the unique index
 * on (source, external_ref, version): the second waits, then compares
 * again with what the first wrote.
 *
 * Reconcile: every external_ref that one side has in the window, compared
 * on both sides, whenever the other side's record is dated:
 *	  missing_ours     they have a record, we have no hold;
 *	  missing_theirs   our hold was submitted, they have no record;
 *	  amount_mismatch  amounts or assets differ;
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

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/resowner.h"

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
					 "\"occurred_at\": timestamptz text}.")));
}

/* A string field of a record, or LD030. */
static char *
string_field(JsonbContainer *obj, const char *field, int n)
{
	JsonbValue	v;

	if (getKeyJsonValueFromContainer(obj, field, strlen(field), &v) == NULL ||
		v.type != jbvString)
		bad_record(n, field, "is missing or not a string");
	if (v.val.string.len == 0 || v.val.string.len > LEDGER_MAX_CODE_LEN ||
		memchr(v.val.string.val, '\0', v.val.string.len) != NULL)
		bad_record(n, field, "must be between 1 and 255 bytes");
	return pnstrdup(v.val.string.val, v.val.string.len);
}

/* Parse a timestamptz, turning its input error into LD030. */
static TimestampTz
parse_time(const char *s, int n)
{
	MemoryContext caller = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	TimestampTz ts = 0;
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller);
	PG_TRY();
	{
		ts = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
													 ObjectIdGetDatum(InvalidOid),
													 Int32GetDatum(-1)));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(caller);
		CurrentResourceOwner = owner;
		ok = false;
	}
	PG_END_TRY();
	if (!ok || TIMESTAMP_NOT_FINITE(ts))
		bad_record(n, "occurred_at", "is not a finite timestamp");
	return ts;
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
				 errdetail("Statement record %d (external_ref \"%s\") names it.", n, r->ref)));
	r->amount = ledger_check_numeric_finite(r->amount, "amount", r->asset, scale);
	if (ledger_numeric_sign(r->amount) <= 0)
		bad_record(n, "amount", "must be positive");
}

/* Store a record unless the newest version is identical; true if written. */
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
			"SELECT version, record_hash FROM ledger.external_record "
			" WHERE source = $1 AND external_ref = $2 ORDER BY version DESC LIMIT 1",
			2, (Oid[]) {TEXTOID, TEXTOID});
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

		ledger_spi_exec(latest_plan, values, NULL, SPI_OK_SELECT);
		if (SPI_processed == 1)
		{
			Datum		old = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);

			if (DatumGetBool(DirectFunctionCall2(byteaeq, old, PointerGetDatum(hash))))
				return false;
			version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull)) + 1;
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
				 errdetail("Source \"%s\".", source)));
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

/* Columns of the comparison query, from 1. */
enum
{
	C_REF = 1, C_HOLD, C_ACCOUNT_ID, C_ACCOUNT, C_ASSET, C_AMOUNT, C_CAPTURED, C_STATE,
	C_SUBMIT_DEADLINE, C_CONFIRM_DEADLINE, C_SUBMITTED_AT,
	C_VERSION, C_T_AMOUNT, C_T_ASSET, C_T_STATUS
};

static const char *compare_sql =
"WITH t AS (SELECT DISTINCT ON (r.external_ref) r.external_ref, r.version, r.amount, r.asset, "
"                  r.status, r.occurred_at "
"             FROM ledger.external_record r WHERE r.source = $1 "
"            ORDER BY r.external_ref, r.version DESC), "
"     o AS (SELECT h.external_ref, h.id, h.account_id, a.code, a.asset, h.amount, h.captured, "
"                  h.state, h.submit_deadline, h.confirm_deadline, h.submitted_at, h.created_at "
"             FROM ledger.hold h JOIN ledger.account a ON a.id = h.account_id "
"            WHERE h.external_ref IS NOT NULL "
"              AND (h.metadata ->> 'source' IS NULL OR h.metadata ->> 'source' = $1)), "
"     refs AS (SELECT external_ref FROM o WHERE created_at >= $2 AND created_at < $3 "
"              UNION SELECT external_ref FROM t WHERE occurred_at >= $2 AND occurred_at < $3) "
"SELECT refs.external_ref, o.id, o.account_id, o.code, o.asset, o.amount, o.captured, o.state, "
"       o.submit_deadline, o.confirm_deadline, o.submitted_at, "
"       t.version, t.amount, t.asset, t.status "
"  FROM refs LEFT JOIN o USING (external_ref) LEFT JOIN t USING (external_ref) "
" ORDER BY refs.external_ref, o.id";

static Datum
cell(int row, int c, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, c, isnull);
}

/* What kind of mismatch a row is, or NULL; *state gets our effective state. */
static const char *
classify(int row, TimestampTz now, const char **state)
{
	bool		ours_null;
	bool		theirs_null;
	bool		isnull;
	LedgerHold	h;
	const char *status;
	bool		captured;

	(void) cell(row, C_HOLD, &ours_null);
	(void) cell(row, C_VERSION, &theirs_null);
	*state = NULL;
	if (ours_null)
		return "missing_ours";
	memset(&h, 0, sizeof(h));
	h.state = TextDatumGetCString(cell(row, C_STATE, &isnull));
	h.submit_deadline = DatumGetTimestampTz(cell(row, C_SUBMIT_DEADLINE, &isnull));
	h.confirm_deadline = DatumGetTimestampTz(cell(row, C_CONFIRM_DEADLINE, &isnull));
	if (isnull)
		h.confirm_deadline = DT_NOBEGIN;
	*state = ledger_hold_state(&h, now);
	if (theirs_null)
	{
		(void) cell(row, C_SUBMITTED_AT, &isnull);
		return isnull ? NULL : "missing_theirs";	/* never sent: nothing to find */
	}
	status = TextDatumGetCString(cell(row, C_T_STATUS, &isnull));
	captured = ledger_numeric_sign(DatumGetNumeric(cell(row, C_CAPTURED, &isnull))) > 0;
	if (strcmp(status, "succeeded") == 0 && !captured)
		return "status_mismatch";
	if ((strcmp(status, "failed") == 0 || strcmp(status, "reversed") == 0) &&
		(captured || strcmp(*state, "submitted") == 0 || strcmp(*state, "timed_out") == 0))
		return "status_mismatch";
	if (strcmp(TextDatumGetCString(cell(row, C_ASSET, &isnull)),
			   TextDatumGetCString(cell(row, C_T_ASSET, &isnull))) != 0)
		return "amount_mismatch";
	if (ledger_numeric_cmp(DatumGetNumeric(cell(row, strcmp(status, "succeeded") == 0 ?
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
	TimestampTz now = GetCurrentTimestamp();
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
				 errdetail("Source \"%s\".", source)));
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
		const char *state;
		const char *kind = classify(i, now, &state);
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
		if (state != NULL)
		{
			j = ledger_json_begin();
			ledger_json_text(j, "hold_id", DatumGetCString(DirectFunctionCall1(uuid_out,
																			   cell(i, C_HOLD, &isnull))));
			ledger_json_text(j, "account", TextDatumGetCString(cell(i, C_ACCOUNT, &isnull)));
			ledger_json_text(j, "asset", TextDatumGetCString(cell(i, C_ASSET, &isnull)));
			ledger_json_numeric(j, "amount", DatumGetNumeric(cell(i, C_AMOUNT, &isnull)));
			ledger_json_numeric(j, "captured", DatumGetNumeric(cell(i, C_CAPTURED, &isnull)));
			ledger_json_text(j, "state", state);
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
