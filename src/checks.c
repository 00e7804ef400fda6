/*-------------------------------------------------------------------------
 *
 * checks.c
 *	  The CHECK constraints of the tables a posting writes, parsed and
 *	  planned once per backend instead of once per posting.  The executor
 *	  builds a result relation's constraint expressions from their stored
 *	  text the first time it checks a row (ExecRelCheck); store.c makes a
 *	  new executor state per posting, so every posting paid for parsing
 *	  and planning them again (stringToNode was the top function of the
 *	  constraint check in the profile).  Here the planned trees are kept
 *	  per relation and only the executable state is built per posting.
 *
 * Validity: an entry is dropped when its relation's relcache entry is
 *	  invalidated (ALTER TABLE ... ADD or DROP CONSTRAINT, and every other
 *	  change), and every entry when any function or type changes (planning
 *	  inlines SQL functions and folds immutable calls, as the plan cache
 *	  knows); the trees are compared by count with the relation's current
 *	  constraints before use.  A dropped entry's memory is freed at
 *	  the end of the transaction, since an executor state of the running
 *	  posting may still point into it.
 *
 * Locking: none; backend-local.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "optimizer/optimizer.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

typedef struct KeptChecks
{
	Oid			relid;			/* hash key */
	int			ncheck;
	Expr	  **exprs;			/* planned, in cxt */
	MemoryContext cxt;
} KeptChecks;

static HTAB *kept = NULL;
static List *retired = NIL;		/* contexts of dropped entries, in TopMemoryContext */

static void
retire(KeptChecks *k)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	retired = lappend(retired, k->cxt);
	MemoryContextSwitchTo(old);
}

static void
checks_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	KeptChecks *k;

	if (kept == NULL)
		return;
	if (OidIsValid(relid))
	{
		if ((k = hash_search(kept, &relid, HASH_FIND, NULL)) != NULL)
		{
			retire(k);
			(void) hash_search(kept, &relid, HASH_REMOVE, NULL);
		}
		return;
	}
	hash_seq_init(&seq, kept);
	while ((k = hash_seq_search(&seq)) != NULL)
	{
		retire(k);
		(void) hash_search(kept, &k->relid, HASH_REMOVE, NULL);
	}
}

static void
checks_invalidate_all(Datum arg, int cacheid, uint32 hashvalue)
{
	checks_invalidate(arg, InvalidOid);
}

static void
checks_xact_end(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	foreach(lc, retired)
		MemoryContextDelete((MemoryContext) lfirst(lc));
	list_free(retired);
	retired = NIL;
}

/*
 * Give a result relation its constraint expressions from the kept trees,
 * building these on the relation's first use in this backend.  Call in
 * the executor state's memory context, before the first row is checked.
 */
void
ledger_checks_prepare(ResultRelInfo *rri)
{
	Relation	rel = rri->ri_RelationDesc;
	TupleConstr *constr = rel->rd_att->constr;
	Oid			relid = RelationGetRelid(rel);
	KeptChecks *k;
	bool		found;
	int			i;

	if (constr == NULL || constr->num_check == 0 || rri->ri_ConstraintExprs != NULL)
		return;
	if (kept == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(KeptChecks);
		ctl.hcxt = TopMemoryContext;
		kept = hash_create("ledger kept checks", 16, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterRelcacheCallback(checks_invalidate, (Datum) 0);
		/* planning inlined SQL functions and folded immutable ones */
		CacheRegisterSyscacheCallback(PROCOID, checks_invalidate_all, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, checks_invalidate_all, (Datum) 0);
		RegisterXactCallback(checks_xact_end, NULL);
	}
	k = hash_search(kept, &relid, HASH_FIND, &found);
	if (k != NULL && k->ncheck != constr->num_check)
	{
		retire(k);
		(void) hash_search(kept, &relid, HASH_REMOVE, NULL);
		k = NULL;
	}
	if (k == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "ledger kept checks",
												  ALLOCSET_SMALL_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Expr	  **exprs = palloc(sizeof(Expr *) * constr->num_check);

		PG_TRY();
		{
			for (i = 0; i < constr->num_check; i++)
				exprs[i] = expression_planner((Expr *) stringToNode(constr->check[i].ccbin));
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(old);
			MemoryContextDelete(cxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		k = hash_search(kept, &relid, HASH_ENTER, &found);
		Assert(!found);
		k->ncheck = constr->num_check;
		k->exprs = exprs;
		k->cxt = cxt;
	}
	{
		/* an invalidation during ExecInitExpr may retire k: its trees stay */
		int			ncheck = k->ncheck;
		Expr	  **exprs = k->exprs;
		ExprState **states = palloc(sizeof(ExprState *) * ncheck);

		for (i = 0; i < ncheck; i++)
			states[i] = ExecInitExpr(exprs[i], NULL);
		rri->ri_ConstraintExprs = states;
	}
}
