"""The mapper's operations as Xero elements: exact amounts, deterministic references."""

from __future__ import annotations

from decimal import Decimal

import pytest
from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.adapters import xero_json
from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.domain.matters import LineTracking


def _invoice() -> xero_pb2.Operation:
    return xero_pb2.Operation(
        local_ref="invoice",
        invoice=xero_pb2.Invoice(
            type=xero_pb2.INVOICE_TYPE_ACCREC,
            date=date_pb2.Date(year=2026, month=3, day=2),
            invoice_number="INV-1",
            reference="AS-1",
            line_amount_types=xero_pb2.LINE_AMOUNT_TYPES_EXCLUSIVE,
            line_items=[
                xero_pb2.LineItem(
                    description="Advice",
                    quantity="1.5",
                    unit_amount="200.0333",
                    account_code="200",
                    tax_type="OUTPUT",
                    line_amount=money_pb2.Money(units=30005),
                    tax_amount=money_pb2.Money(units=3001),
                )
            ],
            status=xero_pb2.DOCUMENT_STATUS_AUTHORISED,
        ),
    )


def test_an_invoice_element_carries_exact_amounts_and_the_contact_id() -> None:
    element = payloads.element_of(_invoice(), "AS-1", "contact-1", {})
    assert element["Contact"] == {"ContactID": "contact-1"}
    [line] = element["LineItems"]
    assert (line["LineAmount"], line["TaxAmount"], line["UnitAmount"]) == (
        Decimal("300.05"),
        Decimal("30.01"),
        Decimal("200.0333"),
    )
    raw = xero_json.dumps(element)
    assert b'"LineAmount":300.05' in raw and b'"UnitAmount":200.0333' in raw
    assert xero_json.loads(raw)["LineItems"][0]["TaxAmount"] == Decimal("30.01")


def test_references_are_deterministic_and_mark_each_posting_cycle() -> None:
    bill, payment = common_pb2.TRANSACTION_KIND_CLIENT_BILL, common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
    assert payloads.tracking_reference("INV-1", bill, 1, 1) == "INV-1 [AS-CB-1]"
    assert payloads.tracking_reference("", payment, 77, 1) == "[AS-CBP-77]"
    assert payloads.tracking_reference("INV-1", bill, 1, 3) == "INV-1 [AS-CB-1] #3"
    # Nothing Xero might trim: the value sent is the value a look-up asks for.
    assert payloads.tracking_reference("  INV-1 ", bill, 1, 1) == "INV-1 [AS-CB-1]"


def test_two_records_with_the_same_user_reference_never_share_a_tracking_reference() -> None:
    # Two instalments both referenced "Smith": a look-up for one must never find the other.
    payment = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
    assert payloads.tracking_reference("Smith", payment, 7001, 1) != payloads.tracking_reference(
        "Smith", payment, 7002, 1
    )


def test_every_kind_has_its_own_code() -> None:
    kinds = [k for k in common_pb2.TransactionKind.values() if k != common_pb2.TRANSACTION_KIND_UNSPECIFIED]
    codes = [payloads.kind_code(k) for k in kinds]
    assert len(set(codes)) == len(codes), sorted(codes)


def test_a_payment_is_looked_up_by_reference_and_amount() -> None:
    payment = xero_pb2.Operation(
        local_ref="payment",
        payment=xero_pb2.Payment(
            document_type=xero_pb2.OBJECT_TYPE_INVOICE, amount=money_pb2.Money(units=50000), reference="AS-2"
        ),
    )
    lookup = payloads.lookup_of(payment, "AS-2 #2", "")
    assert lookup is not None
    assert (lookup.resource, lookup.where) == ("Payments", 'Reference=="AS-2 #2" AND Amount==500.00')
    assert lookup.tagged({"Reference": "AS-2 #2"}) and not lookup.tagged({"Reference": "as-2 #2"})
    # Looked up with other records' tags, by Reference alone: the amount is checked on the object.
    assert lookup.clause == 'Reference=="AS-2 #2"'
    assert lookup.matches({"Reference": "AS-2 #2", "Amount": 500}) is True
    assert lookup.matches({"Reference": "AS-2 #2", "Amount": "500.0"}) is True
    assert lookup.matches({"Reference": "AS-2 #2", "Amount": 50}) is False
    assert lookup.matches({"Reference": "AS-2 #3", "Amount": 500}) is False
    # Its own tag and an amount that cannot be read: garbled, neither "this one" nor "not this one".
    for garbled in ({}, {"Amount": None}, {"Amount": "garbled"}, {"Amount": [500]}):
        assert lookup.matches({"Reference": "AS-2 #2", **garbled}) is None, garbled


def test_a_grouped_invoice_look_up_checks_the_type_on_each_object_listed() -> None:
    invoice = xero_pb2.Invoice(type=xero_pb2.INVOICE_TYPE_ACCREC, reference="AS-5")
    lookup = payloads.lookup_of(xero_pb2.Operation(local_ref="invoice", invoice=invoice), "AS-5 #1", "")
    assert lookup is not None
    assert (lookup.clause, lookup.type) == ('Reference=="AS-5 #1"', "ACCREC")
    assert lookup.matches({"Reference": "AS-5 #1", "Type": "ACCREC"}) is True
    assert lookup.matches({"Reference": "AS-5 #1", "Type": "ACCPAY"}) is False
    assert lookup.matches({"Reference": "AS-5 #1"}) is None
    assert lookup.matches({"Reference": "AS-5 #1", "Type": 7}) is None


def _document(kind: str, number: str) -> xero_pb2.Operation:
    if kind in ("ACCREC", "ACCPAY"):
        invoice = xero_pb2.Invoice(type=getattr(xero_pb2, f"INVOICE_TYPE_{kind}"), invoice_number=number, reference="R")
        return xero_pb2.Operation(local_ref="doc", invoice=invoice)
    note = xero_pb2.CreditNote(
        type=getattr(xero_pb2, f"CREDIT_NOTE_TYPE_{kind}"), credit_note_number=number, reference="R"
    )
    return xero_pb2.Operation(local_ref="doc", credit_note=note)


def test_the_tag_rides_in_a_field_xero_keeps_for_each_document_type() -> None:
    """Xero's OpenAPI: Invoice.Reference "ACCREC only", CreditNote.Reference "ACCRECCREDIT only".
    On bills and supplier credits the tag goes in the number (Xero keeps it and shows it as the
    bill's reference); the look-up filters on that field, never on the dropped Reference."""
    cases = {
        "ACCREC": ("R", "Reference", "Invoices"),
        "ACCPAY": ("SUP-1", "InvoiceNumber", "Invoices"),
        "ACCRECCREDIT": ("R", "Reference", "CreditNotes"),
        "ACCPAYCREDIT": ("SC-1", "CreditNoteNumber", "CreditNotes"),
    }
    for kind, (base, field, resource) in cases.items():
        operation = _document(kind, "SUP-1" if kind == "ACCPAY" else "SC-1" if kind == "ACCPAYCREDIT" else "N-1")
        assert payloads.tag_base(operation) == base, kind
        tag = f"{base} [AS-X-1]"
        element = payloads.element_of(operation, tag, "contact", {})
        assert element[field] == tag, kind
        if kind in ("ACCPAY", "ACCPAYCREDIT"):
            assert "Reference" not in element, f"{kind}: Xero drops Reference, sending it misleads"
        lookup = payloads.lookup_of(operation, tag, "contact")
        assert lookup is not None and lookup.resource == resource
        assert f'Type=="{kind}"' in lookup.where and f'{field}=="{tag}"' in lookup.where, lookup.where


def test_an_overpayment_is_tagged_in_its_first_line_and_its_own_id_is_kept() -> None:
    """BankTransaction.Reference is "Only supported for SPEND and RECEIVE transactions"; and Xero
    gives the Overpayment an id of its own (BankTransaction.OverpaymentID), which a refund pays."""
    operation = xero_pb2.Operation(
        local_ref="overpayment",
        bank_transaction=xero_pb2.BankTransaction(
            type=xero_pb2.BANK_TRANSACTION_TYPE_RECEIVE_OVERPAYMENT,
            bank_account_code="090",
            reference="Smith",
            line_items=[xero_pb2.LineItem(description="Client overpayment", line_amount=money_pb2.Money(units=2500))],
        ),
    )
    tag = payloads.tracking_reference(payloads.tag_base(operation), 6, 12, 1)
    assert tag == "Client overpayment [AS-OR-12]"
    element = payloads.element_of(operation, tag, "c-1", {})
    assert "Reference" not in element and element["LineItems"][0]["Description"] == tag
    lookup = payloads.lookup_of(operation, tag, "c-1")
    assert lookup is not None and 'Contact.ContactID==Guid("c-1")' in lookup.where
    assert lookup.tagged({"LineItems": [{"Description": tag}]}) and not lookup.tagged({"LineItems": []})
    answer = {"BankTransactionID": "bt-1", "OverpaymentID": "op-1"}
    objects = payloads.created_objects("bank_transaction", "overpayment", answer)
    assert [(o.type, o.xero_id) for o in objects] == [
        (xero_pb2.OBJECT_TYPE_BANK_TRANSACTION, "bt-1"),
        (xero_pb2.OBJECT_TYPE_OVERPAYMENT, "op-1"),
    ]


def test_bank_transfers_go_one_per_call_without_summarize_errors() -> None:
    """Xero's OpenAPI declares summarizeErrors on PUT Invoices, Payments, BankTransactions... but
    not on PUT BankTransfers: there is no outcome per element to read from a batch."""
    transfer = xero_pb2.Operation(local_ref="t", bank_transfer=xero_pb2.BankTransfer(from_bank_account_code="090"))
    assert not payloads.target_of(transfer, {}).per_element
    assert payloads.target_of(_document("ACCREC", "N-1"), {}).per_element


def test_an_answered_amount_is_compared_with_the_sent_one_as_a_number() -> None:
    # A look-up that compared text would miss an allocation Xero wrote as 100 and create it again.
    same: list[object] = ["100", "100.0", "100.00", 100, Decimal("100.000")]
    other: list[object] = ["100.01", "99.99", "", None, "abc", "-100.00"]
    for answered in same:
        assert payloads.same_amount(answered, Decimal("100.00")), answered
    for answered in other:
        assert not payloads.same_amount(answered, Decimal("100.00")), answered


MATTER_5 = LineTracking("cat-1", "Matter", "opt-5", "5")


def test_a_tracked_line_carries_its_matters_option_by_ids_and_names() -> None:
    operation = _invoice()
    operation.invoice.line_items[0].tracked_action_id = 5
    operation.invoice.line_items.add(description="Untracked", account_code="200", line_amount=money_pb2.Money(units=1))
    element = payloads.element_of(operation, "AS-1", "contact-1", {}, {5: MATTER_5})
    tracked, untracked = element["LineItems"]
    # Xero's OpenAPI LineItemTracking holds all four; which pair Xero requires is not documented.
    assert tracked["Tracking"] == [
        {"TrackingCategoryID": "cat-1", "TrackingOptionID": "opt-5", "Name": "Matter", "Option": "5"}
    ]
    assert "Tracking" not in untracked


def test_a_tracked_journal_line_carries_its_own_matters_option() -> None:
    operation = xero_pb2.Operation(
        local_ref="journal",
        manual_journal=xero_pb2.ManualJournal(
            narration="Transfer",
            date=date_pb2.Date(year=2026, month=3, day=2),
            journal_lines=[
                xero_pb2.JournalLine(account_code="800", line_amount=money_pb2.Money(units=100), tracked_action_id=5),
                xero_pb2.JournalLine(account_code="801", line_amount=money_pb2.Money(units=-100)),
            ],
        ),
    )
    element = payloads.element_of(operation, "[AS-GJ-1]", "", {}, {5: MATTER_5})
    first, second = element["JournalLines"]
    assert first["Tracking"] == [
        {"TrackingCategoryID": "cat-1", "TrackingOptionID": "opt-5", "Name": "Matter", "Option": "5"}
    ]
    assert "Tracking" not in second
    assert payloads.tracked_matters(operation) == {5}


def test_a_tracked_line_without_its_option_is_never_sent_untracked() -> None:
    operation = _invoice()
    operation.invoice.line_items[0].tracked_action_id = 6
    with pytest.raises(payloads.MissingTracking):
        payloads.element_of(operation, "AS-1", "contact-1", {}, {5: MATTER_5})
    # Without tracking on (the connection's context), the matter is not carried.
    assert "Tracking" not in payloads.element_of(operation, "AS-1", "contact-1", {}, None)["LineItems"][0]


def test_the_matters_of_a_mapped_posting_are_those_every_operation_carries_on_a_line() -> None:
    bill = _invoice()
    bill.invoice.line_items[0].tracked_action_id = 7001
    journal = xero_pb2.Operation(
        local_ref="journal",
        manual_journal=xero_pb2.ManualJournal(
            journal_lines=[
                xero_pb2.JournalLine(line_amount=money_pb2.Money(units=-100), tracked_action_id=7001),
                xero_pb2.JournalLine(line_amount=money_pb2.Money(units=100), tracked_action_id=7002),
            ],
        ),
    )
    mapped = mapper_pb2.MapTransactionResponse(operations=[bill, journal])
    assert payloads.matters_of_mapped(mapped.SerializeToString()) == {7001, 7002}
    untracked = mapper_pb2.MapTransactionResponse(operations=[_invoice()])
    assert payloads.matters_of_mapped(untracked.SerializeToString()) == set()
