/*-------------------------------------------------------------------------
 *
 * ids.c
 *	  Time-ordered 128-bit ids in the UUIDv7 layout (RFC 9562): 48 bits of
 *	  Unix milliseconds, the version nibble, a 12-bit counter, the variant
 *	  bits and 62 random bits.
 *
 * Ids are strictly increasing within a backend: when the clock has not
 * advanced (or went back) since the last id, the counter is incremented,
 * and when the counter runs out the millisecond field is advanced.  Across
 * backends ids are ordered by millisecond only.
 *
 * Also the text form of an id, for messages and JSON (ledger_uuid_str).
 *
 * Locking: none; the state is backend-local.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

static int64 last_ms = 0;
static uint32 last_counter = 0;

#define COUNTER_MAX 0x0FFF

void
ledger_uuidv7(pg_uuid_t *out)
{
	TimestampTz now = GetCurrentTimestamp();
	int64		ms;
	uint32		counter;
	uint8		rnd[10];

	if (!pg_strong_random(rnd, sizeof(rnd)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes for a transaction id")));

	ms = now / 1000 +
		((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)) * SECS_PER_DAY * 1000;

	if (ms > last_ms)
	{
		/* new millisecond: start the counter low, leaving room to count up */
		counter = ((uint32) rnd[0] << 4 | (rnd[1] >> 4)) & 0x07FF;
	}
	else
	{
		ms = last_ms;
		counter = last_counter + 1;
		if (counter > COUNTER_MAX)
		{
			ms++;
			counter = 0;
		}
	}
	last_ms = ms;
	last_counter = counter;

	out->data[0] = (uint8) (ms >> 40);
	out->data[1] = (uint8) (ms >> 32);
	out->data[2] = (uint8) (ms >> 24);
	out->data[3] = (uint8) (ms >> 16);
	out->data[4] = (uint8) (ms >> 8);
	out->data[5] = (uint8) ms;
	out->data[6] = 0x70 | (uint8) ((counter >> 8) & 0x0F);
	out->data[7] = (uint8) counter;
	out->data[8] = 0x80 | (rnd[2] & 0x3F);
	memcpy(&out->data[9], &rnd[3], 7);
}

PG_FUNCTION_INFO_V1(ledger_new_id);

Datum
ledger_new_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t  *id = palloc(sizeof(pg_uuid_t));

	ledger_uuidv7(id);
	PG_RETURN_UUID_P(id);
}

/* The text form of an id, for messages and JSON details. */
char *
ledger_uuid_str(const pg_uuid_t *id)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
}
