'use strict';
// Through pgbouncer in transaction pooling mode (pool of 2 server
// connections): concurrent transfers, keyed retries landing on other
// backends, a batch, SET LOCAL acting owner, the retry helper; balances
// checked directly against the server.

const { test, before, after } = require('node:test');
const { Pool } = require('pg');
const { L, pool, config, bouncerConfig, name, rejects, assert } = require('./helpers');

let direct;
let bounced;
let viaDirect;
let viaBouncer;
const USD = name('B-USD');
const world = name('b-world');
const users = [1, 2, 3, 4].map((i) => name(`b-user${i}`));
const shop = name('b-shop');

before(async () => {
    direct = pool();
    viaDirect = new L.Ledger(direct);
    await viaDirect.createAsset(USD, 2);
    await viaDirect.createAccount(world, USD, { minBalance: null });
    await viaDirect.createAccount(shop, USD);
    for (const [i, u] of users.entries()) await viaDirect.createAccount(u, USD, { ownerId: `b-owner-${i + 1}` });
    bounced = L.createPool({ ...bouncerConfig(), max: 8 });
    viaBouncer = new L.Ledger(bounced);
});

after(async () => {
    await bounced.end();
    await direct.end();
});

test('the connection really goes through pgbouncer (8 clients, at most 2 server connections)', async () => {
    const port = (await viaBouncer.query("SELECT current_setting('port') AS port")).rows[0].port;
    assert.equal(port, String(config().port), 'the server behind it');
    const pids = await Promise.all([...Array(8)].map(async () =>
        (await viaBouncer.query('SELECT pg_backend_pid() AS pid, pg_sleep(0.05)')).rows[0].pid));
    assert.ok(new Set(pids).size <= 2, `server connections used: ${new Set(pids).size}`);
});

test('concurrent transfers and keyed retries through the pool', async () => {
    await Promise.all(users.map((u, i) => viaBouncer.transfer(world, u, '100.00', { idempotencyKey: name(`b-fund-${i}`) })));
    // 40 payments from 8 client connections over 2 server connections, each sent twice with its key
    const pays = [];
    const keys = [];
    for (let i = 0; i < 20; i++) {
        const u = users[i % users.length];
        const key = name(`b-pay-${i}`);
        keys.push(key);
        pays.push(viaBouncer.transfer(u, shop, '1.25', { idempotencyKey: key }).then((tx) =>
            viaBouncer.transfer(u, shop, '1.25', { idempotencyKey: key }).then((again) => assert.equal(again, tx))));
    }
    await Promise.all(pays);
    assert.equal(await viaDirect.balance(shop), '25.00');
    for (const u of users) assert.equal(await viaDirect.balance(u), '93.75');
    const n = await viaDirect.query('SELECT count(*) AS n FROM ledger.transaction WHERE idempotency_key = ANY($1::text[])', [keys]);
    assert.equal(n.rows[0].n, '20');
});

test('a batch and a post through pgbouncer', async () => {
    const items = await viaBouncer.transferBatch(users.map((u, i) => ({
        fromAccount: u, toAccount: shop, amount: i === 3 ? '1000.00' : '3.75', idempotencyKey: name(`b-batch-${i}`),
    })));
    assert.deepEqual(items.map((i) => i.result), ['ok', 'ok', 'ok', 'LD001']);
    const posted = await viaBouncer.postBatch([
        { legs: [{ account: shop, amount: '-1.00' }, { account: users[0], amount: '0.50' }, { account: users[1], amount: '0.50' }] },
    ]);
    assert.ok(posted[0].ok);
    await viaBouncer.post([{ account: shop, amount: '-0.25' }, { account: users[3], amount: '0.25' }]);
    assert.equal(await viaDirect.balance(shop), '35.00');
    assert.equal(await viaDirect.balance(users[0]), '90.50');
    assert.equal(await viaDirect.balance(users[3]), '94.00');
});

test('SET LOCAL acting owner inside a transaction; nothing leaks to the next one', async () => {
    await viaBouncer.transaction(async (tx) => tx.transfer(users[0], shop, '0.50'), { actingOwner: 'b-owner-1' });
    await rejects(viaBouncer.transaction(async (tx) => tx.transfer(users[1], shop, '0.50'), { actingOwner: 'b-owner-1' }),
        L.NotAccountOwner, 'LD039');
    for (let i = 0; i < 4; i++) {
        const r = await viaBouncer.query("SELECT current_setting('ledger.acting_owner', true) AS o");
        assert.ok(!r.rows[0].o, 'no acting owner outside the transaction');
    }
    assert.equal(await viaDirect.balance(users[0]), '90.00');
});

test('idempotent() through pgbouncer, and a typed error', async () => {
    const key = name('b-idem');
    const tx = await L.idempotent(bounced, (l, k) => l.transfer(users[2], shop, '2.00', { idempotencyKey: k }), { key });
    const again = await L.idempotent(bounced, (l, k) => l.transfer(users[2], shop, '2.00', { idempotencyKey: k }), { key });
    assert.equal(again, tx);
    const e = await rejects(viaBouncer.transfer(users[2], shop, '5000.00'), L.InsufficientFunds, 'LD001');
    assert.equal(e.facts.account, users[2]);
    assert.equal(e.facts.requested, '5000.00');
    assert.equal(await viaDirect.balance(users[2]), '88.00');
});

test('a plain pg.Pool with the client, many rounds over the 2 server connections', async () => {
    // pgbouncer 1.18 in transaction mode does not carry named statements
    // across server connections; the client sends only unnamed ones.
    const p = new Pool({ ...bouncerConfig(), max: 4 });
    p.on('error', () => undefined);
    try {
        const l = new L.Ledger(p);
        const rounds = await Promise.all([...Array(12)].map(() => l.balance(shop)));
        assert.ok(rounds.every((b) => b === rounds[0]));
    } finally {
        await p.end();
    }
});
