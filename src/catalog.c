/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Assets and accounts: ledger.create_asset, ledger.create_account and
 *	  ledger.balance.
 *
 * Locking: creation relies on the unique indexes on asset.code and
 * account.code (INSERT ... ON CONFLICT DO NOTHING), so two sessions creating
 * the same code get one row and one LD009/LD010, never a unique_violation.
 * Accounts are never deleted (a guard trigger refuses it), so an account a
 * posting resolved cannot vanish under it.
 *
 *-------------------------------------------------------------------------
 */
#include "ledger.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "catalog/namespace.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"

static SPIPlanPtr insert_asset_plan = NULL;
static SPIPlanPtr insert_account_plan = NULL;
static SPIPlanPtr insert_balance_plan = NULL;
static SPIPlanPtr balance_plan[2] = {NULL, NULL};

PG_FUNCTION_INFO_V1(ledger_create_asset);

Datum
ledger_create_asset(PG_FUNCTION_ARGS)
{
	char	   *code;
	int32		scale;
	Datum		values[2];

	LEDGER_REQUIRE_ARG(0, "code");
	LEDGER_REQUIRE_ARG(1, "scale");
	code = ledger_check_code(PG_GETARG_TEXT_PP(0), "asset code");
	scale = PG_GETARG_INT32(1);
	if (scale < 0 || scale > 18)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_INVALID_ARGUMENT),
				 errmsg("scale must be between 0 and 18"),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_INVALID_ARGUMENT,
													  LEDGER_FACT_TEXT("asset", code),
													  LEDGER_FACT_TEXT("argument", "scale"),
													  LEDGER_FACT_INT("given", scale),
													  NULL),
										"Asset \"%s\", scale %d.", code, scale)));

	SPI_connect();
	if (insert_asset_plan == NULL)
	{
		Oid			types[2] = {TEXTOID, INT4OID};

		insert_asset_plan = ledger_prepare(
			"INSERT INTO ledger.asset (code, scale) VALUES ($1, $2) "
			"ON CONFLICT (code) DO NOTHING", 2, types);
	}
	values[0] = CStringGetTextDatum(code);
	values[1] = Int32GetDatum(scale);
	ledger_spi_exec(insert_asset_plan, values, NULL, SPI_OK_INSERT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_DUPLICATE_ASSET),
				 errmsg("asset \"%s\" already exists", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_DUPLICATE_ASSET, LEDGER_FACT_TEXT("asset", code), NULL), "Asset \"%s\" was created before; assets are never replaced.", code)));
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(ledger_create_account);

Datum
ledger_create_account(PG_FUNCTION_ARGS)
{
	char	   *code;
	char	   *asset;
	char	   *owner = NULL;
	Jsonb	   *metadata;
	Numeric		min_balance = NULL;
	int32		scale;
	bool		isnull;
	int64		id;
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	LEDGER_REQUIRE_ARG(0, "code");
	LEDGER_REQUIRE_ARG(1, "asset");
	LEDGER_REQUIRE_ARG(4, "metadata");
	code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");
	asset = ledger_check_code(PG_GETARG_TEXT_PP(1), "asset code");
	owner = ledger_optional_code(fcinfo, 3, "owner_id");
	metadata = PG_GETARG_JSONB_P(4);
	ledger_check_metadata(metadata);

	scale = ledger_asset_scale(asset);
	if (scale < 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ASSET),
				 errmsg("asset \"%s\" does not exist", asset),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ASSET, LEDGER_FACT_TEXT("asset", asset), LEDGER_FACT_TEXT("account", code), NULL), "Account \"%s\" names asset \"%s\".", code, asset),
				 errhint("Create it first with ledger.create_asset.")));

	SPI_connect();

	if (!PG_ARGISNULL(2))
		min_balance = ledger_check_numeric_finite(PG_GETARG_NUMERIC(2), "min_balance",
												  asset, scale);

	if (insert_balance_plan == NULL)	/* prepared last of the two */
	{
		Oid			types[5] = {TEXTOID, TEXTOID, NUMERICOID, TEXTOID, JSONBOID};

		insert_account_plan = ledger_prepare(
			"INSERT INTO ledger.account (code, asset, min_balance, owner_id, metadata) "
			"VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO NOTHING RETURNING id",
			5, types);
		insert_balance_plan = ledger_prepare(
			"INSERT INTO ledger.account_balance (account_id, balance) VALUES ($1, 0)",
			1, (Oid[]) {INT8OID});
	}
	values[0] = CStringGetTextDatum(code);
	values[1] = CStringGetTextDatum(asset);
	values[2] = min_balance ? NumericGetDatum(min_balance) : (Datum) 0;
	nulls[2] = min_balance ? ' ' : 'n';
	values[3] = owner ? CStringGetTextDatum(owner) : (Datum) 0;
	nulls[3] = owner ? ' ' : 'n';
	values[4] = JsonbPGetDatum(metadata);
	ledger_spi_exec(insert_account_plan, values, nulls, SPI_OK_INSERT_RETURNING);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_DUPLICATE_ACCOUNT),
				 errmsg("account \"%s\" already exists", code),
				 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_DUPLICATE_ACCOUNT, LEDGER_FACT_TEXT("account", code), NULL), "Account codes are unique; \"%s\" is taken.", code)));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									 SPI_tuptable->tupdesc, 1, &isnull));

	values[0] = Int64GetDatum(id);
	ledger_spi_exec(insert_balance_plan, values, NULL, SPI_OK_INSERT);
	SPI_finish();

	PG_RETURN_INT64(id);
}

PG_FUNCTION_INFO_V1(ledger_balance);

Datum
ledger_balance(PG_FUNCTION_ARGS)
{
	char	   *code;
	Datum		values[1];
	Datum		result;
	bool		isnull;
	int			v;

	LEDGER_REQUIRE_ARG(0, "account");
	code = ledger_check_code(PG_GETARG_TEXT_PP(0), "account code");

	SPI_connect();
	v = ledger_schema_has_hot() ? 1 : 0;
	if (balance_plan[v] == NULL)
		balance_plan[v] = ledger_prepare(v ?
			/* folded plus unfolded, in one snapshot */
			"SELECT b.balance + coalesce((SELECT sum(q.credits - q.debits) "
			"  FROM ledger.hot_entry q WHERE q.account_id = a.id), 0) "
			"FROM ledger.account a "
			"JOIN ledger.account_balance b ON b.account_id = a.id "
			"WHERE a.code = $1" :
			"SELECT b.balance FROM ledger.account a "
			"JOIN ledger.account_balance b ON b.account_id = a.id "
			"WHERE a.code = $1",
			1, (Oid[]) {TEXTOID});
	values[0] = CStringGetTextDatum(code);
	if (SPI_execute_plan(balance_plan[v], values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "balance lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_LEDGER_UNKNOWN_ACCOUNT),
				 errmsg("account \"%s\" does not exist", code),
					 ledger_errdetail_facts(ledger_factsv(ERRCODE_LEDGER_UNKNOWN_ACCOUNT, LEDGER_FACT_TEXT("account", code), NULL), NULL)));
	result = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	result = SPI_datumTransfer(result, false, -1);
	SPI_finish();

	PG_RETURN_DATUM(result);
}
