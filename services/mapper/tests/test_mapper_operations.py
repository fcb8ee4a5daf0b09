"""The Xero operations of each supported kind: what they are, the order, and what they depend on."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from mapper_factories import cents, context, line, totals_of, transaction
from mapper_strategies import transactions
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import (
    ApplicationBody,
    BankAmountBody,
    BankEntryBody,
    ChartAccount,
    DocumentBody,
    FundsBody,
    FundsDirection,
    Kind,
    OverpaymentRefundBody,
    PaymentBody,
    Profile,
    RecordKey,
    Transaction,
    TransferBody,
    TrustJournalBody,
)
from xerolink_mapper.domain.xero import (
    Allocation,
    BankTransaction,
    BankTransactionType,
    BankTransfer,
    CreditNote,
    CreditNoteType,
    DocumentType,
    Invoice,
    InvoiceType,
    LineAmountTypes,
    LocalRef,
    ManualJournal,
    Operation,
    Payment,
)


def ops(tx: Transaction, profile: Profile = Profile.ACTIONSTEP_COMPATIBLE) -> tuple[Operation, ...]:
    outcome = map_transaction(tx, context(profile))
    assert outcome.decision.supported, outcome.decision
    return outcome.operations


def test_invoice_paid_from_trust_is_a_trust_spend_then_a_payment_on_the_linked_invoice() -> None:
    spend, payment = ops(transaction(Kind.INVOICE_PAID_FROM_TRUST, PaymentBody(1001, cents(40000))))
    assert isinstance(spend.body, BankTransaction) and isinstance(payment.body, Payment)
    assert spend.body.type is BankTransactionType.SPEND
    assert spend.body.bank_account_code == "091"
    assert [(i.account_code, i.line_amount) for i in spend.body.line_items] == [("850", 40000)]
    assert spend.body.line_amount_types is LineAmountTypes.NO_TAX
    assert payment.body.document == RecordKey(Kind.CLIENT_BILL, 1001)
    assert payment.body.document_type is DocumentType.INVOICE
    # Into the office bank: the trust bank is credited once, by the SPEND, and nothing is left
    # in a clearing account that no later transaction could clear.
    assert payment.body.account_code == "090"
    assert payment.body.amount == 40000


def test_a_client_bill_payment_waits_for_its_invoice_by_record() -> None:
    (op,) = ops(transaction(Kind.CLIENT_BILL_PAYMENT, PaymentBody(1001, cents(5000))))
    assert isinstance(op.body, Payment)
    assert op.body.document == RecordKey(Kind.CLIENT_BILL, 1001)
    assert op.body.account_code == "090"  # the allocated office bank
    (named,) = ops(transaction(Kind.CLIENT_BILL_PAYMENT, PaymentBody(1001, cents(5000), "094")))
    assert named.body.account_code == "094"  # type: ignore[union-attr]


def test_credit_note_and_its_application() -> None:
    lines = [line("200", "GST", 10000, 1000)]
    (note,) = ops(transaction(Kind.CREDIT_NOTE, DocumentBody("CN-1", tuple(lines), totals_of(lines))))
    assert isinstance(note.body, CreditNote) and note.body.type is CreditNoteType.ACCRECCREDIT
    assert note.body.total == 11000
    (applied,) = ops(transaction(Kind.CREDIT_NOTE_APPLICATION, ApplicationBody(55, 1001, cents(11000))))
    assert applied.body == Allocation(
        RecordKey(Kind.CREDIT_NOTE, 55),
        RecordKey(Kind.CLIENT_BILL, 1001),
        11000,
        applied.body.date,
    )


def test_supplier_documents_are_accpay_and_their_applications_refer_to_supplier_records() -> None:
    lines = [line("420", "GST", 10000, 1000)]
    body = DocumentBody("S-1", tuple(lines), totals_of(lines), due_date=date(2026, 4, 1))
    (bill,) = ops(transaction(Kind.SUPPLIER_INVOICE, body))
    assert isinstance(bill.body, Invoice) and bill.body.type is InvoiceType.ACCPAY
    (credit,) = ops(transaction(Kind.SUPPLIER_CREDIT, DocumentBody("SC-1", tuple(lines), totals_of(lines))))
    assert credit.body.type is CreditNoteType.ACCPAYCREDIT  # type: ignore[union-attr]
    (applied,) = ops(transaction(Kind.SUPPLIER_CREDIT_APPLICATION, ApplicationBody(8, 9, cents(1))))
    assert isinstance(applied.body, Allocation)
    assert (applied.body.credit_note, applied.body.invoice) == (
        RecordKey(Kind.SUPPLIER_CREDIT, 8),
        RecordKey(Kind.SUPPLIER_INVOICE, 9),
    )
    (paid,) = ops(transaction(Kind.SUPPLIER_INVOICE_PAYMENT, PaymentBody(9, cents(11000))))
    assert paid.body.document == RecordKey(Kind.SUPPLIER_INVOICE, 9)  # type: ignore[union-attr]


def test_overpayment_refund_creates_the_overpayment_then_refunds_it_by_local_reference() -> None:
    body = OverpaymentRefundBody(77, cents(2500), cents(2500))
    overpayment, refund = ops(transaction(Kind.OVERPAYMENT_REFUND, body), Profile.EXTENDED)
    assert isinstance(overpayment.body, BankTransaction) and isinstance(refund.body, Payment)
    assert overpayment.body.type is BankTransactionType.RECEIVE_OVERPAYMENT
    assert overpayment.body.total == 2500
    assert refund.body.document == LocalRef(overpayment.local_ref)
    assert refund.body.document_type is DocumentType.OVERPAYMENT
    assert refund.body.amount == 2500


def test_a_partial_overpayment_refund_is_refused_so_a_second_cannot_recreate_the_overpayment() -> None:
    """Receipt 900 overpaid by 100.00, refunded 30.00 then 70.00: mapped one by one, each refund
    would create a 100.00 overpayment and the bank would show 200.00 received."""
    body = OverpaymentRefundBody(900, cents(10000), cents(3000))
    with pytest.raises(XerolinkError) as err:
        map_transaction(transaction(Kind.OVERPAYMENT_REFUND, body), context(Profile.EXTENDED))
    assert err.value.code is ErrorCode.INVALID_ARGUMENT
    assert [v.field for v in err.value.field_violations] == ["transaction.overpayment_refund.refund_amount"]


def test_credit_note_refund_is_a_payment_on_the_linked_credit_note() -> None:
    (op,) = ops(transaction(Kind.CREDIT_NOTE_REFUND, PaymentBody(55, cents(300))), Profile.EXTENDED)
    assert op.body.document == RecordKey(Kind.CREDIT_NOTE, 55)  # type: ignore[union-attr]
    assert op.body.document_type is DocumentType.CREDIT_NOTE  # type: ignore[union-attr]


def test_trust_receipt_payment_and_interest_are_bank_transactions_on_the_trust_bank() -> None:
    (receipt,) = ops(transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(100))))
    (payment,) = ops(transaction(Kind.TRUST_PAYMENT, BankAmountBody(cents(100))))
    (interest,) = ops(transaction(Kind.TRUST_INTEREST, BankAmountBody(cents(100))))
    shapes = [
        (op.body.type, op.body.bank_account_code, op.body.line_items[0].account_code)  # type: ignore[union-attr]
        for op in (receipt, payment, interest)
    ]
    assert shapes == [
        (BankTransactionType.RECEIVE, "091", "850"),
        (BankTransactionType.SPEND, "091", "850"),
        (BankTransactionType.RECEIVE, "091", "270"),
    ]


def test_trust_journal_moves_liability_from_one_matter_to_the_other() -> None:
    (op,) = ops(transaction(Kind.TRUST_JOURNAL, TrustJournalBody(7001, 7002, cents(30000))))
    assert isinstance(op.body, ManualJournal)
    assert [(jl.account_code, jl.line_amount) for jl in op.body.journal_lines] == [("850", 30000), ("850", -30000)]
    assert "7001" in op.body.journal_lines[0].description and "7002" in op.body.journal_lines[1].description


def test_trust_transfer_leaves_the_trust_bank_unless_told_otherwise() -> None:
    (op,) = ops(transaction(Kind.TRUST_TRANSFER, TransferBody("", "090", cents(100))))
    assert op.body == BankTransfer("091", "090", 100, op.body.date, "AS-1001")


def test_statutory_funds_move_between_trust_bank_and_the_statutory_account_both_ways() -> None:
    out = ops(transaction(Kind.STATUTORY_FUNDS, FundsBody(FundsDirection.OUT_OF_TRUST, "", "", cents(100))))
    back = ops(transaction(Kind.ADVANCED_FUNDS, FundsBody(FundsDirection.INTO_TRUST, "", "", cents(100))))
    assert [(o.body.from_bank_account_code, o.body.to_bank_account_code) for o in out + back] == [  # type: ignore[union-attr]
        ("091", "092"),
        ("093", "091"),
    ]


def test_statutory_funds_held_on_a_non_bank_account_become_a_bank_transaction() -> None:
    ctx = context()
    assert ctx.chart is not None
    chart = dict(ctx.chart)
    chart["092"] = ChartAccount("092", "Statutory Deposit", "CURRASSET", "ACTIVE")
    tx = transaction(Kind.STATUTORY_FUNDS, FundsBody(FundsDirection.OUT_OF_TRUST, "", "", cents(100)))
    (op,) = map_transaction(tx, context(chart=chart)).operations
    assert isinstance(op.body, BankTransaction)
    assert (op.body.type, op.body.bank_account_code, op.body.line_items[0].account_code) == (
        BankTransactionType.SPEND,
        "091",
        "092",
    )


def test_unlinked_bank_entries_and_office_transfers_in_the_extended_profile() -> None:
    lines = [line("420", "GST", 100, 10)]
    (deposit,) = ops(
        transaction(Kind.BANK_DEPOSIT, BankEntryBody("", tuple(lines), totals_of(lines))), Profile.EXTENDED
    )
    (withdrawal,) = ops(
        transaction(Kind.BANK_WITHDRAWAL, BankEntryBody("094", tuple(lines), totals_of(lines))), Profile.EXTENDED
    )
    assert (deposit.body.type, deposit.body.bank_account_code) == (BankTransactionType.RECEIVE, "090")  # type: ignore[union-attr]
    assert (withdrawal.body.type, withdrawal.body.bank_account_code) == (BankTransactionType.SPEND, "094")  # type: ignore[union-attr]
    assert deposit.body.line_items[0].tax_type == "OUTPUT"  # type: ignore[union-attr]
    assert withdrawal.body.line_items[0].tax_type == "INPUT"  # type: ignore[union-attr]


@settings(max_examples=150, deadline=None)
@given(transactions())
def test_local_references_are_unique_and_point_only_backwards(tx: Transaction) -> None:
    seen: set[str] = set()
    for op in map_transaction(tx, context(Profile.EXTENDED)).operations:
        for ref in _refs(op):
            if isinstance(ref, LocalRef):
                assert ref.local_ref in seen, "an operation may only depend on an earlier one"
        assert op.local_ref and op.local_ref not in seen
        seen.add(op.local_ref)


def _refs(op: Operation) -> list[object]:
    if isinstance(op.body, Payment):
        return [op.body.document]
    if isinstance(op.body, Allocation):
        return [op.body.credit_note, op.body.invoice]
    return []
