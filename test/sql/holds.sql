-- holds: every legal and illegal move of a hold, partial and repeated
-- captures, idempotent retries, shared and exclusive holds together,
-- limits, expiry and time-out at their deadlines, and bad input.
-- Hold ids change every run: errors print them as <hold>.
CREATE FUNCTION public.tryh(stmt text) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(public.try(stmt),
                          '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
                          '<hold>', 'g')
$$;
-- what an account has and keeps, and the invariant itself
CREATE FUNCTION public.held(code text)
RETURNS TABLE (balance numeric, held_exclusive numeric, held_shared numeric,
               active_holds bigint, available numeric, invariant_holds boolean)
LANGUAGE sql AS $$
    SELECT o.balance, o.held_exclusive, o.held_shared, o.active_holds,
           ledger.available_balance(code),
           o.min_balance IS NULL OR o.balance - o.held_exclusive - o.held_shared >= o.min_balance
      FROM ledger.account_overview o WHERE o.code = held.code
$$;
SELECT ledger.create_account('h-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('h-alice', 'USD') > 0 AS ok;
SELECT ledger.create_account('h-shop', 'USD') > 0 AS ok;
SELECT ledger.create_account('h-bob', 'USD', min_balance => -100) > 0 AS ok;
SELECT ledger.create_account('h-jpy', 'JPY') > 0 AS ok;
SELECT ledger.transfer('h-world', 'h-alice', 5000) IS NOT NULL AS funded;

-- exclusive holds add up: five of 1,000 on 5,000, then a sixth is refused
SELECT count(ledger.hold('h-alice', 1000, 'h-shop')) AS held FROM generate_series(1, 5);
SELECT tryh($$SELECT ledger.hold('h-alice', 1000, 'h-shop')$$);
SELECT * FROM held('h-alice');
-- a debit cannot take held money either, not even one cent
SELECT tryh($$SELECT ledger.transfer('h-alice', 'h-shop', 0.01)$$);
SELECT tryh($$SELECT ledger.post('[{"account": "h-alice", "amount": "-0.01"},
                                  {"account": "h-shop", "amount": "0.01"}]')$$);
-- void one: 1,000 is free again, for a debit
SELECT ledger.void(id, 'customer cancelled') AS released
  FROM ledger.hold WHERE account_id = (SELECT id FROM ledger.account WHERE code = 'h-alice')
 ORDER BY id LIMIT 1;
SELECT ledger.transfer('h-alice', 'h-shop', 1000) IS NOT NULL AS debited;
SELECT * FROM held('h-alice');
SELECT ledger.void(id, 'cleanup') AS released FROM ledger.hold WHERE state = 'reserved';
SELECT * FROM held('h-alice');

-- shared holds overlap: the largest counts, and exclusive holds and debits
-- may not take what they keep; a shared hold may not rest on held money
SELECT ledger.hold('h-alice', 3000, mode => 'shared') IS NOT NULL AS shared_1;
SELECT ledger.hold('h-alice', 3500, mode => 'shared') IS NOT NULL AS shared_2;
SELECT ledger.hold('h-alice', 2000, mode => 'shared') IS NOT NULL AS shared_3;
SELECT * FROM held('h-alice');
SELECT tryh($$SELECT ledger.hold('h-alice', 600, 'h-shop')$$);
SELECT ledger.hold('h-alice', 500, 'h-shop') AS excl \gset
SELECT tryh($$SELECT ledger.transfer('h-alice', 'h-shop', 0.01)$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 3500.01, mode => 'shared')$$);
SELECT * FROM held('h-alice');
-- a shared hold is never captured
SELECT tryh(format('SELECT ledger.capture(%L)', id)) FROM ledger.hold
 WHERE mode = 'shared' AND state = 'reserved' ORDER BY id LIMIT 1;
SELECT ledger.void(id, 'proof of funds done') AS released FROM ledger.hold
 WHERE mode = 'shared' AND state = 'reserved' ORDER BY amount;
SELECT ledger.void(:'excl', 'cleanup') AS released;
SELECT * FROM held('h-alice');

-- the lifecycle: reserved, submitted, partial captures, captured
SELECT ledger.hold('h-alice', 100, 'h-shop', external_ref => 'psp-1',
                   metadata => '{"source": "holds-test"}') AS h \gset
SELECT state, amount, captured, remaining, external_ref FROM ledger.holds WHERE id = :'h';
SELECT ledger.mark_submitted(:'h');
SELECT ledger.mark_submitted(:'h');  -- a retry is a no-op
SELECT tryh(format('SELECT ledger.mark_submitted(%L, %L)', :'h', 'psp-other'));
SELECT state, submitted_at IS NOT NULL AS submitted, confirm_deadline > submitted_at AS deadline_set
  FROM ledger.holds WHERE id = :'h';
SELECT ledger.capture(:'h', 30) AS c1 \gset
SELECT ledger.capture(:'h', 30.50) IS NOT NULL AS captured_again;
SELECT tryh(format('SELECT ledger.capture(%L, 39.51)', :'h'));
SELECT state, captured, remaining FROM ledger.holds WHERE id = :'h';
SELECT * FROM held('h-alice');
SELECT ledger.capture(:'h') IS NOT NULL AS captured_rest;
SELECT state, captured, remaining, finished_at IS NOT NULL AS finished FROM ledger.holds WHERE id = :'h';
-- each capture is a posting of kind capture, in the journal once
SELECT t.kind, t.metadata ->> 'external_ref' AS ref, j.amount, a.code
  FROM ledger.transaction t JOIN ledger.journal_entry j ON j.transaction_id = t.id
  JOIN ledger.account a ON a.id = j.account_id
 WHERE t.metadata ->> 'hold_id' = :'h' ORDER BY j.id;
-- a captured hold takes no more moves
SELECT tryh(format('SELECT ledger.capture(%L)', :'h'));
SELECT tryh(format('SELECT ledger.capture(%L, 1)', :'h'));
SELECT tryh(format('SELECT ledger.void(%L, %L)', :'h', 'too late'));
SELECT tryh(format('SELECT ledger.mark_submitted(%L)', :'h'));
-- the timeline: every move, by whom, with amounts
SELECT event, amount, remaining, actor = current_user AS by_caller,
       transaction_id IS NOT NULL AS has_tx
  FROM ledger.hold_timeline WHERE hold_id = :'h' ORDER BY id;
-- the timeline is append-only
SELECT tryh($$UPDATE ledger.hold_event SET amount = 0$$);
SELECT tryh($$DELETE FROM ledger.hold_event$$);
SELECT tryh($$DELETE FROM ledger.hold$$);

-- voided holds: no capture, no second void
SELECT ledger.hold('h-alice', 50, 'h-shop') AS v \gset
SELECT ledger.void(:'v', 'declined') AS released;
SELECT tryh(format('SELECT ledger.capture(%L)', :'v'));
SELECT tryh(format('SELECT ledger.void(%L, %L)', :'v', 'again'));
SELECT tryh(format('SELECT ledger.mark_submitted(%L)', :'v'));
-- a partly captured hold voids what remains
SELECT ledger.hold('h-alice', 80, 'h-shop') AS p \gset
SELECT ledger.capture(:'p', 20) IS NOT NULL AS captured;
SELECT ledger.void(:'p', 'rest not needed') AS released;
SELECT state, captured, remaining FROM ledger.holds WHERE id = :'p';

-- idempotent retries: hold, capture and void
SELECT ledger.hold('h-alice', 10, 'h-shop', idempotency_key => 'hk-1') AS k1 \gset
SELECT ledger.hold('h-alice', 10, 'h-shop', idempotency_key => 'hk-1') = :'k1' AS same_hold;
SELECT count(*) AS rows_for_key FROM ledger.hold WHERE idempotency_key = 'hk-1';
SELECT tryh($$SELECT ledger.hold('h-alice', 11, 'h-shop', idempotency_key => 'hk-1')$$);
SELECT ledger.capture(:'k1', 4, 'ck-1') AS ck1 \gset
SELECT ledger.capture(:'k1', 4, 'ck-1') = :'ck1' AS same_capture;
SELECT tryh(format('SELECT ledger.capture(%L, 5, %L)', :'k1', 'ck-1'));
SELECT captured, remaining FROM ledger.holds WHERE id = :'k1';
SELECT count(*) AS journal_rows FROM ledger.journal_entry WHERE transaction_id = :'ck1';
SELECT ledger.void(:'k1', 'done', 'vk-1') AS released;
SELECT ledger.void(:'k1', 'done', 'vk-1') AS released_again;
SELECT tryh(format('SELECT ledger.void(%L, %L, %L)', :'k1', 'done', 'ck-1'));
SELECT count(*) AS voids FROM ledger.hold_event WHERE hold_id = :'k1' AND event = 'voided';

-- limits: one open payment per user
SELECT ledger.set_account_limits('h-alice', 1);
SELECT ledger.hold('h-alice', 5, 'h-shop') AS l1 \gset
SELECT tryh($$SELECT ledger.hold('h-alice', 5, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 5, mode => 'shared')$$);
SELECT ledger.void(:'l1', 'done') AS released;
SELECT ledger.hold('h-alice', 5, 'h-shop') AS l2 \gset
SELECT ledger.void(:'l2', 'done') AS released;
SELECT ledger.set_account_limits('h-alice', 0);
SELECT tryh($$SELECT ledger.hold('h-alice', 5, 'h-shop')$$);
SELECT ledger.set_account_limits('h-alice', NULL);
SELECT max_active_holds FROM ledger.account_overview WHERE code = 'h-alice';
SELECT tryh($$SELECT ledger.set_account_limits('h-alice', -1)$$);
SELECT tryh($$SELECT ledger.set_account_limits('h-nobody', 1)$$);
SELECT tryh($$SELECT ledger.set_account_limits(NULL, 1)$$);

-- expiry: a reserved hold stops keeping money at its deadline, before any
-- sweeper runs; from then on it cannot be captured, voided or submitted
SELECT ledger.hold('h-bob', 100, 'h-shop', submit_within => '100 milliseconds') AS e \gset
SELECT * FROM held('h-bob');
SELECT tryh($$SELECT ledger.transfer('h-bob', 'h-shop', 1)$$);
SELECT pg_sleep(0.2);
SELECT state, recorded_state FROM ledger.holds WHERE id = :'e';
SELECT * FROM held('h-bob');
SELECT ledger.transfer('h-bob', 'h-shop', 100) IS NOT NULL AS debit_took_the_money;
SELECT tryh(format('SELECT ledger.capture(%L)', :'e'));
SELECT tryh(format('SELECT ledger.void(%L, %L)', :'e', 'late'));
SELECT tryh(format('SELECT ledger.mark_submitted(%L)', :'e'));
-- time-out: a submitted hold past confirm_within keeps its money
SELECT ledger.transfer('h-world', 'h-bob', 100) IS NOT NULL AS funded;
SELECT ledger.hold('h-bob', 60, 'h-shop', external_ref => 'psp-slow', metadata => '{"source": "holds-test"}',
                   confirm_within => '100 milliseconds') AS t \gset
SELECT ledger.mark_submitted(:'t');
SELECT pg_sleep(0.2);
SELECT state, recorded_state FROM ledger.holds WHERE id = :'t';
SELECT * FROM held('h-bob');
SELECT tryh($$SELECT ledger.transfer('h-bob', 'h-shop', 100)$$);
SELECT account, owner_id, amount, remaining, state, external_ref FROM ledger.stale_holds();
-- the sweeper records both, alerts the time-out and releases the expiry
SELECT ledger.expire_holds() AS moved;
SELECT ledger.expire_holds() AS moved_again;
SELECT state, recorded_state FROM ledger.holds WHERE id IN (:'e', :'t') ORDER BY amount DESC;
SELECT event, amount, remaining FROM ledger.hold_timeline WHERE hold_id IN (:'e', :'t') ORDER BY id;
SELECT kind, severity, account, details ->> 'external_ref' AS ref, details -> 'remaining' AS remaining
  FROM ledger.alert WHERE kind = 'hold_timed_out';
SELECT open_holds FROM ledger.account_balance b JOIN ledger.account a ON a.id = b.account_id
 WHERE a.code = 'h-bob';
-- after asking the processor: it paid, so capture
SELECT ledger.capture(:'t') IS NOT NULL AS captured_after_timeout;
SELECT count(*) AS stale FROM ledger.stale_holds();
SELECT * FROM held('h-bob');

-- (holds and hot accounts: test/scripts/holds.sh, in the database that
-- serves hot accounts)

-- two-phase commit: a hold, a capture and a void inside prepared transactions
BEGIN;
SELECT ledger.hold('h-alice', 7, 'h-shop') AS tp \gset
PREPARE TRANSACTION 'ledger-holds-1';
SELECT * FROM held('h-alice');
COMMIT PREPARED 'ledger-holds-1';
SELECT * FROM held('h-alice');
BEGIN;
SELECT ledger.capture(:'tp', 2) IS NOT NULL AS captured;
PREPARE TRANSACTION 'ledger-holds-2';
ROLLBACK PREPARED 'ledger-holds-2';
SELECT captured, remaining FROM ledger.holds WHERE id = :'tp';
BEGIN;
SELECT ledger.capture(:'tp', 2) IS NOT NULL AS captured;
SELECT ledger.void(:'tp', 'rest') AS released;
PREPARE TRANSACTION 'ledger-holds-3';
COMMIT PREPARED 'ledger-holds-3';
SELECT state, captured, remaining FROM ledger.holds WHERE id = :'tp';

-- corrections respect holds: money a hold keeps cannot be taken away by
-- invalidating the credit that brought it (LD015, or force and an alert);
-- a capture then still moves the money (the processor may have paid), and
-- a critical alert says the account is below its floor
SELECT ledger.create_account('h-carol', 'USD') > 0 AS ok;
SELECT ledger.transfer('h-world', 'h-carol', 100) AS credit \gset
SELECT ledger.hold('h-carol', 100, 'h-shop') AS ch \gset
SELECT ledger.mark_submitted(:'ch');
SELECT tryh(format('SELECT * FROM ledger.invalidate(%L, %L)', :'credit', 'fraud'));
SELECT account, balance_before, balance_after FROM ledger.invalidate(:'credit', 'fraud', force => true);
SELECT kind, severity, details -> 'not_held' AS not_held, details -> 'shortfall' AS shortfall
  FROM ledger.alert WHERE kind = 'invalidation_below_floor' AND account = 'h-carol';
SELECT ledger.capture(:'ch') AS cc \gset
SELECT kind, severity, details -> 'balance' AS balance, details -> 'captured' AS captured
  FROM ledger.alert WHERE kind = 'capture_below_floor' AND account = 'h-carol';
-- a capture is never invalidated: the hold would stay captured
SELECT tryh(format('SELECT * FROM ledger.invalidate(%L, %L)', :'cc', 'processor reversed'));
SELECT ledger.transfer('h-world', 'h-carol', 100) IS NOT NULL AS refunded;
SELECT ledger.balance('h-carol');

-- a retry of a hold is recognised whatever the session's IntervalStyle
SET IntervalStyle = iso_8601;
SELECT ledger.hold('h-alice', 3, 'h-shop', submit_within => '2 minutes',
                   idempotency_key => 'hk-style') AS st \gset
RESET IntervalStyle;
SELECT ledger.hold('h-alice', 3, 'h-shop', submit_within => '2 minutes',
                   idempotency_key => 'hk-style') = :'st' AS same_hold;
SELECT ledger.void(:'st', 'done') AS released;
-- a void key taken by another hold is refused
SELECT ledger.hold('h-alice', 2, 'h-shop') AS v1 \gset
SELECT ledger.hold('h-alice', 2, 'h-shop') AS v2 \gset
SELECT ledger.void(:'v1', 'done', 'vk-2') AS released;
SELECT tryh(format('SELECT ledger.void(%L, %L, %L)', :'v2', 'done', 'vk-2'));
SELECT ledger.void(:'v2', 'done') AS released;

-- bad input: a clear error, and no row written
SELECT (SELECT count(*) FROM ledger.hold) AS holds,
       (SELECT count(*) FROM ledger.hold_event) AS events,
       (SELECT count(*) FROM ledger.transaction) AS txns,
       (SELECT sum(open_holds) FROM ledger.account_balance) AS open \gset before_
SELECT tryh($$SELECT ledger.hold(NULL, 1, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', NULL, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', mode => NULL)$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', submit_within => NULL)$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', confirm_within => NULL)$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', metadata => NULL)$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 0, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', -1, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 'NaN', 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 'Infinity', 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1.001, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1e30, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1e30 - 0.01, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-nobody', 1, 'h-shop')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-nobody')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-jpy')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-alice')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1)$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', mode => 'shared')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', mode => 'Exclusive')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', submit_within => '0')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', submit_within => '-1 minute')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', submit_within => '91 days')$$);
-- windows far out of range are refused the same way, not overflowed
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', submit_within => '178000000 years')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', confirm_within => '-2147483648 days -2147483648 months')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', confirm_within => '1000 years')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', confirm_within => '-1 microsecond')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', external_ref => E'psp\x01')$$);
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', external_ref => '')$$);
SELECT tryh(format('SELECT ledger.hold(%L, 1, %L, idempotency_key => %L)', 'h-alice', 'h-shop', repeat('k', 256)));
SELECT tryh($$SELECT ledger.hold('h-alice', 1, 'h-shop', metadata => '[1]')$$);
SELECT tryh($$SELECT ledger.hold('h-alice; DROP TABLE ledger.hold; --', 1, 'h-shop')$$);
SELECT tryh($$SELECT ledger.capture(NULL)$$);
SELECT tryh($$SELECT ledger.capture('00000000-0000-0000-0000-000000000000')$$);
SELECT tryh($$SELECT ledger.void('00000000-0000-0000-0000-000000000000', 'x')$$);
SELECT tryh($$SELECT ledger.mark_submitted('00000000-0000-0000-0000-000000000000')$$);
SELECT tryh($$SELECT ledger.mark_submitted(NULL)$$);
SELECT ledger.hold('h-alice', 10, 'h-shop') AS b \gset
SELECT tryh(format('SELECT ledger.capture(%L, 0)', :'b'));
SELECT tryh(format('SELECT ledger.capture(%L, -1)', :'b'));
SELECT tryh(format('SELECT ledger.capture(%L, 0.001)', :'b'));
SELECT tryh(format('SELECT ledger.capture(%L, %L)', :'b', 'NaN'));
SELECT tryh(format('SELECT ledger.void(%L, NULL)', :'b'));
SELECT tryh(format('SELECT ledger.void(%L, %L)', :'b', ''));
SELECT ledger.void(:'b', 'cleanup') AS released;
SELECT (SELECT count(*) FROM ledger.hold) - :before_holds AS new_holds,
       (SELECT count(*) FROM ledger.hold_event) - :before_events AS new_events,
       (SELECT count(*) FROM ledger.transaction) = :before_txns AS no_new_txns,
       (SELECT sum(open_holds) FROM ledger.account_balance) = :before_open AS open_unchanged;
SELECT tryh($$SELECT ledger.available_balance('h-nobody')$$);
SELECT tryh($$SELECT ledger.available_balance(NULL)$$);
SELECT ledger.available_balance('h-world') IS NULL AS unbounded;

-- what is recorded adds up: every open count matches the holds, and
-- reconcile finds nothing wrong
SELECT a.code, b.open_holds,
       (SELECT count(*) FROM ledger.hold h WHERE h.account_id = a.id
         AND h.state IN ('reserved', 'submitted', 'timed_out')) AS unfinished
  FROM ledger.account a JOIN ledger.account_balance b ON b.account_id = a.id
 WHERE a.code LIKE 'h-%' ORDER BY a.code;
SELECT count(*) AS clean FROM ledger.reconcile();
