#!/usr/bin/env python3
# test/scripts/fake_rate_api.py: a fake rate API for tests of the rate
# feeder (examples/rate_feeder.py).  It owns nothing: it only reads its
# state file.
#
#   fake_rate_api.py PORT STATEFILE
#
# Listens on 127.0.0.1:PORT and answers GET <any path>?base=B&quote=Q as the
# feeder's contract says: 200 {"base": B, "quote": Q, "rate": "2.5",
# "observed_at": <now, UTC>}.  STATEFILE is read again for every request:
#   {"up": true, "rates": {"TOKEN/USD": "2.5",
#                          "BTC/EUR": {"rate": "1", "observed_at": null}}}
# A rate is a string (sent as is, observed now) or an object giving the
# rate and observed_at (a string sent as is; null: left out of the answer).
#   "up": false        every request gets 503
#   "malformed": true  every request gets 200 with a cut-off JSON body
#   "delay": SECONDS   each answer comes that late (default 0)
# A pair not in "rates" gets 404, a request without base and quote 400, an
# unreadable state file 500.  Write the state file whole (to a temporary
# file, then mv) so that no request reads it half written.
# Prints "ready" on stdout once it listens, logs each request on stderr,
# and runs until SIGTERM or SIGINT.
import datetime
import http.server
import json
import signal
import sys
import threading
import time
import urllib.parse


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Handler(http.server.BaseHTTPRequestHandler):
    state_file = None

    def answer(self, status, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        try:
            with open(self.state_file, encoding="utf-8") as f:
                state = json.load(f)
            rates, delay = state.get("rates", {}), float(state.get("delay", 0))
        except (OSError, ValueError, TypeError, AttributeError) as err:
            return self.answer(500, {"error": f"state file: {err}"})
        time.sleep(delay)
        if not state.get("up", True):
            return self.answer(503, {"error": "down"})
        if state.get("malformed"):
            return self.answer(200, b'{"base": "TOKEN", "quote": "US')
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        base, quote = query.get("base"), query.get("quote")
        if not base or not quote:
            return self.answer(400, {"error": "base and quote are required"})
        rate = rates.get(f"{base}/{quote}")
        if rate is None:
            return self.answer(404, {"error": f"no rate for {base}/{quote}"})
        if not isinstance(rate, dict):
            rate = {"rate": rate, "observed_at": now_utc()}
        body = {"base": base, "quote": quote, "rate": rate.get("rate")}
        if rate.get("observed_at") is not None:
            body["observed_at"] = rate["observed_at"]
        return self.answer(200, body)


def main():
    if len(sys.argv) != 3:
        print("usage: fake_rate_api.py PORT STATEFILE", file=sys.stderr)
        return 2
    Handler.state_file = sys.argv[2]
    # Block the signals before the server thread starts, so that only
    # sigwait below receives them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    print("ready", flush=True)
    signal.sigwait(stop_signals)
    server.shutdown()
    thread.join()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
