'use strict';
// Exact amounts: decimal strings at scale 2 and 18 round-trip through
// transfer, post, transferBatch and postBatch; numeric, bigint and uuid come
// back as strings; a JS number is refused before any query.

const { test, before, after } = require('node:test');
const { L, pool, name, assert } = require('./helpers');

let db;
let ledger;
const A2 = name('D-2');
const A18 = name('D-18');
const src2 = name('d2-src'), dst2 = name('d2-dst');
const src18 = name('d18-src'), dst18 = name('d18-dst');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

before(async () => {
    db = pool();
    ledger = new L.Ledger(db);
    await ledger.createAsset(A2, 2);
    await ledger.createAsset(A18, 18);
    await ledger.createAccount(src2, A2, { minBalance: null });
    await ledger.createAccount(dst2, A2);
    await ledger.createAccount(src18, A18, { minBalance: null });
    await ledger.createAccount(dst18, A18);
});

after(async () => {
    await db.end();
});

test('scale 2: transfer, post, transferBatch, postBatch keep every cent', async () => {
    const big = '123456789012345678.99';
    const tx = await ledger.transfer(src2, dst2, big);
    assert.match(tx, UUID);
    assert.equal(await ledger.balance(dst2), big);
    await ledger.post([{ account: src2, amount: '-0.01' }, { account: dst2, amount: '0.01' }]);
    assert.equal(await ledger.balance(dst2), '123456789012345679.00');
    const items = await ledger.transferBatch([
        { fromAccount: src2, toAccount: dst2, amount: '0.10' },
        { fromAccount: src2, toAccount: dst2, amount: '0.20' },
    ]);
    assert.deepEqual(items.map((i) => i.result), ['ok', 'ok']);
    assert.equal(await ledger.balance(dst2), '123456789012345679.30');
    const posted = await ledger.postBatch([
        { legs: [{ account: src2, amount: '-0.70' }, { account: dst2, amount: '0.70' }] },
    ]);
    assert.ok(posted[0].ok);
    assert.equal(await ledger.balance(dst2), '123456789012345680.00');
    assert.equal(await ledger.balance(src2), '-123456789012345680.00');
});

test('scale 18: 123456789012.123456789012345678 round-trips exactly', async () => {
    const amt = '123456789012.123456789012345678';
    await ledger.transfer(src18, dst18, amt);
    assert.equal(await ledger.balance(dst18), amt);
    await ledger.post([{ account: src18, amount: '-' + amt }, { account: dst18, amount: amt }]);
    assert.equal(await ledger.balance(dst18), '246913578024.246913578024691356');
    const items = await ledger.transferBatch([
        { fromAccount: src18, toAccount: dst18, amount: '0.000000000000000001', idempotencyKey: name('d18-k1') },
        { fromAccount: dst18, toAccount: src18, amount: amt, metadata: { note: 'back' } },
    ]);
    assert.deepEqual(items.map((i) => i.result), ['ok', 'ok']);
    assert.equal(await ledger.balance(dst18), '123456789012.123456789012345679');
    await ledger.postBatch([
        { legs: [{ account: src18, amount: '-0.000000000000000009' }, { account: dst18, amount: '0.000000000000000009' }], idempotencyKey: name('d18-k2') },
    ]);
    assert.equal(await ledger.balance(dst18), '123456789012.123456789012345688');
    // the journal has the exact amounts; a JS float would have lost them
    const r = await ledger.query('SELECT amount FROM ledger.journal WHERE account = $1 ORDER BY id', [dst18]);
    assert.deepEqual(r.rows.map((x) => x.amount), [amt, amt, '0.000000000000000001', '-' + amt, '0.000000000000000009']);
    assert.notEqual(String(Number(amt)), amt, 'a JS number could not carry this amount');
});

test('Decimal-like objects and bigint are sent exactly', async () => {
    const dec = { toFixed: () => '0.000000000000000002', toString: () => '2e-18' };
    const before = await ledger.balance(dst18);
    await ledger.transfer(src18, dst18, dec);
    await ledger.transfer(src18, dst18, 3n);
    const expectEnd = '123456789015.123456789012345690';
    assert.equal(before, '123456789012.123456789012345688');
    assert.equal(await ledger.balance(dst18), expectEnd);
});

test('numeric, bigint and uuid come back as strings', async () => {
    const id = await ledger.createAccount(name('d-ids'), A2);
    assert.equal(typeof id, 'string');
    assert.match(id, /^\d+$/);
    assert.match(await ledger.newId(), UUID);
    assert.equal(typeof await ledger.balance(dst2), 'string');
    assert.equal(await ledger.availableBalance(src2), null, 'unbounded: null');
    assert.equal(typeof await ledger.eventHorizon(), 'string');
    const r = await ledger.query(`SELECT 9007199254740993::bigint AS b, 0.1::numeric AS n, ARRAY[0.1, 0.2]::numeric[] AS na,
        ARRAY[9007199254740993]::bigint[] AS ba, '{"x": 0.1, "n": 2}'::jsonb AS j, DATE '2026-12-01' AS d`);
    assert.deepEqual(r.rows[0], {
        b: '9007199254740993', n: '0.1', na: ['0.1', '0.2'], ba: ['9007199254740993'], j: { x: '0.1', n: 2 }, d: '2026-12-01',
    });
});

test('a JS number amount is refused with a TypeError before any query', async () => {
    let queries = 0;
    const counting = { query: (c) => { queries++; return db.query(c); } };
    const l = new L.Ledger(counting);
    await assert.rejects(l.transfer(src2, dst2, 1.1), TypeError);
    await assert.rejects(l.transfer(src2, dst2, 100), TypeError);
    await assert.rejects(l.post([{ account: src2, amount: -1 }, { account: dst2, amount: 1 }]), TypeError);
    await assert.rejects(l.transferBatch([{ fromAccount: src2, toAccount: dst2, amount: 0.3 }]), TypeError);
    await assert.rejects(l.postBatch([{ legs: [{ account: src2, amount: '-1' }, { account: dst2, amount: 1 }] }]), TypeError);
    assert.equal(queries, 0);
    assert.equal(await l.balance(dst2), '123456789012345680.00');
    assert.equal(queries, 1);
});

test('bare node-postgres: a JS number amount gets LD005, a JS array of legs LD012, with facts', async () => {
    const before = await ledger.balance(dst2);
    // Without this package: pg sends every parameter untyped, so a typed
    // float is what the SQL says; a JS array becomes an array literal.
    const e1 = await db.query('SELECT ledger.transfer($1, $2, $3::float8)', [src2, dst2, 0.1])
        .then(() => null, (e) => e);
    assert.equal(e1.code, 'LD005');
    const f1 = JSON.parse(e1.detail.split('\n').pop());
    assert.equal(f1.given_type, 'double precision');
    assert.equal(f1.argument, 'amount');
    const e2 = await db.query('SELECT ledger.post($1)',
        [[{ account: src2, amount: '-1' }, { account: dst2, amount: '1' }]]).then(() => null, (e) => e);
    assert.equal(e2.code, 'LD012');
    assert.equal(JSON.parse(e2.detail.split('\n').pop()).given_type, 'array literal');
    assert.equal(await ledger.balance(dst2), before);
});
