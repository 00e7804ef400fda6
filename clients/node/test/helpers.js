'use strict';
// Shared by the test files: connection settings from the environment
// (test/scripts/client_node.sh sets them), pools, unique names.
//
//   LEDGER_TEST_HOST, LEDGER_TEST_PORT, LEDGER_TEST_USER   the cluster
//   LEDGER_TEST_DB          a database with the extension (= ledger.database)
//   LEDGER_TEST_DB_OTHER    a second one (LD021: hot mode outside ledger.database)
//   LEDGER_TEST_BOUNCER_HOST, LEDGER_TEST_BOUNCER_PORT   pgbouncer, transaction mode
//
// A test that needs a setting that is missing fails (never skips silently).

const assert = require('node:assert/strict');
const { Client } = require('pg');
const L = require('..');

function env(name) {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set: run test/scripts/client_node.sh`);
    return v;
}

function config(db = env('LEDGER_TEST_DB')) {
    return {
        host: env('LEDGER_TEST_HOST'),
        port: Number(env('LEDGER_TEST_PORT')),
        user: process.env.LEDGER_TEST_USER || 'postgres',
        database: db,
    };
}

function bouncerConfig() {
    return {
        host: env('LEDGER_TEST_BOUNCER_HOST'),
        port: Number(env('LEDGER_TEST_BOUNCER_PORT')),
        user: process.env.LEDGER_TEST_USER || 'postgres',
        database: env('LEDGER_TEST_DB'),
    };
}

function pool(extra = {}, db) {
    return L.createPool({ ...config(db), max: 4, ...extra });
}

async function client(db) {
    const c = new Client(config(db));
    c.on('error', () => undefined);
    await c.connect();
    return c;
}

// Unique names per run, so a rerun against the same database works.
const stamp = Date.now().toString(36);
function name(prefix) {
    return `${prefix}-${stamp}`;
}

// Await p, which must reject with an instance of cls; returns the error.
async function rejects(p, cls, sqlstate) {
    let err;
    try {
        await p;
    } catch (e) {
        err = e;
    }
    assert.ok(err, `expected ${cls.name}, the call succeeded`);
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err && err.name}: ${err && err.message}`);
    if (sqlstate !== undefined) {
        assert.equal(err.sqlstate, sqlstate);
        if (sqlstate && sqlstate.startsWith('LD') && Object.keys(err.facts).length > 0) {
            assert.equal(err.facts.sqlstate, sqlstate, 'facts.sqlstate');
        }
    }
    assert.ok(err instanceof L.LedgerError, 'a LedgerError');
    return err;
}

// Every string-valued amount fact is a string, never a number.
function amountsAreStrings(facts, keys) {
    for (const k of keys) {
        if (k in facts && facts[k] !== null) {
            assert.equal(typeof facts[k], 'string', `facts.${k} is a string (${JSON.stringify(facts[k])})`);
            assert.match(facts[k], /^-?\d+(\.\d+)?$/, `facts.${k} is an exact decimal`);
        }
    }
}

module.exports = { L, env, config, bouncerConfig, pool, client, name, rejects, amountsAreStrings, assert };
