#!/usr/bin/env python3
# examples/outbox_email.py: the reference consumer of the ledger outbox; it
# sends outbox messages as emails and owns nothing else.
#
# It LISTENs on ledger_outbox, leases a batch with ledger.outbox_claim,
# sends each message with smtplib, then ledger.outbox_ack.  A message that
# cannot be sent (SMTP or network error) goes back with ledger.outbox_fail:
# retried after a backoff, dead after ledger.outbox_max_attempts.  With
# nothing to claim it waits for a NOTIFY, 5 s at most: a missed one delays.
#
# Delivery is at least once: a consumer that dies between sending and ack,
# or outruns its lease, leaves the message to be sent again.  Each email
# has "X-Ledger-Message-Id: <id>" (ids are per database) for receivers to
# deduplicate on.  A key's messages come in order.  On SIGTERM or SIGINT it
# ends the message in hand, gives what it leased and did not send back with
# ledger.outbox_release (no attempt counted), and exits 0; the same when a
# batch outruns most of its lease.  It reconnects when PostgreSQL goes away
# (with --once it exits 1).  Messages with an owner_id go to --owner-to,
# the rest to --to; ledger.alert emails start with a summary line.  The
# SMTP server is a relay needing no TLS or login (e.g. a local MTA).
#
# Run it (the connection defaults to the PG* environment):
#   python3 examples/outbox_email.py --dsn 'dbname=app' --smtp-port 25
#   python3 examples/outbox_email.py --topics ledger.alert --once
import argparse
import email.message
import email.utils
import json
import logging
import os
import re
import select
import signal
import smtplib
import socket
import sys
import time

import psycopg

log = logging.getLogger("outbox_email")

CLAIM = """SELECT id, topic, key, payload, attempts
             FROM ledger.outbox_claim(%s, %s, %s::interval, %s::text[]) ORDER BY id"""
IDLE_WAIT = 5.0        # seconds to wait for a NOTIFY before claiming again
SMTP_TIMEOUT = 10.0    # seconds for each SMTP connect and command
LEASE_MARGIN = 0.8     # stop sending a batch after this fraction of its lease
OWNER_SAFE = re.compile(r"[A-Za-z0-9._+-]+")
NOT_LEASED = "LD035"   # ack/fail of a message no longer leased: its lease ran out


def parse_args():
    p = argparse.ArgumentParser(description="Send ledger outbox messages as email.")
    p.add_argument("--dsn", default="", help="libpq conninfo (default: the PG* environment)")
    p.add_argument("--smtp-host", default="127.0.0.1")
    p.add_argument("--smtp-port", type=int, default=25)
    p.add_argument("--from", dest="sender", default="ledger@localhost")
    p.add_argument("--to", default="ops@localhost", help="address for messages without an owner")
    p.add_argument("--owner-to", default="{owner}@localhost",
                   help="address for owner_ids made of letters, digits, ._+- ('': use --to)")
    p.add_argument("--consumer", default=f"email-{socket.gethostname()}-{os.getpid()}")
    p.add_argument("--topics", help="comma-separated topics to consume (default: all)")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--lease", default="30 s", help="an interval, e.g. '30 s'")
    p.add_argument("--once", action="store_true", help="exit 0 once nothing is claimable")
    args = p.parse_args()
    try:
        args.owner_to.format(owner="x")
    except (KeyError, IndexError, ValueError):
        p.error("--owner-to may contain {owner} and no other {field}")
    args.topics = [t.strip() for t in args.topics.split(",") if t.strip()] if args.topics else None
    return args


def one_line(text):
    return " ".join(str(text).split())


def build_email(args, msg_id, topic, key, payload):
    owner = payload.get("owner_id") if isinstance(payload, dict) else None
    owned = isinstance(owner, str) and args.owner_to and OWNER_SAFE.fullmatch(owner)
    msg = email.message.EmailMessage()
    msg["From"] = args.sender
    msg["To"] = args.owner_to.format(owner=owner) if owned else args.to
    msg["Subject"] = one_line(f"[ledger] {topic} {key}")
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["X-Ledger-Message-Id"] = str(msg_id)
    body = json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if topic == "ledger.alert" and isinstance(payload, dict):
        summary = "{} alert {}: account {}, owner {}".format(
            *(one_line(payload.get(k) or "-") for k in ("severity", "kind", "account", "owner_id")))
        body = summary + "\n\n" + body
    msg.set_content(body, cte="quoted-printable")
    return msg


class Consumer:
    def __init__(self, args):
        self.args = args
        self.conn = self.smtp = None
        self.notified = self.stopping = False
        self.sent = self.failed = 0
        # A signal writes to this socket pair, which wakes every wait().
        self._wake, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        signal.set_wakeup_fd(self._wake_w.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stopping = True

    def _on_notify(self, notify):
        if self.args.topics is None or notify.payload in self.args.topics:
            self.notified = True

    def wait(self, seconds, fd=None):  # a signal or a readable fd ends it early
        select.select([self._wake] + ([fd] if fd is not None else []), [], [], seconds)

    def connect(self):
        conn = psycopg.connect(self.args.dsn, autocommit=True)
        conn.add_notify_handler(self._on_notify)
        conn.execute("LISTEN ledger_outbox")
        lease = conn.execute("SELECT extract(epoch FROM %s::interval)", [self.args.lease])
        self.lease_seconds, self.conn = float(lease.fetchone()[0]), conn
        log.info("connected as consumer %s, listening on ledger_outbox", self.args.consumer)

    def close_smtp(self, polite=True):  # after an error: close, no QUIT
        if self.smtp is not None:
            try:
                self.smtp.quit() if polite else self.smtp.close()
            except (smtplib.SMTPException, OSError):
                self.smtp.close()
            self.smtp = None

    def close(self):
        self.close_smtp()
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def run(self):
        backoff = 1
        while not self.stopping:
            try:
                if self.conn is None:
                    self.connect()
                    backoff = 1
                self.notified = False
                if self.process_batch():
                    continue
                if self.args.once:
                    return
                if not self.notified:  # a NOTIFY may have come with the claim
                    self.wait(IDLE_WAIT, self.conn.fileno())
            except psycopg.Error as err:
                self.close()
                if self.args.once:
                    raise
                log.error("postgres: %s; reconnecting in %d s", one_line(err), backoff)
                self.wait(backoff)
                backoff = min(backoff * 2, 30)

    def process_batch(self):
        """Claim and send one batch; return how many messages were claimed."""
        a = self.args
        deadline = time.monotonic() + LEASE_MARGIN * self.lease_seconds
        rows = self.conn.execute(CLAIM, [a.consumer, a.batch, a.lease, a.topics]).fetchall()
        try:
            for n, (msg_id, topic, key, payload, attempts) in enumerate(rows):
                if self.stopping or time.monotonic() > deadline:
                    # give the rest back unsent: no attempt counted, no lease to wait out
                    for row in rows[n:]:
                        self.settle("SELECT ledger.outbox_release(%s, %s)", row[0], a.consumer)
                    log.info("gave %d unsent messages back", len(rows) - n)
                    break
                self.deliver(msg_id, topic, key, payload, attempts)
        finally:
            self.close_smtp()
        return len(rows)

    def deliver(self, msg_id, topic, key, payload, attempts):
        try:
            msg = build_email(self.args, msg_id, topic, key, payload)
            if self.smtp is None:
                self.smtp = smtplib.SMTP(self.args.smtp_host, self.args.smtp_port, timeout=SMTP_TIMEOUT)
            self.smtp.send_message(msg)
        except (smtplib.SMTPException, OSError, ValueError) as err:
            self.close_smtp(polite=False)
            error = f"{type(err).__name__}: {err}"[:1000]
            state = self.settle("SELECT ledger.outbox_fail(%s, %s, %s)", msg_id, error, self.args.consumer)
            self.failed += 1
            log.warning("message %d (%s %s, attempt %s) not sent, now %s: %s",
                        msg_id, topic, key, attempts, state, one_line(error))
            return
        # Sent: a crash from here to the ack sends it again (at least once).
        self.sent += 1
        if self.settle("SELECT ledger.outbox_ack(%s, %s)", msg_id, self.args.consumer) is False:
            log.info("message %d was delivered already: sent twice", msg_id)

    def settle(self, query, msg_id, *args):
        """Ack or fail; None if the lease ran out and the message moved on."""
        try:
            return self.conn.execute(query, [msg_id, *args]).fetchone()[0]
        except psycopg.DatabaseError as err:
            if err.sqlstate != NOT_LEASED:
                raise
            log.warning("message %d: lease lost: %s", msg_id, one_line(err))
            return None


def main():
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    consumer = Consumer(args)
    try:
        consumer.run()
    except psycopg.Error as err:
        log.error("postgres: %s", one_line(err))
        return 1
    finally:
        consumer.close()
        log.info("stopped: %d sent, %d failed", consumer.sent, consumer.failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
