-- hold_batch: hold_batch, capture_batch and void_batch.  A row per item in
-- input order ('ok' with the hold, the capture's transaction or the amount
-- released, or the item's LD SQLSTATE, message and facts); each item runs
-- the single call, with its defaults for keys left out; ordering effects,
-- atomic and not, keys inside and across batches, and bad calls.
SELECT ledger.create_asset('HBU', 2);
SELECT ledger.create_asset('HBE', 2);
SELECT ledger.create_account('hb-world', 'HBU', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('hb-a', 'HBU') > 0 AS ok;
SELECT ledger.create_account('hb-b', 'HBU') > 0 AS ok;
SELECT ledger.create_account('hb-shop', 'HBU') > 0 AS ok;
SELECT ledger.create_account('hb-e', 'HBE') > 0 AS ok;
SELECT ledger.transfer('hb-world', 'hb-a', 100) IS NOT NULL AS funded;
SELECT ledger.transfer('hb-world', 'hb-b', 10) IS NOT NULL AS funded;
SELECT ledger.set_account_limits('hb-b', 1);

-- holds: items that pass beside every kind of refusal; item 3 is refused
-- because items 1 and 2 keep 90 of hb-a's 100
SELECT item, result, regexp_replace(message, '[0-9a-f-]{36}', '<id>', 'g') AS message,
       hold_id IS NOT NULL AS held, regexp_replace(facts::text, '[0-9a-f-]{36}', '<id>', 'g') AS facts
  FROM ledger.hold_batch('[
    {"from_account": "hb-a", "amount": "30.00", "to_account": "hb-shop", "external_ref": "r1"},
    {"from_account": "hb-a", "amount": 60, "to_account": "hb-shop", "idempotency_key": "hb-k1", "external_ref": "r2"},
    {"from_account": "hb-a", "amount": "20", "to_account": "hb-shop"},
    {"from_account": "hb-b", "amount": "1", "mode": "shared", "external_ref": "r4"},
    {"from_account": "hb-b", "amount": "1", "mode": "shared"},
    {"from_account": "hb-a", "amount": "1", "to_account": "hb-e"},
    {"from_account": "hb-nope", "amount": "1", "to_account": "hb-shop"},
    {"from_account": "hb-a", "amount": "0", "to_account": "hb-shop"},
    {"from_account": "hb-a", "amount": "1.001", "to_account": "hb-shop"},
    {"from_account": "hb-a", "amount": "1e3", "to_account": "hb-shop"},
    {"from_account": "hb-a", "amount": true, "to_account": "hb-shop"},
    {"from_account": null, "amount": "1", "to_account": "hb-shop"},
    {"from_account": "hb-a", "amount": "1", "to_account": "hb-shop", "submit_within": "forever"},
    {"from_account": "hb-a", "amount": "1", "to_account": "hb-shop", "submit_within": "-1 minute"},
    {"from_account": "hb-a", "amount": "1", "to_account": "hb-shop", "mode": "loose"},
    {"from_account": "hb-a", "amont": "1", "to_account": "hb-shop"},
    {"from_account": "hb-a", "amount": "1", "to_account": "hb-shop", "metadata": [1]},
    "hb-a",
    {"from_account": "hb-a", "amount": "60.00", "to_account": "hb-shop", "idempotency_key": "hb-k1", "external_ref": "r2"},
    {"from_account": "hb-a", "amount": "61", "to_account": "hb-shop", "idempotency_key": "hb-k1", "external_ref": "r2"}
  ]') ORDER BY item;
-- two holds on hb-a, one shared on hb-b (its limit is 1): item 19
-- replayed item 2 (the same request, its amount written another way)
SELECT h.external_ref, h.mode, h.state, h.amount FROM ledger.hold h JOIN ledger.account a ON a.id = h.account_id
 WHERE a.code LIKE 'hb-%' ORDER BY h.created_at;
-- left-out keys take the single call's defaults: the same windows as a
-- hold made by ledger.hold
SELECT ledger.hold('hb-a', 1, 'hb-shop', external_ref => 'single') IS NOT NULL AS single;
SELECT count(DISTINCT (submit_deadline - created_at, confirm_within)) AS windows,
       min(submit_deadline - created_at) AS submit_within, min(confirm_within) AS confirm_within
  FROM ledger.hold WHERE external_ref IN ('r1', 'single');
SELECT ledger.void(id, 'cleanup') FROM ledger.hold WHERE external_ref = 'single';

-- captures in order: item 2 asks more than remains after item 1 (LD025),
-- item 3 takes the rest, item 4 finds it captured (LD024); a shared hold
-- (LD026), an unknown hold (LD023), a malformed id, a replayed key
SELECT id AS h1 FROM ledger.hold WHERE external_ref = 'r1' \gset
SELECT id AS h2 FROM ledger.hold WHERE external_ref = 'r2' \gset
SELECT id AS h4 FROM ledger.hold WHERE external_ref = 'r4' \gset
SELECT item, result, regexp_replace(message, '[0-9a-f-]{36}', '<id>', 'g') AS message,
       transaction_id IS NOT NULL AS posted,
       regexp_replace(facts::text, '[0-9a-f-]{36}', '<id>', 'g') AS facts
  FROM ledger.capture_batch(jsonb_build_array(
    jsonb_build_object('hold_id', :'h1', 'amount', '10.00', 'idempotency_key', 'hb-c1'),
    jsonb_build_object('hold_id', :'h1', 'amount', 25),
    jsonb_build_object('hold_id', :'h1'),
    jsonb_build_object('hold_id', :'h1', 'amount', '1'),
    jsonb_build_object('hold_id', :'h4'),
    jsonb_build_object('hold_id', '00000000-0000-0000-0000-000000000000'),
    jsonb_build_object('hold_id', 'not-a-uuid'),
    jsonb_build_object('hold_id', :'h1', 'amount', '10.00', 'idempotency_key', 'hb-c1')))
 ORDER BY item;
SELECT ledger.balance('hb-a') AS a, ledger.balance('hb-shop') AS shop;

-- voids: a void, the same hold again (LD024), no reason (LD011), a key
-- replayed in a later batch returns the first amount
SELECT item, result, released, regexp_replace(facts::text, '[0-9a-f-]{36}', '<id>', 'g') AS facts
  FROM ledger.void_batch(jsonb_build_array(
    jsonb_build_object('hold_id', :'h4', 'reason', 'released', 'idempotency_key', 'hb-v1'),
    jsonb_build_object('hold_id', :'h4', 'reason', 'again'),
    jsonb_build_object('hold_id', :'h2')))
 ORDER BY item;
SELECT item, result, released FROM ledger.void_batch(jsonb_build_array(
    jsonb_build_object('hold_id', :'h4', 'reason', 'released', 'idempotency_key', 'hb-v1')));

-- atomic: the first refusal fails the call, naming the item; nothing is
-- written (item 1's hold is gone too; item 2 saw it: 61.00 held)
SELECT count(*) AS holds_before FROM ledger.hold \gset
SELECT try($$SELECT * FROM ledger.hold_batch('[{"from_account": "hb-a", "amount": "1", "to_account": "hb-shop"},
                                             {"from_account": "hb-a", "amount": "1000", "to_account": "hb-shop"}]',
                                            atomic => true)$$);
DO $$
DECLARE ctx text;
BEGIN
  PERFORM * FROM ledger.hold_batch('[{"from_account": "hb-a", "amount": "1", "to_account": "hb-shop"},
                                    {"from_account": "hb-nope", "amount": "1", "to_account": "hb-shop"}]', atomic => true);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
  RAISE NOTICE '%', split_part(ctx, E'\n', 1);
END $$;
SELECT count(*) = :holds_before AS nothing_written FROM ledger.hold;
SELECT item, result FROM ledger.capture_batch(jsonb_build_array(jsonb_build_object('hold_id', :'h2', 'amount', '5')),
                                              atomic => true);

-- a hold id written in any form uuid is read in (braces, no dashes) runs
-- like the canonical one
SELECT ledger.hold('hb-a', 2, 'hb-shop', external_ref => 'forms') AS h5 \gset
SELECT item, result, transaction_id IS NOT NULL AS posted FROM ledger.capture_batch(jsonb_build_array(
    jsonb_build_object('hold_id', '{' || :'h5' || '}', 'amount', '1'),
    jsonb_build_object('hold_id', replace(:'h5', '-', ''), 'amount', '1'),
    jsonb_build_object('hold_id', upper(:'h5'), 'amount', '1'))) ORDER BY item;

-- the caller needs EXECUTE on the single call too: revoking capture from
-- a writer also takes capture_batch's items from it
BEGIN;
CREATE ROLE hb_writer IN ROLE ledger_writer;
REVOKE EXECUTE ON FUNCTION ledger.capture(uuid, numeric, text) FROM ledger_writer;
SET LOCAL ROLE hb_writer;
SELECT try(format($$SELECT * FROM ledger.capture_batch('[{"hold_id": %s}]')$$, to_json(:'h2'::text)));
ROLLBACK;

-- bad calls: refused whole
SELECT try($$SELECT * FROM ledger.hold_batch(NULL)$$);
SELECT try($$SELECT * FROM ledger.hold_batch('[]', NULL)$$);
SELECT try($$SELECT * FROM ledger.hold_batch('{}')$$);
SELECT try($$SELECT * FROM ledger.capture_batch('"x"')$$);
SELECT try($$SELECT * FROM ledger.void_batch('[]')$$);
SELECT try(format($$SELECT * FROM ledger.void_batch((SELECT jsonb_agg(jsonb_build_object('hold_id', %L, 'reason', 'x'))
                                                     FROM generate_series(1, 1001)))$$, :'h2'));

-- balances equal the journal, and the holds what their timelines say
SELECT ledger.balance('hb-a') AS a, ledger.balance('hb-b') AS b, ledger.balance('hb-shop') AS shop;
SELECT count(*) AS clean FROM ledger.reconcile();
