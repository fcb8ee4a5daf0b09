"""The extended profile's options for firms that report by matter or keep trust money in an
organisation of its own: MappingContext.matter_tracking and MappingContext.ledgers."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from mapper_factories import FIELD_NAMES, cents, context, line, totals_of, transaction
from mapper_proto import to_proto
from mapper_strategies import MAPPABLE_KINDS
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.reasons import Reason
from xerolink_mapper import samples, support_matrix_doc
from xerolink_mapper.adapters.mapping_calls import map_request
from xerolink_mapper.adapters.proto_in import transaction_from_proto
from xerolink_mapper.adapters.support_matrix_proto import support_matrix_response
from xerolink_mapper.domain import support_matrix as sm
from xerolink_mapper.domain.allocations import OFFICE_BANK, TRUST_BANK, TRUST_LIABILITY
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import (
    BankAmountBody,
    BankEntryBody,
    DocumentBody,
    FundsBody,
    FundsDirection,
    GeneralJournalBody,
    JournalLine,
    Kind,
    Ledgers,
    MappingContext,
    MatterTracking,
    OverpaymentRefundBody,
    PaymentBody,
    Profile,
    RecordKey,
    Transaction,
    TransferBody,
    TrustJournalBody,
    UntaxedTaxTypes,
)
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.xero import BankTransaction, CreditNote, Invoice, ManualJournal, Operation, Payment

TRACKED = context(Profile.EXTENDED, matter_tracking=MatterTracking(enabled=True))
MATTER = 7001  # the factories' header action_id


def _error(tx: Transaction, ctx: MappingContext) -> XerolinkError:
    with pytest.raises(XerolinkError) as caught:
        map_transaction(tx, ctx)
    return caught.value


def _preconditions(err: XerolinkError) -> list[tuple[str, str]]:
    assert err.code is ErrorCode.FAILED_PRECONDITION, err
    return [(v.type, v.subject) for v in err.precondition_violations]


def _bill(**header: Any) -> Transaction:
    lines = [line("200", "GST", 45000, 4500), line("200", "GST", 30000, 3000), line("210", "FRE", 8900, 0)]
    return transaction(
        Kind.CLIENT_BILL, DocumentBody("INV-7", tuple(lines), totals_of(lines), due_date=date(2026, 4, 1)), **header
    )


def _tracked_ids(op: Operation) -> list[int]:
    body = op.body
    if isinstance(body, Invoice | CreditNote | BankTransaction):
        return [item.tracked_action_id for item in body.line_items]
    if isinstance(body, ManualJournal):
        return [jl.tracked_action_id for jl in body.journal_lines]
    return []


# Reports by matter.


def test_matter_tracking_needs_the_extended_profile() -> None:
    ctx = context(Profile.ACTIONSTEP_COMPATIBLE, matter_tracking=MatterTracking(enabled=True))
    err = _error(_bill(), ctx)
    assert _preconditions(err) == [(Reason.MAPPING_NOT_CONFIGURED, "context.matter_tracking")]
    assert err.reason == Reason.MAPPING_NOT_CONFIGURED


def test_matter_tracking_sent_off_is_no_option_in_either_profile() -> None:
    for profile in Profile:
        ctx = context(profile, matter_tracking=MatterTracking(enabled=False, category_name="Matter"))
        assert map_transaction(_bill(), ctx).decision.supported


def test_a_category_name_longer_than_xero_takes_is_a_precondition() -> None:
    ok = replace(TRACKED, matter_tracking=MatterTracking(True, "M" * 100))
    assert map_transaction(_bill(), ok).decision.supported
    long = replace(TRACKED, matter_tracking=MatterTracking(True, "é" * 101))
    assert _preconditions(_error(_bill(), long)) == [
        (Reason.MAPPING_NOT_CONFIGURED, "context.matter_tracking.category_name")
    ]


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (Kind.CLIENT_BILL, _bill().body),
        (
            Kind.CREDIT_NOTE,
            DocumentBody("CN-1", (line("200", "GST", 100, 10),), totals_of([line("200", "GST", 100, 10)])),
        ),
        (
            Kind.SUPPLIER_INVOICE,
            DocumentBody(
                "S-1", (line("420", "GST", 100, 10),), totals_of([line("420", "GST", 100, 10)]), date(2026, 4, 1)
            ),
        ),
        (
            Kind.BANK_DEPOSIT,
            BankEntryBody(
                "", (line("200", "GST", 100, 10), line("200", "GST", 50, 5)), totals_of([line("200", "GST", 150, 15)])
            ),
        ),
        (Kind.OVERPAYMENT_REFUND, OverpaymentRefundBody(3, cents(2500), cents(2500))),
        (Kind.TRUST_RECEIPT, BankAmountBody(cents(500000), description="Deposit")),
        (Kind.TRUST_PAYMENT, BankAmountBody(cents(120000), description="Stamp duty")),
        (Kind.TRUST_INTEREST, BankAmountBody(cents(1234))),
        (Kind.INVOICE_PAID_FROM_TRUST, PaymentBody(1001, cents(40000))),
    ],
)
def test_every_line_of_a_transaction_carries_its_headers_matter(kind: Kind, body: object) -> None:
    outcome = map_transaction(transaction(kind, body), TRACKED)  # type: ignore[arg-type]
    ids = [i for op in outcome.operations for i in _tracked_ids(op)]
    assert ids and set(ids) == {MATTER}


def test_funds_moved_by_a_bank_transaction_carry_the_headers_matter() -> None:
    chart = dict(TRACKED.chart or {})
    chart["092"] = replace(chart["092"], type="CURRLIAB")
    ctx = replace(TRACKED, chart=chart)
    tx = transaction(Kind.STATUTORY_FUNDS, FundsBody(FundsDirection.OUT_OF_TRUST, "", "", cents(200000)))
    (op,) = map_transaction(tx, ctx).operations
    assert _tracked_ids(op) == [MATTER]


def test_a_transaction_of_no_matter_tracks_its_lines_to_none() -> None:
    (op,) = map_transaction(_bill(action_id=0), TRACKED).operations
    assert set(_tracked_ids(op)) == {0}


def test_a_trust_journal_tracks_the_debit_to_the_paying_matter_and_the_credit_to_the_receiving_one() -> None:
    (op,) = map_transaction(
        transaction(Kind.TRUST_JOURNAL, TrustJournalBody(7001, 7002, cents(30000))), TRACKED
    ).operations
    assert isinstance(op.body, ManualJournal)
    assert [(jl.line_amount, jl.tracked_action_id) for jl in op.body.journal_lines] == [(30000, 7001), (-30000, 7002)]


def test_a_general_journal_line_tracks_its_own_matter_else_the_headers_and_never_sums_two_matters() -> None:
    body = GeneralJournalBody(
        "Reallocate disbursements",
        (
            JournalLine("310", "a", cents(100), "", action_id=11),
            JournalLine("310", "b", cents(200), "", action_id=12),
            JournalLine("310", "c", cents(300), "", action_id=11),
            JournalLine("310", "d", cents(400), ""),
            JournalLine("420", "e", cents(-1000), ""),
        ),
    )
    (op,) = map_transaction(transaction(Kind.GENERAL_JOURNAL, body), TRACKED).operations
    assert isinstance(op.body, ManualJournal)
    assert [(jl.account_code, jl.line_amount, jl.tracked_action_id) for jl in op.body.journal_lines] == [
        ("310", 400, 11),
        ("310", 200, 12),
        ("310", 400, MATTER),
        ("420", -1000, MATTER),
    ]
    # Without reports by matter the same journal sums the account as before: one line per side.
    (untracked,) = map_transaction(transaction(Kind.GENERAL_JOURNAL, body), context(Profile.EXTENDED)).operations
    assert isinstance(untracked.body, ManualJournal)
    assert [(jl.account_code, jl.line_amount, jl.tracked_action_id) for jl in untracked.body.journal_lines] == [
        ("310", 1000, 0),
        ("420", -1000, 0),
    ]


def test_payments_allocations_and_transfers_have_no_lines_to_track() -> None:
    tx = transaction(Kind.CLIENT_BILL_PAYMENT, PaymentBody(1001, cents(500)))
    assert map_transaction(tx, TRACKED) == map_transaction(tx, context(Profile.EXTENDED))


def test_the_wire_answer_carries_the_matter_on_line_items_and_journal_lines() -> None:
    context_pb = samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
    context_pb.matter_tracking.enabled = True
    context_pb.matter_tracking.category_name = "Matter"
    sampled = samples.sample_transactions(1000)
    bill = map_request(mapper_pb2.MapTransactionRequest(transaction=sampled["client_bill"], context=context_pb))
    assert {item.tracked_action_id for item in bill.operations[0].invoice.line_items} == {7001}
    journal = map_request(mapper_pb2.MapTransactionRequest(transaction=sampled["trust_journal"], context=context_pb))
    assert [jl.tracked_action_id for jl in journal.operations[0].manual_journal.journal_lines] == [7001, 7002]
    general = to_proto(
        transaction(
            Kind.GENERAL_JOURNAL,
            GeneralJournalBody("n", (JournalLine("310", "", cents(5), "", 9), JournalLine("420", "", cents(-5), ""))),
        )
    )
    answer = map_request(mapper_pb2.MapTransactionRequest(transaction=general, context=context_pb))
    assert [jl.tracked_action_id for jl in answer.operations[0].manual_journal.journal_lines] == [9, 7001]


def test_the_wire_refuses_matter_tracking_in_the_compatible_profile() -> None:
    context_pb = samples.demo_context(mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE)
    context_pb.matter_tracking.enabled = True
    with pytest.raises(XerolinkError) as caught:
        map_request(
            mapper_pb2.MapTransactionRequest(
                transaction=samples.sample_transactions()["client_bill"], context=context_pb
            )
        )
    assert _preconditions(caught.value) == [(Reason.MAPPING_NOT_CONFIGURED, "context.matter_tracking")]


# Ledgers.

TRUST_ONLY = {
    Kind.TRUST_RECEIPT,
    Kind.TRUST_PAYMENT,
    Kind.TRUST_JOURNAL,
    Kind.TRUST_TRANSFER,
    Kind.TRUST_INTEREST,
    Kind.STATUTORY_FUNDS,
    Kind.ADVANCED_FUNDS,
}


def _by_name(kinds: set[Kind] | frozenset[Kind]) -> list[Kind]:
    return sorted(kinds, key=lambda kind: kind.name)


def _ledgers(ledgers: Ledgers, **changes: Any) -> MappingContext:
    return context(Profile.EXTENDED, ledgers=ledgers, **changes)


def test_the_kinds_of_each_ledger_are_as_the_contract_says() -> None:
    assert frozenset({*TRUST_ONLY, Kind.INVOICE_PAID_FROM_TRUST}) == sm.TRUST_KINDS
    assert frozenset(Kind) - sm.OFFICE_KINDS == TRUST_ONLY
    assert {Kind.INVOICE_PAID_FROM_TRUST} == sm.TRUST_KINDS & sm.OFFICE_KINDS


@pytest.mark.parametrize("ledgers", [Ledgers.OFFICE, Ledgers.TRUST])
def test_an_office_or_trust_organisation_needs_the_extended_profile(ledgers: Ledgers) -> None:
    ctx = context(Profile.ACTIONSTEP_COMPATIBLE, ledgers=ledgers)
    assert _preconditions(_error(_bill(), ctx)) == [(Reason.MAPPING_NOT_CONFIGURED, "context.ledgers")]


@pytest.mark.parametrize("ledgers", [Ledgers.UNSPECIFIED, Ledgers.OFFICE_AND_TRUST])
def test_office_and_trust_in_one_organisation_is_every_profiles_default(ledgers: Ledgers) -> None:
    assert map_transaction(_bill(), context(Profile.ACTIONSTEP_COMPATIBLE, ledgers=ledgers)).decision.supported


def _sample(kind: Kind) -> Transaction:
    """The sample of the kind in samples.py, as the domain reads it."""
    problems = Problems()
    tx = transaction_from_proto(samples.sample_transactions(1000)[FIELD_NAMES[kind]], problems)
    assert tx is not None and not problems
    return tx


@pytest.mark.parametrize("kind", _by_name(TRUST_ONLY))
def test_an_office_organisation_leaves_trust_kinds_to_the_trust_organisation(kind: Kind) -> None:
    outcome = map_transaction(_sample(kind), _ledgers(Ledgers.OFFICE))
    assert not outcome.decision.supported
    assert outcome.decision.reason_code == Reason.TRUST_IN_OTHER_ORGANISATION
    assert "trust organisation" in outcome.decision.reason
    assert outcome.operations == () and outcome.total == 0


@pytest.mark.parametrize("kind", _by_name(set(MAPPABLE_KINDS) - sm.TRUST_KINDS))
def test_a_trust_organisation_leaves_office_kinds_to_the_office_organisation(kind: Kind) -> None:
    tx = _sample(kind)
    assert map_transaction(tx, _ledgers(Ledgers.OFFICE)).decision.supported
    outcome = map_transaction(tx, _ledgers(Ledgers.TRUST))
    assert outcome.decision.reason_code == Reason.OFFICE_IN_OTHER_ORGANISATION
    assert not outcome.decision.supported and outcome.operations == ()


@pytest.mark.parametrize("kind", _by_name(TRUST_ONLY - {Kind.TRUST_TRANSFER}))
def test_a_trust_organisation_maps_trust_kinds_as_one_organisation_does(kind: Kind) -> None:
    tx = _sample(kind)
    assert map_transaction(tx, _ledgers(Ledgers.TRUST)) == map_transaction(tx, _ledgers(Ledgers.OFFICE_AND_TRUST))


def test_a_kind_that_is_never_posted_keeps_its_own_reason() -> None:
    for ledgers in (Ledgers.OFFICE, Ledgers.TRUST):
        tx = transaction(Kind.TRUST_BANK_RECONCILIATION, _sample(Kind.PURCHASE_ORDER).body)
        assert map_transaction(tx, _ledgers(ledgers)).decision.reason_code == sm.RECONCILED_IN_ACTIONSTEP
        tx = _sample(Kind.PURCHASE_ORDER)
        assert map_transaction(tx, _ledgers(ledgers)).decision.reason_code == sm.NOT_POSTED_BY_ACTIONSTEP


def test_the_organisation_comes_before_the_connection_conditions() -> None:
    tx = replace(_sample(Kind.TRUST_RECEIPT), header=replace(_sample(Kind.TRUST_RECEIPT).header, division_id=2))
    assert map_transaction(tx, _ledgers(Ledgers.OFFICE)).decision.reason_code == Reason.TRUST_IN_OTHER_ORGANISATION
    assert map_transaction(tx, _ledgers(Ledgers.TRUST)).decision.reason_code == sm.OTHER_DIVISION


def _without(ctx: MappingContext, *functions: str, untaxed: bool = False) -> MappingContext:
    allocation = {k: v for k, v in ctx.account_allocation.items() if k not in functions}
    return replace(ctx, account_allocation=allocation, untaxed=UntaxedTaxTypes() if untaxed else ctx.untaxed)


def test_an_office_organisation_maps_an_invoice_paid_from_trust_to_the_payment_alone() -> None:
    tx = transaction(Kind.INVOICE_PAID_FROM_TRUST, PaymentBody(1001, cents(40000), "091"))
    ctx = _without(_ledgers(Ledgers.OFFICE), TRUST_BANK, TRUST_LIABILITY, untaxed=True)
    outcome = map_transaction(tx, ctx)
    assert outcome.decision.supported
    (payment,) = outcome.operations
    assert payment.local_ref == "payment"
    assert payment.body == Payment(
        RecordKey(Kind.CLIENT_BILL, 1001),
        map_transaction(tx, _ledgers(Ledgers.OFFICE_AND_TRUST)).operations[1].body.document_type,  # type: ignore[union-attr]
        "090",
        date(2026, 3, 2),
        40000,
        "AS-1001",
    )
    assert outcome.total == 40000


def test_a_trust_organisation_maps_an_invoice_paid_from_trust_to_the_trust_spend_alone() -> None:
    tx = transaction(Kind.INVOICE_PAID_FROM_TRUST, PaymentBody(1001, cents(40000)))
    outcome = map_transaction(tx, _without(_ledgers(Ledgers.TRUST), OFFICE_BANK))
    assert outcome.decision.supported
    (spend,) = outcome.operations
    both = map_transaction(tx, _ledgers(Ledgers.OFFICE_AND_TRUST))
    assert spend == both.operations[0]
    assert spend.local_ref == "trust-spend"
    assert outcome.total == both.total == 40000


def test_each_half_still_needs_what_its_own_organisation_posts_to() -> None:
    tx = transaction(Kind.INVOICE_PAID_FROM_TRUST, PaymentBody(1001, cents(40000)))
    office = _error(tx, _without(_ledgers(Ledgers.OFFICE), OFFICE_BANK))
    assert _preconditions(office) == [(Reason.ACCOUNT_ALLOCATION_MISSING, OFFICE_BANK)]
    trust = _error(tx, _without(_ledgers(Ledgers.TRUST), TRUST_LIABILITY))
    assert _preconditions(trust) == [(Reason.ACCOUNT_ALLOCATION_MISSING, TRUST_LIABILITY)]


def test_a_trust_organisation_refuses_a_transfer_to_the_office_bank() -> None:
    to_office = transaction(Kind.TRUST_TRANSFER, TransferBody("", "090", cents(86000)))
    outcome = map_transaction(to_office, _ledgers(Ledgers.TRUST))
    assert not outcome.decision.supported
    assert outcome.decision.reason_code == Reason.TRANSFER_BETWEEN_ORGANISATIONS
    assert "one organisation" in outcome.decision.reason
    # Between two banks of the trust organisation it is a transfer as ever.
    between = transaction(Kind.TRUST_TRANSFER, TransferBody("", "094", cents(86000)))
    assert map_transaction(between, _ledgers(Ledgers.TRUST)) == map_transaction(between, _ledgers(Ledgers.UNSPECIFIED))
    # A trust organisation without an office bank allocated has no transfer to refuse on that ground.
    assert map_transaction(to_office, _without(_ledgers(Ledgers.TRUST), OFFICE_BANK)).decision.supported
    # In one organisation the office bank is one of its own.
    assert map_transaction(to_office, _ledgers(Ledgers.OFFICE_AND_TRUST)).decision.supported


def test_the_wire_reads_the_ledgers_and_refuses_one_it_does_not_know() -> None:
    sampled = samples.sample_transactions(1000)
    context_pb = samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
    context_pb.ledgers = mapper_pb2.ORGANISATION_LEDGERS_OFFICE
    receipt = map_request(mapper_pb2.MapTransactionRequest(transaction=sampled["trust_receipt"], context=context_pb))
    assert receipt.decision.reason_code == Reason.TRUST_IN_OTHER_ORGANISATION
    paid = map_request(
        mapper_pb2.MapTransactionRequest(transaction=sampled["invoice_paid_from_trust"], context=context_pb)
    )
    assert [op.local_ref for op in paid.operations] == ["payment"]
    context_pb.ledgers = 9  # type: ignore[assignment]
    with pytest.raises(XerolinkError) as caught:
        map_request(mapper_pb2.MapTransactionRequest(transaction=sampled["client_bill"], context=context_pb))
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert [v.field for v in caught.value.field_violations] == ["context.ledgers"]


# Reasons and the support matrix.


def test_the_new_reasons_say_where_the_transaction_belongs() -> None:
    assert "trust organisation's connection" in Reason.TRUST_IN_OTHER_ORGANISATION.sentence
    assert "office organisation's connection" in Reason.OFFICE_IN_OTHER_ORGANISATION.sentence
    assert "one organisation" in Reason.TRANSFER_BETWEEN_ORGANISATIONS.sentence


def test_the_options_are_extended_only_and_the_doc_shows_each_with_its_profile() -> None:
    names = [option.name for option in sm.OPTIONS]
    assert names == ["Reports by matter", "Trust in its own organisation", "Divisions to organisations"]
    text = support_matrix_doc.render()
    for option in sm.OPTIONS:
        assert option.profiles == (Profile.EXTENDED,)
        assert Profile.ACTIONSTEP_COMPATIBLE not in option.profiles
        assert option.name in text
    for reason in (
        Reason.TRUST_IN_OTHER_ORGANISATION,
        Reason.OFFICE_IN_OTHER_ORGANISATION,
        Reason.TRANSFER_BETWEEN_ORGANISATIONS,
    ):
        assert f"`{reason}`" in text


def test_list_support_matrix_does_not_list_the_options() -> None:
    response = support_matrix_response(mapper_pb2.POLICY_PROFILE_UNSPECIFIED)
    assert [c.reason_code for c in response.conditions] == [c.reason_code for c in sm.CONDITIONS]
    codes = {row.reason_code for row in response.rows} | {c.reason_code for c in response.conditions}
    assert not codes & {
        Reason.TRUST_IN_OTHER_ORGANISATION,
        Reason.OFFICE_IN_OTHER_ORGANISATION,
        Reason.TRANSFER_BETWEEN_ORGANISATIONS,
    }
