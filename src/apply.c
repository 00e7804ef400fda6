/*-------------------------------------------------------------------------
 *
 * apply.c
 *	  Applying events: ledger_apply_batch, which ledger.apply_events, the
 *	  event worker (eventworker.c) and ledger.catch_up call.  Events are
 *	  applied in sequence order, up to the horizon (horizon.c), each in its
 *	  own subtransaction, and the projection's pointer moves past the
 *	  batch in the same transaction.
 *
 * The projection's row is locked first (FOR UPDATE, or SKIP LOCKED for
 * the worker and catch_up, which then leave the batch to whoever holds
 * it), so appliers take turns and never wait on each other in a circle;
 * then the horizon is read, then the events above the pointer and at or
 * below the horizon are read with a snapshot taken after it (READ
 * COMMITTED only).  Each event runs with the rights of the role that
 * appended it (checked again here) as this backend's current event
 * (horizon.c), which ledger.stamp_event records on the transactions and
 * holds it writes.  An event the ledger refuses (class LD but the
 * retryable LD019-LD021, or class 22: bad data) is rolled back alone,
 * recorded in ledger.event_rejection with its SQLSTATE and message, and
 * alerted (event_rejected, naming the stream's account and owner; the
 * alert is also an outbox message).  Then the pointer moves past the
 * batch, conditionally on its previous value: events and pointer commit
 * together.  An event that fails otherwise (a deadlock, an internal
 * error) ends the batch before it; the attempt is counted on the
 * projection's row, and after EVENT_MAX_ATTEMPTS failures in a row the
 * event is rejected.  A cancel, a shutdown or no memory fails the whole
 * call.  An event is applied or rejected exactly once.
 *
 * Locking: the projection row (until the caller commits), and whatever the
 * applied calls lock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

typedef struct Pending
{
	int64		seq;
	pg_uuid_t	id;
	char	   *stream;
	char	   *type;
	Jsonb	   *payload;
	char	   *appended_by;	/* the role that appended it */
} Pending;

/* An event that fails otherwise than by a refusal this many times is rejected. */
#define EVENT_MAX_ATTEMPTS 5

/*
 * Is an error the ledger's refusal of the event (class LD: insufficient
 * funds, an unknown account, an illegal hold move, ...; not the retryable
 * LD019, LD020 and LD021) or bad data in it (class 22: an amount or id that does
 * not parse)?  Anything else (a
 * deadlock, a serialization failure, a cancel, no memory) is not the
 * event's fault: the whole call fails and the event is applied later.
 */
static bool
retryable(int sqlerrcode)
{
	/*
	 * a hot account changing mode, not yet loaded or not served here; a
	 * rate limit (appliers are not limited: only if that ever changed)
	 */
	return sqlerrcode == ERRCODE_LEDGER_MODE_CHANGED || sqlerrcode == ERRCODE_LEDGER_HOT_NOT_READY ||
		sqlerrcode == ERRCODE_LEDGER_HOT_UNAVAILABLE || sqlerrcode == ERRCODE_LEDGER_RATE_LIMITED;
}

static bool
is_refusal(int sqlerrcode)
{
	if (retryable(sqlerrcode))
		return false;
	return LEDGER_ERRCODE_IS_LD(sqlerrcode) ||
		ERRCODE_TO_CATEGORY(sqlerrcode) == ERRCODE_DATA_EXCEPTION;
}

/* Record a refused event and alert. */
static void
reject(Pending *e, ErrorData *err)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	LedgerAccount a;
	TransactionId xmin;
	LedgerJson *j;

	if (plan == NULL)
		plan = ledger_prepare(
			"INSERT INTO ledger.event_rejection (seq, event_id, sqlstate, message, detail) "
			"VALUES ($1, $2, $3, $4, $5)",
			5, (Oid[]) {INT8OID, UUIDOID, TEXTOID, TEXTOID, TEXTOID});
	values[0] = Int64GetDatum(e->seq);
	values[1] = UUIDPGetDatum(&e->id);
	values[2] = CStringGetTextDatum(unpack_sql_state(err->sqlerrcode));
	values[3] = CStringGetTextDatum(err->message ? err->message : "");
	values[4] = err->detail ? CStringGetTextDatum(err->detail) : (Datum) 0;
	nulls[4] = err->detail ? ' ' : 'n';
	ledger_spi_exec(plan, values, nulls, SPI_OK_INSERT);

	j = ledger_json_begin();
	ledger_json_text(j, "event_id", ledger_uuid_str(&e->id));
	ledger_json_int(j, "seq", e->seq);
	ledger_json_text(j, "stream", e->stream);
	ledger_json_text(j, "type", e->type);
	ledger_json_text(j, "sqlstate", unpack_sql_state(err->sqlerrcode));
	ledger_json_text(j, "message", err->message ? err->message : "");
	ledger_raise_alert("warning", "event_rejected",
					   ledger_lookup_account(e->stream, &a, &xmin) ? a.id : 0,
					   ledger_json_end(j));
}

/*
 * Count a failed attempt at an event on the projection's row (locked):
 * returns how many times in a row it has failed.
 */
static int
count_attempt(Pending *e, ErrorData *err)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[4];
	bool		isnull;

	/*
	 * An attempt counts only a second or more after the last one (appliers
	 * retry within milliseconds: five quick failures are one passing
	 * condition), and a hot account not ready or changing mode
	 * (LD019-LD021) never counts: it is retried until it goes through.
	 */
	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.projection SET "
			"  stuck_attempts = CASE WHEN NOT $4 THEN 0 "
			"    WHEN stuck_seq IS DISTINCT FROM $1 THEN 1 "
			"    WHEN updated_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) "
			"         interval '1 s') THEN stuck_attempts + 1 ELSE stuck_attempts END, "
			"  stuck_seq = $1, stuck_sqlstate = $2, stuck_message = $3, updated_at = pg_catalog.now() "
			" WHERE name = 'ledger' RETURNING stuck_attempts",
			4, (Oid[]) {INT8OID, TEXTOID, TEXTOID, BOOLOID});
	values[0] = Int64GetDatum(e->seq);
	values[1] = CStringGetTextDatum(unpack_sql_state(err->sqlerrcode));
	values[2] = CStringGetTextDatum(err->message ? err->message : "");
	values[3] = BoolGetDatum(!retryable(err->sqlerrcode));
	ledger_spi_exec(plan, values, NULL, SPI_OK_UPDATE_RETURNING);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

static void
move_pointer(int64 from, int64 to, int applied, int rejected)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[4];

	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.projection SET last_sequence = $2, applied = applied + $3, "
			"  rejected = rejected + $4, updated_at = pg_catalog.now() "
			" WHERE name = 'ledger' AND last_sequence = $1",
			4, (Oid[]) {INT8OID, INT8OID, INT4OID, INT4OID});
	values[0] = Int64GetDatum(from);
	values[1] = Int64GetDatum(to);
	values[2] = Int32GetDatum(applied);
	values[3] = Int32GetDatum(rejected);
	ledger_spi_exec(plan, values, NULL, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		elog(ERROR, "the projection's pointer moved from " INT64_FORMAT " under its row lock", from);
}

/*
 * Lock the projection's row (made on first use) and read its pointer;
 * with skip_locked, false if another applier holds the row.
 */
static bool
lock_pointer(bool skip_locked, int64 *last)
{
	static SPIPlanPtr make_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr skip_plan = NULL;
	bool		isnull;

	if (make_plan == NULL)
	{
		make_plan = ledger_prepare(
			"INSERT INTO ledger.projection (name) VALUES ('ledger') ON CONFLICT DO NOTHING",
			0, NULL);
		lock_plan = ledger_prepare(
			"SELECT last_sequence FROM ledger.projection WHERE name = 'ledger' FOR UPDATE",
			0, NULL);
		skip_plan = ledger_prepare(
			"SELECT last_sequence FROM ledger.projection WHERE name = 'ledger' "
			"FOR UPDATE SKIP LOCKED", 0, NULL);
	}
	ledger_spi_exec(make_plan, NULL, NULL, SPI_OK_INSERT);
	ledger_spi_exec(skip_locked ? skip_plan : lock_plan, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
	{
		Assert(skip_locked);
		return false;
	}
	*last = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/* The pointer as committed (a fresh snapshot under READ COMMITTED); 0 before the first apply. */
int64
ledger_projection_pointer(void)
{
	static SPIPlanPtr plan = NULL;
	bool		isnull;
	int64		pointer;

	if (plan == NULL)
		plan = ledger_prepare(
			"SELECT last_sequence FROM ledger.projection WHERE name = 'ledger'", 0, NULL);
	ledger_spi_exec(plan, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	pointer = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);	/* catch_up reads this every few ms */
	return pointer;
}

/* The events after the pointer, up to the horizon, in order. */
static Pending *
read_pending(int64 last, int64 horizon, int max, int *n)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];
	Pending    *p;
	uint64		i;

	if (plan == NULL)
		plan = ledger_prepare(
			"SELECT seq, id, stream, type, payload, appended_by FROM ledger.event "
			" WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
			3, (Oid[]) {INT8OID, INT8OID, INT4OID});
	values[0] = Int64GetDatum(last);
	values[1] = Int64GetDatum(horizon);
	values[2] = Int32GetDatum(max);
	ledger_spi_exec(plan, values, NULL, SPI_OK_SELECT);
	*n = (int) SPI_processed;
	p = palloc0(sizeof(Pending) * Max(*n, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		p[i].seq = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		memcpy(&p[i].id, DatumGetUUIDP(SPI_getbinval(tup, desc, 2, &isnull)), sizeof(pg_uuid_t));
		p[i].stream = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		p[i].type = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		p[i].payload = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 5, &isnull));
		p[i].appended_by = TextDatumGetCString(SPI_getbinval(tup, desc, 6, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	return p;
}

/*
 * One event's call, with the appender's rights checked, as this backend's
 * current event (run by ledger_try; the caller clears the event).
 */
static void
apply_one(void *arg)
{
	Pending    *e = (Pending *) arg;
	const LedgerEventType *t = ledger_event_type(e->type);

	if (t == NULL)
		elog(ERROR, "unknown event type \"%s\"", e->type);
	ledger_event_check_rights(e->appended_by, t, e->seq);
	ledger_event_context_set(e->seq, &e->id);
	ledger_event_run(t, e->payload);
}

/*
 * Apply up to max events after the pointer, up to the horizon; inside SPI,
 * in the caller's transaction.  With skip_locked, *locked is false and
 * nothing is done when another applier holds the projection's row.
 * Returns how many events were applied or rejected.
 */
int
ledger_apply_batch(int max, bool skip_locked, bool *locked, int *applied, int *rejected)
{
	int64		last;
	int64		horizon;
	Pending    *p;
	int			n;
	int			nread;
	int			i;
	Oid			relid;
	int64		to = 0;
	pg_uuid_t	current;

	*applied = *rejected = 0;
	/* the horizon is read after the snapshot of a REPEATABLE READ transaction: events would be missed */
	if (IsolationUsesXactSnapshot())
		elog(ERROR, "events are applied under READ COMMITTED only");
	if (ledger_event_context(&last, &current))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("events cannot be applied from inside an event"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_INT("seq", last),
													  LEDGER_FACT_ID("event_id", &current),
													  NULL),
										"This backend is applying event " INT64_FORMAT ".", last)));
	relid = ledger_event_relid();
	*locked = lock_pointer(skip_locked, &last);
	if (!*locked)
		return 0;
	ledger_projection_locked_set();	/* until this transaction ends */
	horizon = ledger_horizon(relid);	/* first the horizon, then the snapshot */
	p = read_pending(last, horizon, max, &n);
	nread = n;
	for (i = 0; i < n; i++)
	{
		ErrorData  *err;

		Assert(p[i].seq > (i == 0 ? last : p[i - 1].seq) && p[i].seq <= horizon);
		err = ledger_try(apply_one, &p[i]);	/* its own subtransaction */
		ledger_event_context_set(0, NULL);
		if (err != NULL && !is_refusal(err->sqlerrcode))
		{
			/* a cancel, a shutdown, no memory: this call ends here */
			if (ERRCODE_TO_CATEGORY(err->sqlerrcode) == ERRCODE_OPERATOR_INTERVENTION ||
				ERRCODE_TO_CATEGORY(err->sqlerrcode) == ERRCODE_INSUFFICIENT_RESOURCES)
				ReThrowError(err);
			/*
			 * Not the event's fault, as far as we know (a deadlock, a
			 * serialization failure, an internal error): stop before it,
			 * keeping what the batch applied, and count the attempt.  The
			 * next call tries again; after EVENT_MAX_ATTEMPTS failures in a
			 * row the event is rejected, so one bad event cannot stop
			 * every later one for good.
			 */
			if (count_attempt(&p[i], err) < EVENT_MAX_ATTEMPTS)
			{
				ereport(WARNING,
						(errmsg("event " INT64_FORMAT " could not be applied: %s", p[i].seq, err->message),
						 errdetail("It is retried by the next call of ledger.apply_events; after %d failures in a row it is rejected.",
								   EVENT_MAX_ATTEMPTS)));
				FreeErrorData(err);
				n = i;			/* the batch ends before it */
				break;
			}
		}
		if (err != NULL)
		{
			/* refused: recorded, alerted, and the pointer moves on */
			reject(&p[i], err);
			FreeErrorData(err);
			(*rejected)++;
		}
		else
			(*applied)++;
	}
	/*
	 * The pointer moves past every event of the batch, in the transaction
	 * that applied them, conditionally on where it was: the events and the
	 * pointer commit together or not at all.  When the batch read every
	 * event up to the horizon, the pointer moves to the horizon: the
	 * numbers between are gaps (appends rolled back, keys already taken)
	 * that no event can fill any more.  (Once per batch: a row
	 * updated once per event in one transaction makes each update walk
	 * every earlier version.)
	 */
	if (n == nread && nread < max)
		to = horizon;			/* every event up to the horizon was read: past any gap */
	else if (n > 0)
		to = p[n - 1].seq;
	if (to > last)
		move_pointer(last, to, *applied, *rejected);
	return n;
}

/* LD011 unless the transaction reads with a fresh snapshot per statement. */
static void
require_read_committed(const char *what)
{
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("%s runs under READ COMMITTED only", what),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("isolation", ledger_isolation_name()),
													  NULL),
										"It reads events with a snapshot taken after the horizon; this transaction's snapshot is older.")));
}

PG_FUNCTION_INFO_V1(ledger_apply_events);

Datum
ledger_apply_events(PG_FUNCTION_ARGS)
{
	int			max;
	int			n;
	int			applied;
	int			rejected;
	bool		locked;

	LEDGER_REQUIRE_ARG(0, "max_events");
	max = PG_GETARG_INT32(0);
	if (max < 1 || max > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("max_events must be between 1 and 100000"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("argument", "max_events"),
													  LEDGER_FACT_INT("given", max),
													  NULL),
										"max_events is %d.", max)));
	require_read_committed("ledger.apply_events");
	PreventCommandIfReadOnly("ledger.apply_events");
	ledger_horizon_require();

	SPI_connect();
	n = ledger_apply_batch(max, false, &locked, &applied, &rejected);
	SPI_finish();
	PG_RETURN_INT32(n);
}
