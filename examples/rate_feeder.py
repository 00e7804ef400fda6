#!/usr/bin/env python3
# examples/rate_feeder.py: the reference feeder of exchange rates.  It polls
# a rate API and appends each rate it gets with ledger.set_exchange_rate;
# it owns nothing else (not the rate history, nor what exchange does).
#
# The API contract, per pair BASE/QUOTE:
#   GET <url>?base=BASE&quote=QUOTE   (added to the URL's own query, if any)
#   200 {"base": "BASE", "quote": "QUOTE", "rate": "1.2345",
#        "observed_at": "2026-12-01T05:00:00Z"}
# rate is a decimal string, passed on as text (never a float).  observed_at
# is optional and carries its zone; without it the rate counts as observed
# when the answer came, by this host's clock (keep it in step with the
# database's).  Anything else (no answer in 10 s, another status, another
# body) is an API failure: that pair is asked again after a backoff doubling
# from 1 s to --max-backoff (each wait a random 50-100% of its step), with a
# log line per failure, and every --interval again once the API answers.
# An answer equal to the last one stored is not stored twice.  A rate the
# database refuses (SQLSTATE LD...: not positive, unknown asset, in the
# future) or fails to store otherwise is logged and dropped, never retried:
# the next poll brings another.  A lost connection, or one to a read-only
# server, is opened again after the same backoff (with a multi-host --dsn
# and target_session_attrs=read-write, that finds the primary after a
# failover).
#
# A feeder never invents a rate nor carries one forward: it stores what the
# API said, with the time the API saw it.  When the API goes quiet the newest
# rate ages and, past ledger.max_rate_age, exchanges fail (LD037) or wait: a
# stale feed must pause exchanges, not let them convert at an old price.
# Run one feeder per API and pair: two would store each observation twice.
#
# SIGTERM or SIGINT: it ends the request in hand and exits 0.  --once polls
# each pair once and exits 0 if every rate was stored, 1 otherwise.
# Run it with Python 3.11 or later and psycopg 3 (Debian: python3-psycopg);
# the connection defaults to the PG* environment:
#   python3 examples/rate_feeder.py --dsn 'dbname=app' \
#       --url https://rates.example/v1/rate --pairs TOKEN/USD,BTC/EUR
#   python3 examples/rate_feeder.py --url http://127.0.0.1:8080/ --pairs TOKEN/USD --once
import argparse
import datetime
import http.client
import json
import logging
import random
import re
import select
import signal
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg

log = logging.getLogger("rate_feeder")

STORE = "SELECT ledger.set_exchange_rate(%s, %s, %s::numeric, %s::timestamptz, %s)"
HTTP_TIMEOUT = 10.0     # seconds for each request to the API
MAX_BODY = 64 * 1024    # bytes read of an answer at most
FIRST_BACKOFF = 1.0     # seconds before the first retry
READ_ONLY = "25006"     # a standby: connect again, to find the primary
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ApiError(Exception):
    """The API did not answer with a rate for the pair."""


def parse_args():
    p = argparse.ArgumentParser(description="Feed exchange rates from an HTTP API to the ledger.")
    p.add_argument("--dsn", default="", help="libpq conninfo (default: the PG* environment)")
    p.add_argument("--url", required=True, help="the rate API endpoint")
    p.add_argument("--pairs", required=True, help="comma-separated BASE/QUOTE, e.g. TOKEN/USD,BTC/EUR")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between polls of a pair")
    p.add_argument("--source", help="recorded with each rate (default: the URL's host)")
    p.add_argument("--max-backoff", type=float, default=15.0,
                   help="longest wait between retries, s (well below ledger.max_rate_age, so a recovery is seen soon)")
    p.add_argument("--once", action="store_true", help="poll each pair once; exit 1 unless all were stored")
    p.add_argument("--verbose", action="store_true", help="log every rate stored")
    args = p.parse_args()
    args.pairs = [tuple(s.strip().split("/")) for s in args.pairs.split(",") if s.strip()]
    if not args.pairs or any(len(pair) != 2 or not all(pair) for pair in args.pairs):
        p.error("--pairs takes BASE/QUOTE pairs separated by commas")
    if args.interval <= 0 or args.max_backoff < FIRST_BACKOFF:
        p.error(f"--interval must be positive and --max-backoff at least {FIRST_BACKOFF:g}")
    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        p.error("--url must be an http or https URL")
    args.source = args.source or url.hostname  # the host only: no credentials
    return args


def one_line(text):
    return " ".join(str(text).split())


def db_error(err):
    """A psycopg error as one line: its message and detail, without context."""
    return one_line(" ".join(filter(None, [err.diag.message_primary, err.diag.message_detail])) or err)


def fetch(url, base, quote):
    """Ask the API for one rate: (rate text, observed_at datetime), or ApiError."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode(urllib.parse.parse_qsl(parts.query) + [("base", base), ("quote", quote)])
    request = urllib.request.Request(parts._replace(query=query).geturl(),
                                     headers={"Accept": "application/json", "User-Agent": "ledger-rate-feeder"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            status, body = response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as err:
        raise ApiError(f"HTTP {err.code} {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:  # refused, timed out, reset (URLError is an OSError)
        raise ApiError(one_line(getattr(err, "reason", None) or repr(err))) from None
    received = datetime.datetime.now(datetime.timezone.utc)
    if status != 200:
        raise ApiError(f"HTTP {status}")
    try:
        answer = json.loads(body)
        if not isinstance(answer, dict) or (answer.get("base"), answer.get("quote")) != (base, quote):
            raise ValueError("not an answer for this pair")
        rate, observed = answer.get("rate"), answer.get("observed_at")
        if not isinstance(rate, str) or not DECIMAL.fullmatch(rate):
            raise ValueError(f"rate {rate!r} is not a decimal string")
        observed_at = received if observed is None else datetime.datetime.fromisoformat(observed)
        if observed_at.tzinfo is None:
            raise ValueError(f"observed_at {observed!r} has no zone")
    except (ValueError, TypeError) as err:  # TypeError: observed_at not a string
        raise ApiError(f"malformed answer: {one_line(err)[:200]}") from None
    return rate, observed_at


class Pair:
    def __init__(self, base, quote):
        self.base, self.quote, self.name = base, quote, f"{base}/{quote}"
        self.due = 0.0       # time.monotonic() of its next poll
        self.failures = 0    # API failures in a row
        self.last = None     # (rate, observed_at) last stored


class Feeder:
    def __init__(self, args):
        self.args = args
        self.pairs = [Pair(base, quote) for base, quote in args.pairs]
        self.conn = None
        self.db_failures = 0
        self.stopping = False
        # A signal writes to this socket pair, which wakes wait().
        self._wake, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stopping = True

    def wait(self, seconds):  # a signal ends it early
        if not self.stopping:
            select.select([self._wake], [], [], max(seconds, 0))

    def backoff(self, failures):
        step = min(self.args.max_backoff, FIRST_BACKOFF * 2 ** min(failures - 1, 30))
        return step * random.uniform(0.5, 1.0)

    def store(self, pair, rate, observed_at):
        """Append the rate: True if stored, False if refused; raises if the connection is lost."""
        if self.conn is None:
            self.conn = psycopg.connect(self.args.dsn, autocommit=True, fallback_application_name="rate_feeder")
            log.info("connected to the database")
        args = [pair.base, pair.quote, rate, observed_at, self.args.source]
        try:
            row_id = self.conn.execute(STORE, args).fetchone()[0]
        except psycopg.Error as err:
            if self.conn.broken or self.conn.closed or err.sqlstate == READ_ONLY:
                raise
            refused = (err.sqlstate or "").startswith("LD")  # else a bug or a misconfiguration
            log.log(logging.WARNING if refused else logging.ERROR, "%s: rate %s observed at %s %s: %s %s",
                    pair.name, rate, observed_at.isoformat(), "refused" if refused else "not stored",
                    err.sqlstate, db_error(err))
            return False
        pair.last = (rate, observed_at)
        log.log(logging.INFO if self.args.verbose else logging.DEBUG, "%s: rate %s observed at %s stored, id %s",
                pair.name, rate, observed_at.isoformat(), row_id)
        return True

    def poll(self, pair):
        """Poll one pair and set when it is due next; True if a rate was stored."""
        now = time.monotonic()
        try:
            rate, observed_at = fetch(self.args.url, pair.base, pair.quote)
        except ApiError as err:
            pair.failures += 1
            delay = self.backoff(pair.failures)
            pair.due = now + delay
            retry = "" if self.args.once else f"; retrying in {delay:.1f} s"
            log.warning("%s: rate API failure %d: %s%s", pair.name, pair.failures, err, retry)
            return False
        if pair.failures:
            log.info("%s: the rate API answers again, after %d failures", pair.name, pair.failures)
        pair.failures, pair.due = 0, now + self.args.interval
        if (rate, observed_at) == pair.last:
            return False
        try:
            stored = self.store(pair, rate, observed_at)
            self.db_failures = 0
            return stored
        except psycopg.Error as err:  # no connection: poll nothing until it may be back
            self.close()
            self.db_failures += 1
            delay = self.backoff(self.db_failures)
            retry = "" if self.args.once else f"; connecting again in {delay:.1f} s"
            log.error("%s: rate %s not stored, no usable database connection: %s%s",
                      pair.name, rate, db_error(err), retry)
            for other in self.pairs:
                other.due = max(other.due, now + delay)
            return False

    def run(self):
        while not self.stopping:
            for pair in sorted(self.pairs, key=lambda p: p.due):
                if self.stopping or pair.due > time.monotonic():
                    break
                self.poll(pair)
            self.wait(min(p.due for p in self.pairs) - time.monotonic())

    def run_once(self):
        stored = sum(self.poll(pair) for pair in self.pairs if not self.stopping)
        log.info("stored %d of %d rates", stored, len(self.pairs))
        return stored == len(self.pairs) or self.stopping

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def main():
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    feeder = Feeder(args)
    log.info("feeding %s from %s every %g s", ", ".join(p.name for p in feeder.pairs), args.source, args.interval)
    try:
        if args.once:
            return 0 if feeder.run_once() else 1
        feeder.run()
        return 0
    finally:
        feeder.close()
        log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
