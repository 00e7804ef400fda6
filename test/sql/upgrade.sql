-- upgrade: install the first version, post, then walk every upgrade step
DROP EXTENSION ledger CASCADE;
CREATE EXTENSION ledger VERSION '0.1.0';
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_account('u-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('u-a', 'USD') > 0 AS ok;
SELECT ledger.transfer('u-world', 'u-a', 12.34) AS tx \gset
SELECT to_regprocedure('ledger.reconcile(boolean)') IS NULL AS no_reconcile_yet;

ALTER EXTENSION ledger UPDATE TO '0.2.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT count(*) AS clean FROM ledger.reconcile();
SELECT * FROM ledger.invalidate(:'tx', 'upgrade test') ORDER BY account;
SELECT ledger.balance('u-a') AS a;
SELECT ledger.transfer('u-world', 'u-a', 1.00) IS NOT NULL AS posted_on_0_2_0;
SELECT to_regclass('ledger.hot_entry') IS NULL AS no_hot_entry_yet;

ALTER EXTENSION ledger UPDATE TO '0.3.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT code, mode, balance FROM ledger.account_overview ORDER BY code;
SELECT ledger.transfer('u-world', 'u-a', 2.00) IS NOT NULL AS posted_on_0_3_0;
SELECT ledger.balance('u-a') AS a;
SELECT count(*) AS clean FROM ledger.reconcile();

ALTER EXTENSION ledger UPDATE TO '0.4.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'ledger.account'::regclass AND tgname = 'account_changed';
-- postings resolve from the account cache from now on; balances still add up
SELECT ledger.transfer('u-world', 'u-a', 3.00) IS NOT NULL AS posted_on_0_4_0;
SELECT ledger.transfer('u-world', 'u-a', 4.00) IS NOT NULL AS posted_cached;
SELECT ledger.balance('u-a') AS a;
SELECT count(*) AS clean FROM ledger.reconcile();

ALTER EXTENSION ledger UPDATE TO '0.5.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- the trigger fires per row now, on the columns a posting reads
SELECT tgname, tgenabled, (tgtype & 1) = 1 AS per_row,
       (SELECT array_agg(attname ORDER BY attnum) FROM pg_attribute
         WHERE attrelid = tgrelid AND attnum = ANY (tgattr)) AS columns
  FROM pg_trigger WHERE tgrelid = 'ledger.account'::regclass AND tgname = 'account_changed';
SELECT has_function_privilege('public', 'ledger.account_changed()', 'EXECUTE') AS public_may_call;
-- pg_dump keeps every table with user data, and the sequences
SELECT c.relname, c.relkind FROM pg_extension e, unnest(e.extconfig) r, pg_class c
 WHERE e.extname = 'ledger' AND c.oid = r ORDER BY c.relkind, c.relname;
SELECT ledger.transfer('u-world', 'u-a', 5.00) IS NOT NULL AS posted_on_0_5_0;
UPDATE ledger.account SET min_balance = 15 WHERE code = 'u-a';
SELECT try($$SELECT ledger.transfer('u-a', 'u-world', 0.01)$$);
UPDATE ledger.account SET min_balance = 0 WHERE code = 'u-a';
SELECT ledger.balance('u-a') AS a;
SELECT count(*) AS clean FROM ledger.reconcile();

ALTER EXTENSION ledger UPDATE TO '0.6.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- holds on an upgraded ledger: existing balance rows hold nothing
SELECT open_holds, max_active_holds FROM ledger.account_balance b
  JOIN ledger.account a ON a.id = b.account_id WHERE a.code = 'u-a';
SELECT ledger.hold('u-a', 10.00, 'u-world') IS NOT NULL AS held_on_0_6_0;
SELECT try($$SELECT ledger.transfer('u-a', 'u-world', 6.00)$$);
SELECT ledger.capture(id) IS NOT NULL AS captured FROM ledger.hold;
SELECT ledger.balance('u-a') AS a;
SELECT count(*) AS clean FROM ledger.reconcile();
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) r, pg_class c
 WHERE e.extname = 'ledger' AND c.oid = r AND c.relname ~ 'hold|external' ORDER BY c.relname;

ALTER EXTENSION ledger UPDATE TO '0.7.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- rows written before 0.7.0 name no event; the outbox works
SELECT count(*) FILTER (WHERE event_seq IS NULL) AS unstamped, count(*) AS total
  FROM ledger.transaction;
SELECT ledger.enqueue('upgrade', 'k', '{"v": 1}') > 0 AS enqueued_on_0_7_0;
SELECT topic, key, payload, attempts FROM ledger.outbox_claim('c1');
-- holds keep working on the upgraded ledger
SELECT ledger.hold('u-a', 1.00, 'u-world') IS NOT NULL AS held_on_0_7_0;
SELECT count(*) AS clean FROM ledger.reconcile();
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) r, pg_class c
 WHERE e.extname = 'ledger' AND c.oid = r AND c.relname ~ 'outbox' ORDER BY c.relname;

ALTER EXTENSION ledger UPDATE TO '0.8.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- exchanges on an upgraded ledger: rates, accounts, the status view
SELECT count(*) AS pairs FROM ledger.exchange_status;
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) r, pg_class c
 WHERE e.extname = 'ledger' AND c.oid = r AND c.relname ~ 'exchange|rate' ORDER BY c.relname;
SELECT count(*) AS clean FROM ledger.reconcile();

ALTER EXTENSION ledger UPDATE TO '0.9.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- the roles exist and hold their grants on the upgraded ledger
SELECT has_function_privilege('ledger_writer', 'ledger.transfer(text, text, numeric, text, jsonb)', 'EXECUTE') AS writer_posts,
       has_function_privilege('ledger_writer', 'ledger.invalidate(uuid, text, boolean)', 'EXECUTE') AS writer_corrects,
       has_table_privilege('ledger_auditor', 'ledger.journal_entry', 'SELECT') AS auditor_reads;
-- keys taken before 0.10.0 (one key space for everyone)
SELECT ledger.create_account('u-o1', 'USD', owner_id => 'o1') > 0 AS ok;
SELECT ledger.create_account('u-o2', 'USD', owner_id => 'o2') > 0 AS ok;
SELECT ledger.transfer('u-world', 'u-o1', 5.00) IS NOT NULL AS funded;
SELECT ledger.transfer('u-world', 'u-o2', 5.00) IS NOT NULL AS funded;
SELECT ledger.transfer('u-o1', 'u-world', 1.00, 'up-key') AS keyed \gset
SELECT ledger.hold('u-o1', 1.00, 'u-world', idempotency_key => 'up-hold') AS held \gset

ALTER EXTENSION ledger UPDATE TO '0.10.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- keys are per owner now: the old ones got their owner's scope, so a retry
-- across the upgrade finds its first result; another owner's same key is
-- another key
SELECT idempotency_scope FROM ledger.transaction WHERE idempotency_key = 'up-key';
SELECT ledger.transfer('u-o1', 'u-world', 1.00, 'up-key') = :'keyed' AS replayed_after_upgrade;
SELECT ledger.hold('u-o1', 1.00, 'u-world', idempotency_key => 'up-hold') = :'held' AS hold_replayed;
SELECT ledger.transfer('u-o2', 'u-world', 1.00, 'up-key') <> :'keyed' AS other_owner_own_key;
SELECT count(*) AS unscoped_keys FROM ledger.transaction
 WHERE idempotency_key IS NOT NULL AND idempotency_scope IS NULL;
-- the append-only guards stay ENABLE ALWAYS after the backfill
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid IN ('ledger.transaction'::regclass, 'ledger.hold'::regclass, 'ledger.hold_event'::regclass)
   AND NOT tgisinternal ORDER BY tgname;
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) r, pg_class c
 WHERE e.extname = 'ledger' AND c.oid = r AND c.relname IN ('rate_limit', 'owner_access') ORDER BY c.relname;
SELECT count(*) AS clean FROM ledger.reconcile();

ALTER EXTENSION ledger UPDATE TO '0.11.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- batches on the upgraded ledger
SELECT item, result FROM ledger.transfer_batch(ARRAY['u-world', 'u-o1'], ARRAY['u-o1', 'u-world'], ARRAY[1, 2])
 ORDER BY item;
SELECT count(*) AS clean FROM ledger.reconcile();

ALTER EXTENSION ledger UPDATE TO '0.12.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- the monitoring objects, and the facts line of a SQL wrapper's error
SELECT counter FROM ledger.counters() WHERE sqlstate IS NULL ORDER BY counter;
SELECT (SELECT coalesce(sum(alerts), 0) FROM ledger.open_alerts) = (SELECT count(*) FROM ledger.alert WHERE acknowledged_at IS NULL) AS alerts_match,
       (SELECT coalesce(sum(holds), 0) FROM ledger.hold_stats) = (SELECT count(*) FROM ledger.hold) AS holds_match;
SELECT count(*) AS no_pg_cron FROM ledger.scheduled_runs();
-- scheduled_runs() runs as the extension's owner: relations that only
-- look like pg_cron's (a view calling someone's function) are never read
CREATE SCHEMA cron;
CREATE FUNCTION cron.trap() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'trap ran as %', current_user;
    RETURN 'x';
END
$$;
CREATE VIEW cron.job AS
SELECT 1::bigint AS jobid, 'ledger-reconcile'::text AS jobname, cron.trap() AS username,
       '* * * * *'::text AS schedule, true AS active;
CREATE TABLE cron.job_run_details (jobid bigint, runid bigint, start_time timestamptz,
                                   end_time timestamptz, status text, return_message text);
SELECT count(*) AS fake_cron_read FROM ledger.scheduled_runs();
DROP SCHEMA cron CASCADE;
SELECT try($$SELECT ledger.schedule_hold_expiry(NULL)$$);
DO $$
DECLARE det text;
BEGIN
  PERFORM ledger.schedule_hold_expiry(NULL);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
  RAISE NOTICE '%', det;
END $$;

ALTER EXTENSION ledger UPDATE TO '0.13.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- batches of hold moves on the upgraded ledger: a hold, its capture, and
-- a void of a hold made before the upgrade
SELECT item, result FROM ledger.hold_batch('[{"from_account": "u-o1", "amount": "1.00", "to_account": "u-world", "external_ref": "up-hb"}]');
SELECT item, result FROM ledger.capture_batch((SELECT jsonb_agg(jsonb_build_object('hold_id', id)) FROM ledger.hold WHERE external_ref = 'up-hb'));
SELECT item, result FROM ledger.void_batch((SELECT jsonb_agg(jsonb_build_object('hold_id', id, 'reason', 'upgrade'))
                                              FROM ledger.hold WHERE idempotency_key = 'up-hold'));
SELECT count(*) AS clean FROM ledger.reconcile();

ALTER EXTENSION ledger UPDATE TO '0.14.0';
SELECT extversion FROM pg_extension WHERE extname = 'ledger';
-- the schema is unchanged; postings on the upgraded ledger land
SELECT count(*) FROM ledger.transfer('u-o1', 'u-world', 0.50);
SELECT count(*) AS clean FROM ledger.reconcile();

-- every object of the upgraded extension has a comment
SELECT p.proname FROM pg_proc p
 WHERE p.pronamespace = 'ledger'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'ledger'::regnamespace AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;
