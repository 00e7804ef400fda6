/**
 * @ledger/client: a typed Node.js client for the ledger PostgreSQL extension.
 *
 *   import { Pool } from 'pg';
 *   import { Ledger, InsufficientFunds, idempotent } from '@ledger/client';
 *
 * See README.md for usage.
 */

export * from './amounts';
export * from './errors';
export * from './client';
export * from './retry';
export { parseJsonExact, stringifyJson, type JsonValue } from './json';
export { LEDGER_TYPES } from './types';
export { createPool } from './pool';
