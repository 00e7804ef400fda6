/*-------------------------------------------------------------------------
 *
 * access.c
 *	  Managers see only their people: ledger.grant_owner_access and
 *	  ledger.revoke_owner_access keep ledger.owner_access, the rows that
 *	  say which owners' accounts a role (a manager) may read.  The reading
 *	  itself is scoped by row-level security on the tables behind the
 *	  security_invoker views (sql/ledger--0.9.0--0.10.0.sql): a member of
 *	  ledger_manager that is neither an auditor nor an operator sees the
 *	  rows of the owners granted to it, or to a role it belongs to, and no
 *	  others.
 *
 * Locking: the row of ledger.owner_access, as INSERT and DELETE take it.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"

/*
 * role and owner_id of a grant or revoke, checked, as statement values.  A
 * grant needs an existing role; a revoke does not (a dropped role's grants
 * may go too).
 */
static void
access_args(FunctionCallInfo fcinfo, Datum *values, bool grant)
{
	if (grant)
		(void) ledger_known_role(fcinfo, 0, "Owner access grants");
	else
		LEDGER_REQUIRE_ARG(0, "role");
	LEDGER_REQUIRE_ARG(1, "owner_id");
	values[0] = PG_GETARG_DATUM(0);
	values[1] = CStringGetTextDatum(ledger_check_code(PG_GETARG_TEXT_PP(1), "owner_id"));
	PreventCommandIfReadOnly(grant ? "ledger.grant_owner_access" : "ledger.revoke_owner_access");
}

PG_FUNCTION_INFO_V1(ledger_grant_owner_access);

/* ledger.grant_owner_access(role, owner_id): true if newly granted. */
Datum
ledger_grant_owner_access(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[3];
	bool		granted;

	access_args(fcinfo, values, true);
	values[2] = CStringGetTextDatum(GetUserNameFromId(GetOuterUserId(), false));
	SPI_connect();
	if (plan == NULL)
		plan = ledger_prepare(
			"INSERT INTO ledger.owner_access (role_name, owner_id, granted_by) "
			"VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
			3, (Oid[]) {NAMEOID, TEXTOID, TEXTOID});
	ledger_spi_exec(plan, values, NULL, SPI_OK_INSERT);
	granted = SPI_processed == 1;
	SPI_finish();
	PG_RETURN_BOOL(granted);
}

PG_FUNCTION_INFO_V1(ledger_revoke_owner_access);

/* ledger.revoke_owner_access(role, owner_id): true if it was granted. */
Datum
ledger_revoke_owner_access(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr plan = NULL;
	Datum		values[2];
	bool		revoked;

	access_args(fcinfo, values, false);
	SPI_connect();
	if (plan == NULL)
		plan = ledger_prepare(
			"DELETE FROM ledger.owner_access WHERE role_name OPERATOR(pg_catalog.=) $1 "
			"AND owner_id OPERATOR(pg_catalog.=) $2",
			2, (Oid[]) {NAMEOID, TEXTOID});
	ledger_spi_exec(plan, values, NULL, SPI_OK_DELETE);
	revoked = SPI_processed > 0;
	SPI_finish();
	PG_RETURN_BOOL(revoked);
}
