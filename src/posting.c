/*-------------------------------------------------------------------------
 *
 * posting.c
 *	  ledger.transfer and ledger.post: validate the request, claim the
 *	  idempotency key, apply the balances (balance.c) and append the
 *	  transaction and its journal entries.
 *
 * A posting runs in this order, inside the caller's transaction:
 *	1. check arguments;
 *	2. in one statement, insert the transaction row and resolve the
 *	   accounts (then check amounts against each asset's scale and that
 *	   every asset nets to zero).  With an idempotency key the insert is
 *	   INSERT ... ON CONFLICT (idempotency_scope, idempotency_key) DO
 *	   NOTHING, where the scope is the owner of the debited account (a
 *	   post's: the one with the smallest code; one owner cannot take
 *	   another's keys): a concurrent call with the
 *	   same key waits on the unique index until the first commits or
 *	   aborts, so exactly one transaction is written.  A call that finds
 *	   the key taken compares request fingerprints (SHA-256 of a canonical
 *	   form of the legs and metadata) and either returns the original id,
 *	   writing nothing, or raises LD007.
 *	   Without a key, when every account is in the backend's account cache
 *	   (cache.c), there is nothing to look up: the transaction row is
 *	   written by step 3's last statement instead;
 *	3. apply balances, locking balance rows in account id order, and
 *	   insert the journal entries, stamped with the time taken once every
 *	   lock is held (balance.c).
 * Any error aborts the caller's (sub)transaction, so a failed call leaves no
 * row behind.
 *
 * Locking: row locks on account_balance and daily_balance rows (step 3) and
 * the unique-index wait of step 2.  No other locks are taken.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"

/* GUC: largest number of legs ledger.post accepts. */
static int	ledger_max_legs = 64;

void
ledger_posting_init(void)
{
	DefineCustomIntVariable("ledger.max_legs",
							"Largest number of legs one ledger.post call may carry.",
							"Postings with more legs are refused with SQLSTATE LD012.",
							&ledger_max_legs,
							64, 2, 10000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);
}

static int
leg_cmp(const void *a, const void *b)
{
	const LedgerLeg *la = *(LedgerLeg *const *) a;
	const LedgerLeg *lb = *(LedgerLeg *const *) b;
	int			c = strcmp(la->code, lb->code);

	return c != 0 ? c : ledger_numeric_cmp(la->amount, lb->amount);
}

/*
 * SHA-256 of a request's canonical text: what an idempotency key is
 * compared by (here, and for holds and captures).
 */
bytea *
ledger_fingerprint(const char *data, int len)
{
	pg_cryptohash_ctx *ctx;
	bytea	   *result;

	result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	ctx = pg_cryptohash_create(PG_SHA256);
	if (pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute request fingerprint: %s",
			 pg_cryptohash_error(ctx));
	pg_cryptohash_free(ctx);
	return result;
}

/*
 * Fingerprint of a posting: kind, the legs sorted by account code and
 * amount (so leg order does not matter, 10.0 equals 10.00), and the
 * metadata in jsonb's canonical text form.  Account codes are unique and
 * never change, so the fingerprint needs no lookup.
 */
static bytea *
request_hash(const char *kind, LedgerLeg *legs, int nlegs, Jsonb *metadata)
{
	StringInfoData buf;
	LedgerLeg **sorted = palloc(sizeof(LedgerLeg *) * nlegs);
	int			i;

	for (i = 0; i < nlegs; i++)
		sorted[i] = &legs[i];
	qsort(sorted, nlegs, sizeof(LedgerLeg *), leg_cmp);

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n", kind);
	for (i = 0; i < nlegs; i++)
		appendStringInfo(&buf, "%zu:%s:%s\n", strlen(sorted[i]->code), sorted[i]->code,
						 numeric_normalize(sorted[i]->amount));
	appendStringInfoString(&buf,
						   JsonbToCString(NULL, &metadata->root, VARSIZE(metadata)));
	return ledger_fingerprint(buf.data, buf.len);
}

/*
 * An account by code: from the backend's account cache, else straight from
 * the unique index on account codes (lookup.c), stamping the code first
 * (see cache.c) and caching what was found.  False if there is none.  No
 * statement is run.
 */
bool
ledger_find_account(const char *code, LedgerAccount *out)
{
	LedgerCacheStamp stamp;
	TransactionId xmin;

	if (ledger_account_cache_get(code, out))
		return true;
	ledger_account_cache_stamp(code, &stamp);
	if (!ledger_lookup_account(code, out, &xmin))
		return false;
	ledger_account_cache_put(out, xmin, &stamp);
	return true;
}

/*
 * Resolve every leg's account (ledger_find_account).  One struct per
 * distinct account; an unknown code raises LD002 naming the leg.
 */
void
ledger_resolve_accounts(LedgerLeg *legs, int nlegs)
{
	LedgerAccount *found = palloc(sizeof(LedgerAccount) * nlegs);
	int			i;
	int			j;

	for (i = 0; i < nlegs; i++)
	{
		legs[i].account = NULL;
		for (j = 0; j < i; j++)
		{
			if (strcmp(legs[j].code, legs[i].code) == 0)
			{
				legs[i].account = legs[j].account;
				break;
			}
		}
		if (legs[i].account != NULL)
			continue;
		legs[i].account = &found[i];
		if (!ledger_find_account(legs[i].code, &found[i]))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
					 errmsg("account \"%s\" does not exist", legs[i].code),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ACCOUNT,
														 LEDGER_FACT_TEXT("account", legs[i].code),
														 LEDGER_FACT_INT("leg", i + 1),
														 NULL),
											"Leg %d names account \"%s\".", i + 1, legs[i].code)));
	}
}

/*
 * Two resolved legs must name accounts of one asset (LD004): a transfer's,
 * a hold's.
 */
void
ledger_check_same_asset(LedgerLeg *legs)
{
	if (strcmp(legs[0].account->asset, legs[1].account->asset) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_ASSET_MISMATCH),
				 errmsg("accounts \"%s\" and \"%s\" hold different assets",
						legs[0].code, legs[1].code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_ASSET_MISMATCH,
												 LEDGER_FACT_TEXT("account", legs[0].code),
												 LEDGER_FACT_TEXT("asset", legs[0].account->asset),
												 LEDGER_FACT_TEXT("other_account", legs[1].code),
												 LEDGER_FACT_TEXT("other_asset", legs[1].account->asset),
												 NULL),
									"Account \"%s\" holds %s, account \"%s\" holds %s.",
						   legs[0].code, legs[0].account->asset,
						   legs[1].code, legs[1].account->asset),
				 errhint("Use ledger.post with legs that net to zero in each asset.")));
}

/*
 * Every asset must net to zero.  For a transfer, both accounts must share
 * one asset (LD004); for a multi-leg post, LD008 names the first asset
 * that does not net to zero.
 */
static void
check_balanced(LedgerLeg *legs, int nlegs)
{
	int			i;
	int			j;

	for (i = 0; i < nlegs; i++)
	{
		Numeric		sum;
		bool		seen = false;

		for (j = 0; j < i; j++)
			if (strcmp(legs[j].account->asset, legs[i].account->asset) == 0)
				seen = true;
		if (seen)
			continue;
		sum = legs[i].amount;
		for (j = i + 1; j < nlegs; j++)
			if (strcmp(legs[j].account->asset, legs[i].account->asset) == 0)
				sum = ledger_numeric_add(sum, legs[j].amount);
		if (ledger_numeric_sign(sum) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_UNBALANCED_POSTING),
					 errmsg("posting does not net to zero in asset \"%s\"",
							legs[i].account->asset),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNBALANCED_POSTING,
													 LEDGER_FACT_TEXT("asset", legs[i].account->asset),
													 LEDGER_FACT_AMOUNT("sum", sum),
													 NULL),
										"The legs in asset \"%s\" sum to %s.",
							   legs[i].account->asset, ledger_numeric_str(sum)),
					 errhint("Each asset's legs must sum to exactly zero.")));
	}
}

/*
 * Whose key space a posting's idempotency key is in, by an account id: the
 * owner of its debited account (a transfer's and an exchange's first leg);
 * for a post, of the debited account with the smallest code, so that a
 * retry listing the legs in another order (the same request: its
 * fingerprint sorts them) lands in the same space.  With
 * ledger.acting_owner set, every debited account is the acting owner's.
 */
static int64
key_scope_account(LedgerLeg *legs, int nlegs, bool post)
{
	LedgerLeg  *first = NULL;
	int			i;

	for (i = 0; i < nlegs; i++)
		if (ledger_numeric_sign(legs[i].amount) < 0 &&
			(first == NULL || (post && strcmp(legs[i].code, first->code) < 0)))
			first = &legs[i];
	return (first ? first : &legs[0])->account->id;
}

/*
 * Post legs: resolve, check amounts and balance, claim the key, apply.
 * Runs inside SPI; returns the transaction id in *id, and false when the
 * key was taken by the same request (an idempotent replay: nothing
 * written).  hash is the request's fingerprint when the caller computes it
 * (an exchange's legs depend on the rate, its request does not), NULL to
 * take it from the legs.  For a transfer, legs[1] carries the positive
 * amount the caller gave and legs[0] its negation.
 */
bool
ledger_post_legs(pg_uuid_t *id, const char *kind, LedgerLeg *legs, int nlegs,
				 const char *key, bytea *hash, Jsonb *metadata, bool transfer)
{
	LedgerDelta *deltas;
	int			ndeltas;
	int			i;
	int64		scope = 0;

	/*
	 * A posting without a key may write nothing before its last statement:
	 * refuse a read-only transaction (a standby) before touching the
	 * escrow.
	 */
	PreventCommandIfReadOnly(psprintf("ledger.%s", kind));
	ledger_uuidv7(id);
	ledger_resolve_accounts(legs, nlegs);

	if (transfer)
	{
		ledger_check_same_asset(legs);
		legs[1].amount = ledger_check_amount(legs[1].amount, legs[0].account, false);
		legs[0].amount = ledger_numeric_neg(legs[1].amount);
	}
	else
	{
		for (i = 0; i < nlegs; i++)
			legs[i].amount = ledger_check_amount(legs[i].amount, legs[i].account, true);
	}
	check_balanced(legs, nlegs);
	if (key != NULL)
	{
		scope = key_scope_account(legs, nlegs, strcmp(kind, "post") == 0);
		if (hash == NULL)
			hash = request_hash(kind, legs, nlegs, metadata);
	}
	if (ledger_batch_active())
		return ledger_batch_post(id, kind, legs, nlegs, key, scope, hash, metadata);
	if (key != NULL && !ledger_claim_key(id, kind, key, scope, hash, metadata))
		return false;			/* idempotent replay: nothing to write */

	deltas = ledger_build_deltas(legs, nlegs, &ndeltas);
	/* with a key, claim_key wrote the transaction row; else the last statement does */
	ledger_apply_balances(deltas, ndeltas, id, legs, nlegs,
						  key == NULL ? kind : NULL, metadata);
	return true;
}

/*
 * One transfer, inside SPI: checked codes, the amount as given, an optional
 * key, checked metadata.  ledger.transfer and each transfer_batch item.
 */
void
ledger_transfer_item(char *from, char *to, Numeric amount, const char *key, Jsonb *metadata,
					 pg_uuid_t *id)
{
	LedgerLeg	legs[2];

	if (strcmp(from, to) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("cannot transfer from an account to itself"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("account", from),
													  NULL),
										"Both sides name account \"%s\".", from)));

	/* the fingerprint sees the request as given: -amount out, +amount in */
	legs[0] = (LedgerLeg) {from, ledger_numeric_neg(amount), NULL};
	legs[1] = (LedgerLeg) {to, amount, NULL};
	ledger_check_debit_owner(from, "ledger.transfer");
	(void) ledger_post_legs(id, "transfer", legs, 2, key, NULL, metadata, true);
}

/*
 * One post of parsed legs, inside SPI: ledger.post and each post_batch
 * item.
 */
void
ledger_post_item(LedgerLeg *legs, int nlegs, const char *key, Jsonb *metadata, pg_uuid_t *id)
{
	int			i;

	for (i = 0; i < nlegs; i++)
		if (ledger_numeric_sign(legs[i].amount) < 0)
			ledger_check_debit_owner(legs[i].code, "ledger.post");
	(void) ledger_post_legs(id, "post", legs, nlegs, key, NULL, metadata, false);
}

PG_FUNCTION_INFO_V1(ledger_transfer);

Datum
ledger_transfer(PG_FUNCTION_ARGS)
{
	char	   *from;
	char	   *to;
	char	   *key;
	Jsonb	   *metadata;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	LEDGER_REQUIRE_ARG(0, "from_account");
	LEDGER_REQUIRE_ARG(1, "to_account");
	LEDGER_REQUIRE_ARG(2, "amount");
	LEDGER_REQUIRE_ARG(4, "metadata");
	from = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	to = ledger_check_code(PG_GETARG_TEXT_PP(1), "account code");
	key = ledger_optional_code(fcinfo, 3, "idempotency_key");
	metadata = PG_GETARG_JSONB_P(4);
	ledger_check_metadata(metadata);

	ledger_rate_check("ledger.transfer");
	SPI_connect();
	ledger_transfer_item(from, to, PG_GETARG_NUMERIC(2), key, metadata, id);
	SPI_finish();

	PG_RETURN_UUID_P(id);
}

/*
 * Parse the legs document: a JSON array of 2..ledger.max_legs objects, each
 * with exactly the keys "account" (a string) and "amount" (a number or a
 * decimal string).
 */
LedgerLeg *
ledger_parse_legs(Jsonb *doc, int *nlegs)
{
	LedgerLeg  *legs;
	int			n;
	int			i;

	if (!JB_ROOT_IS_ARRAY(doc) || JB_ROOT_IS_SCALAR(doc))
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_LEGS),
				 errmsg("legs must be a JSON array"),
				 errhint("Pass [{\"account\": \"code\", \"amount\": \"-10.00\"}, ...]."),
					 ledger_errdetail_facts(ledger_facts(ERRCODE_LEDGER_INVALID_LEGS), NULL)));
	n = JB_ROOT_COUNT(doc);
	if (n < 2 || n > ledger_max_legs)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_LEGS),
				 errmsg("a posting needs between 2 and %d legs", ledger_max_legs),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
													 LEDGER_FACT_INT("legs", n),
													 LEDGER_FACT_INT("max_legs", ledger_max_legs),
													 NULL),
										"%d %s given.", n, n == 1 ? "leg was" : "legs were")));

	legs = palloc0(sizeof(LedgerLeg) * n);
	for (i = 0; i < n; i++)
	{
		JsonbValue *elem = getIthJsonbValueFromContainer(&doc->root, i);
		JsonbContainer *obj;
		JsonbValue	acct;
		JsonbValue	amt;

		if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_LEGS),
					 errmsg("leg %d is not a JSON object", i + 1),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
														  LEDGER_FACT_INT("leg", i + 1),
														  NULL),
											NULL)));
		obj = elem->val.binary.data;
		if (getKeyJsonValueFromContainer(obj, "account", 7, &acct) == NULL ||
			acct.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_LEGS),
					 errmsg("leg %d has no \"account\" string", i + 1),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
														  LEDGER_FACT_INT("leg", i + 1),
														  NULL),
											NULL)));
		if (getKeyJsonValueFromContainer(obj, "amount", 6, &amt) == NULL ||
			(amt.type != jbvString && amt.type != jbvNumeric))
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_LEGS),
					 errmsg("leg %d has no \"amount\" number or string", i + 1),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
														  LEDGER_FACT_INT("leg", i + 1),
														  NULL),
											NULL)));
		if (JsonContainerSize(obj) != 2)
			ereport(ERROR,
					(errcode(ERRCODE_LEDGER_INVALID_LEGS),
					 errmsg("leg %d has keys other than \"account\" and \"amount\"", i + 1),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_LEGS,
														  LEDGER_FACT_INT("leg", i + 1),
														  NULL),
											NULL)));

		legs[i].code = ledger_check_code(
			cstring_to_text_with_len(acct.val.string.val, acct.val.string.len),
			"account code");
		if (amt.type == jbvNumeric)
			legs[i].amount = amt.val.numeric;
		else
			legs[i].amount = ledger_parse_amount(amt.val.string.val,
												 amt.val.string.len, i + 1);
	}
	*nlegs = n;
	return legs;
}

PG_FUNCTION_INFO_V1(ledger_post);

Datum
ledger_post(PG_FUNCTION_ARGS)
{
	LedgerLeg  *legs;
	int			nlegs;
	char	   *key;
	Jsonb	   *metadata;
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	LEDGER_REQUIRE_ARG(0, "legs");
	LEDGER_REQUIRE_ARG(2, "metadata");
	legs = ledger_parse_legs(PG_GETARG_JSONB_P(0), &nlegs);
	key = ledger_optional_code(fcinfo, 1, "idempotency_key");
	metadata = PG_GETARG_JSONB_P(2);
	ledger_check_metadata(metadata);

	ledger_rate_check("ledger.post");
	SPI_connect();
	ledger_post_item(legs, nlegs, key, metadata, id);
	SPI_finish();

	PG_RETURN_UUID_P(id);
}
