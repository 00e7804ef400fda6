'use strict';
// Every LD error a caller can cause, triggered for real through the client
// and mapped to its class, with its facts parsed.  LD020 (a hot posting
// after a restart, before the escrow is rebuilt) and LD033 (an event
// replayed after the pointer was rewound: the applier records it as a
// rejection, no caller sees it) need server states a test cannot make
// cheaply; their mapping is checked with the SQLSTATE raised by PL/pgSQL.

const { test, before, after } = require('node:test');
const { L, pool, client, name, rejects, amountsAreStrings, assert } = require('./helpers');

const AMOUNT_KEYS = ['balance', 'floor', 'available', 'requested', 'held_exclusive', 'held_shared', 'sum', 'amount',
    'captured', 'remaining', 'given', 'per_second'];

let db;
let ledger;
const USD = name('E-USD');
const EUR = name('E-EUR');
const TOK = name('E-TOK');
const world = name('e-world');
const alice = name('e-alice');
const bob = name('e-bob');
const eve = name('e-eve');
const hot = name('e-hot');

before(async () => {
    db = pool();
    ledger = new L.Ledger(db);
    await ledger.createAsset(USD, 2);
    await ledger.createAsset(EUR, 2);
    await ledger.createAsset(TOK, 8);
    await ledger.createAccount(world, USD, { minBalance: null });
    await ledger.createAccount(alice, USD, { ownerId: name('owner-alice') });
    await ledger.createAccount(bob, USD);
    await ledger.createAccount(eve, EUR);
    await ledger.createAccount(hot, USD);
    await ledger.transfer(world, alice, '100.00');
});

after(async () => {
    await db.end();
});

test('LD001 InsufficientFunds: a debit, and a debit and a hold against a hold', async () => {
    const e = await rejects(ledger.transfer(alice, bob, '500.00'), L.InsufficientFunds, 'LD001');
    assert.equal(e.facts.account, alice);
    assert.equal(e.facts.asset, USD);
    assert.equal(e.facts.balance, '100.00');
    assert.equal(e.facts.available, '100.00');
    assert.equal(e.facts.requested, '500.00');
    assert.equal(e.facts.floor, '0.00');
    amountsAreStrings(e.facts, AMOUNT_KEYS);
    assert.ok(e.detail && !e.detail.includes('{'), 'detail is the prose without the facts line');
    assert.equal(e.retryable, false);
    assert.ok(e.cause && e.cause.code === 'LD001', 'the pg error is the cause');

    const h = await ledger.hold(alice, '60.00', { toAccount: bob });
    const e2 = await rejects(ledger.transfer(alice, bob, '50.00'), L.InsufficientFunds, 'LD001');
    assert.equal(e2.facts.held_exclusive, '60.00');
    assert.equal(e2.facts.held_shared, '0.00');
    assert.equal(e2.facts.available, '40.00');
    assert.equal(e2.facts.request, 'posting');
    const e3 = await rejects(ledger.hold(alice, '50.00', { toAccount: bob }), L.InsufficientFunds, 'LD001');
    assert.equal(e3.facts.request, 'exclusive hold');
    amountsAreStrings(e3.facts, AMOUNT_KEYS);
    assert.equal(await ledger.void(h, 'test'), '60.00');
});

test('LD002 UnknownAccount, LD003 UnknownAsset, LD004 AssetMismatch', async () => {
    const e = await rejects(ledger.transfer(alice, 'no-such-account', '1.00'), L.UnknownAccount, 'LD002');
    assert.equal(e.facts.account, 'no-such-account');
    assert.equal(e.facts.leg, 2);
    const e2 = await rejects(ledger.createAccount(name('e-x'), 'NO-SUCH-ASSET'), L.UnknownAsset, 'LD003');
    assert.equal(e2.facts.asset, 'NO-SUCH-ASSET');
    const e3 = await rejects(ledger.transfer(alice, eve, '1.00'), L.AssetMismatch, 'LD004');
    assert.deepEqual([e3.facts.account, e3.facts.asset, e3.facts.other_account, e3.facts.other_asset], [alice, USD, eve, EUR]);
});

test('LD005 InvalidAmount: zero, negative, NaN, too many decimals, too large, not a decimal leg', async () => {
    const cases = [
        [() => ledger.transfer(alice, bob, '0'), 'not_positive'],
        [() => ledger.transfer(alice, bob, '-1'), 'not_positive'],
        [() => ledger.transfer(alice, bob, 'NaN'), 'not_finite'],
        [() => ledger.transfer(alice, bob, '0.001'), 'too_many_decimals'],
        [() => ledger.transfer(alice, bob, '1000000000000000000000000000000'), 'too_large'],
        [() => ledger.post([{ account: alice, amount: '1e2' }, { account: bob, amount: '-100' }]), 'not_a_decimal'],
    ];
    for (const [call, reason] of cases) {
        const e = await rejects(call(), L.InvalidAmount, 'LD005');
        assert.equal(e.facts.reason, reason);
        assert.equal(typeof e.facts.given, 'string');
    }
});

test('LD006 ImmutableRecord: the journal cannot be updated', async () => {
    await rejects(ledger.query('UPDATE ledger.journal_entry SET amount = 0 WHERE id = (SELECT min(id) FROM ledger.journal_entry)'),
        L.ImmutableRecord, 'LD006');
});

test('LD007 IdempotencyConflict names the original transaction', async () => {
    const key = name('e-key');
    const original = await ledger.transfer(alice, bob, '1.00', { idempotencyKey: key });
    assert.equal(await ledger.transfer(alice, bob, '1.00', { idempotencyKey: key }), original, 'a replay returns the original');
    const e = await rejects(ledger.transfer(alice, bob, '2.00', { idempotencyKey: key }), L.IdempotencyConflict, 'LD007');
    assert.equal(e.facts.original_id, original);
    assert.equal(e.facts.original_kind, 'transaction');
    assert.equal(e.facts.idempotency_key, key);
});

test('LD008 UnbalancedPosting, LD012 InvalidLegs', async () => {
    const e = await rejects(ledger.post([{ account: alice, amount: '-1.00' }, { account: bob, amount: '2.00' }]),
        L.UnbalancedPosting, 'LD008');
    assert.equal(e.facts.asset, USD);
    assert.equal(e.facts.sum, '1.00');
    const e2 = await rejects(ledger.post([{ account: alice, amount: '-1.00' }]), L.InvalidLegs, 'LD012');
    assert.equal(e2.facts.legs, 1);
    assert.equal(typeof e2.facts.max_legs, 'number');
});

test('LD009 DuplicateAccount, LD010 DuplicateAsset', async () => {
    const e = await rejects(ledger.createAccount(alice, USD), L.DuplicateAccount, 'LD009');
    assert.equal(e.facts.account, alice);
    const e2 = await rejects(ledger.createAsset(USD, 2), L.DuplicateAsset, 'LD010');
    assert.equal(e2.facts.asset, USD);
});

test('LD011 InvalidArgument: a long code, a self-transfer, a bad scale', async () => {
    const e = await rejects(ledger.transfer('x'.repeat(300), bob, '1.00'), L.InvalidArgument, 'LD011');
    assert.equal(e.facts.bytes, 300);
    assert.equal(e.facts.max_bytes, 255);
    await rejects(ledger.transfer(alice, alice, '1.00'), L.InvalidArgument, 'LD011');
    await rejects(ledger.createAsset(name('E-BAD'), 19), L.InvalidArgument, 'LD011');
});

test('LD013 UnknownTransaction, LD014 AlreadyInvalidated, LD015 InvalidationBelowFloor, LD029 CaptureNotInvalidated', async () => {
    const unknown = await ledger.newId();
    const e = await rejects(ledger.invalidate(unknown, 'no such'), L.UnknownTransaction, 'LD013');
    assert.equal(e.facts.transaction_id, unknown);
    const tx = await ledger.transfer(bob, alice, '1.00');
    const rows = await ledger.invalidate(tx, 'test');
    assert.equal(rows.length, 2);
    assert.equal(typeof rows[0].balanceBefore, 'string');
    const e2 = await rejects(ledger.invalidate(tx, 'again'), L.AlreadyInvalidated, 'LD014');
    assert.equal(e2.facts.transaction_id, tx);
    // money already spent: invalidating the deposit would leave carol below her floor
    const carol = name('e-carol');
    await ledger.createAccount(carol, USD);
    const deposit = await ledger.transfer(world, carol, '10.00');
    await ledger.transfer(carol, bob, '8.00');
    await rejects(ledger.invalidate(deposit, 'spent'), L.InvalidationBelowFloor, 'LD015');
    // a capture is never invalidated
    const h = await ledger.hold(alice, '1.00', { toAccount: bob });
    const cap = await ledger.capture(h);
    await rejects(ledger.invalidate(cap, 'no'), L.CaptureNotInvalidated, 'LD029');
});

test('LD016 UnknownAlert, LD017 PgCronUnavailable', async () => {
    await rejects(ledger.acknowledgeAlert('-1'), L.UnknownAlert, 'LD016');
    const e = await rejects(ledger.scheduleReconciliation(), L.PgCronUnavailable, 'LD017');
    assert.ok(e.hint, 'the hint names the settings');
});

test('LD018 HotPrepareRefused, LD019 ModeChanged, LD021 HotUnavailable, LD022 HotOutOfRange, LD028 HoldHot', async () => {
    assert.equal(await ledger.setAccountMode(hot, 'hot'), 'cold');
    await ledger.transfer(world, hot, '5.00');
    await rejects(ledger.hold(hot, '1.00', { toAccount: bob }), L.HoldHot, 'LD028');

    // LD018: PREPARE TRANSACTION after a hot posting
    const c = await client();
    try {
        const tx = new L.Ledger(c);
        await tx.query('BEGIN');
        await tx.transfer(world, hot, '1.00');
        await rejects(tx.query(`PREPARE TRANSACTION '${name('e-gid')}'`), L.HotPrepareRefused, 'LD018');
        await tx.query('ROLLBACK').catch(() => undefined);
    } finally {
        await c.end();
    }

    // LD019: a posting while a correction fences the hot account
    const tx = await ledger.transfer(world, hot, '2.00');
    const fencer = await client();
    try {
        const f = new L.Ledger(fencer);
        await f.query('BEGIN');
        await f.invalidate(tx, 'fence');
        const e = await rejects(ledger.transfer(hot, bob, '1.00'), L.ModeChanged, 'LD019');
        assert.equal(e.retryable, true);
        assert.equal(e.facts.account, hot);
        assert.equal(e.facts.state, 'fenced');
        await f.query('ROLLBACK');
    } finally {
        await fencer.end();
    }
    await ledger.transfer(hot, bob, '1.00'); // takes postings again

    // LD021: hot mode outside ledger.database
    const other = pool({}, process.env.LEDGER_TEST_DB_OTHER || assert.fail('LEDGER_TEST_DB_OTHER is not set'));
    try {
        const o = new L.Ledger(other);
        const asset = name('E-O');
        await o.createAsset(asset, 2);
        await o.createAccount(name('o-acc'), asset);
        await rejects(o.setAccountMode(name('o-acc'), 'hot'), L.HotUnavailable, 'LD021');
    } finally {
        await other.end();
    }

    // LD022: a hot account's escrow bound (10^36 units of 10^-18)
    const big = name('E-BIG');
    await ledger.createAsset(big, 18);
    await ledger.createAccount(name('big-world'), big, { minBalance: null });
    await ledger.createAccount(name('big-hot'), big);
    await ledger.setAccountMode(name('big-hot'), 'hot');
    await ledger.transfer(name('big-world'), name('big-hot'), '600000000000000000');
    await rejects(ledger.transfer(name('big-world'), name('big-hot'), '600000000000000000'), L.HotOutOfRange, 'LD022');
});

test('LD023 UnknownHold, LD024 HoldFinished, LD025 HoldExceeded, LD026 HoldShared, LD027 HoldLimit', async () => {
    const unknown = await ledger.newId();
    const e = await rejects(ledger.void(unknown, 'no such'), L.UnknownHold, 'LD023');
    assert.equal(e.facts.hold_id, unknown);
    const h = await ledger.hold(alice, '5.00', { toAccount: bob });
    await ledger.void(h, 'test');
    const e2 = await rejects(ledger.void(h, 'again'), L.HoldFinished, 'LD024');
    assert.equal(e2.facts.state, 'voided');
    assert.equal(e2.facts.amount, '5.00');
    assert.equal(e2.facts.remaining, '0.00');
    amountsAreStrings(e2.facts, AMOUNT_KEYS);
    const h2 = await ledger.hold(alice, '5.00', { toAccount: bob });
    const e3 = await rejects(ledger.capture(h2, { amount: '6.00' }), L.HoldExceeded, 'LD025');
    assert.equal(e3.facts.requested, '6.00');
    assert.equal(e3.facts.remaining, '5.00');
    amountsAreStrings(e3.facts, AMOUNT_KEYS);
    const h3 = await ledger.hold(alice, '1.00', { mode: 'shared' });
    const e4 = await rejects(ledger.capture(h3), L.HoldShared, 'LD026');
    assert.equal(e4.facts.hold_id, h3);
    const limited = name('e-limited');
    await ledger.createAccount(limited, USD);
    await ledger.transfer(world, limited, '10.00');
    await ledger.setAccountLimits(limited, 1);
    await ledger.hold(limited, '1.00', { toAccount: bob });
    const e5 = await rejects(ledger.hold(limited, '1.00', { toAccount: bob }), L.HoldLimit, 'LD027');
    assert.equal(e5.facts.active, 1);
    assert.equal(e5.facts.max_active_holds, 1);
    await ledger.void(h2, 'done');
    await ledger.void(h3, 'done');
});

test('LD030 InvalidRecord', async () => {
    const e = await rejects(ledger.importStatement('acme', [{ amount: '1.00' }]), L.InvalidRecord, 'LD030');
    assert.equal(e.detail, null, 'a DETAIL that is only the facts line leaves no prose');
});

test('LD031 EventsUnavailable, LD032 InvalidEvent, LD034 CatchUpTimeout', async () => {
    await rejects(ledger.appendEvent('s', 'no_such_type', {}), L.InvalidEvent, 'LD032');
    await rejects(ledger.appendEvent('s', 'transfer', { from_account: alice }), L.InvalidEvent, 'LD032');
    const c = await client();
    try {
        const tx = new L.Ledger(c);
        await tx.query('BEGIN');
        await tx.appendEvent(name('stream'), 'transfer', { from_account: world, to_account: bob, amount: '1.00' });
        await rejects(tx.catchUp(), L.CatchUpTimeout, 'LD034');
        await tx.query('ROLLBACK');
        await tx.query('BEGIN');
        await tx.appendEvent(name('stream'), 'transfer', { from_account: world, to_account: bob, amount: '1.00' });
        await rejects(tx.query(`PREPARE TRANSACTION '${name('e-gid2')}'`), L.EventsUnavailable, 'LD031');
        await tx.query('ROLLBACK').catch(() => undefined);
    } finally {
        await c.end();
    }
});

test('LD035 OutboxState', async () => {
    await rejects(ledger.outboxAck('-1'), L.OutboxState, 'LD035');
    const id = await ledger.enqueue(name('topic'), 'k', { n: 1 });
    await rejects(ledger.outboxRetry(id), L.OutboxState, 'LD035'); // not dead
});

test('LD036 ExchangeNotConfigured, LD037 StaleRate, LD038 InvalidRate', async () => {
    const tokAcc = name('e-tok');
    await ledger.createAccount(name('e-tok-liq'), TOK, { minBalance: null });
    await ledger.createAccount(tokAcc, TOK);
    await ledger.transfer(name('e-tok-liq'), tokAcc, '5');
    await rejects(ledger.exchange(tokAcc, alice, '1'), L.ExchangeNotConfigured, 'LD036');
    await ledger.setExchangeAccounts(TOK, name('e-tok-liq'));
    await ledger.createAccount(name('e-usd-liq'), USD, { minBalance: null });
    await ledger.createAccount(name('e-usd-fees'), USD);
    await ledger.setExchangeAccounts(USD, name('e-usd-liq'), name('e-usd-fees'));
    const e = await rejects(ledger.exchange(tokAcc, alice, '1'), L.StaleRate, 'LD037');
    assert.equal(e.retryable, true);
    assert.deepEqual([e.facts.base, e.facts.quote, e.facts.observed_at], [TOK, USD, null]);
    await rejects(ledger.setExchangeRate(TOK, USD, '-1'), L.InvalidRate, 'LD038');
    await ledger.setExchangeRate(TOK, USD, '2.5');
    const before = await ledger.balance(alice);
    const tx = await ledger.exchange(tokAcc, alice, '4', { spread: '0.01', idempotencyKey: name('x') });
    assert.match(tx, /^[0-9a-f-]{36}$/);
    // 4 TOK at 2.5 with a 1% spread: 10.00 gross, 0.10 spread, 9.90 to alice
    assert.equal(await ledger.balance(name('e-usd-fees')), '0.10');
    assert.equal((Number(await ledger.balance(alice)) - Number(before)).toFixed(2), '9.90');
});

test('LD039 NotAccountOwner (SET LOCAL ledger.acting_owner), LD040 ActingOwnerRequired', async () => {
    const e = await rejects(ledger.transaction(async (tx) => tx.transfer(alice, bob, '1.00'), { actingOwner: 'someone-else' }),
        L.NotAccountOwner, 'LD039');
    assert.equal(e.facts.account, alice);
    assert.equal(e.facts.acting_owner, 'someone-else');
    // the owner itself may
    await ledger.transaction(async (tx) => tx.transfer(alice, bob, '1.00'), { actingOwner: name('owner-alice') });
    // by hand: SET LOCAL inside BEGIN
    const c = await client();
    try {
        const tx = new L.Ledger(c);
        await tx.query('BEGIN');
        await tx.query("SET LOCAL ledger.acting_owner = 'someone-else'");
        await rejects(tx.transfer(alice, bob, '1.00'), L.NotAccountOwner, 'LD039');
        await tx.query('ROLLBACK');
        // LD040: a role that must name an acting owner (set here per transaction by the superuser)
        await tx.query('BEGIN');
        await tx.query('SET LOCAL ledger.require_acting_owner = on');
        const e2 = await rejects(tx.transfer(alice, bob, '1.00'), L.ActingOwnerRequired, 'LD040');
        assert.equal(e2.facts.account, alice);
        await tx.query('ROLLBACK');
    } finally {
        await c.end();
    }
});

test('LD041 RateLimited: a role over its limit (SET ROLE), retry_after_ms in the facts', async () => {
    const role = name('e_limited').replace(/-/g, '_');
    await ledger.query(`CREATE ROLE ${role}`);
    await ledger.query(`GRANT ledger_writer TO ${role}`);
    await ledger.setRateLimit(role, '0.001', 1);
    const c = await client();
    try {
        const tx = new L.Ledger(c);
        await tx.query(`SET ROLE ${role}`);
        await tx.transfer(world, bob, '1.00'); // within the burst
        const e = await rejects(tx.transfer(world, bob, '1.00'), L.RateLimited, 'LD041');
        assert.equal(e.retryable, true);
        assert.equal(e.facts.role, role);
        assert.equal(e.facts.per_second, '0.001');
        assert.equal(typeof e.facts.retry_after_ms, 'number');
        assert.ok(e.retryAfterMs > 0);
        await tx.query('RESET ROLE');
    } finally {
        await c.end();
        assert.equal(await ledger.removeRateLimit(role), true);
    }
    await ledger.query(`DROP ROLE ${role}`);
});

test('40001 SerializationFailure and 40P01 DeadlockDetected, for real', async () => {
    const p = name('e-p'), q = name('e-q'), x = name('e-x1'), y = name('e-y1');
    for (const a of [p, q, x, y]) await ledger.createAccount(a, USD);
    await ledger.transfer(world, p, '10.00');
    await ledger.transfer(world, q, '10.00');

    // 40001: a REPEATABLE READ transaction posts to an account changed after its snapshot
    const c1 = await client();
    try {
        const t1 = new L.Ledger(c1);
        await t1.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await t1.query('SELECT 1');
        await ledger.transfer(p, x, '1.00');
        const e = await rejects(t1.transfer(p, x, '1.00'), L.SerializationFailure, '40001');
        assert.equal(e.retryable, true);
        assert.ok(!(e instanceof L.ConnectionLost));
        await t1.query('ROLLBACK');
    } finally {
        await c1.end();
    }

    // 40P01: two transactions take p and q in opposite orders
    const [a, b] = [await client(), await client()];
    try {
        const ta = new L.Ledger(a), tb = new L.Ledger(b);
        await ta.query('BEGIN');
        await tb.query('BEGIN');
        await ta.transfer(p, x, '1.00');
        await tb.transfer(q, y, '1.00');
        const results = await Promise.allSettled([ta.transfer(q, x, '1.00'), tb.transfer(p, y, '1.00')]);
        const failed = results.filter((r) => r.status === 'rejected');
        assert.equal(failed.length, 1, 'one of the two is aborted');
        assert.ok(failed[0].reason instanceof L.DeadlockDetected, `got ${failed[0].reason}`);
        assert.equal(failed[0].reason.sqlstate, '40P01');
        assert.equal(failed[0].reason.retryable, true);
        await ta.query('ROLLBACK');
        await tb.query('ROLLBACK');
    } finally {
        await a.end();
        await b.end();
    }
});

test('LD020 HotNotReady and LD033 StaleEvent (server states not reproduced: mapping only)', async () => {
    for (const [code, cls] of [['LD020', L.HotNotReady], ['LD033', L.StaleEvent]]) {
        const e = await rejects(ledger.query(`DO $$BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '${code}',
            DETAIL = E'prose\\n{"sqlstate": "${code}"}'; END$$`), cls, code);
        assert.deepEqual(e.facts, { sqlstate: code });
        assert.equal(e.detail, 'prose');
    }
    assert.equal(new L.HotNotReady('x').retryable, true);
});

test('42501 PermissionDenied for a role without EXECUTE', async () => {
    const role = name('e_norights').replace(/-/g, '_');
    await ledger.query(`CREATE ROLE ${role}`);
    await ledger.query(`GRANT USAGE ON SCHEMA ledger TO ${role}`);
    const c = await client();
    try {
        const tx = new L.Ledger(c);
        await tx.query(`SET ROLE ${role}`);
        await rejects(tx.transfer(world, bob, '1.00'), L.PermissionDenied, '42501');
    } finally {
        await c.end();
    }
    await ledger.query(`REVOKE USAGE ON SCHEMA ledger FROM ${role}`);
    await ledger.query(`DROP ROLE ${role}`);
});
