"""Opening connections for the ledger, directly or behind pgbouncer."""

from __future__ import annotations

from typing import Any

import psycopg

from .errors import translate

__all__ = ["connect"]


def connect(conninfo: str = "", *, pgbouncer: bool = False, autocommit: bool = True,
            **kwargs: Any) -> psycopg.Connection:
    """Open a psycopg 3 connection suited to the ledger.

    * ``autocommit=True`` (the default): every ledger call is its own
      transaction, committed when the call returns, so a call's result is
      final when you get it and no transaction is left open between calls.
      Group calls with ``Ledger.transaction()`` (BEGIN ... COMMIT).
    * ``pgbouncer=True``: ``prepare_threshold=None``.  psycopg 3 prepares a
      statement (a *named* server-side prepared statement) once it ran
      ``prepare_threshold`` (5) times on a connection.  pgbouncer 1.18 in
      transaction pooling mode hands each transaction to whichever server
      connection is free and does not carry named prepared statements
      across them, so the 6th identical call fails with "prepared
      statement "_pg3_0" does not exist" (or finds another client's).  With
      ``None`` psycopg never prepares: values still travel as server-side
      parameters (extended protocol, unnamed statement), which pgbouncer
      supports.  Keep autocommit on behind pgbouncer, and never use
      session state (``SET``, ``LISTEN``, advisory locks): only
      transaction-scoped state such as ``SET LOCAL`` (``Ledger.acting_owner``).

    Other keyword arguments go to ``psycopg.connect``.  A failure to connect
    raises :class:`ledger_client.ConnectionLost` (retryable).
    """
    if pgbouncer:
        kwargs["prepare_threshold"] = None
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, **kwargs)
    except psycopg.Error as exc:
        err = translate(exc)
        if err is exc:
            raise
        raise err from exc
