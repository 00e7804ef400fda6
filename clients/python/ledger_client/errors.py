"""Exceptions of the ledger client and the translation of psycopg errors.

Every error the ledger raises has its own SQLSTATE in class ``LD`` (see the
"Errors" table of the extension's README).  :func:`translate` turns a
``psycopg.Error`` into an instance of the class registered for its SQLSTATE,
keeping the original exception as ``__cause__``.

Structured facts: the ledger puts a one-line JSON object on the LAST line of
an LD error's DETAIL (``{"sqlstate": "LD001", "account": "alice", ...}``).
When that line is there, it becomes :attr:`LedgerError.facts` (amounts as
``Decimal``) and :attr:`LedgerError.detail` is the prose without it.  When it
is not there, ``facts`` is ``{}``.  Nothing is ever scraped from the prose.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Dict, Optional, Type

import psycopg

__all__ = [
    "LedgerError", "DatabaseError", "PermissionDenied", "ConnectionLost",
    "SerializationFailure", "DeadlockDetected",
    "InsufficientFunds", "UnknownAccount", "UnknownAsset", "AssetMismatch",
    "InvalidAmount", "ImmutableRecord", "IdempotencyConflict",
    "UnbalancedPosting", "DuplicateAccount", "DuplicateAsset",
    "InvalidArgument", "InvalidLegs", "UnknownTransaction",
    "AlreadyInvalidated", "InvalidationBelowFloor", "UnknownAlert",
    "PgCronUnavailable", "HotPrepareRefused", "ModeChanged", "HotNotReady",
    "HotUnavailable", "HotOutOfRange", "UnknownHold", "HoldFinished",
    "HoldExceeded", "HoldShared", "HoldLimit", "HoldHot",
    "CaptureNotInvalidated", "InvalidRecord", "EventsUnavailable",
    "InvalidEvent", "StaleEvent", "CatchUpTimeout", "OutboxState",
    "ExchangeNotConfigured", "StaleRate", "InvalidRate", "NotAccountOwner",
    "ActingOwnerRequired", "RateLimited",
    "ERROR_CLASSES", "RETRYABLE_SQLSTATES", "class_for_sqlstate",
    "parse_facts", "split_detail", "translate",
]

# Keys of a facts object whose string values are exact decimals (a string
# that is not a plain decimal, such as a refused "NaN", stays a string).
DECIMAL_FACT_KEYS = frozenset({
    "balance", "floor", "available", "requested", "amount",
    "held_exclusive", "held_shared", "sum", "rate",
    "captured", "remaining", "given", "per_second",
})

_DECIMAL_STRING = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z")


class LedgerError(Exception):
    """Base class of every error this client raises for a database error.

    Attributes:
        sqlstate: the SQLSTATE (``"LD001"``, ``"40001"``...), or None when
            the server sent none (a dropped connection).
        message: the server's primary message.
        detail: the DETAIL prose, without the facts line (or None).
        hint: the HINT (or None).
        context: the CONTEXT (for batches: which item), or None.
        facts: the DETAIL's machine-readable JSON line as a dict, amounts as
            ``Decimal``; ``{}`` when the server sent none.
        retryable: True when sending the same request again (with the same
            idempotency key) is the right reaction.
    """

    sqlstate: Optional[str] = None
    retryable: bool = False

    def __init__(self, message: str = "", *, sqlstate: Optional[str] = None,
                 detail: Optional[str] = None, hint: Optional[str] = None,
                 facts: Optional[Dict[str, Any]] = None,
                 context: Optional[str] = None):
        super().__init__(message)
        if sqlstate is not None:
            self.sqlstate = sqlstate
        self.message = message
        self.detail = detail
        self.hint = hint
        self.context = context
        self.facts: Dict[str, Any] = dict(facts) if facts else {}

    @property
    def retry_after(self) -> Optional[float]:
        """Seconds the server asks to wait before a retry (facts key
        ``retry_after_ms``), or None when it did not say."""
        value = self.facts.get("retry_after_ms")
        if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
            return float(value) / 1000.0
        return None

    def __str__(self) -> str:
        head = f"{self.sqlstate}: {self.message}" if self.sqlstate else self.message
        if self.detail:
            head += f"\nDETAIL: {self.detail}"
        if self.hint:
            head += f"\nHINT: {self.hint}"
        return head

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sqlstate={self.sqlstate!r}, message={self.message!r})"


class DatabaseError(LedgerError):
    """A database error that is not one of the ledger's own (no LD SQLSTATE)."""


class PermissionDenied(DatabaseError):
    """42501: the role lacks EXECUTE on the function (grant it)."""
    sqlstate = "42501"


class ConnectionLost(LedgerError):
    """The connection dropped (no SQLSTATE), or the server ended the session
    (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
    class 08).  Whether the last call committed is unknown: retry it with
    the same idempotency key (:func:`ledger_client.idempotent` does)."""
    retryable = True


class SerializationFailure(LedgerError):
    """40001: REPEATABLE READ / SERIALIZABLE conflict; retry the call."""
    sqlstate = "40001"
    retryable = True


class DeadlockDetected(LedgerError):
    """40P01: two transactions that each ran several postings deadlocked;
    retry the transaction (or post the legs in one ledger.post)."""
    sqlstate = "40P01"
    retryable = True


def _ld(code: str, name: str, doc: str, retryable: bool = False) -> Type[LedgerError]:
    cls = type(name, (LedgerError,), {"__doc__": f"{code}: {doc}", "sqlstate": code,
                                       "retryable": retryable, "__module__": __name__})
    return cls


# One class per SQLSTATE of the README's "Errors" table.
InsufficientFunds = _ld("LD001", "InsufficientFunds",
                        "insufficient_funds: a debit or hold would take the available balance below min_balance.")
UnknownAccount = _ld("LD002", "UnknownAccount", "unknown_account: an account code does not exist.")
UnknownAsset = _ld("LD003", "UnknownAsset", "unknown_asset: the asset does not exist.")
AssetMismatch = _ld("LD004", "AssetMismatch", "asset_mismatch: accounts of different assets.")
InvalidAmount = _ld("LD005", "InvalidAmount",
                    "invalid_amount: zero, negative, NaN, infinite, over-scale, >= 10^30 or not a decimal.")
ImmutableRecord = _ld("LD006", "ImmutableRecord",
                      "immutable_record: UPDATE/DELETE/TRUNCATE of append-only history.")
IdempotencyConflict = _ld("LD007", "IdempotencyConflict",
                          "idempotency_conflict: an idempotency key reused with a different request.")
UnbalancedPosting = _ld("LD008", "UnbalancedPosting", "unbalanced_posting: the legs of an asset do not sum to zero.")
DuplicateAccount = _ld("LD009", "DuplicateAccount", "duplicate_account: the account code exists.")
DuplicateAsset = _ld("LD010", "DuplicateAsset", "duplicate_asset: the asset code exists.")
InvalidArgument = _ld("LD011", "InvalidArgument",
                      "invalid_argument: a NULL, bad code, key, metadata, scale, self-transfer, bad rate limit...")
InvalidLegs = _ld("LD012", "InvalidLegs", "invalid_legs: post legs are not 2..max_legs {account, amount} objects.")
UnknownTransaction = _ld("LD013", "UnknownTransaction", "unknown_transaction: invalidate of an unknown id.")
AlreadyInvalidated = _ld("LD014", "AlreadyInvalidated", "already_invalidated: the transaction is already invalidated.")
InvalidationBelowFloor = _ld("LD015", "InvalidationBelowFloor",
                             "invalidation_below_floor: invalidate would leave an account below its floor.")
UnknownAlert = _ld("LD016", "UnknownAlert", "unknown_alert: acknowledge_alert of an unknown id.")
PgCronUnavailable = _ld("LD017", "PgCronUnavailable", "pg_cron_unavailable: pg_cron is not in this database.")
HotPrepareRefused = _ld("LD018", "HotPrepareRefused",
                        "hot_prepare_refused: PREPARE TRANSACTION after posting to a hot account.")
ModeChanged = _ld("LD019", "ModeChanged",
                  "mode_changed: the account switched mode or is being corrected (retryable).", True)
HotNotReady = _ld("LD020", "HotNotReady",
                  "hot_not_ready: the escrow is not rebuilt yet after a restart (retryable).", True)
HotUnavailable = _ld("LD021", "HotUnavailable",
                     "hot_unavailable: hot mode not available (no preload, other database, no slot).")
HotOutOfRange = _ld("LD022", "HotOutOfRange", "hot_out_of_range: a hot account's escrow bound would be left.")
UnknownHold = _ld("LD023", "UnknownHold", "unknown_hold: the hold id does not exist.")
HoldFinished = _ld("LD024", "HoldFinished", "hold_finished: the hold is captured, voided or expired.")
HoldExceeded = _ld("LD025", "HoldExceeded", "hold_exceeded: a capture of more than remains.")
HoldShared = _ld("LD026", "HoldShared", "hold_shared: a capture of a shared hold.")
HoldLimit = _ld("LD027", "HoldLimit", "hold_limit: beyond the account's max_active_holds.")
HoldHot = _ld("LD028", "HoldHot", "hold_hot: a hold on a hot account, or a hot switch with active holds.")
CaptureNotInvalidated = _ld("LD029", "CaptureNotInvalidated",
                            "capture_not_invalidated: a capture's transaction cannot be invalidated.")
InvalidRecord = _ld("LD030", "InvalidRecord", "invalid_record: a bad import_statement record.")
EventsUnavailable = _ld("LD031", "EventsUnavailable",
                        "events_unavailable: no preload, PREPARE after appending, too many databases.")
InvalidEvent = _ld("LD032", "InvalidEvent", "invalid_event: unknown type, bad payload, or no right to its function.")
StaleEvent = _ld("LD033", "StaleEvent", "stale_event: a newer event already changed the row.")
CatchUpTimeout = _ld("LD034", "CatchUpTimeout",
                     "catch_up_timeout: events not applied in time, or appended by this transaction.")
OutboxState = _ld("LD035", "OutboxState", "outbox_state: the message is unknown or not in the needed state.")
ExchangeNotConfigured = _ld("LD036", "ExchangeNotConfigured",
                            "exchange_not_configured: no liquidity (or spread) account for the asset.")
StaleRate = _ld("LD037", "StaleRate", "stale_rate: no rate young enough (retryable).", True)
InvalidRate = _ld("LD038", "InvalidRate", "invalid_rate: a bad rate, pair or observation time.")
NotAccountOwner = _ld("LD039", "NotAccountOwner",
                      "not_account_owner: the account's owner is not ledger.acting_owner.")
ActingOwnerRequired = _ld("LD040", "ActingOwnerRequired",
                          "acting_owner_required: the role must set ledger.acting_owner to debit.")
RateLimited = _ld("LD041", "RateLimited", "rate_limited: the role is over its rate limit (retryable).", True)

ERROR_CLASSES: Dict[str, Type[LedgerError]] = {
    cls.sqlstate: cls for cls in (
        InsufficientFunds, UnknownAccount, UnknownAsset, AssetMismatch,
        InvalidAmount, ImmutableRecord, IdempotencyConflict, UnbalancedPosting,
        DuplicateAccount, DuplicateAsset, InvalidArgument, InvalidLegs,
        UnknownTransaction, AlreadyInvalidated, InvalidationBelowFloor,
        UnknownAlert, PgCronUnavailable, HotPrepareRefused, ModeChanged,
        HotNotReady, HotUnavailable, HotOutOfRange, UnknownHold, HoldFinished,
        HoldExceeded, HoldShared, HoldLimit, HoldHot, CaptureNotInvalidated,
        InvalidRecord, EventsUnavailable, InvalidEvent, StaleEvent,
        CatchUpTimeout, OutboxState, ExchangeNotConfigured, StaleRate,
        InvalidRate, NotAccountOwner, ActingOwnerRequired, RateLimited,
        SerializationFailure, DeadlockDetected, PermissionDenied,
    )
}

RETRYABLE_SQLSTATES = frozenset(code for code, cls in ERROR_CLASSES.items() if cls.retryable)

# The server ended the session: the outcome of the last call is unknown.
_CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})


def class_for_sqlstate(sqlstate: Optional[str]) -> Type[LedgerError]:
    """The exception class for a SQLSTATE (LedgerError for an LD code this
    client does not know yet, DatabaseError for other codes)."""
    if sqlstate is None:
        return ConnectionLost
    cls = ERROR_CLASSES.get(sqlstate)
    if cls is not None:
        return cls
    if sqlstate in _CONNECTION_SQLSTATES or sqlstate.startswith("08"):
        return ConnectionLost
    if sqlstate.startswith("LD"):
        return LedgerError
    return DatabaseError


def _convert_facts(obj: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in obj.items():
        if key in DECIMAL_FACT_KEYS and isinstance(value, str) and _DECIMAL_STRING.match(value):
            value = Decimal(value)
        out[key] = value
    return out


def parse_facts(line: Optional[str]) -> Optional[Dict[str, Any]]:
    """The facts dict of one line, or None if it is not a JSON object line."""
    if not line:
        return None
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line, parse_float=Decimal)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    return _convert_facts(obj)


def split_detail(detail: Optional[str]):
    """Split a DETAIL into (prose, facts): facts is the last line's JSON
    object (or {}), prose the rest (None when nothing is left)."""
    if not detail:
        return detail, {}
    head, sep, last = detail.rpartition("\n")
    facts = parse_facts(last)
    if facts is None:
        return detail, {}
    prose = head if sep else ""
    return (prose if prose.strip() else None), facts


def translate(exc: BaseException) -> BaseException:
    """Map a psycopg error to this module's class for its SQLSTATE.

    The original exception becomes ``__cause__`` of the returned one.  A
    psycopg.OperationalError without a SQLSTATE (the connection dropped, or
    was already closed) becomes :class:`ConnectionLost`.  Anything that is
    not a psycopg error, and client-side psycopg errors without a SQLSTATE
    other than OperationalError (a programming mistake), is returned as is.
    """
    if isinstance(exc, LedgerError) or not isinstance(exc, psycopg.Error):
        return exc
    diag = exc.diag
    sqlstate = exc.sqlstate or diag.sqlstate
    if sqlstate is None and not isinstance(exc, psycopg.OperationalError):
        return exc
    cls = class_for_sqlstate(sqlstate)
    detail, facts = split_detail(diag.message_detail)
    message = diag.message_primary or str(exc).strip() or type(exc).__name__
    new = cls(message, sqlstate=sqlstate, detail=detail, hint=diag.message_hint,
              facts=facts, context=diag.context)
    new.__cause__ = exc
    return new
