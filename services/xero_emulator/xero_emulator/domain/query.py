"""The part of Xero's `where` syntax xerolink uses: `Field=="value"` clauses joined with AND, or
with OR, values quoted, Guid("..."), numbers, true/false; dotted fields such as
Contact.ContactID. What the emulator has no Xero source for is refused with a clear error
instead of being guessed: AND and OR in one `where` (which binds first), `||`, parentheses,
ordering expressions, method calls (StartsWith...) and comparisons other than == and !=."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from xero_emulator.domain.errors import BadRequest

PAGE_SIZE = 100
_CLAUSE = re.compile(
    r"""^\s*(?P<field>[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)\s*(?P<op>==|!=)\s*
        (?:"(?P<str>[^"]*)"|(?i:guid)\("(?P<guid>[^"]*)"\)|(?P<num>-?\d+(?:\.\d+)?)|(?P<bool>true|false|null))\s*$""",
    re.VERBOSE,
)


Clause = tuple[str, str, Any]
# Outside quoted values only: "Smith AND Co" and "Ann OR Bob" are one value each, as at Xero.
_OUTSIDE_QUOTES = r'(?=(?:[^"]*"[^"]*")*[^"]*$)'
# `&&` with or without spaces: XeroAPI/xero-node#260 (`Reference == "Sunday - Spend" && Status ==
# "DELETED"`), XeroAPI/Xero-Java#170 (`Type=="ACCREC"&&Status!="DRAFT"&&Status!="SUBMITTED"`).
_AND = re.compile(r"(?:\s+AND\s+|\s*&&\s*)" + _OUTSIDE_QUOTES, re.IGNORECASE)
# OR as Xero's sources write it: its OpenAPI (GET /Invoices, `Statuses`: "we recommend using these
# explicit parameters instead of passing OR conditions into the Where filter") and
# XeroAPI/XeroAPI.Net#29 (`ContactNumber = "Foo" OR Name = "Bar"` filters on both in Xero's API).
_OR = re.compile(r"\s+OR\s+" + _OUTSIDE_QUOTES)
_PIPES = re.compile(r"\|\|" + _OUTSIDE_QUOTES)


def parse_where(where: str) -> list[list[Clause]]:
    """The conditions ORed, each a list of clauses ANDed: one condition of clauses ANDed, or
    single clauses ORed. No Xero source here says whether AND or OR binds first, so a `where`
    with both is refused, as is `||`, which none shows."""
    if len(where) > 2000:
        raise BadRequest("The where clause is too long.")
    if _PIPES.search(where):
        raise BadRequest("Unsupported where operator '||'. The emulator supports OR between clauses.")
    conditions = [[_clause(part) for part in _AND.split(either)] for either in _OR.split(where.strip())]
    if len(conditions) > 1 and any(len(clauses) > 1 for clauses in conditions):
        raise BadRequest(
            "Unsupported where: AND and OR together. The emulator supports clauses joined with AND, or with OR."
        )
    return conditions


def _clause(part: str) -> Clause:
    match = _CLAUSE.match(part)
    if match is None:
        raise BadRequest(
            f"Unsupported where clause '{part}'. The emulator supports Field==\"value\" clauses joined with AND, or "
            "with OR."
        )
    if match.group("str") is not None:
        value: Any = match.group("str")
    elif match.group("guid") is not None:
        value = match.group("guid").lower()
    elif match.group("num") is not None:
        value = Decimal(match.group("num"))
    else:
        value = {"true": True, "false": False, "null": None}[match.group("bool")]
    return (match.group("field"), match.group("op"), value)


def _lookup(obj: dict[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def matches(obj: dict[str, Any], conditions: list[list[Clause]]) -> bool:
    """Whether any condition holds: all of its clauses."""
    return any(_all_hold(obj, clauses) for clauses in conditions)


def _all_hold(obj: dict[str, Any], clauses: list[Clause]) -> bool:
    for field, op, expected in clauses:
        actual = _lookup(obj, field)
        if isinstance(actual, str) and isinstance(expected, str):
            equal = actual.lower() == expected.lower()
        elif isinstance(actual, Decimal | int) and not isinstance(actual, bool) and isinstance(expected, Decimal):
            equal = Decimal(actual) == expected
        else:
            equal = actual == expected
        if equal != (op == "=="):
            return False
    return True


_ORDER_TERM = re.compile(
    r"^\s*(?P<field>[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*)*)(?:\s+(?P<dir>ASC|DESC))?\s*$", re.I
)
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


def order_items(items: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    """`order`: "Order by an any element" (Xero's OpenAPI, the `order` parameter of each list),
    as "Field [ASC|DESC]" terms separated by commas, e.g. "UpdatedDateUTC ASC" or "Date DESC,
    InvoiceNumber". Xero's JSON dates ("/Date(ms+0000)/") order by time, numbers by value, text
    without case; an object without the field comes first. Objects that tie keep the stored order
    (the order of creation). Other syntax is refused rather than misread."""
    if len(order) > 500:
        raise BadRequest("The order clause is too long.")
    terms: list[tuple[str, bool]] = []
    for part in order.split(","):
        match = _ORDER_TERM.match(part)
        if match is None:
            raise BadRequest(
                f"Unsupported order term '{part.strip()}'. The emulator supports Field, Field ASC or Field DESC, "
                "separated by commas."
            )
        terms.append((match.group("field"), (match.group("dir") or "ASC").upper() == "DESC"))
    ordered = list(items)
    for field, descending in reversed(terms):  # stable sorts, the last term first
        ordered.sort(key=_order_by(field), reverse=descending)
    return ordered


def _order_by(field: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    return lambda obj: _order_key(_lookup(obj, field))


def _order_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | Decimal | float):
        return (1, Decimal(str(value)))
    if isinstance(value, str):
        found = _MS_DATE.match(value.strip())
        if found:
            return (1, Decimal(found.group(1)))
        return (2, value.lower())
    return (3, str(value))


def page_of(items: list[dict[str, Any]], page: int | None) -> list[dict[str, Any]]:
    if page is None:
        return items
    start = (page - 1) * PAGE_SIZE
    return items[start : start + PAGE_SIZE]
