/*-------------------------------------------------------------------------
 *
 * outbox.c
 *	  The outbox's SQL API: ledger.enqueue writes a message in the
 *	  caller's transaction (outboxstore.c); consumers take messages with
 *	  ledger.outbox_claim and settle each with ledger.outbox_ack or
 *	  ledger.outbox_fail; ledger.outbox_retry gives a dead letter another
 *	  round.  Delivery is at least once: a consumer that dies holding a
 *	  lease has its messages claimed again when the lease runs out.
 *
 * A message is pending (available_at says from when), leased (to a
 * consumer until leased_until), delivered, or dead.  A claim counts an
 * attempt; a failure makes the message pending again after a backoff of
 * ledger.outbox_backoff * 2^(attempts - 1), at most
 * ledger.outbox_max_backoff; after ledger.outbox_max_attempts attempts
 * (failed, or leases run out) it is dead.  Only the oldest unfinished
 * message of each topic and key can be claimed, so a key's messages of a
 * topic are delivered one at a time, in the order they became visible
 * (by id among those committed: a message whose transaction commits after
 * a later-numbered one of its key went out is the head again, but never
 * while another of its key is leased), and a dead message no longer holds
 * its key back.  outbox_release gives a leased message back unsent,
 * without counting the attempt.  ack and fail may name the consumer: then only the one holding the
 * lease settles the message (a consumer whose lease ran out and was taken
 * over cannot undo the new holder's work).
 *
 * Locking: a claim locks the rows it leases (FOR UPDATE SKIP LOCKED: two
 * consumers never wait for each other, nor take the same message or two
 * messages of one topic and key); ack, fail and retry lock their message's
 * row.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"

static int	outbox_max_attempts = 10;
static int	outbox_backoff_ms = 1000;
static int	outbox_max_backoff_ms = 3600000;

/* Longest error text outbox_fail keeps, in bytes. */
#define OUTBOX_MAX_ERROR 8192

void
ledger_outbox_init(void)
{
	DefineCustomIntVariable("ledger.outbox_max_attempts",
							"Delivery attempts after which an outbox message is dead.",
							NULL, &outbox_max_attempts, 10, 1, 1000, PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("ledger.outbox_backoff",
							"Wait before the first retry of a failed outbox message; doubled for each further attempt.",
							NULL, &outbox_backoff_ms, 1000, 0, 86400000, PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("ledger.outbox_max_backoff",
							"Longest wait before a retry of a failed outbox message.",
							NULL, &outbox_max_backoff_ms, 3600000, 0, 86400000, PGC_SUSET,
							GUC_UNIT_MS, NULL, NULL, NULL);
}

/* LD035 unless the installed schema has an outbox. */
static void
require_outbox(void)
{
	const LedgerSchema *schema = ledger_schema();

	if (schema == NULL || !schema->has_outbox)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_OUTBOX_STATE),
				 errmsg("the installed ledger has no outbox"),
				 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_OUTBOX_STATE), "The outbox came with version 0.7.0 of the extension."),
				 errhint("ALTER EXTENSION ledger UPDATE.")));
}

PG_FUNCTION_INFO_V1(ledger_enqueue);

Datum
ledger_enqueue(PG_FUNCTION_ARGS)
{
	char	   *topic;
	char	   *key;
	Jsonb	   *payload;
	int64		id;

	LEDGER_REQUIRE_ARG(0, "topic");
	LEDGER_REQUIRE_ARG(1, "key");
	LEDGER_REQUIRE_ARG(2, "payload");
	topic = ledger_check_code(PG_GETARG_TEXT_PP(0), "topic");
	key = ledger_check_code(PG_GETARG_TEXT_PP(1), "key");
	payload = PG_GETARG_JSONB_P(2);
	if (strncmp(topic, "ledger.", 7) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("topics beginning with \"ledger.\" are the ledger's own"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("topic", topic),
													  NULL),
										"Topic \"%s\".", topic)));
	if (VARSIZE(payload) > LEDGER_MAX_METADATA_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("an outbox payload must be at most %d bytes", LEDGER_MAX_METADATA_SIZE),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("topic", topic),
													  LEDGER_FACT_INT("bytes", VARSIZE(payload)),
													  LEDGER_FACT_INT("max_bytes", LEDGER_MAX_METADATA_SIZE),
													  NULL),
										"The payload of topic \"%s\", key \"%s\" is %zu bytes.", topic, key,
						   (size_t) VARSIZE(payload))));
	PreventCommandIfReadOnly("ledger.enqueue");
	SPI_connect();
	require_outbox();
	id = ledger_outbox_put(topic, key, payload);
	SPI_finish();
	PG_RETURN_INT64(id);
}

PG_FUNCTION_INFO_V1(ledger_outbox_claim);

Datum
ledger_outbox_claim(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr dead_plan = NULL;
	static SPIPlanPtr claim_plan = NULL;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *consumer;
	int			max;
	Interval   *lease;
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	uint64		i;

	LEDGER_REQUIRE_ARG(0, "consumer");
	LEDGER_REQUIRE_ARG(1, "max_messages");
	LEDGER_REQUIRE_ARG(2, "lease");
	consumer = ledger_check_code(PG_GETARG_TEXT_PP(0), "consumer");
	max = PG_GETARG_INT32(1);
	lease = PG_GETARG_INTERVAL_P(2);
	if (max < 1 || max > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("max_messages must be between 1 and 10000"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("consumer", consumer),
													  LEDGER_FACT_TEXT("argument", "max_messages"),
													  LEDGER_FACT_INT("given", max),
													  NULL),
										"max_messages is %d.", max)));
	(void) ledger_check_interval(lease, "lease", USECS_PER_SEC, USECS_PER_DAY,
								 "between 1 second and 1 day");
	if (!PG_ARGISNULL(3) && array_contains_nulls(PG_GETARG_ARRAYTYPE_P(3)))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("topics must not contain NULL"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("consumer", consumer),
													  LEDGER_FACT_TEXT("argument", "topics"),
													  NULL),
										"Consumer \"%s\" gave a topic list with a NULL element.", consumer)));
	PreventCommandIfReadOnly("ledger.outbox_claim");
	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	require_outbox();
	if (claim_plan == NULL)
	{
		/* leases run out after the last attempt: dead, not claimed again */
		dead_plan = ledger_prepare(
			"UPDATE ledger.outbox SET state = 'dead', leased_until = NULL, "
			"  last_error = pg_catalog.concat_ws('; ', last_error, "
			"    'lease of ' OPERATOR(pg_catalog.||) leased_by OPERATOR(pg_catalog.||) ' ran out') "
			" WHERE state = 'leased' AND leased_until OPERATOR(pg_catalog.<=) pg_catalog.now() "
			"   AND attempts OPERATOR(pg_catalog.>=) $1",
			1, (Oid[]) {INT4OID});
		claim_plan = ledger_prepare(
			"WITH heads AS ("
			"  SELECT DISTINCT ON (topic, key) id FROM ledger.outbox "
			"   WHERE state IN ('pending', 'leased') ORDER BY topic, key, id), "
			"ready AS ("
			"  SELECT o.id FROM ledger.outbox o JOIN heads h ON h.id = o.id "
			"   WHERE ((o.state = 'pending' AND o.available_at OPERATOR(pg_catalog.<=) pg_catalog.now()) "
			"       OR (o.state = 'leased' AND o.leased_until OPERATOR(pg_catalog.<=) pg_catalog.now())) "
			"     AND ($4 IS NULL OR o.topic OPERATOR(pg_catalog.=) ANY ($4)) "
			/* none of the key in flight: a message committed late with a smaller id is a head again */
			"     AND NOT EXISTS (SELECT 1 FROM ledger.outbox l WHERE l.topic = o.topic AND l.key = o.key "
			"       AND l.state = 'leased' AND l.id <> o.id "
			"       AND l.leased_until OPERATOR(pg_catalog.>) pg_catalog.now()) "
			"   ORDER BY o.id LIMIT $2 FOR UPDATE OF o SKIP LOCKED), "
			"claimed AS ("
			"  UPDATE ledger.outbox o SET state = 'leased', attempts = o.attempts + 1, "
			"         leased_by = $1, leased_until = pg_catalog.now() OPERATOR(pg_catalog.+) $3 "
			"    FROM ready WHERE o.id = ready.id "
			"  RETURNING o.id, o.topic, o.key, o.payload, o.attempts, o.created_at) "
			"SELECT * FROM claimed ORDER BY id",
			4, (Oid[]) {TEXTOID, INT4OID, INTERVALOID, TEXTARRAYOID});
	}
	values[0] = Int32GetDatum(outbox_max_attempts);
	ledger_spi_exec(dead_plan, values, NULL, SPI_OK_UPDATE);
	values[0] = CStringGetTextDatum(consumer);
	values[1] = Int32GetDatum(max);
	values[2] = IntervalPGetDatum(lease);
	values[3] = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	nulls[3] = PG_ARGISNULL(3) ? 'n' : ' ';
	ledger_spi_exec(claim_plan, values, nulls, SPI_OK_SELECT);
	for (i = 0; i < SPI_processed; i++)
	{
		Datum		row[6];
		bool		rownulls[6];
		int			c;

		for (c = 0; c < 6; c++)
			row[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &rownulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, rownulls);
	}
	SPI_finish();
	return (Datum) 0;
}

/*
 * Run plan, a move of a message in state needed ("leased" or "dead"),
 * which returns a row when it applied.  Otherwise: false if an ack finds
 * the message delivered already, LD035 if it does not exist, is in
 * another state, or (named consumer) is leased by another consumer.
 */
static Datum
settle(SPIPlanPtr plan, Datum *values, const char *nulls, int64 id, const char *move,
	   const char *needed, const char *consumer, bool *done)
{
	static SPIPlanPtr state_plan = NULL;
	bool		isnull;
	char	   *state;
	char	   *holder;

	ledger_spi_exec(plan, values, nulls, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed == 1)
	{
		*done = true;
		return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	}
	*done = false;
	if (state_plan == NULL)
		state_plan = ledger_prepare("SELECT state, leased_by FROM ledger.outbox WHERE id = $1",
									1, (Oid[]) {INT8OID});
	ledger_spi_exec(state_plan, &values[0], NULL, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_OUTBOX_STATE),
				 errmsg("outbox message " INT64_FORMAT " does not exist", id),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_OUTBOX_STATE,
													  LEDGER_FACT_INT("message_id", id),
													  LEDGER_FACT_TEXT("consumer", consumer),
													  LEDGER_FACT_TEXT("required_state", needed),
													  NULL),
										"ledger.%s applies to a %s message.", move, needed)));
	state = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											  &isnull));
	holder = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	if (strcmp(state, "delivered") == 0 && strcmp(move, "outbox_ack") == 0)
		return BoolGetDatum(false);
	if (strcmp(state, needed) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_OUTBOX_STATE),
				 errmsg("outbox message " INT64_FORMAT " is leased by another consumer", id),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_OUTBOX_STATE,
													  LEDGER_FACT_INT("message_id", id),
													  LEDGER_FACT_TEXT("state", state),
													  LEDGER_FACT_TEXT("leased_by", holder),
													  LEDGER_FACT_TEXT("consumer", consumer),
													  NULL),
										"Consumer \"%s\" holds its lease, not \"%s\".",
						   holder ? holder : "", consumer ? consumer : "")));
	ereport(ERROR,
			(errcode(ERRCODE_LEDGER_OUTBOX_STATE),
			 errmsg("outbox message " INT64_FORMAT " is %s, not %s", id, state, needed),
			 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_OUTBOX_STATE,
												  LEDGER_FACT_INT("message_id", id),
												  LEDGER_FACT_TEXT("state", state),
												  LEDGER_FACT_TEXT("required_state", needed),
												  LEDGER_FACT_TEXT("consumer", consumer),
												  NULL),
									"ledger.%s applies to a %s message.", move, needed)));
	return (Datum) 0;			/* keep compiler quiet */
}

/* The optional consumer argument (argno) of ack and fail, or NULL. */
static char *
optional_consumer(FunctionCallInfo fcinfo, int argno, Datum *value, char *null)
{
	char	   *consumer = ledger_optional_code(fcinfo, argno, "consumer");

	*value = consumer ? CStringGetTextDatum(consumer) : (Datum) 0;
	*null = consumer ? ' ' : 'n';
	return consumer;
}

PG_FUNCTION_INFO_V1(ledger_outbox_ack);

Datum
ledger_outbox_ack(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char	   *consumer;
	bool		done;
	Datum		r;

	LEDGER_REQUIRE_ARG(0, "id");
	consumer = optional_consumer(fcinfo, 1, &values[1], &nulls[1]);
	PreventCommandIfReadOnly("ledger.outbox_ack");
	SPI_connect();
	require_outbox();
	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.outbox SET state = 'delivered', delivered_at = pg_catalog.now(), "
			"  leased_until = NULL WHERE id = $1 AND state = 'leased' "
			"  AND ($2 IS NULL OR leased_by = $2) RETURNING true",
			2, (Oid[]) {INT8OID, TEXTOID});
	values[0] = PG_GETARG_DATUM(0);
	r = settle(plan, values, nulls, PG_GETARG_INT64(0), "outbox_ack", "leased", consumer, &done);
	SPI_finish();
	PG_RETURN_BOOL(done ? true : DatumGetBool(r));
}

PG_FUNCTION_INFO_V1(ledger_outbox_fail);

Datum
ledger_outbox_fail(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
	char	   *consumer;
	text	   *error;
	bool		done;
	Datum		r;

	LEDGER_REQUIRE_ARG(0, "id");
	LEDGER_REQUIRE_ARG(1, "error");
	error = PG_GETARG_TEXT_PP(1);
	if (VARSIZE_ANY_EXHDR(error) > OUTBOX_MAX_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("error must be at most %d bytes", OUTBOX_MAX_ERROR),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_INT("message_id", PG_GETARG_INT64(0)),
													  LEDGER_FACT_TEXT("argument", "error"),
													  LEDGER_FACT_INT("bytes", VARSIZE_ANY_EXHDR(error)),
													  LEDGER_FACT_INT("max_bytes", OUTBOX_MAX_ERROR),
													  NULL),
										"The error given for outbox message " INT64_FORMAT " is %zu bytes.",
						   PG_GETARG_INT64(0), (size_t) VARSIZE_ANY_EXHDR(error))));
	consumer = optional_consumer(fcinfo, 2, &values[5], &nulls[5]);
	PreventCommandIfReadOnly("ledger.outbox_fail");
	SPI_connect();
	require_outbox();
	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.outbox SET "
			"  state = CASE WHEN attempts OPERATOR(pg_catalog.>=) $3 THEN 'dead' ELSE 'pending' END, "
			"  available_at = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval("
			"    secs => LEAST($4::float8 OPERATOR(pg_catalog.*) "
			"      pg_catalog.power(2::float8, (attempts OPERATOR(pg_catalog.-) 1)::float8), "
			"      $5::float8) OPERATOR(pg_catalog./) 1000), "
			"  leased_until = NULL, last_error = $2 "
			" WHERE id = $1 AND state = 'leased' AND ($6 IS NULL OR leased_by = $6) RETURNING state",
			6, (Oid[]) {INT8OID, TEXTOID, INT4OID, INT4OID, INT4OID, TEXTOID});
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PointerGetDatum(error);
	values[2] = Int32GetDatum(outbox_max_attempts);
	values[3] = Int32GetDatum(outbox_backoff_ms);
	values[4] = Int32GetDatum(outbox_max_backoff_ms);
	r = settle(plan, values, nulls, PG_GETARG_INT64(0), "outbox_fail", "leased", consumer, &done);
	Assert(done);
	r = SPI_datumTransfer(r, false, -1);
	SPI_finish();
	PG_RETURN_DATUM(r);
}

PG_FUNCTION_INFO_V1(ledger_outbox_release);

Datum
ledger_outbox_release(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	char	   *consumer;
	bool		done;

	LEDGER_REQUIRE_ARG(0, "id");
	consumer = optional_consumer(fcinfo, 1, &values[1], &nulls[1]);
	PreventCommandIfReadOnly("ledger.outbox_release");
	SPI_connect();
	require_outbox();
	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.outbox SET state = 'pending', leased_until = NULL, "
			"  attempts = GREATEST(attempts OPERATOR(pg_catalog.-) 1, 0), "
			"  available_at = pg_catalog.now() "
			" WHERE id = $1 AND state = 'leased' AND ($2 IS NULL OR leased_by = $2) RETURNING true",
			2, (Oid[]) {INT8OID, TEXTOID});
	values[0] = PG_GETARG_DATUM(0);
	(void) settle(plan, values, nulls, PG_GETARG_INT64(0), "outbox_release", "leased", consumer,
				  &done);
	SPI_finish();
	PG_RETURN_BOOL(done);
}

PG_FUNCTION_INFO_V1(ledger_outbox_retry);

Datum
ledger_outbox_retry(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[1];
	bool		done;

	LEDGER_REQUIRE_ARG(0, "id");
	PreventCommandIfReadOnly("ledger.outbox_retry");
	SPI_connect();
	require_outbox();
	if (plan == NULL)
		plan = ledger_prepare(
			"UPDATE ledger.outbox SET state = 'pending', attempts = 0, "
			"  available_at = pg_catalog.now() WHERE id = $1 AND state = 'dead' RETURNING true",
			1, (Oid[]) {INT8OID});
	values[0] = PG_GETARG_DATUM(0);
	(void) settle(plan, values, NULL, PG_GETARG_INT64(0), "outbox_retry", "dead", NULL, &done);
	Assert(done);
	SPI_finish();
	PG_RETURN_BOOL(true);
}
