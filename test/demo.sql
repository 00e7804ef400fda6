-- The ledger demo: accounts, transfers, a refused overdraft, an idempotent
-- retry, a multi-leg posting and the journal.
\set VERBOSITY verbose
CREATE EXTENSION ledger;
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('world', 'USD', min_balance => NULL);   -- unbounded source of funds
SELECT ledger.create_account('alice', 'USD', owner_id => 'user-1');
SELECT ledger.create_account('bob',   'USD', owner_id => 'user-2');
SELECT ledger.create_account('fees',  'USD');

-- fund alice, then pay bob
SELECT ledger.transfer('world', 'alice', 100.00, idempotency_key => 'deposit-1') AS deposit \gset
SELECT ledger.transfer('alice', 'bob', 30.00, metadata => '{"memo": "dinner"}');

-- an overdraft is refused inside the database: no row is written
SELECT ledger.transfer('alice', 'bob', 500.00);

-- a retried request with the same idempotency key returns the original id and writes nothing
SELECT ledger.transfer('world', 'alice', 100.00, idempotency_key => 'deposit-1') = :'deposit' AS same_transaction;
-- the same key with a different request is a conflict
SELECT ledger.transfer('world', 'alice', 999.00, idempotency_key => 'deposit-1');

-- a multi-leg posting: bob pays alice 10.00 and a 0.50 fee
SELECT ledger.post('[{"account": "bob",   "amount": "-10.50"},
                     {"account": "alice", "amount": "10.00"},
                     {"account": "fees",  "amount": "0.50"}]');

SELECT code, balance, min_balance, available FROM ledger.account_overview ORDER BY code;
SELECT account, amount, kind, idempotency_key FROM ledger.journal ORDER BY id;
SELECT a.code, d.day = current_date AS today, d.debits, d.credits, d.balance
  FROM ledger.daily_balance d JOIN ledger.account a ON a.id = d.account_id ORDER BY a.code;

-- history cannot be rewritten, not even by a superuser
UPDATE ledger.journal_entry SET amount = 1000 WHERE id = 1;
DELETE FROM ledger.journal_entry;
