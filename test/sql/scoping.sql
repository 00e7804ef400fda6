-- scoping: managers see only their people (two managers, three owners:
-- each sees exactly its owners' rows in every view and table it may
-- read), idempotency keys per owner, and rate limits per role (LD041).
SET client_min_messages = warning;
DROP ROLE IF EXISTS sc_mgr_a, sc_mgr_b, sc_app, sc_app2;
RESET client_min_messages;
CREATE ROLE sc_mgr_a NOLOGIN IN ROLE ledger_manager;
CREATE ROLE sc_mgr_b NOLOGIN IN ROLE ledger_manager;
CREATE ROLE sc_app NOLOGIN IN ROLE ledger_writer;
CREATE ROLE sc_app2 NOLOGIN IN ROLE ledger_writer;

SELECT ledger.create_asset('SCP', 2);
SELECT ledger.create_account('sc-world', 'SCP', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('sc-o1', 'SCP', owner_id => 'o1') > 0 AS ok;
SELECT ledger.create_account('sc-o1-savings', 'SCP', owner_id => 'o1') > 0 AS ok;
SELECT ledger.create_account('sc-o2', 'SCP', owner_id => 'o2') > 0 AS ok;
SELECT ledger.create_account('sc-o3', 'SCP', owner_id => 'o3') > 0 AS ok;
SELECT count(*) AS funded FROM (
  SELECT ledger.transfer('sc-world', c, 100) FROM unnest(ARRAY['sc-o1', 'sc-o2', 'sc-o3']) c) t;
SELECT ledger.transfer('sc-o1', 'sc-o1-savings', 10) IS NOT NULL AS own_move;
SELECT ledger.transfer('sc-o1', 'sc-o3', 7) IS NOT NULL AS o1_pays_o3;
SELECT ledger.hold('sc-o1', 5, 'sc-world') IS NOT NULL AS o1_holds;
SELECT ledger.hold('sc-o2', 6, 'sc-world') IS NOT NULL AS o2_holds;
SELECT ledger.void(id, 'scoping test') IS NOT NULL AS o2_voids
  FROM ledger.hold WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'sc-o2');
INSERT INTO ledger.alert (severity, kind, account_id, account, owner_id)
SELECT 'warning', 'scoping_test', id, code, owner_id FROM ledger.account WHERE code LIKE 'sc-o_';

-- grants: manager a has owners o1 and o2, manager b has o3
SELECT ledger.grant_owner_access('sc_mgr_a', 'o1') AS granted,
       ledger.grant_owner_access('sc_mgr_a', 'o2') AS granted,
       ledger.grant_owner_access('sc_mgr_b', 'o3') AS granted,
       ledger.grant_owner_access('sc_mgr_b', 'o3') AS again;

-- what a role sees: per view or table, the account codes of its rows
CREATE FUNCTION pg_temp.seen() RETURNS TABLE (source text, accounts text)
LANGUAGE sql AS $$
  SELECT 'account', string_agg(DISTINCT code, ' ' ORDER BY code) FROM ledger.account WHERE code LIKE 'sc-%'
  UNION ALL
  SELECT 'account_overview', string_agg(DISTINCT code, ' ' ORDER BY code) FROM ledger.account_overview WHERE code LIKE 'sc-%'
  UNION ALL
  SELECT 'account_balance', string_agg(DISTINCT a.code, ' ' ORDER BY a.code)
    FROM ledger.account_balance b JOIN ledger.account a ON a.id = b.account_id WHERE a.code LIKE 'sc-%'
  UNION ALL
  SELECT 'account_balance rows', count(*)::text FROM ledger.account_balance b
   WHERE b.account_id IN (SELECT id FROM ledger.account WHERE code LIKE 'sc-%')
      OR NOT EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = b.account_id)
  UNION ALL
  SELECT 'effective_balance', string_agg(DISTINCT a.code, ' ' ORDER BY a.code)
    FROM ledger.effective_balance e JOIN ledger.account a ON a.id = e.account_id WHERE a.code LIKE 'sc-%'
  UNION ALL
  SELECT 'journal', string_agg(DISTINCT account, ' ' ORDER BY account) FROM ledger.journal WHERE account LIKE 'sc-%'
  UNION ALL
  SELECT 'journal_entry rows of others', (count(*) > 0)::text FROM ledger.journal_entry j
   WHERE NOT EXISTS (SELECT 1 FROM ledger.account a WHERE a.id = j.account_id AND a.code LIKE 'sc-o%')
  UNION ALL
  SELECT 'transaction rows', count(*)::text FROM ledger.transaction t
   WHERE t.id IN (SELECT transaction_id FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
                   WHERE a.code LIKE 'sc-%')
  UNION ALL
  SELECT 'daily_balance', string_agg(DISTINCT a.code, ' ' ORDER BY a.code)
    FROM ledger.daily_balance d JOIN ledger.account a ON a.id = d.account_id WHERE a.code LIKE 'sc-%'
  UNION ALL
  SELECT 'effective_daily_balance', string_agg(DISTINCT a.code, ' ' ORDER BY a.code)
    FROM ledger.effective_daily_balance d JOIN ledger.account a ON a.id = d.account_id WHERE a.code LIKE 'sc-%'
  UNION ALL
  SELECT 'holds', string_agg(DISTINCT account, ' ' ORDER BY account) FROM ledger.holds WHERE account LIKE 'sc-%'
  UNION ALL
  SELECT 'hold_timeline', string_agg(DISTINCT account || ':' || event, ' ' ORDER BY account || ':' || event)
    FROM ledger.hold_timeline WHERE account LIKE 'sc-%'
  UNION ALL
  SELECT 'held_balance', string_agg(DISTINCT a.code, ' ' ORDER BY a.code)
    FROM ledger.held_balance h JOIN ledger.account a ON a.id = h.account_id WHERE a.code LIKE 'sc-%'
  UNION ALL
  SELECT 'alert', string_agg(DISTINCT account, ' ' ORDER BY account) FROM ledger.alert WHERE kind = 'scoping_test'
  UNION ALL
  SELECT 'owner_access', string_agg(role_name || '=' || owner_id, ' ' ORDER BY role_name, owner_id)
    FROM ledger.owner_access WHERE role_name LIKE 'sc\_%'
$$;
GRANT EXECUTE ON FUNCTION pg_temp.seen() TO PUBLIC;

-- the superuser and an auditor see everyone
SELECT * FROM pg_temp.seen();
SET ROLE ledger_auditor;
SELECT * FROM pg_temp.seen() WHERE source IN ('account', 'journal', 'holds', 'alert');
RESET ROLE;
-- manager a: o1 and o2 only (o1's payment to o3 shows its own leg only);
-- rows of others are not there at all, with no error
SET ROLE sc_mgr_a;
SELECT * FROM pg_temp.seen();
RESET ROLE;
-- manager b: o3 only
SET ROLE sc_mgr_b;
SELECT * FROM pg_temp.seen();
SELECT ledger.owner_scoped() AS scoped, array_agg(o) AS owners FROM ledger.visible_owners() o;
-- a manager reads nothing else, writes nothing, grants nothing
SELECT try($$SELECT count(*) FROM ledger.event$$);
SELECT try($$SELECT ledger.balance('sc-o1')$$);
SELECT try($$UPDATE ledger.account SET min_balance = -5 WHERE code = 'sc-o3'$$);
SELECT try($$SELECT ledger.grant_owner_access('sc_mgr_b', 'o1')$$);
RESET ROLE;

-- a member of a manager role inherits its owners; a revoke takes effect at once
CREATE ROLE sc_mgr_a_member NOLOGIN IN ROLE sc_mgr_a;
SET ROLE sc_mgr_a_member;
SELECT source, accounts FROM pg_temp.seen() WHERE source IN ('account', 'journal');
RESET ROLE;
SELECT ledger.revoke_owner_access('sc_mgr_a', 'o2') AS revoked,
       ledger.revoke_owner_access('sc_mgr_a', 'o2') AS again;
SET ROLE sc_mgr_a;
SELECT source, accounts FROM pg_temp.seen() WHERE source IN ('account', 'journal', 'holds');
RESET ROLE;
-- a manager that is also an auditor reads everything, as an auditor does
GRANT ledger_auditor TO sc_mgr_b;
SET ROLE sc_mgr_b;
SELECT ledger.owner_scoped() AS scoped;
SELECT source, accounts FROM pg_temp.seen() WHERE source = 'account';
RESET ROLE;
REVOKE ledger_auditor FROM sc_mgr_b;

-- bad input to the grants: LD011, nothing written
SELECT try($$SELECT ledger.grant_owner_access(NULL, 'o1')$$);
SELECT try($$SELECT ledger.grant_owner_access('sc_mgr_a', NULL)$$);
SELECT try($$SELECT ledger.grant_owner_access('no_such_role', 'o1')$$);
SELECT try($$SELECT ledger.grant_owner_access('sc_mgr_a', '')$$);
SELECT try($$SELECT ledger.grant_owner_access('sc_mgr_a', repeat('x', 256))$$);
SELECT try($$SELECT ledger.revoke_owner_access(NULL, 'o1')$$);
SELECT count(*) AS grants FROM ledger.owner_access WHERE role_name LIKE 'sc\_%';

-- idempotency keys per owner: the same key by two owners is two keys; a
-- replay returns the first result; a conflict names the same owner's
-- transaction only
SELECT ledger.transfer('sc-o1', 'sc-world', 1, 'sc-key') AS o1_first \gset
SELECT ledger.transfer('sc-o2', 'sc-world', 1, 'sc-key') AS o2_first \gset
SELECT :'o1_first' <> :'o2_first' AS two_transactions,
       ledger.transfer('sc-o1', 'sc-world', 1, 'sc-key') = :'o1_first' AS o1_replay,
       ledger.transfer('sc-o2', 'sc-world', 1, 'sc-key') = :'o2_first' AS o2_replay;
SELECT replace(try($$SELECT ledger.transfer('sc-o1', 'sc-world', 2, 'sc-key')$$), :'o1_first', '<o1''s>') AS try;
SELECT idempotency_scope, count(*) FROM ledger.transaction WHERE idempotency_key = 'sc-key'
 GROUP BY 1 ORDER BY 1;
-- with an acting owner, a tenant cannot reach another owner's key space
BEGIN;
SET LOCAL ledger.acting_owner = 'o3';
SELECT ledger.transfer('sc-o3', 'sc-world', 1, 'sc-key') NOT IN (:'o1_first', :'o2_first') AS o3_own_key;
ROLLBACK;
-- post: the scope is the first debited account's owner; holds and voids too
SELECT ledger.post('[{"account": "sc-world", "amount": "2"}, {"account": "sc-o2", "amount": "-2"}]', 'sc-post') AS o2_post \gset
SELECT ledger.post('[{"account": "sc-world", "amount": "2"}, {"account": "sc-o3", "amount": "-2"}]', 'sc-post') <> :'o2_post' AS o3_post_own_key;
-- a post debiting two owners: a retry listing the legs in another order is
-- the same request, in the same key space (the debited account with the
-- smallest code), and returns the first transaction
SELECT ledger.post('[{"account": "sc-o2", "amount": "-1"}, {"account": "sc-o1", "amount": "-1"}, {"account": "sc-world", "amount": "2"}]', 'sc-two') AS two \gset
SELECT ledger.post('[{"account": "sc-world", "amount": "2"}, {"account": "sc-o1", "amount": "-1"}, {"account": "sc-o2", "amount": "-1"}]', 'sc-two') = :'two' AS reordered_replay,
       (SELECT idempotency_scope FROM ledger.transaction WHERE id = :'two') AS scope;
SELECT ledger.hold('sc-o1', 1, 'sc-world', idempotency_key => 'sc-hold') AS h1 \gset
SELECT ledger.hold('sc-o2', 1, 'sc-world', idempotency_key => 'sc-hold') <> :'h1' AS o2_hold_own_key;
SELECT ledger.void(:'h1', 'test', 'sc-void') AS released,
       ledger.void(:'h1', 'test', 'sc-void') AS replayed;
SELECT idempotency_scope, count(*) FROM ledger.hold WHERE idempotency_key = 'sc-hold' GROUP BY 1 ORDER BY 1;

-- rate limits: a burst over the limit gets LD041 with when to retry; a
-- role without a limit never does; the limit is per role, in force from
-- the commit, and a removal lifts it
SELECT try($$SELECT ledger.set_rate_limit(NULL, 1, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', NULL, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 0, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', -1, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 'NaN', 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 'Infinity', 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 0.0009, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 1e-400, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 1000001, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 1, 0)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 1, 1000001)$$);
SELECT try($$SELECT ledger.set_rate_limit('no_such_role', 1, 1)$$);
SELECT try($$SELECT ledger.set_rate_limit('sc_app', 1, 1, NULL)$$);
-- 0.001 per second: no token comes back during this test
SELECT ledger.set_rate_limit('sc_app', 0.001, 3);
SET ROLE sc_app;
SELECT count(ledger.transfer('sc-o1', 'sc-o2', 0.01)) AS within_burst FROM generate_series(1, 3);
SELECT regexp_replace(try($$SELECT ledger.transfer('sc-o1', 'sc-o2', 0.01)$$), 'after [0-9]+ ms', 'after N ms') AS try;
SELECT regexp_replace(try($$SELECT ledger.hold('sc-o1', 0.01, 'sc-o2')$$), 'after [0-9]+ ms', 'after N ms') AS try;
RESET ROLE;
SET ROLE sc_app2;
SELECT count(ledger.transfer('sc-o1', 'sc-o2', 0.01)) AS unlimited_role FROM generate_series(1, 5);
RESET ROLE;
SELECT role, per_second, burst, per_owner, calls, refused FROM ledger.rate_limits;
-- per acting owner: each owner its own bucket of the role's size
SELECT ledger.set_rate_limit('sc_app', 0.001, 2, per_owner => true);
SET ROLE sc_app;
BEGIN;
SET LOCAL ledger.acting_owner = 'o1';
SELECT count(ledger.transfer('sc-o1', 'sc-o2', 0.01)) AS o1_burst FROM generate_series(1, 2);
SELECT regexp_replace(try($$SELECT ledger.transfer('sc-o1', 'sc-o2', 0.01)$$), 'after [0-9]+ ms', 'after N ms') AS try;
SET LOCAL ledger.acting_owner = 'o2';
SELECT count(ledger.transfer('sc-o2', 'sc-o1', 0.01)) AS o2_burst FROM generate_series(1, 2);
COMMIT;
-- the writer cannot lift its own limit
SELECT try($$SELECT ledger.remove_rate_limit('sc_app')$$);
RESET ROLE;
SELECT ledger.remove_rate_limit('sc_app') AS removed,
       ledger.remove_rate_limit('sc_app') AS again;
SET ROLE sc_app;
SELECT count(ledger.transfer('sc-o1', 'sc-o2', 0.01)) AS lifted FROM generate_series(1, 5);
RESET ROLE;
SELECT count(*) AS limits FROM ledger.rate_limits;

SELECT count(*) AS clean FROM ledger.reconcile();
SELECT ledger.revoke_owner_access('sc_mgr_a', 'o1') AND ledger.revoke_owner_access('sc_mgr_b', 'o3') AS revoked;
DROP OWNED BY sc_mgr_a, sc_mgr_b, sc_mgr_a_member, sc_app, sc_app2;
DROP ROLE sc_mgr_a_member, sc_mgr_a, sc_mgr_b, sc_app, sc_app2;
