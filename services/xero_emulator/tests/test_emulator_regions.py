"""Organisations of every region Actionstep serves: each answers its own country, currency, tax
rates and chart, books its own rates of tax, and refuses another region's tax types as Xero does."""

from __future__ import annotations

import functools
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from xero_emulator import EmulatorServer
from xero_emulator.domain.chart import CLASS_FLAG, LAW_FIRM_LAYOUT
from xero_emulator.domain.organisation import Organisation
from xero_emulator.domain.regions import REGIONS
from xero_emulator.testing import Tenant, invoice, line, new_tenant

# (region, CountryCode, BaseCurrency, Version, Timezone)
FACTS = [
    ("AU", "AU", "AUD", "AU", "AUSEASTERNSTANDARDTIME"),
    ("NZ", "NZ", "NZD", "NZ", "NEWZEALANDSTANDARDTIME"),
    ("UK", "GB", "GBP", "UK", "GMTSTANDARDTIME"),
    ("US", "US", "USD", "US", "EASTERNSTANDARDTIME"),
    ("CA", "CA", "CAD", "GLOBAL", "EASTERNSTANDARDTIME"),
]
# region -> {TaxType: EffectiveRate} of its default rates.
RATES = {
    "AU": {
        "OUTPUT": 10,
        "INPUT": 10,
        "CAPEXINPUT": 10,
        "EXEMPTOUTPUT": 0,
        "EXEMPTEXPORT": 0,
        "EXEMPTEXPENSES": 0,
        "EXEMPTCAPITAL": 0,
        "INPUTTAXED": 0,
        "BASEXCLUDED": 0,
        "GSTONIMPORTS": 0,
        "GSTONCAPIMPORTS": 0,
    },
    "NZ": {"OUTPUT2": 15, "INPUT2": 15, "ZERORATED": 0, "NONE": 0, "GSTONIMPORTS": 0},
    "UK": {
        "OUTPUT2": 20,
        "INPUT2": 20,
        "RROUTPUT": 5,
        "RRINPUT": 5,
        "SROUTPUT": 15,
        "SRINPUT": 15,
        "ZERORATEDOUTPUT": 0,
        "ZERORATEDINPUT": 0,
        "EXEMPTOUTPUT": 0,
        "EXEMPTINPUT": 0,
        "ECZROUTPUT": 0,
        "ECZROUTPUTSERVICES": 0,
        "ECZRINPUT": 0,
        "NONE": 0,
        "GSTONIMPORTS": 0,
    },
    "US": {
        "OUTPUT": 0,
        "INPUT": 0,
        "NONE": 0,
        "GSTONIMPORTS": 0,
        "TAX001": Decimal("8.875"),
        "TAX002": Decimal("8.875"),
    },
    "CA": {
        "OUTPUT": 0,
        "INPUT": 0,
        "NONE": 0,
        "GSTONIMPORTS": 0,
        "TAX001": 13,
        "TAX002": 13,
        "TAX003": 5,
        "TAX004": 5,
        "TAX005": 0,
    },
}
# (region, sales tax type, net, tax): the region's standard rate of tax on fees, to the cent.
STANDARD_SALES = [
    ("AU", "OUTPUT", "100.00", "10.00"),
    ("NZ", "OUTPUT2", "100.00", "15.00"),
    ("UK", "OUTPUT2", "100.00", "20.00"),
    ("UK", "RROUTPUT", "100.00", "5.00"),
    ("US", "TAX001", "200.00", "17.75"),
    ("US", "TAX001", "100.00", "8.88"),  # 8.875 rounded half away from zero
    ("CA", "TAX001", "100.00", "13.00"),
    ("CA", "TAX003", "100.00", "5.00"),
]
# (region, purchases tax type, net, tax) on a bill to 420 Office Expenses.
STANDARD_PURCHASES = [
    ("AU", "INPUT", "100.00", "10.00"),
    ("NZ", "INPUT2", "100.00", "15.00"),
    ("UK", "INPUT2", "100.00", "20.00"),
    ("US", "INPUT", "100.00", "0.00"),
    ("CA", "TAX002", "100.00", "13.00"),
]
# (region, account, a tax type it refuses, a tax type it takes instead)
FOREIGN = [
    ("NZ", "270", "BASEXCLUDED", "NONE"),
    ("NZ", "200", "OUTPUT", "OUTPUT2"),
    ("UK", "200", "OUTPUT", "OUTPUT2"),
    ("UK", "270", "BASEXCLUDED", "EXEMPTOUTPUT"),
    ("UK", "200", "ZERORATED", "ZERORATEDOUTPUT"),
    ("AU", "200", "OUTPUT2", "OUTPUT"),
    ("AU", "200", "ZERORATED", "EXEMPTOUTPUT"),
    ("US", "200", "OUTPUT2", "TAX001"),
    ("US", "270", "BASEXCLUDED", "NONE"),
    ("CA", "200", "OUTPUT2", "TAX001"),
    ("CA", "420", "INPUT2", "TAX002"),
]

OPENAPI = Path(__file__).resolve().parents[3].parent / "shared" / "xero-openapi" / "xero_accounting.yaml"


@functools.cache
def xero_enums() -> dict[str, set[str]]:
    """Enums of Xero's OpenAPI description (read beside the repository or from
    XEROLINK_XERO_OPENAPI, never copied in); the check is skipped when it is absent."""
    path = Path(os.environ.get("XEROLINK_XERO_OPENAPI") or OPENAPI)
    if not path.is_file():
        pytest.skip(f"Xero's OpenAPI description is not at {path}")
    with path.open(encoding="utf-8") as handle:
        schemas = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))["components"]["schemas"]
    organisation = schemas["Organisation"]["properties"]
    return {
        "TaxType": set(schemas["TaxType"]["enum"]),
        "ReportTaxType": set(schemas["TaxRate"]["properties"]["ReportTaxType"]["enum"]),
        "Version": set(organisation["Version"]["enum"]),
        "CountryCode": set(schemas["CountryCode"]["enum"]),
        "CurrencyCode": set(schemas["CurrencyCode"]["enum"]),
        "TimeZone": set(schemas["TimeZone"]["enum"]),
        "SalesTaxBasis": set(organisation["SalesTaxBasis"]["enum"]),
        "SalesTaxPeriod": set(organisation["SalesTaxPeriod"]["enum"]),
    }


def listed(response: httpx.Response, resource: str) -> list[dict[str, Any]]:
    """The answer's objects, amounts read exactly as Decimal."""
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json(parse_float=Decimal)[resource]
    return items


def created(tenant: Tenant, resource: str, element: dict[str, Any]) -> dict[str, Any]:
    return listed(tenant.put(resource, element), resource)[0]


def regional(server: EmulatorServer, region: str) -> Tenant:
    return new_tenant(server, f"{region} Law Firm", region=region)


def refused(tenant: Tenant, resource: str, element: dict[str, Any]) -> list[str]:
    response = tenant.put(resource, element)
    assert response.status_code == 400, response.text
    return [e["Message"] for e in response.json()["Elements"][0]["ValidationErrors"]]


@pytest.mark.parametrize(("region", "country", "currency", "version", "timezone"), FACTS)
def test_the_organisation_answers_its_regions_facts(
    emulator: EmulatorServer, region: str, country: str, currency: str, version: str, timezone: str
) -> None:
    with regional(emulator, region).client as client:
        org = listed(client.get("/Organisation"), "Organisations")[0]
        assert (org["CountryCode"], org["BaseCurrency"], org["Version"], org["Timezone"]) == (
            country,
            currency,
            version,
            timezone,
        )
        assert org["TaxNumber"] == REGIONS[region].tax_number
        day, month = REGIONS[region].financial_year_end
        assert (org["FinancialYearEndDay"], org["FinancialYearEndMonth"]) == (day, month)
        banks = listed(client.get("/Accounts", params={"where": 'Type=="BANK"'}), "Accounts")
        assert sorted(a["Code"] for a in banks) == ["090", "091", "092", "093", "094"]
        assert {a["CurrencyCode"] for a in banks} == {currency}


@pytest.mark.parametrize("region", list(RATES))
def test_tax_rates_lists_the_regions_types_in_xeros_shape(emulator: EmulatorServer, region: str) -> None:
    with regional(emulator, region).client as client:
        rates = listed(client.get("/TaxRates"), "TaxRates")
    assert {r["TaxType"]: r["EffectiveRate"] for r in rates} == RATES[region]
    for rate in rates:
        assert rate["Status"] == "ACTIVE"
        assert rate["DisplayTaxRate"] == rate["EffectiveRate"]
        assert sum(c["Rate"] for c in rate["TaxComponents"]) == rate["EffectiveRate"]
        assert all(c["IsCompound"] is False and c["IsNonRecoverable"] is False for c in rate["TaxComponents"])
        assert all(isinstance(rate[flag], bool) for flag in CLASS_FLAG.values())


def test_tax_types_and_organisation_facts_are_values_of_xeros_enums() -> None:
    enums = xero_enums()
    for region in REGIONS.values():
        assert region.version in enums["Version"]
        assert region.country_code in enums["CountryCode"]
        assert region.timezone in enums["TimeZone"]
        assert region.sales_tax_basis in enums["SalesTaxBasis"]
        assert region.sales_tax_period in enums["SalesTaxPeriod"]
        assert region.currencies <= enums["CurrencyCode"]
        for rate in region.tax_rates:
            # A rate an organisation adds is TAX001, TAX002, ... (Xero's Types and Codes).
            assert rate.tax_type in enums["TaxType"] or re.fullmatch(r"TAX\d{3}", rate.tax_type), rate
            assert rate.report_tax_type in enums["ReportTaxType"], rate


@pytest.mark.parametrize("region", list(REGIONS))
def test_every_account_carries_a_tax_type_of_its_organisation(region: str) -> None:
    org = Organisation(f"{region} Law Firm", region)
    accounts = sorted(org.accounts.values(), key=lambda a: a["Code"])
    # The same codes in every region, so one account allocation works everywhere.
    assert [a["Code"] for a in accounts] == sorted(entry.code for entry in LAW_FIRM_LAYOUT)
    for account in accounts:
        rate = org.tax_rates.get(account["TaxType"])
        assert rate is not None, f"{region} {account['Code']} {account['TaxType']} is not a rate of the organisation"
        assert rate[CLASS_FLAG[account["Class"]]], f"{region} {account['Code']} cannot use {account['TaxType']}"
        if account["Type"] == "BANK":
            assert account["CurrencyCode"] == org.base_currency
    assert org.region.no_tax_type in org.tax_rates
    assert org.base_currency in org.currencies and len(org.currencies) >= 5


def test_each_region_names_its_chart() -> None:
    def names(region: str) -> dict[str, str]:
        return {a["Code"]: a["Name"] for a in Organisation("Firm", region).accounts.values()}

    assert (names("AU")["091"], names("AU")["820"]) == ("Trust Account", "GST")
    assert (names("NZ")["091"], names("NZ")["820"]) == ("Trust Account", "GST")
    assert (names("UK")["091"], names("UK")["820"]) == ("Client Account", "VAT")
    assert (names("US")["091"], names("US")["820"]) == ("IOLTA Trust Account", "Sales Tax Payable")
    assert (names("CA")["091"], names("CA")["820"]) == ("Mixed Trust Account", "GST/HST Payable")


@pytest.mark.parametrize(("region", "tax_type", "net", "tax"), STANDARD_SALES)
def test_a_sales_invoice_books_the_regions_rate_of_tax(
    emulator: EmulatorServer, region: str, tax_type: str, net: str, tax: str
) -> None:
    tenant = regional(emulator, region)
    with tenant.client:
        sale = created(tenant, "Invoices", invoice(net, LineItems=[line(net, "200", tax_type)]))
        assert (sale["LineItems"][0]["TaxType"], sale["TotalTax"]) == (tax_type, Decimal(tax))
        assert sale["Total"] == Decimal(net) + Decimal(tax)
        assert tenant.balance("820") == f"-{tax}"  # a credit on the region's tax account
        assert tenant.balance("610") == str(Decimal(net) + Decimal(tax))


@pytest.mark.parametrize(("region", "tax_type", "net", "tax"), STANDARD_PURCHASES)
def test_a_bill_takes_the_accounts_default_purchases_rate(
    emulator: EmulatorServer, region: str, tax_type: str, net: str, tax: str
) -> None:
    tenant = regional(emulator, region)
    with tenant.client:
        bill = invoice(net, kind="ACCPAY", LineItems=[line(net, "420", None)])  # no TaxType: the account's
        answer = created(tenant, "Invoices", bill)
        assert (answer["LineItems"][0]["TaxType"], answer["TotalTax"]) == (tax_type, Decimal(tax))


@pytest.mark.parametrize(("region", "account", "foreign", "own"), FOREIGN)
def test_a_tax_type_of_another_region_is_refused(
    emulator: EmulatorServer, region: str, account: str, foreign: str, own: str
) -> None:
    tenant = regional(emulator, region)
    with tenant.client:
        messages = refused(tenant, "Invoices", invoice(LineItems=[line("100.00", account, foreign)]))
        assert messages == [
            f"The TaxType code '{foreign}' does not exist or cannot be used for this type of transaction."
        ]
        assert tenant.ledger()["accounts"] == []
        answer = tenant.create("Invoices", invoice(LineItems=[line("100.00", account, own)]))
        assert answer["LineItems"][0]["TaxType"] == own


def test_australia_maps_the_retired_no_gst_code_as_xero_does(tenant: Tenant) -> None:
    """NONE and EXEMPTINPUT were retired for Australia in 2013; Xero books them as GST Free Expenses on
    expense accounts and BAS Excluded elsewhere."""
    bill = created(tenant, "Invoices", invoice(kind="ACCPAY", LineItems=[line("50.00", "420", "NONE")]))
    assert (bill["LineItems"][0]["TaxType"], bill["TotalTax"]) == ("EXEMPTEXPENSES", 0)
    sale = tenant.create(
        "Invoices", invoice(LineItems=[line("50.00", "200", "NONE"), line("5.00", "270", "EXEMPTINPUT")])
    )
    assert [item["TaxType"] for item in sale["LineItems"]] == ["BASEXCLUDED", "BASEXCLUDED"]


def test_an_overpayment_line_takes_the_regions_no_tax_type(emulator: EmulatorServer) -> None:
    tenant = regional(emulator, "NZ")
    with tenant.client:
        body = {
            "Type": "RECEIVE-OVERPAYMENT",
            "Contact": {"Name": "Aroha Client"},
            "BankAccount": {"Code": "090"},
            "Date": "2026-07-01",
            "LineAmountTypes": "NoTax",
            "LineItems": [{"Description": "Overpaid", "LineAmount": Decimal("40.00")}],
        }
        answer = tenant.create("BankTransactions", body)
        assert answer["CurrencyCode"] == "NZD"
        assert [item["TaxType"] for item in answer["LineItems"]] == ["NONE"]


def test_a_line_with_no_tax_type_anywhere_takes_the_regions_no_tax_type(emulator: EmulatorServer) -> None:
    tenant = regional(emulator, "UK")
    with tenant.client:
        money_on_account = emulator.state.organisation(tenant.tenant_id).account_by_code("880")
        assert money_on_account is not None
        money_on_account["TaxType"] = ""  # an account with no default tax type
        journal = {
            "Narration": "Money on account moved",
            "Date": "2026-07-01",
            "Status": "POSTED",
            "JournalLines": [
                {"LineAmount": Decimal("10.00"), "AccountCode": "880"},
                {"LineAmount": Decimal("-10.00"), "AccountCode": "850"},
            ],
        }
        answer = tenant.create("ManualJournals", journal)
        assert [jl["TaxType"] for jl in answer["JournalLines"]] == ["NONE", "NONE"]


def test_admin_creates_and_lists_organisations_by_region(emulator: EmulatorServer) -> None:
    admin = f"{emulator.base_url}/emulator/organisations"
    kiwi = httpx.post(admin, json={"name": "Kiwi Legal", "region": "NZ"})
    assert kiwi.status_code == 201, kiwi.text
    assert kiwi.json()["region"] == "NZ"
    default = httpx.post(admin, json={"name": "Sydney Legal"}).json()
    assert default["region"] == "AU"
    listing = {o["tenant_id"]: o["region"] for o in httpx.get(admin).json()["organisations"]}
    assert listing == {kiwi.json()["tenant_id"]: "NZ", default["tenant_id"]: "AU"}
    organisation = httpx.get(f"{admin}/{kiwi.json()['tenant_id']}").json()["organisation"]
    assert (organisation["CountryCode"], organisation["BaseCurrency"]) == ("NZ", "NZD")
    unknown = httpx.post(admin, json={"name": "Paris Avocats", "region": "FR"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "region must be one of AU, NZ, UK, US, CA (not 'FR')"


def test_an_unknown_region_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="region must be one of AU, NZ, UK, US, CA"):
        Organisation("Firm", "GB")


def test_a_bank_transaction_line_takes_only_its_rates_tax_but_an_invoice_line_keeps_its_own(
    emulator: EmulatorServer,
) -> None:
    """Xero keeps a custom TaxAmount on an invoice line and refuses one on a bank transaction line
    (XeroAPI/xero-node#768: "Tax amount 52.23 is incorrect for INPUT2 tax type, should be 52.28")."""
    tenant = regional(emulator, "NZ")
    item = {"Description": "Toner", "LineAmount": Decimal("348.50"), "AccountCode": "420", "TaxType": "INPUT2"}
    spend = {
        "Type": "SPEND",
        "Contact": {"Name": "Printer Supplies Ltd"},
        "BankAccount": {"Code": "090"},
        "Date": "2026-07-01",
        "LineAmountTypes": "Exclusive",
        "LineItems": [{**item, "TaxAmount": Decimal("52.23")}],
    }
    with tenant.client:
        assert refused(tenant, "BankTransactions", spend) == [
            "Tax amount 52.23 is incorrect for INPUT2 tax type, should be 52.28"
        ]
        assert tenant.ledger()["accounts"] == []
        spend["LineItems"] = [{**item, "TaxAmount": Decimal("52.28")}]
        assert created(tenant, "BankTransactions", spend)["TotalTax"] == Decimal("52.28")
        bill = invoice(kind="ACCPAY", LineItems=[{**item, "TaxAmount": Decimal("52.23")}])
        assert created(tenant, "Invoices", bill)["TotalTax"] == Decimal("52.23")
