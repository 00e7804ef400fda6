-- outbox: enqueue in the caller's transaction, claim with leases and
-- per-key order, ack, fail with backoff and dead letters, retry, the
-- ledger's own messages, bad input.
SET ledger.outbox_backoff = 0;
SET ledger.outbox_max_attempts = 3;

-- a message exists exactly when its transaction commits
BEGIN;
SELECT ledger.enqueue('mail', 'user-1', '{"n": 1}') > 0 AS enqueued;
ROLLBACK;
SELECT count(*) AS after_rollback FROM ledger.outbox WHERE topic = 'mail';
SELECT ledger.enqueue('mail', 'user-1', '{"n": 1}') AS m1 \gset
SELECT ledger.enqueue('mail', 'user-1', '{"n": 2}') AS m2 \gset
SELECT ledger.enqueue('mail', 'user-2', '{"n": 3}') AS m3 \gset
SELECT ledger.enqueue('hook', 'user-3', '{"n": 4}') AS m4 \gset

-- one message per topic and key at a time, oldest first; topics filter
SELECT ledger.enqueue('hook', 'user-1', '{"n": 5}') AS m5 \gset
SELECT id = :m1 AS m1, id = :m3 AS m3, topic, key, payload, attempts
  FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']) ORDER BY id;
SELECT count(*) AS nothing_more_for_mail FROM ledger.outbox_claim('c2', 10, '30 s', ARRAY['mail']);
SELECT topic, key, payload FROM ledger.outbox_claim('c2', 10, '30 s', ARRAY['hook', 'mail']);
SELECT state, leased_by, attempts FROM ledger.outbox WHERE id IN (:m1, :m2, :m3, :m4) ORDER BY id;

-- ack: delivered; the key's next message becomes claimable.  Named, only
-- the lease's holder may settle it.
SELECT regexp_replace(try(format('SELECT ledger.outbox_ack(%s, %L)', :m1, 'c2')), 'message [0-9]+', 'message N', 'g') AS try;
SELECT regexp_replace(try(format('SELECT ledger.outbox_fail(%s, %L, %L)', :m1, 'x', 'c2')), 'message [0-9]+', 'message N', 'g') AS try;
SELECT ledger.outbox_ack(:m1, 'c1') AS acked;
SELECT ledger.outbox_ack(:m1) AS acked_again;
SELECT ledger.outbox_ack(:m1, 'c2') AS acked_again_named;
SELECT payload FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']);

-- release: a leased message given back unsent, its attempt not counted
SELECT ledger.enqueue('mail', 'user-9', '{"n": 9}') AS m9 \gset
SELECT attempts FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']) WHERE id = :m9;
SELECT regexp_replace(try(format('SELECT ledger.outbox_release(%s, %L)', :m9, 'c2')), 'message [0-9]+', 'message N', 'g') AS try;
SELECT ledger.outbox_release(:m9, 'c1') AS released;
SELECT state, attempts, leased_until IS NULL AS no_lease FROM ledger.outbox WHERE id = :m9;
SELECT regexp_replace(try(format('SELECT ledger.outbox_release(%s)', :m9)), 'message [0-9]+', 'message N', 'g') AS try;
SELECT attempts FROM ledger.outbox_claim('c2', 10, '30 s', ARRAY['mail']) WHERE id = :m9;
SELECT ledger.outbox_ack(:m9, 'c2') AS acked;

-- fail: back to pending after the backoff, dead after max attempts
SELECT ledger.outbox_fail(:m3, 'smtp 451') AS state;
SELECT attempts, last_error, state FROM ledger.outbox WHERE id = :m3;
SELECT key, attempts FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']);
SELECT ledger.outbox_fail(:m3, 'smtp 451') AS state;
SELECT key, attempts FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']);
SELECT ledger.outbox_fail(:m3, 'smtp 550 no such user') AS state;
SELECT id = :m3 AS m3, attempts, last_error FROM ledger.outbox_dead_letters;
SELECT topic, pending, leased, dead, delivered FROM ledger.outbox_status WHERE topic IN ('mail', 'hook') ORDER BY topic;
SELECT ledger.outbox_retry(:m3) AS retried;
SELECT state, attempts FROM ledger.outbox WHERE id = :m3;

-- backoff doubles per attempt, up to the cap
SET ledger.outbox_backoff = '10s';
SET ledger.outbox_max_backoff = '25s';
SELECT count(*) AS claimed FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']);
SELECT ledger.outbox_fail(:m3, 'try 1') AS state;
SELECT round(extract(epoch FROM available_at - now())) AS wait_1 FROM ledger.outbox WHERE id = :m3;
SELECT count(*) AS not_yet FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']) WHERE id = :m3;
UPDATE ledger.outbox SET available_at = now() WHERE id = :m3;
SELECT count(*) AS claimed FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']) WHERE id = :m3;
SELECT ledger.outbox_fail(:m3, 'try 2') AS state;
SELECT round(extract(epoch FROM available_at - now())) AS wait_2 FROM ledger.outbox WHERE id = :m3;
UPDATE ledger.outbox SET available_at = now() WHERE id = :m3;
SELECT count(*) AS claimed FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']) WHERE id = :m3;
SELECT ledger.outbox_fail(:m3, 'try 3') AS state;
SELECT round(extract(epoch FROM available_at - now())) AS wait_3_capped FROM ledger.outbox WHERE id = :m3;
RESET ledger.outbox_backoff;
RESET ledger.outbox_max_backoff;

-- a lease that runs out: claimed again (attempt counted), dead at the last
SELECT ledger.outbox_retry(:m3) AS retried;
SELECT attempts FROM ledger.outbox_claim('c1', 10, '30 s', ARRAY['mail']) WHERE id = :m3;
UPDATE ledger.outbox SET leased_until = now() - interval '1 s' WHERE id = :m3;
SELECT attempts FROM ledger.outbox_claim('c2', 10, '30 s', ARRAY['mail']) WHERE id = :m3;
UPDATE ledger.outbox SET leased_until = now() - interval '1 s' WHERE id = :m3;
SELECT attempts FROM ledger.outbox_claim('c3', 10, '30 s', ARRAY['mail']) WHERE id = :m3;
UPDATE ledger.outbox SET leased_until = now() - interval '1 s' WHERE id = :m3;
SELECT count(*) AS claimed FROM ledger.outbox_claim('c4', 10, '30 s', ARRAY['mail']) WHERE id = :m3;
SELECT state, last_error FROM ledger.outbox WHERE id = :m3;

-- settling what is not leased
SELECT try($$SELECT ledger.outbox_ack(-1)$$);
SELECT regexp_replace(try(format('SELECT ledger.outbox_fail(%s, %L)', :m3, 'x')), 'message [0-9]+', 'message N', 'g') AS try;
SELECT regexp_replace(try(format('SELECT ledger.outbox_ack(%s)', :m3)), 'message [0-9]+', 'message N', 'g') AS try;
SELECT regexp_replace(try(format('SELECT ledger.outbox_retry(%s)', :m1)), 'message [0-9]+', 'message N', 'g') AS try;
SELECT try($$SELECT ledger.outbox_retry(-1)$$);

-- the ledger's own messages: an expired hold (alerts: see event_apply)
SELECT ledger.create_account('ob-a', 'USD') > 0 AS ok;
SELECT ledger.create_account('ob-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.transfer('ob-world', 'ob-a', 10.00) IS NOT NULL AS funded;
SELECT ledger.hold('ob-a', 4.00, 'ob-world', submit_within => '1 ms') AS h \gset
SELECT pg_sleep(0.01);
SELECT ledger.expire_holds() >= 1 AS expired;
SELECT topic, key, payload ->> 'amount' AS amount, payload ->> 'released' AS released,
       regexp_replace(regexp_replace(payload ->> 'submit_deadline', '(\.[0-9]+)?([+-][0-9]{2}:[0-9]{2})$', '.F\2'), '[0-9]', 'N', 'g') AS deadline_iso_utc
  FROM ledger.outbox WHERE topic = 'ledger.hold_expired' AND payload ->> 'hold_id' = :'h';

-- bad input
SELECT try($$SELECT ledger.enqueue(NULL, 'k', '{}')$$);
SELECT try($$SELECT ledger.enqueue('t', NULL, '{}')$$);
SELECT try($$SELECT ledger.enqueue('t', 'k', NULL)$$);
SELECT try($$SELECT ledger.enqueue('', 'k', '{}')$$);
SELECT try($$SELECT ledger.enqueue(repeat('t', 256), 'k', '{}')$$);
SELECT try($$SELECT ledger.enqueue('ledger.alert', 'k', '{}')$$);
SELECT try($$SELECT ledger.enqueue('t', 'k', jsonb_build_object('big', repeat('x', 70000)))$$);
SELECT try($$SELECT ledger.enqueue(E't\u0001', 'k', '{}')$$);
SELECT try($$SELECT * FROM ledger.outbox_claim(NULL)$$);
SELECT try($$SELECT * FROM ledger.outbox_claim('c', 0)$$);
SELECT try($$SELECT * FROM ledger.outbox_claim('c', 10001)$$);
SELECT try($$SELECT * FROM ledger.outbox_claim('c', 1, '0.5 s')$$);
SELECT try($$SELECT * FROM ledger.outbox_claim('c', 1, '2 days')$$);
SELECT try($$SELECT * FROM ledger.outbox_claim('c', 1, '1 day 1 s')$$);
SELECT count(*) AS a_day_is_fine FROM ledger.outbox_claim('c', 1, '1 day', ARRAY['none']);
SELECT try($$SELECT ledger.outbox_ack(1, '')$$);
SELECT try($$SELECT * FROM ledger.outbox_claim('c', 1, '30 s', ARRAY['a', NULL])$$);
SELECT try($$SELECT ledger.outbox_fail(1, NULL)$$);
SELECT try($$SELECT ledger.outbox_fail(1, repeat('e', 9000))$$);
SELECT count(*) AS untouched FROM ledger.outbox WHERE topic = 't';
