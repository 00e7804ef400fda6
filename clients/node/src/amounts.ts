/**
 * Amounts: exact decimals, never JS numbers.
 *
 * A JavaScript `number` is a binary float: 0.1 + 0.2 !== 0.3, and integers
 * above 2^53 lose digits.  Every amount this client sends is therefore a
 * decimal string, taken from one of:
 *
 *  - a `string` such as "25.00" or "-10.5" (sent as written; the ledger
 *    checks it against the asset's scale);
 *  - a `bigint` (a whole number, exact);
 *  - a Decimal-like object (decimal.js, big.js, bignumber.js, or anything
 *    with `toFixed()` or its own `toString()`), converted with `toFixed()`
 *    when it has one (no exponent) and `toString()` otherwise.
 *
 * A `number` (or a `Number` object) is refused with a TypeError before any
 * query runs.
 */

/** An object that prints itself as an exact decimal (decimal.js, big.js, ...).
 * `object &` keeps JS numbers out at compile time too (a number has toFixed). */
export type DecimalLike = object & {
    toFixed?: (...args: never[]) => string;
    toString(): string;
};

/** An amount argument: a decimal string, a bigint, or a Decimal-like object. */
export type Amount = string | bigint | DecimalLike;

const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const NON_FINITE = /^[+-]?(?:NaN|Infinity)$/i;
const EXPONENT = /^([+-]?)(\d*)(?:\.(\d*))?[eE]([+-]?\d+)$/;

/**
 * Rewrite a decimal in exponent form ("1.5e-7") in plain notation
 * ("0.00000015"), exactly, by moving the decimal point in the digits.  A
 * string without an exponent is returned unchanged.
 */
export function plainDecimal(text: string): string {
    const m = EXPONENT.exec(text);
    if (!m) return text;
    const sign = m[1] === '-' ? '-' : '';
    const intPart = m[2] ?? '';
    const fracPart = m[3] ?? '';
    const exp = parseInt(m[4], 10);
    if (!Number.isSafeInteger(exp) || Math.abs(exp) > 10000) {
        throw new RangeError(`amount exponent out of range: ${text}`);
    }
    let digits = intPart + fracPart;
    let point = intPart.length + exp; // position of the decimal point in digits
    if (point < 0) {
        digits = '0'.repeat(-point) + digits;
        point = 0;
    } else if (point > digits.length) {
        digits = digits + '0'.repeat(point - digits.length);
    }
    let whole = digits.slice(0, point).replace(/^0+(?=\d)/, '');
    const frac = digits.slice(point);
    if (whole === '') whole = '0';
    return sign + whole + (frac.length > 0 ? '.' + frac : '');
}

/**
 * The decimal string for an amount argument.  Throws a TypeError for a JS
 * number, a Number object, null/undefined (unless `allowNull`), or a string
 * that is not a decimal ("NaN" and "Infinity" pass: the ledger refuses them
 * with LD005, and says so in its facts).
 */
export function toAmount(value: unknown, what = 'amount'): string {
    if (typeof value === 'number' || value instanceof Number) {
        throw new TypeError(
            `${what}: a JS number (${String(value)}) is not an exact amount; ` +
            `pass a decimal string such as "25.00", a bigint, or a Decimal object`);
    }
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'string') {
        const s = value.trim();
        if (DECIMAL.test(s) || NON_FINITE.test(s)) return s;
        throw new TypeError(`${what}: ${JSON.stringify(value)} is not a decimal number`);
    }
    if (value !== null && typeof value === 'object') {
        const obj = value as DecimalLike;
        let text: unknown;
        if (typeof obj.toFixed === 'function') {
            text = (obj.toFixed as () => unknown)();
        } else if (typeof obj.toString === 'function' && obj.toString !== Object.prototype.toString) {
            text = obj.toString();
        }
        if (typeof text === 'string') {
            const s = text.trim();
            if (DECIMAL.test(s)) return plainDecimal(s);
            if (NON_FINITE.test(s)) return s;
        }
        throw new TypeError(`${what}: the object does not print as a decimal (${String(text)})`);
    }
    throw new TypeError(`${what}: expected a decimal string, a bigint or a Decimal object, not ${value === null ? 'null' : typeof value}`);
}

/** toAmount, or null for null/undefined (arguments where NULL means something). */
export function toAmountOrNull(value: unknown, what = 'amount'): string | null {
    if (value === null || value === undefined) return null;
    return toAmount(value, what);
}
