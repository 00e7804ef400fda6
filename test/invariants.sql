-- test/invariants.sql: the ledger's invariants, checked by every scripted
-- test (check_invariants in test/lib.sh).  One row per broken invariant,
-- none when all hold.  Read-only, one statement, one snapshot; run it when
-- no posting is in flight (the escrow check needs that).
WITH bal AS (
    SELECT a.id, a.code, a.asset, a.min_balance, e.balance
      FROM ledger.account a
      JOIN ledger.effective_balance e ON e.account_id = a.id),
jr AS (
    SELECT account_id, sum(amount) AS total
      FROM ledger.journal_entry WHERE NOT is_invalidated GROUP BY account_id),
live AS (
    SELECT j.transaction_id, a.asset, j.amount
      FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
     WHERE NOT j.is_invalidated)
-- each balance (folded plus unfolded hot entries) is its journal's sum
SELECT 'balance equals journal' AS invariant,
       format('%s: balance %s, journal %s', b.code, b.balance, coalesce(j.total, 0)) AS detail
  FROM bal b LEFT JOIN jr j ON j.account_id = b.id
 WHERE b.balance <> coalesce(j.total, 0)
UNION ALL
SELECT 'every account has a balance row', a.code
  FROM ledger.account a
 WHERE NOT EXISTS (SELECT 1 FROM ledger.account_balance b WHERE b.account_id = a.id)
UNION ALL
SELECT 'every asset nets to zero', format('%s: %s', asset, sum(amount))
  FROM live GROUP BY asset HAVING sum(amount) <> 0
UNION ALL
SELECT 'every transaction nets to zero per asset', format('%s in %s: %s', transaction_id, asset, sum(amount))
  FROM live GROUP BY transaction_id, asset HAVING sum(amount) <> 0
UNION ALL
SELECT 'every entry has its transaction', format('entry %s', j.id)
  FROM ledger.journal_entry j
 WHERE NOT EXISTS (SELECT 1 FROM ledger.transaction t WHERE t.id = j.transaction_id)
UNION ALL
SELECT 'entries are invalidated with their transaction', format('transaction %s', t.id)
  FROM ledger.transaction t JOIN ledger.journal_entry j ON j.transaction_id = t.id
 WHERE j.is_invalidated <> t.is_invalidated
UNION ALL
-- a forced invalidation may leave an account below its floor; it alerts.
-- An account created with a floor above zero starts below it, until it is
-- paid in: only a debit can break the floor, a transaction whose net
-- effect on the account is negative (a post may credit and debit it)
SELECT 'floors hold', format('%s: %s below floor %s', b.code, b.balance, b.min_balance)
  FROM bal b
 WHERE b.balance < b.min_balance
   AND EXISTS (SELECT 1 FROM ledger.journal_entry j
                WHERE j.account_id = b.id AND NOT j.is_invalidated
                GROUP BY j.transaction_id HAVING sum(j.amount) < 0)
   AND NOT EXISTS (SELECT 1 FROM ledger.alert l
                    WHERE l.account_id = b.id AND l.kind = 'invalidation_below_floor')
UNION ALL
SELECT 'daily rows equal the journal',
       format('account %s, day %s: debits %s/%s, credits %s/%s, closing %s/%s',
              coalesce(d.account_id, x.account_id), coalesce(d.day, x.day),
              d.debits, x.debits, d.credits, x.credits, d.balance, x.balance)
  FROM ledger.effective_daily_balance d
  FULL JOIN ledger.expected_daily_balance x ON x.account_id = d.account_id AND x.day = d.day
 WHERE (d.debits, d.credits, d.balance) IS DISTINCT FROM (x.debits, x.credits, x.balance)
UNION ALL
-- holds: what an account keeps never takes it below its floor (a forced
-- invalidation may, as for the floor above; it alerts)
SELECT 'holds stay within balance and floor',
       format('%s: balance %s, held exclusively %s, shared %s, floor %s',
              o.code, o.balance, o.held_exclusive, o.held_shared, o.min_balance)
  FROM ledger.account_overview o
 WHERE o.balance - o.held_exclusive - o.held_shared < o.min_balance
   AND (o.held_exclusive + o.held_shared > 0 OR o.balance >= o.min_balance)
   AND NOT EXISTS (SELECT 1 FROM ledger.alert l JOIN ledger.account a ON a.id = l.account_id
                    WHERE a.code = o.code AND l.kind = 'invalidation_below_floor')
UNION ALL
SELECT 'open hold counts match the holds',
       format('account %s: open_holds %s, unfinished holds %s', b.account_id, b.open_holds,
              (SELECT count(*) FROM ledger.hold h WHERE h.account_id = b.account_id
                 AND h.state IN ('reserved', 'submitted', 'timed_out')))
  FROM ledger.account_balance b
 WHERE b.open_holds <> (SELECT count(*) FROM ledger.hold h WHERE h.account_id = b.account_id
                          AND h.state IN ('reserved', 'submitted', 'timed_out'))
UNION ALL
-- every captured amount is in the journal exactly once: per hold, the
-- capture events, the capture transactions' debits and the captured column
-- agree; and amount = captured + remaining + released
SELECT 'captures are in the journal once',
       format('hold %s: captured %s, capture events %s, journal %s', h.id, h.captured,
              coalesce(ev.captured, 0), coalesce(jn.debited, 0))
  FROM ledger.hold h
  LEFT JOIN (SELECT hold_id, sum(amount) AS captured FROM ledger.hold_event
              WHERE event = 'captured' GROUP BY hold_id) ev ON ev.hold_id = h.id
  LEFT JOIN (SELECT (t.metadata ->> 'hold_id')::uuid AS hold_id, -sum(j.amount) AS debited
               FROM ledger.transaction t JOIN ledger.journal_entry j ON j.transaction_id = t.id
              WHERE t.kind = 'capture' AND j.amount < 0 AND NOT j.is_invalidated
              GROUP BY 1) jn ON jn.hold_id = h.id
 WHERE h.captured <> coalesce(ev.captured, 0) OR h.captured <> coalesce(jn.debited, 0)
UNION ALL
SELECT 'hold amounts add up',
       format('hold %s: amount %s, captured %s, remaining %s, released %s',
              h.id, h.amount, h.captured, h.remaining, coalesce(r.released, 0))
  FROM ledger.hold h
  LEFT JOIN (SELECT hold_id, sum(amount) AS released FROM ledger.hold_event
              WHERE event IN ('voided', 'expired') GROUP BY hold_id) r ON r.hold_id = h.id
 WHERE h.amount <> h.captured + h.remaining + coalesce(r.released, 0)
    OR (h.state IN ('captured', 'voided', 'expired')) <> (h.remaining = 0 AND h.finished_at IS NOT NULL)
UNION ALL
-- a transaction or hold that names an event names one that exists, at or
-- below the appliers' pointer
SELECT 'rows name applied events', format('%s %s: event %s (%s)', r.what, r.id, r.event_seq, r.event_id)
  FROM (SELECT 'transaction' AS what, id, event_seq, event_id FROM ledger.transaction
         WHERE event_seq IS NOT NULL
        UNION ALL
        SELECT 'hold', id, event_seq, event_id FROM ledger.hold WHERE event_seq IS NOT NULL) r
  LEFT JOIN ledger.event e ON e.seq = r.event_seq AND e.id = r.event_id
 WHERE e.seq IS NULL
    OR r.event_seq > (SELECT coalesce(max(last_sequence), 0) FROM ledger.projection)
UNION ALL
-- an outbox message's state agrees with its columns
SELECT 'outbox states are whole', format('message %s: %s, leased until %s, delivered at %s',
                                         id, state, leased_until, delivered_at)
  FROM ledger.outbox
 WHERE (state = 'leased') <> (leased_until IS NOT NULL)
    OR (state = 'delivered') <> (delivered_at IS NOT NULL)
    OR attempts < 0
UNION ALL
-- an exchange's token row matches its legs and the rounding rule
SELECT 'token rows match their legs', format('token row %s of transaction %s', k.id, k.transaction_id)
  FROM ledger.token_transaction k JOIN ledger.asset q ON q.code = k.quote_asset
 WHERE NOT k.is_invalidated AND k.spread IS NOT NULL
   AND (k.quote_amount <> trunc(k.token_amount * k.rate, q.scale)
        OR k.spread_amount <> trunc(k.quote_amount * k.spread, q.scale)
        OR (SELECT sum(j.amount) FROM ledger.journal_entry j
             WHERE j.transaction_id = k.transaction_id AND j.account_id = k.account_id) <> -k.token_amount
        OR (SELECT sum(j.amount) FROM ledger.journal_entry j
             WHERE j.transaction_id = k.transaction_id AND j.account_id = k.to_account_id)
           <> k.quote_amount - k.spread_amount)
UNION ALL
-- a keyed transaction's key is in its debited account's owner's space (a
-- post's: the debited account with the smallest code)
SELECT 'idempotency keys are scoped by owner',
       format('%s: scope %s, debited account''s owner %s', t.id, t.idempotency_scope, o.owner)
  FROM ledger.transaction t
  CROSS JOIN LATERAL (SELECT coalesce(a.owner_id, '') AS owner
                        FROM ledger.journal_entry j JOIN ledger.account a ON a.id = j.account_id
                       WHERE j.transaction_id = t.id AND j.amount < 0
                       ORDER BY CASE WHEN t.kind = 'post' THEN a.code COLLATE "C" END, j.id + 0
                       LIMIT 1) o
 WHERE t.idempotency_key IS NOT NULL AND t.idempotency_scope IS DISTINCT FROM o.owner
UNION ALL
-- with nothing in flight, a hot account's escrow is its balance
SELECT 'escrow equals balance',
       format('%s: escrow %s, reserved %s, in flight %s, balance %s',
              h.account, h.committed, h.reserved, h.inflight, b.balance)
  FROM ledger.hot_accounts() h JOIN bal b ON b.id = h.account_id
 WHERE h.committed <> b.balance OR h.reserved <> 0 OR h.inflight <> 0;
