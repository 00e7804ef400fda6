import { Pool, type PoolConfig } from 'pg';

/**
 * A pg.Pool with an 'error' listener, so that an idle connection the server
 * ends (a restart, pg_terminate_backend, pgbouncer closing it) is dropped
 * from the pool instead of being thrown as an uncaught exception (pg.Pool
 * re-emits idle clients' errors, and an EventEmitter without an 'error'
 * listener throws).  onIdleError sees each such error (default: ignore).
 *
 * Nothing else differs from `new Pool(config)`: no global type parsers are
 * set, and no statement is ever named (see README "Connection poolers").
 */
export function createPool(config: PoolConfig = {}, onIdleError: (err: Error) => void = () => undefined): Pool {
    const pool = new Pool(config);
    pool.on('error', onIdleError);
    return pool;
}
