-- guard: journal, transactions and token transactions are append-only,
-- for superusers too and under session_replication_role = replica
SELECT ledger.create_account('g-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('g-a', 'USD') > 0 AS ok;
SELECT ledger.transfer('g-world', 'g-a', 10, idempotency_key => 'guard-1') AS tx \gset
SELECT min(id) AS je FROM ledger.journal_entry WHERE transaction_id = :'tx' \gset
SELECT current_setting('is_superuser') AS superuser;

-- journal_entry
SELECT replace(try(format('UPDATE ledger.journal_entry SET amount = 1000 WHERE id = %s', :je)), :'je', '<je>');
SELECT replace(try(format('UPDATE ledger.journal_entry SET account_id = account_id + 1 WHERE id = %s', :je)), :'je', '<je>');
SELECT replace(try(format('UPDATE ledger.journal_entry SET created_at = now() - interval ''1 day'' WHERE id = %s', :je)), :'je', '<je>');
SELECT replace(try(format('UPDATE ledger.journal_entry SET invalidated_at = now() WHERE id = %s', :je)), :'je', '<je>');
SELECT replace(try(format('DELETE FROM ledger.journal_entry WHERE id = %s', :je)), :'je', '<je>');
SELECT try('TRUNCATE ledger.journal_entry');
SELECT try('TRUNCATE ledger.journal_entry, ledger.transaction CASCADE');
-- a no-op update changes nothing and is allowed
SELECT try(format('UPDATE ledger.journal_entry SET amount = amount WHERE id = %s', :je));
-- is_invalidated may go false -> true (with invalidated_at), never back
BEGIN;
UPDATE ledger.journal_entry SET is_invalidated = true, invalidated_at = now() WHERE id = :je;
SELECT is_invalidated FROM ledger.journal_entry WHERE id = :je;
SELECT replace(try(format('UPDATE ledger.journal_entry SET is_invalidated = false WHERE id = %s', :je)), :'je', '<je>');
SELECT replace(try(format('UPDATE ledger.journal_entry SET invalidated_at = now() + interval ''1 hour'' WHERE id = %s', :je)), :'je', '<je>');
ROLLBACK;
SELECT replace(try(format('UPDATE ledger.journal_entry SET is_invalidated = NULL WHERE id = %s', :je)), :'je', '<je>');

-- transaction
SELECT replace(try(format('UPDATE ledger.transaction SET kind = %L WHERE id = %L', 'post', :'tx')), :'tx', '<tx>');
SELECT replace(try(format('UPDATE ledger.transaction SET metadata = %L WHERE id = %L', '{"x": 1}', :'tx')), :'tx', '<tx>');
SELECT replace(try(format('UPDATE ledger.transaction SET idempotency_key = NULL WHERE id = %L', :'tx')), :'tx', '<tx>');
SELECT replace(try(format('UPDATE ledger.transaction SET invalidation_reason = %L WHERE id = %L', 'why', :'tx')), :'tx', '<tx>');
SELECT replace(try(format('DELETE FROM ledger.transaction WHERE id = %L', :'tx')), :'tx', '<tx>');
SELECT try('TRUNCATE ledger.transaction');
BEGIN;
UPDATE ledger.transaction SET is_invalidated = true, invalidated_at = now(),
       invalidated_by = current_user, invalidation_reason = 'test' WHERE id = :'tx';
SELECT is_invalidated, invalidation_reason FROM ledger.transaction WHERE id = :'tx';
ROLLBACK;

-- token_transaction
INSERT INTO ledger.token_transaction (transaction_id, account_id, token, token_amount, rate,
                                      quote_asset, quote_amount, rate_observed_at)
SELECT :'tx', id, 'GOLD', 2, 5, 'USD', 10, now() FROM ledger.account WHERE code = 'g-a'
RETURNING id AS tt \gset
SELECT replace(try(format('UPDATE ledger.token_transaction SET rate = 6 WHERE id = %s', :tt)), :'tt', '<tt>');
SELECT replace(try(format('DELETE FROM ledger.token_transaction WHERE id = %s', :tt)), :'tt', '<tt>');
SELECT try('TRUNCATE ledger.token_transaction');

-- replica mode does not switch the guard off
SET session_replication_role = replica;
SELECT replace(try(format('UPDATE ledger.journal_entry SET amount = 1000 WHERE id = %s', :je)), :'je', '<je>');
SELECT replace(try(format('DELETE FROM ledger.journal_entry WHERE id = %s', :je)), :'je', '<je>');
SELECT try('TRUNCATE ledger.journal_entry');
SELECT replace(try(format('DELETE FROM ledger.transaction WHERE id = %L', :'tx')), :'tx', '<tx>');
SELECT replace(try(format('UPDATE ledger.token_transaction SET rate = 6 WHERE id = %s', :tt)), :'tt', '<tt>');
RESET session_replication_role;

-- and everything is still there
SELECT count(*) AS entries, sum(amount) AS net, bool_or(is_invalidated) AS any_invalidated
  FROM ledger.journal_entry WHERE transaction_id = :'tx';
SELECT ledger.balance('g-a') AS a;

-- the trigger functions refuse to run outside a trigger (39P01, as
-- PostgreSQL's own), and PUBLIC may not call account_changed at all
SELECT try('SELECT ledger.guard_append_only()');
SELECT try('SELECT ledger.account_changed()');
SELECT has_function_privilege('public', 'ledger.account_changed()', 'EXECUTE') AS public_may_call;
