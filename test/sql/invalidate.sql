-- invalidate: a whole transaction, with balance and daily rebuilds
SELECT ledger.create_account('v-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('v-a', 'USD') > 0 AS ok;
SELECT ledger.create_account('v-b', 'USD') > 0 AS ok;
SELECT ledger.transfer('v-world', 'v-a', 100) AS fund \gset
SELECT ledger.transfer('v-a', 'v-b', 30) AS pay \gset
SELECT ledger.transfer('v-a', 'v-b', 10) AS pay2 \gset

SELECT * FROM ledger.invalidate(:'pay', 'duplicate charge') ORDER BY account;
SELECT ledger.balance('v-a') AS a, ledger.balance('v-b') AS b;
SELECT is_invalidated, invalidated_at IS NOT NULL AS stamped, invalidated_by = session_user AS by_me,
       invalidation_reason
  FROM ledger.transaction WHERE id = :'pay';
SELECT count(*) FILTER (WHERE is_invalidated) AS invalidated, count(*) AS entries
  FROM ledger.journal_entry WHERE transaction_id = :'pay';
SELECT a.code, d.debits, d.credits, d.balance FROM ledger.daily_balance d
  JOIN ledger.account a ON a.id = d.account_id WHERE a.code IN ('v-a', 'v-b') ORDER BY a.code;

-- twice, unknown, bad arguments
SELECT replace(try(format('SELECT * FROM ledger.invalidate(%L, %L)', :'pay', 'again')), :'pay', '<pay>')
       ~ '^LD014: transaction <pay> is already invalidated / It was invalidated at .* by .*: duplicate charge\.$' AS twice;
SELECT try($$SELECT * FROM ledger.invalidate('00000000-0000-7000-8000-000000000000', 'x')$$);
SELECT try($$SELECT * FROM ledger.invalidate(NULL, 'x')$$);
SELECT try(format('SELECT * FROM ledger.invalidate(%L, NULL)', :'pay2'));
SELECT try(format('SELECT * FROM ledger.invalidate(%L, %L)', :'pay2', ''));
SELECT try(format('SELECT * FROM ledger.invalidate(%L, %L, NULL)', :'pay2', 'x'));
SELECT is_invalidated AS pay2_untouched FROM ledger.transaction WHERE id = :'pay2';

-- an invalidation that would take an account below its floor is refused ...
SELECT ledger.create_account('v-c', 'USD') > 0 AS ok;
SELECT ledger.create_account('v-d', 'USD') > 0 AS ok;
SELECT ledger.transfer('v-world', 'v-c', 50) AS deposit \gset
SELECT ledger.transfer('v-c', 'v-d', 40) IS NOT NULL AS spent;
SELECT replace(try(format('SELECT * FROM ledger.invalidate(%L, %L)', :'deposit', 'chargeback')), :'deposit', '<deposit>');
SELECT ledger.balance('v-c') AS c_unchanged,
       (SELECT is_invalidated FROM ledger.transaction WHERE id = :'deposit') AS still_valid;
-- ... unless forced, which raises a critical alert naming account and owner
SELECT count(*) AS alerts_before FROM ledger.alert \gset
SELECT * FROM ledger.invalidate(:'deposit', 'chargeback', force => true) ORDER BY account;
SELECT severity, kind, account, details->>'shortfall' AS shortfall, details->>'reason' AS reason,
       details->>'transaction_id' = :'deposit' AS names_transaction
  FROM ledger.alert ORDER BY id DESC LIMIT 1;
SELECT count(*) - :alerts_before AS new_alerts FROM ledger.alert;

-- token transactions of an invalidated transaction are invalidated with it
SELECT ledger.transfer('v-world', 'v-a', 7) AS tokentx \gset
INSERT INTO ledger.token_transaction (transaction_id, account_id, token, token_amount, rate,
                                      quote_asset, quote_amount, rate_observed_at)
SELECT :'tokentx', id, 'GOLD', 7, 1, 'USD', 7, now() FROM ledger.account WHERE code = 'v-a';
SELECT * FROM ledger.invalidate(:'tokentx', 'exchange reversed') ORDER BY account;
SELECT is_invalidated, invalidated_at IS NOT NULL AS stamped
  FROM ledger.token_transaction WHERE transaction_id = :'tokentx';

-- history over several days: invalidating an old transaction fixes that day
-- and every later day.  Postings carry the current time, so older history
-- is written directly (inserts are allowed) and the caches rebuilt.
SELECT ledger.create_account('h-a', 'USD') AS ha, ledger.create_account('h-src', 'USD', NULL) AS hsrc \gset
INSERT INTO ledger.transaction (id, kind, created_at) VALUES
    ('00000000-0000-7000-8000-000000000001', 'transfer', now() - interval '3 days'),
    ('00000000-0000-7000-8000-000000000002', 'transfer', now() - interval '2 days'),
    ('00000000-0000-7000-8000-000000000003', 'transfer', now() - interval '1 day');
INSERT INTO ledger.journal_entry (transaction_id, account_id, amount, created_at)
SELECT ('00000000-0000-7000-8000-00000000000' || n)::uuid, acct, amt, now() - (4 - n) * interval '1 day'
  FROM (VALUES (1, :ha, 100.00), (1, :hsrc, -100.00),
               (2, :ha, 20.00),  (2, :hsrc, -20.00),
               (3, :ha, 3.00),   (3, :hsrc, -3.00)) v(n, acct, amt);
SELECT ledger.rebuild_balances('h-a') AS changed_a, ledger.rebuild_balances('h-src') AS changed_src;
SELECT ledger.transfer('h-a', 'h-src', 1) IS NOT NULL AS today;
SELECT ((now() AT TIME ZONE 'UTC')::date - day) AS days_ago, debits, credits, balance
  FROM ledger.daily_balance WHERE account_id = :ha ORDER BY day;
SELECT * FROM ledger.invalidate('00000000-0000-7000-8000-000000000002', 'wrong amount') ORDER BY account;
SELECT ((now() AT TIME ZONE 'UTC')::date - day) AS days_ago, debits, credits, balance
  FROM ledger.daily_balance WHERE account_id = :ha ORDER BY day;
SELECT ledger.balance('h-a') AS a;

-- rebuild_balances
SELECT ledger.rebuild_balances() AS nothing_to_change;
UPDATE ledger.account_balance SET balance = 0 WHERE account_id = :ha;
SELECT ledger.rebuild_balances('h-a') AS one_row_fixed;
SELECT ledger.balance('h-a') AS a;
SELECT try($$SELECT ledger.rebuild_balances('nobody')$$);

-- balances equal the journal after all of this
SELECT count(*) AS drift FROM ledger.expected_balance e
  JOIN ledger.account_balance b USING (account_id) WHERE e.balance <> b.balance;
