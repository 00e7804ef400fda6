/*-------------------------------------------------------------------------
 *
 * rebuild.c
 *	  Corrections' common ground: how a correction takes the accounts it
 *	  changes, and the one routine that rebuilds an account's daily_balance
 *	  rows from a given day on, and its account_balance, from the
 *	  non-invalidated journal.  ledger.invalidate (invalidate.c),
 *	  ledger.rebuild_balances (here) and reconciliation repairs
 *	  (reconcile.c) are built on them.
 *
 * Taking accounts, in two phases, each in ascending account id order:
 *	1. fence every hot account (escrowload.c): its new postings fail with
 *	   LD019 and the correction waits for those in flight, holding no row
 *	   lock yet, so no posting it waits for can be waiting for it;
 *	2. lock each balance row (FOR UPDATE, the order postings use, so
 *	   corrections and postings never deadlock) and fold the account's
 *	   unfolded hot entries, so its balance row holds everything committed.
 * A fenced account's escrow takes the rebuilt balance when the
 * correction commits.
 *
 * Locking rules:
 *	- Whoever rebuilds an account holds its account_balance row lock.
 *	  Postings take that lock before they touch daily_balance or write
 *	  journal entries, so while it is held the account's journal and
 *	  balance rows cannot change, and each rebuild statement (a fresh READ
 *	  COMMITTED snapshot, taken after the lock was granted) sees every
 *	  posting that committed before.
 *	- Under REPEATABLE READ or SERIALIZABLE, locking a balance row that
 *	  changed since the snapshot raises a serialization failure (40001)
 *	  instead of rebuilding from a stale view.
 *
 * Cost: invalidate rebuilds each touched account from the day of the
 * invalidated transaction on, starting from the closing balance of the
 * account's last daily_balance row before that day; it reads only the
 * journal entries of that account from that day on (index
 * journal_entry_account_idx).  rebuild_balances and reconcile repairs start
 * from the beginning of the account's history.  rebuild_balances(NULL)
 * rebuilds account after account in a memory context reset for each.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/memutils.h"

static SPIPlanPtr rebuild_plan = NULL;

/* The start of a timestamp's UTC day, as a timestamptz and as a date. */
static void
utc_day_start(TimestampTz ts, TimestampTz *start, DateADT *day)
{
	*day = ledger_utc_day(ts);
	*start = TIMESTAMP_NOT_FINITE(ts) ? ts : (TimestampTz) *day * USECS_PER_DAY;
}

/*
 * Rebuild one account from the UTC day of "from" on (DT_NOBEGIN: its whole
 * history).  The caller holds the account's balance row lock and is inside
 * SPI.  Days before "from" are trusted: the closing balance of the last
 * daily row before it is the starting point.  Writes only rows that differ;
 * returns how many balance rows it inserted, updated or deleted, and the
 * account's balance in *balance.
 */
int
ledger_rebuild_account(int64 account_id, TimestampTz from, Numeric *balance)
{
	TimestampTz start;
	DateADT		day;
	Datum		values[3];
	bool		isnull;
	int			changed;

	if (rebuild_plan == NULL)
		rebuild_plan = ledger_prepare(
			"WITH sc AS ("
			"  SELECT s.scale FROM ledger.account a JOIN ledger.asset s ON s.code = a.asset"
			"   WHERE a.id = $1),"
			" base AS ("
			"  SELECT coalesce((SELECT d.balance FROM ledger.daily_balance d"
			"                    WHERE d.account_id = $1 AND d.day < $3"
			"                    ORDER BY d.day DESC LIMIT 1), 0) AS b),"
			" exp AS ("
			"  SELECT e.day, e.debits, e.credits,"
			"         (SELECT b FROM base) + sum(e.net) OVER (ORDER BY e.day) AS balance"
			"    FROM (SELECT (j.created_at AT TIME ZONE 'UTC')::date AS day,"
			"                 coalesce(sum(-j.amount) FILTER (WHERE j.amount < 0), 0) AS debits,"
			"                 coalesce(sum(j.amount) FILTER (WHERE j.amount > 0), 0) AS credits,"
			"                 sum(j.amount) AS net"
			"            FROM ledger.journal_entry j"
			"           WHERE j.account_id = $1 AND j.created_at >= $2 AND NOT j.is_invalidated"
			"           GROUP BY 1) e),"
			" final AS ("
			"  SELECT pg_catalog.round(coalesce((SELECT balance FROM exp ORDER BY day DESC LIMIT 1),"
			"                  (SELECT b FROM base)), coalesce((SELECT scale FROM sc), 0)) AS balance),"
			" del AS ("
			"  DELETE FROM ledger.daily_balance d"
			"   WHERE d.account_id = $1 AND d.day >= $3"
			"     AND NOT EXISTS (SELECT 1 FROM exp WHERE exp.day = d.day)"
			"  RETURNING 1),"
			" ups AS ("
			"  INSERT INTO ledger.daily_balance AS d (account_id, day, debits, credits, balance)"
			"  SELECT $1, day, debits, credits, balance FROM exp"
			"  ON CONFLICT (account_id, day) DO UPDATE"
			"     SET debits = excluded.debits, credits = excluded.credits, balance = excluded.balance"
			"   WHERE (d.debits, d.credits, d.balance)"
			"         IS DISTINCT FROM (excluded.debits, excluded.credits, excluded.balance)"
			"  RETURNING 1),"
			" bal AS ("
			"  INSERT INTO ledger.account_balance AS b (account_id, balance)"
			"  SELECT $1, balance FROM final"
			"  ON CONFLICT (account_id) DO UPDATE"
			"     SET balance = excluded.balance, updated_at = pg_catalog.now()"
			"   WHERE b.balance IS DISTINCT FROM excluded.balance"
			"  RETURNING 1)"
			" SELECT ((SELECT count(*) FROM del) + (SELECT count(*) FROM ups)"
			"         + (SELECT count(*) FROM bal))::integer,"
			"        (SELECT balance FROM final)",
			3, (Oid[]) {INT8OID, TIMESTAMPTZOID, DATEOID});

	utc_day_start(from, &start, &day);
	values[0] = Int64GetDatum(account_id);
	values[1] = TimestampTzGetDatum(start);
	values[2] = DateADTGetDatum(day);
	ledger_spi_exec(rebuild_plan, values, NULL, SPI_OK_SELECT);

	changed = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (balance != NULL)
		*balance = DatumGetNumericCopy(SPI_getbinval(SPI_tuptable->vals[0],
													 SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return changed;
}

static int
taken_cmp(const void *a, const void *b)
{
	int64		ia = ((const LedgerTaken *) a)->id;
	int64		ib = ((const LedgerTaken *) b)->id;

	return (ia > ib) - (ia < ib);
}

/*
 * Phase 1: sort the accounts and fence the hot ones.  Before any balance
 * row lock is taken.
 */
void
ledger_fence_accounts(LedgerTaken *t, int n)
{
	int			i;

	qsort(t, n, sizeof(LedgerTaken), taken_cmp);
	for (i = 0; i < n; i++)
	{
		Assert(i == 0 || t[i - 1].id < t[i].id);
		t[i].fenced = ledger_hot_fence(t[i].id, t[i].code);
	}
}

/*
 * Phase 2, one account: lock its balance row and fold its hot entries.  A
 * hot account that had no escrow slot at phase 1 may have been loaded by a
 * posting since (escrowload.c; a load holds this same row lock): then the
 * correction would rebuild under a live escrow, so it is refused, to be
 * retried, fenced this time.
 */
void
ledger_lock_account(LedgerTaken *t)
{
	ledger_lock_balance(t->id);
	if (!t->fenced && ledger_hot_has_slot(t->id))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_MODE_CHANGED),
				 errmsg("hot account \"%s\" was loaded while the correction started", t->code),
				 errhint("Retry the correction."),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_MODE_CHANGED, LEDGER_FACT_TEXT("account", t->code), NULL), NULL)));
	if (ledger_schema_has_hot())
		ledger_fold_account(t->id, INT_MAX);
}

/*
 * Take accounts for a correction: both phases, all accounts.  Sorts t by
 * account id; ids must be distinct.
 */
void
ledger_take_accounts(LedgerTaken *t, int n)
{
	int			i;

	ledger_fence_accounts(t, n);
	for (i = 0; i < n; i++)
		ledger_lock_account(&t[i]);
}

/*
 * Rebuild a taken account from the UTC day of "from" on; a fenced (hot)
 * account's escrow takes the rebuilt balance when the transaction commits.
 * Returns the balance rows changed; the balance in *balance.
 */
int
ledger_finish_account(LedgerTaken *t, TimestampTz from, Numeric *balance)
{
	Numeric		after;
	int			changed;

	changed = ledger_rebuild_account(t->id, from, &after);
	if (t->fenced)
		ledger_hot_fence_set(t->id, after);
	if (balance)
		*balance = after;
	return changed;
}

/* ---------------------------------------------------------------------
 * ledger.rebuild_balances
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr account_id_plan = NULL;
static SPIPlanPtr all_accounts_plan = NULL;
static SPIPlanPtr orphans_plan = NULL;

static int64
account_id_by_code(const char *code)
{
	Datum		values[1];
	bool		isnull;
	int64		id;

	if (account_id_plan == NULL)
		account_id_plan = ledger_prepare(
			"SELECT id FROM ledger.account WHERE code = $1", 1, (Oid[]) {TEXTOID});
	values[0] = CStringGetTextDatum(code);
	ledger_spi_exec(account_id_plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
				 errmsg("account \"%s\" does not exist", code),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ACCOUNT, LEDGER_FACT_TEXT("account", code), NULL), NULL)));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return id;
}

/* Balance and daily rows of accounts that do not exist: delete them. */
int
ledger_remove_orphans(void)
{
	int			n;

	if (orphans_plan == NULL)
		orphans_plan = ledger_prepare_scan(
			"WITH b AS (DELETE FROM ledger.account_balance b WHERE NOT EXISTS "
			"  (SELECT 1 FROM ledger.account a WHERE a.id = b.account_id) RETURNING 1),"
			" d AS (DELETE FROM ledger.daily_balance d WHERE NOT EXISTS "
			"  (SELECT 1 FROM ledger.account a WHERE a.id = d.account_id) RETURNING 1)"
			" SELECT ((SELECT count(*) FROM b) + (SELECT count(*) FROM d))::integer",
			0, NULL);
	ledger_spi_exec(orphans_plan, NULL, NULL, SPI_OK_SELECT);
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									&(bool) {false}));
	SPI_freetuptable(SPI_tuptable);
	return n;
}

/*
 * Every account, from its whole history: hot accounts are fenced first
 * (they refuse postings until the call commits), then each account is
 * locked and rebuilt in id order, in a memory context of its own that is
 * reset after it.  Then balance rows of accounts that do not exist go.
 */
static int
rebuild_all(void)
{
	LedgerTaken *t;
	MemoryContext per_account;
	MemoryContext old;
	uint64		n;
	uint64		i;
	int			changed = 0;

	if (all_accounts_plan == NULL)
		all_accounts_plan = ledger_prepare_scan(
			"SELECT id, code FROM ledger.account ORDER BY id", 0, NULL);
	ledger_spi_exec(all_accounts_plan, NULL, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	t = palloc0(sizeof(LedgerTaken) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		t[i].id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
											  1, &(bool) {false}));
		t[i].code = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}
	SPI_freetuptable(SPI_tuptable);

	ledger_fence_accounts(t, (int) n);
	per_account = AllocSetContextCreate(CurrentMemoryContext, "ledger rebuild account",
										ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(per_account);
	for (i = 0; i < n; i++)
	{
		ledger_lock_account(&t[i]);
		changed += ledger_finish_account(&t[i], DT_NOBEGIN, NULL);
		MemoryContextReset(per_account);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(per_account);
	return changed + ledger_remove_orphans();
}

PG_FUNCTION_INFO_V1(ledger_rebuild_balances);

Datum
ledger_rebuild_balances(PG_FUNCTION_ARGS)
{
	int			changed;

	SPI_connect();
	ledger_fold_begin();
	if (!PG_ARGISNULL(0))
	{
		LedgerTaken t = {0};

		t.code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
		t.id = account_id_by_code(t.code);
		ledger_take_accounts(&t, 1);
		changed = ledger_finish_account(&t, DT_NOBEGIN, NULL);
	}
	else
		changed = rebuild_all();
	ledger_fold_end();
	SPI_finish();

	PG_RETURN_INT32(changed);
}
