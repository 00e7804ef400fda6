-- reconcile: drift between the journal and the balance caches is found,
-- recorded, alerted and repaired
SELECT count(*) AS clean_before FROM ledger.reconcile();
SELECT ledger.create_account('r-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('r-a', 'USD', owner_id => 'owner-a') AS ra \gset
SELECT ledger.create_account('r-b', 'USD', owner_id => 'owner-b') AS rb \gset
SELECT ledger.create_account('r-c', 'USD') AS rc \gset
SELECT ledger.create_account('r-d', 'USD') AS rd \gset
SELECT ledger.transfer('r-world', code, 10) IS NOT NULL AS funded
  FROM unnest(ARRAY['r-a', 'r-b', 'r-c', 'r-d']) code;
SELECT count(*) AS alerts_before FROM ledger.alert \gset
-- the UTC day the funding posted on: expected output never holds a date
SELECT (created_at AT TIME ZONE 'UTC')::date AS fund_day FROM ledger.journal
 WHERE account = 'r-b' \gset

-- tamper, as a superuser would
UPDATE ledger.account_balance SET balance = balance + 1 WHERE account_id = :ra;
UPDATE ledger.daily_balance SET debits = debits + 5 WHERE account_id = :rb;
DELETE FROM ledger.daily_balance WHERE account_id = :rc;
INSERT INTO ledger.daily_balance (account_id, day, debits, credits, balance)
VALUES (:ra, '2001-01-01', 0, 1, 1);
DELETE FROM ledger.account_balance WHERE account_id = :rd;
INSERT INTO ledger.account_balance (account_id, balance) VALUES (999999, 42);

-- report only
SELECT account, kind, CASE WHEN day = :'fund_day' THEN 'fund day' ELSE day::text END AS day,
       expected, actual, repaired
  FROM ledger.reconcile(repair => false);
SELECT ledger.balance('r-a') AS still_wrong;
-- report and repair
SELECT account, kind, CASE WHEN day = :'fund_day' THEN 'fund day' ELSE day::text END AS day,
       expected, actual, repaired
  FROM ledger.reconcile();
SELECT ledger.balance('r-a') AS a, ledger.balance('r-d') AS d;
-- a second run finds nothing
SELECT count(*) AS clean_after FROM ledger.reconcile();

-- runs and mismatches are recorded
SELECT repair, accounts_checked > 0 AS checked, mismatches, repaired, finished_at >= started_at AS finished
  FROM ledger.reconciliation_run ORDER BY id DESC LIMIT 3;
SELECT m.kind, m.repaired, count(*) FROM ledger.reconciliation_mismatch m
  WHERE m.run_id = (SELECT max(run_id) FROM ledger.reconciliation_mismatch)
  GROUP BY 1, 2 ORDER BY 1;
SELECT mismatches, open_alerts > 0 AS has_open_alerts FROM ledger.reconciliation_status LIMIT 1;

-- one alert per problem and run, naming account and owner
SELECT severity, kind, account, owner_id, details->>'expected' AS expected,
       details->>'actual' AS actual, details->>'repaired' AS repaired
  FROM ledger.alert WHERE id > :alerts_before ORDER BY id;

-- acknowledging
SELECT min(id) AS first_alert FROM ledger.alert WHERE id > :alerts_before \gset
SELECT ledger.acknowledge_alert(:first_alert) AS acknowledged;
SELECT ledger.acknowledge_alert(:first_alert) AS again;
SELECT acknowledged_at IS NOT NULL AS stamped, acknowledged_by = session_user AS by_me
  FROM ledger.alert WHERE id = :first_alert;
SELECT try('SELECT ledger.acknowledge_alert(-1)');
SELECT try('SELECT ledger.acknowledge_alert(NULL)');
SELECT try('SELECT count(*) FROM ledger.reconcile(NULL)');
-- alerts are otherwise append-only
SELECT replace(try(format('UPDATE ledger.alert SET kind = %L WHERE id = %s', 'x', :first_alert)), :'first_alert', '<id>');
SELECT replace(try(format('UPDATE ledger.alert SET acknowledged_at = NULL WHERE id = %s', :first_alert)), :'first_alert', '<id>');
SELECT replace(try(format('DELETE FROM ledger.alert WHERE id = %s', :first_alert)), :'first_alert', '<id>');
SELECT try('TRUNCATE ledger.alert');

-- amounts at the documented limits make valid alerts: details are built
-- from values (display text of numbers this long used to be cut and break
-- every later reconciliation with 22P02)
SELECT ledger.create_asset('RTOK', 18);
SELECT ledger.create_account('r-tw', 'RTOK', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('r-whale', 'RTOK') > 0 AS ok;
SELECT ledger.create_account('r-sink', 'RTOK') > 0 AS ok;
SELECT ledger.transfer('r-tw', 'r-whale', 5e29) AS whale_tx \gset
UPDATE ledger.account_balance SET balance = balance + 1
 WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'r-tw');
SELECT account, kind, expected, actual, repaired FROM ledger.reconcile() WHERE kind LIKE 'balance%';
SELECT kind, jsonb_typeof(details->'expected') AS expected_type,
       (details->>'expected')::numeric = -5e29 AS expected_exact,
       (details->>'actual')::numeric = -5e29 + 1 AS actual_exact
  FROM ledger.alert WHERE account = 'r-tw' AND kind = 'balance_mismatch';
SELECT count(*) AS clean_again FROM ledger.reconcile();
-- a forced invalidation of money already spent: its alert too
SELECT ledger.transfer('r-whale', 'r-sink', 4e29 + 0.000000000000000001) IS NOT NULL AS spent;
SELECT account, balance_before, balance_after
  FROM ledger.invalidate(:'whale_tx', 'whale', force => true) ORDER BY account;
SELECT kind, (details->>'balance')::numeric AS balance, (details->>'shortfall')::numeric AS shortfall,
       details->>'reason' AS reason, jsonb_typeof(details->'shortfall') AS shortfall_type
  FROM ledger.alert WHERE account = 'r-whale' AND kind = 'invalidation_below_floor';

-- scheduling needs pg_cron in this database
SELECT try($$SELECT ledger.schedule_reconciliation()$$);
SELECT try($$SELECT ledger.unschedule_reconciliation()$$);
SELECT try($$SELECT ledger.schedule_reconciliation(NULL)$$);
