'use strict';
// idempotent(): backends killed (pg_terminate_backend from another
// connection) before and after COMMIT; one transaction per key, balances
// moved once; retryable errors retried with the same key, others thrown.

const { test, before, after } = require('node:test');
const { Client } = require('pg');
const { L, pool, config, name, rejects, assert } = require('./helpers');

let db;
let ledger;
const USD = name('R-USD');
const world = name('r-world');
const src = name('r-src');
const dst = name('r-dst');

before(async () => {
    db = pool({ max: 6 });
    ledger = new L.Ledger(db);
    await ledger.createAsset(USD, 2);
    await ledger.createAccount(world, USD, { minBalance: null });
    await ledger.createAccount(src, USD);
    await ledger.createAccount(dst, USD);
    await ledger.transfer(world, src, '100.00');
});

after(async () => {
    await db.end();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function transactionsWithKey(key) {
    const r = await ledger.query('SELECT id FROM ledger.transaction WHERE idempotency_key = $1', [key]);
    return r.rows.map((x) => x.id);
}

async function waitFor(sql, params, seconds = 10) {
    for (let i = 0; i < seconds * 20; i++) {
        const r = await ledger.query(sql, params);
        if (r.rows[0] && r.rows[0].ok) return;
        await sleep(50);
    }
    throw new Error(`timed out waiting for: ${sql}`);
}

test('killed while waiting for a row lock (before COMMIT): the retry posts it once', async () => {
    const key = name('r-lock');
    const locker = new Client(config());
    locker.on('error', () => undefined);
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query(`SELECT 1 FROM ledger.account_balance b JOIN ledger.account a ON a.id = b.account_id
                        WHERE a.code = $1 FOR UPDATE OF b`, [src]);
    const attempts = [];
    const retried = [];
    let killer = null;
    const result = await L.idempotent(db, async (l, k, attempt) => {
        attempts.push(attempt);
        if (attempt === 1) {
            const pid = (await l.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
            killer = (async () => {
                await waitFor("SELECT wait_event_type = 'Lock' AS ok FROM pg_stat_activity WHERE pid = $1", [pid]);
                await ledger.query('SELECT pg_terminate_backend($1)', [pid]);
                await locker.query('ROLLBACK');
            })();
        }
        return l.transfer(src, dst, '7.00', { idempotencyKey: k });
    }, { key, onRetry: (info) => retried.push(info.error) });
    await killer;
    await locker.end();
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(retried.length, 1);
    assert.ok(retried[0] instanceof L.ConnectionLost, `retried on ${retried[0] && retried[0].name}`);
    assert.ok(!(retried[0] instanceof L.SerializationFailure));
    assert.deepEqual(await transactionsWithKey(key), [result]);
    assert.equal(await ledger.balance(dst), '7.00');
});

test('killed after COMMIT, before the answer was read: the retry returns the first transaction', async () => {
    const key = name('r-commit');
    const seen = [];
    const result = await L.idempotent(db, async (l, k, attempt) => {
        const tx = await l.transfer(src, dst, '5.00', { idempotencyKey: k });
        seen.push(tx);
        if (attempt === 1) {
            // the connection drops right after the commit: the caller never learns it worked
            const pid = (await l.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
            await ledger.query('SELECT pg_terminate_backend($1)', [pid]);
            await waitFor('SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1) AS ok', [pid]);
            await l.balance(dst); // fails: ConnectionLost
        }
        return tx;
    }, { key });
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1], 'the retry got the first transaction back');
    assert.equal(result, seen[0]);
    assert.deepEqual(await transactionsWithKey(key), [result]);
    assert.equal(await ledger.balance(dst), '12.00', 'moved once');
});

test('a transaction killed between its two calls is rolled back and retried whole', async () => {
    const key = name('r-tx');
    const result = await L.idempotent(db, async (l, k, attempt) => {
        const first = await l.transfer(src, dst, '1.00', { idempotencyKey: `${k}/1` });
        if (attempt === 1) {
            const pid = (await l.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
            await ledger.query('SELECT pg_terminate_backend($1)', [pid]);
        }
        const second = await l.transfer(src, dst, '2.00', { idempotencyKey: `${k}/2` });
        return [first, second];
    }, { key, transaction: true });
    assert.equal((await transactionsWithKey(`${key}/1`)).length, 1);
    assert.deepEqual(await transactionsWithKey(`${key}/2`), [result[1]]);
    assert.equal(await ledger.balance(dst), '15.00');
});

test('a connection factory; retryable SQLSTATEs retried, others thrown at once', async () => {
    const factory = async () => {
        const c = new Client(config());
        await c.connect();
        return c;
    };
    const codes = [];
    const out = await L.idempotent(factory, async (l, k, attempt) => {
        if (attempt === 1) await l.query("DO $$BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END$$");
        if (attempt === 2) await l.query("DO $$BEGIN RAISE EXCEPTION 'deadlock' USING ERRCODE = '40P01'; END$$");
        return l.transfer(src, dst, '1.00', { idempotencyKey: k });
    }, { key: name('r-fac'), onRetry: (i) => codes.push(i.error.sqlstate), baseDelayMs: 5 });
    assert.deepEqual(codes, ['40001', '40P01']);
    assert.match(out, /^[0-9a-f-]{36}$/);

    let calls = 0;
    await rejects(L.idempotent(db, async (l) => { calls++; return l.transfer(src, dst, '100000.00'); }), L.InsufficientFunds, 'LD001');
    assert.equal(calls, 1, 'LD001 is not retried');

    calls = 0;
    await rejects(L.idempotent(db, async (l) => {
        calls++;
        await l.query("DO $$BEGIN RAISE EXCEPTION 'busy' USING ERRCODE = 'LD019'; END$$");
    }, { attempts: 3, baseDelayMs: 1 }), L.ModeChanged, 'LD019');
    assert.equal(calls, 3, 'gave up after the attempts');
});

test('LD041: the retry waits the retry_after_ms the server names', async () => {
    const role = name('r_paced').replace(/-/g, '_');
    await ledger.query(`CREATE ROLE ${role}`);
    await ledger.query(`GRANT ledger_writer TO ${role}`);
    await ledger.setRateLimit(role, '1', 1);
    const factory = async () => {
        const c = new Client(config());
        await c.connect();
        await c.query(`SET ROLE ${role}`);
        return c;
    };
    try {
        await L.idempotent(factory, (l, k) => l.transfer(world, dst, '1.00', { idempotencyKey: k }));
        const waits = [];
        const started = Date.now();
        await L.idempotent(factory, (l, k) => l.transfer(world, dst, '1.00', { idempotencyKey: k }),
            { onRetry: (i) => waits.push([i.error.name, i.delayMs, i.error.retryAfterMs]) });
        assert.ok(waits.length >= 1, 'refused at least once');
        assert.equal(waits[0][0], 'RateLimited');
        assert.ok(waits[0][1] >= waits[0][2], 'waited at least retry_after_ms');
        assert.ok(Date.now() - started < 5000);
    } finally {
        await ledger.removeRateLimit(role);
        await ledger.query(`DROP ROLE ${role}`);
    }
});
