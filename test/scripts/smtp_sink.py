#!/usr/bin/env python3
# test/scripts/smtp_sink.py: a local SMTP server for tests of the outbox
# email consumer (examples/outbox_email.py).  It owns nothing but its
# output file.
#
#   smtp_sink.py PORT FILE [DELAY]
#
# DELAY (seconds, default 0) is how long it takes to accept each message:
# a slow relay, so that a consumer holds its leases for a while.
# Listens on 127.0.0.1:PORT (aiosmtpd), accepts every message and appends
# it to FILE as one JSON line, flushed at once:
#   {"message_id": <X-Ledger-Message-Id as int, null if absent>,
#    "subject": ..., "to": [envelope recipients],
#    "body": <the text/plain body, lines ending in "\n">}
# Prints "ready" on stdout once it listens; runs until SIGTERM or SIGINT.
import argparse
import asyncio
import email
import email.policy
import json
import signal
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out, delay):
        self.out = out
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        msg_id = (msg.get("X-Ledger-Message-Id") or "").strip()
        part = msg.get_body(preferencelist=("plain",))
        record = {
            "message_id": int(msg_id) if msg_id.isdigit() else None,
            "subject": str(msg.get("Subject", "")),
            "to": list(envelope.rcpt_tos),
            # SMTP carries lines ending in CRLF; record them as "\n"
            "body": part.get_content().replace("\r\n", "\n") if part is not None else "",
        }
        self.out.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.out.flush()
        return "250 Message accepted"


def main():
    p = argparse.ArgumentParser(description="SMTP sink writing one JSON line per message.")
    p.add_argument("port", type=int)
    p.add_argument("file")
    p.add_argument("delay", type=float, nargs="?", default=0.0)
    args = p.parse_args()

    # Block the signals before the server thread starts, so that only
    # sigwait below receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    with open(args.file, "a", encoding="utf-8") as out:
        controller = Controller(Sink(out, args.delay), hostname="127.0.0.1", port=args.port)
        controller.start()
        print("ready", flush=True)
        signal.sigwait(stop_signals)
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
