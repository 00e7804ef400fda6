/**
 * Typed errors.
 *
 * Every error the ledger raises has its own SQLSTATE in class LD (the
 * "Errors" table of the extension's README).  translate() turns the error
 * node-postgres gives (a pg.DatabaseError with `code`, `detail`, `hint`,
 * `where`) into an instance of the class registered for its SQLSTATE, with
 * the original error as `cause`.
 *
 * Structured facts: the LAST line of an LD error's DETAIL is a JSON object
 * ({"sqlstate": "LD001", "account": "alice", "balance": "40.00", ...}).  It
 * becomes `facts`; `detail` is the prose before it.  Amounts are JSON strings
 * in the facts and stay strings here; counts and milliseconds are numbers.
 * Nothing is ever scraped from the prose.
 */

import { parseJsonExact } from './json';

/** The facts object of an error (see the README's error table for the keys). */
export type Facts = Record<string, unknown>;

export interface LedgerErrorInit {
    sqlstate?: string | null;
    detail?: string | null;
    hint?: string | null;
    context?: string | null;
    facts?: Facts;
    cause?: unknown;
}

/** Base class of every error this client raises for a database error. */
export class LedgerError extends Error {
    /** The SQLSTATE this class stands for (null: several, or none). */
    static readonly code: string | null = null;
    /** Whether sending the same request again (same key) is the right reaction. */
    static readonly retryable: boolean = false;

    /** The SQLSTATE ("LD001", "40001", ...), or null when the server sent none. */
    readonly sqlstate: string | null;
    /** The DETAIL prose without the facts line (null when there was none). */
    readonly detail: string | null;
    readonly hint: string | null;
    /** The CONTEXT (for a batch refused as a whole: which item). */
    readonly context: string | null;
    /** The DETAIL's machine-readable last line; {} when the server sent none. */
    readonly facts: Facts;
    readonly retryable: boolean;

    constructor(message: string, init: LedgerErrorInit = {}) {
        super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
        const ctor = new.target as typeof LedgerError;
        this.name = ctor.name;
        this.sqlstate = init.sqlstate !== undefined ? init.sqlstate : ctor.code;
        this.detail = init.detail ?? null;
        this.hint = init.hint ?? null;
        this.context = init.context ?? null;
        this.facts = init.facts ?? {};
        this.retryable = ctor.retryable;
    }

    /** Milliseconds the server asks to wait before a retry (LD041), or null. */
    get retryAfterMs(): number | null {
        const v = this.facts['retry_after_ms'];
        if (typeof v === 'number') return v;
        if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return Number(v);
        return null;
    }
}

// ---------------------------------------------------------------------------
// errors that are not the ledger's own
// ---------------------------------------------------------------------------

/** A database error without an LD SQLSTATE (see `sqlstate`). */
export class DatabaseError extends LedgerError {}

/** 42501: the role lacks EXECUTE on the function; grant it. */
export class PermissionDenied extends DatabaseError { static override readonly code = '42501'; }

/** 40001: a REPEATABLE READ / SERIALIZABLE conflict; retry the call. */
export class SerializationFailure extends DatabaseError {
    static override readonly code = '40001';
    static override readonly retryable = true;
}

/** 40P01: two multi-posting transactions deadlocked; retry the transaction. */
export class DeadlockDetected extends DatabaseError {
    static override readonly code = '40P01';
    static override readonly retryable = true;
}

/**
 * The connection dropped (no SQLSTATE, or the server ended the session:
 * 57P01/57P02/57P03, class 08).  Whether the last call committed is
 * unknown: retry it with the same idempotency key (idempotent() does).
 * Not a SerializationFailure: nothing was refused, the answer was lost.
 */
export class ConnectionLost extends LedgerError { static override readonly retryable = true; }

// ---------------------------------------------------------------------------
// the ledger's own errors: one class per SQLSTATE of the README's table
// ---------------------------------------------------------------------------

/** LD001: a debit or hold would take the available balance below the floor. */
export class InsufficientFunds extends LedgerError {
    static override readonly code = 'LD001';
    declare readonly facts: Facts & {
        account?: string; asset?: string; balance?: string; floor?: string;
        available?: string; requested?: string;
        held_exclusive?: string; held_shared?: string; request?: string;
    };
}
/** LD002: an account code does not exist. */
export class UnknownAccount extends LedgerError {
    static override readonly code = 'LD002';
    declare readonly facts: Facts & { account?: string; leg?: number };
}
/** LD003: the asset does not exist. */
export class UnknownAsset extends LedgerError {
    static override readonly code = 'LD003';
    declare readonly facts: Facts & { asset?: string; account?: string };
}
/** LD004: a transfer between accounts of different assets. */
export class AssetMismatch extends LedgerError {
    static override readonly code = 'LD004';
    declare readonly facts: Facts & { account?: string; asset?: string; other_account?: string; other_asset?: string };
}
/** LD005: zero, negative, NaN, infinite, over-scale, >= 10^30, or not a decimal. */
export class InvalidAmount extends LedgerError {
    static override readonly code = 'LD005';
    declare readonly facts: Facts & {
        argument?: string; given?: string | null; given_chars?: number; reason?: string;
        asset?: string; scale?: number; max_digits?: number; account?: string; leg?: number;
        function?: string; given_type?: string;
    };
}
/** LD006: UPDATE, DELETE or TRUNCATE of append-only history. */
export class ImmutableRecord extends LedgerError {
    static override readonly code = 'LD006';
    declare readonly facts: Facts & {
        table?: string; row_id?: string | null; column?: string; last_seq?: number; last_event_id?: string;
    };
}
/** LD007: an idempotency key reused with a different request. */
export class IdempotencyConflict extends LedgerError {
    static override readonly code = 'LD007';
    declare readonly facts: Facts & { idempotency_key?: string; original_kind?: string; original_id?: string };
}
/** LD008: the legs of an asset do not sum to zero. */
export class UnbalancedPosting extends LedgerError {
    static override readonly code = 'LD008';
    declare readonly facts: Facts & { asset?: string; sum?: string };
}
/** LD009: create_account with a code that exists. */
export class DuplicateAccount extends LedgerError {
    static override readonly code = 'LD009';
    declare readonly facts: Facts & { account?: string };
}
/** LD010: create_asset with a code that exists. */
export class DuplicateAsset extends LedgerError {
    static override readonly code = 'LD010';
    declare readonly facts: Facts & { asset?: string };
}
/** LD011: a NULL, a bad code, key or metadata, a bad scale, a self-transfer, ... */
export class InvalidArgument extends LedgerError {
    static override readonly code = 'LD011';
    declare readonly facts: Facts & {
        argument?: string; bytes?: number; max_bytes?: number; byte?: number; given?: unknown;
        account?: string; asset?: string; role?: string; topic?: string; consumer?: string; source?: string;
        hold_id?: string; external_ref?: string; message_id?: number; count?: number; limit?: number;
        isolation?: string;
    };
}
/** LD012: post legs that are not 2..max_legs {account, amount} objects. */
export class InvalidLegs extends LedgerError {
    static override readonly code = 'LD012';
    declare readonly facts: Facts & {
        legs?: number; max_legs?: number; leg?: number; posting?: number;
        function?: string; argument?: string; given_type?: string;
    };
}
/** LD013: invalidate of a transaction id that does not exist. */
export class UnknownTransaction extends LedgerError {
    static override readonly code = 'LD013';
    declare readonly facts: Facts & { transaction_id?: string };
}
/** LD014: invalidate of a transaction that is already invalidated. */
export class AlreadyInvalidated extends LedgerError {
    static override readonly code = 'LD014';
    declare readonly facts: Facts & { transaction_id?: string };
}
/** LD015: invalidate would leave an account below its floor. */
export class InvalidationBelowFloor extends LedgerError { static override readonly code = 'LD015'; }
/** LD016: acknowledge_alert of an alert id that does not exist. */
export class UnknownAlert extends LedgerError {
    static override readonly code = 'LD016';
    declare readonly facts: Facts & { alert_id?: number };
}
/** LD017: scheduling without pg_cron in the database. */
export class PgCronUnavailable extends LedgerError { static override readonly code = 'LD017'; }
/** LD018: PREPARE TRANSACTION of a transaction that posted to a hot account. */
export class HotPrepareRefused extends LedgerError {
    static override readonly code = 'LD018';
    declare readonly facts: Facts & { reservations?: number };
}
/** LD019: the account switched mode or is being corrected (retryable). */
export class ModeChanged extends LedgerError {
    static override readonly code = 'LD019';
    static override readonly retryable = true;
    declare readonly facts: Facts & { account?: string; mode?: string; state?: string };
}
/** LD020: a hot posting before the escrow was rebuilt after a restart (retryable). */
export class HotNotReady extends LedgerError {
    static override readonly code = 'LD020';
    static override readonly retryable = true;
    declare readonly facts: Facts & { waited_ms?: number };
}
/** LD021: hot mode not available (no preload, another database, no slot). */
export class HotUnavailable extends LedgerError {
    static override readonly code = 'LD021';
    declare readonly facts: Facts & { account?: string; limit?: number };
}
/** LD022: a hot account's escrow would leave its bound. */
export class HotOutOfRange extends LedgerError {
    static override readonly code = 'LD022';
    declare readonly facts: Facts & {
        scale?: number; account?: string; asset?: string; balance?: string; amount?: string; floor?: string | null;
    };
}
/** LD023: capture, void or mark_submitted of a hold id that does not exist. */
export class UnknownHold extends LedgerError {
    static override readonly code = 'LD023';
    declare readonly facts: Facts & { hold_id?: string };
}
/** LD024: the hold is captured, voided or expired. */
export class HoldFinished extends LedgerError {
    static override readonly code = 'LD024';
    declare readonly facts: Facts & {
        hold_id?: string; account?: string; state?: string; amount?: string; captured?: string; remaining?: string;
    };
}
/** LD025: a capture of more than remains on the hold. */
export class HoldExceeded extends LedgerError {
    static override readonly code = 'LD025';
    declare readonly facts: Facts & {
        hold_id?: string; account?: string; amount?: string; captured?: string; remaining?: string; requested?: string;
    };
}
/** LD026: a capture of a shared hold. */
export class HoldShared extends LedgerError {
    static override readonly code = 'LD026';
    declare readonly facts: Facts & { hold_id?: string; account?: string };
}
/** LD027: a hold beyond the account's max_active_holds. */
export class HoldLimit extends LedgerError {
    static override readonly code = 'LD027';
    declare readonly facts: Facts & { account?: string; active?: number; max_active_holds?: number };
}
/** LD028: a hold on a hot account, or a hot switch with active holds. */
export class HoldHot extends LedgerError {
    static override readonly code = 'LD028';
    declare readonly facts: Facts & { account?: string; active?: number; held_exclusive?: string; held_shared?: string };
}
/** LD029: invalidate of a capture's transaction (post a refund instead). */
export class CaptureNotInvalidated extends LedgerError { static override readonly code = 'LD029'; }
/** LD030: a bad import_statement record. */
export class InvalidRecord extends LedgerError {
    static override readonly code = 'LD030';
    declare readonly facts: Facts & { record?: number; field?: string; source?: string };
}
/** LD031: events without the preload; PREPARE after appending events. */
export class EventsUnavailable extends LedgerError {
    static override readonly code = 'LD031';
    declare readonly facts: Facts & { database?: string; limit?: number };
}
/** LD032: an unknown event type, a bad payload, or no right to its function. */
export class InvalidEvent extends LedgerError {
    static override readonly code = 'LD032';
    declare readonly facts: Facts & {
        type?: string | null; key?: string; json_type?: string; bytes?: number; max_bytes?: number;
        role?: string; function?: string; seq?: number;
    };
}
/** LD033: a newer event already changed the row (the pointer was rewound). */
export class StaleEvent extends LedgerError {
    static override readonly code = 'LD033';
    declare readonly facts: Facts & {
        table?: string; row_id?: string; seq?: number; event_id?: string; last_seq?: number; last_event_id?: string;
    };
}
/** LD034: catch_up timed out, or the caller's transaction appended events. */
export class CatchUpTimeout extends LedgerError {
    static override readonly code = 'LD034';
    declare readonly facts: Facts & {
        stream?: string | null; pointer?: number; target?: number; horizon?: number; timeout_ms?: number;
    };
}
/** LD035: an outbox message unknown or not in the needed state. */
export class OutboxState extends LedgerError {
    static override readonly code = 'LD035';
    declare readonly facts: Facts & {
        message_id?: number; consumer?: string | null; state?: string; required_state?: string; leased_by?: string;
    };
}
/** LD036: an exchange's asset has no liquidity (or spread) account. */
export class ExchangeNotConfigured extends LedgerError { static override readonly code = 'LD036'; }
/** LD037: no rate young enough (retryable). */
export class StaleRate extends LedgerError {
    static override readonly code = 'LD037';
    static override readonly retryable = true;
    declare readonly facts: Facts & {
        base?: string; quote?: string; observed_at?: string | null; age_ms?: number | null; max_age_ms?: number;
    };
}
/** LD038: a bad rate, pair or observation time. */
export class InvalidRate extends LedgerError { static override readonly code = 'LD038'; }
/** LD039: the account's owner is not ledger.acting_owner. */
export class NotAccountOwner extends LedgerError {
    static override readonly code = 'LD039';
    declare readonly facts: Facts & { account?: string; acting_owner?: string };
}
/** LD040: the role must set ledger.acting_owner to debit. */
export class ActingOwnerRequired extends LedgerError {
    static override readonly code = 'LD040';
    declare readonly facts: Facts & { account?: string; role?: string };
}
/** LD041: the role is over its rate limit (retryable; see retryAfterMs). */
export class RateLimited extends LedgerError {
    static override readonly code = 'LD041';
    static override readonly retryable = true;
    declare readonly facts: Facts & {
        role?: string; per_second?: string; burst?: number; acting_owner?: string | null; retry_after_ms?: number;
    };
}

type ErrorClass = typeof LedgerError;

/** The class per SQLSTATE (the ledger's LD codes and 40001, 40P01, 42501). */
export const ERROR_CLASSES: Readonly<Record<string, ErrorClass>> = Object.freeze(Object.fromEntries(
    [
        InsufficientFunds, UnknownAccount, UnknownAsset, AssetMismatch, InvalidAmount, ImmutableRecord,
        IdempotencyConflict, UnbalancedPosting, DuplicateAccount, DuplicateAsset, InvalidArgument,
        InvalidLegs, UnknownTransaction, AlreadyInvalidated, InvalidationBelowFloor, UnknownAlert,
        PgCronUnavailable, HotPrepareRefused, ModeChanged, HotNotReady, HotUnavailable, HotOutOfRange,
        UnknownHold, HoldFinished, HoldExceeded, HoldShared, HoldLimit, HoldHot, CaptureNotInvalidated,
        InvalidRecord, EventsUnavailable, InvalidEvent, StaleEvent, CatchUpTimeout, OutboxState,
        ExchangeNotConfigured, StaleRate, InvalidRate, NotAccountOwner, ActingOwnerRequired, RateLimited,
        SerializationFailure, DeadlockDetected, PermissionDenied,
    ].map((cls) => [cls.code as string, cls as ErrorClass]),
));

/** SQLSTATEs whose calls are worth sending again with the same key. */
export const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set(
    Object.entries(ERROR_CLASSES).filter(([, cls]) => cls.retryable).map(([code]) => code),
);

/** SQLSTATEs meaning the server ended the session. */
const CONNECTION_SQLSTATES = new Set(['57P01', '57P02', '57P03']);

/** The class for a SQLSTATE: its own, LedgerError for an LD code this
 * client does not know yet, ConnectionLost for 57P0x and class 08,
 * DatabaseError otherwise. */
export function classForSqlstate(sqlstate: string | null | undefined): ErrorClass {
    if (!sqlstate) return ConnectionLost;
    const cls = ERROR_CLASSES[sqlstate];
    if (cls) return cls;
    if (CONNECTION_SQLSTATES.has(sqlstate) || sqlstate.startsWith('08')) return ConnectionLost;
    if (sqlstate.startsWith('LD')) return LedgerError;
    return DatabaseError;
}

/** The facts of one line, or null when it is not a JSON object. */
export function parseFacts(line: string | null | undefined): Facts | null {
    if (!line) return null;
    const s = line.trim();
    if (!s.startsWith('{')) return null;
    try {
        const v = parseJsonExact(s);
        return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Facts) : null;
    } catch {
        return null;
    }
}

/** Split a DETAIL into its prose (null if none is left) and the facts of
 * its last line ({} when that line is not a JSON object). */
export function splitDetail(detail: string | null | undefined): { detail: string | null; facts: Facts } {
    if (!detail) return { detail: detail ?? null, facts: {} };
    const nl = detail.lastIndexOf('\n');
    const facts = parseFacts(nl >= 0 ? detail.slice(nl + 1) : detail);
    if (facts === null) return { detail, facts: {} };
    const prose = nl >= 0 ? detail.slice(0, nl) : '';
    return { detail: prose.trim() === '' ? null : prose, facts };
}

const CONNECTION_ERRNO = new Set([
    'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTCONN', 'ECONNABORTED', 'EHOSTUNREACH',
    'ENETUNREACH', 'ENOENT', 'EAI_AGAIN',
]);
const CONNECTION_MESSAGE =
    /Connection terminated|connection error|not queryable|Client was closed|socket hang up|timeout exceeded when trying to connect|Connection ended/i;

interface PgLikeError {
    code?: unknown;
    severity?: unknown;
    detail?: unknown;
    hint?: unknown;
    where?: unknown;
    message?: unknown;
}

function isSqlstate(code: unknown): code is string {
    return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);
}

function str(v: unknown): string | null {
    return typeof v === 'string' && v !== '' ? v : null;
}

/**
 * Map an error from node-postgres to this module's class for its SQLSTATE
 * (the original error becomes `cause`).  A dropped connection (no SQLSTATE;
 * a socket error; 57P01 and the like) becomes ConnectionLost.  Any other
 * error (a TypeError from this client, a programming mistake) is returned
 * as it is.
 */
export function translate(err: unknown): unknown {
    if (err instanceof LedgerError || !(err instanceof Error)) return err;
    const e = err as Error & PgLikeError;
    if (isSqlstate(e.code) && (typeof e.severity === 'string' || e.constructor?.name === 'DatabaseError')) {
        const cls = classForSqlstate(e.code);
        const { detail, facts } = splitDetail(str(e.detail));
        return new cls(e.message || cls.name, {
            sqlstate: e.code, detail, facts, hint: str(e.hint), context: str(e.where), cause: err,
        });
    }
    if ((typeof e.code === 'string' && CONNECTION_ERRNO.has(e.code)) || CONNECTION_MESSAGE.test(e.message ?? '')) {
        return new ConnectionLost(e.message || 'connection lost', { sqlstate: null, cause: err });
    }
    return err;
}
