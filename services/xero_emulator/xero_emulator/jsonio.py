"""JSON in and out the way Xero writes it: amounts as numbers with two decimals (never via
float), dates as "/Date(ms+0000)/" beside an ISO DateString."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


class JsonError(ValueError):
    """The body is not JSON the emulator can read."""


def loads(raw: bytes) -> Any:
    """Parses JSON keeping every non-integer number as an exact Decimal."""
    try:
        return json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise JsonError(str(exc)) from exc


def _refuse_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a number")


def dumps(value: Any) -> bytes:
    return "".join(_encode(value)).encode("utf-8")


def _encode(value: Any) -> list[str]:
    out: list[str] = []
    _write(value, out)
    return out


def format_decimal(value: Decimal) -> str:
    """Two decimals at least (Xero's money form), more only when the value has them (unit prices)."""
    if value == value.to_integral_value() or -value.as_tuple().exponent <= 2:  # type: ignore[operator]
        return f"{value:.2f}"
    return format(value.normalize(), "f")


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        out.append(format_decimal(value))
    elif isinstance(value, dt.datetime | dt.date):
        out.append(json.dumps(value.isoformat()))
    else:
        out.append(json.dumps(value))


def ms_date(day: dt.date) -> str:
    """Xero's JSON date: "/Date(1735689600000+0000)/"."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return f"/Date({int(midnight.timestamp()) * 1000}+0000)/"


def ms_datetime(moment: dt.datetime) -> str:
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def parse_date(value: Any) -> dt.date:
    """Accepts "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SS" and "/Date(ms+0000)/", as Xero does."""
    if not isinstance(value, str):
        raise ValueError("a date must be a string such as 2026-07-01")
    text = value.strip()
    match = _MS_DATE.match(text)
    if match:
        return dt.datetime.fromtimestamp(int(match.group(1)) / 1000, tz=dt.UTC).date()
    try:
        if len(text) > 10 and text[10] == "T":
            return dt.datetime.fromisoformat(text).date()
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"'{value}' is not a date (use YYYY-MM-DD)") from exc


def date_string(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00"
