"""An organisation of every region Actionstep serves, connected through ConnectOrganisation and
posted to over real gRPC and HTTP, on SQLite and PostgreSQL: the poster reads the organisation's
country and tax rates, fills the tax types for lines without a tax code with that country's
default, and every supported kind posts with the organisation's own tax types. A tax type of
another country is named before anything reaches Xero."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from xero_emulator import EmulatorServer
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import backfill_pb2, connection_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.type.v1 import money_pb2
from xerolink_cli.connections import register_emulated_connection
from xerolink_cli.firm_month.localise import localise, localise_all
from xerolink_cli.firm_month.regions import REGIONS, FirmRegion
from xerolink_mapper import samples
from xerolink_poster.adapters import xero_identity

from tests.fixtures.poster import EmulatorFactory, wait_for, xero_objects
from tests.integration.connection_helpers import PosterMaker, connect_request, details_of, posters, stub, write_apps

# What a connection to each country's organisation gets for (trust money, interest on trust, a
# journal line without a tax code) when the caller leaves them empty (docs/regions.md).
EXPECTED_UNTAXED = {
    "AU": ("BASEXCLUDED", "EXEMPTOUTPUT", "BASEXCLUDED"),
    "NZ": ("NONE", "NONE", "NONE"),
    "UK": ("NONE", "EXEMPTOUTPUT", "NONE"),
    "US": ("NONE", "NONE", "NONE"),
    "CA": ("NONE", "NONE", "NONE"),
}
COUNTRY = {"AU": "AU", "NZ": "NZ", "UK": "GB", "US": "US", "CA": "CA"}
SETTLED = (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED)


@pytest.fixture
def emulator(emulator_factory: EmulatorFactory) -> EmulatorServer:
    return emulator_factory()


@pytest.fixture
def region_poster(database_url: str, mapper_target: str) -> Iterator[PosterMaker]:
    with posters(database_url, mapper_target) as make:
        yield make


def _context(region: FirmRegion) -> mapper_pb2.MappingContext:
    """A new connection of the region's firm: its tax maps, and no tax types for lines without a
    code (the caller does not know the organisation's)."""
    context = samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED, with_chart=False)
    sales, purchases = region.tax_maps()
    context.tax_code_map.clear()
    context.tax_code_map.update(sales)
    context.purchase_tax_code_map.clear()
    context.purchase_tax_code_map.update(purchases)
    context.ClearField("untaxed_line_tax_types")
    context.base_currency_code = region.currency
    return context


def _connect(
    emulator: EmulatorServer, make: PosterMaker, tmp_path: Path, region: str, context: mapper_pb2.MappingContext
) -> tuple[Any, dict[str, Any], connection_pb2.ConnectionStatus]:
    org = emulator.create_organisation(f"{region} Legal", region=region)
    poster = stub(make(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    request = connect_request("firm-1", org["authorization_code"], emulator)
    request.mapping_context.CopyFrom(context)
    return poster, org, poster.ConnectOrganisation(request).status


# The documents a settlement kind's sample settles. The samples of one base id are each valid but
# settle the same documents, so each kind is posted with its own copies of them.
_SETTLES = {
    "client_bill_payment": ("client_bill",),
    "credit_note": ("client_bill",),
    "credit_note_application": ("client_bill", "credit_note"),
    "credit_note_refund": ("client_bill", "credit_note"),
    "invoice_paid_from_trust": ("client_bill",),
    "supplier_invoice_payment": ("supplier_invoice",),
    "supplier_credit": ("supplier_invoice",),
    "supplier_credit_application": ("supplier_invoice", "supplier_credit"),
}


def _every_kind(firm: FirmRegion) -> list[Any]:
    """Every sample kind once in the region's money, with its own copies of the documents it
    settles (settlements fitted to their documents' totals at the region's rate)."""
    kinds = sorted(samples.sample_transactions(0))
    transactions = []
    for index, kind in enumerate(kinds):
        own = samples.sample_transactions(10_000 + 100 * index)
        transactions += [own[document] for document in _SETTLES.get(kind, ())] + [own[kind]]
    return localise_all(transactions, firm)


def _links(poster: Any) -> list[poster_pb2.Link]:
    return list(poster.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", page_size=500)).links)


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_each_regions_organisation_connects_with_its_own_tax_types_and_takes_every_supported_kind(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path, region: str
) -> None:
    firm = REGIONS[region]
    poster, org, status = _connect(emulator, region_poster, tmp_path, region, _context(firm))
    organisation = emulator.state.organisation(org["tenant_id"])

    assert status.organisation.country_code == COUNTRY[region]
    assert status.organisation.base_currency_code == firm.currency
    assert status.organisation.tax_rate_count == len(organisation.tax_rates)
    assert [w.code for w in status.warnings] == []
    stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    untaxed = stored.mapping_context.untaxed_line_tax_types
    assert (untaxed.trust_money, untaxed.interest_on_trust, untaxed.journal_without_tax_code) == (
        EXPECTED_UNTAXED[region]
    )
    assert {r.tax_type for r in stored.mapping_context.tax_rates} == set(organisation.tax_rates)

    transactions = _every_kind(firm)
    results = poster.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=transactions), timeout=60
    ).results
    refused = [(r.index, r.error.message) for r in results if r.WhichOneof("outcome") != "posting"]
    assert not refused
    supported = sum(r.posting.decision.supported for r in results)
    assert supported >= 20  # every kind the extended profile posts

    wait_for(lambda: len(_links(poster)) == supported and all(x.state in SETTLED for x in _links(poster)), 60)
    failed = [(x.name, x.last_error.message) for x in _links(poster) if x.state != poster_pb2.LINK_STATE_LINKED]
    assert not failed

    trust_money, interest, journal = EXPECTED_UNTAXED[region]
    banked = xero_objects(emulator, org["tenant_id"], "BankTransactions")
    trust_lines = {
        line["TaxType"]
        for tx in banked
        if tx["BankAccount"]["Code"] == samples.DEMO_ALLOCATION["trust_bank"]
        for line in tx["LineItems"]
        if line.get("AccountCode") == samples.DEMO_ALLOCATION["trust_liability"]
    }
    interest_lines = {
        line["TaxType"]
        for tx in banked
        for line in tx["LineItems"]
        if line.get("AccountCode") == samples.DEMO_ALLOCATION["trust_interest"]
    }
    assert (trust_lines, interest_lines) == ({trust_money}, {interest})
    journals = xero_objects(emulator, org["tenant_id"], "ManualJournals")
    assert {line["TaxType"] for j in journals for line in j["JournalLines"]} <= {trust_money, journal}
    assert emulator.ledger(org["tenant_id"])["balanced"]


def test_another_countrys_tax_types_are_named_at_connect_and_refused_before_reaching_xero(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    australian = _context(REGIONS["AU"])
    australian.base_currency_code = "NZD"
    australian.untaxed_line_tax_types.trust_money = "BASEXCLUDED"
    poster, org, status = _connect(emulator, region_poster, tmp_path, "NZ", australian)

    warned = {w.code: w.message for w in status.warnings}
    assert set(warned) == {"TAX_TYPE_NOT_IN_ORGANISATION"}
    named = [w.message.split(" is ")[0] for w in status.warnings]
    assert named == [
        "tax_code_map[FRE]",
        "tax_code_map[GST]",
        "purchase_tax_code_map[FRE]",
        "purchase_tax_code_map[GST]",
        "untaxed_line_tax_types.trust_money",
    ]
    # The caller's own choice stands (even a wrong one); the empty ones get New Zealand's default.
    stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert stored.mapping_context.untaxed_line_tax_types.trust_money == "BASEXCLUDED"
    assert stored.mapping_context.untaxed_line_tax_types.interest_on_trust == "NONE"

    preflight = poster.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-1", division_ids=[1]))
    [tax] = [c for c in preflight.checks if c.check == "TAX_TYPES"]
    assert tax.status == backfill_pb2.PREFLIGHT_STATUS_FAIL
    assert "tax_code_map[GST] is OUTPUT" in tax.message and "(NZ)" in tax.message
    assert not preflight.ready

    bill = localise(samples.client_bill(7001), REGIONS["NZ"])
    for line in bill.client_bill.lines:  # the Australian codes the connection maps
        line.tax_code = "GST" if line.tax.units else "FRE"
    with pytest.raises(grpc.RpcError) as refused:
        poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    violations = [v for d in details_of(refused.value, error_details_pb2.PreconditionFailure) for v in d.violations]
    assert ("TAX_TYPE_NOT_IN_ORGANISATION", "OUTPUT") in {(v.type, v.subject) for v in violations}
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []


def test_a_rate_archived_in_xero_is_refused_once_the_chart_and_rates_are_read_again(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    poster, org, status = _connect(emulator, region_poster, tmp_path, "NZ", _context(REGIONS["NZ"]))
    assert [w.code for w in status.warnings] == []
    rate = emulator.state.organisation(org["tenant_id"]).tax_rates["OUTPUT2"]
    rate["Status"] = "ARCHIVED"  # a bookkeeper archives 15% GST on Income in Xero

    poster.GetAllocationDiscrepancies(
        connection_pb2.GetAllocationDiscrepanciesRequest(connection_id="firm-1", refresh_chart=True)
    )

    stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert {r.tax_type: r.status for r in stored.mapping_context.tax_rates}["OUTPUT2"] == "ARCHIVED"
    bill = localise(samples.client_bill(7101), REGIONS["NZ"])
    with pytest.raises(grpc.RpcError) as refused:
        poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    violations = [v for d in details_of(refused.value, error_details_pb2.PreconditionFailure) for v in d.violations]
    assert [(v.type, v.subject) for v in violations] == [("TAX_TYPE_NOT_IN_ORGANISATION", "OUTPUT2")]
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []


def test_remapping_the_tax_types_mends_a_connection_made_with_another_countrys(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    australian = _context(REGIONS["AU"])
    australian.base_currency_code = "NZD"
    poster, org, status = _connect(emulator, region_poster, tmp_path, "NZ", australian)
    assert len(status.warnings) == 4  # the four map entries; the untaxed ones got New Zealand's defaults

    wrong = connection_pb2.RemapTaxTypesRequest(connection_id="firm-1", tax_code_map={"GST": "OUTPUT", "ZER": "NONE"})
    with pytest.raises(grpc.RpcError) as refused:
        poster.RemapTaxTypes(wrong)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [v.field for d in details_of(refused.value, error_details_pb2.BadRequest) for v in d.field_violations]
    assert fields == ["tax_code_map[GST]"]
    with pytest.raises(grpc.RpcError) as empty:
        poster.RemapTaxTypes(connection_pb2.RemapTaxTypesRequest(connection_id="firm-1"))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    request = connection_pb2.RemapTaxTypesRequest(
        connection_id="firm-1",
        tax_code_map={"GST": "OUTPUT2", "FRE": "ZERORATED"},
        purchase_tax_code_map={"GST": "INPUT2", "FRE": "NONE"},
        validate_only=True,
    )
    preview = poster.RemapTaxTypes(request)
    assert dict(preview.tax_code_map) == {"GST": "OUTPUT2", "FRE": "ZERORATED"} and list(preview.problems) == []
    unchanged = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert dict(unchanged.mapping_context.tax_code_map) == {"GST": "OUTPUT", "FRE": "EXEMPTOUTPUT"}

    request.validate_only = False
    assert list(poster.RemapTaxTypes(request).problems) == []
    mended = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert [w.code for w in mended.status.warnings] == []
    preflight = poster.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-1", division_ids=[1]))
    assert [c.status for c in preflight.checks if c.check == "TAX_TYPES"] == [backfill_pb2.PREFLIGHT_STATUS_PASS]

    bill = localise(samples.client_bill(7201), REGIONS["NZ"])
    for line in bill.client_bill.lines:  # the connection still maps the firm's Australian codes
        line.tax_code = "GST" if line.tax.units else "FRE"
    posting = poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    wait_for(lambda: all(x.state == poster_pb2.LINK_STATE_LINKED for x in _links(poster)) and bool(_links(poster)))
    assert posting.posting.decision.supported
    [invoice] = xero_objects(emulator, org["tenant_id"], "Invoices")
    assert {line["TaxType"] for line in invoice["LineItems"]} <= {"OUTPUT2", "ZERORATED"}


def test_a_connection_registered_without_xero_facts_is_checked_for_what_it_leaves_unset(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    """CreateConnection reads nothing from Xero: the tax types cannot be checked, but untaxed ones
    left empty fail preflight instead of refusing every trust kind later, and malformed rates are
    refused outright."""
    poster = stub(region_poster(tmp_path / "no-apps.json"))
    org = emulator.create_organisation("NZ Legal", region="NZ")
    context = _context(REGIONS["NZ"])
    register_emulated_connection(poster, "firm-1", emulator.base_url, org, context)

    preflight = poster.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-1", division_ids=[1]))
    [tax] = [c for c in preflight.checks if c.check == "TAX_TYPES"]
    assert tax.status == backfill_pb2.PREFLIGHT_STATUS_FAIL and not preflight.ready
    assert "untaxed_line_tax_types.trust_money is not set" in tax.message
    trust = localise(samples.sample_transactions(7300)["trust_receipt"], REGIONS["NZ"])
    with pytest.raises(grpc.RpcError) as refused:
        poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=trust))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    for rates in ([mapper_pb2.TaxRate(name="no type")], [mapper_pb2.TaxRate(tax_type="NONE")] * 2):
        broken = _context(REGIONS["NZ"])
        broken.tax_rates.extend(rates)
        with pytest.raises(grpc.RpcError) as invalid:
            register_emulated_connection(poster, "firm-2", emulator.base_url, org, broken)
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        fields = [v.field for d in details_of(invalid.value, error_details_pb2.BadRequest) for v in d.field_violations]
        assert fields == [f"connection.mapping_context.tax_rates[{len(rates) - 1}].tax_type"]
    spaced = _context(REGIONS["NZ"])
    spaced.untaxed_line_tax_types.trust_money = " "
    with pytest.raises(grpc.RpcError) as invalid:
        register_emulated_connection(poster, "firm-3", emulator.base_url, org, spaced)
    fields = [v.field for d in details_of(invalid.value, error_details_pb2.BadRequest) for v in d.field_violations]
    assert fields == ["connection.mapping_context.untaxed_line_tax_types.trust_money"]


def test_a_replacement_organisation_in_another_country_gets_that_countrys_defaults(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    """The firm first connected the wrong file (New Zealand) and moves to its UK one: the untaxed tax
    types xerolink filled for New Zealand give way to the UK's, and what no longer fits is named."""
    context = _context(REGIONS["NZ"])
    context.untaxed_line_tax_types.interest_on_trust = "NONE"  # equal to New Zealand's default: it gives way
    poster, org, _ = _connect(emulator, region_poster, tmp_path, "NZ", context)
    replacement = emulator.create_organisation("UK Legal", region="UK", client_id=org["client_id"])

    answer = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
        )
    )

    assert answer.replaced_organisation and answer.status.organisation.country_code == "GB"
    stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    untaxed = stored.mapping_context.untaxed_line_tax_types
    assert (untaxed.trust_money, untaxed.interest_on_trust, untaxed.journal_without_tax_code) == (
        "NONE",
        "EXEMPTOUTPUT",
        "NONE",
    )
    # OUTPUT2 and INPUT2 are 15 % GST in New Zealand and 20 % VAT in the UK: those entries are
    # cleared until mapped again; ZERORATED is not a UK rate; NONE is 0 % in both and stays.
    warnings = sorted((w.code, w.message.split(" ")[0]) for w in answer.status.warnings)
    assert warnings == [
        ("BASE_CURRENCY_DIFFERS", "the"),
        ("TAX_CODE_NOT_MAPPED", "purchase_tax_code_map[GST]"),
        ("TAX_CODE_NOT_MAPPED", "tax_code_map[GST]"),
        ("TAX_RATE_CHANGED", "purchase_tax_code_map[GST]"),
        ("TAX_RATE_CHANGED", "tax_code_map[GST]"),
        ("TAX_TYPE_NOT_IN_ORGANISATION", "tax_code_map[ZER]"),
    ]
    assert any("(15 %)" in w.message and "(20 %)" in w.message for w in answer.status.warnings)
    assert dict(stored.mapping_context.tax_code_map)["GST"] == ""

    bill = localise(samples.client_bill(7401), REGIONS["UK"])
    for line in bill.client_bill.lines:  # the firm's codes, which the connection maps
        line.tax_code = "GST" if line.tax.units else "ZER"
    with pytest.raises(grpc.RpcError) as refused:
        poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    violations = [v for d in details_of(refused.value, error_details_pb2.PreconditionFailure) for v in d.violations]
    assert ("TAX_CODE_NOT_MAPPED", "GST") in {(v.type, v.subject) for v in violations}, refused.value.details()
    assert xero_objects(emulator, replacement["tenant_id"], "Invoices") == []

    # Connecting the same organisation again keeps saying why a setting waits.
    again = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=emulator.state.identity.issue_code(emulator.state.identity.apps[org["client_id"]]),
            xero_tenant_id=replacement["tenant_id"],
        )
    )
    assert not again.replaced_organisation
    assert sorted(w.message.split(" ")[0] for w in again.status.warnings if w.code == "TAX_RATE_CHANGED") == [
        "purchase_tax_code_map[GST]",
        "tax_code_map[GST]",
    ]

    poster.RemapTaxTypes(connection_pb2.RemapTaxTypesRequest(connection_id="firm-1", tax_code_map={"GST": "OUTPUT2"}))
    after = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection.status
    remaining = sorted((w.code, w.message.split(" ")[0]) for w in after.warnings)
    assert ("TAX_RATE_CHANGED", "tax_code_map[GST]") not in remaining
    assert ("TAX_RATE_CHANGED", "purchase_tax_code_map[GST]") in remaining


def test_a_tax_type_xero_does_not_allow_on_an_expense_account_is_refused_before_xero(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    """New Zealand's Zero Rated does not apply to expenses (its CanApplyToExpenses is false): a firm
    that maps its zero-rated purchases to it is refused by the mapper, not by Xero after queueing."""
    context = _context(REGIONS["NZ"])
    context.purchase_tax_code_map["ZER"] = "ZERORATED"
    poster, org, _ = _connect(emulator, region_poster, tmp_path, "NZ", context)
    stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert {r.tax_type: list(r.account_classes) for r in stored.mapping_context.tax_rates}["ZERORATED"] == [
        "LIABILITY",
        "REVENUE",
    ]
    assert {a.code: a.account_class for a in stored.mapping_context.chart}["420"] == "EXPENSE"

    bill = localise(samples.sample_transactions(7500)["supplier_invoice"], REGIONS["NZ"])
    bill.supplier_invoice.lines[0].tax_code = "ZER"
    bill.supplier_invoice.lines[0].tax.units = 0
    lines = bill.supplier_invoice.lines
    totals = bill.supplier_invoice.totals
    totals.tax.units = sum(line.tax.units for line in lines)
    totals.inclusive.units = totals.exclusive.units + totals.tax.units
    with pytest.raises(grpc.RpcError) as refused:
        poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    violations = [v for d in details_of(refused.value, error_details_pb2.PreconditionFailure) for v in d.violations]
    assert [(v.type, v.subject) for v in violations] == [("TAX_TYPE_NOT_FOR_ACCOUNT", "ZERORATED")]
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []


def test_a_bank_deposit_of_lines_each_rounded_reaches_xero_line_by_line(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    """Two deposit lines of 10.03 at 15 % GST carry 1.50 each; summed, 3.00 is not 15 % of 20.06
    (3.01), which Xero refuses on a bank transaction. Each line goes as it is, its amount with its
    tax included (Inclusive), from which Xero's tax is Actionstep's 1.50."""
    poster, org, _ = _connect(emulator, region_poster, tmp_path, "NZ", _context(REGIONS["NZ"]))
    deposit = localise(samples.sample_transactions(7600)["bank_deposit"], REGIONS["NZ"])
    del deposit.bank_deposit.lines[:]
    for text in ("Sublease rent, March", "Sublease rent, April"):
        line = deposit.bank_deposit.lines.add(description=text, quantity="1", unit_price="10.03", gl_account="200")
        line.tax_code = "GST"
        line.amount.CopyFrom(money_pb2.Money(currency_code="NZD", units=1003))
        line.tax.CopyFrom(money_pb2.Money(currency_code="NZD", units=150))
    totals = deposit.bank_deposit.totals
    totals.exclusive.units, totals.tax.units, totals.inclusive.units = 2006, 300, 2306

    poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=deposit))

    wait_for(lambda: bool(_links(poster)) and all(x.state in SETTLED for x in _links(poster)))
    assert [x.state for x in _links(poster)] == [poster_pb2.LINK_STATE_LINKED], _links(poster)
    [banked] = xero_objects(emulator, org["tenant_id"], "BankTransactions")
    assert banked["LineAmountTypes"] == "Inclusive"
    assert [(line["LineAmount"], line["TaxAmount"]) for line in banked["LineItems"]] == [
        (Decimal("11.53"), Decimal("1.50")),
        (Decimal("11.53"), Decimal("1.50")),
    ]
    assert (banked["SubTotal"], banked["TotalTax"], banked["Total"]) == (
        Decimal("20.06"),
        Decimal("3.00"),
        Decimal("23.06"),
    )


def test_a_replacement_for_a_connection_whose_rates_were_never_read_holds_every_rate_setting(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    """Registered with CreateConnection for an Ontario file (TAX001 = HST 13 %), then connected to
    another Canadian file where TAX001 is GST 5 %: nothing shows the settings mean the same rates."""
    org = emulator.create_organisation("CA Legal (Ontario)", region="CA")
    poster = stub(region_poster(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    context = _context(REGIONS["CA"])
    context.untaxed_line_tax_types.CopyFrom(mapper_pb2.UntaxedLineTaxTypes(**REGIONS["CA"].untaxed()))
    register_emulated_connection(poster, "firm-1", emulator.base_url, org, context)
    replacement = emulator.create_organisation("CA Legal (Alberta)", region="CA", client_id=org["client_id"])
    emulator.state.organisation(replacement["tenant_id"]).tax_rates["TAX001"].update(
        Name="GST on Sales (AB)", EffectiveRate=Decimal("5"), DisplayTaxRate=Decimal("5")
    )

    answer = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
        )
    )

    held = sorted(w.message.split(" ")[0] for w in answer.status.warnings if w.code == "TAX_RATE_CHANGED")
    assert "tax_code_map[HST]" in held and "purchase_tax_code_map[HST]" in held
    assert all("never read" in w.message for w in answer.status.warnings if w.code == "TAX_RATE_CHANGED")
    bill = localise(samples.client_bill(7701), REGIONS["CA"])
    with pytest.raises(grpc.RpcError) as refused:
        poster.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert xero_objects(emulator, replacement["tenant_id"], "Invoices") == []


def test_remaps_at_the_same_time_keep_each_others_changes(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    """Each RemapTaxTypes changes its own settings of the stored context under the row's lock: two
    at once lose neither (before the lock, the second write on PostgreSQL overwrote the first)."""
    poster, _, _ = _connect(emulator, region_poster, tmp_path, "NZ", _context(REGIONS["NZ"]))
    for round_ in range(8):
        code = f"C{round_}"
        requests = [
            connection_pb2.RemapTaxTypesRequest(connection_id="firm-1", tax_code_map={code: "OUTPUT2"}),
            connection_pb2.RemapTaxTypesRequest(connection_id="firm-1", purchase_tax_code_map={code: "INPUT2"}),
        ]
        threads = [threading.Thread(target=poster.RemapTaxTypes, args=(r,)) for r in requests]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
        context = stored.mapping_context
        assert (context.tax_code_map.get(code), context.purchase_tax_code_map.get(code)) == ("OUTPUT2", "INPUT2")


def test_a_chart_refresh_overtaken_by_a_replacement_organisation_writes_nothing(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh reads the chart and rates of the organisation the connection had; a replacement
    connected while it waits on Xero must not get them."""
    poster, org, _ = _connect(emulator, region_poster, tmp_path, "NZ", _context(REGIONS["NZ"]))
    replacement = emulator.create_organisation("UK Legal", region="UK", client_id=org["client_id"])
    read = xero_identity.XeroIdentity.tax_rates
    waiting, go_on = threading.Event(), threading.Event()

    def slow_for_the_old_organisation(self: Any, base_url: str, token: str, tenant_id: str) -> list[dict[str, Any]]:
        rates = read(self, base_url, token, tenant_id)
        if tenant_id.lower() == org["tenant_id"].lower():  # the refresh's read, held until the move
            waiting.set()
            go_on.wait(10)
        return rates

    monkeypatch.setattr(xero_identity.XeroIdentity, "tax_rates", slow_for_the_old_organisation)
    outcome: list[grpc.StatusCode | None] = []

    def refresh() -> None:
        request = connection_pb2.GetAllocationDiscrepanciesRequest(connection_id="firm-1", refresh_chart=True)
        try:
            poster.GetAllocationDiscrepancies(request, timeout=30)
            outcome.append(None)
        except grpc.RpcError as err:
            outcome.append(err.code())

    refreshing = threading.Thread(target=refresh)
    refreshing.start()
    assert waiting.wait(10)
    poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
        )
    )
    go_on.set()
    refreshing.join(30)

    assert outcome == [grpc.StatusCode.UNAVAILABLE]  # told to retry, nothing written
    stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert {r.tax_type for r in stored.mapping_context.tax_rates} == set(
        emulator.state.organisation(replacement["tenant_id"]).tax_rates
    )


def test_a_held_setting_stays_held_through_a_chart_refresh(
    emulator: EmulatorServer, region_poster: PosterMaker, tmp_path: Path
) -> None:
    org = emulator.create_organisation("CA Legal (Ontario)", region="CA")
    poster = stub(region_poster(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    context = _context(REGIONS["CA"])
    context.untaxed_line_tax_types.CopyFrom(mapper_pb2.UntaxedLineTaxTypes(**REGIONS["CA"].untaxed()))
    register_emulated_connection(poster, "firm-1", emulator.base_url, org, context)
    replacement = emulator.create_organisation("CA Legal (Alberta)", region="CA", client_id=org["client_id"])
    poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
        )
    )

    poster.GetAllocationDiscrepancies(
        connection_pb2.GetAllocationDiscrepanciesRequest(connection_id="firm-1", refresh_chart=True)
    )

    stored = poster.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert stored.mapping_context.untaxed_line_tax_types.trust_money == ""
    held = [w.message.split(" ")[0] for w in stored.status.warnings if w.code == "TAX_RATE_CHANGED"]
    assert "untaxed_line_tax_types.trust_money" in held
