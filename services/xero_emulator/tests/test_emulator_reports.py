"""GET /Reports/ProfitAndLoss: Xero's ReportWithRows shape, split and filtered by tracking, and the
admin helper that answers profit per tracking option in integer cents."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from xero_emulator.testing import Tenant, invoice, line


def category_with(tenant: Tenant, name: str, *options: str) -> dict[str, Any]:
    created: dict[str, Any] = tenant.send("PUT", "/TrackingCategories", {"Name": name}).json()["TrackingCategories"][0]
    path = f"/TrackingCategories/{created['TrackingCategoryID']}/Options"
    created["Options"] = tenant.send("PUT", path, {"Options": [{"Name": o} for o in options]}).json()["Options"]
    created["ids"] = {o["Name"]: o["TrackingOptionID"] for o in created["Options"]}
    return created


def tag(category: dict[str, Any], option: str) -> list[dict[str, str]]:
    return [{"TrackingCategoryID": category["TrackingCategoryID"], "TrackingOptionID": category["ids"][option]}]


def report(tenant: Tenant, **params: str) -> dict[str, Any]:
    response = tenant.client.get("/Reports/ProfitAndLoss", params=params)
    assert response.status_code == 200, response.text
    reports: list[dict[str, Any]] = response.json()["Reports"]
    assert len(reports) == 1
    return reports[0]


def row_values(found: dict[str, Any], title: str) -> list[str]:
    """The values of the first row whose first cell is `title`, anywhere in the report."""
    for row in found["Rows"]:
        for inner in [row, *row.get("Rows", [])]:
            cells = inner.get("Cells", [])
            if cells and cells[0]["Value"] == title:
                return [c["Value"] for c in cells[1:]]
    raise AssertionError(f"no row {title}: {found['Rows']}")


def seed(tenant: Tenant) -> dict[str, Any]:
    matter = category_with(tenant, "Matter", "M-1", "M-2")
    tenant.create("Invoices", invoice(LineItems=[line("1000.00", Tracking=tag(matter, "M-1"))]))
    tenant.create("Invoices", invoice(LineItems=[line("250.50", Tracking=tag(matter, "M-2")), line("99.99")]))
    bill = invoice(kind="ACCPAY", LineItems=[line("300.10", "420", "INPUT", Tracking=tag(matter, "M-1"))])
    tenant.create("Invoices", bill)
    tenant.create(
        "ManualJournals",
        {
            "Narration": "Move a cost",
            "Date": "2026-07-05",
            "Status": "POSTED",
            "JournalLines": [
                {"LineAmount": Decimal("40.00"), "AccountCode": "489", "Tracking": tag(matter, "M-2")},
                {"LineAmount": Decimal("-40.00"), "AccountCode": "420", "Tracking": tag(matter, "M-1")},
            ],
        },
    )
    # Outside the period.
    tenant.create("Invoices", invoice("500.00", Date="2026-08-02", DueDate="2026-08-30"))
    return matter


def test_the_report_has_xeros_shape(tenant: Tenant) -> None:
    seed(tenant)
    found = report(tenant, fromDate="2026-07-01", toDate="2026-07-31")
    assert (found["ReportID"], found["ReportName"], found["ReportType"]) == (
        "ProfitAndLoss",
        "Profit and Loss",
        "ProfitAndLoss",
    )
    assert found["ReportTitles"][0] == "Profit and Loss"
    assert found["ReportTitles"][2] == "For the period 1 July 2026 to 31 July 2026"
    assert isinstance(found["ReportDate"], str)
    assert found["Rows"][0]["RowType"] == "Header"
    assert [r["RowType"] for r in found["Rows"][1:]] == ["Section"] * (len(found["Rows"]) - 1)
    income = next(r for r in found["Rows"] if r.get("Title") == "Income")
    legal_fees = income["Rows"][0]
    assert legal_fees["RowType"] == "Row"
    assert legal_fees["Cells"][0]["Value"] == "Legal Fees"
    assert legal_fees["Cells"][0]["Attributes"][0]["Id"] == "account"
    assert income["Rows"][-1]["RowType"] == "SummaryRow"
    assert row_values(found, "Total Income") == ["1350.49"]
    assert row_values(found, "Total Operating Expenses") == ["300.10"]
    assert row_values(found, "Net Profit") == ["1050.39"]


def test_columns_per_option_with_a_tracking_category(tenant: Tenant) -> None:
    matter = seed(tenant)
    found = report(tenant, fromDate="2026-07-01", toDate="2026-07-31", trackingCategoryID=matter["TrackingCategoryID"])
    assert [c["Value"] for c in found["Rows"][0]["Cells"]] == ["", "M-1", "M-2", "Unassigned", "Total"]
    assert row_values(found, "Legal Fees") == ["1000.00", "250.50", "99.99", "1350.49"]
    assert row_values(found, "Office Expenses") == ["260.10", "0.00", "0.00", "260.10"]
    assert row_values(found, "Telephone & Internet") == ["0.00", "40.00", "0.00", "40.00"]
    assert row_values(found, "Net Profit") == ["739.90", "210.50", "99.99", "1050.39"]


def test_one_option_filters_the_report(tenant: Tenant) -> None:
    matter = seed(tenant)
    found = report(
        tenant,
        fromDate="2026-07-01",
        toDate="2026-07-31",
        trackingCategoryID=matter["TrackingCategoryID"],
        trackingOptionID=matter["ids"]["M-2"],
    )
    assert len(found["Rows"][0]["Cells"]) == 2
    assert row_values(found, "Net Profit") == ["210.50"]


def test_two_categories_filter_together(tenant: Tenant) -> None:
    matter = category_with(tenant, "Matter", "M-1")
    office = category_with(tenant, "Office", "Sydney", "Perth")
    both = tag(matter, "M-1") + tag(office, "Sydney")
    tenant.create("Invoices", invoice(LineItems=[line("100.00", Tracking=both)]))
    tenant.create("Invoices", invoice(LineItems=[line("7.00", Tracking=tag(matter, "M-1") + tag(office, "Perth"))]))
    found = report(
        tenant,
        fromDate="2026-07-01",
        toDate="2026-07-31",
        trackingCategoryID=matter["TrackingCategoryID"],
        trackingOptionID=matter["ids"]["M-1"],
        trackingCategoryID2=office["TrackingCategoryID"],
    )
    assert [c["Value"] for c in found["Rows"][0]["Cells"]] == ["", "Sydney", "Perth", "Unassigned", "Total"]
    assert row_values(found, "Net Profit") == ["100.00", "7.00", "0.00", "107.00"]
    filtered = report(
        tenant,
        fromDate="2026-07-01",
        toDate="2026-07-31",
        trackingCategoryID=matter["TrackingCategoryID"],
        trackingOptionID=matter["ids"]["M-1"],
        trackingCategoryID2=office["TrackingCategoryID"],
        trackingOptionID2=office["ids"]["Perth"],
    )
    assert row_values(filtered, "Net Profit") == ["7.00"]


def test_bad_report_parameters_are_400(tenant: Tenant) -> None:
    for params in (
        {"fromDate": "July"},
        # Present but empty is no date either (the parameter's format is date, in Xero's
        # description and the emulator's own).
        {"fromDate": ""},
        {"toDate": ""},
        {"fromDate": "2026-08-01", "toDate": "2026-07-01"},
        {"trackingCategoryID": "0e2b7f5c-1111-4c2e-9a55-5e1f00d0b0b0"},
        {"trackingOptionID": "0e2b7f5c-1111-4c2e-9a55-5e1f00d0b0b0"},
    ):
        response: httpx.Response = tenant.client.get("/Reports/ProfitAndLoss", params=params)
        assert response.status_code == 400, (params, response.text)


def test_profit_per_option_in_cents_for_tests(tenant: Tenant) -> None:
    matter = seed(tenant)
    profit = tenant.profit_by_option(matter["TrackingCategoryID"], "2026-07-01", "2026-07-31")
    assert profit == {matter["ids"]["M-1"]: 73990, matter["ids"]["M-2"]: 21050, "unassigned": 9999}
    # Over all time the August invoice counts, untracked.
    assert tenant.profit_by_option(matter["TrackingCategoryID"])["unassigned"] == 59999
    admin = httpx.get(
        f"{tenant.server.base_url}/emulator/organisations/{tenant.tenant_id}/tracking/{matter['TrackingCategoryID']}/profit",
        params={"fromDate": "2026-07-01", "toDate": "2026-07-31"},
    )
    assert admin.status_code == 200, admin.text
    body = admin.json()
    assert [(o["Name"], o["profit_cents"]) for o in body["options"]] == [("M-1", 73990), ("M-2", 21050)]
    assert body["options"][0]["income_cents"] == 100000 and body["options"][0]["expense_cents"] == 26010
    assert body["unassigned"]["profit_cents"] == 9999
    assert body["total"]["profit_cents"] == 105039
