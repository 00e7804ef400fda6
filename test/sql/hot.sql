-- hot: the hot-account API outside the database that serves hot accounts
-- (ledger.database); the hot path itself is tested by test/scripts/hot_*.sh
SELECT current_setting('ledger.database') <> current_database() AS served_elsewhere;
SELECT ledger.create_account('hot-a', 'USD') > 0 AS ok;
SELECT replace(try($$SELECT ledger.set_account_mode('hot-a', 'hot')$$),
               current_setting('ledger.database'), '<ledger.database>') AS try;
SELECT try($$SELECT ledger.set_account_mode('hot-a', 'warm')$$);
SELECT try($$SELECT ledger.set_account_mode('hot-a', NULL)$$);
SELECT try($$SELECT ledger.set_account_mode(NULL, 'hot')$$);
SELECT code, mode FROM ledger.account_overview WHERE code = 'hot-a';
-- nothing is hot here: the views are empty apart from the total row
SELECT account, unfolded_entries, fold_lag_seconds FROM ledger.hot_account_stats;
SELECT ledger.fold() AS folded;
SELECT try($$SELECT ledger.fold(0)$$);
SELECT state IN ('idle', 'folding', 'starting', 'loading') AS worker_running, ready
  FROM ledger.fold_worker_status();
-- hot mode is a postmaster-level feature
SELECT name, context FROM pg_settings WHERE name LIKE 'ledger.%' ORDER BY name;
