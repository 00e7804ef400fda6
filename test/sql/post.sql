-- post: multi-leg postings, all or nothing, each asset nets to zero
SELECT ledger.create_account('p-world-usd', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('p-world-btc', 'BTC', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('p-a', 'USD') > 0 AS ok;
SELECT ledger.create_account('p-b', 'USD') > 0 AS ok;
SELECT ledger.create_account('p-fee', 'USD') > 0 AS ok;
SELECT ledger.create_account('p-btc-a', 'BTC') > 0 AS ok;
SELECT ledger.create_account('p-btc-b', 'BTC') > 0 AS ok;

SELECT ledger.post('[{"account": "p-world-usd", "amount": "-100"},
                     {"account": "p-a", "amount": 100}]') IS NOT NULL AS funded;
-- three legs, amounts as strings and numbers
SELECT ledger.post(legs => '[{"account": "p-a", "amount": "-10.50"},
                             {"account": "p-b", "amount": 10.00},
                             {"account": "p-fee", "amount": "+0.50"}]',
                   metadata => '{"order": 42}') IS NOT NULL AS paid;
SELECT ledger.balance('p-a') AS a, ledger.balance('p-b') AS b, ledger.balance('p-fee') AS fee;

-- four legs across two assets: an exchange
SELECT ledger.post('[{"account": "p-world-btc", "amount": "-0.00150000"},
                     {"account": "p-btc-a", "amount": "0.0015"}]') IS NOT NULL AS funded_btc;
SELECT ledger.post('[{"account": "p-btc-a", "amount": "-0.001"},
                     {"account": "p-btc-b", "amount": "0.001"},
                     {"account": "p-b", "amount": "-5"},
                     {"account": "p-a", "amount": "5"}]') IS NOT NULL AS exchanged;
SELECT code, balance FROM ledger.account_overview WHERE code LIKE 'p-%' ORDER BY code;

-- one account on several legs: the journal keeps every leg, the balance the net
SELECT ledger.post('[{"account": "p-a", "amount": "-1"}, {"account": "p-a", "amount": "-2"},
                     {"account": "p-b", "amount": "3"}]') AS tx \gset
SELECT a.code, j.amount FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
 WHERE j.transaction_id = :'tx' ORDER BY j.id;
SELECT kind FROM ledger.transaction WHERE id = :'tx';

-- unbalanced and mixed
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-1"}, {"account": "p-b", "amount": "2"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-1"}, {"account": "p-btc-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-1"}, {"account": "p-b", "amount": "1"},
                                   {"account": "p-btc-a", "amount": "-0.1"}, {"account": "p-btc-b", "amount": "0.2"}]')$$);

-- all or nothing: the last leg overdraws, no leg is applied
SELECT ledger.balance('p-b') AS b_before, ledger.balance('p-fee') AS fee_before;
SELECT try($$SELECT ledger.post('[{"account": "p-b", "amount": "-1"}, {"account": "p-fee", "amount": "1"},
                                   {"account": "p-fee", "amount": "-100"}, {"account": "p-a", "amount": "100"}]')$$);
SELECT ledger.balance('p-b') AS b_after, ledger.balance('p-fee') AS fee_after;

-- malformed legs
SELECT try($$SELECT ledger.post(NULL)$$);
SELECT try($$SELECT ledger.post('{"account": "p-a", "amount": "1"}')$$);
SELECT try($$SELECT ledger.post('"legs"')$$);
SELECT try($$SELECT ledger.post('[]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "0"}]')$$);
SELECT try($$SELECT ledger.post('[1, 2]')$$);
SELECT try($$SELECT ledger.post('[[], {}]')$$);
SELECT try($$SELECT ledger.post('[{"amount": "-1"}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": 7, "amount": "-1"}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a"}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": true}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": null}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-1", "memo": "x"}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "nobody", "amount": "-1"}, {"account": "p-b", "amount": "1"}]')$$);
-- bad amounts inside legs
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "0"}, {"account": "p-b", "amount": "0"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "NaN"}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-Infinity"}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-1e3"}, {"account": "p-b", "amount": "1e3"}]')$$);
-- a JSON number is its value: jsonb has read 1E+1 as 10 before the ledger
-- sees it (only decimal strings can be checked for their notation)
SELECT ledger.post('[{"account": "p-a", "amount": -1E+1}, {"account": "p-b", "amount": 1E+1}]') AS exp_tx \gset
SELECT account, amount FROM ledger.journal WHERE transaction_id = :'exp_tx' ORDER BY account;
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": " -1"}, {"account": "p-b", "amount": "1"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-0.001"}, {"account": "p-b", "amount": "0.001"}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": -0.001}, {"account": "p-b", "amount": 0.001}]')$$);
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-1000000000000000000000000000000"}, {"account": "p-b", "amount": "1000000000000000000000000000000"}]')$$);
-- too many legs for ledger.max_legs
SET ledger.max_legs = 2;
SELECT try($$SELECT ledger.post('[{"account": "p-a", "amount": "-1"}, {"account": "p-b", "amount": "0.5"}, {"account": "p-fee", "amount": "0.5"}]')$$);
RESET ledger.max_legs;
SELECT try($$SET ledger.max_legs = 1$$);
SELECT try($$SET ledger.no_such_setting = 1$$);
SELECT code, balance FROM ledger.account_overview WHERE code LIKE 'p-%' ORDER BY code;
