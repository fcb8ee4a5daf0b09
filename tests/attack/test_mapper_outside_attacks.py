"""Attacks on the mapper from outside, as a careless caller and as an accountant checking the books:
trust and office money kept apart whatever bank account a transaction or the connection's allocation
names, the support matrix not bypassed by naming a kind for what it is not, allocations and charts
that Xero could not hold or that contradict themselves, currencies Xero does not know, and
malformed input answered INVALID_ARGUMENT naming the field. Every call goes to the real mapper gRPC
server on loopback.

Sources: Actionstep's help articles in ../shared/seeds/ (001_7b2d31b5843188f6.txt, "Understanding
the Xero and Actionstep Integration"), ../shared/DESIGN.md, and Xero's OpenAPI description
../shared/xero-openapi/xero_accounting.yaml (components.schemas.<Schema>.<Field>).

"DEFECT:" tests fail now and say what the accountant loses; "GUARD:" tests hold."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.errors import XerolinkError
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

COMPATIBLE = mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE
EXTENDED = mapper_pb2.POLICY_PROFILE_EXTENDED
OFFICE_BANK, TRUST_BANK, OFFICE_SAVINGS = "090", "091", "094"  # samples.DEMO_ALLOCATION / DEMO_CHART
TRUST_LIABILITY, LEGAL_FEES, OFFICE_EXPENSES = "850", "200", "420"
XERO_OPENAPI = Path(__file__).resolve().parents[3] / "shared" / "xero-openapi" / "xero_accounting.yaml"

Answer = mapper_pb2.MapTransactionResponse | XerolinkError


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(mapper_target: str) -> Iterator[mapper_grpc.MapperServiceStub]:
    channel = grpc.insecure_channel(mapper_target)
    try:
        yield mapper_grpc.MapperServiceStub(channel)
    finally:
        channel.close()


def _map(
    stub: mapper_grpc.MapperServiceStub, tx: transaction_pb2.Transaction, ctx: mapper_pb2.MappingContext
) -> Answer:
    """The mapper's answer, or the error it raised read back from the rich status."""
    try:
        response: mapper_pb2.MapTransactionResponse = stub.MapTransaction(
            mapper_pb2.MapTransactionRequest(transaction=tx, context=ctx), timeout=30
        )
    except grpc.RpcError as err:
        return from_rpc_error(err)
    return response


def _accepted(answer: Answer) -> mapper_pb2.MapTransactionResponse | None:
    """The response when the transaction was decided supported and mapped; None when refused."""
    if isinstance(answer, XerolinkError) or not answer.decision.supported:
        return None
    return answer


def _bank_codes(response: mapper_pb2.MapTransactionResponse) -> list[tuple[str, str]]:
    """(operation, bank account code) of every bank account the operations move money through."""
    out: list[tuple[str, str]] = []
    for op in response.operations:
        body = op.WhichOneof("body")
        if body == "bank_transaction":
            out.append((op.local_ref, op.bank_transaction.bank_account_code))
        elif body == "bank_transfer":
            out.append((op.local_ref, op.bank_transfer.from_bank_account_code))
            out.append((op.local_ref, op.bank_transfer.to_bank_account_code))
        elif body == "payment":
            out.append((op.local_ref, op.payment.account_code))
    return out


def _field_paths(answer: Answer) -> list[str]:
    assert isinstance(answer, XerolinkError), f"expected a refusal, got {answer}"
    return [v.field for v in answer.field_violations]


def _sample(name: str, base: int) -> transaction_pb2.Transaction:
    return samples.sample_transactions(base)[name]


def _journal(base: int, lines: list[tuple[str, int]]) -> transaction_pb2.Transaction:
    tx = _sample("general_journal", base)
    del tx.general_journal.lines[:]
    tx.general_journal.lines.extend(
        common_pb2.JournalLine(gl_account=code, description="Reallocation", amount=samples.money(cents))
        for code, cents in lines
    )
    return tx


# -- 1. trust money and office money never mix ----------------------------------------------------

# Office kinds and the field that names the bank they move money through (extended profile, so
# deposits, withdrawals and refunds are posted at all).
OFFICE_KINDS_NAMING_A_BANK = [
    ("client_bill_payment", "bank_account"),
    ("supplier_invoice_payment", "bank_account"),
    ("credit_note_refund", "bank_account"),
    ("overpayment_refund", "bank_account"),
    ("bank_deposit", "bank_account"),
    ("bank_withdrawal", "bank_account"),
]


@pytest.mark.parametrize(("kind", "bank_field"), OFFICE_KINDS_NAMING_A_BANK)
def test_an_office_transaction_naming_the_trust_bank_is_not_posted_through_the_trust_bank(
    stub: mapper_grpc.MapperServiceStub, kind: str, bank_field: str
) -> None:
    """DEFECT: an office transaction (a client paying a bill, the firm paying its supplier, a refund,
    a deposit or withdrawal) whose bank_account names the allocated trust bank (091) is mapped as
    supported and moves the firm's own money in or out of the trust bank: a supplier bill paid,
    or an office expense withdrawn, with the clients' money. The seed keeps the two ledgers apart
    (001_7b2d31b5843188f6.txt: billing and "trust/client accounting" are separate modules; trust
    transactions post "through" the trust accounts) and DESIGN.md's support matrix puts trust
    kinds alone "on the trust bank account". The mapper should refuse it (INVALID_ARGUMENT naming
    the field, or not supported), never move office money through the trust bank."""
    tx = _sample(kind, 4000)
    setattr(getattr(tx, kind), bank_field, TRUST_BANK)
    answer = _map(stub, tx, samples.demo_context(EXTENDED))
    response = _accepted(answer)
    used = _bank_codes(response) if response is not None else []
    assert response is None, f"{kind} through the trust bank was mapped: {used}"


TRUST_KINDS_NAMING_A_BANK = [
    ("trust_receipt", "trust_bank_account"),
    ("trust_payment", "trust_bank_account"),
    ("trust_interest", "trust_bank_account"),
    ("invoice_paid_from_trust", "trust_bank_account"),
    ("statutory_funds", "trust_bank_account"),
    ("advanced_funds", "trust_bank_account"),
]


@pytest.mark.parametrize(("kind", "bank_field"), TRUST_KINDS_NAMING_A_BANK)
def test_a_trust_transaction_naming_the_office_bank_is_not_posted_through_the_office_bank(
    stub: mapper_grpc.MapperServiceStub, kind: str, bank_field: str
) -> None:
    """DEFECT: a trust receipt (payment, interest, invoice paid from trust, statutory or advanced
    funds) whose trust_bank_account names the allocated office bank (090) is mapped as supported in
    the actionstep-compatible profile: a client's 5,000.00 trust deposit is booked into the firm's
    office bank while its trust liability rises, and an invoice "paid from trust" takes the fee
    out of the office bank and pays it back in, reducing the client's trust liability with no
    trust money moving. Trust money belongs to clients (DESIGN.md: trust kinds are "BankTransaction
    RECEIVE / SPEND on the trust bank account"; seed 001_7b2d31b5843188f6.txt, Trust Accounting).
    The mapper should refuse a trust kind through the office bank."""
    tx = _sample(kind, 4100)
    setattr(getattr(tx, kind), bank_field, OFFICE_BANK)
    answer = _map(stub, tx, samples.demo_context())
    response = _accepted(answer)
    used = _bank_codes(response) if response is not None else []
    assert response is None, f"{kind} through the office bank was mapped: {used}"


def test_a_trust_transfer_between_two_office_accounts_does_not_bypass_the_support_matrix(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    """DEFECT: in the actionstep-compatible profile an office bank-to-bank transfer (090 -> 094) is
    not posted (EXTENDED_ONLY: seed 001_7b2d31b5843188f6.txt, Banking Transactions, "Bank to bank
    transfer — No"); sent as a TRUST_TRANSFER naming the same two office accounts it is SUPPORTED
    and becomes a Xero BankTransfer 090 -> 094 of 860.00, booked as a trust transfer the firm's
    integration never posts. docs/support-matrix.md: "Transfers that involve a trust account are
    trust transfers"; one that involves none is not, and should be refused or not supported."""
    ctx = samples.demo_context(COMPATIBLE)
    office = _sample("office_bank_transfer", 4200)
    office.office_bank_transfer.from_bank_account = OFFICE_BANK
    office.office_bank_transfer.to_bank_account = OFFICE_SAVINGS
    office_answer = _map(stub, office, ctx)
    assert not isinstance(office_answer, XerolinkError)
    assert office_answer.decision.reason_code == "EXTENDED_ONLY"

    disguised = _sample("trust_transfer", 4200)
    disguised.trust_transfer.from_bank_account = OFFICE_BANK
    disguised.trust_transfer.to_bank_account = OFFICE_SAVINGS
    response = _accepted(_map(stub, disguised, ctx))
    used = _bank_codes(response) if response is not None else []
    assert response is None, f"an office-to-office 'trust transfer' was mapped: {used}"


def test_an_allocation_putting_the_trust_bank_on_the_office_bank_is_a_precondition(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    """DEFECT: a connection whose account allocation names one Xero account (090) both as
    office_bank and trust_bank is accepted: every trust receipt of the firm is banked into the
    office account (here 5,000.00 of a client's money) and every client bill payment into the
    same account, so Xero cannot tell clients' money from the firm's. The allocation is the
    connection's (seed 001_7b2d31b5843188f6.txt: "accounts are allocated to specific accounting and
    billing functions"); a contradictory one should be FAILED_PRECONDITION (MAPPING_NOT_CONFIGURED
    naming trust_bank), as a missing one is."""
    ctx = samples.demo_context(with_chart=False)
    ctx.account_allocation["trust_bank"] = OFFICE_BANK
    answer = _map(stub, _sample("trust_receipt", 4300), ctx)
    response = _accepted(answer)
    used = _bank_codes(response) if response is not None else []
    assert response is None, f"a trust receipt was mapped into the office bank: {used}"
    assert isinstance(answer, XerolinkError) and answer.code.name == "FAILED_PRECONDITION", answer


@pytest.mark.parametrize(
    ("label", "lines"),
    [
        ("trust liability to fee income", [(TRUST_LIABILITY, 50000), (LEGAL_FEES, -50000)]),
        ("trust bank to office expenses", [(OFFICE_EXPENSES, 50000), (TRUST_BANK, -50000)]),
    ],
)
def test_a_general_journal_does_not_move_client_money_into_the_firms_books(
    stub: mapper_grpc.MapperServiceStub, label: str, lines: list[tuple[str, int]]
) -> None:
    """DEFECT: an office general journal (extended profile) that debits the trust liability and
    credits legal fees, or credits the trust bank and debits office expenses, is mapped as a Xero
    manual journal of 500.00: the client's trust balance falls (or trust cash is spent) and the
    firm's income rises (or its expense is paid) with no trust payment or invoice paid from trust
    recording it. Trust money moves only by the trust kinds (seed 001_7b2d31b5843188f6.txt:
    "Trust receipts, payments, journals, and transfers" are their own rows; general journals are
    an office function). A general journal touching an allocated trust account should be refused."""
    response = _accepted(_map(stub, _journal(4400, lines), samples.demo_context(EXTENDED)))
    touched = (
        [(line.account_code, line.line_amount.units) for line in response.operations[0].manual_journal.journal_lines]
        if response is not None
        else []
    )
    assert response is None, f"{label}: a manual journal was mapped {touched}"


def test_a_trust_transfer_to_the_office_leaves_the_trust_bank_and_an_invoice_paid_from_trust_stays_apart(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    """GUARD: with the accounts left to the allocation, a trust transfer of 860.00 to the office
    bank is a BankTransfer 091 -> 090, and an invoice paid from trust of 400.00 is a SPEND from the
    trust bank against the trust liability (with the trust tax type and a contact) then a Payment
    of the linked bill into the office bank: each total conserved, neither ledger's account used
    for the other's half (DESIGN.md, support matrix)."""
    ctx = samples.demo_context()
    transfer = _accepted(_map(stub, _sample("trust_transfer", 4500), ctx))
    assert transfer is not None and transfer.total.units == 86000
    moved = transfer.operations[0].bank_transfer
    assert (moved.from_bank_account_code, moved.to_bank_account_code, moved.amount.units) == (
        TRUST_BANK,
        OFFICE_BANK,
        86000,
    )

    paid = _accepted(_map(stub, _sample("invoice_paid_from_trust", 4600), ctx))
    assert paid is not None and [op.local_ref for op in paid.operations] == ["trust-spend", "payment"]
    spend, payment = paid.operations[0].bank_transaction, paid.operations[1].payment
    assert spend.type == xero_pb2.BANK_TRANSACTION_TYPE_SPEND and spend.bank_account_code == TRUST_BANK
    assert [(i.account_code, i.tax_type, i.line_amount.units) for i in spend.line_items] == [
        (TRUST_LIABILITY, samples.DEMO_UNTAXED["trust_money"], 40000)
    ]
    assert spend.contact.contact_number == "AS-501" and spend.total.units == 40000
    assert payment.account_code == OFFICE_BANK and payment.amount.units == 40000
    assert payment.document.record.id == 4601 and paid.total.units == 40000


# -- 2. contexts Xero could not hold, or that contradict themselves --------------------------------


@pytest.mark.parametrize("code", ["09000000000", "  ", "09\t0"])
def test_an_allocated_code_xero_cannot_hold_is_a_precondition_without_a_chart(
    stub: mapper_grpc.MapperServiceStub, code: str
) -> None:
    """DEFECT: the chart is optional, and without it an allocation naming an account code Xero
    cannot hold (eleven characters, where Account.Code is "(max length = 10)" in
    components.schemas.Account.Code; or only spaces; or a tab) is used as it is: a 500.00 client
    payment goes into the poster's queue as a Payment to account '09000000000' and fails at Xero,
    after the caller was told it is supported. The same code typed on a transaction's line is
    refused at the door (docs/mapper.md, "Text refused at the door": every account code); the
    allocated one should be FAILED_PRECONDITION naming office_bank."""
    ctx = samples.demo_context(with_chart=False)
    ctx.account_allocation["office_bank"] = code
    answer = _map(stub, _sample("client_bill_payment", 4700), ctx)
    response = _accepted(answer)
    used = _bank_codes(response) if response is not None else []
    assert response is None, f"allocated code {code!r} was used: {used}"


def test_a_chart_listing_one_code_twice_gets_one_answer_whatever_the_order(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    """DEFECT: a chart that lists the trust bank 091 twice, once ARCHIVED and once ACTIVE, is
    read last-one-wins: listed archived-then-active the trust receipt is supported, listed
    active-then-archived it is FAILED_PRECONDITION ACCOUNT_ARCHIVED. Xero's account codes are
    unique (components.schemas.Account.Code, "Customer defined alpha numeric account code"); a
    chart contradicting itself should be INVALID_ARGUMENT naming context.chart[i].code, and in
    no case should the answer depend on the order of the list."""
    archived = mapper_pb2.ChartAccount(code=TRUST_BANK, name="Trust Bank (old)", type="BANK", status="ARCHIVED")
    first = samples.demo_context()
    first.chart.insert(0, archived)
    last = samples.demo_context()
    last.chart.append(archived)
    tx = _sample("trust_receipt", 4800)
    a, b = _map(stub, tx, first), _map(stub, tx, last)
    outcome_a = a.code.name if isinstance(a, XerolinkError) else a.decision.reason_code
    outcome_b = b.code.name if isinstance(b, XerolinkError) else b.decision.reason_code
    assert outcome_a == outcome_b, f"archived first: {outcome_a}; archived last: {outcome_b}"
    assert isinstance(a, XerolinkError) and a.code.name == "INVALID_ARGUMENT", outcome_a


def _xero_currency_codes() -> set[str]:
    with XERO_OPENAPI.open(encoding="utf-8") as handle:
        spec: dict[str, Any] = yaml.safe_load(handle)
    return set(spec["components"]["schemas"]["CurrencyCode"]["enum"])


def test_a_currency_xero_does_not_know_is_invalid_argument(stub: mapper_grpc.MapperServiceStub) -> None:
    """DEFECT: a client bill in "QQQ" at rate 1.5 (extended profile) is SUPPORTED and mapped as a
    Xero invoice in QQQ. Xero's CurrencyCode is an enum of ISO-4217 codes
    (components.schemas.CurrencyCode, 170-odd values; QQQ is not one), so Xero refuses the
    invoice after the caller was told it is posted; docs/support-matrix.md promises "a currency
    that is not ISO-4217" is INVALID_ARGUMENT, yet the mapper checks only three capitals. It should
    name transaction.header.currency_code."""
    codes = _xero_currency_codes()
    assert "AUD" in codes and "USD" in codes and "QQQ" not in codes
    tx = samples.client_bill(4900)
    tx.header.currency_code = "QQQ"
    tx.header.currency_rate = "1.5"
    for line in tx.client_bill.lines:
        line.amount.currency_code = line.tax.currency_code = "QQQ"
    for total in (tx.client_bill.totals.exclusive, tx.client_bill.totals.tax, tx.client_bill.totals.inclusive):
        total.currency_code = "QQQ"
    answer = _map(stub, tx, samples.demo_context(EXTENDED))
    assert _accepted(answer) is None, "a QQQ invoice was mapped"
    assert "transaction.header.currency_code" in _field_paths(answer)


# -- 3. bad input gets INVALID_ARGUMENT naming the field -------------------------------------------


def test_unknown_enum_values_and_a_missing_kind_are_invalid_argument_naming_the_field(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    """GUARD: values this version does not know (a profile, a ledgers setting, an accounting
    method, a funds direction) and a transaction with no kind set are INVALID_ARGUMENT naming
    each field, never read as a default."""
    for field, value in (("profile", 9), ("ledgers", 9), ("accounting_method", 9)):
        ctx = samples.demo_context()
        setattr(ctx, field, value)
        assert f"context.{field}" in _field_paths(_map(stub, samples.client_bill(5100), ctx)), field

    funds = _sample("statutory_funds", 5200)
    funds.statutory_funds.direction = 9  # type: ignore[assignment]
    assert "transaction.statutory_funds.direction" in _field_paths(_map(stub, funds, samples.demo_context()))

    kindless = transaction_pb2.Transaction(header=samples.header(5300))
    assert _field_paths(_map(stub, kindless, samples.demo_context())) == ["transaction"]


@pytest.mark.parametrize(("quantity", "price"), [("NaN", "1"), ("Infinity", "1"), ("1e-5", "1"), ("1", "sNaN")])
def test_quantities_and_prices_that_are_not_plain_decimals_are_named(
    stub: mapper_grpc.MapperServiceStub, quantity: str, price: str
) -> None:
    """GUARD: a line quantity or unit price that is not a finite decimal of at most four places
    ("NaN", "Infinity", "1e-5", "sNaN") is INVALID_ARGUMENT naming the line's field; nothing is a
    float."""
    tx = samples.client_bill(5400)
    tx.client_bill.lines[1].quantity = quantity
    tx.client_bill.lines[1].unit_price = price
    paths = _field_paths(_map(stub, tx, samples.demo_context()))
    bad = "quantity" if quantity != "1" else "unit_price"
    assert paths == [f"transaction.client_bill.lines[1].{bad}"], paths


def test_a_reversed_payment_is_refused_naming_the_amount(stub: mapper_grpc.MapperServiceStub) -> None:
    """GUARD: a client payment reversed by a negative amount (a dishonoured cheque) is not sent to
    Xero as a negative payment: INVALID_ARGUMENT naming its units (the seed's correction is to
    delete the payment in Xero and unlink: 000_063d380502081cd9.txt)."""
    tx = _sample("client_bill_payment", 5500)
    tx.client_bill_payment.amount.units = -50000
    assert _field_paths(_map(stub, tx, samples.demo_context())) == ["transaction.client_bill_payment.amount.units"]


# -- 4. money conserved when lines are summed per account ------------------------------------------


def test_lines_that_cancel_on_one_account_keep_the_invoice_total_and_every_line_exact(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    """GUARD: a bill whose fee line (1,000.00 + 100.00 GST) is written off by a negative line on
    the same account, beside a 0.05 + 0.01 photocopy on another and a GST-free filing fee, is
    summed per account and tax type (seed 001_7b2d31b5843188f6.txt: "the sum of the line items
    attributed to each general ledger account"): the Xero lines add up to Actionstep's 89.06 to
    the cent, each line is quantity 1 at its own amount (so Xero's Quantity x UnitAmount,
    components.schemas.LineItem.LineAmount, is exact), and the stated totals match."""
    lines = [
        samples.line("Advice", LEGAL_FEES, "GST", 100000, 10000),
        samples.line("Write-off of advice", LEGAL_FEES, "GST", -100000, -10000),
        samples.line("Photocopy", "210", "GST", 5, 1),
        samples.line("Court filing fee", "210", "FRE", 8900, 0),
    ]
    response = _accepted(_map(stub, samples.client_bill(5600, lines), samples.demo_context()))
    assert response is not None
    invoice = response.operations[0].invoice
    items = [(i.account_code, i.tax_type, i.line_amount.units, i.tax_amount.units) for i in invoice.line_items]
    assert items == [
        (LEGAL_FEES, "OUTPUT", 0, 0),
        ("210", "OUTPUT", 5, 1),
        ("210", "EXEMPTOUTPUT", 8900, 0),
    ]
    for item in invoice.line_items:
        assert item.quantity == "1"
        whole, _, cents = item.unit_amount.partition(".")
        assert len(cents) == 2 and int(whole) * 100 + int(cents) == item.line_amount.units
    assert invoice.line_amount_types == xero_pb2.LINE_AMOUNT_TYPES_EXCLUSIVE
    assert (invoice.sub_total.units, invoice.total_tax.units, invoice.total.units) == (8905, 1, 8906)
    assert response.total.units == 8906 == sum(i.line_amount.units + i.tax_amount.units for i in invoice.line_items)


def test_a_bill_of_many_lines_sums_to_a_few_xero_lines_with_actionsteps_total(
    stub: mapper_grpc.MapperServiceStub,
) -> None:
    """GUARD: 3,000 one-cent lines over three accounts, each with tax 0 or 1 cent as Actionstep
    rounded it, become three Xero lines whose amounts and taxes add up to Actionstep's totals
    exactly; nothing is lost to rounding or to a float."""
    lines = [samples.line(f"Item {n}", (LEGAL_FEES, "210", "310")[n % 3], "GST", 1 + n % 7, n % 2) for n in range(3000)]
    bill = samples.client_bill(5700, lines)
    response = _accepted(_map(stub, bill, samples.demo_context()))
    assert response is not None
    invoice = response.operations[0].invoice
    assert len(invoice.line_items) == 3
    assert sum(i.line_amount.units for i in invoice.line_items) == bill.client_bill.totals.exclusive.units
    assert sum(i.tax_amount.units for i in invoice.line_items) == bill.client_bill.totals.tax.units
    assert invoice.total.units == response.total.units == bill.client_bill.totals.inclusive.units
