/*-------------------------------------------------------------------------
 *
 * reconcile.c
 *	  ledger.reconcile: compare every account_balance and daily_balance row
 *	  with the journal, record the run and its mismatches, alert on each
 *	  (ledger.alert and NOTIFY ledger_alerts) and repair.
 *
 * Locking and snapshot rules:
 *	- Detection is one statement, hence one snapshot, and takes no locks.
 *	  A posting writes its journal entries and its balances in one
 *	  transaction, so one snapshot sees all of a posting or none of it:
 *	  postings in flight never show up as false mismatches, and they are
 *	  never blocked by detection.
 *	- Repair locks each mismatched account's balance row (FOR UPDATE, in
 *	  ascending id order, like postings) and rebuilds it from its whole
 *	  history under the lock, with a fresh snapshot (rebuild.c).  Postings
 *	  to those accounts wait until the reconciling transaction ends; other
 *	  accounts are never locked.
 *
 * Mismatch kinds: balance_mismatch, balance_missing (no account_balance
 * row), balance_orphan (a row for no account), daily_balance_mismatch,
 * daily_debits_mismatch and daily_credits_mismatch (one per differing
 * column), daily_missing (a day with entries and no row), daily_extra (a
 * row for a day without entries), escrow_mismatch (a hot account's escrow
 * in shared memory differs from its journal).
 *
 * The escrow check: the escrows are copied before and after the detection
 * statement, which also sums the journal of every hot account.  A hot
 * account whose escrow had no posting in flight at either copy and settled
 * none in between had no posting between them, so the statement's
 * snapshot sees exactly the postings its escrow counts: the two must be
 * equal.  An account busy at that moment is checked at the next run.  A
 * repair fences the account, and its escrow takes the rebuilt balance.
 * Under REPEATABLE READ or SERIALIZABLE the snapshot is older than the
 * first copy, so escrows are not compared (and repairs of hot accounts
 * are refused, escrowload.c).
 *
 * Alert details are built from values (alert.c).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/array.h"
#include "utils/datetime.h"

typedef struct Mismatch
{
	int64		account_id;
	char	   *account;		/* code, or #id for an orphan */
	bool		exists;			/* the account exists */
	char	   *kind;
	bool		has_day;
	DateADT		day;
	Numeric		expected;		/* NULL when absent */
	Numeric		actual;			/* NULL when absent */
	Jsonb	   *details;		/* the daily kinds' columns */
	bool		repaired;
} Mismatch;

static SPIPlanPtr run_start_plan = NULL;
static SPIPlanPtr detect_plan[2] = {NULL, NULL};
static SPIPlanPtr count_accounts_plan = NULL;
static SPIPlanPtr record_plan = NULL;
static SPIPlanPtr run_end_plan = NULL;

static void
prepare_plans(int v)
{
	/*
	 * With hot accounts the caches are folded plus unfolded: compare the
	 * journal with the effective views, in the same one snapshot.
	 */
	if (detect_plan[v] == NULL)
		detect_plan[v] = ledger_prepare_scan(psprintf(
		"WITH problems AS ("
		"  SELECT e.account_id,"
		"         CASE WHEN b.account_id IS NULL THEN 'balance_missing'"
		"              ELSE 'balance_mismatch' END AS kind,"
		"         NULL::date AS day, e.balance AS expected, b.balance AS actual,"
		"         '{}'::jsonb AS details"
		"    FROM ledger.expected_balance e"
		"    LEFT JOIN %s b ON b.account_id = e.account_id"
		"   WHERE b.balance IS DISTINCT FROM e.balance"
		"  UNION ALL"
		"  SELECT b.account_id, 'balance_orphan', NULL, NULL, b.balance, '{}'"
		"    FROM ledger.account_balance b"
		"   WHERE NOT EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = b.account_id)"
		"  UNION ALL"
		"  SELECT coalesce(e.account_id, d.account_id),"
		"         CASE WHEN d.account_id IS NULL THEN 'daily_missing'"
		"              WHEN e.account_id IS NULL THEN 'daily_extra'"
		"              ELSE 'daily_' || c.col || '_mismatch' END,"
		"         coalesce(e.day, d.day), c.exp, c.act,"
		"         pg_catalog.jsonb_build_object('expected_debits', e.debits,"
		"             'actual_debits', d.debits, 'expected_credits', e.credits,"
		"             'actual_credits', d.credits)"
		"    FROM ledger.expected_daily_balance e"
		"    FULL JOIN %s d"
		"      ON d.account_id = e.account_id AND d.day = e.day"
		"   CROSS JOIN LATERAL (VALUES ('balance', e.balance, d.balance),"
		"                              ('debits', e.debits, d.debits),"
		"                              ('credits', e.credits, d.credits)) c(col, exp, act)"
		"   WHERE ((e.account_id IS NULL OR d.account_id IS NULL) AND c.col = 'balance')"
		"      OR (e.account_id IS NOT NULL AND d.account_id IS NOT NULL"
		"          AND c.exp IS DISTINCT FROM c.act)"
		"  UNION ALL"
		"  SELECT e.account_id, 'escrow_check', NULL, e.balance, NULL, '{}'"
		"    FROM ledger.expected_balance e WHERE e.account_id = ANY ($1))"
		" SELECT p.account_id, coalesce(a.code, '#' || p.account_id), a.id IS NOT NULL,"
		"        p.kind, p.day, p.expected, p.actual, p.details"
		"   FROM problems p LEFT JOIN ledger.account a ON a.id = p.account_id"
		"  ORDER BY p.account_id, p.day NULLS FIRST, p.kind",
		v ? "ledger.effective_balance" : "ledger.account_balance",
		v ? "ledger.effective_daily_balance" : "ledger.daily_balance"),
		1, (Oid[]) {INT8ARRAYOID});
	if (run_end_plan != NULL)	/* prepared last */
		return;
	run_start_plan = ledger_prepare(
		"INSERT INTO ledger.reconciliation_run (started_at, repair) "
		"VALUES (pg_catalog.clock_timestamp(), $1) RETURNING id",
		1, (Oid[]) {BOOLOID});
	count_accounts_plan = ledger_prepare_scan(
		"SELECT count(*)::integer FROM ledger.account", 0, NULL);
	record_plan = ledger_prepare(
		"INSERT INTO ledger.reconciliation_mismatch "
		"(run_id, account_id, kind, day, expected, actual, details, repaired) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		8, (Oid[]) {INT8OID, INT8OID, TEXTOID, DATEOID, NUMERICOID, NUMERICOID,
			JSONBOID, BOOLOID});
	run_end_plan = ledger_prepare(
		"UPDATE ledger.reconciliation_run SET finished_at = pg_catalog.clock_timestamp(), "
		"accounts_checked = $2, mismatches = $3, repaired = $4 WHERE id = $1",
		4, (Oid[]) {INT8OID, INT4OID, INT4OID, INT4OID});
}

static int
mismatch_cmp(const void *a, const void *b)
{
	const Mismatch *x = a;
	const Mismatch *y = b;

	if (x->account_id != y->account_id)
		return x->account_id < y->account_id ? -1 : 1;
	if (x->has_day != y->has_day)
		return x->has_day ? 1 : -1;
	if (x->has_day && x->day != y->day)
		return x->day < y->day ? -1 : 1;
	return strcmp(x->kind, y->kind);
}

/* The escrow copy of an account, or NULL. */
static LedgerEscrowView *
view_of(LedgerEscrowView *v, int n, int64 account_id)
{
	int			i;

	for (i = 0; i < n; i++)
		if (v[i].account_id == account_id)
			return &v[i];
	return NULL;
}

/*
 * Compare an escrow with its journal sum, if nothing moved it while the
 * statement ran (see the header).  Fills *m and returns true on a
 * mismatch.
 */
static bool
check_escrow(Mismatch *row, LedgerEscrowView *before, int nbefore,
			 LedgerEscrowView *after, int nafter, Mismatch *m)
{
	LedgerEscrowView *b = view_of(before, nbefore, row->account_id);
	LedgerEscrowView *a = view_of(after, nafter, row->account_id);
	Numeric		escrow;

	if (b == NULL || a == NULL || !b->active || !a->active ||
		b->generation != a->generation || b->settled != a->settled ||
		b->inflight != 0 || a->inflight != 0 || row->expected == NULL)
		return false;
	escrow = ledger_scaled_to_numeric(b->committed, b->scale);
	if (ledger_numeric_cmp(escrow, row->expected) == 0)
		return false;
	*m = *row;
	m->kind = "escrow_mismatch";
	m->actual = escrow;
	return true;
}

/*
 * Find every mismatch in one statement (one snapshot), the hot accounts'
 * escrows compared around it.  Sorted by account, then day, then kind.
 */
static Mismatch *
detect(int v, int *n)
{
	Mismatch   *m;
	LedgerEscrowView *before = NULL;
	LedgerEscrowView *after = NULL;
	int			nbefore = 0;
	int			nafter = 0;
	Datum	   *ids;
	Datum		arg;
	uint64		i;
	int			k = 0;

	/*
	 * Under REPEATABLE READ the snapshot predates the first copy: no
	 * escrow is compared (reconcile.c's header).
	 */
	if (!IsolationUsesXactSnapshot())
		nbefore = ledger_escrow_view(&before);
	ids = palloc(sizeof(Datum) * Max(nbefore, 1));
	for (i = 0; i < (uint64) nbefore; i++)
		ids[i] = Int64GetDatum(before[i].account_id);
	arg = PointerGetDatum(construct_array(ids, nbefore, INT8OID, 8, FLOAT8PASSBYVAL,
										  TYPALIGN_DOUBLE));
	ledger_spi_exec(detect_plan[v], &arg, NULL, SPI_OK_SELECT);
	if (nbefore > 0)
		nafter = ledger_escrow_view(&after);
	m = palloc0(sizeof(Mismatch) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;
		Mismatch	row;

		row.account_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		row.account = SPI_getvalue(tup, desc, 2);
		row.exists = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		row.kind = SPI_getvalue(tup, desc, 4);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		row.has_day = !isnull;
		row.day = isnull ? 0 : DatumGetDateADT(d);
		d = SPI_getbinval(tup, desc, 6, &isnull);
		row.expected = isnull ? NULL : DatumGetNumericCopy(d);
		d = SPI_getbinval(tup, desc, 7, &isnull);
		row.actual = isnull ? NULL : DatumGetNumericCopy(d);
		row.details = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 8, &isnull));
		row.repaired = false;
		if (strcmp(row.kind, "escrow_check") != 0)
			m[k++] = row;
		else if (check_escrow(&row, before, nbefore, after, nafter, &m[k]))
			k++;
	}
	SPI_freetuptable(SPI_tuptable);
	qsort(m, k, sizeof(Mismatch), mismatch_cmp);
	*n = k;
	return m;
}

/*
 * Rebuild every account with a mismatch once: taken as rebuild.c says
 * (hot ones fenced first, then row locks in id order); then remove the
 * balance rows of accounts that do not exist, in one statement.
 */
static int
repair(Mismatch *m, int n)
{
	LedgerTaken *t = palloc0(sizeof(LedgerTaken) * Max(n, 1));
	int			nt = 0;
	bool		orphans = false;
	int			i;

	for (i = 0; i < n; i++)
	{
		m[i].repaired = true;
		if (!m[i].exists)
			orphans = true;
		else if (nt == 0 || t[nt - 1].id != m[i].account_id)
		{
			t[nt].id = m[i].account_id;
			t[nt].code = m[i].account;
			nt++;
		}
	}
	ledger_take_accounts(t, nt);
	for (i = 0; i < nt; i++)
		ledger_finish_account(&t[i], DT_NOBEGIN, NULL);
	if (orphans)
		ledger_remove_orphans();
	return n;
}

/* A day as YYYY-MM-DD, whatever DateStyle says. */
static char *
iso_date(DateADT day)
{
	int			y;
	int			mo;
	int			d;

	j2date(day + POSTGRES_EPOCH_JDATE, &y, &mo, &d);
	return psprintf("%04d-%02d-%02d", y, mo, d);
}

static void
record(int64 run_id, Mismatch *m)
{
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	LedgerJson *j;

	values[0] = Int64GetDatum(run_id);
	values[1] = Int64GetDatum(m->account_id);
	values[2] = CStringGetTextDatum(m->kind);
	values[3] = DateADTGetDatum(m->day);
	nulls[3] = m->has_day ? ' ' : 'n';
	values[4] = m->expected ? NumericGetDatum(m->expected) : (Datum) 0;
	nulls[4] = m->expected ? ' ' : 'n';
	values[5] = m->actual ? NumericGetDatum(m->actual) : (Datum) 0;
	nulls[5] = m->actual ? ' ' : 'n';
	values[6] = JsonbPGetDatum(m->details);
	values[7] = BoolGetDatum(m->repaired);
	ledger_spi_exec(record_plan, values, nulls, SPI_OK_INSERT);

	j = ledger_json_begin();
	ledger_json_int(j, "run_id", run_id);
	ledger_json_text(j, "day", m->has_day ? iso_date(m->day) : NULL);
	ledger_json_numeric(j, "expected", m->expected);
	ledger_json_numeric(j, "actual", m->actual);
	ledger_json_bool(j, "repaired", m->repaired);
	ledger_json_jsonb(j, "columns", m->details);
	ledger_raise_alert(strncmp(m->kind, "daily", 5) == 0 ? "warning" : "critical",
					   m->kind, m->exists ? m->account_id : 0, ledger_json_end(j));
}

PG_FUNCTION_INFO_V1(ledger_reconcile);

Datum
ledger_reconcile(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		do_repair;
	int64		run_id;
	Mismatch   *m;
	int			n;
	int			repaired = 0;
	int			checked;
	int			i;
	int			v;
	bool		standby;
	Datum		values[4];

	LEDGER_REQUIRE_ARG(0, "repair");
	do_repair = PG_GETARG_BOOL(0);

	/*
	 * On a standby reconcile only reports: it cannot write the run, the
	 * alerts or the repairs.  Its one-snapshot comparison is as exact there.
	 */
	standby = RecoveryInProgress();
	if (standby && do_repair)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("reconcile cannot repair on a standby"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "repair"),
													  NULL),
										"This server is in recovery; the balances are repaired on the primary."),
				 errhint("Call ledger.reconcile(repair => false) to report only.")));

	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	ledger_fold_begin();
	v = ledger_schema_has_hot() ? 1 : 0;
	prepare_plans(v);

	run_id = 0;
	if (!standby)
	{
		values[0] = BoolGetDatum(do_repair);
		ledger_spi_exec(run_start_plan, values, NULL, SPI_OK_INSERT_RETURNING);
		run_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											 &(bool) {false}));
	}

	m = detect(v, &n);
	ledger_spi_exec(count_accounts_plan, NULL, NULL, SPI_OK_SELECT);
	checked = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										  &(bool) {false}));

	if (do_repair)
		repaired = repair(m, n);

	for (i = 0; i < n; i++)
	{
		Datum		row[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		if (!standby)
			record(run_id, &m[i]);
		row[0] = CStringGetTextDatum(m[i].account);
		row[1] = CStringGetTextDatum(m[i].kind);
		row[2] = DateADTGetDatum(m[i].day);
		nulls[2] = !m[i].has_day;
		row[3] = m[i].expected ? NumericGetDatum(m[i].expected) : (Datum) 0;
		nulls[3] = m[i].expected == NULL;
		row[4] = m[i].actual ? NumericGetDatum(m[i].actual) : (Datum) 0;
		nulls[4] = m[i].actual == NULL;
		row[5] = BoolGetDatum(m[i].repaired);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
	}

	if (!standby)
	{
		values[0] = Int64GetDatum(run_id);
		values[1] = Int32GetDatum(checked);
		values[2] = Int32GetDatum(n);
		values[3] = Int32GetDatum(repaired);
		ledger_spi_exec(run_end_plan, values, NULL, SPI_OK_UPDATE);
	}
	ledger_fold_end();
	SPI_finish();

	return (Datum) 0;
}
