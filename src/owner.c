/*-------------------------------------------------------------------------
 *
 * owner.c
 *	  Debits only by the owner: while ledger.acting_owner is set (the
 *	  application sets it per transaction, SET LOCAL), every call that
 *	  debits, holds or exchanges refuses an account whose owner_id differs
 *	  (LD039); with ledger.require_acting_owner on (a superuser sets it per
 *	  role, ALTER ROLE ... SET, and a session cannot turn it off) such calls
 *	  are refused altogether until an acting owner is set (LD040).  Credits
 *	  to anyone's account stay allowed: paying someone is the point.
 *
 * The check reads the account's owner straight from the unique index on
 * account codes (lookup.c: no statement is run), and only while an acting
 * owner is set: other postings pay nothing.  The refusal
 * names the account and the acting owner, never the account's real owner.
 *
 * Locking: none (a read through the index, as lookup.c takes it).
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

static char *acting_owner = NULL;
static bool require_acting_owner = false;

void
ledger_owner_init(void)
{
	DefineCustomStringVariable("ledger.acting_owner",
							   "The owner on whose behalf this transaction debits: other owners' accounts are refused (set it with SET LOCAL).",
							   "Empty: no owner check.",
							   &acting_owner, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("ledger.require_acting_owner",
							 "Refuse debits, holds and exchanges while ledger.acting_owner is not set.",
							 "Set per role by a superuser: ALTER ROLE app SET ledger.require_acting_owner = on.",
							 &require_acting_owner, false, PGC_SUSET, 0, NULL, NULL, NULL);
}

/* The acting owner of this transaction, or NULL if none is set. */
const char *
ledger_acting_owner(void)
{
	return (acting_owner == NULL || acting_owner[0] == '\0') ? NULL : acting_owner;
}

/*
 * LD039 unless the account (code) may be debited by this transaction; LD040
 * if an acting owner is required and not set.  what names the call.
 */
void
ledger_check_debit_owner(const char *code, const char *what)
{
	char	   *owner;

	if (acting_owner == NULL || acting_owner[0] == '\0')
	{
		if (require_acting_owner)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_ACTING_OWNER_REQUIRED),
					 errmsg("%s needs ledger.acting_owner", what),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_ACTING_OWNER_REQUIRED,
														 LEDGER_FACT_TEXT("account", code),
														 LEDGER_FACT_TEXT("role", GetUserNameFromId(GetOuterUserId(), false)),
														 NULL),
											"Role \"%s\" debits only on behalf of an owner; account \"%s\" was asked for.",
							   GetUserNameFromId(GetOuterUserId(), false), code),
					 errhint("SET LOCAL ledger.acting_owner = '<owner id>' in the transaction.")));
		return;
	}
	if (!ledger_lookup_owner(code, &owner))
		return;					/* unknown: the call reports LD002 itself */
	if (owner == NULL || strcmp(owner, acting_owner) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_NOT_ACCOUNT_OWNER),
				 errmsg("account \"%s\" does not belong to the acting owner", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_NOT_ACCOUNT_OWNER,
													 LEDGER_FACT_TEXT("account", code),
													 LEDGER_FACT_TEXT("acting_owner", acting_owner),
													 NULL),
										"ledger.acting_owner is \"%s\"; %s may debit only that owner's accounts.",
						   acting_owner, what)));
}
