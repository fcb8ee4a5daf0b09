"""The Profit and Loss report (GET /Reports/ProfitAndLoss), from the ledger's postings, filtered
and split by tracking. Shape: Xero's OpenAPI ReportWithRows (Header / Section / Row / SummaryRow
rows of Cells with Value and Attributes). Amounts are summed in integer cents and answered as
decimal strings. Accrual basis only.

Columns: one ("<toDate>") without tracking; with trackingCategoryID and no trackingOptionID, one
per option of that category, then "Unassigned" and "Total" (the layout of Xero's P&L by tracking
category; the OpenAPI has no example of it, so this is the emulator's reading). trackingOptionID
(and trackingCategoryID2 / trackingOptionID2) filter the postings to lines carrying that option."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from xero_emulator.domain.errors import BadRequest
from xero_emulator.domain.ledger import entries_of
from xero_emulator.domain.organisation import Organisation, is_guid, now_utc
from xero_emulator.domain.tracking import categories
from xero_emulator.jsonio import ms_datetime

# (section title, summary title, account Types), in Xero's order; Gross Profit follows cost of sales.
SECTIONS = (
    ("Income", "Total Income", ("REVENUE", "SALES")),
    ("Less Cost of Sales", "Total Cost of Sales", ("DIRECTCOSTS",)),
    ("Plus Other Income", "Total Other Income", ("OTHERINCOME",)),
    ("Less Operating Expenses", "Total Operating Expenses", ("EXPENSE", "OVERHEADS", "DEPRECIATN")),
)
INCOME_TYPES = ("REVENUE", "SALES", "OTHERINCOME")
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class ReportParams:
    from_date: str | None = None
    to_date: str | None = None
    category_1: str | None = None
    option_1: str | None = None
    category_2: str | None = None
    option_2: str | None = None


def cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def money(value: int) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}{abs(value) // 100}.{abs(value) % 100:02d}"


def _date(value: str | None, name: str) -> dt.date | None:
    """The parameter's date, None when it was not sent; sent, it must be a date, empty included.
    Source: Xero's OpenAPI description (xero_accounting.yaml, components.parameters FromDate and
    ToDate, `type: string, format: date`): an empty value is no full-date. That Xero answers a
    value that is not a date with a 400 is the emulator's guess: the description lists only 200
    for the reports, and no poster path sends a report date that is not one."""
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a date such as 2026-07-31.") from exc


def period(params: ReportParams) -> tuple[dt.date, dt.date]:
    """Xero's default is the current month; a missing fromDate starts toDate's month."""
    today = now_utc().date()
    to_date = _date(params.to_date, "toDate") or today.replace(day=calendar.monthrange(today.year, today.month)[1])
    from_date = _date(params.from_date, "fromDate") or to_date.replace(day=1)
    if from_date > to_date:
        raise BadRequest("fromDate must not be after toDate.")
    return from_date, to_date


def _category(org: Organisation, key: str | None, name: str) -> dict[str, Any] | None:
    if key is None or key == "":
        return None
    found = categories(org).get(key.lower()) if is_guid(key) else None
    if found is None or found["Status"] == "DELETED":
        raise BadRequest(f"{name} {key} is not a tracking category of this organisation.")
    return found


def _option(category: dict[str, Any] | None, key: str | None, name: str) -> str | None:
    if key is None or key == "":
        return None
    if category is None:
        raise BadRequest(f"{name} needs the trackingCategoryID of its category as well.")
    if not is_guid(key) or not any(o["TrackingOptionID"] == key.lower() for o in category["Options"]):
        raise BadRequest(f"{name} {key} is not an option of tracking category '{category['Name']}'.")
    return key.lower()


@dataclass
class _Grid:
    """Cents per account and column; columns are option IDs, UNASSIGNED, or "all"."""

    columns: list[tuple[str, str]]  # (key, title)
    split_by: dict[str, Any] | None
    amounts: dict[str, dict[str, int]]


def _grid(org: Organisation, params: ReportParams) -> tuple[_Grid, dt.date, dt.date]:
    from_date, to_date = period(params)
    cat_1 = _category(org, params.category_1, "trackingCategoryID")
    cat_2 = _category(org, params.category_2, "trackingCategoryID2")
    opt_1 = _option(cat_1, params.option_1, "trackingOptionID")
    opt_2 = _option(cat_2, params.option_2, "trackingOptionID2")
    filters = [o for o in (opt_1, opt_2) if o is not None]
    splitting = [c for c, o in ((cat_1, opt_1), (cat_2, opt_2)) if c is not None and o is None]
    if len(splitting) > 1:
        raise BadRequest(
            "The emulator splits the report by one tracking category at a time: give a trackingOptionID "
            "for one of the two categories."
        )
    split_by = splitting[0] if splitting else None
    if split_by is not None:
        columns = [(o["TrackingOptionID"], o["Name"]) for o in split_by["Options"] if o["Status"] != "DELETED"]
        columns += [(UNASSIGNED, "Unassigned"), ("all", "Total")]
    else:
        columns = [("all", f"{to_date.day} {to_date.strftime('%b %y')}")]
    option_ids = {o["TrackingOptionID"] for o in split_by["Options"]} if split_by is not None else set()
    amounts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for posted in entries_of(org):
        if not from_date <= posted.day <= to_date:
            continue
        for entry in posted.entries:
            account = org.account_by_code(entry.code)
            if account is None or account["Class"] not in ("REVENUE", "EXPENSE"):
                continue
            if not all(f in entry.tracking for f in filters):
                continue
            value = cents(entry.amount)
            amounts[entry.code]["all"] += value
            if split_by is not None:
                key = next((t for t in entry.tracking if t in option_ids), UNASSIGNED)
                amounts[entry.code][key] += value
    return _Grid(columns, split_by, amounts), from_date, to_date


def _long_date(day: dt.date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


def _cell(value: str, account_id: str | None = None) -> dict[str, Any]:
    cell: dict[str, Any] = {"Value": value}
    if account_id is not None:
        cell["Attributes"] = [{"Value": account_id, "Id": "account"}]
    return cell


def profit_and_loss(org: Organisation, params: ReportParams) -> dict[str, Any]:
    grid, from_date, to_date = _grid(org, params)
    keys = [key for key, _title in grid.columns]
    rows: list[dict[str, Any]] = [
        {"RowType": "Header", "Cells": [_cell("")] + [_cell(title) for _key, title in grid.columns]}
    ]
    section_totals: dict[str, list[int]] = {}
    for title, summary, types in SECTIONS:
        accounts = sorted(
            (a for a in org.accounts.values() if a["Type"] in types and any(grid.amounts.get(a["Code"], {}).values())),
            key=lambda a: a["Code"],
        )
        sign = -1 if types[0] in INCOME_TYPES else 1  # income shown as positive credits
        totals = [0] * len(keys)
        section_rows = []
        for account in accounts:
            values = [sign * grid.amounts[account["Code"]].get(key, 0) for key in keys]
            totals = [t + v for t, v in zip(totals, values, strict=True)]
            section_rows.append(
                {
                    "RowType": "Row",
                    "Cells": [_cell(account["Name"], account["AccountID"])]
                    + [_cell(money(v), account["AccountID"]) for v in values],
                }
            )
        section_totals[title] = totals
        if section_rows:
            section_rows.append(
                {"RowType": "SummaryRow", "Cells": [_cell(summary)] + [_cell(money(t)) for t in totals]}
            )
            rows.append({"RowType": "Section", "Title": title, "Rows": section_rows})
        if title == "Less Cost of Sales" and (section_rows or section_totals["Income"] != [0] * len(keys)):
            gross = [i - c for i, c in zip(section_totals["Income"], totals, strict=True)]
            rows.append(
                {
                    "RowType": "Section",
                    "Title": "",
                    "Rows": [{"RowType": "Row", "Cells": [_cell("Gross Profit")] + [_cell(money(g)) for g in gross]}],
                }
            )
    net = [
        i - c + o - e
        for i, c, o, e in zip(
            section_totals["Income"],
            section_totals["Less Cost of Sales"],
            section_totals["Plus Other Income"],
            section_totals["Less Operating Expenses"],
            strict=True,
        )
    ]
    rows.append(
        {
            "RowType": "Section",
            "Title": "",
            "Rows": [{"RowType": "SummaryRow", "Cells": [_cell("Net Profit")] + [_cell(money(n)) for n in net]}],
        }
    )
    return {
        "ReportID": "ProfitAndLoss",
        "ReportName": "Profit and Loss",
        "ReportType": "ProfitAndLoss",
        "ReportTitles": [
            "Profit and Loss",
            org.name,
            f"For the period {_long_date(from_date)} to {_long_date(to_date)}",
        ],
        "ReportDate": _long_date(now_utc().date()),
        "UpdatedDateUTC": ms_datetime(now_utc()),
        "Fields": [],
        "Rows": rows,
    }


def profit_by_option(
    org: Organisation, category_id: str, from_date: str | None = None, to_date: str | None = None
) -> dict[str, Any]:
    """For tests: income, expenses and profit (income - expenses) in integer cents, per option of a
    tracking category and for lines without one, over a period (default: all time)."""
    params = ReportParams(from_date or "0001-01-01", to_date or "9999-12-31", category_id)
    grid, start, end = _grid(org, params)
    assert grid.split_by is not None
    split = grid.split_by

    def figures(key: str) -> dict[str, int]:
        income = expense = 0
        for code, by_column in grid.amounts.items():
            account = org.account_by_code(code)
            assert account is not None
            if account["Type"] in INCOME_TYPES:
                income -= by_column.get(key, 0)
            else:
                expense += by_column.get(key, 0)
        return {"income_cents": income, "expense_cents": expense, "profit_cents": income - expense}

    return {
        "TrackingCategoryID": split["TrackingCategoryID"],
        "Name": split["Name"],
        "from_date": start.isoformat(),
        "to_date": end.isoformat(),
        "options": [
            {
                "TrackingOptionID": o["TrackingOptionID"],
                "Name": o["Name"],
                "Status": o["Status"],
                **figures(o["TrackingOptionID"]),
            }
            for o in split["Options"]
            if o["Status"] != "DELETED"
        ],
        "unassigned": figures(UNASSIGNED),
        "total": figures("all"),
    }
