/**
 * Result decoding, per query (never pg's global type parsers).
 *
 * node-postgres already returns numeric (OID 1700) and bigint (20) as
 * strings, but its defaults turn numeric[] into floats, date into a local
 * midnight Date, and json/jsonb into JSON.parse's floats.  Every query this
 * client runs passes LEDGER_TYPES as its `types`, so whatever another part
 * of the application registered globally with pg.types.setTypeParser, the
 * ledger's values come back as:
 *
 *   numeric, bigint              string ("123.45", "9007199254740993")
 *   numeric[], bigint[]          string[]
 *   uuid                         string
 *   date                         string ("2026-12-01")
 *   json, jsonb                  parsed with parseJsonExact (fractions and
 *                                large integers as strings)
 *   anything else                pg's parser for it (int4 → number,
 *                                timestamptz → Date, boolean, text, ...)
 */

import { types as pgTypes } from 'pg';
import type { CustomTypesConfig } from 'pg';
import { parseJsonExact } from './json';

const OID = {
    int8: 20, numeric: 1700, uuid: 2950, date: 1082, json: 114, jsonb: 3802,
    int8Array: 1016, numericArray: 1231, uuidArray: 2951, dateArray: 1182,
    jsonArray: 199, jsonbArray: 3807, textArray: 1009,
} as const;

const identity = (value: string): string => value;

function parseTextArray(value: string): (string | null)[] {
    const parse = (pgTypes.getTypeParser as (oid: number, format: string) => (v: string) => (string | null)[])(OID.textArray, 'text');
    return parse(value);
}

function textParser(oid: number): ((value: string) => unknown) | null {
    switch (oid) {
        case OID.int8:
        case OID.numeric:
        case OID.uuid:
        case OID.date:
            return identity;
        case OID.json:
        case OID.jsonb:
            return parseJsonExact;
        case OID.int8Array:
        case OID.numericArray:
        case OID.uuidArray:
        case OID.dateArray:
            return parseTextArray;
        case OID.jsonArray:
        case OID.jsonbArray:
            return (value: string) => parseTextArray(value).map((v) => (v === null ? null : parseJsonExact(v)));
        default:
            return null;
    }
}

/** The `types` of every query the client runs. */
export const LEDGER_TYPES: CustomTypesConfig = {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
        if (format === undefined || format === 'text') {
            const p = textParser(oid);
            if (p) return p;
        }
        return (pgTypes.getTypeParser as (o: number, f?: string) => unknown)(oid, format);
    }) as CustomTypesConfig['getTypeParser'],
};
