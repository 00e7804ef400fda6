"""Typed wrappers over the ledger extension's SQL API.

Every call is one statement ``SELECT ... ledger.fn(name => $1::type, ...)``:
named arguments, values always sent as server-side parameters, never
formatted into the SQL text.  Arguments left at None whose SQL default is
not NULL are left out of the call, so the server's default applies.

A :class:`Ledger` never commits: on an autocommit connection (what
:func:`ledger_client.connect` opens) every call is its own transaction; on
a connection that is not autocommit, commit or roll back yourself.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Type, Union)
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from .amounts import amount_text, json_dumps, json_loads, to_amount
from .errors import LedgerError, class_for_sqlstate, parse_facts, translate

__all__ = [
    "Ledger", "BatchItem", "BatchResults", "InvalidatedBalance",
    "ReconcileFinding", "StaleHold", "ExternalMismatch", "OutboxMessage",
    "HotAccount", "FoldWorkerStatus", "EventWorkerStatus", "RateLimitStatus",
    "ProjectionLag", "Leg",
]

Amount = Union[Decimal, int, str]
Leg = Union[Tuple[str, Amount], Mapping[str, Any]]
Interval = Union[timedelta, str]

_OMIT = object()          # leave the argument out: the SQL default applies


# ---------------------------------------------------------------------------
# result rows
# ---------------------------------------------------------------------------

class InvalidatedBalance(NamedTuple):
    account: str
    balance_before: Decimal
    balance_after: Decimal


class ReconcileFinding(NamedTuple):
    account: str
    kind: str
    day: Optional[Any]
    expected: Optional[Decimal]
    actual: Optional[Decimal]
    repaired: bool


class StaleHold(NamedTuple):
    hold_id: UUID
    account: str
    owner_id: Optional[str]
    to_account: Optional[str]
    amount: Decimal
    remaining: Decimal
    state: str
    external_ref: Optional[str]
    submitted_at: Optional[datetime]
    confirm_deadline: Optional[datetime]


class ExternalMismatch(NamedTuple):
    external_ref: str
    kind: str
    ours: Any
    theirs: Any


class OutboxMessage(NamedTuple):
    id: int
    topic: str
    key: str
    payload: Any
    attempts: int
    created_at: datetime


class HotAccount(NamedTuple):
    account: str
    account_id: int
    committed: Decimal
    reserved: Decimal
    available: Optional[Decimal]
    inflight: int
    debits_accepted: int
    debits_refused: int
    state: str


class FoldWorkerStatus(NamedTuple):
    state: str
    pid: Optional[int]
    rounds: int
    folded_rows: int
    balance_writes: int
    last_fold_at: Optional[datetime]
    ready: bool


class EventWorkerStatus(NamedTuple):
    state: str
    pid: Optional[int]
    batches: int
    applied: int
    rejected: int
    errors: int
    last_batch_at: Optional[datetime]
    last_error: Optional[str]
    last_error_at: Optional[datetime]


class RateLimitStatus(NamedTuple):
    role: str
    per_second: float
    burst: int
    per_owner: bool
    calls: int
    refused: int


class ProjectionLag(NamedTuple):
    events: int
    seconds: Optional[float]


class BatchItem(NamedTuple):
    """One row of transfer_batch / post_batch / hold_batch / capture_batch /
    void_batch.

    ``result`` is ``'ok'`` (then the 4th field is set) or the item's LD
    SQLSTATE (then ``message`` is the message and its detail, and nothing of
    the item was written).  The 4th field holds the row's 4th column: the
    transaction id (transfer_batch, post_batch, capture_batch), the hold id
    (hold_batch; also as ``.hold_id``) or the amount released (void_batch;
    also as ``.released``, a Decimal).
    """
    item: int
    result: str
    message: Optional[str]
    transaction_id: Optional[Union[UUID, Decimal]]
    facts_json: Optional[str] = None    # the row's facts column (0.12.0), as JSON text

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @property
    def hold_id(self) -> Optional[UUID]:
        """The 4th column of a hold_batch row: the hold's id (None for a
        refused item)."""
        return self.transaction_id  # type: ignore[return-value]

    @property
    def released(self) -> Optional[Decimal]:
        """The 4th column of a void_batch row: the amount released, as a
        Decimal (None for a refused item)."""
        value = self.transaction_id
        if value is None or isinstance(value, Decimal):
            return value
        if isinstance(value, UUID):
            raise TypeError("released: this row's 4th column is an id, not a void_batch amount")
        return Decimal(str(value))

    @property
    def sqlstate(self) -> Optional[str]:
        return None if self.ok else self.result

    @property
    def error_class(self) -> Optional[Type[LedgerError]]:
        """The exception class of a refused item (e.g. InsufficientFunds), or None."""
        return None if self.ok else class_for_sqlstate(self.result)

    @property
    def facts(self) -> Dict[str, Any]:
        """The item's structured facts (the facts column), else {}."""
        facts = parse_facts(self.facts_json)
        return facts if facts is not None else _batch_message_facts(self.message)[1]

    def error(self) -> Optional[LedgerError]:
        """An exception instance for a refused item (not raised), or None."""
        if self.ok:
            return None
        text = _batch_message_facts(self.message)[0]
        facts = self.facts
        primary, sep, detail = (text or "").partition(" / ")
        return class_for_sqlstate(self.result)(
            primary, sqlstate=self.result, detail=detail if sep else None,
            facts=facts, context=f"batch item {self.item}")


def _batch_message_facts(message: Optional[str]) -> Tuple[Optional[str], Dict[str, Any]]:
    """Split a batch row's message ('primary / detail') into the text and the
    facts of the detail's last line (a JSON object), if any."""
    if not message:
        return message, {}
    head, sep, last = message.rpartition("\n")
    if sep:
        facts = parse_facts(last)
        if facts is not None:
            return head, facts
    # a detail that is only the facts line: "primary / {...}"
    start = message.find(" / {")
    while start >= 0:
        facts = parse_facts(message[start + 3:])
        if facts is not None:
            return message[:start], facts
        start = message.find(" / {", start + 1)
    return message, {}


class BatchResults(List[BatchItem]):
    """The rows of a batch call, in input order.  A refused item raises
    nothing; look at ``.ok``, ``.failed`` or call ``raise_first()``."""

    @property
    def ok(self) -> bool:
        return all(item.ok for item in self)

    @property
    def failed(self) -> List[BatchItem]:
        return [item for item in self if not item.ok]

    @property
    def transaction_ids(self) -> List[Optional[UUID]]:
        return [item.transaction_id for item in self]

    def raise_first(self) -> "BatchResults":
        """Raise the first refused item's error; return self if all passed."""
        for item in self:
            if not item.ok:
                raise item.error()
        return self


# ---------------------------------------------------------------------------
# argument helpers
# ---------------------------------------------------------------------------

def _jsonb(obj: Any) -> Optional[Jsonb]:
    if obj is None:
        return None
    return Jsonb(obj, dumps=json_dumps)


def _metadata(metadata: Optional[Mapping[str, Any]]) -> Any:
    # NULL metadata is refused by the ledger: None means "the default, {}"
    return _OMIT if metadata is None else _jsonb(metadata)


def _leg(leg: Leg, number: int) -> Dict[str, Any]:
    if isinstance(leg, Mapping):
        if "amount" not in leg or "account" not in leg:
            raise TypeError(f"leg {number} needs 'account' and 'amount'")
        out = dict(leg)
        out["amount"] = amount_text(leg["amount"], f"leg {number} amount")
        return out
    if isinstance(leg, (tuple, list)) and len(leg) == 2:
        account, amount = leg
        return {"account": account, "amount": amount_text(amount, f"leg {number} amount")}
    raise TypeError(f"leg {number} must be (account, amount) or a dict, not {leg!r}")


def _legs(legs: Iterable[Leg]) -> List[Dict[str, Any]]:
    if isinstance(legs, (str, bytes, Mapping)):
        raise TypeError("legs must be a list of (account, amount) pairs or dicts")
    return [_leg(leg, i) for i, leg in enumerate(legs, 1)]


def _str_or_none(value: Any, name: str) -> Optional[str]:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _interval_text(value: Any, name: str) -> Optional[str]:
    """An interval for a JSON batch item: a str as written, a timedelta
    exactly, with explicit signs (read the same under any IntervalStyle)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, timedelta):
        return f"{value.days:+d} days {value.seconds:+d} seconds {value.microseconds:+d} microseconds"
    raise TypeError(f"{name} must be a datetime.timedelta or an interval str, not {type(value).__name__}")


def _batch_item(item: Any, what: str, n: int) -> Dict[str, Any]:
    """A batch item as a new dict (keys other than the method's arguments are
    passed on: the server refuses the item, LD011, naming the key)."""
    if not isinstance(item, Mapping):
        raise TypeError(f"{what} {n} must be a dict of {what}()'s argument names, not {type(item).__name__}")
    return dict(item)


def _uuid(value: Union[UUID, str], name: str) -> UUID:
    if isinstance(value, UUID):
        return value
    if isinstance(value, str):
        return UUID(value)
    raise TypeError(f"{name} must be a uuid.UUID, not {type(value).__name__}")


# ---------------------------------------------------------------------------
# the client
# ---------------------------------------------------------------------------

class Ledger:
    """The ledger's SQL API on one psycopg 3 connection."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    # -- plumbing -----------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any]) -> List[tuple]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else []
        except psycopg.Error as exc:
            err = translate(exc)
            if err is exc:
                raise
            raise err from exc

    @staticmethod
    def _args(args: Sequence[Tuple[str, Any, str]]) -> Tuple[str, List[Any]]:
        parts, params = [], []
        for name, value, sqltype in args:
            if value is _OMIT:
                continue
            parts.append(f"{name} => %s::{sqltype}")
            params.append(value)
        return ", ".join(parts), params

    def _scalar(self, fn: str, *args: Tuple[str, Any, str]) -> Any:
        arglist, params = self._args(args)
        rows = self._run(f"SELECT ledger.{fn}({arglist})", params)
        return rows[0][0] if rows else None

    def _void(self, fn: str, *args: Tuple[str, Any, str]) -> None:
        arglist, params = self._args(args)
        self._run(f"SELECT 1 FROM ledger.{fn}({arglist})", params)

    def _rows(self, fn: str, columns: str, *args: Tuple[str, Any, str]) -> List[tuple]:
        arglist, params = self._args(args)
        return self._run(f"SELECT {columns} FROM ledger.{fn}({arglist})", params)

    @contextmanager
    def transaction(self) -> Iterator["Ledger"]:
        """A database transaction around several calls (BEGIN ... COMMIT,
        rolled back on an exception); errors come out translated."""
        try:
            with self.conn.transaction():
                yield self
        except psycopg.Error as exc:
            err = translate(exc)
            if err is exc:
                raise
            raise err from exc

    @contextmanager
    def acting_owner(self, owner_id: str) -> Iterator["Ledger"]:
        """A transaction whose debits may take only accounts of ``owner_id``
        (``SET LOCAL ledger.acting_owner``; safe under pgbouncer's
        transaction pooling, since it ends with the transaction)."""
        with self.transaction():
            self._run("SELECT pg_catalog.set_config('ledger.acting_owner', %s::text, true)",
                      [owner_id])
            yield self

    # -- assets and accounts ------------------------------------------------

    def create_asset(self, code: str, scale: int) -> None:
        self._void("create_asset", ("code", code, "text"), ("scale", scale, "integer"))

    def create_account(self, code: str, asset: str, min_balance: Optional[Amount] = Decimal(0),
                       owner_id: Optional[str] = None,
                       metadata: Optional[Mapping[str, Any]] = None) -> int:
        """Create an account; ``min_balance=None`` means unbounded (a system
        or external account), a negative one an overdraft limit."""
        return self._scalar(
            "create_account", ("code", code, "text"), ("asset", asset, "text"),
            ("min_balance", to_amount(min_balance, "min_balance", allow_none=True), "numeric"),
            ("owner_id", owner_id, "text"), ("metadata", _metadata(metadata), "jsonb"))

    def balance(self, account: str) -> Decimal:
        return self._scalar("balance", ("account", account, "text"))

    def available_balance(self, account: str) -> Optional[Decimal]:
        """balance - held - floor; None for an unbounded account."""
        return self._scalar("available_balance", ("account", account, "text"))

    def set_account_mode(self, account: str, mode: str) -> str:
        return self._scalar("set_account_mode", ("account", account, "text"), ("mode", mode, "text"))

    def set_account_limits(self, account: str, max_active_holds: Optional[int]) -> None:
        self._void("set_account_limits", ("account", account, "text"),
                   ("max_active_holds", max_active_holds, "integer"))

    # -- postings -------------------------------------------------------------

    def transfer(self, from_account: str, to_account: str, amount: Amount,
                 idempotency_key: Optional[str] = None,
                 metadata: Optional[Mapping[str, Any]] = None) -> UUID:
        """Move ``amount`` (> 0) between two accounts of one asset; returns the
        transaction id (the first one's for a replayed key)."""
        return self._scalar(
            "transfer", ("from_account", from_account, "text"), ("to_account", to_account, "text"),
            ("amount", to_amount(amount), "numeric"),
            ("idempotency_key", _str_or_none(idempotency_key, "idempotency_key"), "text"),
            ("metadata", _metadata(metadata), "jsonb"))

    def post(self, legs: Iterable[Leg], idempotency_key: Optional[str] = None,
             metadata: Optional[Mapping[str, Any]] = None) -> UUID:
        """Post signed legs, each ``(account, amount)`` or ``{"account", "amount"}``
        (positive: money into the account); each asset must net to zero."""
        return self._scalar(
            "post", ("legs", _jsonb(_legs(legs)), "jsonb"),
            ("idempotency_key", _str_or_none(idempotency_key, "idempotency_key"), "text"),
            ("metadata", _metadata(metadata), "jsonb"))

    def transfer_batch(self, transfers: Iterable[Union[Sequence[Any], Mapping[str, Any]]],
                       atomic: bool = False) -> BatchResults:
        """Many transfers in one call.  Each item is ``(from, to, amount)``,
        ``(from, to, amount, key)``, ``(from, to, amount, key, metadata)`` or
        a dict with those argument names.  Refused items raise nothing unless
        ``atomic``, where the first refusal fails the call (and is raised)."""
        froms, tos, amounts, keys, metas = [], [], [], [], []
        for n, t in enumerate(transfers, 1):
            if isinstance(t, Mapping):
                f, to, amt = t["from_account"], t["to_account"], t["amount"]
                key, meta = t.get("idempotency_key"), t.get("metadata")
            elif isinstance(t, (tuple, list)) and 3 <= len(t) <= 5:
                f, to, amt = t[0], t[1], t[2]
                key = t[3] if len(t) > 3 else None
                meta = t[4] if len(t) > 4 else None
            else:
                raise TypeError(f"transfer {n} must be (from, to, amount[, key[, metadata]]) or a dict")
            froms.append(f)
            tos.append(to)
            amounts.append(to_amount(amt, f"transfer {n} amount"))
            keys.append(_str_or_none(key, f"transfer {n} idempotency_key"))
            # a NULL element is refused (LD011): '{}' is the single call's default
            metas.append(None if meta is None else json_dumps(meta))
        rows = self._rows(
            "transfer_batch", "item, result, message, transaction_id, facts::text",
            ("from_accounts", froms, "text[]"), ("to_accounts", tos, "text[]"),
            ("amounts", amounts, "numeric[]"),
            ("idempotency_keys", keys if any(k is not None for k in keys) else None, "text[]"),
            ("metadata", [("{}" if m is None else m) for m in metas]
             if any(m is not None for m in metas) else None, "text[]::jsonb[]"),
            ("atomic", bool(atomic), "boolean"))
        return BatchResults(BatchItem(*row) for row in rows)

    def post_batch(self, postings: Iterable[Union[Sequence[Any], Mapping[str, Any]]],
                   atomic: bool = False) -> BatchResults:
        """Many postings in one call.  Each item is a list of legs, a tuple
        ``(legs, key)`` / ``(legs, key, metadata)``, or a dict
        ``{"legs": [...], "idempotency_key": ..., "metadata": {...}}``."""
        items = []
        for n, p in enumerate(postings, 1):
            if isinstance(p, Mapping):
                legs, key, meta = p["legs"], p.get("idempotency_key"), p.get("metadata")
            elif (isinstance(p, tuple) and 2 <= len(p) <= 3 and isinstance(p[0], (list, tuple))
                  and (p[1] is None or isinstance(p[1], str))):
                legs, key = p[0], p[1]
                meta = p[2] if len(p) > 2 else None
            elif isinstance(p, (list, tuple)):
                legs, key, meta = p, None, None
            else:
                raise TypeError(f"posting {n} must be legs, (legs, key[, metadata]) or a dict")
            item: Dict[str, Any] = {"legs": _legs(legs)}
            if key is not None:
                item["idempotency_key"] = _str_or_none(key, f"posting {n} idempotency_key")
            if meta is not None:
                item["metadata"] = meta
            items.append(item)
        rows = self._rows("post_batch", "item, result, message, transaction_id, facts::text",
                          ("postings", _jsonb(items), "jsonb"), ("atomic", bool(atomic), "boolean"))
        return BatchResults(BatchItem(*row) for row in rows)

    def hold_batch(self, holds: Iterable[Mapping[str, Any]], atomic: bool = False) -> BatchResults:
        """Many holds in one call, each a dict with :meth:`hold`'s argument
        names (``from_account``, ``amount``, ``to_account``, ``mode``,
        ``external_ref``, ``submit_within``, ``confirm_within``,
        ``idempotency_key``, ``metadata``); keys left out or None take the
        single call's defaults.  Rows as transfer_batch, with the hold id in
        the 4th field (``.hold_id``)."""
        items = []
        for n, given in enumerate(holds, 1):
            item = _batch_item(given, "hold", n)
            item["amount"] = amount_text(item.get("amount"), f"hold {n} amount")
            for name in ("submit_within", "confirm_within"):
                item[name] = _interval_text(item.get(name), f"hold {n} {name}")
            item["idempotency_key"] = _str_or_none(item.get("idempotency_key"), f"hold {n} idempotency_key")
            # None: left out, so the single call's default applies (mode
            # 'exclusive', metadata '{}', ...), never a NULL it would refuse
            items.append({k: v for k, v in item.items() if v is not None})
        rows = self._rows("hold_batch", "item, result, message, hold_id, facts::text",
                          ("holds", _jsonb(items), "jsonb"), ("atomic", bool(atomic), "boolean"))
        return BatchResults(BatchItem(*row) for row in rows)

    def capture_batch(self, captures: Iterable[Mapping[str, Any]], atomic: bool = False) -> BatchResults:
        """Many captures in one call, each a dict with :meth:`capture`'s
        argument names (``hold_id``, ``amount``: None or left out for all
        that remains, ``idempotency_key``).  Rows as transfer_batch, with
        the capture's transaction id."""
        items = []
        for n, given in enumerate(captures, 1):
            item = _batch_item(given, "capture", n)
            item["hold_id"] = str(_uuid(item.get("hold_id"), f"capture {n} hold_id"))
            if item.get("amount") is not None:
                item["amount"] = amount_text(item["amount"], f"capture {n} amount")
            item["idempotency_key"] = _str_or_none(item.get("idempotency_key"), f"capture {n} idempotency_key")
            items.append({k: v for k, v in item.items() if v is not None})
        rows = self._rows("capture_batch", "item, result, message, transaction_id, facts::text",
                          ("captures", _jsonb(items), "jsonb"), ("atomic", bool(atomic), "boolean"))
        return BatchResults(BatchItem(*row) for row in rows)

    def void_batch(self, voids: Iterable[Mapping[str, Any]], atomic: bool = False) -> BatchResults:
        """Many voids in one call, each a dict with :meth:`void`'s argument
        names (``hold_id``, ``reason``, ``idempotency_key``).  Rows as
        transfer_batch, with the amount released in the 4th field
        (``.released``, a Decimal)."""
        items = []
        for n, given in enumerate(voids, 1):
            item = _batch_item(given, "void", n)
            item["hold_id"] = str(_uuid(item.get("hold_id"), f"void {n} hold_id"))
            item["idempotency_key"] = _str_or_none(item.get("idempotency_key"), f"void {n} idempotency_key")
            items.append({k: v for k, v in item.items() if v is not None})
        rows = self._rows("void_batch", "item, result, message, released, facts::text",
                          ("voids", _jsonb(items), "jsonb"), ("atomic", bool(atomic), "boolean"))
        return BatchResults(BatchItem(*row) for row in rows)

    # -- corrections and checks -------------------------------------------

    def invalidate(self, transaction_id: Union[UUID, str], reason: str,
                   force: bool = False) -> List[InvalidatedBalance]:
        rows = self._rows("invalidate", "account, balance_before, balance_after",
                          ("transaction_id", _uuid(transaction_id, "transaction_id"), "uuid"),
                          ("reason", reason, "text"), ("force", bool(force), "boolean"))
        return [InvalidatedBalance(*r) for r in rows]

    def rebuild_balances(self, account: Optional[str] = None) -> int:
        return self._scalar("rebuild_balances", ("account", account, "text"))

    def reconcile(self, repair: bool = True) -> List[ReconcileFinding]:
        rows = self._rows("reconcile", "account, kind, day, expected, actual, repaired",
                          ("repair", bool(repair), "boolean"))
        return [ReconcileFinding(*r) for r in rows]

    def acknowledge_alert(self, id: int) -> bool:
        return self._scalar("acknowledge_alert", ("id", id, "bigint"))

    def schedule_reconciliation(self, schedule: Optional[str] = None, repair: bool = True) -> int:
        return self._scalar("schedule_reconciliation",
                            ("schedule", _OMIT if schedule is None else schedule, "text"),
                            ("repair", bool(repair), "boolean"))

    def unschedule_reconciliation(self) -> bool:
        return self._scalar("unschedule_reconciliation")

    # -- hot accounts ---------------------------------------------------------

    def fold(self, max_rows: Optional[int] = None) -> int:
        return self._scalar("fold", ("max_rows", _OMIT if max_rows is None else max_rows, "integer"))

    def hot_accounts(self) -> List[HotAccount]:
        rows = self._rows("hot_accounts", ", ".join(HotAccount._fields))
        return [HotAccount(*r) for r in rows]

    def fold_worker_status(self) -> FoldWorkerStatus:
        return FoldWorkerStatus(*self._rows("fold_worker_status", ", ".join(FoldWorkerStatus._fields))[0])

    # -- holds ----------------------------------------------------------------

    def hold(self, from_account: str, amount: Amount, to_account: Optional[str] = None,
             mode: Optional[str] = None, external_ref: Optional[str] = None,
             submit_within: Optional[Interval] = None, confirm_within: Optional[Interval] = None,
             idempotency_key: Optional[str] = None,
             metadata: Optional[Mapping[str, Any]] = None) -> UUID:
        """Reserve ``amount``: ``mode`` 'exclusive' (default; needs
        ``to_account``) or 'shared'.  Returns the hold id."""
        return self._scalar(
            "hold", ("from_account", from_account, "text"), ("amount", to_amount(amount), "numeric"),
            ("to_account", to_account, "text"),
            ("mode", _OMIT if mode is None else mode, "text"),
            ("external_ref", external_ref, "text"),
            ("submit_within", _OMIT if submit_within is None else submit_within, "interval"),
            ("confirm_within", _OMIT if confirm_within is None else confirm_within, "interval"),
            ("idempotency_key", _str_or_none(idempotency_key, "idempotency_key"), "text"),
            ("metadata", _metadata(metadata), "jsonb"))

    def mark_submitted(self, hold_id: Union[UUID, str], external_ref: Optional[str] = None) -> None:
        self._void("mark_submitted", ("hold_id", _uuid(hold_id, "hold_id"), "uuid"),
                   ("external_ref", external_ref, "text"))

    def capture(self, hold_id: Union[UUID, str], amount: Optional[Amount] = None,
                idempotency_key: Optional[str] = None) -> UUID:
        """Move ``amount`` (default: all that remains) of an exclusive hold;
        returns the capture's transaction id."""
        return self._scalar(
            "capture", ("hold_id", _uuid(hold_id, "hold_id"), "uuid"),
            ("amount", to_amount(amount, allow_none=True), "numeric"),
            ("idempotency_key", _str_or_none(idempotency_key, "idempotency_key"), "text"))

    def void(self, hold_id: Union[UUID, str], reason: str,
             idempotency_key: Optional[str] = None) -> Decimal:
        """Release what remains of a hold; returns the amount released."""
        return self._scalar(
            "void", ("hold_id", _uuid(hold_id, "hold_id"), "uuid"), ("reason", reason, "text"),
            ("idempotency_key", _str_or_none(idempotency_key, "idempotency_key"), "text"))

    def expire_holds(self) -> int:
        return self._scalar("expire_holds")

    def schedule_hold_expiry(self, schedule: Optional[str] = None) -> int:
        return self._scalar("schedule_hold_expiry",
                            ("schedule", _OMIT if schedule is None else schedule, "text"))

    def unschedule_hold_expiry(self) -> bool:
        return self._scalar("unschedule_hold_expiry")

    def stale_holds(self) -> List[StaleHold]:
        rows = self._rows("stale_holds", ", ".join(StaleHold._fields))
        return [StaleHold(*r) for r in rows]

    def import_statement(self, source: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Load a processor's statement records (amounts as Decimal are sent
        as exact decimal strings, datetimes as ISO 8601)."""
        return self._scalar("import_statement", ("source", source, "text"),
                            ("records", _jsonb(list(records)), "jsonb"))

    def reconcile_external(self, source: str, since: datetime, until: datetime) -> List[ExternalMismatch]:
        rows = self._rows("reconcile_external", "external_ref, kind, ours::text, theirs::text",
                          ("source", source, "text"), ("since", since, "timestamptz"),
                          ("until", until, "timestamptz"))
        return [ExternalMismatch(r[0], r[1], json_loads(r[2]), json_loads(r[3])) for r in rows]

    # -- events ---------------------------------------------------------------

    def append_event(self, stream: str, type: str, payload: Mapping[str, Any],
                     idempotency_key: Optional[str] = None) -> UUID:
        """Accept a request as an event; payload keys are the named
        arguments of the function ``type`` (amounts as Decimal are sent as
        decimal strings)."""
        return self._scalar(
            "append_event", ("stream", stream, "text"), ("type", type, "text"),
            ("payload", _jsonb(payload), "jsonb"),
            ("idempotency_key", _str_or_none(idempotency_key, "idempotency_key"), "text"))

    def apply_events(self, max_events: Optional[int] = None) -> int:
        return self._scalar("apply_events",
                            ("max_events", _OMIT if max_events is None else max_events, "integer"))

    def event_horizon(self) -> int:
        return self._scalar("event_horizon")

    def projection_lag(self) -> ProjectionLag:
        return ProjectionLag(*self._rows("projection_lag", "events, seconds")[0])

    def catch_up(self, stream: Optional[str] = None, timeout: Optional[Interval] = None) -> int:
        return self._scalar("catch_up", ("stream", stream, "text"),
                            ("timeout", _OMIT if timeout is None else timeout, "interval"))

    def event_worker_status(self) -> EventWorkerStatus:
        return EventWorkerStatus(*self._rows("event_worker_status",
                                             ", ".join(EventWorkerStatus._fields))[0])

    # -- outbox ---------------------------------------------------------------

    def enqueue(self, topic: str, key: str, payload: Mapping[str, Any]) -> int:
        return self._scalar("enqueue", ("topic", topic, "text"), ("key", key, "text"),
                            ("payload", _jsonb(payload), "jsonb"))

    def outbox_claim(self, consumer: str, max_messages: Optional[int] = None,
                     lease: Optional[Interval] = None,
                     topics: Optional[Sequence[str]] = None) -> List[OutboxMessage]:
        rows = self._rows(
            "outbox_claim", "id, topic, key, payload::text, attempts, created_at",
            ("consumer", consumer, "text"),
            ("max_messages", _OMIT if max_messages is None else max_messages, "integer"),
            ("lease", _OMIT if lease is None else lease, "interval"),
            ("topics", None if topics is None else list(topics), "text[]"))
        return [OutboxMessage(r[0], r[1], r[2], json_loads(r[3]), r[4], r[5]) for r in rows]

    def outbox_ack(self, id: int, consumer: Optional[str] = None) -> bool:
        return self._scalar("outbox_ack", ("id", id, "bigint"), ("consumer", consumer, "text"))

    def outbox_fail(self, id: int, error: str, consumer: Optional[str] = None) -> str:
        return self._scalar("outbox_fail", ("id", id, "bigint"), ("error", error, "text"),
                            ("consumer", consumer, "text"))

    def outbox_release(self, id: int, consumer: Optional[str] = None) -> bool:
        return self._scalar("outbox_release", ("id", id, "bigint"), ("consumer", consumer, "text"))

    def outbox_retry(self, id: int) -> bool:
        return self._scalar("outbox_retry", ("id", id, "bigint"))

    # -- exchange -------------------------------------------------------------

    def set_exchange_rate(self, base: str, quote: str, rate: Amount,
                          observed_at: Optional[datetime] = None,
                          source: Optional[str] = None) -> int:
        return self._scalar(
            "set_exchange_rate", ("base", base, "text"), ("quote", quote, "text"),
            ("rate", to_amount(rate, "rate"), "numeric"),
            ("observed_at", _OMIT if observed_at is None else observed_at, "timestamptz"),
            ("source", source, "text"))

    def set_exchange_accounts(self, asset: str, liquidity_account: str,
                              spread_account: Optional[str] = None) -> None:
        self._void("set_exchange_accounts", ("asset", asset, "text"),
                   ("liquidity_account", liquidity_account, "text"),
                   ("spread_account", spread_account, "text"))

    def exchange(self, from_account: str, to_account: str, amount: Amount,
                 max_rate_age: Optional[Interval] = None, wait: Optional[Interval] = None,
                 spread: Optional[Amount] = None, idempotency_key: Optional[str] = None,
                 metadata: Optional[Mapping[str, Any]] = None) -> UUID:
        return self._scalar(
            "exchange", ("from_account", from_account, "text"), ("to_account", to_account, "text"),
            ("amount", to_amount(amount), "numeric"),
            ("max_rate_age", max_rate_age, "interval"),
            ("wait", _OMIT if wait is None else wait, "interval"),
            ("spread", _OMIT if spread is None else to_amount(spread, "spread"), "numeric"),
            ("idempotency_key", _str_or_none(idempotency_key, "idempotency_key"), "text"),
            ("metadata", _metadata(metadata), "jsonb"))

    def check_rate_feeds(self) -> int:
        return self._scalar("check_rate_feeds")

    # -- security -------------------------------------------------------------

    def set_rate_limit(self, role: str, per_second: Amount, burst: int,
                       per_owner: bool = False) -> None:
        self._void("set_rate_limit", ("role", role, "name"),
                   ("per_second", to_amount(per_second, "per_second"), "numeric"),
                   ("burst", burst, "integer"), ("per_owner", bool(per_owner), "boolean"))

    def remove_rate_limit(self, role: str) -> bool:
        return self._scalar("remove_rate_limit", ("role", role, "name"))

    def rate_limit_status(self) -> List[RateLimitStatus]:
        rows = self._rows("rate_limit_status", ", ".join(RateLimitStatus._fields))
        return [RateLimitStatus(*r) for r in rows]

    def grant_owner_access(self, role: str, owner_id: str) -> bool:
        return self._scalar("grant_owner_access", ("role", role, "name"), ("owner_id", owner_id, "text"))

    def revoke_owner_access(self, role: str, owner_id: str) -> bool:
        return self._scalar("revoke_owner_access", ("role", role, "name"), ("owner_id", owner_id, "text"))

    # -- misc -----------------------------------------------------------------

    def version(self) -> str:
        return self._scalar("version")

    def new_id(self) -> UUID:
        return self._scalar("new_id")

