/*-------------------------------------------------------------------------
 *
 * schema.c
 *	  Where the installed ledger schema's tables are: the OIDs of
 *	  ledger.account, ledger.asset, ledger.account_balance and the unique
 *	  indexes on account and asset codes, the column numbers the direct
 *	  lookups read (lookup.c), and what the installed version has (hot
 *	  accounts from 0.3.0, the account_changed trigger from 0.4.0, holds
 *	  and ledger.event from 0.6.0, the outbox from 0.7.0, rates from 0.8.0,
 *	  idempotency keys per owner from 0.10.0).
 *
 * The library keeps serving a database whose extension has not been
 * updated yet, so callers pick their statements by what is here.
 *
 * The state is backend-local and kept until a relcache invalidation of
 * one of those relations, or of every relation (a sinval overflow): DDL on
 * them, ALTER EXTENSION UPDATE and DROP EXTENSION send one.  It is then
 * rebuilt on next use, never inside the callback.  A missing schema is not
 * remembered: CREATE EXTENSION sends no invalidation we would see.
 *
 * Locking: refreshing opens ledger.account with AccessShareLock to read
 * its triggers; nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

static LedgerSchema schema = {false};

static void
schema_invalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == schema.account ||
		relid == schema.account_balance || relid == schema.asset || relid == schema.event ||
		relid == schema.transaction)	/* 0.7.0's upgrade alters it as it adds the outbox */
		schema.valid = false;
}

void
ledger_schema_init(void)
{
	CacheRegisterRelcacheCallback(schema_invalidate, (Datum) 0);
}

/* Is the trigger that announces account updates there, ENABLE ALWAYS? */
static bool
has_account_trigger(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;
	int			i;

	for (i = 0; td != NULL && i < td->numtriggers; i++)
		if (strcmp(td->triggers[i].tgname, "account_changed") == 0 &&
			td->triggers[i].tgenabled == TRIGGER_FIRES_ALWAYS)
			return true;
	return false;
}

/* A relation of the ledger schema by name, InvalidOid if missing. */
static Oid
rel(Oid nsp, const char *name)
{
	return get_relname_relid(name, nsp);
}

/*
 * Look everything up by name: syscache lookups only, no relation is
 * opened but ledger.account (for its triggers).  The indexes and the
 * sequence have the names PostgreSQL gave them in the install script; who
 * uses an index checks its shape when opening it (lookup.c, store.c).
 */
static bool
refresh(void)
{
	LedgerSchema s;
	Oid			nsp = get_namespace_oid("ledger", true);
	Relation	account;

	if (!OidIsValid(nsp))
		return false;
	memset(&s, 0, sizeof(s));
	s.account = rel(nsp, "account");
	s.account_code_index = rel(nsp, "account_code_key");
	s.account_balance = rel(nsp, "account_balance");
	s.account_balance_index = rel(nsp, "account_balance_pkey");
	s.asset = rel(nsp, "asset");
	s.asset_code_index = rel(nsp, "asset_pkey");
	s.daily_balance = rel(nsp, "daily_balance");
	s.daily_balance_index = rel(nsp, "daily_balance_pkey");
	s.journal_entry = rel(nsp, "journal_entry");
	s.journal_entry_id_seq = rel(nsp, "journal_entry_id_seq");
	s.transaction = rel(nsp, "transaction");
	s.hot_entry = rel(nsp, "hot_entry");	/* 0.3.0 and later */
	s.has_holds = OidIsValid(rel(nsp, "hold"));	/* 0.6.0 and later */
	s.event = rel(nsp, "event");	/* 0.6.0 and later */
	s.has_outbox = OidIsValid(rel(nsp, "outbox"));	/* 0.7.0 and later */
	s.has_rates = OidIsValid(rel(nsp, "rate_feed"));	/* 0.8.0 and later */
	s.has_rate_limits = OidIsValid(rel(nsp, "rate_limit"));	/* 0.10.0 and later */
	if (!OidIsValid(s.account) || !OidIsValid(s.account_code_index) ||
		!OidIsValid(s.account_balance) || !OidIsValid(s.account_balance_index) ||
		!OidIsValid(s.asset) || !OidIsValid(s.asset_code_index) ||
		!OidIsValid(s.daily_balance) || !OidIsValid(s.daily_balance_index) ||
		!OidIsValid(s.journal_entry) || !OidIsValid(s.journal_entry_id_seq) ||
		!OidIsValid(s.transaction))
		return false;
	s.has_hot = OidIsValid(s.hot_entry);
	s.has_key_scope = get_attnum(s.transaction, "idempotency_scope") != InvalidAttrNumber;

	account = table_open(s.account, AccessShareLock);
	s.account_trigger = has_account_trigger(account);
	table_close(account, AccessShareLock);

	s.valid = true;
	schema = s;
	return true;
}

/*
 * The installed schema, refreshed if stale; NULL when the extension is
 * not installed in this database.
 */
const LedgerSchema *
ledger_schema(void)
{
	if (!schema.valid && !refresh())
		return NULL;
	return &schema;
}

/*
 * Does the installed schema have hot accounts (0.3.0 and later)?  The
 * posting path picks its statements by this.
 */
bool
ledger_schema_has_hot(void)
{
	const LedgerSchema *s = ledger_schema();

	return s != NULL && s->has_hot;
}

/*
 * Are idempotency keys scoped by owner (0.10.0 and later)?  Statements
 * that claim or find a key are prepared in two forms, by this.
 */
bool
ledger_keys_scoped(void)
{
	const LedgerSchema *s = ledger_schema();

	return s != NULL && s->has_key_scope;
}

/*
 * A key statement's text in the form the schema needs: fmt has three %s,
 * filled when scoped with ", idempotency_scope" (a column list), ", <the
 * scope of the account whose id is $param>" (a values list) and
 * "idempotency_scope, " (a conflict target or an equality's column), and
 * with nothing otherwise.  A lookup writes "WHERE (%s1%s2) = ..." style
 * fragments itself from these three.
 */
char *
ledger_key_scope_sql(bool scoped, const char *fmt, int param)
{
	char	   *expr;

	if (!scoped)
		return psprintf(fmt, "", "", "");
	expr = psprintf(", COALESCE((SELECT a.owner_id FROM ledger.account a "
					"WHERE a.id OPERATOR(pg_catalog.=) $%d), '')", param);
	return psprintf(fmt, ", idempotency_scope", expr, "idempotency_scope, ");
}
