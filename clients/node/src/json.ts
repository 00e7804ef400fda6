/**
 * JSON without binary floats.
 *
 * `JSON.parse` turns every JSON number into a JS number, so 0.1 and
 * 12345678901234567890 come back altered.  parseJsonExact keeps a number as
 * a JS number only when it is an integer literal within the safe range
 * (counts, milliseconds, leg numbers); any other number (a fraction, an
 * exponent, a large integer) stays a string holding its exact text.
 * Everything else is as JSON.parse makes it.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export function parseJsonExact(text: string): JsonValue {
    let i = 0;
    const n = text.length;

    const fail = (what: string): never => {
        throw new SyntaxError(`invalid JSON (${what}) at position ${i}`);
    };
    const ws = () => {
        while (i < n) {
            const c = text.charCodeAt(i);
            if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
            else break;
        }
    };
    const str = (): string => {
        // find the closing quote, then let JSON.parse decode the escapes
        const start = i;
        i++;
        while (i < n) {
            const c = text.charCodeAt(i);
            if (c === 0x5c) i += 2;
            else if (c === 0x22) break;
            else i++;
        }
        if (i >= n) fail('unterminated string');
        i++;
        return JSON.parse(text.slice(start, i)) as string;
    };
    const num = (): number | string => {
        const m = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
        m.lastIndex = i;
        const r = m.exec(text);
        if (!r) return fail('number');
        i += r[0].length;
        if (r[1] === undefined && r[2] === undefined) {
            const v = Number(r[0]);
            if (Number.isSafeInteger(v)) return v;
        }
        return r[0];
    };
    const value = (): JsonValue => {
        ws();
        if (i >= n) fail('unexpected end');
        const c = text[i];
        if (c === '{') {
            i++;
            const obj: { [key: string]: JsonValue } = {};
            ws();
            if (text[i] === '}') { i++; return obj; }
            for (;;) {
                ws();
                if (text[i] !== '"') fail('object key');
                const k = str();
                ws();
                if (text[i] !== ':') fail('colon');
                i++;
                obj[k] = value();
                ws();
                if (text[i] === ',') { i++; continue; }
                if (text[i] === '}') { i++; return obj; }
                fail('object');
            }
        }
        if (c === '[') {
            i++;
            const arr: JsonValue[] = [];
            ws();
            if (text[i] === ']') { i++; return arr; }
            for (;;) {
                arr.push(value());
                ws();
                if (text[i] === ',') { i++; continue; }
                if (text[i] === ']') { i++; return arr; }
                fail('array');
            }
        }
        if (c === '"') return str();
        if (text.startsWith('true', i)) { i += 4; return true; }
        if (text.startsWith('false', i)) { i += 5; return false; }
        if (text.startsWith('null', i)) { i += 4; return null; }
        return num();
    };

    const v = value();
    ws();
    if (i !== n) fail('trailing characters');
    return v;
}

/**
 * JSON.stringify for jsonb parameters: a bigint is written as a string of
 * its digits (JSON.stringify would throw), Decimal objects through their
 * toJSON (a string for decimal.js, big.js and bignumber.js).
 */
export function stringifyJson(value: unknown): string {
    const out = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    if (out === undefined) throw new TypeError('value is not representable as JSON');
    return out;
}
