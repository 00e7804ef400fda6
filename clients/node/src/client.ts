/**
 * Typed calls of the ledger's SQL API over node-postgres.
 *
 * Every call is one statement `SELECT ... ledger.fn(name => $1::type, ...)`:
 * named arguments, every value a server-side parameter (never spliced into
 * the SQL text), no named prepared statement (no statement name in any
 * query config), so it runs unchanged behind pgbouncer in transaction pooling
 * mode.  An option left undefined is left out of the call, so the server's
 * default applies; null is sent as SQL NULL where NULL means something
 * (min_balance: unbounded; capture's amount: all that remains).
 *
 * A Ledger over a pg.Pool runs each call on whichever connection the pool
 * gives, each its own transaction; use transaction() for several calls in
 * one.  A Ledger over a pg.Client or a checked-out PoolClient runs on that
 * connection, inside whatever transaction the caller opened.
 */

import type { QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { toAmount, toAmountOrNull, type Amount } from './amounts';
import { classForSqlstate, ConnectionLost, LedgerError, parseFacts, translate, type Facts } from './errors';
import { stringifyJson, type JsonValue } from './json';
import { LEDGER_TYPES } from './types';

/** Anything with node-postgres' promise query(config): Pool, Client, PoolClient. */
export interface Queryable {
    query(config: QueryConfig): Promise<QueryResult<any>>;
}

/** A pool: hands out connections (pg.Pool). */
export interface PoolLike extends Queryable {
    connect(): Promise<PoolClientLike>;
}

/** A checked-out pool connection (pg.PoolClient). */
export interface PoolClientLike extends Queryable {
    release(err?: Error | boolean): void;
}

/** A post leg: positive amounts are money into the account. */
export interface Leg {
    account: string;
    amount: Amount;
}

/** An interval in PostgreSQL's syntax: '30 seconds', '5 min', '00:03:00', '1 day'. */
export type Interval = string;
/** A bigint id (alerts, outbox messages): a string of digits, a bigint, or a safe integer. */
export type Id = string | bigint | number;
/** A JSON object (metadata, payloads). */
export type JsonObject = Record<string, unknown>;

export interface PostingOptions {
    idempotencyKey?: string | null;
    /** A JSON object of at most 64 KiB; undefined: the default '{}'. */
    metadata?: JsonObject;
}

export interface CreateAccountOptions {
    /** The floor; null: unbounded (system and external accounts); undefined: 0. */
    minBalance?: Amount | null;
    ownerId?: string | null;
    metadata?: JsonObject;
}

export interface HoldOptions extends PostingOptions {
    toAccount?: string | null;
    mode?: 'exclusive' | 'shared';
    externalRef?: string | null;
    submitWithin?: Interval;
    confirmWithin?: Interval;
}

export interface CaptureOptions {
    /** undefined or null: all that remains. */
    amount?: Amount | null;
    idempotencyKey?: string | null;
}

export interface ExchangeOptions extends PostingOptions {
    maxRateAge?: Interval | null;
    wait?: Interval;
    /** A fraction in [0, 1), as an exact decimal. */
    spread?: Amount;
}

export interface TransferItem {
    fromAccount: string;
    toAccount: string;
    amount: Amount;
    idempotencyKey?: string | null;
    metadata?: JsonObject | null;
}

export interface PostingItem {
    legs: Leg[];
    idempotencyKey?: string | null;
    metadata?: JsonObject | null;
}

/** An item of holdBatch: hold()'s arguments, by name. */
export interface HoldItem extends HoldOptions {
    fromAccount: string;
    amount: Amount;
}

/** An item of captureBatch: capture()'s arguments, by name. */
export interface CaptureItem extends CaptureOptions {
    holdId: string;
}

/** An item of voidBatch: void()'s arguments, by name. */
export interface VoidItem {
    holdId: string;
    reason: string;
    idempotencyKey?: string | null;
}

export interface InvalidatedBalance { account: string; balanceBefore: string; balanceAfter: string }
export interface ReconcileFinding {
    account: string; kind: string; day: string | null;
    expected: string | null; actual: string | null; repaired: boolean;
}
export interface StaleHold {
    holdId: string; account: string; ownerId: string | null; toAccount: string | null;
    amount: string; remaining: string; state: string; externalRef: string | null;
    submittedAt: Date | null; confirmDeadline: Date | null;
}
export interface ExternalMismatch { externalRef: string; kind: string; ours: JsonValue; theirs: JsonValue }
export interface OutboxMessage {
    id: string; topic: string; key: string; payload: JsonValue; attempts: number; createdAt: Date;
}
export interface HotAccount {
    account: string; accountId: string; committed: string; reserved: string; available: string | null;
    inflight: number; debitsAccepted: string; debitsRefused: string; state: string;
}
export interface FoldWorkerStatus {
    state: string; pid: number | null; rounds: string; foldedRows: string; balanceWrites: string;
    lastFoldAt: Date | null; ready: boolean;
}
export interface EventWorkerStatus {
    state: string; pid: number | null; batches: string; applied: string; rejected: string; errors: string;
    lastBatchAt: Date | null; lastError: string | null; lastErrorAt: Date | null;
}
export interface RateLimitStatus {
    role: string; perSecond: number; burst: number; perOwner: boolean; calls: string; refused: string;
}
export interface ProjectionLag { events: string; seconds: number | null }

/**
 * One row of transferBatch / postBatch / holdBatch / captureBatch /
 * voidBatch.  `result` is 'ok' (then the 4th field is set) or the item's LD
 * SQLSTATE (then `message` holds the message and its detail, "message /
 * detail", and nothing of the item was written).  The 4th field holds the
 * row's 4th column: the transaction id (transferBatch, postBatch,
 * captureBatch), the hold id (holdBatch; also as `holdId`) or the amount
 * released (voidBatch, an exact decimal string; also as `released`).
 */
export class BatchItem {
    constructor(
        readonly item: number,
        readonly result: string,
        readonly message: string | null,
        readonly transactionId: string | null,
        /** The row's facts column (0.12.0) as JSON text, or null. */
        readonly factsJson: string | null = null,
    ) {}

    /** A refused item's structured facts (the facts column), else {}. */
    get facts(): Facts {
        return parseFacts(this.factsJson) ?? (this.ok ? {} : { sqlstate: this.result });
    }

    /** The 4th column of a holdBatch row: the hold id (null if refused). */
    get holdId(): string | null { return this.transactionId; }

    /** The 4th column of a voidBatch row: the amount released, as an exact
     * decimal string (null if refused). */
    get released(): string | null { return this.transactionId; }

    get ok(): boolean { return this.result === 'ok'; }
    get sqlstate(): string | null { return this.ok ? null : this.result; }

    /** The typed error of a refused item (not thrown), or null, with the
     * item's facts. */
    error(): LedgerError | null {
        if (this.ok) return null;
        const text = this.message ?? '';
        const cut = text.indexOf(' / ');
        const cls = classForSqlstate(this.result);
        const facts: Facts = this.facts;
        return new cls(cut >= 0 ? text.slice(0, cut) : text, {
            sqlstate: this.result,
            detail: cut >= 0 ? text.slice(cut + 3) : null,
            facts,
            context: `batch item ${this.item}`,
        });
    }
}

/** Throw the first refused item's error; return the items if all passed. */
export function raiseFirst(items: BatchItem[]): BatchItem[] {
    for (const it of items) {
        const err = it.error();
        if (err) throw err;
    }
    return items;
}

// ---------------------------------------------------------------------------
// argument helpers
// ---------------------------------------------------------------------------

type Arg = readonly [name: string, value: unknown, sqlType: string];

function text(value: unknown, what: string): string {
    if (typeof value !== 'string') throw new TypeError(`${what} must be a string, not ${value === null ? 'null' : typeof value}`);
    return value;
}

function textOrNull(value: unknown, what: string): string | null | undefined {
    if (value === undefined || value === null) return value;
    return text(value, what);
}

function interval(value: unknown, what: string): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string') {
        throw new TypeError(`${what} must be an interval string such as '30 seconds', not ${typeof value}`);
    }
    return value;
}

function intervalOrNull(value: unknown, what: string): string | null | undefined {
    return value === null ? null : interval(value, what);
}

function integer(value: unknown, what: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new TypeError(`${what} must be an integer`);
    return value;
}

function id(value: Id, what: string): string {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'number') return String(integer(value, what));
    if (typeof value === 'string' && /^-?\d+$/.test(value)) return value;
    throw new TypeError(`${what} must be an integer id (string of digits, bigint or safe integer)`);
}

function bool(value: unknown, what: string): boolean | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw new TypeError(`${what} must be a boolean`);
    return value;
}

function timestamp(value: unknown, what: string): Date | string | undefined {
    if (value === undefined) return undefined;
    if (value instanceof Date || typeof value === 'string') return value;
    throw new TypeError(`${what} must be a Date or a timestamp string`);
}

function jsonObject(value: unknown, what: string): string | undefined {
    if (value === undefined) return undefined;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new TypeError(`${what} must be a JSON object`);
    }
    return stringifyJson(value);
}

/** The legs as the ledger reads them: [{"account": ..., "amount": "<decimal>"}]. */
export function normalizeLegs(legs: unknown, what = 'legs'): { account: string; amount: string }[] {
    if (!Array.isArray(legs)) throw new TypeError(`${what} must be an array of {account, amount} objects`);
    return legs.map((leg: unknown, i: number) => {
        if (leg === null || typeof leg !== 'object' || Array.isArray(leg)) {
            throw new TypeError(`${what}[${i}] must be an {account, amount} object`);
        }
        const l = leg as Record<string, unknown>;
        return { account: text(l['account'], `${what}[${i}].account`), amount: toAmount(l['amount'], `${what}[${i}].amount`) };
    });
}

/** An event payload with its amount and legs checked like a direct call's. */
function eventPayload(payload: unknown): string {
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
        throw new TypeError('payload must be a JSON object');
    }
    const p: Record<string, unknown> = { ...(payload as Record<string, unknown>) };
    if (p['amount'] !== undefined && p['amount'] !== null) p['amount'] = toAmount(p['amount'], 'payload.amount');
    if (p['legs'] !== undefined) p['legs'] = normalizeLegs(p['legs'], 'payload.legs');
    return stringifyJson(p);
}

function statementRecords(records: unknown): string {
    if (!Array.isArray(records)) throw new TypeError('records must be an array of objects');
    return stringifyJson(records.map((r: unknown, i: number) => {
        if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new TypeError(`records[${i}] must be an object`);
        const rec: Record<string, unknown> = { ...(r as Record<string, unknown>) };
        if (rec['amount'] !== undefined && rec['amount'] !== null) rec['amount'] = toAmount(rec['amount'], `records[${i}].amount`);
        return rec;
    }));
}

function isPool(db: unknown): db is PoolLike {
    const d = db as Record<string, unknown>;
    return typeof d['connect'] === 'function' && 'totalCount' in d && 'idleCount' in d;
}

const ISOLATION = {
    'read committed': 'READ COMMITTED',
    'repeatable read': 'REPEATABLE READ',
    serializable: 'SERIALIZABLE',
} as const;

export interface TransactionOptions {
    /** SET LOCAL ledger.acting_owner for this transaction (see README "Security"). */
    actingOwner?: string;
    /** Default: the session's (READ COMMITTED unless changed; the ledger's recommendation). */
    isolation?: keyof typeof ISOLATION;
}

// ---------------------------------------------------------------------------
// the client
// ---------------------------------------------------------------------------

export class Ledger {
    constructor(readonly db: Queryable) {}

    /**
     * Run a statement with this client's result types and error
     * translation.  Values are always parameters ($1, $2, ...); the client
     * never names a statement.
     */
    async query<R extends QueryResultRow = any>(sql: string, values?: unknown[]): Promise<QueryResult<R>> {
        const config: QueryConfig = { text: sql, types: LEDGER_TYPES };
        if (values !== undefined) config.values = values;
        try {
            return await this.db.query(config);
        } catch (err) {
            throw translate(err);
        }
    }

    private static build(args: readonly (Arg | null)[]): { list: string; values: unknown[] } {
        const parts: string[] = [];
        const values: unknown[] = [];
        for (const a of args) {
            if (a === null || a[1] === undefined) continue;
            values.push(a[1]);
            parts.push(`${a[0]} => $${values.length}::${a[2]}`);
        }
        return { list: parts.join(', '), values };
    }

    private async scalar<T>(fn: string, ...args: (Arg | null)[]): Promise<T> {
        const { list, values } = Ledger.build(args);
        const res = await this.query(`SELECT ledger.${fn}(${list}) AS r`, values);
        return res.rows[0]?.r as T;
    }

    private async rows(fn: string, columns: string, ...args: (Arg | null)[]): Promise<any[]> {
        const { list, values } = Ledger.build(args);
        const res = await this.query(`SELECT ${columns} FROM ledger.${fn}(${list})`, values);
        return res.rows;
    }

    /**
     * Run fn in one database transaction (BEGIN ... COMMIT; ROLLBACK when it
     * throws).  Over a pool, one connection is checked out for it and
     * released after (destroyed when the connection was lost).  Over a
     * single connection, BEGIN runs on it: do not nest.
     */
    async transaction<T>(fn: (tx: Ledger) => Promise<T>, opts: TransactionOptions = {}): Promise<T> {
        let conn: Queryable = this.db;
        let release: ((err?: Error | boolean) => void) | null = null;
        if (isPool(this.db)) {
            let c: PoolClientLike;
            try {
                c = await this.db.connect();
            } catch (err) {
                throw translate(err);
            }
            conn = c;
            release = (e) => c.release(e);
        }
        const tx = new Ledger(conn);
        let lost = false;
        try {
            const iso = opts.isolation ? ` ISOLATION LEVEL ${ISOLATION[opts.isolation]}` : '';
            await tx.query(`BEGIN${iso}`);
            try {
                if (opts.actingOwner !== undefined) await tx.setActingOwner(opts.actingOwner);
                const result = await fn(tx);
                await tx.query('COMMIT');
                return result;
            } catch (err) {
                const e = translate(err);
                if (e instanceof ConnectionLost) lost = true;
                if (!lost) await tx.query('ROLLBACK').catch(() => { lost = true; });
                throw e;
            }
        } catch (err) {
            const e = translate(err);
            if (e instanceof ConnectionLost) lost = true;
            throw e;
        } finally {
            if (release) release(lost ? true : undefined);
        }
    }

    /** SET LOCAL ledger.acting_owner (inside a transaction; ends with it, so
     * it is safe under pgbouncer's transaction pooling). */
    async setActingOwner(ownerId: string): Promise<void> {
        await this.query("SELECT pg_catalog.set_config('ledger.acting_owner', $1::text, true)", [text(ownerId, 'ownerId')]);
    }

    // -- assets and accounts -------------------------------------------------

    async createAsset(code: string, scale: number): Promise<void> {
        await this.scalar('create_asset', ['code', text(code, 'code'), 'text'], ['scale', integer(scale, 'scale'), 'integer']);
    }

    /** Returns the account id (bigint, as a string). */
    async createAccount(code: string, asset: string, opts: CreateAccountOptions = {}): Promise<string> {
        return this.scalar('create_account',
            ['code', text(code, 'code'), 'text'],
            ['asset', text(asset, 'asset'), 'text'],
            ['min_balance', opts.minBalance === undefined ? undefined : toAmountOrNull(opts.minBalance, 'minBalance'), 'numeric'],
            ['owner_id', textOrNull(opts.ownerId, 'ownerId'), 'text'],
            ['metadata', jsonObject(opts.metadata, 'metadata'), 'jsonb']);
    }

    async balance(account: string): Promise<string> {
        return this.scalar('balance', ['account', text(account, 'account'), 'text']);
    }

    /** balance - held - floor; null for an unbounded account. */
    async availableBalance(account: string): Promise<string | null> {
        return this.scalar('available_balance', ['account', text(account, 'account'), 'text']);
    }

    /** 'hot' or 'cold'; returns the previous mode. */
    async setAccountMode(account: string, mode: 'hot' | 'cold'): Promise<string> {
        return this.scalar('set_account_mode', ['account', text(account, 'account'), 'text'], ['mode', text(mode, 'mode'), 'text']);
    }

    async setAccountLimits(account: string, maxActiveHolds: number | null): Promise<void> {
        await this.scalar('set_account_limits', ['account', text(account, 'account'), 'text'],
            ['max_active_holds', maxActiveHolds === null ? null : integer(maxActiveHolds, 'maxActiveHolds'), 'integer']);
    }

    // -- postings ------------------------------------------------------------

    /** Move a positive amount between two accounts of one asset; returns the
     * transaction id (the first call's, for a replayed key). */
    async transfer(fromAccount: string, toAccount: string, amount: Amount, opts: PostingOptions = {}): Promise<string> {
        return this.scalar('transfer',
            ['from_account', text(fromAccount, 'fromAccount'), 'text'],
            ['to_account', text(toAccount, 'toAccount'), 'text'],
            ['amount', toAmount(amount), 'numeric'],
            ['idempotency_key', textOrNull(opts.idempotencyKey, 'idempotencyKey'), 'text'],
            ['metadata', jsonObject(opts.metadata, 'metadata'), 'jsonb']);
    }

    /** Post signed legs (each asset nets to zero), sent as one jsonb
     * parameter: a JSON string, never a JS array (which node-postgres would
     * turn into a Postgres array literal). */
    async post(legs: Leg[], opts: PostingOptions = {}): Promise<string> {
        return this.scalar('post',
            ['legs', stringifyJson(normalizeLegs(legs)), 'jsonb'],
            ['idempotency_key', textOrNull(opts.idempotencyKey, 'idempotencyKey'), 'text'],
            ['metadata', jsonObject(opts.metadata, 'metadata'), 'jsonb']);
    }

    /** Many transfers in one call, one BatchItem per item in input order.
     * A refused item throws nothing unless atomic (then the first refusal
     * fails the call and is thrown, nothing written). */
    async transferBatch(items: TransferItem[], opts: { atomic?: boolean } = {}): Promise<BatchItem[]> {
        if (!Array.isArray(items)) throw new TypeError('items must be an array');
        const froms: string[] = [], tos: string[] = [], amounts: string[] = [];
        const keys: (string | null)[] = [], metas: (string | null)[] = [];
        items.forEach((t, i) => {
            froms.push(text(t.fromAccount, `items[${i}].fromAccount`));
            tos.push(text(t.toAccount, `items[${i}].toAccount`));
            amounts.push(toAmount(t.amount, `items[${i}].amount`));
            keys.push(textOrNull(t.idempotencyKey, `items[${i}].idempotencyKey`) ?? null);
            metas.push(t.metadata == null ? null : (jsonObject(t.metadata, `items[${i}].metadata`) as string));
        });
        const rows = await this.rows('transfer_batch', 'item, result, message, transaction_id, facts::text AS facts',
            ['from_accounts', froms, 'text[]'],
            ['to_accounts', tos, 'text[]'],
            ['amounts', amounts, 'numeric[]'],
            ['idempotency_keys', keys.some((k) => k !== null) ? keys : undefined, 'text[]'],
            // a NULL element is refused (LD011): '{}' is the single call's default
            ['metadata', metas.some((m) => m !== null) ? metas.map((m) => m ?? '{}') : undefined, 'jsonb[]'],
            ['atomic', bool(opts.atomic, 'atomic'), 'boolean']);
        return rows.map((r) => new BatchItem(r.item, r.result, r.message, r.transaction_id, r.facts));
    }

    /** Many postings in one call ({legs, idempotencyKey?, metadata?} each),
     * rows as transferBatch. */
    async postBatch(items: PostingItem[], opts: { atomic?: boolean } = {}): Promise<BatchItem[]> {
        if (!Array.isArray(items)) throw new TypeError('items must be an array');
        const postings = items.map((p, i) => {
            const o: Record<string, unknown> = { legs: normalizeLegs(p.legs, `items[${i}].legs`) };
            const key = textOrNull(p.idempotencyKey, `items[${i}].idempotencyKey`);
            if (key != null) o['idempotency_key'] = key;
            if (p.metadata != null) {
                jsonObject(p.metadata, `items[${i}].metadata`);
                o['metadata'] = p.metadata;
            }
            return o;
        });
        const rows = await this.rows('post_batch', 'item, result, message, transaction_id, facts::text AS facts',
            ['postings', stringifyJson(postings), 'jsonb'],
            ['atomic', bool(opts.atomic, 'atomic'), 'boolean']);
        return rows.map((r) => new BatchItem(r.item, r.result, r.message, r.transaction_id, r.facts));
    }

    /** Many holds in one call, each {fromAccount, amount, toAccount?, mode?,
     * externalRef?, submitWithin?, confirmWithin?, idempotencyKey?,
     * metadata?} (left out or null: hold()'s default); rows as
     * transferBatch, with the hold id (`holdId`). */
    async holdBatch(items: HoldItem[], opts: { atomic?: boolean } = {}): Promise<BatchItem[]> {
        if (!Array.isArray(items)) throw new TypeError('items must be an array');
        const holds = items.map((h, i) => {
            const o: Record<string, unknown> = {
                from_account: text(h.fromAccount, `items[${i}].fromAccount`),
                amount: toAmount(h.amount, `items[${i}].amount`),
            };
            const put = (key: string, value: unknown) => { if (value != null) o[key] = value; };
            put('to_account', textOrNull(h.toAccount, `items[${i}].toAccount`));
            put('mode', textOrNull(h.mode, `items[${i}].mode`));
            put('external_ref', textOrNull(h.externalRef, `items[${i}].externalRef`));
            put('submit_within', h.submitWithin === null ? null : interval(h.submitWithin, `items[${i}].submitWithin`));
            put('confirm_within', h.confirmWithin === null ? null : interval(h.confirmWithin, `items[${i}].confirmWithin`));
            put('idempotency_key', textOrNull(h.idempotencyKey, `items[${i}].idempotencyKey`));
            if (h.metadata != null) {
                jsonObject(h.metadata, `items[${i}].metadata`);
                o['metadata'] = h.metadata;
            }
            return o;
        });
        const rows = await this.rows('hold_batch', 'item, result, message, hold_id, facts::text AS facts',
            ['holds', stringifyJson(holds), 'jsonb'],
            ['atomic', bool(opts.atomic, 'atomic'), 'boolean']);
        return rows.map((r) => new BatchItem(r.item, r.result, r.message, r.hold_id, r.facts));
    }

    /** Many captures in one call, each {holdId, amount?, idempotencyKey?}
     * (amount left out or null: all that remains); rows as transferBatch,
     * with the capture's transaction id. */
    async captureBatch(items: CaptureItem[], opts: { atomic?: boolean } = {}): Promise<BatchItem[]> {
        if (!Array.isArray(items)) throw new TypeError('items must be an array');
        const captures = items.map((c, i) => {
            const o: Record<string, unknown> = { hold_id: text(c.holdId, `items[${i}].holdId`) };
            if (c.amount != null) o['amount'] = toAmount(c.amount, `items[${i}].amount`);
            const key = textOrNull(c.idempotencyKey, `items[${i}].idempotencyKey`);
            if (key != null) o['idempotency_key'] = key;
            return o;
        });
        const rows = await this.rows('capture_batch', 'item, result, message, transaction_id, facts::text AS facts',
            ['captures', stringifyJson(captures), 'jsonb'],
            ['atomic', bool(opts.atomic, 'atomic'), 'boolean']);
        return rows.map((r) => new BatchItem(r.item, r.result, r.message, r.transaction_id, r.facts));
    }

    /** Many voids in one call, each {holdId, reason, idempotencyKey?}; rows
     * as transferBatch, with the amount released (`released`, a string). */
    async voidBatch(items: VoidItem[], opts: { atomic?: boolean } = {}): Promise<BatchItem[]> {
        if (!Array.isArray(items)) throw new TypeError('items must be an array');
        const voids = items.map((v, i) => {
            const o: Record<string, unknown> = {
                hold_id: text(v.holdId, `items[${i}].holdId`),
                reason: text(v.reason, `items[${i}].reason`),
            };
            const key = textOrNull(v.idempotencyKey, `items[${i}].idempotencyKey`);
            if (key != null) o['idempotency_key'] = key;
            return o;
        });
        const rows = await this.rows('void_batch', 'item, result, message, released, facts::text AS facts',
            ['voids', stringifyJson(voids), 'jsonb'],
            ['atomic', bool(opts.atomic, 'atomic'), 'boolean']);
        return rows.map((r) => new BatchItem(r.item, r.result, r.message, r.released, r.facts));
    }

    // -- corrections and checks ---------------------------------------------

    async invalidate(transactionId: string, reason: string, opts: { force?: boolean } = {}): Promise<InvalidatedBalance[]> {
        const rows = await this.rows('invalidate', 'account, balance_before, balance_after',
            ['transaction_id', text(transactionId, 'transactionId'), 'uuid'],
            ['reason', text(reason, 'reason'), 'text'],
            ['force', bool(opts.force, 'force'), 'boolean']);
        return rows.map((r) => ({ account: r.account, balanceBefore: r.balance_before, balanceAfter: r.balance_after }));
    }

    async rebuildBalances(account?: string | null): Promise<number> {
        return this.scalar('rebuild_balances', ['account', textOrNull(account, 'account'), 'text']);
    }

    async reconcile(opts: { repair?: boolean } = {}): Promise<ReconcileFinding[]> {
        const rows = await this.rows('reconcile', 'account, kind, day, expected, actual, repaired',
            ['repair', bool(opts.repair, 'repair'), 'boolean']);
        return rows.map((r) => ({
            account: r.account, kind: r.kind, day: r.day, expected: r.expected, actual: r.actual, repaired: r.repaired,
        }));
    }

    async acknowledgeAlert(alertId: Id): Promise<boolean> {
        return this.scalar('acknowledge_alert', ['id', id(alertId, 'alertId'), 'bigint']);
    }

    /** Returns the pg_cron job id. */
    async scheduleReconciliation(opts: { schedule?: string; repair?: boolean } = {}): Promise<string> {
        return this.scalar('schedule_reconciliation',
            ['schedule', textOrNull(opts.schedule, 'schedule') ?? undefined, 'text'],
            ['repair', bool(opts.repair, 'repair'), 'boolean']);
    }

    async unscheduleReconciliation(): Promise<boolean> {
        return this.scalar('unschedule_reconciliation');
    }

    // -- hot accounts --------------------------------------------------------

    async fold(maxRows?: number): Promise<number> {
        return this.scalar('fold', ['max_rows', maxRows === undefined ? undefined : integer(maxRows, 'maxRows'), 'integer']);
    }

    async hotAccounts(): Promise<HotAccount[]> {
        const rows = await this.rows('hot_accounts', '*');
        return rows.map((r) => ({
            account: r.account, accountId: r.account_id, committed: r.committed, reserved: r.reserved,
            available: r.available, inflight: r.inflight, debitsAccepted: r.debits_accepted,
            debitsRefused: r.debits_refused, state: r.state,
        }));
    }

    async foldWorkerStatus(): Promise<FoldWorkerStatus> {
        const [r] = await this.rows('fold_worker_status', '*');
        return {
            state: r.state, pid: r.pid, rounds: r.rounds, foldedRows: r.folded_rows,
            balanceWrites: r.balance_writes, lastFoldAt: r.last_fold_at, ready: r.ready,
        };
    }

    // -- holds ---------------------------------------------------------------

    /** Reserve an amount: exclusive (default; needs toAccount) or shared.
     * Returns the hold id. */
    async hold(fromAccount: string, amount: Amount, opts: HoldOptions = {}): Promise<string> {
        return this.scalar('hold',
            ['from_account', text(fromAccount, 'fromAccount'), 'text'],
            ['amount', toAmount(amount), 'numeric'],
            ['to_account', textOrNull(opts.toAccount, 'toAccount'), 'text'],
            ['mode', textOrNull(opts.mode, 'mode') ?? undefined, 'text'],
            ['external_ref', textOrNull(opts.externalRef, 'externalRef'), 'text'],
            ['submit_within', interval(opts.submitWithin, 'submitWithin'), 'interval'],
            ['confirm_within', interval(opts.confirmWithin, 'confirmWithin'), 'interval'],
            ['idempotency_key', textOrNull(opts.idempotencyKey, 'idempotencyKey'), 'text'],
            ['metadata', jsonObject(opts.metadata, 'metadata'), 'jsonb']);
    }

    /** reserved → submitted: call it just before sending the request out. */
    async markSubmitted(holdId: string, opts: { externalRef?: string | null } = {}): Promise<void> {
        await this.scalar('mark_submitted', ['hold_id', text(holdId, 'holdId'), 'uuid'],
            ['external_ref', textOrNull(opts.externalRef, 'externalRef'), 'text']);
    }

    /** Move an amount (default: all that remains) of an exclusive hold;
     * returns the capture's transaction id. */
    async capture(holdId: string, opts: CaptureOptions = {}): Promise<string> {
        return this.scalar('capture', ['hold_id', text(holdId, 'holdId'), 'uuid'],
            ['amount', opts.amount === undefined ? undefined : toAmountOrNull(opts.amount), 'numeric'],
            ['idempotency_key', textOrNull(opts.idempotencyKey, 'idempotencyKey'), 'text']);
    }

    /** Release what remains of a hold; returns that amount. */
    async void(holdId: string, reason: string, opts: { idempotencyKey?: string | null } = {}): Promise<string> {
        return this.scalar('void', ['hold_id', text(holdId, 'holdId'), 'uuid'], ['reason', text(reason, 'reason'), 'text'],
            ['idempotency_key', textOrNull(opts.idempotencyKey, 'idempotencyKey'), 'text']);
    }

    async expireHolds(): Promise<number> {
        return this.scalar('expire_holds');
    }

    async scheduleHoldExpiry(schedule?: string): Promise<string> {
        return this.scalar('schedule_hold_expiry', ['schedule', textOrNull(schedule, 'schedule') ?? undefined, 'text']);
    }

    async unscheduleHoldExpiry(): Promise<boolean> {
        return this.scalar('unschedule_hold_expiry');
    }

    async staleHolds(): Promise<StaleHold[]> {
        const rows = await this.rows('stale_holds', '*');
        return rows.map((r) => ({
            holdId: r.hold_id, account: r.account, ownerId: r.owner_id, toAccount: r.to_account,
            amount: r.amount, remaining: r.remaining, state: r.state, externalRef: r.external_ref,
            submittedAt: r.submitted_at, confirmDeadline: r.confirm_deadline,
        }));
    }

    /** Load a processor's statement records ({external_ref, amount, asset,
     * status, occurred_at}); amounts as exact decimals (a JS number is refused). */
    async importStatement(source: string, records: JsonObject[]): Promise<number> {
        return this.scalar('import_statement', ['source', text(source, 'source'), 'text'],
            ['records', statementRecords(records), 'jsonb']);
    }

    async reconcileExternal(source: string, since: Date | string, until: Date | string): Promise<ExternalMismatch[]> {
        const rows = await this.rows('reconcile_external', 'external_ref, kind, ours, theirs',
            ['source', text(source, 'source'), 'text'],
            ['since', timestamp(since, 'since'), 'timestamptz'],
            ['until', timestamp(until, 'until'), 'timestamptz']);
        return rows.map((r) => ({ externalRef: r.external_ref, kind: r.kind, ours: r.ours, theirs: r.theirs }));
    }

    // -- events --------------------------------------------------------------

    /** Accept a request as an event; payload keys are the named arguments of
     * the function `type` (amounts as exact decimals, legs as for post). */
    async appendEvent(stream: string, type: string, payload: JsonObject, opts: { idempotencyKey?: string | null } = {}): Promise<string> {
        return this.scalar('append_event', ['stream', text(stream, 'stream'), 'text'], ['type', text(type, 'type'), 'text'],
            ['payload', eventPayload(payload), 'jsonb'],
            ['idempotency_key', textOrNull(opts.idempotencyKey, 'idempotencyKey'), 'text']);
    }

    async applyEvents(maxEvents?: number): Promise<number> {
        return this.scalar('apply_events', ['max_events', maxEvents === undefined ? undefined : integer(maxEvents, 'maxEvents'), 'integer']);
    }

    async eventHorizon(): Promise<string> {
        return this.scalar('event_horizon');
    }

    async projectionLag(): Promise<ProjectionLag> {
        const [r] = await this.rows('projection_lag', 'events, seconds');
        return { events: r.events, seconds: r.seconds };
    }

    async catchUp(opts: { stream?: string | null; timeout?: Interval } = {}): Promise<number> {
        return this.scalar('catch_up', ['stream', textOrNull(opts.stream, 'stream'), 'text'],
            ['timeout', interval(opts.timeout, 'timeout'), 'interval']);
    }

    async eventWorkerStatus(): Promise<EventWorkerStatus> {
        const [r] = await this.rows('event_worker_status', '*');
        return {
            state: r.state, pid: r.pid, batches: r.batches, applied: r.applied, rejected: r.rejected, errors: r.errors,
            lastBatchAt: r.last_batch_at, lastError: r.last_error, lastErrorAt: r.last_error_at,
        };
    }

    // -- outbox --------------------------------------------------------------

    /** Write an outbox message in the caller's transaction; returns its id. */
    async enqueue(topic: string, key: string, payload: JsonObject): Promise<string> {
        return this.scalar('enqueue', ['topic', text(topic, 'topic'), 'text'], ['key', text(key, 'key'), 'text'],
            ['payload', jsonObject(payload, 'payload'), 'jsonb']);
    }

    async outboxClaim(consumer: string, opts: { maxMessages?: number; lease?: Interval; topics?: string[] | null } = {}): Promise<OutboxMessage[]> {
        const rows = await this.rows('outbox_claim', 'id, topic, key, payload, attempts, created_at',
            ['consumer', text(consumer, 'consumer'), 'text'],
            ['max_messages', opts.maxMessages === undefined ? undefined : integer(opts.maxMessages, 'maxMessages'), 'integer'],
            ['lease', interval(opts.lease, 'lease'), 'interval'],
            ['topics', opts.topics === undefined ? undefined : opts.topics === null ? null : opts.topics.map((t, i) => text(t, `topics[${i}]`)), 'text[]']);
        return rows.map((r) => ({
            id: r.id, topic: r.topic, key: r.key, payload: r.payload, attempts: r.attempts, createdAt: r.created_at,
        }));
    }

    async outboxAck(messageId: Id, consumer?: string | null): Promise<boolean> {
        return this.scalar('outbox_ack', ['id', id(messageId, 'messageId'), 'bigint'], ['consumer', textOrNull(consumer, 'consumer'), 'text']);
    }

    /** Returns the message's new state: 'pending' (retried later) or 'dead'. */
    async outboxFail(messageId: Id, error: string, consumer?: string | null): Promise<string> {
        return this.scalar('outbox_fail', ['id', id(messageId, 'messageId'), 'bigint'], ['error', text(error, 'error'), 'text'],
            ['consumer', textOrNull(consumer, 'consumer'), 'text']);
    }

    async outboxRelease(messageId: Id, consumer?: string | null): Promise<boolean> {
        return this.scalar('outbox_release', ['id', id(messageId, 'messageId'), 'bigint'], ['consumer', textOrNull(consumer, 'consumer'), 'text']);
    }

    async outboxRetry(messageId: Id): Promise<boolean> {
        return this.scalar('outbox_retry', ['id', id(messageId, 'messageId'), 'bigint']);
    }

    // -- exchange ------------------------------------------------------------

    /** Append an observed rate (quote units per base unit); returns its id. */
    async setExchangeRate(base: string, quote: string, rate: Amount, opts: { observedAt?: Date | string; source?: string | null } = {}): Promise<string> {
        return this.scalar('set_exchange_rate', ['base', text(base, 'base'), 'text'], ['quote', text(quote, 'quote'), 'text'],
            ['rate', toAmount(rate, 'rate'), 'numeric'],
            ['observed_at', timestamp(opts.observedAt, 'observedAt'), 'timestamptz'],
            ['source', textOrNull(opts.source, 'source'), 'text']);
    }

    async setExchangeAccounts(asset: string, liquidityAccount: string, spreadAccount?: string | null): Promise<void> {
        await this.scalar('set_exchange_accounts', ['asset', text(asset, 'asset'), 'text'],
            ['liquidity_account', text(liquidityAccount, 'liquidityAccount'), 'text'],
            ['spread_account', textOrNull(spreadAccount, 'spreadAccount'), 'text']);
    }

    /** Convert an amount of the base asset at the newest rate; returns the
     * transaction id. */
    async exchange(fromAccount: string, toAccount: string, amount: Amount, opts: ExchangeOptions = {}): Promise<string> {
        return this.scalar('exchange',
            ['from_account', text(fromAccount, 'fromAccount'), 'text'],
            ['to_account', text(toAccount, 'toAccount'), 'text'],
            ['amount', toAmount(amount), 'numeric'],
            ['max_rate_age', intervalOrNull(opts.maxRateAge, 'maxRateAge'), 'interval'],
            ['wait', interval(opts.wait, 'wait'), 'interval'],
            ['spread', opts.spread === undefined ? undefined : toAmount(opts.spread, 'spread'), 'numeric'],
            ['idempotency_key', textOrNull(opts.idempotencyKey, 'idempotencyKey'), 'text'],
            ['metadata', jsonObject(opts.metadata, 'metadata'), 'jsonb']);
    }

    async checkRateFeeds(): Promise<number> {
        return this.scalar('check_rate_feeds');
    }

    // -- security ------------------------------------------------------------

    async setRateLimit(role: string, perSecond: Amount, burst: number, opts: { perOwner?: boolean } = {}): Promise<void> {
        await this.scalar('set_rate_limit', ['role', text(role, 'role'), 'name'],
            ['per_second', toAmount(perSecond, 'perSecond'), 'numeric'],
            ['burst', integer(burst, 'burst'), 'integer'],
            ['per_owner', bool(opts.perOwner, 'perOwner'), 'boolean']);
    }

    async removeRateLimit(role: string): Promise<boolean> {
        return this.scalar('remove_rate_limit', ['role', text(role, 'role'), 'name']);
    }

    async rateLimitStatus(): Promise<RateLimitStatus[]> {
        const rows = await this.rows('rate_limit_status', '*');
        return rows.map((r) => ({
            role: r.role, perSecond: r.per_second, burst: r.burst, perOwner: r.per_owner, calls: r.calls, refused: r.refused,
        }));
    }

    async grantOwnerAccess(role: string, ownerId: string): Promise<boolean> {
        return this.scalar('grant_owner_access', ['role', text(role, 'role'), 'name'], ['owner_id', text(ownerId, 'ownerId'), 'text']);
    }

    async revokeOwnerAccess(role: string, ownerId: string): Promise<boolean> {
        return this.scalar('revoke_owner_access', ['role', text(role, 'role'), 'name'], ['owner_id', text(ownerId, 'ownerId'), 'text']);
    }

    // -- misc ----------------------------------------------------------------

    async version(): Promise<string> {
        return this.scalar('version');
    }

    /** A time-ordered UUIDv7 from the server. */
    async newId(): Promise<string> {
        return this.scalar('new_id');
    }
}
