/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  The balance-update step of a posting, in one place: the conditional
 *	  update of ledger.account_balance and the upsert of the day's row in
 *	  ledger.daily_balance.  Later balance strategies (hot accounts) plug in
 *	  here and nowhere else.
 *
 * Locking rules:
 *	- Accounts are updated in ascending account id order, whatever order the
 *	  caller's legs came in, so two postings touching the same accounts lock
 *	  their balance rows in the same order and never deadlock.
 *	- The debit is conditional at the row: the UPDATE itself refuses to take
 *	  the balance below min_balance.  Under READ COMMITTED a concurrent
 *	  update makes the UPDATE wait for the row lock and re-check the
 *	  condition against the newest committed balance, so there is no
 *	  read-then-write window.  Under REPEATABLE READ or SERIALIZABLE the
 *	  same conflict raises a serialization failure (40001) to retry.
 *	- The posting timestamp is taken after every balance row lock is held.
 *	  The lock is kept until commit, so per account the timestamps of
 *	  postings are in the same order as their balance changes, and the
 *	  closing balance stored for a day is the running sum of the journal up
 *	  to the end of that day.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"

/* [1]: the schema has hot accounts (account_balance.hot, ledger.hot_entry) */
static SPIPlanPtr debit_plan[2] = {NULL, NULL};
static SPIPlanPtr current_plan[2] = {NULL, NULL};
/* [v][with hot legs][with the transaction row] */
static SPIPlanPtr finish_plan[2][2][2];

static int
delta_cmp(const void *a, const void *b)
{
	int64		ia = ((const LedgerDelta *) a)->account->id;
	int64		ib = ((const LedgerDelta *) b)->account->id;

	return (ia > ib) - (ia < ib);
}

/*
 * Every statement here names its operators and functions schema-qualified:
 * transfer and post run without a pinned search_path (see posting.c).
 *
 * The last statement of a posting writes, in one go, the transaction row
 * (when posting.c did not: see there), the journal entries, the hot queue
 * rows (v = 1) and the cold accounts' daily rows.
 */
#define FINISH_TXN \
	"t AS (INSERT INTO ledger.transaction (id, kind, metadata) VALUES ($1, $13, $14) " \
	"  RETURNING 1), "
#define FINISH_JOURNAL \
	"j AS (INSERT INTO ledger.journal_entry (transaction_id, account_id, amount, created_at) " \
	"  SELECT $1, u.a, u.m, $2 " \
	"  FROM ROWS FROM (pg_catalog.unnest($3::bigint[]), pg_catalog.unnest($4::numeric[])) AS u(a, m) " \
	"  RETURNING 1) "
#define FINISH_HOT \
	", h AS (INSERT INTO ledger.hot_entry " \
	"  (transaction_id, account_id, day, debits, credits, created_at) " \
	"  SELECT $1, u.a, $5, u.dr, u.cr, $2 " \
	"  FROM ROWS FROM (pg_catalog.unnest($10::bigint[]), pg_catalog.unnest($11::numeric[]), " \
	"  pg_catalog.unnest($12::numeric[])) AS u(a, dr, cr) RETURNING 1) "
#define FINISH_DAILY \
	"INSERT INTO ledger.daily_balance AS d (account_id, day, debits, credits, balance) " \
	"SELECT u.a, $5, u.dr, u.cr, u.bal " \
	"FROM ROWS FROM (pg_catalog.unnest($6::bigint[]), pg_catalog.unnest($7::numeric[]), " \
	"pg_catalog.unnest($8::numeric[]), pg_catalog.unnest($9::numeric[])) AS u(a, dr, cr, bal) " \
	"ON CONFLICT (account_id, day) DO UPDATE " \
	"SET debits = d.debits OPERATOR(pg_catalog.+) excluded.debits, " \
	"credits = d.credits OPERATOR(pg_catalog.+) excluded.credits, " \
	"balance = excluded.balance"
#define FINISH_NARGS 14

static void
prepare_plans(int v)
{
	if (current_plan[v] != NULL)	/* prepared last */
		return;
	/*
	 * With hot accounts, a cold debit also checks, under the row lock, that
	 * the account has not turned hot since it was resolved.
	 */
	debit_plan[v] = ledger_prepare(v ?
		"UPDATE ledger.account_balance "
		"SET balance = balance OPERATOR(pg_catalog.+) $2, updated_at = pg_catalog.now() "
		"WHERE account_id OPERATOR(pg_catalog.=) $1 AND NOT hot "
		"AND ($2 OPERATOR(pg_catalog.>=) 0 OR $3::numeric IS NULL "
		"OR balance OPERATOR(pg_catalog.+) $2 OPERATOR(pg_catalog.>=) $3) "
		"RETURNING balance" :
		"UPDATE ledger.account_balance "
		"SET balance = balance OPERATOR(pg_catalog.+) $2, updated_at = pg_catalog.now() "
		"WHERE account_id OPERATOR(pg_catalog.=) $1 "
		"AND ($2 OPERATOR(pg_catalog.>=) 0 OR $3::numeric IS NULL "
		"OR balance OPERATOR(pg_catalog.+) $2 OPERATOR(pg_catalog.>=) $3) "
		"RETURNING balance",
		3, (Oid[]) {INT8OID, NUMERICOID, NUMERICOID});
	current_plan[v] = ledger_prepare(v ?
		"SELECT balance, hot FROM ledger.account_balance WHERE account_id OPERATOR(pg_catalog.=) $1" :
		"SELECT balance, false FROM ledger.account_balance WHERE account_id OPERATOR(pg_catalog.=) $1",
		1, (Oid[]) {INT8OID});
}

/*
 * The last statement, in the variant a posting needs.  Cold postings use
 * one without the hot queue: every relation a posting touches takes one of
 * the backend's 16 fast-path lock slots, and past them locks go through
 * the shared lock manager.
 */
static SPIPlanPtr
get_finish_plan(int v, bool hot, bool txn)
{
	static const Oid types[FINISH_NARGS] = {
		UUIDOID, TIMESTAMPTZOID, INT8ARRAYOID, NUMERICARRAYOID, DATEOID,
		INT8ARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID,
		INT8ARRAYOID, NUMERICARRAYOID, NUMERICARRAYOID, TEXTOID, JSONBOID
	};

	if (hot && !v)
		elog(ERROR, "hot account without hot schema");
	if (finish_plan[v][hot][txn] == NULL)
		finish_plan[v][hot][txn] = ledger_prepare(psprintf("WITH %s%s%s%s",
														   txn ? FINISH_TXN : "",
														   FINISH_JOURNAL,
														   hot ? FINISH_HOT : "",
														   FINISH_DAILY),
												  FINISH_NARGS, (Oid *) types);
	return finish_plan[v][hot][txn];
}

/*
 * Report a refused debit.  The balance is read again only to name it in
 * the message; the decision was the UPDATE's.
 */
static void
report_insufficient(LedgerDelta *d, int v)
{
	Datum		values[1];
	bool		isnull;
	Numeric		balance;
	Numeric		available;

	values[0] = Int64GetDatum(d->account->id);
	ledger_spi_exec(current_plan[v], values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		elog(ERROR, "account \"%s\" (id " INT64_FORMAT ") has no balance row",
			 d->account->code, d->account->id);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("account \"%s\" is changing mode", d->account->code),
				 errdetail("The account was switched to hot mode while the posting ran."),
				 errhint("Retry the posting.")));
	balance = DatumGetNumeric(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 1, &isnull));
	available = ledger_numeric_add(balance, ledger_numeric_neg(d->account->min_balance));

	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_INSUFFICIENT_FUNDS),
			 errmsg("insufficient funds in account \"%s\"", d->account->code),
			 errdetail("Account \"%s\" has balance %s and floor %s, so %s is available; the posting requests %s.",
					   d->account->code,
					   ledger_numeric_str(balance),
					   ledger_numeric_str(d->account->min_balance),
					   ledger_numeric_str(available),
					   ledger_numeric_str(ledger_numeric_neg(d->delta)))));
}

/* Build a one-dimensional array of n Datums of a type. */
static Datum
make_array(Datum *elems, int n, Oid type)
{
	if (type == INT8OID)
		return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL,
											   TYPALIGN_DOUBLE));
	return PointerGetDatum(construct_array(elems, n, NUMERICOID, -1, false, TYPALIGN_INT));
}

/*
 * Apply a posting: the net effect on each account's balance, then its
 * journal entries, and its transaction row when kind is not NULL.  Must be called inside SPI.  Sorts deltas by account id
 * (the lock order).  For a cold account: the conditional UPDATE of its
 * balance row, then its daily row.  For a hot account: a reservation or
 * credit in shared memory (hot.c) and a ledger.hot_entry row for the fold
 * worker.  The journal entries are stamped with the time taken once every
 * cold balance row is locked.  Raises LD001 when a debit would cross
 * min_balance.
 */
void
ledger_apply_balances(LedgerDelta *deltas, int ndeltas, pg_uuid_t *txid,
					  LedgerLeg *legs, int nlegs, const char *kind, Jsonb *metadata)
{
	TimestampTz ts;
	Datum		values[FINISH_NARGS];
	char		nulls[FINISH_NARGS];
	Datum	   *accts = palloc(sizeof(Datum) * nlegs);
	Datum	   *amounts = palloc(sizeof(Datum) * nlegs);
	Datum	   *ids = palloc(sizeof(Datum) * ndeltas);
	Datum	   *drs = palloc(sizeof(Datum) * ndeltas);
	Datum	   *crs = palloc(sizeof(Datum) * ndeltas);
	Datum	   *bals = palloc(sizeof(Datum) * ndeltas);
	Datum	   *hids = palloc(sizeof(Datum) * ndeltas);
	Datum	   *hdrs = palloc(sizeof(Datum) * ndeltas);
	Datum	   *hcrs = palloc(sizeof(Datum) * ndeltas);
	int			ncold = 0;
	int			nhot = 0;
	int			v = ledger_schema_has_hot() ? 1 : 0;
	int			i;

	prepare_plans(v);
	qsort(deltas, ndeltas, sizeof(LedgerDelta), delta_cmp);
	memset(nulls, ' ', sizeof(nulls));

	for (i = 0; i < ndeltas; i++)
	{
		LedgerDelta *d = &deltas[i];
		bool		isnull;

		if (d->account->hot)
		{
			ledger_hot_apply(d);
			hids[nhot] = Int64GetDatum(d->account->id);
			hdrs[nhot] = NumericGetDatum(d->debits);
			hcrs[nhot] = NumericGetDatum(d->credits);
			nhot++;
			continue;
		}
		values[0] = Int64GetDatum(d->account->id);
		values[1] = NumericGetDatum(d->delta);
		values[2] = d->account->unbounded ? (Datum) 0 : NumericGetDatum(d->account->min_balance);
		nulls[2] = d->account->unbounded ? 'n' : ' ';
		ledger_spi_exec(debit_plan[v], values, nulls, SPI_OK_UPDATE_RETURNING);
		if (SPI_processed == 0)
			report_insufficient(d, v);
		d->new_balance = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc,
														   1, &isnull));
		ids[ncold] = Int64GetDatum(d->account->id);
		drs[ncold] = NumericGetDatum(d->debits);
		crs[ncold] = NumericGetDatum(d->credits);
		bals[ncold] = NumericGetDatum(d->new_balance);
		ncold++;
	}

	/* every cold balance row of the posting is locked: now stamp it */
	ts = GetCurrentTimestamp();

	for (i = 0; i < nlegs; i++)
	{
		accts[i] = Int64GetDatum(legs[i].account->id);
		amounts[i] = NumericGetDatum(legs[i].amount);
	}
	memset(nulls, ' ', sizeof(nulls));
	values[0] = UUIDPGetDatum(txid);
	values[1] = TimestampTzGetDatum(ts);
	values[2] = make_array(accts, nlegs, INT8OID);
	values[3] = make_array(amounts, nlegs, NUMERICOID);
	values[4] = DateADTGetDatum(ledger_utc_day(ts));
	values[5] = make_array(ids, ncold, INT8OID);
	values[6] = make_array(drs, ncold, NUMERICOID);
	values[7] = make_array(crs, ncold, NUMERICOID);
	values[8] = make_array(bals, ncold, NUMERICOID);
	values[9] = make_array(hids, nhot, INT8OID);
	values[10] = make_array(hdrs, nhot, NUMERICOID);
	values[11] = make_array(hcrs, nhot, NUMERICOID);
	values[12] = kind ? CStringGetTextDatum(kind) : (Datum) 0;
	values[13] = kind ? JsonbPGetDatum(metadata) : (Datum) 0;
	nulls[12] = nulls[13] = kind ? ' ' : 'n';
	ledger_spi_exec(get_finish_plan(v, nhot > 0, kind != NULL), values, nulls, SPI_OK_INSERT);
}
