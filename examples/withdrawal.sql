-- examples/withdrawal.sql: a withdrawal through a payment processor with
-- a hold, as an application runs it.  Run it in a database with the ledger
-- (psql -f); the regression test `examples` runs this very file.
--
-- The customer account, and the account money goes to when the processor
-- pays it out.  Codes are the application's own ids.
SELECT ledger.create_asset('GBP', 2);
SELECT ledger.create_account('ex-bank', 'GBP', min_balance => NULL) > 0 AS created;
SELECT ledger.create_account('ex-customer-42', 'GBP', owner_id => 'customer-42') > 0 AS created;
SELECT ledger.create_account('ex-payouts', 'GBP') > 0 AS created;
SELECT ledger.transfer('ex-bank', 'ex-customer-42', 120.00, idempotency_key => 'ex-deposit-1') IS NOT NULL AS deposited;

-- 1. The customer asks for 100.00.  Reserve it; the key is the
--    withdrawal's id, so a retried request gets the same hold.
--    The metadata names the processor, for reconcile_external.
SELECT ledger.hold('ex-customer-42', 100.00, 'ex-payouts', external_ref => 'wd-7',
                   idempotency_key => 'wd-7/hold', metadata => '{"source": "ex-psp"}') AS hold_id \gset
SELECT ledger.available_balance('ex-customer-42') AS available_while_held;

-- A second request for 100.00 would now fail with LD001 (insufficient
-- funds): the held money is not available to it, nor to any debit.
SELECT ledger.available_balance('ex-customer-42') >= 100.00 AS another_100_fits;

-- 2. Just before calling the processor: from now on the money stays held
--    until we capture or void, however long the processor takes.
SELECT ledger.mark_submitted(:'hold_id');

-- 3. The processor answers "paid": move the money.  A retry of this call
--    (same key) returns the same transaction and moves nothing more.
SELECT ledger.capture(:'hold_id', idempotency_key => 'wd-7/capture') AS capture_tx \gset
SELECT ledger.capture(:'hold_id', idempotency_key => 'wd-7/capture') = :'capture_tx' AS retry_is_harmless;

SELECT code, balance, held_exclusive, available FROM ledger.account_overview
 WHERE code IN ('ex-customer-42', 'ex-payouts') ORDER BY code;
SELECT event, amount, remaining FROM ledger.hold_timeline WHERE hold_id = :'hold_id' ORDER BY id;

-- 4. At the end of the day, load the processor's statement and compare.
SELECT ledger.import_statement('ex-psp', jsonb_build_array(jsonb_build_object(
    'external_ref', 'wd-7', 'amount', '100.00', 'asset', 'GBP', 'status', 'succeeded',
    'occurred_at', now()::text))) AS imported;
SELECT count(*) AS mismatches_of_withdrawals
  FROM ledger.reconcile_external('ex-psp', now() - interval '1 day', now() + interval '1 minute')
 WHERE external_ref LIKE 'wd-%';
