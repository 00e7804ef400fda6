-- assets_accounts: ledger.create_asset, ledger.create_account, ledger.balance
SELECT ledger.create_asset('USD', 2);
SELECT ledger.create_asset(code => 'BTC', scale => 8);
SELECT ledger.create_asset('JPY', 0);
SELECT code, scale FROM ledger.asset ORDER BY code;

-- asset errors
SELECT try($$SELECT ledger.create_asset('USD', 2)$$);
SELECT try($$SELECT ledger.create_asset('XXX', -1)$$);
SELECT try($$SELECT ledger.create_asset('XXX', 19)$$);
SELECT try($$SELECT ledger.create_asset('XXX', NULL)$$);
SELECT try($$SELECT ledger.create_asset(NULL, 2)$$);
SELECT try($$SELECT ledger.create_asset('', 2)$$);
SELECT try($$SELECT ledger.create_asset(repeat('x', 256), 2)$$);
SELECT try($$SELECT ledger.create_asset(E'bad\ncode', 2)$$);
-- a hostile string is just a code: stored verbatim, nothing executed
SELECT try($$SELECT ledger.create_asset($q$'); DROP TABLE ledger.journal_entry; --$q$, 2)$$);
SELECT code FROM ledger.asset WHERE code LIKE '%DROP%';
SELECT to_regclass('ledger.journal_entry') IS NOT NULL AS journal_still_there;

-- an asset's scale is what every amount was checked against: immutable
SELECT try($$UPDATE ledger.asset SET scale = 4 WHERE code = 'USD'$$);
SELECT try($$DELETE FROM ledger.asset WHERE code = 'JPY'$$);
SELECT try($$TRUNCATE ledger.asset CASCADE$$);

-- accounts
SELECT ledger.create_account('alice', 'USD') > 0 AS created;
SELECT ledger.create_account(code => 'bob', asset => 'USD', owner_id => 'user-2',
                             metadata => '{"tier": "gold"}') > 0 AS created;
SELECT ledger.create_account('overdraft', 'USD', min_balance => -50.00) > 0 AS created;
SELECT ledger.create_account('world-usd', 'USD', min_balance => NULL) > 0 AS created;
SELECT ledger.create_account('sats', 'BTC', 0.00000001) > 0 AS created;
SELECT code, asset, min_balance, owner_id, metadata
  FROM ledger.account ORDER BY id;
SELECT a.code, b.balance FROM ledger.account a
  JOIN ledger.account_balance b ON b.account_id = a.id ORDER BY a.id;
SELECT code, balance, min_balance, available FROM ledger.account_overview ORDER BY code;

-- account errors
SELECT try($$SELECT ledger.create_account('alice', 'USD')$$);
SELECT try($$SELECT ledger.create_account('carol', 'EUR')$$);
SELECT try($$SELECT ledger.create_account(NULL, 'USD')$$);
SELECT try($$SELECT ledger.create_account('carol', NULL)$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', metadata => NULL)$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', metadata => '[1, 2]')$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', metadata => '"text"')$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', min_balance => 'NaN')$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', min_balance => '-Infinity')$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', min_balance => 1.005)$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', min_balance => -1e30)$$);
SELECT try($$SELECT ledger.create_account('carol', 'JPY', min_balance => 0.5)$$);
SELECT try($$SELECT ledger.create_account('carol', 'USD', owner_id => '')$$);
SELECT count(*) AS no_carol FROM ledger.account WHERE code = 'carol';

-- balance
SELECT ledger.balance('alice');
SELECT try($$SELECT ledger.balance('nobody')$$);
SELECT try($$SELECT ledger.balance(NULL)$$);

-- accounts are never deleted
SELECT try($$DELETE FROM ledger.account WHERE code = 'alice'$$);
SELECT try($$TRUNCATE ledger.account CASCADE$$);

-- an asset created by a transaction that rolls back leaves no trace, not
-- even in this backend's scale cache: made again with another scale, its
-- amounts follow the new scale
BEGIN;
SELECT ledger.create_asset('ZRB', 8);
SELECT ledger.create_account('zrb-a', 'ZRB', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('zrb-b', 'ZRB') > 0 AS ok;
SELECT ledger.transfer('zrb-a', 'zrb-b', 0.00000001) IS NOT NULL AS posted_at_scale_8;
ROLLBACK;
SELECT try($$SELECT ledger.create_account('zrb-a', 'ZRB')$$);
SELECT ledger.create_asset('ZRB', 2);
SELECT ledger.create_account('zrb-a', 'ZRB', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('zrb-b', 'ZRB') > 0 AS ok;
SELECT try($$SELECT ledger.transfer('zrb-a', 'zrb-b', 0.001)$$);
SELECT ledger.transfer('zrb-a', 'zrb-b', 0.01) IS NOT NULL AS posted_at_scale_2;
