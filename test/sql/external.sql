-- external: a processor's statements (import_statement) and their
-- comparison with holds (reconcile_external), every mismatch kind
SELECT ledger.create_account('x2-world', 'USD', min_balance => NULL) > 0 AS ok;
SELECT ledger.create_account('x2-user', 'USD') > 0 AS ok;
SELECT ledger.create_account('x2-psp', 'USD') > 0 AS ok;
SELECT ledger.transfer('x2-world', 'x2-user', 1000) IS NOT NULL AS funded;

-- our side: six payments sent to the processor "acme"
SELECT ledger.hold('x2-user', 10, 'x2-psp', external_ref => 'ok-1') AS ok1 \gset
SELECT ledger.hold('x2-user', 20, 'x2-psp', external_ref => 'gone-1') AS gone1 \gset
SELECT ledger.hold('x2-user', 30, 'x2-psp', external_ref => 'amt-1') AS amt1 \gset
SELECT ledger.hold('x2-user', 40, 'x2-psp', external_ref => 'paid-1') AS paid1 \gset
SELECT ledger.hold('x2-user', 50, 'x2-psp', external_ref => 'fail-1') AS fail1 \gset
SELECT ledger.hold('x2-user', 60, 'x2-psp', external_ref => 'never-sent') AS never \gset
SELECT ledger.hold('x2-user', 70, 'x2-psp', external_ref => 'other-1',
                   metadata => '{"source": "other"}') AS other1 \gset
SELECT ledger.mark_submitted(h) FROM unnest(ARRAY[:'ok1', :'gone1', :'amt1', :'paid1', :'fail1', :'other1']::uuid[]) h;
SELECT ledger.capture(:'ok1') IS NOT NULL AS captured;       -- they paid 10: fine
SELECT ledger.capture(:'amt1') IS NOT NULL AS captured;      -- they paid 31: amount_mismatch
SELECT ledger.void(:'paid1', 'we thought it failed');        -- they paid: status_mismatch
SELECT ledger.capture(:'fail1') IS NOT NULL AS captured;     -- they failed: status_mismatch
SELECT ledger.void(:'never', 'never sent');                  -- not sent: nothing expected
-- gone-1 was submitted but is not in their statement: missing_theirs
-- retry-1: a first attempt voided, the retry captured: one payment, fine
SELECT ledger.void(ledger.hold('x2-user', 15, 'x2-psp', external_ref => 'retry-1'), 'timeout, retried');
SELECT ledger.capture(ledger.hold('x2-user', 15, 'x2-psp', external_ref => 'retry-1')) IS NOT NULL AS captured;
-- twice-1: the processor paid once, we captured two holds: amount_mismatch
SELECT ledger.capture(ledger.hold('x2-user', 25, 'x2-psp', external_ref => 'twice-1')) IS NOT NULL AS captured;
SELECT ledger.capture(ledger.hold('x2-user', 25, 'x2-psp', external_ref => 'twice-1')) IS NOT NULL AS captured;
-- nosub-1: captured without mark_submitted, unknown to them: missing_theirs
SELECT ledger.capture(ledger.hold('x2-user', 5, 'x2-psp', external_ref => 'nosub-1')) IS NOT NULL AS captured;

-- their side
SELECT ledger.import_statement('acme', jsonb_build_array(
    jsonb_build_object('external_ref', 'ok-1', 'amount', 10, 'asset', 'USD', 'status', 'succeeded', 'occurred_at', now()::text),
    jsonb_build_object('external_ref', 'amt-1', 'amount', '31.00', 'asset', 'USD', 'status', 'succeeded', 'occurred_at', now()::text),
    jsonb_build_object('external_ref', 'paid-1', 'amount', 40, 'asset', 'USD', 'status', 'succeeded', 'occurred_at', now()::text),
    jsonb_build_object('external_ref', 'fail-1', 'amount', 50, 'asset', 'USD', 'status', 'failed', 'occurred_at', now()::text),
    jsonb_build_object('external_ref', 'unknown-1', 'amount', 5, 'asset', 'USD', 'status', 'succeeded', 'occurred_at', now()::text),
    jsonb_build_object('external_ref', 'retry-1', 'amount', 15, 'asset', 'USD', 'status', 'succeeded', 'occurred_at', now()::text),
    jsonb_build_object('external_ref', 'twice-1', 'amount', 25, 'asset', 'USD', 'status', 'succeeded', 'occurred_at', now()::text)
)) AS imported;
-- importing the same records again changes nothing; a changed record is a new version
SELECT ledger.import_statement('acme', jsonb_build_array(
    jsonb_build_object('external_ref', 'ok-1', 'amount', 10.00, 'asset', 'USD', 'status', 'succeeded',
                       'occurred_at', (SELECT occurred_at FROM ledger.external_record WHERE external_ref = 'ok-1')::text)
)) AS reimported;
SELECT ledger.import_statement('acme', jsonb_build_array(
    jsonb_build_object('external_ref', 'unknown-1', 'amount', 5, 'asset', 'USD', 'status', 'reversed', 'occurred_at', now()::text)
)) AS changed;
-- replaying the older version later writes nothing: the newest still counts
SELECT ledger.import_statement('acme', jsonb_build_array(
    jsonb_build_object('external_ref', 'unknown-1', 'amount', 5, 'asset', 'USD', 'status', 'succeeded',
                       'occurred_at', (SELECT occurred_at FROM ledger.external_record
                                        WHERE external_ref = 'unknown-1' AND version = 1)::text)
)) AS replayed_old;
SELECT external_ref, version, amount, status FROM ledger.external_record ORDER BY external_ref, version;
-- the record is append-only
SELECT try($$UPDATE ledger.external_record SET amount = 1$$) LIKE 'LD006:%' AS append_only;

-- the comparison, over a window that holds everything above
SELECT external_ref, kind, ours ->> 'holds' AS holds, ours ->> 'state' AS our_state,
       ours ->> 'captured' AS captured, theirs ->> 'status' AS their_status,
       theirs ->> 'amount' AS their_amount
  FROM ledger.reconcile_external('acme', now() - interval '1 hour', now() + interval '1 hour');
-- each mismatch is alerted, naming the account
SELECT kind, account, details ->> 'external_ref' AS ref
  FROM ledger.alert WHERE kind LIKE 'external_%' ORDER BY id;
-- a window with nothing in it reports nothing
SELECT count(*) FROM ledger.reconcile_external('acme', now() - interval '2 days', now() - interval '1 day');

-- bad input
SELECT try($$SELECT ledger.import_statement(NULL, '[]')$$);
SELECT try($$SELECT ledger.import_statement('acme', NULL)$$);
SELECT try($$SELECT ledger.import_statement('acme', '{}')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[1]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 1, "asset": "USD", "status": "succeeded"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 1, "asset": "USD", "status": "paid", "occurred_at": "2026-01-01"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 1, "asset": "USD", "status": "failed", "occurred_at": "yesterday-ish"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 1, "asset": "USD", "status": "failed", "occurred_at": "infinity"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 0, "asset": "USD", "status": "failed", "occurred_at": "2026-01-01"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 1.001, "asset": "USD", "status": "failed", "occurred_at": "2026-01-01"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 1e30, "asset": "USD", "status": "failed", "occurred_at": "2026-01-01"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": "1e3", "asset": "USD", "status": "failed", "occurred_at": "2026-01-01"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "r", "amount": 1, "asset": "XXX", "status": "failed", "occurred_at": "2026-01-01"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "", "amount": 1, "asset": "USD", "status": "failed", "occurred_at": "2026-01-01"}]')$$);
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "a\u0001b", "amount": 1, "asset": "USD", "status": "failed", "occurred_at": "2026-01-01"}]')$$);
-- a bad record anywhere imports nothing
SELECT try($$SELECT ledger.import_statement('acme', '[{"external_ref": "good", "amount": 1, "asset": "USD", "status": "failed", "occurred_at": "2026-01-01"}, {"external_ref": "bad"}]')$$);
SELECT count(*) AS good_not_imported FROM ledger.external_record WHERE external_ref = 'good';
SELECT try($$SELECT * FROM ledger.reconcile_external('acme', now(), now() - interval '1 day')$$);
SELECT try($$SELECT * FROM ledger.reconcile_external(NULL, now(), now())$$);
SELECT try($$SELECT * FROM ledger.reconcile_external('acme', NULL, now())$$);
