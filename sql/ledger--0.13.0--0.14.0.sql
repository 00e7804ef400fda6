/* ledger 0.13.0 -> 0.14.0: row hints (src/rowhint.c, ledger.row_hints) are
 * in the library; the schema is unchanged. */
\echo Use "ALTER EXTENSION ledger UPDATE TO '0.14.0'" to load this file. \quit
