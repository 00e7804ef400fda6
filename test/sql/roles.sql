-- roles: the role set and its whole matrix (every function and every
-- table and view of schema ledger against each role), refusals with
-- 42501 when a role calls what it was not given, nothing but version()
-- and new_id() reachable by PUBLIC, and debits only by the acting owner.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'ledger\_%' ORDER BY rolname;

-- functions: x = EXECUTE, in the order writer operator manager auditor monitor public
SELECT p.proname,
       string_agg(CASE WHEN has_function_privilege(r, p.oid, 'EXECUTE') THEN 'x' ELSE '-' END, ''
                  ORDER BY o) AS "W O M A N P"
  FROM pg_proc p
 CROSS JOIN unnest(ARRAY['ledger_writer', 'ledger_operator', 'ledger_manager', 'ledger_auditor',
                         'ledger_monitor', 'public']) WITH ORDINALITY AS x (r, o)
 WHERE p.pronamespace = 'ledger'::regnamespace
 GROUP BY p.oid, p.proname ORDER BY p.proname, p.oid::regprocedure::text;

-- tables and views: s = SELECT, w = any of INSERT, UPDATE, DELETE, TRUNCATE
SELECT c.relname, c.relkind,
       string_agg(CASE WHEN has_table_privilege(r, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE') THEN 'w'
                       WHEN has_table_privilege(r, c.oid, 'SELECT') THEN 's' ELSE '-' END, ''
                  ORDER BY o) AS "W O M A N P"
  FROM pg_class c
 CROSS JOIN unnest(ARRAY['ledger_writer', 'ledger_operator', 'ledger_manager', 'ledger_auditor',
                         'ledger_monitor', 'public']) WITH ORDINALITY AS x (r, o)
 WHERE c.relnamespace = 'ledger'::regnamespace AND c.relkind IN ('r', 'v')
 GROUP BY c.oid, c.relname, c.relkind ORDER BY c.relname;

-- PUBLIC reaches nothing but the harmless two; no trigger function at all
SELECT p.oid::regprocedure AS public_may_call FROM pg_proc p
 WHERE p.pronamespace = 'ledger'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT count(*) AS trigger_functions_public FROM pg_proc p
 WHERE p.pronamespace = 'ledger'::regnamespace AND p.prorettype = 'trigger'::regtype
   AND has_function_privilege('public', p.oid, 'EXECUTE');

-- the matrix holds when called: each role does what it may, and is
-- refused (42501) what it may not
SELECT ledger.create_account('ro-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('ro-alice', 'USD', owner_id => 'owner-alice') > 0 AS ok;
SELECT ledger.create_account('ro-bob', 'USD', owner_id => 'owner-bob') > 0 AS ok;
SELECT ledger.transfer('ro-world', 'ro-alice', 100) IS NOT NULL AS funded;
SELECT ledger.transfer('ro-world', 'ro-bob', 100) IS NOT NULL AS funded;
SET ROLE ledger_writer;
SELECT ledger.transfer('ro-alice', 'ro-bob', 1) IS NOT NULL AS writer_transfers;
SELECT try($$SELECT ledger.invalidate(ledger.new_id(), 'x')$$);
SELECT try($$SELECT count(*) FROM ledger.journal$$);
RESET ROLE;
SET ROLE ledger_operator;
SELECT count(*) >= 0 AS operator_reads_the_journal FROM ledger.journal;
SELECT count(*) AS operator_reconciles FROM ledger.reconcile(repair => false);
SELECT try($$SELECT ledger.transfer('ro-alice', 'ro-bob', 1)$$);
RESET ROLE;
SET ROLE ledger_auditor;
SELECT count(*) >= 0 AS auditor_reads FROM ledger.journal_entry;
SELECT try($$SELECT ledger.transfer('ro-alice', 'ro-bob', 1)$$);
SELECT try($$UPDATE ledger.account SET min_balance = -1000 WHERE code = 'ro-alice'$$);
RESET ROLE;
SET ROLE ledger_monitor;
SELECT count(*) >= 0 AS monitor_reads_status FROM ledger.outbox_status;
SELECT count(*) >= 0 AS monitor_reads_events FROM ledger.event_worker;
SELECT try($$SELECT count(*) FROM ledger.account_overview$$);
RESET ROLE;
SET ROLE ledger_manager;
-- a manager reads the history, but only of owners granted to it: none yet
-- (test/sql/scoping.sql has the rest)
SELECT count(*) AS manager_sees_no_owner_yet FROM ledger.journal;
SELECT try($$SELECT count(*) FROM ledger.rate_limit$$);
SELECT try($$SELECT ledger.grant_owner_access('ledger_manager', 'owner-alice')$$);
RESET ROLE;

-- debits only by the acting owner: a debit of another owner's account is
-- refused, a credit to it is allowed; also for post, hold and exchange
SELECT ledger.hold('ro-bob', 1, 'ro-alice') AS bob_hold \gset
BEGIN;
SET LOCAL ledger.acting_owner = 'owner-alice';
SELECT ledger.transfer('ro-alice', 'ro-bob', 2) IS NOT NULL AS own_debit_pays_bob;
-- bob's hold is bob's money: alice can neither capture nor void it
SELECT try($$SELECT ledger.capture('$$ || :'bob_hold' || $$')$$);
SELECT try($$SELECT ledger.void('$$ || :'bob_hold' || $$', 'not mine')$$);
SELECT try($$SELECT ledger.transfer('ro-bob', 'ro-alice', 2)$$);
SELECT try($$SELECT ledger.post('[{"account": "ro-alice", "amount": "-1"}, {"account": "ro-bob", "amount": "-1"}, {"account": "ro-world", "amount": "2"}]')$$);
SELECT try($$SELECT ledger.hold('ro-bob', 1, 'ro-alice')$$);
SELECT try($$SELECT ledger.transfer('ro-world', 'ro-alice', 1)$$);
COMMIT;
-- SET LOCAL ends with the transaction
SELECT ledger.transfer('ro-bob', 'ro-alice', 1) IS NOT NULL AS no_check_outside;
SELECT ledger.void(:'bob_hold', 'released') AS bob_released;
SELECT ledger.balance('ro-alice') AS alice, ledger.balance('ro-bob') AS bob;
-- a role marked by a superuser debits only with an acting owner, and
-- cannot unmark itself
SET ROLE ledger_writer;
SELECT try($$SET ledger.require_acting_owner = off$$);
RESET ROLE;
SET ledger.require_acting_owner = on;
SELECT regexp_replace(try($$SELECT ledger.transfer('ro-alice', 'ro-bob', 1)$$), 'Role "[^"]*"', 'Role "R"') AS try;
SELECT regexp_replace(try($$SELECT ledger.transfer('ro-world', 'ro-alice', 1)$$), 'Role "[^"]*"', 'Role "R"') AS try;
SET ledger.acting_owner = 'owner-alice';
SELECT ledger.transfer('ro-alice', 'ro-bob', 1) IS NOT NULL AS with_an_acting_owner;
RESET ledger.acting_owner;
RESET ledger.require_acting_owner;
