"""Idempotent retries: the same request, with the same key, until it lands."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any, Callable, Optional, TypeVar

import psycopg

from .client import Ledger
from .errors import LedgerError, translate

__all__ = ["idempotent", "new_key"]

T = TypeVar("T")


def new_key(prefix: str = "") -> str:
    """A fresh idempotency key (a random UUID, after an optional prefix)."""
    return f"{prefix}{uuid.uuid4()}"


def _close(conn: Optional[psycopg.Connection]) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # a broken connection may fail to close: nothing to do
        pass


def idempotent(conn_factory: Callable[[], psycopg.Connection],
               fn: Callable[[Ledger, str], T],
               key: Optional[str] = None, *,
               attempts: int = 5, backoff: float = 0.05, max_backoff: float = 2.0,
               max_wait: float = 10.0,
               on_retry: Optional[Callable[[int, LedgerError], Any]] = None) -> T:
    """Run ``fn(ledger, key)`` until it succeeds, retrying with the SAME key.

    Each attempt opens a connection with ``conn_factory()`` (for example
    ``lambda: ledger_client.connect(dsn)``), runs ``fn`` on a
    :class:`Ledger` over it, commits if the connection is not autocommit,
    and closes the connection.  ``fn`` must pass ``key`` as the
    ``idempotency_key`` of the call that moves money.

    On :class:`ConnectionLost` (the outcome is unknown: the call may or may
    not have committed) and on retryable errors (40001, 40P01, LD019, LD020,
    LD037, LD041) it waits (exponential backoff with jitter, from
    ``backoff`` to ``max_backoff`` seconds, or the server's ``retry_after``
    when it is longer) and tries again, up to ``attempts`` times in all.
    When the server asks for a wait longer than ``max_wait`` seconds (a
    rate limit far over), the error is raised instead of slept on.
    If the first attempt committed, the ledger answers the retry with the
    first transaction's id and writes nothing.  Other errors are raised at
    once (translated), the last retryable one after the final attempt.

    ``key`` defaults to a fresh UUID: pass your own (a request or payment
    id) when the retry may come from another process.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    if key is None:
        key = new_key()
    attempt = 0
    while True:
        attempt += 1
        conn = None
        try:
            conn = conn_factory()
            result = fn(Ledger(conn), key)
            if not conn.autocommit:
                conn.commit()
            return result
        except Exception as exc:  # translated below; anything else re-raised
            err = translate(exc)
            retry = isinstance(err, LedgerError) and err.retryable and attempt < attempts
            if retry:
                delay = min(max_backoff, backoff * (2 ** (attempt - 1)))
                delay *= 0.5 + random.random() / 2
                if err.retry_after is not None:
                    delay = max(delay, err.retry_after)
                retry = delay <= max_wait
            if not retry:
                if err is exc:
                    raise
                raise err from exc
            if on_retry is not None:
                on_retry(attempt, err)
        finally:
            _close(conn)
        time.sleep(delay)
