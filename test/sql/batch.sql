-- batch: transfer_batch and post_batch.  A result row per item in input
-- order ('ok' with the transaction, or the item's LD SQLSTATE and message),
-- each LD error of an item, ordering effects (a credit in an early item
-- funds a debit in a later one), atomic and not, idempotency inside and
-- across batches, and bad calls (refused whole, nothing written).
SELECT ledger.create_asset('BTU', 2);
SELECT ledger.create_asset('BTE', 2);
SELECT ledger.create_account('bt-world', 'BTU', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('bt-a', 'BTU', owner_id => 'owner-a') > 0 AS ok;
SELECT ledger.create_account('bt-b', 'BTU', owner_id => 'owner-b') > 0 AS ok;
SELECT ledger.create_account('bt-c', 'BTU') > 0 AS ok;
SELECT ledger.create_account('bt-e', 'BTE') > 0 AS ok;
SELECT ledger.transfer('bt-world', 'bt-a', 100) IS NOT NULL AS funded;

-- every LD error of a transfer item, beside items that pass
SELECT item, result, message, transaction_id IS NOT NULL AS posted
  FROM ledger.transfer_batch(
    ARRAY['bt-a', 'bt-a', 'bt-nope', 'bt-a', 'bt-a', 'bt-a', 'bt-a', 'bt-a', NULL, 'bt-a', 'bt-a', E'bt\x01', 'bt-a'],
    ARRAY['bt-b', 'bt-b', 'bt-b', 'bt-e', 'bt-b', 'bt-b', 'bt-b', 'bt-a', 'bt-b', 'bt-b', NULL, 'bt-b', 'bt-c'],
    ARRAY[1, 1000, 1, 1, 0, -1, 0.001, 1, 1, 'NaN', 1, 1, 2]::numeric[])
 ORDER BY item;
SELECT ledger.balance('bt-a') AS a, ledger.balance('bt-b') AS b, ledger.balance('bt-c') AS c;

-- order matters: item 1 credits bt-c, which funds item 2's debit; the
-- other way round, item 1 is refused and item 2 stands
SELECT item, result, message FROM ledger.transfer_batch(
    ARRAY['bt-a', 'bt-c'], ARRAY['bt-c', 'bt-b'], ARRAY[10, 12]) ORDER BY item;
SELECT item, result, message FROM ledger.transfer_batch(
    ARRAY['bt-c', 'bt-a'], ARRAY['bt-b', 'bt-c'], ARRAY[100, 5]) ORDER BY item;
SELECT ledger.balance('bt-a') AS a, ledger.balance('bt-b') AS b, ledger.balance('bt-c') AS c;

-- atomic: the first refusal fails the call, names the item, and nothing is
-- written (the first item's posting is gone too)
SELECT count(*) AS transactions_before FROM ledger.transaction \gset
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY['bt-a', 'bt-a', 'bt-a'], ARRAY['bt-b', 'bt-b', 'bt-b'],
                                                 ARRAY[1, 1000, 1], atomic => true)$$);
DO $$
DECLARE ctx text;
BEGIN
  PERFORM * FROM ledger.transfer_batch(ARRAY['bt-a', 'bt-a'], ARRAY['bt-b', 'bt-nope'], ARRAY[1, 1], atomic => true);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
  RAISE NOTICE '%: % (%)', SQLSTATE, SQLERRM, substring(ctx FROM 'ledger.transfer_batch item [0-9]+');
END $$;
SELECT count(*) - :transactions_before AS written FROM ledger.transaction;
SELECT ledger.balance('bt-a') AS a;
-- atomic and all good: every item posts
SELECT item, result FROM ledger.transfer_batch(ARRAY['bt-a', 'bt-a'], ARRAY['bt-b', 'bt-c'], ARRAY[1, 1], atomic => true)
 ORDER BY item;

-- idempotency: a key replayed in a later item returns the first item's
-- transaction; a different request with it is LD007; a whole batch
-- replayed writes nothing new
SELECT item, result, message IS NULL AS no_message FROM ledger.transfer_batch(
    ARRAY['bt-a', 'bt-a', 'bt-a'], ARRAY['bt-b', 'bt-b', 'bt-b'], ARRAY[2, 2, 3],
    idempotency_keys => ARRAY['bk-1', 'bk-1', 'bk-1']) ORDER BY item;
SELECT count(DISTINCT transaction_id) AS one_transaction FROM ledger.transfer_batch(
    ARRAY['bt-a', 'bt-a'], ARRAY['bt-b', 'bt-b'], ARRAY[2, 2], idempotency_keys => ARRAY['bk-1', 'bk-1']);
SELECT count(*) AS keyed FROM ledger.transaction WHERE idempotency_key = 'bk-1';
-- metadata per item, NULL keys and metadata inside the arrays
SELECT item, result, message FROM ledger.transfer_batch(
    ARRAY['bt-a', 'bt-a', 'bt-a'], ARRAY['bt-b', 'bt-b', 'bt-b'], ARRAY[1, 1, 1],
    idempotency_keys => ARRAY[NULL, 'bk-2', NULL],
    metadata => ARRAY['{"n": 1}', NULL, '[1]']::jsonb[]) ORDER BY item;
SELECT t.metadata FROM ledger.journal j JOIN ledger.transaction t ON t.id = j.transaction_id
 WHERE j.account = 'bt-a' ORDER BY j.id DESC LIMIT 1;

-- the acting owner holds for every item
BEGIN;
SET LOCAL ledger.acting_owner = 'owner-a';
SELECT item, result, message FROM ledger.transfer_batch(ARRAY['bt-a', 'bt-b'], ARRAY['bt-b', 'bt-a'], ARRAY[1, 1])
 ORDER BY item;
COMMIT;

-- bad calls: refused whole with LD011, nothing written
SELECT try($$SELECT * FROM ledger.transfer_batch(NULL, ARRAY['bt-b'], ARRAY[1])$$);
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY['bt-a'], ARRAY['bt-b'], NULL)$$);
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY['bt-a'], ARRAY['bt-b'], ARRAY[1], atomic => NULL)$$);
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY['bt-a', 'bt-a'], ARRAY['bt-b'], ARRAY[1, 1])$$);
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY['bt-a'], ARRAY['bt-b'], ARRAY[1], ARRAY['k1', 'k2'])$$);
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::numeric[])$$);
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY[['bt-a']], ARRAY[['bt-b']], ARRAY[[1]])$$);
SELECT try($$SELECT * FROM ledger.transfer_batch(array_fill('bt-a'::text, ARRAY[10001]),
                                                 array_fill('bt-b'::text, ARRAY[10001]),
                                                 array_fill(1::numeric, ARRAY[10001]))$$);
-- a batch that is not atomic holds a lock per item until its commit: at
-- most 1,000 items (an atomic one up to 10,000)
SELECT try($$SELECT * FROM ledger.transfer_batch(array_fill('bt-a'::text, ARRAY[1001]),
                                                 array_fill('bt-b'::text, ARRAY[1001]),
                                                 array_fill(0.01::numeric, ARRAY[1001]))$$);
SELECT count(*) AS atomic_1001 FROM ledger.transfer_batch(array_fill('bt-a'::text, ARRAY[1001]),
                                                          array_fill('bt-b'::text, ARRAY[1001]),
                                                          array_fill(0.01::numeric, ARRAY[1001]), atomic => true);
SELECT count(*) - :transactions_before AS written_by_now FROM ledger.transaction;

-- post_batch: postings as ledger.post takes them, one row per item
SELECT item, result, message, transaction_id IS NOT NULL AS posted FROM ledger.post_batch($$[
  {"legs": [{"account": "bt-a", "amount": "-1"}, {"account": "bt-b", "amount": 1}]},
  {"legs": [{"account": "bt-a", "amount": "-1"}, {"account": "bt-b", "amount": 2}]},
  {"legs": [{"account": "bt-a", "amount": "-5000"}, {"account": "bt-b", "amount": 5000}]},
  {"legs": [{"account": "bt-a", "amount": "-1"}, {"account": "bt-e", "amount": 1}]},
  {"legs": []},
  {"legs": [{"account": "bt-a", "amount": "-1"}, {"account": "bt-b", "amount": 1}], "other": 1},
  7,
  {"legs": [{"account": "bt-c", "amount": "-1"}, {"account": "bt-b", "amount": 1}], "idempotency_key": "bp-1", "metadata": {"k": "v"}},
  {"legs": [{"account": "bt-c", "amount": "-1"}, {"account": "bt-b", "amount": 1}], "idempotency_key": "bp-1", "metadata": {"k": "v"}},
  {"legs": [{"account": "bt-c", "amount": "-1"}, {"account": "bt-b", "amount": 1}], "idempotency_key": 5},
  {"legs": [{"account": "bt-c", "amount": "-1"}, {"account": "bt-b", "amount": 1}], "metadata": "x"},
  {"idempotency_key": "bp-2"}
]$$) ORDER BY item;
SELECT count(DISTINCT id) AS bp_1_once FROM ledger.transaction WHERE idempotency_key = 'bp-1';
SELECT try($$SELECT * FROM ledger.post_batch('{"legs": []}')$$);
SELECT try($$SELECT * FROM ledger.post_batch('[]')$$);
SELECT try($$SELECT * FROM ledger.post_batch(NULL)$$);
SELECT try($$SELECT * FROM ledger.post_batch('[{"legs": [{"account": "bt-a", "amount": "-1"}, {"account": "bt-b", "amount": 1}]}, 3]', atomic => true)$$);
SELECT ledger.balance('bt-a') AS a, ledger.balance('bt-b') AS b, ledger.balance('bt-c') AS c;
SELECT count(*) AS clean FROM ledger.reconcile(repair => false);

-- a posting reached from a trigger while a batch item or its flush writes
-- would bypass the running balances: refused, failing the call (a single
-- call still nests); an LD error raised by a trigger once an item writes
-- is not that item's refusal either: it fails the call, nothing written
CREATE FUNCTION public.nest() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.metadata ? 'nest' THEN
        PERFORM ledger.transfer('bt-a', 'bt-b', 1);
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER nest AFTER INSERT ON ledger.transaction FOR EACH ROW EXECUTE FUNCTION public.nest();
SELECT count(*) AS transactions_before FROM ledger.transaction \gset
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY['bt-a'], ARRAY['bt-b'], ARRAY[1],
                                                 metadata => ARRAY['{"nest": 1}']::jsonb[])$$);
SELECT count(*) - :transactions_before AS written FROM ledger.transaction;
SELECT ledger.transfer('bt-a', 'bt-b', 1, metadata => '{"nest": 1}') IS NOT NULL AS single_nests;
SELECT count(*) - :transactions_before AS written FROM ledger.transaction;
DROP TRIGGER nest ON ledger.transaction;
CREATE FUNCTION public.refuse_777() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF abs(NEW.amount) = 7.77 THEN
        RAISE EXCEPTION 'no 7.77' USING ERRCODE = 'LD001';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER refuse_777 BEFORE INSERT ON ledger.journal_entry FOR EACH ROW EXECUTE FUNCTION public.refuse_777();
SELECT count(*) AS transactions_before FROM ledger.transaction \gset
SELECT try($$SELECT * FROM ledger.transfer_batch(ARRAY['bt-a', 'bt-a'], ARRAY['bt-b', 'bt-b'], ARRAY[1, 7.77])$$);
SELECT count(*) - :transactions_before AS written FROM ledger.transaction;
DROP TRIGGER refuse_777 ON ledger.journal_entry;
DROP FUNCTION public.nest(), public.refuse_777();

-- each refused item's structured facts, in the facts column (0.12.0)
SELECT item, result, facts FROM ledger.transfer_batch(
    ARRAY['bt-a', 'bt-nope', 'bt-a', 'bt-a'], ARRAY['bt-b', 'bt-b', 'bt-e', 'bt-b'],
    ARRAY[100000, 1, 1, 0.001]) ORDER BY item;
SELECT item, result, facts FROM ledger.post_batch('[
  {"legs": [{"account": "bt-a", "amount": "-1"}, {"account": "bt-b", "amount": "2"}]},
  {"legs": [{"account": "bt-a", "amount": "-1"}, {"account": "bt-b", "amount": "1"}]}]') ORDER BY item;
