"""Python client for the ``ledger`` PostgreSQL extension (psycopg 3).

    from decimal import Decimal
    import ledger_client as lc

    conn = lc.connect("dbname=mydb")
    ledger = lc.Ledger(conn)
    tx = ledger.transfer("alice", "bob", Decimal("10.00"), idempotency_key="pay-1")

See clients/python/README.md.
"""

from .amounts import amount_text, json_dumps, json_loads, to_amount
from .client import (BatchItem, BatchResults, EventWorkerStatus, ExternalMismatch,
                     FoldWorkerStatus, HotAccount, InvalidatedBalance, Ledger,
                     OutboxMessage, ProjectionLag, RateLimitStatus, ReconcileFinding,
                     StaleHold)
from .connection import connect
from .errors import (
    LedgerError, DatabaseError, PermissionDenied, ConnectionLost,
    SerializationFailure, DeadlockDetected, InsufficientFunds,
    UnknownAccount, UnknownAsset, AssetMismatch, InvalidAmount,
    ImmutableRecord, IdempotencyConflict, UnbalancedPosting,
    DuplicateAccount, DuplicateAsset, InvalidArgument, InvalidLegs,
    UnknownTransaction, AlreadyInvalidated, InvalidationBelowFloor,
    UnknownAlert, PgCronUnavailable, HotPrepareRefused, ModeChanged,
    HotNotReady, HotUnavailable, HotOutOfRange, UnknownHold, HoldFinished,
    HoldExceeded, HoldShared, HoldLimit, HoldHot, CaptureNotInvalidated,
    InvalidRecord, EventsUnavailable, InvalidEvent, StaleEvent,
    CatchUpTimeout, OutboxState, ExchangeNotConfigured, StaleRate,
    InvalidRate, NotAccountOwner, ActingOwnerRequired, RateLimited,
    ERROR_CLASSES, RETRYABLE_SQLSTATES, class_for_sqlstate, parse_facts,
    split_detail, translate,
)
from .retry import idempotent, new_key

__version__ = "0.13.0"

__all__ = [
    "Ledger", "connect", "idempotent", "new_key",
    "BatchItem", "BatchResults", "InvalidatedBalance", "ReconcileFinding",
    "StaleHold", "ExternalMismatch", "OutboxMessage", "HotAccount",
    "FoldWorkerStatus", "EventWorkerStatus", "RateLimitStatus", "ProjectionLag",
    "to_amount", "amount_text", "json_dumps", "json_loads",

    # errors
    "LedgerError", "DatabaseError", "PermissionDenied", "ConnectionLost",
    "SerializationFailure", "DeadlockDetected", "InsufficientFunds",
    "UnknownAccount", "UnknownAsset", "AssetMismatch", "InvalidAmount",
    "ImmutableRecord", "IdempotencyConflict", "UnbalancedPosting",
    "DuplicateAccount", "DuplicateAsset", "InvalidArgument", "InvalidLegs",
    "UnknownTransaction", "AlreadyInvalidated", "InvalidationBelowFloor",
    "UnknownAlert", "PgCronUnavailable", "HotPrepareRefused", "ModeChanged",
    "HotNotReady", "HotUnavailable", "HotOutOfRange", "UnknownHold",
    "HoldFinished", "HoldExceeded", "HoldShared", "HoldLimit", "HoldHot",
    "CaptureNotInvalidated", "InvalidRecord", "EventsUnavailable",
    "InvalidEvent", "StaleEvent", "CatchUpTimeout", "OutboxState",
    "ExchangeNotConfigured", "StaleRate", "InvalidRate", "NotAccountOwner",
    "ActingOwnerRequired", "RateLimited", "ERROR_CLASSES",
    "RETRYABLE_SQLSTATES", "class_for_sqlstate", "parse_facts",
    "split_detail", "translate",
]
