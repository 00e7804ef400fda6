'use strict';
// The typed calls: holds, batches, corrections, events, outbox, statements,
// status functions.

const { test, before, after } = require('node:test');
const { L, pool, name, rejects, assert } = require('./helpers');

let db;
let ledger;
const USD = name('A-USD');
const world = name('a-world');
const alice = name('a-alice');
const bob = name('a-bob');
const psp = name('a-psp');

before(async () => {
    db = pool();
    ledger = new L.Ledger(db);
    await ledger.createAsset(USD, 2);
    await ledger.createAccount(world, USD, { minBalance: null });
    await ledger.createAccount(alice, USD, { ownerId: name('user-a'), metadata: { tier: 'gold' } });
    await ledger.createAccount(bob, USD);
    await ledger.createAccount(psp, USD);
    await ledger.transfer(world, alice, '100.00', { idempotencyKey: name('deposit-1') });
});

after(async () => {
    await db.end();
});

test('holds: reserve, submit, partial capture, void the rest', async () => {
    const ref = name('wd');
    const h = await ledger.hold(alice, '25.00', { toAccount: psp, externalRef: ref, idempotencyKey: `${ref}-hold`, submitWithin: '5 minutes' });
    assert.equal(await ledger.hold(alice, '25.00', { toAccount: psp, externalRef: ref, idempotencyKey: `${ref}-hold`, submitWithin: '5 minutes' }), h,
        'a retried hold returns the same id');
    assert.equal(await ledger.availableBalance(alice), '75.00');
    await ledger.markSubmitted(h);
    const cap = await ledger.capture(h, { amount: '10.00', idempotencyKey: `${ref}-cap1` });
    assert.equal(await ledger.capture(h, { amount: '10.00', idempotencyKey: `${ref}-cap1` }), cap, 'a retried capture returns the same transaction');
    assert.equal(await ledger.balance(psp), '10.00');
    assert.equal(await ledger.void(h, 'declined', { idempotencyKey: `${ref}-void` }), '15.00');
    assert.equal(await ledger.availableBalance(alice), '90.00');
    const state = await ledger.query('SELECT state, captured, remaining FROM ledger.holds WHERE id = $1', [h]);
    assert.deepEqual(state.rows[0], { state: 'voided', captured: '10.00', remaining: '0.00' });
    assert.deepEqual((await ledger.staleHolds()).filter((s) => s.account === alice), []);
    assert.equal(typeof await ledger.expireHolds(), 'number');
});

test('transferBatch: per-item refusals, keys replayed, atomic refusals thrown', async () => {
    const k = name('tb');
    const items = await ledger.transferBatch([
        { fromAccount: alice, toAccount: bob, amount: '10.00', idempotencyKey: `${k}-1` },
        { fromAccount: alice, toAccount: bob, amount: '5000.00', idempotencyKey: `${k}-2` },
        { fromAccount: bob, toAccount: 'no-such', amount: '1.00' },
        { fromAccount: bob, toAccount: alice, amount: '1.00', metadata: { memo: 'back' } },
    ]);
    assert.deepEqual(items.map((i) => [i.item, i.result]), [[1, 'ok'], [2, 'LD001'], [3, 'LD002'], [4, 'ok']]);
    assert.match(items[0].transactionId, /^[0-9a-f-]{36}$/);
    assert.equal(items[1].transactionId, null);
    // each refused item's facts, from the result's facts column
    assert.equal(items[1].facts.sqlstate, 'LD001');
    assert.equal(items[1].facts.account, alice);
    assert.equal(typeof items[1].facts.available, 'string');
    assert.equal(items[2].facts.sqlstate, 'LD002');
    assert.deepEqual(items[0].facts, {});
    const err = items[1].error();
    assert.ok(err instanceof L.InsufficientFunds);
    assert.equal(err.facts.requested, items[1].facts.requested);
    assert.equal(err.context, 'batch item 2');
    assert.match(err.detail, /available/);
    assert.ok(items[2].error() instanceof L.UnknownAccount);
    assert.throws(() => L.raiseFirst(items), L.InsufficientFunds);
    // a retried batch returns the first transactions for its keys
    const again = await ledger.transferBatch([{ fromAccount: alice, toAccount: bob, amount: '10.00', idempotencyKey: `${k}-1` }]);
    assert.equal(again[0].transactionId, items[0].transactionId);
    const before = await ledger.balance(bob);
    const e = await rejects(ledger.transferBatch([
        { fromAccount: alice, toAccount: bob, amount: '1.00' },
        { fromAccount: alice, toAccount: bob, amount: '9999.00' },
    ], { atomic: true }), L.InsufficientFunds, 'LD001');
    assert.equal(e.facts.requested, '9999.00');
    assert.equal(await ledger.balance(bob), before, 'an atomic batch that fails writes nothing');
});

test('postBatch: legs as objects, per-item results', async () => {
    const k = name('pb');
    const items = await ledger.postBatch([
        { legs: [{ account: alice, amount: '-2.50' }, { account: bob, amount: '2.50' }], idempotencyKey: `${k}-1`, metadata: { run: 7 } },
        { legs: [{ account: alice, amount: '-1.00' }, { account: bob, amount: '2.00' }] },
        { legs: [{ account: bob, amount: '-0.50' }, { account: alice, amount: '0.25' }, { account: psp, amount: '0.25' }] },
    ]);
    assert.deepEqual(items.map((i) => i.result), ['ok', 'LD008', 'ok']);
    assert.ok(items[1].error() instanceof L.UnbalancedPosting);
    const tx = await ledger.post([{ account: bob, amount: '-1.00' }, { account: alice, amount: '1.00' }],
        { idempotencyKey: `${k}-single`, metadata: { memo: 'post' } });
    const meta = await ledger.query('SELECT metadata FROM ledger.transaction WHERE id = $1', [tx]);
    assert.deepEqual(meta.rows[0].metadata, { memo: 'post' });
});

test('holdBatch, captureBatch, voidBatch: per-item refusals, keys, atomic', async () => {
    const a = name('a-hb');
    await ledger.createAccount(a, USD);
    await ledger.transfer(world, a, '50.00');
    const k = name('hb');
    const holds = await ledger.holdBatch([
        { fromAccount: a, amount: '30.00', toAccount: psp, externalRef: k, submitWithin: '4 minutes',
          confirmWithin: '90 seconds', idempotencyKey: `${k}-h1`, metadata: { n: 1, fee: '0.25' } },
        { fromAccount: a, amount: '25.00', toAccount: psp },                  // 20.00 is left
        { fromAccount: a, amount: 5n, mode: 'shared' },                        // defaults for the rest
    ]);
    assert.deepEqual(holds.map((i) => [i.item, i.result]), [[1, 'ok'], [2, 'LD001'], [3, 'ok']]);
    assert.match(holds[0].holdId, /^[0-9a-f-]{36}$/);
    assert.equal(holds[0].holdId, holds[0].transactionId);
    assert.equal(holds[1].holdId, null);
    assert.equal(holds[1].facts.sqlstate, 'LD001');
    assert.equal(holds[1].facts.account, a);
    assert.equal(holds[1].facts.requested, '25.00');
    const err = holds[1].error();
    assert.ok(err instanceof L.InsufficientFunds);
    assert.equal(err.facts.requested, '25.00');
    assert.equal(err.context, 'batch item 2');
    const row = await ledger.query(
        "SELECT mode, submit_within::text AS s, confirm_within::text AS c, external_ref, metadata FROM ledger.hold WHERE id = $1",
        [holds[0].holdId]);
    assert.deepEqual(row.rows[0], { mode: 'exclusive', s: '00:04:00', c: '00:01:30', external_ref: k, metadata: { n: 1, fee: '0.25' } });
    const shared = await ledger.query(
        'SELECT mode, submit_within::text AS s, confirm_within::text AS c, to_account_id FROM ledger.hold WHERE id = $1',
        [holds[2].holdId]);
    assert.deepEqual(shared.rows[0], { mode: 'shared', s: '00:03:00', c: '00:06:00', to_account_id: null });
    assert.equal(await ledger.availableBalance(a), '15.00');
    const again = await ledger.holdBatch([{ fromAccount: a, amount: '30.00', toAccount: psp, externalRef: k, submitWithin: '4 minutes',
        confirmWithin: '90 seconds', idempotencyKey: `${k}-h1`, metadata: { n: 1, fee: '0.25' } }]);
    assert.equal(again[0].holdId, holds[0].holdId, 'a retried batch replays the key');

    // captures: a partial one, then more than remains (LD025), then the key replayed
    const h = holds[0].holdId;
    const pspBefore = await ledger.balance(psp);
    const caps = await ledger.captureBatch([
        { holdId: h, amount: '12.50', idempotencyKey: `${k}-c1` },
        { holdId: h, amount: '18.00' },
        { holdId: h, amount: '12.50', idempotencyKey: `${k}-c1` },
    ]);
    assert.deepEqual(caps.map((i) => i.result), ['ok', 'LD025', 'ok']);
    assert.match(caps[0].transactionId, /^[0-9a-f-]{36}$/);
    assert.equal(caps[2].transactionId, caps[0].transactionId);
    const over = caps[1].error();
    assert.ok(over instanceof L.HoldExceeded);
    assert.equal(over.facts.sqlstate, 'LD025');
    assert.equal(over.facts.remaining, '17.50');
    assert.equal(over.facts.requested, '18.00');
    assert.equal((Number(await ledger.balance(psp)) - Number(pspBefore)).toFixed(2), '12.50');

    // atomic: the first refusal is thrown, nothing written
    const e = await rejects(ledger.captureBatch([{ holdId: h, amount: '1.00' }, { holdId: h, amount: '100.00' }], { atomic: true }),
        L.HoldExceeded, 'LD025');
    assert.equal(e.facts.requested, '100.00');
    await rejects(ledger.holdBatch([{ fromAccount: a, amount: '10.00', toAccount: psp }, { fromAccount: a, amount: '10.00', toAccount: psp }],
        { atomic: true }), L.InsufficientFunds, 'LD001');
    assert.equal(await ledger.availableBalance(a), '15.00', 'an atomic batch that fails writes nothing');
    const count = await ledger.query('SELECT count(*) AS n FROM ledger.holds WHERE account = $1', [a]);
    assert.equal(count.rows[0].n, '2');

    // voids: the released amounts as exact strings; a finished hold is LD024
    const voids = await ledger.voidBatch([
        { holdId: h, reason: 'rest declined', idempotencyKey: `${k}-v1` },
        { holdId: holds[2].holdId, reason: 'proof done' },
        { holdId: h, reason: 'again' },
    ]);
    assert.deepEqual(voids.map((i) => [i.result, i.released]), [['ok', '17.50'], ['ok', '5.00'], ['LD024', null]]);
    assert.ok(voids[2].error() instanceof L.HoldFinished);
    assert.equal(voids[2].facts.state, 'voided');
    assert.equal((await ledger.voidBatch([{ holdId: h, reason: 'rest declined', idempotencyKey: `${k}-v1` }]))[0].released, '17.50');
    assert.equal(await ledger.availableBalance(a), '37.50');

    // JS numbers are refused before any query
    await assert.rejects(ledger.holdBatch([{ fromAccount: a, amount: '1.00', toAccount: psp }, { fromAccount: a, amount: 1.5, toAccount: psp }]),
        TypeError);
    await assert.rejects(ledger.captureBatch([{ holdId: h, amount: 0.5 }]), TypeError);
    assert.equal(await ledger.availableBalance(a), '37.50');
});

test('corrections and checks: invalidate, rebuild, reconcile', async () => {
    const tx = await ledger.transfer(world, bob, '3.00');
    const rows = await ledger.invalidate(tx, 'duplicate');
    assert.deepEqual(rows.map((r) => r.account).sort(), [bob, world].sort());
    const b = rows.find((r) => r.account === bob);
    assert.equal(typeof b.balanceBefore, 'string');
    assert.equal((Number(b.balanceBefore) - Number(b.balanceAfter)).toFixed(2), '3.00');
    assert.equal(await ledger.rebuildBalances(bob), 0);
    assert.deepEqual(await ledger.reconcile({ repair: false }), []);
});

test('events: append, apply, catch up', async () => {
    const stream = name('stream');
    const k = name('ev');
    const id = await ledger.appendEvent(stream, 'transfer', { from_account: world, to_account: bob, amount: '4.00' }, { idempotencyKey: k });
    assert.equal(await ledger.appendEvent(stream, 'transfer', { from_account: world, to_account: bob, amount: '4.00' }, { idempotencyKey: k }), id);
    await ledger.appendEvent(stream, 'post', { legs: [{ account: world, amount: '-1.00' }, { account: bob, amount: '1.00' }] });
    const before = await ledger.balance(bob);
    const applied = await ledger.catchUp({ stream, timeout: '5 s' });
    assert.equal(typeof applied, 'number');
    assert.equal((Number(await ledger.balance(bob)) - Number(before)).toFixed(2), '5.00');
    assert.equal(typeof await ledger.applyEvents(10), 'number');
    const lag = await ledger.projectionLag();
    assert.equal(typeof lag.events, 'string');
    const w = await ledger.eventWorkerStatus();
    assert.equal(typeof w.state, 'string');
});

test('outbox: enqueue, claim, fail, claim again, ack', async () => {
    const topic = name('receipts');
    const id = await ledger.enqueue(topic, 'user-42', { order: 981, amount: '25.00', ratio: 0.5 });
    assert.match(id, /^\d+$/);
    let msgs = await ledger.outboxClaim('mailer-1', { maxMessages: 10, lease: '30 s', topics: [topic] });
    assert.equal(msgs.length, 1);
    assert.equal(msgs[0].id, id);
    assert.deepEqual(msgs[0].payload, { order: 981, amount: '25.00', ratio: '0.5' }, 'fractions stay exact strings');
    assert.ok(msgs[0].createdAt instanceof Date);
    assert.equal(await ledger.outboxRelease(id, 'mailer-1'), true);
    msgs = await ledger.outboxClaim('mailer-1', { topics: [topic] });
    assert.equal(msgs.length, 1);
    assert.equal(await ledger.outboxFail(id, 'smtp 451', 'mailer-1'), 'pending');
    await rejects(ledger.outboxAck(id, 'mailer-1'), L.OutboxState, 'LD035');
    await ledger.query("UPDATE ledger.outbox SET available_at = now() WHERE id = $1", [id]);
    msgs = await ledger.outboxClaim('mailer-2', { topics: [topic] });
    assert.equal(msgs.length, 1);
    assert.equal(msgs[0].attempts, 2);
    assert.equal(await ledger.outboxAck(id, 'mailer-2'), true);
});

test('statements: import and reconcile against holds', async () => {
    const ref = name('st');
    const h = await ledger.hold(alice, '5.00', { toAccount: psp, externalRef: ref });
    await ledger.markSubmitted(h);
    await ledger.capture(h);
    const source = name('acme');
    const n = await ledger.importStatement(source, [
        { external_ref: ref, amount: '5.00', asset: USD, status: 'succeeded', occurred_at: new Date() },
        { external_ref: `${ref}-theirs`, amount: '7.00', asset: USD, status: 'succeeded', occurred_at: new Date() },
    ]);
    assert.equal(n, 2);
    const found = await ledger.reconcileExternal(source, new Date(Date.now() - 3600e3), new Date(Date.now() + 3600e3));
    // (the holds test's submitted hold, with no statement record, is found too: another ref)
    const mine = found.filter((f) => f.externalRef.startsWith(ref));
    assert.deepEqual(mine.map((f) => [f.externalRef, f.kind]), [[`${ref}-theirs`, 'missing_ours']]);
    assert.equal(mine[0].theirs === null || typeof mine[0].theirs === 'object', true);
});

test('status and misc', async () => {
    assert.match(await ledger.version(), /^\d+\.\d+/);
    const fw = await ledger.foldWorkerStatus();
    assert.equal(fw.ready, true);
    assert.equal(typeof fw.rounds, 'string');
    assert.ok(Array.isArray(await ledger.hotAccounts()));
    assert.ok(Array.isArray(await ledger.rateLimitStatus()));
    assert.equal(typeof await ledger.fold(), 'number');
    assert.equal(typeof await ledger.checkRateFeeds(), 'number');
    const role = name('a_mgr').replace(/-/g, '_');
    await ledger.query(`CREATE ROLE ${role} IN ROLE ledger_manager`);
    assert.equal(await ledger.grantOwnerAccess(role, name('user-a')), true);
    assert.equal(await ledger.revokeOwnerAccess(role, name('user-a')), true);
    await ledger.query(`DROP ROLE ${role}`);
    // a transaction over the pool commits several calls together, or none
    await assert.rejects(ledger.transaction(async (tx) => {
        await tx.transfer(world, bob, '1.00');
        await tx.transfer(bob, alice, '100000.00');
    }), L.InsufficientFunds);
    const before = await ledger.balance(bob);
    await ledger.transaction(async (tx) => {
        await tx.transfer(world, bob, '1.00');
        await tx.transfer(world, bob, '1.00');
    });
    assert.equal((Number(await ledger.balance(bob)) - Number(before)).toFixed(2), '2.00');
});
