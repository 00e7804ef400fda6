-- idempotency: one key, one transaction; replays return the original id
SELECT ledger.create_account('i-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('i-a', 'USD') > 0 AS ok;
SELECT ledger.create_account('i-b', 'USD') > 0 AS ok;

SELECT ledger.transfer('i-world', 'i-a', 50, idempotency_key => 'dep-1',
                       metadata => '{"src": "bank", "ref": 1}') AS first \gset
SELECT count(*) AS entries FROM ledger.journal_entry j
  JOIN ledger.transaction t ON t.id = j.transaction_id WHERE t.idempotency_key = 'dep-1';
-- same request, even written differently (50.00 for 50, keys reordered)
SELECT ledger.transfer('i-world', 'i-a', 50.00, idempotency_key => 'dep-1',
                       metadata => '{"ref": 1, "src": "bank"}') = :'first' AS same_id;
SELECT ledger.transfer('i-world', 'i-a', 50, 'dep-1', '{"src": "bank", "ref": 1}') = :'first' AS same_id;
SELECT count(*) AS still_one FROM ledger.transaction WHERE idempotency_key = 'dep-1';
SELECT count(*) AS still_two FROM ledger.journal_entry WHERE transaction_id = :'first';
SELECT ledger.balance('i-a') AS a;

-- same key, different request: LD007 naming the original
SELECT replace(try($$SELECT ledger.transfer('i-world', 'i-a', 51, idempotency_key => 'dep-1',
                       metadata => '{"src": "bank", "ref": 1}')$$), :'first', '<first>');
SELECT replace(try($$SELECT ledger.transfer('i-world', 'i-b', 50, idempotency_key => 'dep-1',
                       metadata => '{"src": "bank", "ref": 1}')$$), :'first', '<first>');
SELECT replace(try($$SELECT ledger.transfer('i-world', 'i-a', 50, idempotency_key => 'dep-1')$$), :'first', '<first>');
-- a post with the same legs is a different kind of request
SELECT replace(try($$SELECT ledger.post('[{"account": "i-world", "amount": -50}, {"account": "i-a", "amount": 50}]',
                       idempotency_key => 'dep-1', metadata => '{"src": "bank", "ref": 1}')$$), :'first', '<first>');

-- post: leg order does not matter
SELECT ledger.post('[{"account": "i-a", "amount": "-3"}, {"account": "i-b", "amount": "3"}]',
                   idempotency_key => 'post-1') AS p1 \gset
SELECT ledger.post('[{"account": "i-b", "amount": "3.0"}, {"account": "i-a", "amount": -3}]',
                   idempotency_key => 'post-1') = :'p1' AS same_id;

-- a call that fails does not burn its key
SELECT try($$SELECT ledger.transfer('i-b', 'i-a', 1000, idempotency_key => 'pay-1')$$);
SELECT count(*) AS no_row FROM ledger.transaction WHERE idempotency_key = 'pay-1';
SELECT ledger.transfer('i-b', 'i-a', 1, idempotency_key => 'pay-1') IS NOT NULL AS retried;
SELECT count(*) AS one_row FROM ledger.transaction WHERE idempotency_key = 'pay-1';

-- a replay inside the original transaction returns the same id too
BEGIN;
SELECT ledger.transfer('i-a', 'i-b', 2, idempotency_key => 'in-tx') AS t1 \gset
SELECT ledger.transfer('i-a', 'i-b', 2, idempotency_key => 'in-tx') = :'t1' AS same_id;
COMMIT;
SELECT count(*) AS entries FROM ledger.journal_entry WHERE transaction_id = :'t1';

-- calls without a key: every call is a new transaction
SELECT count(DISTINCT id) AS distinct_ids
  FROM (SELECT ledger.transfer('i-a', 'i-b', 1) AS id FROM generate_series(1, 3)) s;
SELECT ledger.balance('i-a') AS a, ledger.balance('i-b') AS b;
