'use strict';
// The ledger from Knex (npm knex, client 'pg'): the SQL functions through
// knex.raw with bound parameters, inside a Knex transaction; amounts as
// decimal strings both ways; an LD error translated to this package's
// class, with its facts.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const knexFactory = require('knex');
const L = require('..');
const { config, name } = require('./helpers');

let knex;
const asset = name('KNX').slice(0, 12).toUpperCase();
const world = name('kx-world');
const alice = name('kx-alice');
const bob = name('kx-bob');

before(async () => {
    knex = knexFactory({ client: 'pg', connection: config(), pool: { min: 0, max: 2 } });
    await knex.raw('SELECT ledger.create_asset(code => ?, scale => 2)', [asset]);
    await knex.raw('SELECT ledger.create_account(code => ?, asset => ?, min_balance => NULL)', [world, asset]);
    await knex.raw('SELECT ledger.create_account(code => ?, asset => ?)', [alice, asset]);
    await knex.raw('SELECT ledger.create_account(code => ?, asset => ?)', [bob, asset]);
});

after(async () => {
    await knex.destroy();
});

test('transfers in a Knex transaction, amounts as strings', async () => {
    const transfer = 'SELECT ledger.transfer(from_account => ?, to_account => ?, amount => ?::numeric, ' +
        'idempotency_key => ?) AS id';
    await knex.transaction(async (trx) => {
        await trx.raw(transfer, [world, alice, '100.25', null]);
        await trx.raw(transfer, [alice, bob, '40.10', 'kx-1']);
    });
    const { rows } = await knex.raw('SELECT ledger.balance(?) AS balance', [alice]);
    assert.equal(rows[0].balance, '60.15');
    // the same request again with its key: the first transaction, nothing written
    const again = await knex.raw(transfer, [alice, bob, '40.10', 'kx-1']);
    const count = await knex.raw("SELECT count(*) AS n FROM ledger.transaction WHERE idempotency_key = 'kx-1'");
    assert.equal(count.rows[0].n, '1');
    assert.match(again.rows[0].id, /^[0-9a-f-]{36}$/);
});

test('a refusal becomes the package error with its facts', async () => {
    let err;
    try {
        await knex.transaction(async (trx) => {
            await trx.raw('SELECT ledger.transfer(from_account => ?, to_account => ?, amount => ?::numeric)',
                [bob, alice, '1000.00']);
        });
    } catch (e) {
        err = L.translate(e);
    }
    assert.ok(err instanceof L.InsufficientFunds, `got ${err}`);
    assert.equal(err.sqlstate, 'LD001');
    assert.equal(err.facts.account, bob);
    assert.equal(err.facts.requested, '1000.00');
    assert.equal(typeof err.facts.available, 'string');
    const { rows } = await knex.raw('SELECT ledger.balance(?) AS balance', [alice]);
    assert.equal(rows[0].balance, '60.15');
});
