/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The append-only trigger, ledger.guard_append_only().  It rejects
 *	  TRUNCATE, DELETE, and any UPDATE other than flipping the invalidation
 *	  flag from false to true together with its companion columns.
 *
 * The trigger's arguments name the columns an UPDATE may change; the first
 * is the flag: a boolean may only go from false to true, any other type only
 * from NULL to a value (alert.acknowledged_at).  The other named columns may
 * change only in the same UPDATE that sets the flag.  With no arguments
 * every UPDATE is refused.  The triggers are
 * created ENABLE ALWAYS, so they fire for superusers and under
 * session_replication_role = replica too.
 *
 * Also ledger.stamp_event(), the trigger that records on a transaction or
 * hold which event (apply.c's current event, horizon.c) created or last
 * changed it: event_id and event_seq.  Outside the applier they are
 * kept as they are on UPDATE (LD006 if changed) and taken as given on
 * INSERT (a restore); inside it they are set, and an event older than the
 * recorded one is refused (LD033): the number only moves forward.  A
 * direct call (no event) leaves them as they are: they name the last
 * event that changed the row.  Under session_replication_role = replica
 * (a logical subscriber) rows are taken as the publisher wrote them.
 *
 * Locking: none beyond the row lock the UPDATE or DELETE already holds.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/rel.h"
#include "access/htup_details.h"

/* The row's "id" column (else its first column) as text; NULL if null. */
static char *
row_key(HeapTuple tuple, TupleDesc desc)
{
	int			attno = SPI_fnumber(desc, "id");

	if (attno <= 0)
		attno = 1;
	return SPI_getvalue(tuple, desc, attno);
}

/* The same for messages: "NULL" if null. */
static char *
row_id(HeapTuple tuple, TupleDesc desc)
{
	char	   *val = row_key(tuple, desc);

	return val ? val : pstrdup("NULL");
}

/* Rows of this table are corrected with ledger.invalidate. */
static bool
invalidatable(Trigger *trigger)
{
	return trigger->tgnargs > 0 && strcmp(trigger->tgargs[0], "is_invalidated") == 0;
}

static bool
is_allowed(const char *name, Trigger *trigger)
{
	int			i;

	for (i = 0; i < trigger->tgnargs; i++)
		if (strcmp(name, trigger->tgargs[i]) == 0)
			return true;
	return false;
}

static void
check_update(Relation rel, Trigger *trigger, HeapTuple oldtup, HeapTuple newtup)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *relname = RelationGetRelationName(rel);
	const char *flag = trigger->tgnargs > 0 ? trigger->tgargs[0] : NULL;
	bool		flag_set = false;	/* flag went false -> true */
	const char *companion = NULL;	/* a companion column that changed */
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		const char *name = NameStr(att->attname);
		bool		oldnull;
		bool		newnull;
		Datum		oldval;
		Datum		newval;

		if (att->attisdropped)
			continue;
		oldval = heap_getattr(oldtup, i + 1, desc, &oldnull);
		newval = heap_getattr(newtup, i + 1, desc, &newnull);
		if (oldnull && newnull)
			continue;
		if (oldnull == newnull &&
			datum_image_eq(oldval, newval, att->attbyval, att->attlen))
			continue;

		if (!is_allowed(name, trigger))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
					 errmsg("column \"%s\" of ledger.%s cannot be changed", name, relname),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
														  LEDGER_FACT_TEXT("table", relname),
														  LEDGER_FACT_TEXT("row_id", row_key(oldtup, desc)),
														  LEDGER_FACT_TEXT("column", name),
														  NULL),
											"Row id %s of ledger.%s is append-only; only %s may change, and only once.",
							   row_id(oldtup, desc), relname, flag ? flag : "nothing"),
					 invalidatable(trigger) ? errhint("Use ledger.invalidate to correct a posting.") : 0));

		if (strcmp(name, flag) == 0)
		{
			if (att->atttypid == BOOLOID)
			{
				if (oldnull || newnull || DatumGetBool(oldval) || !DatumGetBool(newval))
					ereport(ERROR,
							(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
							 errmsg("column \"%s\" of ledger.%s may only change from false to true",
									name, relname),
							 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
																  LEDGER_FACT_TEXT("table", relname),
																  LEDGER_FACT_TEXT("row_id", row_key(oldtup, desc)),
																  LEDGER_FACT_TEXT("column", name),
																  NULL),
													"Row id %s of ledger.%s: %s was %s.",
									   row_id(oldtup, desc), relname, name,
									   oldnull ? "NULL" : (DatumGetBool(oldval) ? "true" : "false"))));
			}
			else if (!oldnull || newnull)
				ereport(ERROR,
						(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
						 errmsg("column \"%s\" of ledger.%s may only be set once", name, relname),
						 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
															  LEDGER_FACT_TEXT("table", relname),
															  LEDGER_FACT_TEXT("row_id", row_key(oldtup, desc)),
															  LEDGER_FACT_TEXT("column", name),
															  NULL),
												"Row id %s of ledger.%s: %s %s.",
								   row_id(oldtup, desc), relname, name,
								   oldnull ? "cannot be set to NULL" : "is already set")));
			flag_set = true;
		}
		else
			companion = name;
	}

	if (companion != NULL && !flag_set)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
				 errmsg("column \"%s\" of ledger.%s can only change together with %s",
						companion, relname, flag),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
													  LEDGER_FACT_TEXT("table", relname),
													  LEDGER_FACT_TEXT("row_id", row_key(oldtup, desc)),
													  LEDGER_FACT_TEXT("column", companion),
													  NULL),
										"Row id %s of ledger.%s: %s may be set only in the update that sets %s.",
						   row_id(oldtup, desc), relname, companion, flag)));
}

PG_FUNCTION_INFO_V1(ledger_guard_append_only);

Datum
ledger_guard_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	const char *relname;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.guard_append_only() must be called as a trigger")));
	rel = trigdata->tg_relation;
	relname = RelationGetRelationName(rel);

	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.guard_append_only() must fire BEFORE the statement or row")));

	if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
				 errmsg("cannot truncate append-only table ledger.%s", relname),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
													  LEDGER_FACT_TEXT("table", relname),
													  NULL),
										"Table ledger.%s keeps history; no row of it is ever removed.", relname)));

	if (!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("ledger.guard_append_only() must fire FOR EACH ROW or on TRUNCATE")));

	if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
	{
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
				 errmsg("cannot delete from append-only table ledger.%s", relname),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
													  LEDGER_FACT_TEXT("table", relname),
													  LEDGER_FACT_TEXT("row_id", row_key(trigdata->tg_trigtuple, RelationGetDescr(rel))),
													  NULL),
										"Row id %s of ledger.%s is part of the ledger's history and is never deleted.",
						   row_id(trigdata->tg_trigtuple, RelationGetDescr(rel)), relname),
				 invalidatable(trigdata->tg_trigger) ? errhint("Use ledger.invalidate to correct a posting.") : 0));
	}

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		if (trigdata->tg_trigger->tgnargs == 0)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
					 errmsg("cannot update append-only table ledger.%s", relname),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
														  LEDGER_FACT_TEXT("table", relname),
														  LEDGER_FACT_TEXT("row_id", row_key(trigdata->tg_trigtuple, RelationGetDescr(rel))),
														  NULL),
											"Row id %s of ledger.%s.",
							   row_id(trigdata->tg_trigtuple, RelationGetDescr(rel)), relname)));
		check_update(rel, trigdata->tg_trigger,
					 trigdata->tg_trigtuple, trigdata->tg_newtuple);
		return PointerGetDatum(trigdata->tg_newtuple);
	}

	/* INSERT: nothing to guard */
	return PointerGetDatum(trigdata->tg_trigtuple);
}

/* A row's event_seq (0 when NULL) and event_id (NULL when NULL). */
static int64
row_event(HeapTuple tup, TupleDesc desc, int seq_att, int id_att, pg_uuid_t **id)
{
	bool		isnull;
	Datum		d;

	d = heap_getattr(tup, id_att, desc, &isnull);
	*id = isnull ? NULL : DatumGetUUIDP(d);
	d = heap_getattr(tup, seq_att, desc, &isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

PG_FUNCTION_INFO_V1(ledger_stamp_event);

Datum
ledger_stamp_event(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	newtup;
	int			cols[2];
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int64		seq;
	pg_uuid_t	id;
	bool		applying;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		elog(ERROR, "ledger.stamp_event must be a BEFORE INSERT OR UPDATE row trigger");
	desc = RelationGetDescr(td->tg_relation);
	cols[0] = SPI_fnumber(desc, "event_seq");
	cols[1] = SPI_fnumber(desc, "event_id");
	if (cols[0] <= 0 || cols[1] <= 0)
		elog(ERROR, "table \"%s\" has no event_seq and event_id",
			 RelationGetRelationName(td->tg_relation));
	newtup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	/* a logical replication subscriber applies the publisher's rows as they are */
	if (SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA)
		return PointerGetDatum(newtup);
	applying = ledger_event_context(&seq, &id);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		pg_uuid_t  *old_id;
		pg_uuid_t  *new_id;
		int64		old_seq = row_event(td->tg_trigtuple, desc, cols[0], cols[1], &old_id);
		int64		new_seq = row_event(newtup, desc, cols[0], cols[1], &new_id);

		if (old_seq != new_seq || (old_id == NULL) != (new_id == NULL) ||
			(old_id != NULL && memcmp(old_id, new_id, sizeof(pg_uuid_t)) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_IMMUTABLE_RECORD),
					 errmsg("event_seq and event_id of \"%s\" are set only by the event applier",
							RelationGetRelationName(td->tg_relation)),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_IMMUTABLE_RECORD,
														  LEDGER_FACT_TEXT("table", RelationGetRelationName(td->tg_relation)),
														  LEDGER_FACT_TEXT("row_id", row_key(td->tg_trigtuple, desc)),
														  LEDGER_FACT_INT("last_seq", old_seq),
														  LEDGER_FACT_ID("last_event_id", old_id),
														  NULL),
											"Row %s was last changed by event " INT64_FORMAT ".",
							   row_id(td->tg_trigtuple, desc), old_seq)));
		if (applying && old_seq > seq)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_STALE_EVENT),
					 errmsg("event " INT64_FORMAT " is older than the event that last changed this %s",
							seq, RelationGetRelationName(td->tg_relation)),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_STALE_EVENT,
														  LEDGER_FACT_TEXT("table", RelationGetRelationName(td->tg_relation)),
														  LEDGER_FACT_TEXT("row_id", row_key(td->tg_trigtuple, desc)),
														  LEDGER_FACT_INT("seq", seq),
														  LEDGER_FACT_ID("event_id", &id),
														  LEDGER_FACT_INT("last_seq", old_seq),
														  LEDGER_FACT_ID("last_event_id", old_id),
														  NULL),
											"Row %s of %s was last changed by event " INT64_FORMAT ".",
							   row_id(td->tg_trigtuple, desc),
							   RelationGetRelationName(td->tg_relation), old_seq)));
	}
	if (!applying)
		return PointerGetDatum(newtup);
	values[0] = Int64GetDatum(seq);
	values[1] = UUIDPGetDatum(&id);
	return PointerGetDatum(heap_modify_tuple_by_cols(newtup, desc, 2, cols, values, nulls));
}
