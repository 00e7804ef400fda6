/*-------------------------------------------------------------------------
 *
 * holdstore.c
 *	  The rows of holds: ledger.hold, its timeline ledger.hold_event, and
 *	  the hold columns of an account's balance row (open_holds,
 *	  max_active_holds).  Every statement is prepared once and kept
 *	  (spi.c); values travel as parameters.  hold.c and capture.c decide
 *	  what to write; this file only reads and writes.
 *
 * What is held on an account (ledger_held) is read with a fresh snapshot
 * taken after the caller locked the account's balance row.  Every writer
 * of an account's holds takes that row lock first, so under READ
 * COMMITTED the sum seen is exactly the committed state, and no hold can
 * be added or changed until the caller commits.  Under REPEATABLE READ a
 * writer that committed since the snapshot changed the balance row
 * (every move counts on it, ledger_hold_move), so the caller's row lock
 * fails with 40001 first.
 *
 * A move is one statement: the hold row, the balance row's count and the
 * timeline row are written together (data-modifying CTEs).
 *
 * Locking: FOR UPDATE on the balance row (ledger_hold_lock_account) and
 * on the hold row (ledger_hold_read with lock), in that order; callers
 * keep the order.  No other lock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"

static SPIPlanPtr held_plan = NULL;
static SPIPlanPtr lock_account_plan = NULL;
static SPIPlanPtr read_plan = NULL;
static SPIPlanPtr read_lock_plan = NULL;
/* the statements with a key, each in two forms: [ledger_keys_scoped()] */
static SPIPlanPtr insert_plan[2];
static SPIPlanPtr find_key_plan[2];
static SPIPlanPtr move_plan[2];
static SPIPlanPtr event_key_plan[2];

/*
 * What the account's active holds keep: the sum of exclusive holds, the
 * largest shared one, and how many are active, at time now.  A reserved
 * hold past its submit deadline is not active, whatever its row says.
 */
void
ledger_held(int64 account_id, TimestampTz now, LedgerHeld *out)
{
	Datum		values[2];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	if (held_plan == NULL)
		held_plan = ledger_prepare(
			"SELECT COALESCE(pg_catalog.sum(remaining) FILTER "
			"                (WHERE mode OPERATOR(pg_catalog.=) 'exclusive'), 0), "
			"       COALESCE(pg_catalog.max(remaining) FILTER "
			"                (WHERE mode OPERATOR(pg_catalog.=) 'shared'), 0), "
			"       pg_catalog.count(*)::pg_catalog.int4 "
			"  FROM ledger.hold "
			" WHERE account_id OPERATOR(pg_catalog.=) $1 "
			"   AND state OPERATOR(pg_catalog.=) "
			"       ANY ('{reserved,submitted,timed_out}'::pg_catalog.text[]) "
			"   AND (state OPERATOR(pg_catalog.<>) 'reserved' "
			"        OR submit_deadline OPERATOR(pg_catalog.>) $2)",
			2, (Oid[]) {INT8OID, TIMESTAMPTZOID});
	values[0] = Int64GetDatum(account_id);
	values[1] = TimestampTzGetDatum(now);
	ledger_spi_exec(held_plan, values, NULL, SPI_OK_SELECT);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	out->exclusive = DatumGetNumericCopy(SPI_getbinval(tup, desc, 1, &isnull));
	out->shared = DatumGetNumericCopy(SPI_getbinval(tup, desc, 2, &isnull));
	out->active = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	SPI_freetuptable(SPI_tuptable);
	Assert(ledger_numeric_sign(out->exclusive) >= 0 && ledger_numeric_sign(out->shared) >= 0);
}

/*
 * Lock an account's balance row (FOR UPDATE, newest version under READ
 * COMMITTED) and read what a hold move checks.  The account must exist:
 * the caller resolved it.  With skip_locked, a row another transaction
 * holds is not waited for: false, nothing locked.
 */
bool
ledger_hold_lock_account(int64 account_id, bool skip_locked, LedgerHoldAccount *out)
{
	static SPIPlanPtr skip_plan = NULL;
	SPIPlanPtr *plan = skip_locked ? &skip_plan : &lock_account_plan;
	Datum		values[1];
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;

	if (*plan == NULL)
		*plan = ledger_prepare(skip_locked ?
							   "SELECT balance, hot, open_holds, max_active_holds "
							   "  FROM ledger.account_balance WHERE account_id = $1 "
							   "   FOR UPDATE SKIP LOCKED" :
							   "SELECT balance, hot, open_holds, max_active_holds "
							   "  FROM ledger.account_balance WHERE account_id = $1 FOR UPDATE",
							   1, (Oid[]) {INT8OID});
	values[0] = Int64GetDatum(account_id);
	ledger_spi_exec(*plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1 && skip_locked)
		return false;
	if (SPI_processed != 1)
		elog(ERROR, "account " INT64_FORMAT " has no balance row", account_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	out->balance = DatumGetNumericCopy(SPI_getbinval(tup, desc, 1, &isnull));
	out->hot = DatumGetBool(SPI_getbinval(tup, desc, 2, &isnull));
	out->open_holds = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	out->max_active_holds = isnull ? -1 : DatumGetInt32(d);
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/* Set an account's limit on active holds (-1: none), under its row lock. */
void
ledger_hold_set_limit(int64 account_id, int max_active_holds)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2];

	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.account_balance SET max_active_holds = $2 WHERE account_id = $1",
			2, (Oid[]) {INT8OID, INT4OID});
	values[0] = Int64GetDatum(account_id);
	values[1] = Int32GetDatum(max_active_holds);
	ledger_spi_exec(plan, values, max_active_holds < 0 ? " n" : NULL, SPI_OK_UPDATE);
}

#define HOLD_COLUMNS \
	"SELECT h.account_id, h.to_account_id, h.mode, h.amount, h.captured, h.remaining, " \
	"       h.state, h.external_ref, h.submit_deadline, h.confirm_within, " \
	"       h.confirm_deadline, a.code, t.code " \
	"  FROM ledger.hold h " \
	"  JOIN ledger.account a ON a.id = h.account_id " \
	"  LEFT JOIN ledger.account t ON t.id = h.to_account_id " \
	" WHERE h.id = $1"

static Datum
col(int n, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, n, isnull);
}

/*
 * Read a hold by id into *h; false if there is none.  With lock, the row
 * is locked FOR UPDATE (after its account's balance row) and read in its
 * newest version.
 */
bool
ledger_hold_read(const pg_uuid_t *id, bool lock, LedgerHold *h)
{
	SPIPlanPtr *plan = lock ? &read_lock_plan : &read_plan;
	Datum		values[1];
	bool		isnull;
	Datum		d;

	if (*plan == NULL)
		*plan = ledger_prepare(lock ? HOLD_COLUMNS " FOR UPDATE OF h" : HOLD_COLUMNS,
							   1, (Oid[]) {UUIDOID});
	values[0] = UUIDPGetDatum(id);
	ledger_spi_exec(*plan, values, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		SPI_freetuptable(SPI_tuptable);
		return false;
	}
	memset(h, 0, sizeof(LedgerHold));
	memcpy(&h->id, id, sizeof(pg_uuid_t));
	h->account_id = DatumGetInt64(col(1, &isnull));
	d = col(2, &isnull);
	h->to_account_id = isnull ? 0 : DatumGetInt64(d);
	h->exclusive = strcmp(TextDatumGetCString(col(3, &isnull)), "exclusive") == 0;
	h->amount = DatumGetNumericCopy(col(4, &isnull));
	h->captured = DatumGetNumericCopy(col(5, &isnull));
	h->remaining = DatumGetNumericCopy(col(6, &isnull));
	h->state = TextDatumGetCString(col(7, &isnull));
	d = col(8, &isnull);
	h->external_ref = isnull ? NULL : TextDatumGetCString(d);
	h->submit_deadline = DatumGetTimestampTz(col(9, &isnull));
	h->confirm_within = DatumGetIntervalP(datumCopy(col(10, &isnull), false, sizeof(Interval)));
	d = col(11, &isnull);
	h->confirm_deadline = isnull ? DT_NOBEGIN : DatumGetTimestampTz(d);
	h->account_code = TextDatumGetCString(col(12, &isnull));
	d = col(13, &isnull);
	h->to_code = isnull ? NULL : TextDatumGetCString(d);
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/* The calling role: the one outside SECURITY DEFINER (SET ROLE counts). */
static Datum
actor(void)
{
	return CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
}

/*
 * Insert a new hold, count it on its account's balance row and record it
 * on its timeline, in one statement; false (nothing written) when its
 * idempotency key is taken by a committed hold.  A concurrent insert with
 * the same key waits on the unique index until the first commits or
 * aborts.  Under the account's row lock (ledger_hold_lock_account).
 */
bool
ledger_hold_insert(const LedgerHold *h, Interval *submit_within, TimestampTz created_at,
				   const char *key, bytea *hash, Jsonb *metadata)
{
	Datum		values[15];
	char		nulls[15];
	bool		scoped = ledger_keys_scoped();

	if (insert_plan[scoped] == NULL)
		insert_plan[scoped] = ledger_prepare(ledger_key_scope_sql(scoped,
			"WITH i AS ("
			"  INSERT INTO ledger.hold (id, account_id, to_account_id, mode, amount, remaining, "
			"    state, external_ref, submit_within, confirm_within, created_at, submit_deadline, "
			"    idempotency_key, request_hash, metadata, captured%s) "
			"  VALUES ($1, $2, $3, $4, $5, $5, 'reserved', $6, $7, $8, $9, $10, $11, $12, $13, $14%s) "
			"  ON CONFLICT (%sidempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING "
			"  RETURNING id), "
			"c AS (UPDATE ledger.account_balance SET open_holds = open_holds + 1 "
			"       WHERE account_id = $2 AND EXISTS (SELECT 1 FROM i)) "
			"INSERT INTO ledger.hold_event (hold_id, event, at, actor, amount, remaining) "
			"SELECT i.id, 'reserved', $9, $15, $5, $5 FROM i", 2),
			15, (Oid[]) {UUIDOID, INT8OID, INT8OID, TEXTOID, NUMERICOID, TEXTOID,
						 INTERVALOID, INTERVALOID, TIMESTAMPTZOID, TIMESTAMPTZOID,
						 TEXTOID, BYTEAOID, JSONBOID, NUMERICOID, TEXTOID});
	memset(nulls, ' ', sizeof(nulls));
	values[0] = UUIDPGetDatum(&h->id);
	values[1] = Int64GetDatum(h->account_id);
	values[2] = Int64GetDatum(h->to_account_id);
	nulls[2] = h->to_account_id == 0 ? 'n' : ' ';
	values[3] = CStringGetTextDatum(h->exclusive ? "exclusive" : "shared");
	values[4] = NumericGetDatum(h->amount);
	values[5] = h->external_ref ? CStringGetTextDatum(h->external_ref) : (Datum) 0;
	nulls[5] = h->external_ref ? ' ' : 'n';
	values[6] = IntervalPGetDatum(submit_within);
	values[7] = IntervalPGetDatum(h->confirm_within);
	values[8] = TimestampTzGetDatum(created_at);
	values[9] = TimestampTzGetDatum(h->submit_deadline);
	values[10] = key ? CStringGetTextDatum(key) : (Datum) 0;
	nulls[10] = key ? ' ' : 'n';
	values[11] = hash ? PointerGetDatum(hash) : (Datum) 0;
	nulls[11] = hash ? ' ' : 'n';
	values[12] = JsonbPGetDatum(metadata);
	values[13] = NumericGetDatum(h->captured);
	values[14] = actor();
	ledger_spi_exec(insert_plan[scoped], values, nulls, SPI_OK_INSERT);
	return SPI_processed == 1;
}

/*
 * The hold an idempotency key belongs to, and its request fingerprint;
 * false if none.
 */
bool
ledger_hold_find_key(const char *key, int64 scope_account, pg_uuid_t *id, bytea **hash)
{
	bool		isnull;
	Datum		d;

	if (!ledger_key_select(find_key_plan, "SELECT id, request_hash FROM ledger.hold",
						   key, scope_account))
		return false;
	memcpy(id, DatumGetUUIDP(col(1, &isnull)), sizeof(pg_uuid_t));
	d = col(2, &isnull);
	*hash = isnull ? NULL : DatumGetByteaPCopy(d);
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/*
 * A move of a hold, in one statement: write its state, amounts and times
 * back, change its account's count of open holds by count_delta (0 too:
 * every move writes the balance row, so that a REPEATABLE READ transaction
 * that read the holds before it cannot take the row without a 40001), and
 * append the move to its timeline: the event, when, the calling role, the
 * amount moved and what remains.  Under the account's and the hold's row
 * locks (ledger_hold_take).  False when key is taken by another event
 * (then the caller raises, which undoes the rest); a concurrent insert
 * with the same key waits for the first to end.
 */
bool
ledger_hold_move(const LedgerHold *h, TimestampTz now, int count_delta, const char *event,
				 Numeric amount, const pg_uuid_t *txid, const char *reason, const char *key,
				 Jsonb *detail)
{
	Datum		v[16];
	char		n[16];
	bool		scoped = ledger_keys_scoped();

	if (move_plan[scoped] == NULL)
		move_plan[scoped] = ledger_prepare(ledger_key_scope_sql(scoped,
			"WITH u AS ("
			"  UPDATE ledger.hold SET state = $2, captured = $3, remaining = $4, "
			"    external_ref = $5, "
			"    submitted_at = CASE WHEN $2 OPERATOR(pg_catalog.=) 'submitted' "
			"                         AND state OPERATOR(pg_catalog.=) 'reserved' "
			"                        THEN $6 ELSE submitted_at END, "
			"    confirm_deadline = $7, "
			"    finished_at = CASE WHEN $2 IN ('captured', 'voided', 'expired') THEN $6 END "
			"   WHERE id = $1 RETURNING id), "
			"c AS (UPDATE ledger.account_balance SET open_holds = open_holds OPERATOR(pg_catalog.+) $9 "
			"       WHERE account_id = $8) "
			"INSERT INTO ledger.hold_event (hold_id, event, at, actor, amount, remaining, "
			"  transaction_id, reason, idempotency_key, detail%s) "
			"SELECT u.id, $10, $6, $11, $12, $4, $13, $14, $15, "
			"       COALESCE($16, '{}'::pg_catalog.jsonb)%s FROM u "
			"ON CONFLICT (%sidempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING", 8),
			16, (Oid[]) {UUIDOID, TEXTOID, NUMERICOID, NUMERICOID, TEXTOID, TIMESTAMPTZOID,
						 TIMESTAMPTZOID, INT8OID, INT4OID, TEXTOID, TEXTOID, NUMERICOID,
						 UUIDOID, TEXTOID, TEXTOID, JSONBOID});
	memset(n, ' ', sizeof(n));
	v[0] = UUIDPGetDatum(&h->id);
	v[1] = CStringGetTextDatum(h->state);
	v[2] = NumericGetDatum(h->captured);
	v[3] = NumericGetDatum(h->remaining);
	v[4] = h->external_ref ? CStringGetTextDatum(h->external_ref) : (Datum) 0;
	n[4] = h->external_ref ? ' ' : 'n';
	v[5] = TimestampTzGetDatum(now);
	v[6] = TimestampTzGetDatum(h->confirm_deadline);
	n[6] = TIMESTAMP_IS_NOBEGIN(h->confirm_deadline) ? 'n' : ' ';
	v[7] = Int64GetDatum(h->account_id);
	v[8] = Int32GetDatum(count_delta);
	v[9] = CStringGetTextDatum(event);
	v[10] = actor();
	v[11] = amount ? NumericGetDatum(amount) : (Datum) 0;
	n[11] = amount ? ' ' : 'n';
	v[12] = txid ? UUIDPGetDatum(txid) : (Datum) 0;
	n[12] = txid ? ' ' : 'n';
	v[13] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	n[13] = reason ? ' ' : 'n';
	v[14] = key ? CStringGetTextDatum(key) : (Datum) 0;
	n[14] = key ? ' ' : 'n';
	v[15] = detail ? JsonbPGetDatum(detail) : (Datum) 0;
	n[15] = detail ? ' ' : 'n';
	ledger_spi_exec(move_plan[scoped], v, n, SPI_OK_INSERT);
	return SPI_processed == 1;
}

/*
 * The timeline row an idempotency key belongs to: its hold, event and
 * amount; false if none.
 */
bool
ledger_hold_event_by_key(const char *key, int64 scope_account, pg_uuid_t *hold_id, char **event,
						 Numeric *amount)
{
	bool		isnull;
	Datum		d;

	if (!ledger_key_select(event_key_plan, "SELECT hold_id, event, amount FROM ledger.hold_event",
						   key, scope_account))
		return false;
	memcpy(hold_id, DatumGetUUIDP(col(1, &isnull)), sizeof(pg_uuid_t));
	*event = TextDatumGetCString(col(2, &isnull));
	d = col(3, &isnull);
	*amount = isnull ? NULL : DatumGetNumericCopy(d);
	SPI_freetuptable(SPI_tuptable);
	return true;
}
