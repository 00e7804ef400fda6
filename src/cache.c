/*-------------------------------------------------------------------------
 *
 * cache.c
 *	  Backend-local caches that spare a posting its catalog lookups: where
 *	  the ledger schema's tables are (and whether it has hot accounts), and
 *	  every account a posting has resolved (id, asset, scale, floor, mode).
 *	  A posting whose accounts are all cached and that carries no
 *	  idempotency key skips its lookup statement (posting.c).
 *
 * Invalidation:
 *	- Both caches are dropped on a relcache invalidation of ledger.account
 *	  or of every relation (a sinval queue overflow); the schema state also
 *	  on one of ledger.account_balance or ledger.asset, and the accounts
 *	  with it when ledger.account is another table, the schema gained hot
 *	  accounts or the trigger below is gone.  DDL on those tables, ALTER
 *	  EXTENSION UPDATE and DROP EXTENSION send one.
 *	- An UPDATE of ledger.account (set_account_mode, an operator changing
 *	  min_balance) sends one too: the statement trigger account_changed
 *	  calls CacheInvalidateRelcache.  Like every invalidation it takes
 *	  effect at commit; the updating backend sees its own at its next
 *	  command.  A lookup first accepts pending invalidations, so it sees
 *	  every update committed before it, as a READ COMMITTED statement
 *	  would.  Without that trigger enabled ALWAYS on ledger.account (an
 *	  older schema) accounts are not cached.
 *	- An account row written by the current transaction is never cached,
 *	  so a rolled back create_account or mode change leaves nothing behind.
 *	  Unknown codes are never cached.  Accounts are never deleted.
 *	- A posting that used an entry older than a mode change committed
 *	  after its transaction began is caught where the mode is checked
 *	  again, under the balance row lock or the hot slot's lock (LD019),
 *	  exactly as a posting whose snapshot predates the change is.
 *	- The relcache callback only marks the caches stale; they are rebuilt
 *	  on next use, never while a posting holds pointers into them (lookups
 *	  copy what they return).
 *
 * Locking: none of its own.  Everything here is backend-local; refreshing
 * the schema state opens ledger.account with AccessShareLock.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

/* GUC: most accounts one backend caches; 0 turns the cache off. */
int			ledger_account_cache_size = 50000;

/* Codes this long or longer are resolved by a query each time. */
#define CACHED_CODE_LEN		128

typedef struct SchemaState
{
	bool		valid;
	Oid			account;
	Oid			account_balance;
	Oid			asset;
	bool		has_hot;
	bool		account_trigger;	/* account_changed, ENABLE ALWAYS */
} SchemaState;

typedef struct CachedAccount
{
	char		code[CACHED_CODE_LEN];	/* hash key */
	int64		id;
	char	   *asset;
	int			scale;
	bool		unbounded;
	Numeric		min_balance;
	bool		hot;
} CachedAccount;

static SchemaState schema = {false};
static MemoryContext account_cxt = NULL;
static HTAB *accounts = NULL;

/*
 * ledger.account_balance is invalidated whenever (auto)vacuum updates its
 * statistics, which under load is often: that refreshes the schema state
 * but keeps the accounts.
 */
static void
invalidate_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == schema.account)
	{
		schema.valid = false;
		accounts = NULL;		/* its memory is reset on next use */
	}
	else if (relid == schema.account_balance || relid == schema.asset)
		schema.valid = false;
}

void
ledger_cache_init(void)
{
	DefineCustomIntVariable("ledger.account_cache_size",
							"Most accounts one backend keeps resolved for postings.",
							"0 resolves every account with a query. The cache is emptied when full.",
							&ledger_account_cache_size,
							50000, 0, 10000000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);
	CacheRegisterRelcacheCallback(invalidate_callback, (Datum) 0);
}

/*
 * Is the trigger that announces account updates on ledger.account, and
 * does it fire whatever session_replication_role is?
 */
static bool
has_account_trigger(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TriggerDesc *td = rel->trigdesc;
	bool		found = false;
	int			i;

	for (i = 0; td != NULL && i < td->numtriggers; i++)
	{
		if (strcmp(td->triggers[i].tgname, "account_changed") == 0 &&
			td->triggers[i].tgenabled == TRIGGER_FIRES_ALWAYS)
			found = true;
	}
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * Refresh the schema state if stale.  Returns false when the ledger schema
 * is not there; that answer is not kept (CREATE EXTENSION sends no
 * invalidation we would see).
 */
static bool
refresh_schema(void)
{
	Oid			nsp;
	Oid			account;
	bool		had_hot = schema.has_hot;

	if (schema.valid)
		return true;
	nsp = get_namespace_oid("ledger", true);
	if (!OidIsValid(nsp))
		return false;
	account = get_relname_relid("account", nsp);
	if (account != schema.account)
		accounts = NULL;
	schema.account = account;
	schema.account_balance = get_relname_relid("account_balance", nsp);
	schema.asset = get_relname_relid("asset", nsp);
	if (!OidIsValid(schema.account) || !OidIsValid(schema.account_balance) ||
		!OidIsValid(schema.asset))
		return false;
	schema.has_hot = get_attnum(schema.account_balance, "hot") != InvalidAttrNumber;
	schema.account_trigger = has_account_trigger(schema.account);
	if (schema.has_hot != had_hot || !schema.account_trigger)
		accounts = NULL;

	if (account_cxt == NULL)
		account_cxt = AllocSetContextCreate(TopMemoryContext, "ledger account cache",
											ALLOCSET_DEFAULT_SIZES);
	if (accounts == NULL)
		MemoryContextReset(account_cxt);
	schema.valid = true;
	return true;
}

/*
 * Does the installed schema have hot accounts (0.3.0 and later)?  The
 * library keeps serving a database whose extension has not been updated
 * yet, so the posting path picks its statements by this.
 */
bool
ledger_schema_has_hot(void)
{
	return refresh_schema() && schema.has_hot;
}

/* ledger.asset's oid, or InvalidOid when the schema is not there. */
Oid
ledger_asset_relid(void)
{
	return refresh_schema() ? schema.asset : InvalidOid;
}

/*
 * Can accounts be cached?  Accepts pending invalidations first, so that a
 * lookup sees every account update committed before it, as a statement
 * under READ COMMITTED would (a cheap check when there are none).
 */
static bool
accounts_usable(void)
{
	if (ledger_account_cache_size <= 0)
		return false;
	AcceptInvalidationMessages();
	return refresh_schema() && schema.account_trigger;
}

static HTAB *
new_account_table(void)
{
	HASHCTL		ctl;

	MemoryContextReset(account_cxt);
	ctl.keysize = CACHED_CODE_LEN;
	ctl.entrysize = sizeof(CachedAccount);
	ctl.hcxt = account_cxt;
	return hash_create("ledger accounts", 1024, &ctl,
					   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

static void
fill_entry(CachedAccount *e, const LedgerAccount *a)
{
	MemoryContext old = MemoryContextSwitchTo(account_cxt);

	e->id = a->id;
	e->asset = pstrdup(a->asset);
	e->scale = a->scale;
	e->unbounded = a->unbounded;
	e->min_balance = a->unbounded ? NULL :
		(Numeric) DatumGetPointer(datumCopy(NumericGetDatum(a->min_balance), false, -1));
	e->hot = a->hot;
	MemoryContextSwitchTo(old);
}

/*
 * Read an account from a lookup's result row, whose columns 1-5 are id,
 * code, asset, min_balance and whether it is hot; the row's xmin is in
 * column xmin_col and is returned.  Scale is left for the caller: it may
 * need a query, which would replace SPI_tuptable.
 */
TransactionId
ledger_account_from_row(HeapTuple tup, TupleDesc desc, int xmin_col, LedgerAccount *out)
{
	bool		isnull;
	Datum		d;

	out->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	out->code = SPI_getvalue(tup, desc, 2);
	out->asset = SPI_getvalue(tup, desc, 3);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	out->unbounded = isnull;
	out->min_balance = isnull ? NULL : DatumGetNumericCopy(d);
	out->hot = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
	return DatumGetTransactionId(SPI_getbinval(tup, desc, xmin_col, &isnull));
}

/*
 * Fill an empty cache with one query: up to ledger.account_cache_size
 * accounts, hot ones first, then by id (system accounts are usually the
 * oldest).  Inside SPI.  Every SPI call is made before the table is
 * built, so an invalidation arriving meanwhile is not lost: it leaves the
 * cache empty, to be filled again by the next lookup.
 */
static void
warm_accounts(void)
{
	static SPIPlanPtr plan = NULL;
	Datum		arg;
	LedgerAccount *found;
	TransactionId *xmins;
	uint64		n;
	uint64		i;
	HTAB	   *table;

	if (plan == NULL)
		plan = ledger_prepare("SELECT a.id, a.code, a.asset, a.min_balance, "
							  "a.mode OPERATOR(pg_catalog.=) 'hot', a.xmin "
							  "FROM ledger.account a "
							  "WHERE pg_catalog.octet_length(a.code) OPERATOR(pg_catalog.<) 128 "
							  "ORDER BY a.mode OPERATOR(pg_catalog.=) 'hot' DESC, a.id "
							  "LIMIT $1",
							  1, (Oid[]) {INT4OID});
	arg = Int32GetDatum(ledger_account_cache_size);
	ledger_spi_exec(plan, &arg, NULL, SPI_OK_SELECT);
	n = SPI_processed;
	found = palloc0(sizeof(LedgerAccount) * Max(n, 1));
	xmins = palloc(sizeof(TransactionId) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		xmins[i] = ledger_account_from_row(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
										   6, &found[i]);
	}
	for (i = 0; i < n; i++)
		found[i].scale = ledger_asset_scale(found[i].asset);

	/* no SPI from here on */
	if (!schema.valid)
		return;
	table = new_account_table();
	for (i = 0; i < n; i++)
	{
		bool		dup;

		if (TransactionIdIsCurrentTransactionId(xmins[i]))
			continue;
		fill_entry(hash_search(table, found[i].code, HASH_ENTER, &dup), &found[i]);
	}
	accounts = table;
}

/*
 * Look an account up by code.  On a hit, fills *out with copies in the
 * current memory context and returns true.
 */
bool
ledger_account_cache_get(const char *code, LedgerAccount *out)
{
	CachedAccount *e;

	if (!accounts_usable() || strlen(code) >= CACHED_CODE_LEN)
		return false;
	if (accounts == NULL)
		warm_accounts();
	if (accounts == NULL)
		return false;
	e = hash_search(accounts, code, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	out->id = e->id;
	out->code = pstrdup(e->code);
	out->asset = pstrdup(e->asset);
	out->scale = e->scale;
	out->unbounded = e->unbounded;
	out->min_balance = e->unbounded ? NULL :
		(Numeric) DatumGetPointer(datumCopy(NumericGetDatum(e->min_balance), false, -1));
	out->hot = e->hot;
	return true;
}

/*
 * Remember an account a posting resolved, unless its row was written by
 * the current transaction (which may still roll back) or the cache is
 * full (what it holds stays; it is emptied only by invalidation).
 */
void
ledger_account_cache_put(const LedgerAccount *a, TransactionId xmin)
{
	CachedAccount *e;
	bool		found;

	if (!accounts_usable() || accounts == NULL || strlen(a->code) >= CACHED_CODE_LEN ||
		TransactionIdIsCurrentTransactionId(xmin) ||
		hash_get_num_entries(accounts) >= ledger_account_cache_size)
		return;
	e = hash_search(accounts, a->code, HASH_ENTER, &found);
	if (!found)
		fill_entry(e, a);
}

/*
 * ledger.account_changed(): statement trigger AFTER UPDATE on
 * ledger.account.  Announces the change to every backend's account cache.
 */
PG_FUNCTION_INFO_V1(ledger_account_changed);

Datum
ledger_account_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "ledger.account_changed() must be called as a trigger");
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
