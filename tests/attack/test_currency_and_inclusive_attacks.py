"""Attacks on three changes, from outside: foreign bank and trust kinds refused and rates Xero cannot
keep refused (mapper: decisions.in_base_currency_only, validation.check_rate); bank deposits and
withdrawals sent tax-inclusive (mapper: banking._tax_inclusive, mapping_job.bank_transaction); a
payment or allocation in another currency than its document rejected before it is sent (poster:
dispatch/preparing._in_other_currencies). Real mapper and poster, the emulator over HTTP, SQLite.

Xero's published contract outranks the emulator: ../shared/xero-openapi/xero_accounting.yaml
(components.schemas.<Schema>.<Field>) and ../shared/NOTES.md. "DEFECT:" tests fail now and say
what the accountant loses; "GUARD:" tests hold."""

from __future__ import annotations

import dataclasses
import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import backfill_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_cli.firm_month.regions import REGIONS
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_mapper.adapters.proto_in import context_from_proto, transaction_from_proto
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import Ledgers, MappingContext, Transaction
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.xero import BankTransaction, Invoice, LineAmountTypes, Payment
from xerolink_poster.domain import preflight

from tests.attack.test_backfill_attacks import _dated, _finish, _payment, _start
from tests.attack.test_drift_attacks import Firm, differing
from tests.attack.test_xero_totals_attacks import EXTENDED, _by, _in_usd, _invoice, _linked, _moneys, _settle
from tests.fixtures.poster import PosterFactory, connect, stub_for, xero_objects
from tests.fixtures.routing import post_or_refusal
from tests.integration.test_organisation_routing import pair  # noqa: F401 - the fixture

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
LINKED, FAILED = poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED
NOT_REPRESENTABLE = "FOREIGN_CURRENCY_NOT_REPRESENTABLE"
RATE_PATH = "transaction.header.currency_rate"
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL


# -- helpers -------------------------------------------------------------------------------------


def _domain(tx: transaction_pb2.Transaction, ledgers: Ledgers = Ledgers.OFFICE_AND_TRUST) -> tuple[Any, Any]:
    """The mapper's domain transaction and extended-profile context for a sample."""
    problems = Problems()
    domain_tx = transaction_from_proto(tx, problems)
    ctx = context_from_proto(samples.demo_context(EXTENDED), problems)
    assert domain_tx is not None and not problems, problems.fields
    return domain_tx, dataclasses.replace(ctx, ledgers=ledgers)


def _map(tx: Transaction, ctx: MappingContext) -> Any:
    return map_transaction(tx, ctx)


def _refusal(tx: Transaction, ctx: MappingContext) -> XerolinkError:
    with pytest.raises(XerolinkError) as raised:
        map_transaction(tx, ctx)
    return raised.value


def _half_away(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _deposit(record_id: int, lines: list[common_pb2.Line]) -> transaction_pb2.Transaction:
    tx = samples.sample_transactions(record_id)["bank_deposit"]
    del tx.bank_deposit.lines[:]
    tx.bank_deposit.lines.extend(lines)
    tx.bank_deposit.totals.CopyFrom(samples.totals(lines))
    return tx


# -- 1. mapper: rates Xero keeps, rates it cannot ---------------------------------------------------


@pytest.mark.parametrize("rate", ["0.6500000", "1", "1.0000000", "0.654321", "0.65" + "0" * 200])
def test_a_rate_of_six_significant_decimals_or_fewer_reaches_xero_as_actionstep_recorded_it(rate: str) -> None:
    """GUARD: Xero keeps six decimals of a rate ("max length = [18].[6]":
    components.schemas.Invoice.CurrencyRate). Trailing zeros carry no decimal Xero would round,
    so "0.6500000" (Actionstep's seven-place form of 0.65), "1" and a long run of zeros are taken
    as sent and the USD bill is supported with that rate."""
    tx, ctx = _domain(_in_usd(samples.client_bill(4201), rate))
    outcome = _map(tx, ctx)
    assert outcome.decision.supported, outcome.decision
    [op] = outcome.operations
    assert isinstance(op.body, Invoice) and op.body.currency_rate == rate
    assert Decimal(op.body.currency_rate) == Decimal(rate)


@pytest.mark.parametrize("rate", ["0.6543215", "0.0000001", "1.00000010", "0." + "3" * 100_000])
def test_a_rate_with_a_seventh_significant_decimal_is_refused_naming_the_field(rate: str) -> None:
    """GUARD: a rate Xero would round to six places (components.schemas.Invoice.CurrencyRate,
    [18].[6]) would book other base-currency amounts than Actionstep's: refused INVALID_ARGUMENT
    on transaction.header.currency_rate, however long the text."""
    tx, ctx = _domain(_in_usd(samples.client_bill(4202), rate))
    err = _refusal(tx, ctx)
    assert err.code is ErrorCode.INVALID_ARGUMENT
    assert [v.field for v in err.field_violations] == [RATE_PATH]


@SQLITE
def test_a_huge_rate_comes_back_through_the_poster_as_a_bounded_field_violation(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: a 100,000-digit rate posted through PostTransaction is answered INVALID_ARGUMENT
    naming transaction.header.currency_rate (gRPC refuses trailers over 16 KiB: an echo of the
    whole rate would reach the caller as RESOURCE_EXHAUSTED with no field), and nothing reaches Xero."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, "firm-1", samples.demo_context(EXTENDED))
    answer = post_or_refusal(stub, "firm-1", _in_usd(samples.client_bill(4203), "0." + "7" * 100_000))
    assert isinstance(answer, grpc.RpcError), answer
    assert answer.code() == grpc.StatusCode.INVALID_ARGUMENT, answer.details()
    assert [v.field for v in from_rpc_error(answer).field_violations] == [RATE_PATH]
    assert len(answer.details() or "") < 2_000
    assert xero_objects(emulator, org["tenant_id"], "Invoices") == []


# -- 2. mapper: foreign bank and trust kinds ----------------------------------------------------------

_BASE_ONLY = ["trust_receipt", "trust_payment", "trust_interest", "bank_deposit", "bank_withdrawal"]


@pytest.mark.parametrize("ledgers", [Ledgers.OFFICE_AND_TRUST, Ledgers.TRUST])
@pytest.mark.parametrize("kind", [*_BASE_ONLY, "invoice_paid_from_trust"])
def test_a_foreign_bank_or_trust_movement_is_refused_not_representable(kind: str, ledgers: Ledgers) -> None:
    """GUARD: a RECEIVE or SPEND is in its bank account's currency ("Setting currency is only
    supported on overpayments": components.schemas.BankTransaction.CurrencyRate); the trust
    spend of an invoice paid from trust is one. In an organisation keeping trust (alone or with
    office), each is NOT_SUPPORTED FOREIGN_CURRENCY_NOT_REPRESENTABLE (office kinds in a
    trust-only organisation are refused as kept elsewhere)."""
    tx, ctx = _domain(_in_usd(samples.sample_transactions(4300)[kind], "0.65"), ledgers)
    outcome = _map(tx, ctx)
    assert not outcome.decision.supported
    expected = "OFFICE_IN_OTHER_ORGANISATION" if ledgers is Ledgers.TRUST and kind.startswith("bank") else None
    assert outcome.decision.reason_code == (expected or NOT_REPRESENTABLE), outcome.decision
    assert outcome.operations == ()


def test_a_foreign_invoice_paid_from_trust_in_an_office_only_organisation_is_paid_at_its_rate() -> None:
    """GUARD: an organisation keeping the office ledger only posts the payment alone, in the
    invoice's currency at Actionstep's rate ("Exchange rate when payment is received. Only used for
    non base currency invoices": components.schemas.Payment.CurrencyRate): no bank transaction."""
    tx, ctx = _domain(_in_usd(samples.sample_transactions(4400)["invoice_paid_from_trust"], "0.65"), Ledgers.OFFICE)
    outcome = _map(tx, ctx)
    assert outcome.decision.supported, outcome.decision
    [op] = outcome.operations
    assert isinstance(op.body, Payment) and (op.body.amount, op.body.currency_rate) == (40000, "0.65")
    assert outcome.currency_code == "USD"


@SQLITE
def test_a_foreign_invoice_paid_from_trust_in_a_paired_firm_is_refused_whole(pair: Any) -> None:  # noqa: F811
    """GUARD: office and trust in two organisations. The office half (a payment of a USD bill) is
    representable, the trust half (a SPEND on the trust organisation's bank) is not
    (components.schemas.BankTransaction.CurrencyRate). The record is refused whole, in both
    organisations: nothing paid in the office while the trust bank still holds the money."""
    stub, emulator, office, trust = pair
    txs = samples.sample_transactions(4500)
    bill = post_or_refusal(stub, "office", _in_usd(txs["client_bill"], "0.65"))
    paid = post_or_refusal(stub, "office", _in_usd(txs["invoice_paid_from_trust"], "0.65"))
    assert not isinstance(paid, grpc.RpcError), paid.details()
    assert paid.outcome == poster_pb2.POST_OUTCOME_NOT_SUPPORTED, paid
    assert paid.decision.reason_code == NOT_REPRESENTABLE
    assert xero_objects(emulator, trust, "BankTransactions") == []
    assert xero_objects(emulator, office, "Payments") == []
    assert bill.posting.connection_id == "office"


def test_the_preflight_warning_names_every_foreign_kind_the_extended_profile_refuses() -> None:
    """DEFECT: preflight is what a firm reads before going live ("WARNING — some transactions
    will be refused one by one": docs/backfill.md). For a multi-currency database in the extended
    profile it still says only "foreign-currency journals, transfers and funds movements" are
    refused; since the change the mapper also refuses foreign trust receipts, payments and
    interest, bank deposits and withdrawals and invoices paid from trust
    (FOREIGN_CURRENCY_NOT_REPRESENTABLE, docs/support-matrix.md). A firm banking USD trust money
    is told it will post, and finds every such receipt refused after go-live. Fixed: the warning names them."""
    facts = preflight.Facts(preflight.Profile.EXTENDED, preflight.Method.ACCRUAL, True, False, 1)
    check = preflight.multi_currency(facts)
    assert check.status is preflight.Status.WARNING
    for words in ("trust", "deposit"):
        assert words in check.message, check.message


# -- 3. mapper and Xero: bank deposits and withdrawals sent tax-inclusive ----------------------------

# Rates (percent) of the regions Actionstep serves and the emulator's organisations: AU 10, NZ 15,
# UK 20 and 5, New York City 8.875, Ontario HST 13, GST 5, Quebec GST+QST 14.975, and 12.5.
_RATES = [Decimal(r) for r in ("10", "15", "20", "5", "8.875", "13", "14.975", "12.5")]


@pytest.mark.parametrize("percent", _RATES, ids=str)
def test_xeros_tax_of_each_inclusive_line_is_actionsteps_for_either_rounding(percent: Decimal) -> None:
    """GUARD: the mapper sends each deposit line as its amount plus its tax (Inclusive), and
    Xero works the tax out of it, rounded half away from zero (docs/emulator.md, "Totals";
    Xero takes no other tax on a bank transaction line: XeroAPI/xero-node#768). For lines of
    -50.00..50.00 and 1,000 random ones up to 100,000.00, with Actionstep's tax rounded from the
    exclusive amount or from the inclusive one, the mapped line keeps Actionstep's tax and Xero's
    tax of the inclusive amount equals it: no cent gained or lost, no line refused."""
    rate = percent / 100
    drawn = random.Random(int(percent * 1000))
    amounts = [*range(-5000, 5001), *(drawn.randrange(-10_000_000, 10_000_000) for _ in range(1000))]
    for cents in amounts:
        from_exclusive = _half_away(Decimal(cents) * rate)
        inclusive = cents
        from_inclusive = _half_away(Decimal(inclusive) * rate / (1 + rate))
        for exclusive, tax in ((cents, from_exclusive), (inclusive - from_inclusive, from_inclusive)):
            xero = _half_away(Decimal(exclusive + tax) * rate / (1 + rate))
            assert xero == tax, (percent, exclusive, tax, xero)
    # The mapper's side of it, on a sample of the lines: amount plus tax, the tax kept.
    sampled = [abs(c) for c in amounts[::997] if c]
    lines = [samples.line(f"line {c}", "200", "GST", c, _half_away(Decimal(c) * rate)) for c in sampled]
    tx, ctx = _domain(_deposit(4600, lines))
    [op] = _map(tx, ctx).operations
    assert isinstance(op.body, BankTransaction) and op.body.line_amount_types is LineAmountTypes.INCLUSIVE
    sent = [(i.line_amount, i.tax_amount) for i in op.body.line_items]
    assert sent == [(x.amount.units + x.tax.units, x.tax.units) for x in lines]
    assert (op.body.sub_total, op.body.total_tax) == (
        sum(x.amount.units for x in lines),
        sum(x.tax.units for x in lines),
    )


def _region_context(key: str) -> mapper_pb2.MappingContext:
    region = REGIONS[key]
    context = samples.demo_context(EXTENDED, with_chart=False)
    sales, purchases = region.tax_maps()
    context.tax_code_map.clear()
    context.tax_code_map.update(sales)
    context.purchase_tax_code_map.clear()
    context.purchase_tax_code_map.update(purchases)
    context.untaxed_line_tax_types.CopyFrom(mapper_pb2.UntaxedLineTaxTypes(**region.untaxed()))
    context.base_currency_code = region.currency
    return context


@SQLITE
@pytest.mark.parametrize("key", ["NZ", "UK", "US", "CA"])
def test_a_regional_deposit_and_withdrawal_reach_xero_with_actionsteps_tax_line_by_line(
    poster_factory: PosterFactory, emulator: EmulatorServer, key: str
) -> None:
    """GUARD: in each region's organisation (tests/integration/test_regions.py's setups), a
    deposit and a withdrawal of lines taxed from the exclusive amount, lines priced with tax
    included (tax worked out of the inclusive price), a ties-at-half-a-cent line, a negative line
    and an untaxed line are LINKED, Inclusive, each line's TaxAmount Actionstep's, SubTotal =
    Total - TotalTax (components.schemas.BankTransaction.SubTotal "excluding taxes") and Total
    Actionstep's inclusive total."""
    region = REGIONS[key]
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, "firm-1", _region_context(key), region=key)
    rate = Decimal(region.rate_ppm) / 1_000_000
    taxed, untaxed = region.code(True), region.code(False)
    lines = []
    for exclusive in (100005, 1003, 400, 1):
        lines.append(samples.line(f"net {exclusive}", "200", taxed, exclusive, region.tax_on(exclusive)))
    for inclusive in (110005, 1153, 105, 3):
        tax = _half_away(Decimal(inclusive) * rate / (1 + rate))
        lines.append(samples.line(f"gross {inclusive}", "200", taxed, inclusive - tax, tax))
    lines.append(samples.line("reversal", "200", taxed, -1003, -region.tax_on(1003)))
    lines.append(samples.line("untaxed", "200", untaxed, 8900, 0))
    deposit = _deposit(4700, lines)
    withdrawal = samples.sample_transactions(4700)["bank_withdrawal"]
    withdrawal.bank_withdrawal.CopyFrom(deposit.bank_deposit)
    for line in withdrawal.bank_withdrawal.lines:
        line.gl_account = "420"
    for tx in (deposit, withdrawal):
        tx.header.currency_code = region.currency
        for money in _moneys(tx):
            money.currency_code = region.currency
    _linked(stub, deposit, withdrawal)

    made = xero_objects(emulator, org["tenant_id"], "BankTransactions")
    assert sorted(m["Type"] for m in made) == ["RECEIVE", "SPEND"]
    tax = sum(x.tax.units for x in lines)
    total = sum(x.amount.units + x.tax.units for x in lines)
    for m in made:
        assert m["LineAmountTypes"] == "Inclusive"
        assert [int(i["TaxAmount"] * 100) for i in m["LineItems"]] == [x.tax.units for x in lines]
        assert (int(m["TotalTax"] * 100), int(m["Total"] * 100)) == (tax, total)
        assert m["SubTotal"] == m["Total"] - m["TotalTax"]


@SQLITE
def test_an_inclusive_deposit_reconciles_shows_no_drift_and_is_adopted_after_an_upgrade(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: an Inclusive deposit of a line priced with GST included, a GST-free line, a BAS
    excluded line and a negative line. Reconciliation books LineAmount less TaxAmount on the line's
    account under Inclusive (components.schemas.LineAmountTypes; snapshots keep it), so March
    reconciles with Xero's Trial Balance; reading the untouched deposit opens no drift; and with
    its snapshot gone (a registry from before snapshots), the adopted one reconciles too."""
    firm = Firm(poster_factory(), emulator)
    lines = [
        samples.line("Rent, 1,100.05 incl. GST", "200", "GST", 100005, 10000),
        samples.line("Court fee recovered", "200", "FRE", 8900, 0),
        samples.line("Sundry", "200", "NTR", 500, 0),
        samples.line("Reversal", "200", "GST", -10003, -1000),
    ]
    xero_id = firm.post(_deposit(4800, lines))
    assert differing(firm.reconcile()) == {}
    assert firm.observe("BankTransactions", xero_pb2.OBJECT_TYPE_BANK_TRANSACTION, xero_id) == []
    firm.forget_snapshots()
    answer = firm.reconcile()
    assert differing(answer) == {} and answer.reconciled


# -- 4. poster: a payment in another currency than its document ---------------------------------------


@SQLITE
def test_a_foreign_credit_note_applies_to_its_foreign_bill_and_a_base_currency_one_is_rejected(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: an allocation settles two documents. A USD credit note applied to its USD bill is
    not rejected (Allocation.Amount "the amount being applied to the invoice"): the bill owes USD
    826.55. The same application recorded in AUD is rejected DOCUMENT_IN_ANOTHER_CURRENCY before
    anything is sent, and the bill still owes USD 826.55."""
    firm = Firm(poster_factory(), emulator)
    txs = samples.sample_transactions(1000)
    _linked(firm.stub, *(_in_usd(txs[n], "0.65") for n in ("client_bill", "credit_note", "credit_note_application")))
    assert _invoice(emulator, firm.tenant, "INV-1001")["AmountDue"] == Decimal("826.55")

    again = samples.sample_transactions(1000)["credit_note_application"]
    again.header.id = 1_000_077  # another Actionstep application, in AUD
    final = _settle(firm.stub, again)
    assert final is not None and final.state == FAILED, final
    assert final.link.last_error.reason == Reason.DOCUMENT_IN_ANOTHER_CURRENCY
    assert _invoice(emulator, firm.tenant, "INV-1001")["AmountDue"] == Decimal("826.55")


@SQLITE
def test_a_rejected_payment_posts_once_its_bill_is_reposted_in_the_payments_currency(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: bill INV-1001 went to Xero in USD by mistake; the AUD 500.00 receipt is rejected.
    The accountant unlinks the bill, voids the orphan in Xero, corrects the bill to AUD (a new
    number: Xero keeps a voided ACCREC number taken) and posts the same receipt again: the
    rejection is not kept from the stale USD document, the AUD bill owes 436.55."""
    firm = Firm(poster_factory(), emulator)
    txs = samples.sample_transactions(1000)
    firm.post(_in_usd(txs["client_bill"], "0.65"))
    first = _settle(firm.stub, txs["client_bill_payment"])
    assert first is not None and first.link.last_error.reason == Reason.DOCUMENT_IN_ANOTHER_CURRENCY
    key = common_pb2.RecordKey(kind=BILL, id=txs["client_bill"].header.id)
    firm.stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key], confirm=True))
    [orphan] = _by(emulator, firm.tenant, "Invoices", InvoiceNumber="INV-1001")
    emulator.hand_edit(firm.tenant, "Invoices", orphan["InvoiceID"], {"Status": "VOIDED"})
    corrected = samples.sample_transactions(1000)["client_bill"]
    corrected.client_bill.bill_number = "INV-1001-R"
    firm.post(corrected)

    again = _settle(firm.stub, samples.sample_transactions(1000)["client_bill_payment"])
    assert again is not None and again.state == LINKED, again
    assert _invoice(emulator, firm.tenant, "INV-1001-R")["AmountDue"] == Decimal("436.55")


@SQLITE
def test_a_backfilled_foreign_bill_never_reaches_xero_owing_more_than_actionsteps_total_due(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT: a pre-integration backfill of open USD bill OLD-5100 (936.55, totalDue USD 436.55)
    with its AUD 500.00 receipt. docs/backfill.md: "A bill and its payments are refused together,
    so Xero never gets an invoice with the wrong amount due"; a payment refused for "another
    currency" refuses its bill "before the bill is posted". The new currency check runs only in
    the dispatcher, after the bill is posted: the bill links owing USD 936.55 and the receipt
    fails DOCUMENT_IN_ANOTHER_CURRENCY, so Xero chases the client for USD 500.00 Actionstep
    shows paid (Invoice.AmountDue, "Amount remaining to be paid": components.schemas.Invoice).
    Fixed: the backfill refuses a payment in another currency than its bill, and the bill with
    it, before either is posted."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, "firm-1", samples.demo_context(EXTENDED))
    bill = _dated(_in_usd(samples.client_bill(5100), "0.65"))
    bill.client_bill.bill_number = "OLD-5100"
    due = samples.money(43655)
    due.currency_code = "USD"
    item = backfill_pb2.BackfillBill(
        bill=bill, status=backfill_pb2.BILL_STATUS_OPEN, total_due=due, payments=[_payment(51001, 5100, 50000)]
    )
    done = _finish(stub, _start(stub, [item]).name, timeout=15)

    owed = [(i["InvoiceNumber"], i["AmountDue"]) for i in xero_objects(emulator, org["tenant_id"], "Invoices")]
    assert owed in ([], [("OLD-5100", Decimal("436.55"))]), (owed, [(i.record.id, i.error.reason) for i in done.items])


@SQLITE
def test_a_deposit_unlinked_deleted_in_xero_and_reposted_leaves_nothing_unexplained(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT (reconciliation, not caused by the Inclusive change: the reposted deposit is Inclusive
    with Actionstep's tax, and both deposits' effects are booked net of tax): a deposit is corrected
    the documented way (docs/unlinking.md: unlinked, its Xero object then deleted or voided "as the
    correction requires") and posted again, 1,100.05 GST-inclusive becoming 1,100.06. A DELETED bank
    transaction moves nothing (components.schemas.BankTransaction.Status; NOTES.md status rules),
    and Xero's Trial Balance equals what xerolink posts. Reconcile counts the deleted orphan's
    whole effect as posted ("an orphaned object ... with its whole effect", docs/drift.md) without
    reading its status: the office bank shows 1,100.05, income 1,000.05 and GST 100.00
    unexplained, and every correction of a deposit leaves the month unreconciled. Fixed: an
    orphan is booked as Xero holds it now."""
    firm = Firm(poster_factory(), emulator)
    first = _deposit(4900, [samples.line("Rent incl. GST", "200", "GST", 100005, 10000)])
    old = firm.post(first)
    key = common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_BANK_DEPOSIT, id=first.header.id)
    firm.stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key], confirm=True))
    emulator.hand_edit(firm.tenant, "BankTransactions", old, {"Status": "DELETED"})
    new = firm.post(_deposit(4900, [samples.line("Rent incl. GST", "200", "GST", 100005, 10001)]))

    [made] = _by(emulator, firm.tenant, "BankTransactions", Status="AUTHORISED")
    assert made["BankTransactionID"] == new != old
    assert (made["LineAmountTypes"], made["TotalTax"], made["Total"]) == (
        "Inclusive",
        Decimal("100.01"),
        Decimal("1100.06"),
    )
    assert {c: v for c, v in differing(firm.reconcile()).items() if v[2]} == {}
