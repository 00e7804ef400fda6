-- exchange: token exchange at the newest rate, through liquidity accounts,
-- with the spread as its own leg; rounding, idempotency, stale and missing
-- rates, invalidation, the rate history and its monitor, bad input.
SELECT ledger.create_asset('TOK', 8);
SELECT ledger.create_asset('XAU', 2);
SELECT ledger.create_account('x-alice-tok', 'TOK', owner_id => 'user-alice') > 0 AS ok;
SELECT ledger.create_account('x-alice-usd', 'USD', owner_id => 'user-alice') > 0 AS ok;
SELECT ledger.create_account('x-liq-tok', 'TOK', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('x-liq-usd', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('x-fees-usd', 'USD') > 0 AS ok;
SELECT ledger.create_account('x-mint', 'TOK', min_balance => NULL) > 0 AS ok;
SELECT ledger.transfer('x-mint', 'x-alice-tok', 100) IS NOT NULL AS funded;

-- not configured yet, no rate yet
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1)$$);
SELECT ledger.set_exchange_accounts('TOK', 'x-liq-tok');
SELECT ledger.set_exchange_accounts('USD', 'x-liq-usd', 'x-fees-usd');
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1)$$);

-- a conversion: 2 TOK at 2.5 USD = 5.00 USD
SELECT ledger.set_exchange_rate('TOK', 'USD', 2.5, now(), 'test-feed') > 0 AS rate_set;
SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 2) AS x1 \gset
SELECT code, balance FROM ledger.account_overview WHERE code LIKE 'x-%' ORDER BY code;
SELECT token, token_amount, rate, quote_asset, quote_amount, spread, spread_amount,
       rate_observed_at = (SELECT max(observed_at) FROM ledger.exchange_rate) AS rate_time_kept
  FROM ledger.token_transaction WHERE transaction_id = :'x1';
SELECT a.code, j.amount FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
 WHERE j.transaction_id = :'x1' ORDER BY a.code;
SELECT kind FROM ledger.transaction WHERE id = :'x1';

-- rounding: the quote is cut toward zero at the quote's scale (in favour
-- of the liquidity account): 0.12345678 TOK at 2.5 = 0.30864195 -> 0.30
SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 0.12345678) AS x2 \gset
SELECT token_amount, quote_amount FROM ledger.token_transaction WHERE transaction_id = :'x2';
-- the spread: 1% of 10.00 = 0.10 to the fees account, 9.90 to alice
SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 4, spread => 0.01) AS x3 \gset
SELECT a.code, j.amount FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
 WHERE j.transaction_id = :'x3' ORDER BY a.code;
SELECT quote_amount, spread, spread_amount FROM ledger.token_transaction WHERE transaction_id = :'x3';
-- a spread is cut too: 0.5% of 0.30 = 0.0015 -> 0.00, no spread leg
SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 0.12, spread => 0.005) AS x4 \gset
SELECT count(*) AS legs FROM ledger.journal_entry WHERE transaction_id = :'x4';
-- a spread into an asset without a spread account; the house's accounts as customers
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, spread => 0.01)$$) LIKE 'ok%' AS usd_has_one;
SELECT try($$SELECT ledger.exchange('x-liq-tok', 'x-alice-usd', 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-liq-usd', 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-fees-usd', 1)$$);
-- too small to convert
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 0.00000001)$$);
-- each asset nets to zero over all exchanges
SELECT a.asset, sum(j.amount) FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
 JOIN ledger.transaction t ON t.id = j.transaction_id WHERE t.kind = 'exchange' GROUP BY 1 ORDER BY 1;

-- the newest rate counts; the reverse pair is another pair
SELECT ledger.set_exchange_rate('TOK', 'USD', 3, now()) > 0 AS rate_set;
SELECT ledger.set_exchange_rate('TOK', 'USD', 100, now() - interval '10 s') > 0 AS older_observation;
SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1) AS x5 \gset
SELECT rate, quote_amount FROM ledger.token_transaction WHERE transaction_id = :'x5';
SELECT try($$SELECT ledger.exchange('x-alice-usd', 'x-alice-tok', 1)$$);

-- idempotent retry: the same request returns the same exchange, even
-- after the rate changed; another request with the key is refused
SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, idempotency_key => 'xk-1') AS k1 \gset
SELECT ledger.set_exchange_rate('TOK', 'USD', 4) > 0 AS rate_set;
SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1.0, idempotency_key => 'xk-1') = :'k1' AS same;
SELECT count(*) AS token_rows FROM ledger.token_transaction WHERE transaction_id = :'k1';
SELECT regexp_replace(try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 2, idempotency_key => 'xk-1')$$),
                      '[0-9a-f-]{36}', '<id>') AS try;
SELECT regexp_replace(try($$SELECT ledger.transfer('x-alice-tok', 'x-mint', 1, 'xk-1')$$),
                      '[0-9a-f-]{36}', '<id>') AS try;

-- stale rates: refused (LD037) with the pair and the age; a larger
-- max_rate_age accepts; the setting is the default
SELECT ledger.set_exchange_rate('TOK', 'XAU', 2, now() - interval '2 minutes') > 0 AS old_rate;
SELECT ledger.create_account('x-alice-xau', 'XAU') > 0 AS ok;
SELECT ledger.create_account('x-liq-xau', 'XAU', min_balance => NULL) > 0 AS ok;
SELECT ledger.set_exchange_accounts('XAU', 'x-liq-xau');
SELECT regexp_replace(try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-xau', 1)$$),
                      '[0-9.]+ s ago, at .*; at', 'N s ago, at T; at') AS try;
SELECT ledger.exchange('x-alice-tok', 'x-alice-xau', 1, max_rate_age => '3 minutes') IS NOT NULL AS with_larger_age;
SET ledger.max_rate_age = '5min';
SELECT ledger.exchange('x-alice-tok', 'x-alice-xau', 1) IS NOT NULL AS with_the_setting;
RESET ledger.max_rate_age;
-- waiting: no fresh rate arrives within the wait, so the same error
SELECT regexp_replace(try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-xau', 1, wait => '50 ms')$$),
                      '[0-9.]+ s ago, at .*; at', 'N s ago, at T; at') AS try;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-xau', 1, wait => '1 s')$$);
ROLLBACK;

-- insufficient tokens: nothing written
SELECT count(*) AS before FROM ledger.token_transaction \gset
SELECT regexp_replace(try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1000)$$), 'is [0-9.]+', 'is N', 'g') AS try;
SELECT count(*) = :before AS nothing_written FROM ledger.token_transaction;

-- invalidation flags the token row and rebuilds every balance it touched
SELECT ledger.balance('x-alice-usd') AS usd_before, ledger.balance('x-liq-tok') AS liq_before;
SELECT count(*) AS entries FROM ledger.invalidate(:'x3', 'mistaken rate');
SELECT is_invalidated FROM ledger.token_transaction WHERE transaction_id = :'x3';
SELECT ledger.balance('x-alice-usd') AS usd_after, ledger.balance('x-liq-tok') AS liq_after,
       ledger.balance('x-fees-usd') AS fees_after;
SELECT count(*) AS clean FROM ledger.reconcile(repair => false);

SELECT ledger.set_exchange_rate('TOK', 'USD', 4) > 0 AS usd_fresh_for_the_monitor;
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-xau', 1, max_rate_age => '5 min', spread => 0.01)$$);
-- the monitor: a pair whose newest rate is old is announced stale once
-- (by the monitor, not by the rate that was old when set), and recovered
-- by the next fresh rate
SELECT ledger.check_rate_feeds() AS changed;
SELECT ledger.check_rate_feeds() AS changed_again;
SELECT kind, details ->> 'base' AS base, details ->> 'quote' AS quote FROM ledger.alert
 WHERE kind LIKE 'rate_%' ORDER BY id;
SELECT base, quote, paused, announced_stale_since IS NOT NULL AS announced FROM ledger.exchange_status ORDER BY 1, 2;
SELECT ledger.set_exchange_rate('TOK', 'XAU', 2.1) > 0 AS fresh_again;
SELECT kind, details ->> 'quote' AS quote FROM ledger.alert WHERE kind LIKE 'rate_%' ORDER BY id;
SELECT base, quote, paused, announced_stale_since IS NULL AS not_announced FROM ledger.exchange_status ORDER BY 1, 2;
SELECT topic, payload ->> 'kind' AS kind FROM ledger.outbox WHERE payload ->> 'kind' LIKE 'rate_%' ORDER BY id;

-- the rate history is append-only
SELECT try($$UPDATE ledger.exchange_rate SET rate = 1$$);
SELECT try($$DELETE FROM ledger.exchange_rate$$);
SELECT count(*) > 0 AS history_kept, bool_and(created_by IS NOT NULL) AS who_recorded FROM ledger.exchange_rate;

-- bad input
SELECT try($$SELECT ledger.set_exchange_rate(NULL, 'USD', 1)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', NULL, 1)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', NULL)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 1, NULL)$$);
SELECT try($$SELECT ledger.set_exchange_rate('NOPE', 'USD', 1)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'TOK', 1)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 0)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', -2)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 'NaN')$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 'Infinity')$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 1e30)$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 0.0000000000000000000000000000001)$$);
SELECT ledger.set_exchange_rate('TOK', 'USD', 4.000000000000000000000000000000000) > 0 AS trailing_zeros_fine;
SELECT regexp_replace(try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 1, now() + interval '1 minute')$$),
                      'observed at .*\.$', 'observed at T.') AS try;
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 1, 'infinity')$$);
SELECT try($$SELECT ledger.set_exchange_rate('TOK', 'USD', 1, now(), E'feed\u0001')$$);
SELECT try($$SELECT ledger.set_exchange_accounts('TOK', 'x-liq-usd')$$);
SELECT try($$SELECT ledger.set_exchange_accounts('TOK', 'nobody')$$);
SELECT try($$SELECT ledger.set_exchange_accounts('NOPE', 'x-liq-tok')$$);
SELECT try($$SELECT ledger.set_exchange_accounts(NULL, 'x-liq-tok')$$);
SELECT try($$SELECT ledger.exchange(NULL, 'x-alice-usd', 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', NULL, 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', NULL)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 0)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', -1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 'NaN')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 'Infinity')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 0.000000001)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1e30)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, spread => -0.1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, spread => 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, spread => 'NaN')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, spread => NULL)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, max_rate_age => '0 s')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, max_rate_age => '2 hours')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, wait => '-1 s')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, wait => '1 month')$$);
-- a day part far out of range is refused before it is multiplied (found by
-- the fuzzer: an overflow on the UBSan build)
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, wait => '2147483647 days')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, max_rate_age => '1 day 9223372036854 ms')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, wait => NULL)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-tok', 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-mint', 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'nobody', 1)$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, metadata => '[1]')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok', 'x-alice-usd', 1, idempotency_key => '')$$);
SELECT try($$SELECT ledger.exchange('x-alice-tok''; DROP TABLE ledger.journal_entry; --', 'x-alice-usd', 1)$$);
SELECT count(*) = :before AS nothing_more_written FROM ledger.token_transaction;
