"""Properties over generated transactions of every supported kind: the Xero operations carry the
Actionstep money to the cent, aggregation neither drops nor invents an account, and nothing
unsupported ever yields an operation."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from mapper_factories import CONNECTED, context
from mapper_proto import to_proto
from mapper_strategies import MAPPABLE_KINDS, transactions
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples
from xerolink_mapper.adapters.mapping_calls import map_request
from xerolink_mapper.domain import support_matrix as sm
from xerolink_mapper.domain.aggregation import unit_amount
from xerolink_mapper.domain.decisions import in_base_currency_only
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import (
    AccountingMethod,
    BankAmountBody,
    BankEntryBody,
    DocumentBody,
    GeneralJournalBody,
    Kind,
    Ledgers,
    MatterTracking,
    OverpaymentRefundBody,
    PaymentBody,
    Profile,
    Transaction,
    TrustJournalBody,
)
from xerolink_mapper.domain.xero import (
    Allocation,
    BankTransaction,
    BankTransfer,
    CreditNote,
    Invoice,
    LineAmountTypes,
    ManualJournal,
    Operation,
    Payment,
)
from xerolink_mapper.samples import DEMO_PURCHASE_TAX, DEMO_SALES_TAX

EXTENDED = context(Profile.EXTENDED)
PURCHASE_SIDE = {Kind.SUPPLIER_INVOICE, Kind.SUPPLIER_CREDIT, Kind.BANK_WITHDRAWAL}
settings.register_profile("mapper", max_examples=150, deadline=None)


def _money_of(op: Operation) -> int:
    """The amount of money one Xero operation moves, read from its own fields."""
    body = op.body
    if isinstance(body, Invoice | CreditNote | BankTransaction):
        tax = sum(i.tax_amount for i in body.line_items)
        lines = sum(i.line_amount for i in body.line_items)
        if body.line_amount_types is not LineAmountTypes.INCLUSIVE:  # Inclusive lines hold their tax
            lines += tax
        assert lines == body.total == body.sub_total + body.total_tax, "a document's lines must add up to its total"
        assert body.total_tax == tax
        return body.total
    if isinstance(body, Payment | Allocation | BankTransfer):
        return body.amount
    assert isinstance(body, ManualJournal)
    assert sum(line.line_amount for line in body.journal_lines) == 0, "a journal must balance"
    return sum(line.line_amount for line in body.journal_lines if line.line_amount > 0)


def _actionstep_amounts(tx: Transaction) -> list[int]:
    """What each operation must carry, read from the Actionstep transaction alone."""
    body = tx.body
    if isinstance(body, DocumentBody | BankEntryBody):
        assert body.totals is not None and body.totals.inclusive is not None
        return [body.totals.inclusive.cents]
    if isinstance(body, OverpaymentRefundBody):
        assert body.overpaid is not None and body.refund is not None
        return [body.overpaid.cents, body.refund.cents]
    if isinstance(body, GeneralJournalBody):
        return [sum(line.amount.cents for line in body.lines if line.amount and line.amount.cents > 0)]
    amount = getattr(body, "amount", None)
    assert amount is not None
    # An invoice paid from trust leaves the trust bank and pays the invoice: the same money twice.
    return [amount.cents] * (2 if tx.kind is Kind.INVOICE_PAID_FROM_TRUST else 1)


@st.composite
def in_any_currency(draw: st.DrawFn) -> Transaction:
    """A transaction in the base currency, or (extended profile) in a foreign one with its rate."""
    tx = draw(transactions())
    # Journals, transfers and receive or spend bank transactions are refused in a foreign one.
    if not in_base_currency_only(tx.kind, EXTENDED.ledgers) and draw(st.booleans()):
        rate = draw(st.decimals(min_value="0.0001", max_value="10000", places=4))
        tx.header = replace(
            tx.header, currency_code=draw(st.sampled_from(["USD", "NZD", "GBP"])), currency_rate=str(rate)
        )
    return tx


@settings(settings.get_profile("mapper"))
@given(in_any_currency())
def test_xero_operations_carry_the_actionstep_total_to_the_cent(tx: Transaction) -> None:
    outcome = map_transaction(tx, EXTENDED)

    assert outcome.decision.supported
    assert [_money_of(op) for op in outcome.operations] == _actionstep_amounts(tx)
    assert outcome.total == _actionstep_amounts(tx)[0]
    # Foreign amounts stay in their own currency's cents; the rate travels with the documents.
    assert outcome.currency_code == tx.header.currency_code
    for op in outcome.operations:
        if isinstance(op.body, Invoice | CreditNote | BankTransaction):
            assert (op.body.currency_code, op.body.currency_rate) == (tx.header.currency_code, tx.header.currency_rate)
        if isinstance(op.body, Payment):
            assert op.body.currency_rate == tx.header.currency_rate


def _tax_type(tx: Transaction, code: str) -> str:
    return (DEMO_PURCHASE_TAX if tx.kind in PURCHASE_SIDE else DEMO_SALES_TAX)[code]


@settings(settings.get_profile("mapper"))
@given(
    transactions(
        kinds=(
            Kind.CLIENT_BILL,
            Kind.CREDIT_NOTE,
            Kind.SUPPLIER_INVOICE,
            Kind.SUPPLIER_CREDIT,
        )
    )
)
def test_aggregation_sums_per_account_and_tax_type_without_dropping_or_inventing_any(tx: Transaction) -> None:
    assert isinstance(tx.body, DocumentBody | BankEntryBody)
    expected: Counter[tuple[str, str]] = Counter()
    expected_tax: Counter[tuple[str, str]] = Counter()
    for line in tx.body.lines:
        assert line.amount and line.tax
        key = (line.gl_account, _tax_type(tx, line.tax_code))
        expected[key] += line.amount.cents
        expected_tax[key] += line.tax.cents

    (op,) = map_transaction(tx, EXTENDED).operations
    assert isinstance(op.body, Invoice | CreditNote | BankTransaction)
    keys = [(item.account_code, item.tax_type) for item in op.body.line_items]
    assert len(keys) == len(set(keys)), "one Xero line per account and tax type"
    assert set(keys) == {key for key in expected}
    assert {k: item.line_amount for k, item in zip(keys, op.body.line_items, strict=True)} == dict(expected)
    assert {k: item.tax_amount for k, item in zip(keys, op.body.line_items, strict=True)} == dict(expected_tax)


@settings(settings.get_profile("mapper"))
@given(transactions(kinds=(Kind.BANK_DEPOSIT, Kind.BANK_WITHDRAWAL)))
def test_a_bank_entry_keeps_each_line_with_its_own_amount_and_tax(tx: Transaction) -> None:
    """Xero refuses a bank transaction line whose tax is not its rate's on its amount
    (XeroAPI/xero-node#768); Actionstep's lines are each rounded, so summing them could be a cent
    off. Each stays a line: same accounts, amounts and taxes, in order, each amount with its tax
    included (Inclusive), from which Xero's tax is Actionstep's (banking._tax_inclusive)."""
    assert isinstance(tx.body, BankEntryBody)
    (op,) = map_transaction(tx, EXTENDED).operations
    assert isinstance(op.body, BankTransaction)
    assert op.body.line_amount_types is LineAmountTypes.INCLUSIVE
    sent = [(i.account_code, i.tax_type, i.line_amount, i.tax_amount, i.unit_amount) for i in op.body.line_items]
    assert sent == [
        (
            line.gl_account,
            _tax_type(tx, line.tax_code),
            line.amount.cents + line.tax.cents,  # type: ignore[union-attr]
            line.tax.cents,  # type: ignore[union-attr]
            unit_amount(line.amount.cents + line.tax.cents),  # type: ignore[union-attr]
        )
        for line in tx.body.lines
    ]


@settings(settings.get_profile("mapper"))
@given(transactions(kinds=(Kind.GENERAL_JOURNAL,)))
def test_journal_aggregation_keeps_every_account_and_side(tx: Transaction) -> None:
    assert isinstance(tx.body, GeneralJournalBody)
    expected: Counter[tuple[str, bool]] = Counter()
    for line in tx.body.lines:
        assert line.amount
        expected[(line.gl_account, line.amount.cents > 0)] += line.amount.cents

    (op,) = map_transaction(tx, EXTENDED).operations
    assert isinstance(op.body, ManualJournal)
    got: Counter[tuple[str, bool]] = Counter()
    for jl in op.body.journal_lines:
        got[(jl.account_code, jl.line_amount > 0)] += jl.line_amount
    assert got == expected


@st.composite
def situations(draw: st.DrawFn) -> tuple[Transaction, object, set[str]]:
    """Any kind under any connection facts, with the set of conditions that hold."""
    tx = draw(transactions(kinds=tuple(Kind)))
    profile = draw(st.sampled_from(list(Profile)))
    other_division = draw(st.booleans())
    before = draw(st.booleans())
    foreign = draw(st.booleans())
    multi = draw(st.booleans())
    cash = draw(st.booleans())
    retainers = draw(st.booleans())
    backfill = draw(st.booleans())
    header = replace(
        tx.header,
        division_id=2 if other_division else 1,
        posted_at=CONNECTED - timedelta(days=1) if before else tx.header.posted_at,
        currency_code="NZD" if foreign else "AUD",
        currency_rate="1.0875" if foreign and profile is Profile.EXTENDED else "",
    )
    ctx = context(
        profile,
        multi_currency_database=multi,
        accounting_method=AccountingMethod.CASH if cash else AccountingMethod.ACCRUAL,
        general_retainers_configured=retainers,
        pre_integration_backfill=backfill,
    )
    compatible = profile is Profile.ACTIONSTEP_COMPATIBLE
    holding = {
        code
        for code, holds in (
            (sm.OTHER_DIVISION, other_division),
            (sm.PRE_INTEGRATION, before and not (backfill and tx.kind in {Kind.CLIENT_BILL, Kind.CLIENT_BILL_PAYMENT})),
            (sm.MULTI_CURRENCY_DATABASE, multi and compatible),
            (sm.FOREIGN_CURRENCY, foreign and compatible),
            (
                sm.FOREIGN_CURRENCY_NOT_REPRESENTABLE,
                foreign and not compatible and in_base_currency_only(tx.kind, ctx.ledgers),
            ),
            (sm.CASH_ACCOUNTING, cash),
            (sm.GENERAL_RETAINERS_CONFIGURED, retainers),
        )
        if holds
    }
    return replace(tx, header=header), ctx, holding


@settings(settings.get_profile("mapper"))
@given(situations())
def test_unsupported_transactions_never_yield_an_operation_and_say_why(
    situation: tuple[Transaction, object, set[str]],
) -> None:
    tx, ctx, holding = situation
    outcome = map_transaction(tx, ctx)  # type: ignore[arg-type]
    row = sm.ROWS_BY_KIND[tx.kind].verdict(ctx.profile)  # type: ignore[attr-defined]

    if not row.supported:
        assert outcome.decision.reason_code == row.reason_code
    elif holding:
        assert outcome.decision.reason_code in holding
        first = next(c.reason_code for c in sm.CONDITIONS if c.reason_code in holding)
        assert outcome.decision.reason_code == first
    else:
        assert outcome.decision.reason_code == sm.SUPPORTED
    assert outcome.decision.supported == (row.supported and not holding)
    if not outcome.decision.supported:
        assert outcome.operations == ()
        assert outcome.total == 0
    else:
        assert outcome.operations


def test_every_mappable_kind_is_generated() -> None:
    supported_somewhere = {row.kind for row in sm.ROWS if row.compatible.supported or row.extended.supported}
    assert set(MAPPABLE_KINDS) == supported_somewhere


def _proto_money_of(op: Any) -> int:
    """The money one xero.v1 Operation moves, read from the wire form alone."""
    kind = op.WhichOneof("body")
    body = getattr(op, kind)
    if kind in ("invoice", "credit_note", "bank_transaction"):
        taxed = body.line_amount_types != xero_pb2.LINE_AMOUNT_TYPES_INCLUSIVE  # Inclusive lines hold their tax
        lines = sum(i.line_amount.units + (i.tax_amount.units if taxed else 0) for i in body.line_items)
        assert lines == body.total.units == body.sub_total.units + body.total_tax.units
        return int(body.total.units)
    if kind in ("payment", "allocation", "bank_transfer"):
        return int(body.amount.units)
    assert sum(jl.line_amount.units for jl in body.journal_lines) == 0
    return sum(jl.line_amount.units for jl in body.journal_lines if jl.line_amount.units > 0)


@settings(settings.get_profile("mapper"))
@given(in_any_currency())
def test_the_wire_response_carries_the_wire_request_total_to_the_cent(tx: Transaction) -> None:
    request = mapper_pb2.MapTransactionRequest(
        transaction=to_proto(tx), context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
    )
    response = map_request(mapper_pb2.MapTransactionRequest.FromString(request.SerializeToString()))

    assert response.decision.supported
    assert [_proto_money_of(op) for op in response.operations] == _actionstep_amounts(tx)
    assert response.total.units == _actionstep_amounts(tx)[0]
    assert {op.WhichOneof("body") for op in response.operations} <= {
        "invoice",
        "credit_note",
        "payment",
        "allocation",
        "bank_transaction",
        "bank_transfer",
        "manual_journal",
    }


# Reports by matter and organisations that keep one ledger (extended profile options).

TRACKED = replace(EXTENDED, matter_tracking=MatterTracking(enabled=True))
MATTERS = st.sampled_from([0, 7001, 7002, 88_000_000_001])


@st.composite
def matter_transactions(draw: st.DrawFn) -> Transaction:
    """Any mappable transaction of any matter (0: none); a general journal's lines each of their own
    matter or none, from a small set so that lines of one account and side meet across matters."""
    tx = draw(transactions())
    tx.header = replace(tx.header, action_id=draw(MATTERS))
    if isinstance(tx.body, GeneralJournalBody):
        tx.body = replace(tx.body, lines=tuple(replace(line, action_id=draw(MATTERS)) for line in tx.body.lines))
    return tx


def _tracked_amounts(operations: tuple[Operation, ...]) -> Counter[tuple[int, str]]:
    """The money of the Xero lines per tracked matter: document lines with their tax, journal lines
    per side."""
    out: Counter[tuple[int, str]] = Counter()
    for op in operations:
        body = op.body
        if isinstance(body, Invoice | CreditNote | BankTransaction):
            taxed = body.line_amount_types is not LineAmountTypes.INCLUSIVE
            for item in body.line_items:
                out[(item.tracked_action_id, "line")] += item.line_amount + (item.tax_amount if taxed else 0)
        elif isinstance(body, ManualJournal):
            for jl in body.journal_lines:
                out[(jl.tracked_action_id, "debit" if jl.line_amount > 0 else "credit")] += jl.line_amount
    return out


def _actionstep_amounts_per_matter(tx: Transaction) -> Counter[tuple[int, str]]:
    """The same, read from the Actionstep transaction alone."""
    matter = tx.header.action_id
    body = tx.body
    out: Counter[tuple[int, str]] = Counter()
    if isinstance(body, DocumentBody | BankEntryBody):
        assert body.totals is not None and body.totals.inclusive is not None
        out[(matter, "line")] += body.totals.inclusive.cents
    elif isinstance(body, OverpaymentRefundBody):
        assert body.overpaid is not None
        out[(matter, "line")] += body.overpaid.cents
    elif isinstance(body, BankAmountBody) or tx.kind is Kind.INVOICE_PAID_FROM_TRUST:
        out[(matter, "line")] += body.amount.cents  # type: ignore[union-attr]
    elif isinstance(body, TrustJournalBody):
        assert body.amount is not None
        out[(body.from_action_id, "debit")] += body.amount.cents
        out[(body.to_action_id, "credit")] -= body.amount.cents
    elif isinstance(body, GeneralJournalBody):
        for line in body.lines:
            assert line.amount is not None
            out[(line.action_id or matter, "debit" if line.amount.cents > 0 else "credit")] += line.amount.cents
    return out


@settings(settings.get_profile("mapper"))
@given(matter_transactions())
def test_with_reports_by_matter_the_amounts_per_matter_are_actionstep_s_to_the_cent(tx: Transaction) -> None:
    tracked = map_transaction(tx, TRACKED)
    untracked = map_transaction(tx, EXTENDED)

    assert tracked.decision == untracked.decision and tracked.decision.supported
    assert _tracked_amounts(tracked.operations) == _actionstep_amounts_per_matter(tx)
    # The total and each operation's money are unchanged: tracking only splits lines by matter.
    assert tracked.total == untracked.total == _actionstep_amounts(tx)[0]
    assert [_money_of(op) for op in tracked.operations] == [_money_of(op) for op in untracked.operations]
    assert [op.local_ref for op in tracked.operations] == [op.local_ref for op in untracked.operations]
    # Off, nothing is tracked.
    assert set(_tracked_amounts(untracked.operations)) <= {(0, "line"), (0, "debit"), (0, "credit")}


@settings(settings.get_profile("mapper"))
@given(matter_transactions())
def test_no_xero_line_sums_lines_of_two_matters(tx: Transaction) -> None:
    """One Xero line per account, tax type, matter (and side in a journal): a line of one matter never
    absorbs another's, and the same journal untracked sums across matters as before."""
    for op in map_transaction(tx, TRACKED).operations:
        body = op.body
        if isinstance(body, ManualJournal) and isinstance(tx.body, GeneralJournalBody):
            keys = [
                (jl.account_code, jl.tax_type, jl.line_amount > 0, jl.tracked_action_id) for jl in body.journal_lines
            ]
            assert len(keys) == len(set(keys))
        elif isinstance(body, Invoice | CreditNote):
            keys2 = [(i.account_code, i.tax_type, i.tracked_action_id) for i in body.line_items]
            assert len(keys2) == len(set(keys2))


@settings(settings.get_profile("mapper"))
@given(transactions(kinds=(Kind.INVOICE_PAID_FROM_TRUST,)), st.booleans())
def test_the_two_halves_of_an_invoice_paid_from_trust_each_conserve_the_amount(tx: Transaction, track: bool) -> None:
    base = TRACKED if track else EXTENDED
    assert isinstance(tx.body, PaymentBody) and tx.body.amount is not None
    amount = tx.body.amount.cents
    spend, payment = map_transaction(tx, base).operations
    office = map_transaction(tx, replace(base, ledgers=Ledgers.OFFICE))
    trust = map_transaction(tx, replace(base, ledgers=Ledgers.TRUST))

    assert office.operations == (payment,) and trust.operations == (spend,)
    for half in (office, trust):
        (op,) = half.operations
        assert _money_of(op) == half.total == amount
    assert isinstance(payment.body, Payment) and payment.body.amount == amount
    if track:
        assert _tracked_amounts(trust.operations) == Counter({(tx.header.action_id, "line"): amount})
