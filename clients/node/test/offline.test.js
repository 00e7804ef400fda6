'use strict';
// No database: amount conversion, JSON, the error classes and translate(),
// and the statements the client builds (parameters only, never named).

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const pg = require('pg');
const L = require('..');

// A Decimal-like stand-in (decimal.js, big.js print the same way).
class FakeDecimal {
    constructor(s) { this.s = s; }
    toFixed() { return this.s; }
    toString() { return this.s; }
    toJSON() { return this.s; }
}

test('amounts: strings, bigint and Decimal-likes pass exactly; JS numbers are refused', () => {
    assert.equal(L.toAmount('25.00'), '25.00');
    assert.equal(L.toAmount(' -10.5 '), '-10.5');
    assert.equal(L.toAmount('123456789012.123456789012345678'), '123456789012.123456789012345678');
    assert.equal(L.toAmount(12345678901234567890n), '12345678901234567890');
    assert.equal(L.toAmount(new FakeDecimal('0.000000000000000001')), '0.000000000000000001');
    assert.equal(L.toAmount({ toString() { return '1.5e-7'; } }), '0.00000015');
    assert.equal(L.toAmount('NaN'), 'NaN'); // the ledger refuses it with LD005
    assert.throws(() => L.toAmount(25), TypeError);
    assert.throws(() => L.toAmount(0.1), TypeError);
    assert.throws(() => L.toAmount(new Number(1.5)), TypeError);
    assert.throws(() => L.toAmount('1,50'), TypeError);
    assert.throws(() => L.toAmount(''), TypeError);
    assert.throws(() => L.toAmount(null), TypeError);
    assert.throws(() => L.toAmount(undefined), TypeError);
    assert.throws(() => L.toAmount({}), TypeError);
});

test('plainDecimal moves the point exactly', () => {
    assert.equal(L.plainDecimal('1e2'), '100');
    assert.equal(L.plainDecimal('1.25E+3'), '1250');
    assert.equal(L.plainDecimal('-1.5e-3'), '-0.0015');
    assert.equal(L.plainDecimal('12.5e-1'), '1.25');
    assert.equal(L.plainDecimal('123.45'), '123.45');
    assert.equal(L.plainDecimal('1e21'), '1000000000000000000000');
});

test('parseJsonExact keeps fractions and large integers as strings', () => {
    const v = L.parseJsonExact('{"a": 0.1, "n": 3, "big": 12345678901234567890, "e": 1e3, "s": "x\\"y", "l": [true, null, -2]}');
    assert.deepEqual(v, { a: '0.1', n: 3, big: '12345678901234567890', e: '1e3', s: 'x"y', l: [true, null, -2] });
    assert.throws(() => L.parseJsonExact('{"a": }'), SyntaxError);
    assert.equal(L.stringifyJson({ n: 10n, d: new FakeDecimal('1.10') }), '{"n":"10","d":"1.10"}');
});

test('one class per SQLSTATE of the README error table', () => {
    const readme = fs.readFileSync(process.env.LEDGER_README || path.join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
    const codes = [...readme.matchAll(/^\| `(LD\d{3})` \|/gm)].map((m) => m[1]);
    assert.ok(codes.length >= 40, `README table rows found: ${codes.length}`);
    for (const code of codes) {
        const cls = L.ERROR_CLASSES[code];
        assert.ok(cls, `a class for ${code}`);
        assert.equal(cls.code, code);
        assert.ok(cls.prototype instanceof L.LedgerError);
        assert.equal(L.classForSqlstate(code), cls);
    }
    const expected = ['40001', '40P01', 'LD019', 'LD020', 'LD037', 'LD041'];
    assert.deepEqual([...L.RETRYABLE_SQLSTATES].sort(), expected.sort());
    assert.equal(L.classForSqlstate('LD001'), L.InsufficientFunds);
    assert.equal(L.classForSqlstate('LD041'), L.RateLimited);
    assert.equal(L.classForSqlstate('40001'), L.SerializationFailure);
    assert.equal(L.classForSqlstate('40P01'), L.DeadlockDetected);
    assert.equal(L.classForSqlstate('57P01'), L.ConnectionLost);
    assert.equal(L.classForSqlstate('08006'), L.ConnectionLost);
    assert.equal(L.classForSqlstate('LD099'), L.LedgerError);
    assert.equal(L.classForSqlstate('22P02'), L.DatabaseError);
    assert.ok(!(new L.ConnectionLost('x') instanceof L.SerializationFailure));
    assert.ok(new L.ConnectionLost('x').retryable);
    assert.ok(!new L.InsufficientFunds('x').retryable);
});

test('translate: facts from the DETAIL last line, prose kept apart, original as cause', () => {
    const e = new pg.DatabaseError('insufficient funds in account "alice"', 0, 'error');
    e.code = 'LD001';
    e.severity = 'ERROR';
    e.detail = 'Account "alice" has balance 40.00 and floor 0.00, so 40.00 is available; the posting requests 60.00.\n' +
        '{"asset": "USD", "floor": "0.00", "account": "alice", "balance": "40.00", "sqlstate": "LD001", "available": "40.00", "requested": "60.00"}';
    const t = L.translate(e);
    assert.ok(t instanceof L.InsufficientFunds);
    assert.equal(t.name, 'InsufficientFunds');
    assert.equal(t.sqlstate, 'LD001');
    assert.equal(t.cause, e);
    assert.equal(t.detail, 'Account "alice" has balance 40.00 and floor 0.00, so 40.00 is available; the posting requests 60.00.');
    assert.deepEqual(t.facts, {
        asset: 'USD', floor: '0.00', account: 'alice', balance: '40.00', sqlstate: 'LD001', available: '40.00', requested: '60.00',
    });
    // a DETAIL that is only the facts line; one without facts
    const only = new pg.DatabaseError('bad record', 0, 'error');
    Object.assign(only, { code: 'LD030', severity: 'ERROR', detail: '{"sqlstate": "LD030"}' });
    const t2 = L.translate(only);
    assert.equal(t2.detail, null);
    assert.deepEqual(t2.facts, { sqlstate: 'LD030' });
    const none = new pg.DatabaseError('no pg_cron', 0, 'error');
    Object.assign(none, { code: 'LD017', severity: 'ERROR', detail: 'Database x has no extension pg_cron.', hint: 'Add it.' });
    const t3 = L.translate(none);
    assert.ok(t3 instanceof L.PgCronUnavailable);
    assert.equal(t3.detail, 'Database x has no extension pg_cron.');
    assert.equal(t3.hint, 'Add it.');
    assert.deepEqual(t3.facts, {});
    // dropped connections; other errors pass through
    assert.ok(L.translate(new Error('Connection terminated unexpectedly')) instanceof L.ConnectionLost);
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    assert.ok(L.translate(reset) instanceof L.ConnectionLost);
    const te = new TypeError('x');
    assert.equal(L.translate(te), te);
    const rl = new L.RateLimited('x', { facts: { retry_after_ms: 250 } });
    assert.equal(rl.retryAfterMs, 250);
});

test('statements: named arguments, values only as parameters, never a named statement', async () => {
    const configs = [];
    const fake = {
        async query(config) {
            configs.push(config);
            return { rows: [{ r: null, item: 1, result: 'ok', message: null, transaction_id: null }] };
        },
    };
    const ledger = new L.Ledger(fake);
    const hostile = "x'); DROP TABLE ledger.account; --";
    await ledger.createAsset(hostile, 2);
    await ledger.createAccount(hostile, hostile, { minBalance: null, ownerId: hostile, metadata: { k: hostile } });
    await ledger.transfer(hostile, hostile, '1.00', { idempotencyKey: hostile, metadata: { k: hostile } });
    await ledger.post([{ account: hostile, amount: '-1' }, { account: 'b', amount: '1' }], { idempotencyKey: hostile });
    await ledger.transferBatch([{ fromAccount: hostile, toAccount: 'b', amount: '1', idempotencyKey: hostile }]);
    await ledger.postBatch([{ legs: [{ account: hostile, amount: '-1' }, { account: 'b', amount: '1' }] }]);
    await ledger.hold(hostile, '1', { toAccount: hostile, externalRef: hostile, submitWithin: '1 minute' });
    await ledger.capture(hostile, { amount: null });
    await ledger.void(hostile, hostile);
    await ledger.appendEvent(hostile, 'transfer', { from_account: hostile, to_account: 'b', amount: '1' });
    await ledger.enqueue(hostile, hostile, { p: hostile });
    await ledger.outboxAck('1', hostile);
    await ledger.balance(hostile);
    // and every other method of the class
    const H = hostile;
    const others = {
        availableBalance: [H], setAccountMode: [H, 'hot'], setAccountLimits: [H, 1],
        markSubmitted: [H, { externalRef: H }], expireHolds: [], scheduleHoldExpiry: [H], unscheduleHoldExpiry: [],
        staleHolds: [], importStatement: [H, [{ external_ref: H, amount: '1.00' }]],
        reconcileExternal: [H, new Date(0), new Date()], invalidate: [H, H, { force: true }], rebuildBalances: [H],
        reconcile: [{ repair: false }], acknowledgeAlert: ['1'], scheduleReconciliation: [{ schedule: H }],
        unscheduleReconciliation: [], fold: [10], hotAccounts: [], foldWorkerStatus: [], applyEvents: [5],
        eventHorizon: [], projectionLag: [], catchUp: [{ stream: H, timeout: '1 s' }], eventWorkerStatus: [],
        outboxClaim: [H, { topics: [H], lease: '1 min', maxMessages: 5 }], outboxFail: ['1', H, H],
        outboxRelease: ['1', H], outboxRetry: ['1'], setExchangeRate: [H, H, '2.5', { source: H }],
        setExchangeAccounts: [H, H, H], exchange: [H, H, '1', { spread: '0.01', wait: '1 s', idempotencyKey: H }],
        checkRateFeeds: [], setRateLimit: [H, '1', 1], removeRateLimit: [H], rateLimitStatus: [],
        grantOwnerAccess: [H, H], revokeOwnerAccess: [H, H], version: [], newId: [], setActingOwner: [H],
        holdBatch: [[{ fromAccount: H, amount: '1', toAccount: H, mode: 'shared', externalRef: H, submitWithin: '1 minute',
            confirmWithin: '2 minutes', idempotencyKey: H, metadata: { k: H } }], { atomic: true }],
        captureBatch: [[{ holdId: H, amount: '1', idempotencyKey: H }, { holdId: H }]],
        voidBatch: [[{ holdId: H, reason: H, idempotencyKey: H }]],
    };
    const methods = Object.getOwnPropertyNames(L.Ledger.prototype)
        .filter((m) => m !== 'constructor' && typeof L.Ledger.prototype[m] === 'function');
    const called = new Set(['createAsset', 'createAccount', 'transfer', 'post', 'transferBatch', 'postBatch', 'hold',
        'capture', 'void', 'appendEvent', 'enqueue', 'outboxAck', 'balance', 'query', 'transaction', 'scalar', 'rows']);
    for (const m of methods) {
        if (called.has(m)) continue;
        assert.ok(others[m], `the test calls ${m}`);
        await ledger[m](...others[m]);
    }
    assert.ok(configs.length >= 50);
    for (const c of configs) {
        assert.equal(c.name, undefined, `no named statement: ${c.text}`);
        assert.ok(!c.text.includes(hostile) && !c.text.includes('DROP'), `no value in the SQL text: ${c.text}`);
        assert.ok(c.types, 'per-query type parsers');
        assert.match(c.text, /ledger\.\w+\(|set_config\('ledger\.acting_owner'/);
    }
    const post = configs.find((c) => c.text.includes('ledger.post('));
    assert.match(post.text, /legs => \$1::jsonb/);
    assert.equal(typeof post.values[0], 'string', 'legs are sent as a JSON string, not a JS array');
    assert.deepEqual(JSON.parse(post.values[0]), [{ account: hostile, amount: '-1' }, { account: 'b', amount: '1' }]);
    const create = configs.find((c) => c.text.includes('create_account'));
    assert.match(create.text, /min_balance => \$3::numeric/);
    assert.equal(create.values[2], null, 'minBalance null is sent as NULL (unbounded)');
    const holds = configs.find((c) => c.text.includes('ledger.hold_batch('));
    assert.match(holds.text, /holds => \$1::jsonb, atomic => \$2::boolean/);
    assert.equal(typeof holds.values[0], 'string', 'items are sent as a JSON string');
    assert.deepEqual(JSON.parse(holds.values[0]), [{
        from_account: hostile, amount: '1', to_account: hostile, mode: 'shared', external_ref: hostile,
        submit_within: '1 minute', confirm_within: '2 minutes', idempotency_key: hostile, metadata: { k: hostile },
    }]);
    const captures = configs.find((c) => c.text.includes('ledger.capture_batch('));
    assert.deepEqual(JSON.parse(captures.values[0]), [{ hold_id: hostile, amount: '1', idempotency_key: hostile }, { hold_id: hostile }],
        'left-out keys stay out: the single call\'s defaults apply');
    const voids = configs.find((c) => c.text.includes('ledger.void_batch('));
    assert.deepEqual(JSON.parse(voids.values[0]), [{ hold_id: hostile, reason: hostile, idempotency_key: hostile }]);
    const capture = configs.find((c) => c.text.includes('ledger.capture('));
    assert.match(capture.text, /amount => \$2::numeric/);
    // a JS number is refused before any query
    const before = configs.length;
    await assert.rejects(ledger.transfer('a', 'b', 10), TypeError);
    await assert.rejects(ledger.post([{ account: 'a', amount: -1 }, { account: 'b', amount: 1 }]), TypeError);
    await assert.rejects(ledger.transferBatch([{ fromAccount: 'a', toAccount: 'b', amount: 1 }]), TypeError);
    await assert.rejects(ledger.hold('a', 1.5), TypeError);
    await assert.rejects(ledger.capture('00000000-0000-0000-0000-000000000000', { amount: 2 }), TypeError);
    await assert.rejects(ledger.createAccount('a', 'USD', { minBalance: -5 }), TypeError);
    await assert.rejects(ledger.appendEvent('s', 'transfer', { from_account: 'a', to_account: 'b', amount: 5 }), TypeError);
    await assert.rejects(ledger.importStatement('acme', [{ external_ref: 'x', amount: 5 }]), TypeError);
    await assert.rejects(ledger.setExchangeRate('A', 'B', 2.5), TypeError);
    await assert.rejects(ledger.holdBatch([{ fromAccount: 'a', amount: '1' }, { fromAccount: 'a', amount: 1 }]), TypeError);
    await assert.rejects(ledger.holdBatch([{ fromAccount: 'a', amount: '1', submitWithin: 60 }]), TypeError);
    await assert.rejects(ledger.captureBatch([{ holdId: '00000000-0000-0000-0000-000000000000', amount: 0.5 }]), TypeError);
    assert.equal(configs.length, before, 'no query ran');
});

test('the compiled package never names a statement', () => {
    const dist = path.join(__dirname, '..', 'dist');
    for (const f of fs.readdirSync(dist).filter((n) => n.endsWith('.js'))) {
        const src = fs.readFileSync(path.join(dist, f), 'utf8')
            .replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, ''); // code, not comments
        assert.ok(!/\bname\s*:/.test(src.replace(/this\.name\s*=/g, '')), `${f} has no "name:" query option`);
        assert.ok(!/setTypeParser/.test(src), `${f} sets no global type parser`);
    }
});
