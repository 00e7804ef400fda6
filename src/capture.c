/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  ledger.capture: move money an exclusive hold keeps to its to_account,
 *	  as a posting (kind 'capture') whose transaction id it returns.
 *	  Partial captures may repeat until nothing remains.
 *
 * Order, inside the caller's transaction:
 *	1. read the hold (no lock) for its accounts; resolve them;
 *	2. lock the cold balance rows of both accounts in ascending id order,
 *	   as a posting would (a hot to_account takes its credit in the
 *	   escrow);
 *	3. with an idempotency key, a key already taken returns its
 *	   transaction (or LD007): checked under the row lock every capture of
 *	   the hold takes, so a retry racing its first call waits and then
 *	   finds the key;
 *	4. lock the hold's row and check its state and what remains (LD024,
 *	   LD025);
 *	5. claim the key, apply the posting (balance.c) with the debit marked
 *	   as taking held money, then write the hold and its timeline.
 * A capture racing a void or another capture of the same hold waits at
 * step 2 and then sees the other's result at step 4.
 *
 * Locking: balance rows (step 2), then the hold row (step 4); see hold.c.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"


/* Fingerprint of a capture request: the hold and the amount asked for. */
static bytea *
capture_hash(const pg_uuid_t *hold, Numeric amount)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "capture\n%s\n%s", ledger_uuid_str(hold),
					 amount ? numeric_normalize(amount) : "rest");
	return ledger_fingerprint(buf.data, buf.len);
}

PG_FUNCTION_INFO_V1(ledger_capture);

Datum
ledger_capture(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *hold_id;
	Numeric		asked = NULL;
	char	   *key = NULL;
	bytea	   *hash = NULL;
	LedgerHold	h;
	LedgerHoldAccount acct;
	LedgerLeg	legs[2];
	LedgerDelta *deltas;
	LedgerJson *meta;
	Jsonb	   *metadata;
	const char *state;
	Numeric		amount;
	TimestampTz now;
	int			ndeltas;
	int			i;
	pg_uuid_t  *txid = palloc(sizeof(pg_uuid_t));

	LEDGER_REQUIRE_ARG(0, "hold_id");
	hold_id = PG_GETARG_UUID_P(0);
	key = ledger_optional_code(fcinfo, 2, "idempotency_key");
	PreventCommandIfReadOnly("ledger.capture");
	ledger_rate_check("ledger.capture");

	SPI_connect();
	ledger_hold_get(hold_id, false, &h);
	if (!h.exclusive)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOLD_SHARED),
				 errmsg("hold %s is shared and cannot be captured", ledger_uuid_str(hold_id)),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOLD_SHARED, LEDGER_FACT_ID("hold_id", hold_id), LEDGER_FACT_TEXT("account", h.account_code), NULL), "Shared holds keep money in place on account \"%s\"; void it to release it.",
						   h.account_code)));
	ledger_check_debit_owner(h.account_code, "ledger.capture");
	legs[0].code = h.account_code;
	legs[1].code = h.to_code;
	ledger_resolve_accounts(legs, 2);
	if (!PG_ARGISNULL(1))
		asked = ledger_check_amount(PG_GETARG_NUMERIC(1), legs[0].account, false);
	if (key)
		hash = capture_hash(hold_id, asked);

	/* step 2: cold balance rows in id order */
	for (i = 0; i < 2; i++)
	{
		LedgerAccount *a = legs[(legs[0].account->id < legs[1].account->id) ? i : 1 - i].account;

		if (a == legs[0].account)
			(void) ledger_hold_lock_account(a->id, false, &acct);
		else if (!a->hot)
			ledger_lock_balance(a->id);
	}

	/* step 3: a retry finds its first result */
	if (key && ledger_find_key(key, legs[0].account->id, hash, txid))
	{
		SPI_finish();
		PG_RETURN_UUID_P(txid);
	}

	/* step 4: the hold as it is now */
	ledger_hold_get(hold_id, true, &h);
	now = GetCurrentTimestamp();
	state = ledger_hold_state(&h, now);
	if (!ledger_hold_open(state))
		ledger_hold_refuse(&h, state, "captured");
	/* an open hold keeps its account cold (LD028); an expired one need not */
	if (acct.hot)
		elog(ERROR, "account \"%s\" is hot but holds money", h.account_code);
	amount = asked ? asked : h.remaining;
	if (ledger_numeric_cmp(amount, h.remaining) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_HOLD_EXCEEDED),
				 errmsg("capture of %s exceeds what remains on hold %s",
						ledger_numeric_str(amount), ledger_uuid_str(hold_id)),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_HOLD_EXCEEDED, LEDGER_FACT_ID("hold_id", hold_id), LEDGER_FACT_TEXT("account", h.account_code), LEDGER_FACT_AMOUNT("amount", h.amount), LEDGER_FACT_AMOUNT("captured", h.captured), LEDGER_FACT_AMOUNT("remaining", h.remaining), LEDGER_FACT_AMOUNT("requested", amount), NULL), "Hold %s on account \"%s\" holds %s, of which %s was captured and %s remains.",
						   ledger_uuid_str(hold_id), h.account_code, ledger_numeric_str(h.amount),
						   ledger_numeric_str(h.captured), ledger_numeric_str(h.remaining))));
	Assert(ledger_numeric_sign(amount) > 0);

	/* step 5: the posting, then the hold */
	ledger_uuidv7(txid);
	meta = ledger_json_begin();
	ledger_json_text(meta, "hold_id", ledger_uuid_str(hold_id));
	if (h.external_ref)
		ledger_json_text(meta, "external_ref", h.external_ref);
	metadata = ledger_json_end(meta);
	if (key && !ledger_claim_key(txid, "capture", key, legs[0].account->id, hash, metadata))
		elog(ERROR, "idempotency key \"%s\" was claimed while its hold was locked", key);
	legs[0].amount = ledger_numeric_neg(amount);
	legs[1].amount = amount;
	deltas = ledger_build_deltas(legs, 2, &ndeltas);
	Assert(ndeltas == 2);
	for (i = 0; i < ndeltas; i++)
		deltas[i].from_hold = deltas[i].account == legs[0].account;
	ledger_apply_balances(deltas, ndeltas, txid, legs, 2, key ? NULL : "capture", metadata);

	h.captured = ledger_numeric_add(h.captured, amount);
	h.remaining = ledger_numeric_add(h.remaining, ledger_numeric_neg(amount));
	if (ledger_numeric_sign(h.remaining) == 0)
		h.state = "captured";
	/* the key is the capture transaction's (ledger.transaction), not the timeline's */
	(void) ledger_hold_move(&h, now, ledger_numeric_sign(h.remaining) == 0 ? -1 : 0, "captured",
							amount, txid, NULL, NULL, NULL);
	SPI_finish();

	PG_RETURN_UUID_P(txid);
}
