#!/usr/bin/python3
"""test/scripts/fuzz.py: fuzz every public function of the ledger as one role.

Run by test/scripts/fuzz.sh; by hand (PGHOST, PGPORT, PGDATABASE set):
    fuzz.py --user ROLE --calls N --seed S [--admin-user postgres]
The functions are read from pg_proc (schema ledger, no trigger functions), so
new ones are fuzzed too: those has_function_privilege lets the role call, and
3% of the time the others, which must fail with 42501.  A call is one
statement and transaction, ledger.f($1::numeric, ...), each argument a
parameter cast to its declared type (sometimes uncast or binary), positional
or named, defaults sometimes left out.  Each call draws a hostility: the
chance that each value is hostile (NULL, NaN, 10^30 and around it, 1,000
digits, long, control, quote and injection strings, deep or huge JSON, 10,000
legs or items, values at and past every documented limit) rather than valid
(codes and ids read back from the ledger, amounts at the account's scale,
balanced legs), so some calls get deep and others hit the checks.

An error is fine if its SQLSTATE is LD..., in ALLOWED, or in TYPE_ERRORS when
the casts alone (SELECT $1::numeric, ...) fail too: the value never reached
the function.  Anything else, a lost connection, a batch item refused with a
non-LD SQLSTATE, or an invariant (test/invariants.sql, checked between calls)
that breaks is a FINDING, printed at once with the seed and the SQL.  Exit
status 1 with findings, 2 if the fuzzer failed.  A seed replays the same
choices (the ledger's own ids differ from run to run).
"""
import argparse
import json
import os
import random
import re
import sys
import time
import traceback
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace

import psycopg
from psycopg.types.string import TextLoader

# Non-LD SQLSTATEs any call may end with, and why.
ALLOWED = {
    '57014': 'query_canceled: the statement_timeout every call runs under',
    '40001': 'serialization_failure: retryable, documented (README, Errors)',
    '40P01': 'deadlock_detected: retryable, documented (README, Errors), against the workers',
}
# SQLSTATEs of a failed cast: fine when the casts alone fail, since the
# parameter never became a value of the declared type.
TYPE_ERRORS = {
    '22P02': 'invalid_text_representation: not a literal of the type',
    '22003': 'numeric_value_out_of_range: beyond the type (2^31 for int, 1e131072)',
    '22007': 'invalid_datetime_format: a malformed timestamp or interval',
    '22008': 'datetime_field_overflow: a timestamp or interval out of range',
    '22015': 'interval_field_overflow: an interval out of range',
    '22P05': 'untranslatable_character: \\u0000 in jsonb',
    '54001': 'statement_too_complex: JSON nested past the stack depth limit',
}

HARVEST = 250      # calls between reading codes and ids back from the ledger
CHECK_EVERY = 500  # calls between invariant checks (doubled while a check is slow)
EVENT_TYPES = ['transfer', 'post', 'hold', 'mark_submitted', 'capture', 'void', 'invalidate']
ACCOUNT_ARGS = {'account', 'from_account', 'to_account', 'liquidity_account', 'spread_account'}
# the calls that move money or change holds get more of the budget
WEIGHTS = {'transfer': 6, 'post': 6, 'hold': 4, 'capture': 3, 'void': 2, 'mark_submitted': 2, 'exchange': 4,
           'invalidate': 3, 'append_event': 3, 'enqueue': 2, 'outbox_claim': 2, 'set_exchange_rate': 2,
           'create_account': 2, 'transfer_batch': 2, 'post_batch': 2}

TEN30 = '1' + '0' * 30
NUMERIC_HOSTILE = [
    '0', '-0', '-1', '-0.01', '0.001', '0.5', '1e-30', '1e30', '-1e30', TEN30, '-' + TEN30, '9' * 30,
    '9' * 30 + '.' + '9' * 18, '-' + '9' * 30 + '.' + '9' * 18, '9' * 29 + '.99', '0.' + '0' * 17 + '1',
    '0.' + '0' * 18 + '1', '1.' + '0' * 19, '1.' + '1' * 19, '0.' + '9' * 30, '0.' + '0' * 30 + '1', 'NaN',
    'Infinity', '-Infinity', 'inf', '1' * 1000, '-' + '9' * 1000, '0.' + '0' * 998 + '1', '1e131071', '1e-16383',
    '1e131072', ' 12.5 ', '+7', '1e2', '1_000', 'abc', '', '0x10', '9223372036854775808', '1000000',
    '1000000.000001', '1e6', '1e18', '1e36', '2147483648', '-2147483649', '1.5e-7']
HOSTILE_TEXT = [
    '', ' ', 'x' * 255, 'x' * 256, '\u00e9' * 127 + 'x', '\u00e9' * 128, 'x' * 10000, ' lead', 'trail ',
    "'; DROP TABLE ledger.account; --", "' OR '1'='1", '"; SELECT pg_sleep(10); --', '$$;$$', '%s%n%s%n',
    '%x%x%x%x%d', '\\', '\\x00', '\\0', '\x01', 'a\tb', 'a\nb', 'a\rb', '\x7f', '\x1b[31m', '\u2028', '\u200b',
    '\ufeffbom', '\U0001F642\U0001F4B8', 'a\u0301', 'NULL', 'null', '{}', '[]', 'ledger.', 'ledger.alerts',
    '${jndi:ldap://x/a}', '<script>alert(1)</script>', '../../etc/passwd', '\u202eevil', "O'Brien", '\\N']
INTERVAL_HOSTILE = [
    '0', '-0', '-1 s', '1 microsecond', '-1 microsecond', '1 s', '59.999999 s', '60 s', '61 s', '1 hour',
    '1 hour 1 microsecond', '1 day', '1 day 1 microsecond', '90 days', '90 days 1 microsecond', '3 minutes',
    '100 years', '178000000 years', '-178000000 years', '2147483647 days', '2147483647 months', '1 mon',
    'infinity', 'abc', '', '1e300 s', '-2147483648 days -2147483648 months', 'P1Y2M3DT4H5M6S']
# waits: a valid long one would only burn the budget
WAIT_HOSTILE = ['100 ms', '1 microsecond', '-1 s', '-0', '61 s', '60 s 1 microsecond', '1 hour 1 microsecond',
                '100 years', 'infinity', '178000000 years', '-178000000 years', '2147483647 days', 'x', '']
INT_HOSTILE = ['0', '1', '-1', '2', '18', '19', '64', '65', '100', '10000', '10001', '100000', '100001',
               '1000000', '1000001', '2147483647', '-2147483648', '2147483648', '1.5', 'x']
BIGINT_HOSTILE = ['0', '-1', '1', '9223372036854775807', '-9223372036854775808', '9223372036854775808', '1e3', '']
TIMESTAMP_HOSTILE = ['now', 'epoch', 'infinity', '-infinity', 'today', 'tomorrow', '4713-01-01 00:00:00+00 BC',
                     '4714-11-24 00:00:00+00 BC', '294276-12-31 23:59:59+00', '294277-01-01', '2000-02-30', 'x', '']
ARRAY_HOSTILE = ['{}', '{NULL}', '{""}', '{"ledger.alerts"}', '{{a,b},{c,d}}', '{', '{a,{b}}', '[0:1]={1,2}',
                 '[5:6]={1,2}', '{{1},{2}}', '[-2147483648:-2147483647]={1,2}',
                 '{' + ','.join(['t'] * 10000) + '}', '{"\\\\"}']
JSON_HOSTILE = [
    '[]', 'null', '1', '"s"', 'true', '{"a": 1e1000}', '{"a": "\\u0000"}', '{"a": 1, "a": 2}', '[1, 2, 3]',
    '[' * 1000 + ']' * 1000, '{"a":' * 1000 + '1' + '}' * 1000, '[' * 100000 + ']' * 100000,
    json.dumps({'k': 'x' * 65500}), json.dumps({'k': 'x' * 65536}), json.dumps({'k': 'x' * 200000}),
    json.dumps({str(i): i for i in range(10000)}), '{"a": ', "{'a': 1}", '', '{"a": NaN}', '{"\\ud800": 1}',
    json.dumps({'k': "'; DROP TABLE ledger.account; --"})]
ROLES = ['fz_writer', 'fz_ops', 'postgres', 'ledger_writer', 'ledger_operator', 'ledger_manager', 'pg_monitor',
         'public', 'PUBLIC', 'no_such_role', '', 'r' * 100, '"; DROP ROLE x; --']


def jload(s):
    """s parsed as JSON, or s itself when it is not JSON (or too deep for Python)."""
    try:
        return json.loads(s) if s is not None else None
    except (ValueError, RecursionError):
        return s


def quote(v, limit=120):
    """v as an SQL literal for a report, a long one shortened."""
    if v is None:
        return 'NULL'
    s = str(v)
    if len(s) > limit:
        return f'repeat({quote(s[0])}, {len(s)})' if s == s[0] * len(s) else \
            quote(s[:limit]) + f' /* ...{len(s)} chars */'
    return "'" + s.replace("'", "''") + "'"


class Fuzzer:
    def __init__(self, opts):
        self.opts = opts
        self.rng = random.Random(f'{opts.seed}:{opts.user}')
        self.states, self.kinds = Counter(), Counter()   # by SQLSTATE, by classification
        self.per_fn, self.ok_fn, self.seconds = Counter(), Counter(), Counter()
        self.findings = {}                               # key -> [count, report]
        self.window, self.recent = [], []                # successful calls: since the last check, last 3
        self.slow = []                                   # calls over 1 s: (seconds, SQL)
        self.returned = {'tx': [], 'hold': [], 'outbox': []}
        self.pools, self.hostility, self.cur = {}, 0.3, {}  # cur: the choices of the call being built
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'invariants.sql')) as f:
            self.invariants = f.read()
        self.connect()
        self.load_functions()
        # what an earlier run broke was reported there (and fuzz.sh checks at the end)
        self.broken = set(self.admin.execute(self.invariants).fetchall())

    def connect(self):
        deadline = time.monotonic() + 90  # after a crash the server restarts
        while True:
            try:
                self.conn = psycopg.connect(user=self.opts.user, autocommit=True, options=(
                    f'-c statement_timeout={self.opts.timeout_ms} -c application_name=fuzz'))
                for t in ('json', 'jsonb'):  # results as text: deep JSON would recurse in Python
                    self.conn.adapters.register_loader(t, TextLoader)
                self.admin = psycopg.connect(user=self.opts.admin_user, autocommit=True,
                                             options='-c statement_timeout=60s -c application_name=fuzz-admin')
                if self.conn.execute('SELECT rolsuper FROM pg_roles WHERE rolname = current_user').fetchone()[0]:
                    self.conn.execute('SET ledger.max_legs = 10000')  # 10,000-leg postings get in
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def load_functions(self):
        fns = []
        for name, nargs, ndefaults, types, names, modes, callable_, unique in self.conn.execute("""
                SELECT p.proname, p.pronargs, p.pronargdefaults,
                       array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[])
                             WITH ORDINALITY u(t, n) ORDER BY n),
                       coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
                       has_function_privilege(current_user, p.oid, 'EXECUTE'),
                       count(*) OVER (PARTITION BY p.proname) = 1
                  FROM pg_proc p
                 WHERE p.pronamespace = 'ledger'::regnamespace AND p.prokind = 'f'
                   AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
                 ORDER BY p.proname, p.oid"""):
            if modes:  # the input arguments' names
                names = [n for n, m in zip(names, modes) if m in ('i', 'b', 'v')]
            names = names[:nargs] if names else [f'arg{i}' for i in range(nargs)]
            fns.append(SimpleNamespace(name=name, args=list(zip(names, types)), ndefaults=ndefaults,
                                       callable=callable_, unique=unique))
        self.by_name = {f.name: f for f in fns}
        self.allowed_fns = [f for f in fns if f.callable]
        self.refused_fns = [f for f in fns if not f.callable]
        self.weights = [WEIGHTS.get(f.name, 1) for f in self.allowed_fns]

    def harvest(self):
        """Codes and ids that exist, so that valid calls get past the lookups."""
        def col(sql):
            return [r[0] for r in self.admin.execute(sql).fetchall()]
        p = self.pools
        acc = self.admin.execute("""(SELECT code, asset FROM ledger.account ORDER BY id LIMIT 40) UNION ALL
                                    (SELECT code, asset FROM ledger.account ORDER BY id DESC LIMIT 10)""").fetchall()
        p['accounts'], p['account_asset'] = [r[0] for r in acc], dict(acc)
        p['assets'] = dict(self.admin.execute(
            'SELECT code, scale FROM ledger.asset ORDER BY created_at, code LIMIT 40').fetchall())
        p['tx'] = col('SELECT id::text FROM ledger.transaction ORDER BY created_at DESC, id LIMIT 40')
        p['hold'] = col('SELECT id::text FROM ledger.hold ORDER BY created_at DESC, id LIMIT 40')
        p['refs'] = col("""SELECT DISTINCT external_ref FROM ledger.hold
                            WHERE external_ref IS NOT NULL ORDER BY 1 LIMIT 20""") + ['ref-1']
        p['alert'] = col('SELECT id::text FROM ledger.alert ORDER BY id DESC LIMIT 20')
        p['outbox'] = col('SELECT id::text FROM ledger.outbox ORDER BY id DESC LIMIT 20')
        p['owners'] = col('SELECT DISTINCT owner_id FROM ledger.account WHERE owner_id IS NOT NULL ORDER BY 1 LIMIT 20')
        for k, v in self.returned.items():
            p[k] += v[-20:]
        # rate limits the fuzzer set would refuse (LD041) most of what follows
        self.admin.execute('SELECT ledger.remove_rate_limit(role_name) FROM ledger.rate_limit')

    # -- values: text literals of the declared type, or None for NULL ---------------------
    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))] if seq else None

    def chance(self, p):
        return self.rng.random() < p

    def bad(self):
        """Whether the next value is hostile (the call's hostility decides)."""
        return self.rng.random() < self.hostility

    def new_uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def amount(self, scale=2):
        d = self.rng.randint(0, min(scale, 3))
        return str(Decimal(self.rng.randint(10 ** d, 200 * 10 ** d)).scaleb(-d))

    def numeric(self, name):
        valid = {'spread': ['0', '0.01', '0.005', '0.1', '0.999999'], 'min_balance': ['0', '-100', '-0.5'],
                 'rate': ['1', '2.5', '0.0001', '31250.12', '0.0000021'], 'per_second': ['1', '100', '1000000']}
        if self.bad():
            return self.pick(NUMERIC_HOSTILE)
        return self.pick(valid[name]) if name in valid else self.amount(self.cur.get('scale', 0))

    def account(self, fn):
        """An account; the first of a call of the asset named before it (if any),
        the next ones of the first one's asset (for an exchange: the same user's
        account of another asset)."""
        aa = self.pools['account_asset']
        first = self.cur.get('account')
        if first not in aa:
            fits = [c for c in aa if aa[c] == self.cur['asset']] if 'asset' in self.cur else \
                [c for c in aa if c.startswith('user-')]
            code = self.pick(fits) if fits and self.chance(0.7) else self.pick(list(aa))
            self.cur.update(account=code, scale=self.pools['assets'].get(aa[code], 2))
            return code
        if fn.name == 'exchange':
            fits = [c for c in aa if c.startswith(first.rsplit('-', 1)[0] + '-') and aa[c] != aa[first]]
        else:
            fits = [c for c in aa if aa[c] == aa[first] and c != first]
        return self.pick(fits) or self.pick(list(aa))

    def text(self, name, fn):
        p = self.pools
        if self.bad():
            return self.pick(HOSTILE_TEXT) if self.chance(0.7) else self.pick(p['accounts'] + ['no-such', 'XXX'])
        if name in ACCOUNT_ARGS or (name == 'stream' and self.chance(0.6)):
            return self.account(fn)
        if name == 'type':
            self.cur['type'] = self.pick(EVENT_TYPES)  # its payload follows
            return self.cur['type']
        if name in ('asset', 'base'):
            self.cur['asset'] = self.pick(list(p['assets']))  # its accounts follow
            return self.cur['asset']
        if name == 'code':
            return f'fz-{self.rng.randrange(10 ** 6)}' if fn.name == 'create_account' else \
                f'A{self.rng.randrange(10 ** 4)}'
        if name == 'idempotency_key':  # a few keys reused: replays and conflicts
            return self.pick([f'key-{i}' for i in range(8)] + [self.new_uuid()] * 24)
        pools = {'quote': list(p['assets']), 'owner_id': p['owners'] + ['user-new'],
                 'external_ref': p['refs'] + [self.new_uuid()], 'schedule': ['* * * * *', '15 3 * * *'],
                 'mode': ['hot', 'cold'] if fn.name == 'set_account_mode' else ['exclusive'] * 3 + ['shared'],
                 'target': ['ledger-reconcile', 'ledger-expire-holds', 'other-job']}
        for k in ('topic', 'key', 'consumer', 'source', 'stream'):
            pools[k] = ['t1', 't2', 'mail', 'c1', 'c2', 'user-1', 'stripe']
        return self.pick(pools.get(name, ['reason', 'a reason', 'x' * 8192, 'x' * 8193, 'e']))

    def scalar(self, name, typ, fn):
        """A value of one of the other types."""
        bad, p = self.bad(), self.pools
        if typ == 'interval' and name in ('wait', 'timeout'):
            return self.pick(['0', '1 ms', '10 ms']) if not bad else \
                self.pick(WAIT_HOSTILE) if self.chance(0.97) else self.pick(['1 s', '60 s', '1 hour'])
        if typ == 'interval':
            return self.pick(INTERVAL_HOSTILE) if bad else self.pick(
                ['1 s', '30 s', '10 minutes', '1 hour'] if name == 'max_rate_age' else
                ['3 minutes', '6 minutes', '1 s', '30 s', '1 day', '1 hour', '1 microsecond'])
        if typ == 'integer':
            return str(self.rng.randint(-1, 19) if bad else self.pick([0, 2, 6, 18])) if name == 'scale' else \
                self.pick(INT_HOSTILE) if bad else str(self.rng.randint(1, 100))
        if typ == 'bigint':
            pool = p['outbox'] if fn.name.startswith('outbox') else p['alert']
            return self.pick(BIGINT_HOSTILE) if bad or not pool else self.pick(pool)
        if typ == 'uuid':
            pool = p['hold'] if name == 'hold_id' else p['tx']
            return self.pick(pool) if pool and not bad else self.pick(
                [self.new_uuid(), str(uuid.UUID(int=0)), 'not-a-uuid', '{' + self.new_uuid() + '}', '',
                 self.pick(p['hold'] or ['x']), self.pick(p['tx'] or ['x'])])
        if typ == 'boolean':
            return self.pick(['t', 'off', 'maybe', '']) if bad else self.pick(['true', 'false'])
        if typ == 'timestamp with time zone':  # observed_at may be at most 5 s ahead
            s = self.pick([0, 1, 4, 6, 60, 86400 * 400]) * self.pick([1, -1])
            return self.pick(TIMESTAMP_HOSTILE) if bad else \
                (datetime.now(timezone.utc) + timedelta(seconds=s)).isoformat()
        if typ == 'name':
            return self.pick(ROLES) if bad else self.pick(ROLES[:3])
        return self.pick(HOSTILE_TEXT)

    def array(self, name, typ, fn):
        """An array of values for one element each (from_accounts: from_account);
        a call's arrays are of one length, unless hostile."""
        if self.bad() and self.chance(0.3):
            return self.pick(ARRAY_HOSTILE)
        if 'len' not in self.cur or self.bad():
            self.cur['len'] = self.pick([0, 1, 65, 10001] if self.bad() else [1, 2, 3, 5])
        n, one, hostility = self.cur['len'], name[:-1] if name.endswith('s') else name, self.hostility
        if n > 100:  # many short valid elements (hostile ones are up to 200 kB each)
            self.hostility = 0
        vals = [self.value(one, typ[:-2], fn) for _ in range(min(n, 100))]
        self.hostility, vals = hostility, (vals * (n // max(len(vals), 1) + 1))[:n]
        return '{' + ','.join('NULL' if v is None else
                              '"' + v.replace('\\', '\\\\').replace('"', '\\"') + '"' for v in vals) + '}'

    def legs(self):
        """post's legs: of one asset, netting to zero, or hostile."""
        p, rng, by_asset = self.pools, self.rng, {}
        for code, asset in p['account_asset'].items():
            by_asset.setdefault(asset, []).append(code)
        asset = self.pick(sorted(by_asset))
        codes, scale, r = by_asset[asset], p['assets'].get(asset, 2), rng.random()
        if self.bad():
            n = self.pick([0, 1, 65, 10000, 10001]) if r < 0.1 else rng.randint(2, 4)
        else:
            n = 10000 if r < 0.003 else 64 if r < 0.03 else rng.randint(2, 4)
        if n > 100:  # a repeated pair nets to zero and is cheap to make
            a, b, amt = self.pick(codes), self.pick(codes), self.amount(scale)
            legs = [{'account': a, 'amount': amt}, {'account': b, 'amount': '-' + amt}] * (n // 2)
            legs += [{'account': b, 'amount': '0'}] * (n % 2)
        else:
            legs = [{'account': self.pick(codes), 'amount': self.amount(scale)} for _ in range(max(n - 1, 0))]
            if n:
                legs.append({'account': self.pick(codes), 'amount': str(-sum(Decimal(g['amount']) for g in legs))})
        for leg in legs[:3]:  # JSON numbers are amounts too
            if self.chance(0.25):
                leg['amount'] = float(leg['amount'])
        if not legs or not self.bad():
            return json.dumps(legs)
        leg = self.pick(legs)
        mutations = [
            lambda: leg.update(amount=self.pick(NUMERIC_HOSTILE)),
            lambda: leg.update(amount=json.loads(self.pick(['1e1000', '-1e-1000', '1' * 400, 'null', '[]']))),
            lambda: leg.update(amount=str(leg['amount']) + self.pick(['e2', '0' * 20, ' ', 'abc'])),
            lambda: leg.update(account=self.pick(HOSTILE_TEXT + [None, 1, [], {}])),
            lambda: leg.update(account=self.pick(p['accounts'])),  # maybe of another asset
            lambda: leg.update(extra=1),
            lambda: leg.pop('account'),
            lambda: legs.append(self.pick([None, 1, 'leg', [], {}])),
            lambda: legs.insert(0, {'legs': legs[:]}),
        ]
        r = rng.randrange(len(mutations) + 1)
        if r == len(mutations):
            return self.pick(['null', '"legs"', '{}', '[]', '[[]]', '1', '[null]', json.dumps({'legs': legs})])
        mutations[r]()
        return json.dumps(legs)

    def records(self):
        """import_statement's records."""
        p = self.pools
        recs = [{'external_ref': self.pick(p['refs']), 'amount': self.amount(2), 'occurred_at': '2024-01-01T00:00:00Z',
                 'asset': self.pick(list(p['assets'])), 'status': self.pick(['pending', 'succeeded', 'failed'])}
                for _ in range(self.rng.randint(1, 3))]
        if self.bad():
            rec = self.pick(recs)
            rec[self.pick(list(rec))] = self.pick(['', 'x' * 256, None, -1, '-1', 'NaN', 'infinity', '1e1000',
                                                   'weird', [], {}, True] + HOSTILE_TEXT[:8])
        return json.dumps(recs * (10000 // len(recs)) if self.chance(0.01) else recs)

    def payload(self):
        """append_event's payload: the arguments of its type's function."""
        target = self.by_name.get(self.cur.get('type') or self.pick(EVENT_TYPES))
        if target is None or (self.bad() and self.chance(0.2)):
            return self.pick(JSON_HOSTILE)
        obj = {}
        for name, typ in target.args:
            if not (self.bad() and self.chance(0.3)):
                v = self.value(name, typ, target)
                obj[name] = jload(v) if typ == 'jsonb' or (typ == 'numeric' and self.bad()) else \
                    v == 'true' if typ == 'boolean' and v in ('true', 'false') else v
        return json.dumps(obj)

    def value(self, name, typ, fn):
        if self.chance(self.hostility / 4):
            return None
        if typ in ('numeric', 'text') or typ.endswith('[]'):
            return self.numeric(name) if typ == 'numeric' else self.text(name, fn) if typ == 'text' else \
                self.array(name, typ, fn)
        if typ != 'jsonb':
            return self.scalar(name, typ, fn)
        if name == 'legs':
            return self.legs()
        if name == 'records':
            return self.records()
        if name == 'postings':  # [{legs, idempotency_key, metadata}, ...]
            return json.dumps([{'legs': jload(self.legs()), 'idempotency_key': self.text('idempotency_key', fn),
                                'metadata': jload(self.value('metadata', 'jsonb', fn))}
                               for _ in range(self.pick([0, 1, 2, 5, 100] if self.bad() else [1, 2, 3]))])
        if name == 'payload' and fn.name == 'append_event' and self.chance(0.8):
            return self.payload()
        return self.pick(JSON_HOSTILE) if self.bad() else \
            self.pick(['{}', '{"a": 1}', '{"note": "fuzz", "n": [1, 2, {"x": null}]}'])

    # -- calls ------------------------------------------------------------------------------
    def build(self, fn):
        """One call of fn: its SQL, parameters and (placeholder, type) pairs."""
        self.hostility, self.cur = self.pick([0, 0.03, 0.1, 0.3, 0.7]), {}
        args, required = list(fn.args), len(fn.args) - fn.ndefaults
        named = self.chance(0.3)
        if fn.ndefaults and self.chance(0.4):
            args = args[:self.rng.randint(required, len(args))]
        if named and fn.ndefaults:
            args = args[:required] + [a for a in args[required:] if self.chance(0.7)]
        cast, items = not (fn.unique and self.chance(0.1)), []
        for name, typ in args:  # in order: a value may depend on an earlier one
            v, ph = self.value(name, typ, fn), '%s'
            if typ == 'numeric' and v is not None and self.chance(0.1):
                try:  # a binary numeric (psycopg packs weights within int16 only)
                    d = Decimal(v.strip())
                    if not d.is_finite() or abs(d.adjusted()) < 4000:
                        v, ph = d, '%b'
                except InvalidOperation:
                    pass
            expr = f'{ph}::{typ}' if cast or ph != '%s' else ph
            items.append((f'{name} => {expr}' if named else expr, v, (ph, typ)))
        if named:
            self.rng.shuffle(items)
        return (f'SELECT * FROM ledger.{fn.name}({", ".join(i[0] for i in items)})',
                [i[1] for i in items], [i[2] for i in items])

    def call(self, i, fn, sql, params, types, refusal=False, owner=None):
        """Run one call and classify what it did."""
        self.per_fn[fn.name] += 1
        t0, shown = time.monotonic(), self.show(sql, params)
        try:
            if owner is None:
                cur = self.conn.execute(sql, params)
                rows = cur.fetchmany(20) if cur.description else []
            else:  # the acting owner is input too: SET LOCAL, as in real use
                shown = f"BEGIN; SELECT set_config('ledger.acting_owner', {quote(owner)}, true); {shown}; COMMIT;"
                with self.conn.transaction():
                    self.conn.execute("SELECT set_config('ledger.acting_owner', %s, true)", [owner])
                    cur = self.conn.execute(sql, params)
                    rows = cur.fetchmany(20) if cur.description else []
        except psycopg.Error as e:
            self.timed(fn.name, shown, t0)
            if self.conn.broken or self.conn.closed:
                self.finding(i, fn.name, shown, 'connection lost', str(e))
                return self.connect()
            code = e.sqlstate or 'client'
            self.states[code] += 1
            if refusal and code == '42501':
                self.kinds['refused (42501, not callable)'] += 1
            elif code.startswith('LD'):
                self.kinds['LD error'] += 1
            elif code in ALLOWED:
                self.kinds[f'allowed {code}'] += 1
            elif code in TYPE_ERRORS and self.cast_fails(params, types):
                self.kinds['type error before the call'] += 1
            else:
                self.finding(i, fn.name, shown, code, e.diag.message_primary or str(e))
            return
        self.timed(fn.name, shown, t0)
        self.states['ok'] += 1
        self.kinds['succeeded'] += 1
        self.ok_fn[fn.name] += 1
        if refusal:
            self.finding(i, fn.name, shown, 'ok', 'the role may not execute it, yet it ran')
        self.window.append(f'call {i}: {self.show(sql, params, 60)}')
        self.recent = self.recent[-2:] + [self.window[-1]]
        cols = [c.name for c in cur.description or []]
        for row in rows:
            for col, v in zip(cols, row):
                if isinstance(v, uuid.UUID) and fn.name not in ('new_id', 'append_event'):
                    self.returned['hold' if fn.name == 'hold' else 'tx'].append(str(v))
                elif isinstance(v, int) and fn.name == 'enqueue':
                    self.returned['outbox'].append(str(v))
                elif col == 'result' and isinstance(v, str) and v != 'ok' and not v.startswith('LD'):
                    self.finding(i, fn.name, shown, v, f'an item refused with a non-LD SQLSTATE: {row}')

    def timed(self, what, shown, t0):
        took = time.monotonic() - t0
        self.seconds[what] += took
        if took > 1:
            self.slow.append((round(took, 1), shown[:200]))

    def cast_fails(self, params, types):
        """Whether the parameters fail their casts alone, without the function."""
        try:
            self.conn.execute('SELECT ' + ', '.join(f'{ph}::{t}' for ph, t in types), params)
            return False
        except psycopg.Error as e:
            return e.sqlstate in TYPE_ERRORS

    def check_invariants(self, i):
        """A newly broken invariant is a finding, shown with the successful
        calls since the last check that name its account (or the last ones)."""
        for name, detail in self.admin.execute(self.invariants).fetchall():
            if (name, detail) not in self.broken:
                self.broken.add((name, detail))
                name_ = detail.split(':')[0] if ':' in detail else None
                # the account as an SQL literal, or as a JSON string (legs, payloads)
                words = [f"'{name_}'", f'"{name_}"'] if name_ is not None else []
                # and calls that change balances without naming accounts
                words += ['ledger.invalidate(', 'ledger.rebuild_balances(', 'ledger.reconcile(',
                          'ledger.apply_events(', 'ledger.catch_up(', 'ledger.capture', 'ledger.fold(']
                suspects = [c for c in self.window if any(w in c for w in words)][-12:] or self.window[-8:]
                self.finding(i, 'invariant', '\n  '.join(['after one of:'] + suspects), name, detail, key=name)
        self.window = []

    @staticmethod
    def show(sql, params, limit=120):
        """The statement with its values as literals, to paste into psql."""
        pieces = re.split('%[sb]', sql)
        return pieces[0] + ''.join(quote(v, limit) + rest for v, rest in zip(params, pieces[1:]))

    def finding(self, i, fname, shown, code, message, key=None):
        key = (fname, code, key or re.sub(r'[0-9a-f]{8}-[0-9a-f-]{27}|\d+', '#', message)[:80])
        if key in self.findings:
            self.findings[key][0] += 1
            return
        message = re.sub(r'(\d{12})\d{20,}', lambda m: f'{m[1]}...({len(m[0])} digits)', message.strip())
        what = f'invariant broken: {code}' if fname == 'invariant' else f'ledger.{fname}: SQLSTATE {code}'
        report = (f'FINDING (seed {self.opts.seed}, role {self.opts.user}, call {i}): '
                  f'{what}: {message[:300]}\n  {shown[:2000]}')
        if fname != 'invariant':  # the state an earlier call left may be the cause
            report += ''.join(f'\n    after {c[:300]}' for c in self.recent)
        self.findings[key] = [1, report]
        print(report, flush=True)

    def run(self):
        t0, every, next_check = time.monotonic(), CHECK_EVERY, CHECK_EVERY
        for i in range(self.opts.calls):
            if i == next_check:
                t = time.monotonic()
                self.check_invariants(i)
                took = time.monotonic() - t
                self.seconds['(invariants)'] += took
                every, next_check = every * (2 if took > 0.5 else 1), i + every
            if i % HARVEST == 0:
                t = time.monotonic()
                self.harvest()
                self.seconds['(harvest)'] += time.monotonic() - t
            if self.refused_fns and self.chance(0.03):
                fn = self.pick(self.refused_fns)
                self.call(i, fn, *self.build(fn), refusal=True)
                continue
            fn = self.rng.choices(self.allowed_fns, self.weights)[0]
            owner = self.pick(self.pools['owners'] + ['', 'nobody'] + HOSTILE_TEXT) if self.chance(0.08) else None
            self.call(i, fn, *self.build(fn), owner=owner)
        self.check_invariants(self.opts.calls)
        return time.monotonic() - t0

    def summary(self, seconds):
        u = f'fuzz[{self.opts.user}]:'
        print(f'{u} {sum(self.states.values())} calls in {seconds:.1f} s, seed {self.opts.seed}; '
              f'{len(self.allowed_fns)} functions callable, {len(self.refused_fns)} not')
        print(f'{u} outcomes: ' + ', '.join(f'{k} {v}' for k, v in self.kinds.most_common()))
        print(f'{u} by SQLSTATE: ' + ', '.join(f'{k} {v}' for k, v in self.states.most_common()))
        print(f'{u} per function, calls/succeeded (seconds): ' + ', '.join(
            f'{k} {v}/{self.ok_fn[k]} ({self.seconds[k]:.1f})' for k, v in sorted(self.per_fn.items()))
            + f"; harvests {self.seconds['(harvest)']:.1f} s, invariant checks {self.seconds['(invariants)']:.1f} s")
        for took, shown in sorted(self.slow, reverse=True)[:5]:
            print(f'{u} slow call ({len(self.slow)} over 1 s): {took} s: {shown}')
        for (name, code, msg), (n, _) in sorted(self.findings.items()):
            print(f'{u} finding x{n}: {name} {code} {msg}')
        print(f'{u} {len(self.findings)} distinct finding(s)')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--user', required=True)
    ap.add_argument('--admin-user', default='postgres')
    ap.add_argument('--calls', type=int, default=10000)
    ap.add_argument('--seed', type=int, default=random.SystemRandom().randrange(2 ** 31))
    ap.add_argument('--timeout-ms', type=int, default=3000)
    opts = ap.parse_args()
    print(f'fuzz[{opts.user}]: seed {opts.seed}, {opts.calls} calls', flush=True)
    try:
        fz = Fuzzer(opts)
        if fz.broken:
            print(f'fuzz[{opts.user}]: {len(fz.broken)} invariant row(s) broken before this run')
        seconds = fz.run()
    except Exception:
        traceback.print_exc()
        print(f'fuzz[{opts.user}]: the fuzzer failed (seed {opts.seed})', file=sys.stderr)
        return 2
    fz.summary(seconds)
    return 1 if fz.findings else 0


if __name__ == '__main__':
    sys.exit(main())
