-- The ledger demo: accounts, transfers, a refused overdraft, an idempotent
-- retry, a multi-leg posting, the journal, a correction, reconciliation
-- and a hot account.
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

-- a wrong posting is corrected by invalidating it: balances are rebuilt.
-- Not the dinner: bob already spent that money, so it is refused (LD015) ...
SELECT * FROM ledger.invalidate(
    (SELECT transaction_id FROM ledger.journal WHERE metadata ? 'memo' LIMIT 1),
    reason => 'charged twice');
-- ... but the multi-leg payment can be undone
SELECT * FROM ledger.invalidate(
    (SELECT transaction_id FROM ledger.journal WHERE kind = 'post' LIMIT 1),
    reason => 'paid by mistake');
-- reconciliation checks every cached balance against the journal
UPDATE ledger.account_balance SET balance = balance + 1
 WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'bob');
SELECT account, kind, expected, actual, repaired FROM ledger.reconcile();
SELECT severity, kind, account FROM ledger.alert ORDER BY id;

-- a hot account: postings to it append, the fold worker folds them
SELECT ledger.set_account_mode('fees', 'hot');
SELECT ledger.transfer('alice', 'fees', 0.25) IS NOT NULL AS posted FROM generate_series(1, 5);
SELECT account, committed, reserved, unfolded_entries, worker_state FROM ledger.hot_account_stats;
SELECT pg_sleep(0.5);
SELECT code, mode, balance FROM ledger.account_overview ORDER BY code;
SELECT account, unfolded_entries, aggregation_ratio FROM ledger.hot_account_stats WHERE account = 'fees';
