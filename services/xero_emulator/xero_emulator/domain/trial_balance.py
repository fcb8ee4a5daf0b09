"""The Trial Balance report (GET /Reports/TrialBalance?date=), from the ledger's postings.

Shape: Xero's OpenAPI ReportWithRows and its example for this path: a Header row (Account, Debit,
Credit, YTD Debit, YTD Credit), a Section per account class titled Revenue, Expenses, Assets,
Liabilities and Equity with a Row per account ("Name (Code)", every cell carrying the AccountID
as attribute "account"), then an untitled section with the SummaryRow "Total". Each pair of
columns holds the net amount on its side; a zero shows "0.00" on the class's usual side, the
other cell "" (as in the example).

What the columns hold (help.xero.com/nz/Report_TrialBalance): Debit/Credit is the balance "just
for the month of the report" (from the first of the date's month to the date); YTD is from the
start of the financial year for revenue and expense accounts, and includes previous years for
asset, liability and equity accounts. Earlier years' profit sits in Retained Earnings, whose
cells carry fromDate "" and toDate (the previous financial year's end, M/D/YYYY as in the
example). Xero's help says the Trial Balance has no cash basis: paymentsOnly=true is refused."""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from typing import Any

from xero_emulator.domain.errors import BadRequest
from xero_emulator.domain.ledger import entries_of
from xero_emulator.domain.organisation import Organisation, now_utc
from xero_emulator.domain.reports import _date, cents, money
from xero_emulator.jsonio import ms_datetime

# (title, account Class, usual side: +1 debit, -1 credit), in the example's order.
SECTIONS = (
    ("Revenue", "REVENUE", -1),
    ("Expenses", "EXPENSE", 1),
    ("Assets", "ASSET", 1),
    ("Liabilities", "LIABILITY", -1),
    ("Equity", "EQUITY", -1),
)
PROFIT_CLASSES = ("REVENUE", "EXPENSE")
HEADER = ("Account", "Debit", "Credit", "YTD Debit", "YTD Credit")


def _year_end(year: int, day: int, month: int) -> dt.date:
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def year_start(org: Organisation, day: dt.date) -> dt.date:
    """The first day of the financial year holding `day` (the day after the last year end)."""
    end_day, end_month = org.region.financial_year_end
    end = _year_end(day.year, end_day, end_month)
    if end >= day:
        end = _year_end(day.year - 1, end_day, end_month)
    return end + dt.timedelta(days=1)


def balances(org: Organisation, day: dt.date) -> tuple[dict[str, int], dict[str, int]]:
    """(month, year to date) cents per account code at `day`, debit positive; earlier years'
    profit is carried in the retained earnings account's year to date."""
    month_start = day.replace(day=1)
    start = year_start(org, day)
    retained = next((a["Code"] for a in org.accounts.values() if a.get("SystemAccount") == "RETAINEDEARNINGS"), None)
    month: dict[str, int] = defaultdict(int)
    ytd: dict[str, int] = defaultdict(int)
    for posted in entries_of(org):
        if posted.day > day:
            continue
        for entry in posted.entries:
            account = org.account_by_code(entry.code)
            if account is None:
                continue
            value = cents(entry.amount)
            if posted.day >= month_start:
                month[entry.code] += value
            if account["Class"] not in PROFIT_CLASSES or posted.day >= start:
                ytd[entry.code] += value
            elif retained is not None:
                ytd[retained] += value
    return month, ytd


def _pair(value: int, side: int) -> tuple[int | None, int | None]:
    """(debit, credit) cents of a net amount: one side holds it, the other is empty (None)."""
    if value > 0 or (value == 0 and side > 0):
        return value, None
    return None, -value


def _long_date(day: dt.date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


def trial_balance(org: Organisation, date: str | None, payments_only: bool = False) -> dict[str, Any]:
    if payments_only:
        raise BadRequest("The Trial Balance is on the accrual basis only; paymentsOnly=true is not supported.")
    day = _date(date, "date") or now_utc().date()
    month, ytd = balances(org, day)
    previous_end = year_start(org, day) - dt.timedelta(days=1)
    rows: list[dict[str, Any]] = [{"RowType": "Header", "Cells": [{"Value": title} for title in HEADER]}]
    totals = [0, 0, 0, 0]
    for title, account_class, side in SECTIONS:
        accounts = sorted(
            (
                a
                for a in org.accounts.values()
                if a["Class"] == account_class and (month.get(a["Code"]) or ytd.get(a["Code"]))
            ),
            key=lambda a: (a["Name"].lower(), a["Code"]),
        )
        section_rows = []
        for account in accounts:
            code = account["Code"]
            values = [*_pair(month.get(code, 0), side), *_pair(ytd.get(code, 0), side)]
            totals = [t + (v or 0) for t, v in zip(totals, values, strict=True)]
            attributes = [{"Value": account["AccountID"], "Id": "account"}]
            if account.get("SystemAccount") == "RETAINEDEARNINGS":
                period = [
                    {"Value": "", "Id": "fromDate"},
                    {"Value": f"{previous_end.month}/{previous_end.day}/{previous_end.year}", "Id": "toDate"},
                ]
            else:
                period = []
            cells = [{"Value": f"{account['Name']} ({code})", "Attributes": attributes}]
            cells += [{"Value": "" if v is None else money(v), "Attributes": attributes + period} for v in values]
            section_rows.append({"RowType": "Row", "Cells": cells})
        if section_rows:
            rows.append({"RowType": "Section", "Title": title, "Rows": section_rows})
    rows.append(
        {
            "RowType": "Section",
            "Title": "",
            "Rows": [{"RowType": "SummaryRow", "Cells": [{"Value": "Total"}] + [{"Value": money(t)} for t in totals]}],
        }
    )
    return {
        "ReportID": "TrialBalance",
        "ReportName": "Trial Balance",
        "ReportType": "TrialBalance",
        "ReportTitles": ["Trial Balance", org.name, f"As at {_long_date(day)}"],
        "ReportDate": _long_date(now_utc().date()),
        "UpdatedDateUTC": ms_datetime(now_utc()),
        "Fields": [],
        "Rows": rows,
    }
