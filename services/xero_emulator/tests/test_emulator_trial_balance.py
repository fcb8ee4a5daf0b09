"""GET /Reports/TrialBalance: Xero's ReportWithRows shape and its example's columns; the month's
movement beside the year to date, the financial year's start, and earlier years' profit carried in
Retained Earnings."""

from __future__ import annotations

from typing import Any

from xero_emulator.testing import Tenant, invoice, payment


def trial_balance(tenant: Tenant, **params: str) -> dict[str, Any]:
    response = tenant.client.get("/Reports/TrialBalance", params=params)
    assert response.status_code == 200, response.text
    reports: list[dict[str, Any]] = response.json()["Reports"]
    assert len(reports) == 1
    return reports[0]


def rows_by_account(found: dict[str, Any]) -> dict[str, tuple[str, list[str], list[dict[str, str]]]]:
    """ "Name (Code)" -> (section title, the four amounts, the first amount cell's attributes)."""
    out = {}
    for section in found["Rows"][1:]:
        for row in section["Rows"]:
            if row["RowType"] == "Row":
                cells = row["Cells"]
                out[cells[0]["Value"]] = (section["Title"], [c["Value"] for c in cells[1:]], cells[1]["Attributes"])
    return out


def test_the_report_has_the_shape_and_columns_of_xeros_example(tenant: Tenant) -> None:
    bill = tenant.create("Invoices", invoice("100.00"))
    tenant.create("Payments", payment(bill["InvoiceID"], "110.00", date="2026-07-02"))
    found = trial_balance(tenant, date="2026-07-31")
    assert (found["ReportName"], found["ReportType"]) == ("Trial Balance", "TrialBalance")
    assert found["ReportTitles"] == ["Trial Balance", "Smith & Co Lawyers", "As at 31 July 2026"]
    assert found["Rows"][0] == {
        "RowType": "Header",
        "Cells": [{"Value": v} for v in ("Account", "Debit", "Credit", "YTD Debit", "YTD Credit")],
    }
    rows = rows_by_account(found)
    assert rows["Legal Fees (200)"][:2] == ("Revenue", ["", "100.00", "", "100.00"])
    assert rows["GST (820)"][:2] == ("Liabilities", ["", "10.00", "", "10.00"])
    assert rows["Office Cheque Account (090)"][:2] == ("Assets", ["110.00", "", "110.00", ""])
    # Accounts Receivable, debited by the invoice and credited by its payment, holds nothing: an
    # account with neither a month nor a year-to-date balance is left out (Xero's help).
    assert "Accounts Receivable (610)" not in rows
    account_id = next(a["AccountID"] for a in tenant.client.get("/Accounts").json()["Accounts"] if a["Code"] == "200")
    assert rows["Legal Fees (200)"][2] == [{"Value": account_id, "Id": "account"}]
    titles = [s["Title"] for s in found["Rows"][1:]]
    assert titles == ["Revenue", "Assets", "Liabilities", ""]
    total = found["Rows"][-1]["Rows"][0]
    assert total["RowType"] == "SummaryRow"
    assert [c["Value"] for c in total["Cells"]] == ["Total", "110.00", "110.00", "110.00", "110.00"]


def test_debit_and_credit_hold_the_month_and_ytd_the_year(tenant: Tenant) -> None:
    tenant.create("Invoices", invoice("100.00", Date="2026-07-10"))
    tenant.create("Invoices", invoice("40.00", Date="2026-08-03", DueDate="2026-08-30"))
    rows = rows_by_account(trial_balance(tenant, date="2026-08-31"))
    assert rows["Legal Fees (200)"][1] == ["", "40.00", "", "140.00"]
    assert rows["Accounts Receivable (610)"][1] == ["44.00", "", "154.00", ""]
    # Before anything was posted: no account moved, only the total.
    empty = trial_balance(tenant, date="2026-06-30")
    assert [s["Title"] for s in empty["Rows"][1:]] == [""]


def test_earlier_years_profit_is_carried_in_retained_earnings(tenant: Tenant) -> None:
    # An Australian organisation's financial year ends on 30 June.
    tenant.create("Invoices", invoice("100.00", Date="2026-06-20", DueDate="2026-06-30"))
    tenant.create("Invoices", invoice("30.00", Date="2026-07-05"))
    rows = rows_by_account(trial_balance(tenant, date="2026-07-31"))
    assert rows["Legal Fees (200)"][1] == ["", "30.00", "", "30.00"]
    section, values, attributes = rows["Retained Earnings (960)"]
    assert (section, values) == ("Equity", ["", "0.00", "", "100.00"])
    assert {"Value": "6/30/2026", "Id": "toDate"} in attributes
    assert rows["Accounts Receivable (610)"][1] == ["33.00", "", "143.00", ""]
    # A month without movement shows 0.00 on the account's usual side, as in Xero's example.
    assert rows_by_account(trial_balance(tenant, date="2026-09-30"))["Legal Fees (200)"][1] == ["", "0.00", "", "30.00"]
    in_june = rows_by_account(trial_balance(tenant, date="2026-06-30"))
    assert in_june["Legal Fees (200)"][1] == ["", "100.00", "", "100.00"]
    assert "Retained Earnings (960)" not in in_june


def test_a_bad_date_or_the_cash_basis_is_refused(tenant: Tenant) -> None:
    for params in ({"date": "2026-02-30"}, {"date": "31/07/2026"}, {"date": "2026-07-31", "paymentsOnly": "true"}):
        response = tenant.client.get("/Reports/TrialBalance", params=params)
        assert response.status_code == 400, params
        assert response.json()["Type"] == "ValidationException" or "Message" in response.json()
