/**
 * idempotent(): send a money-moving request until it has an answer.
 *
 * The idempotency key is fixed before the first attempt and reused by every
 * retry, so a request whose connection dropped after the server committed it
 * returns the first transaction on the retry, and one that never committed
 * is posted by the retry: exactly one transaction either way.
 *
 * Retried: ConnectionLost (a dropped connection, a killed backend, a
 * server shutdown), and the retryable SQLSTATEs: 40001, 40P01, LD019,
 * LD020, LD037, LD041 (after the retry_after_ms the server names).  Every
 * other error is thrown at once (an LD001 stays an LD001: retrying it
 * would not help).  Each attempt runs on a fresh connection from the pool
 * (a lost one is destroyed, not returned) or from the factory.
 */

import { randomUUID } from 'node:crypto';
import { Ledger, type PoolLike, type Queryable } from './client';
import { ConnectionLost, LedgerError, translate } from './errors';

/** A connection a factory hands out: a pg.Client (ended after the attempt)
 * or a pg.PoolClient (released after it). */
export interface ConnectionLike extends Queryable {
    release?: (err?: Error | boolean) => void;
    end?: () => Promise<void>;
    on?: (event: 'error', listener: (err: Error) => void) => unknown;
    removeListener?: (event: 'error', listener: (err: Error) => void) => unknown;
}

export type ConnectionSource = PoolLike | (() => Promise<ConnectionLike>);

export interface RetryInfo {
    attempt: number;
    error: LedgerError;
    delayMs: number;
    key: string;
}

export interface IdempotentOptions {
    /** The idempotency key of every attempt (default: a random UUID). */
    key?: string;
    /** Attempts in all, the first included (default 5). */
    attempts?: number;
    /** First backoff (default 50 ms), doubled per attempt, with jitter. */
    baseDelayMs?: number;
    /** Longest backoff (default 2000 ms). */
    maxDelayMs?: number;
    /** Run fn inside BEGIN ... COMMIT (default false: each call commits alone). */
    transaction?: boolean;
    /** Decide what to retry (default: err.retryable). */
    isRetryable?: (err: LedgerError) => boolean;
    /** Called before each retry's wait. */
    onRetry?: (info: RetryInfo) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function backoff(attempt: number, err: LedgerError, base: number, max: number): number {
    const exp = Math.min(max, base * 2 ** (attempt - 1));
    let delay = Math.round(exp / 2 + Math.random() * (exp / 2));
    const after = err.retryAfterMs;
    if (after !== null) delay = Math.max(delay, Math.ceil(after));
    return delay;
}

function isPoolSource(source: ConnectionSource): source is PoolLike {
    return typeof source !== 'function';
}

/**
 * Run fn(ledger, key, attempt) until it returns, retrying retryable
 * errors with the same key.  fn must pass `key` as the idempotency key of
 * the call that moves money (and derive any further keys from it).
 *
 * @example
 *   const txId = await idempotent(pool, (ledger, key) =>
 *       ledger.transfer('alice', 'bob', '25.00', { idempotencyKey: key }),
 *       { key: `payment-${paymentId}` });
 */
export async function idempotent<T>(
    source: ConnectionSource,
    fn: (ledger: Ledger, key: string, attempt: number) => Promise<T>,
    opts: IdempotentOptions = {},
): Promise<T> {
    const key = opts.key ?? randomUUID();
    const attempts = opts.attempts ?? 5;
    const base = opts.baseDelayMs ?? 50;
    const max = opts.maxDelayMs ?? 2000;
    const isRetryable = opts.isRetryable ?? ((e: LedgerError) => e.retryable);
    if (!Number.isInteger(attempts) || attempts < 1) throw new TypeError('attempts must be a positive integer');

    for (let attempt = 1; ; attempt++) {
        let conn: ConnectionLike | null = null;
        let lost = false;
        const onError = () => { lost = true; };
        try {
            conn = isPoolSource(source) ? await source.connect() : await source();
            // an idle connection that dies emits 'error'; without a listener
            // node would throw it as an uncaught exception
            conn.on?.('error', onError);
            const ledger = new Ledger(conn);
            if (opts.transaction) return await ledger.transaction(() => fn(ledger, key, attempt));
            return await fn(ledger, key, attempt);
        } catch (raw) {
            const err = translate(raw);
            if (err instanceof ConnectionLost) lost = true;
            if (!(err instanceof LedgerError) || !isRetryable(err) || attempt >= attempts) throw err;
            const delayMs = backoff(attempt, err, base, max);
            opts.onRetry?.({ attempt, error: err, delayMs, key });
            await finish(conn, lost, onError);
            conn = null;
            await sleep(delayMs);
        } finally {
            if (conn) await finish(conn, lost, onError);
        }
    }
}

async function finish(conn: ConnectionLike | null, lost: boolean, onError: (err: Error) => void): Promise<void> {
    if (!conn) return;
    try {
        if (typeof conn.release === 'function') {
            conn.release(lost ? true : undefined);
        } else if (typeof conn.end === 'function') {
            // a dead connection's end() may never settle: wait at most 1 s
            await Promise.race([conn.end().catch(() => undefined), sleep(1000)]);
        }
    } catch {
        // the connection is gone either way
    } finally {
        // a lost connection may still report its end: keep it quiet
        if (!lost) conn.removeListener?.('error', onError);
    }
}
