"""Amounts: exact decimals only.

The ledger stores amounts as ``numeric`` at the asset's scale.  This client
takes amounts as:

* ``decimal.Decimal`` (the normal case), passed on exactly;
* ``int`` (exact; ``True``/``False`` are refused);
* ``str`` of a plain decimal such as ``"10.25"`` or ``"-3"`` (no exponent,
  no spaces inside), converted to ``Decimal``.

``float`` is refused with ``TypeError`` before anything is sent: a binary
float cannot hold most decimal amounts (``0.1 + 0.2 != 0.3``), and silently
rounding money is worse than failing.  So is any other type.  Values are the
ledger's business: ``Decimal('NaN')``, zero, negative transfer amounts or too
many decimals are sent as they are and refused by the server with
``InvalidAmount`` (LD005).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Optional

__all__ = ["to_amount", "amount_text", "json_dumps", "json_loads"]

_PLAIN_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)\Z")


def to_amount(value: Any, name: str = "amount", *, allow_none: bool = False) -> Optional[Decimal]:
    """Check an amount's type and return it as Decimal (see the module doc)."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must not be None")
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a Decimal, int or decimal str, not bool")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise TypeError(
            f"{name} is a float ({value!r}); floats cannot represent decimal amounts exactly. "
            f"Pass decimal.Decimal('...') (or a decimal str / int) instead")
    if isinstance(value, str):
        text = value.strip()
        if not _PLAIN_DECIMAL.match(text):
            raise ValueError(f"{name} {value!r} is not a plain decimal string such as '10.25'")
        return Decimal(text)
    raise TypeError(f"{name} must be a Decimal, int or decimal str, not {type(value).__name__}")


def amount_text(value: Any, name: str = "amount") -> str:
    """An amount as the decimal string the ledger reads in JSON (never an
    exponent: Decimal('1E+2') is '100')."""
    d = to_amount(value, name)
    return format(d, "f")


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return format(obj, "f")
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return f"{obj.total_seconds()} seconds"
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def json_dumps(obj: Any) -> str:
    """json.dumps that writes Decimal as an exact decimal string, UUIDs and
    datetimes as strings (psycopg's default dumps cannot write Decimal)."""
    return json.dumps(obj, default=_default, ensure_ascii=False, separators=(",", ":"))


def json_loads(text: Optional[str]) -> Any:
    """json.loads with JSON numbers that have a fraction read as Decimal."""
    if text is None:
        return None
    return json.loads(text, parse_float=Decimal)
