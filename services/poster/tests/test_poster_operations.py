"""Reading the mapper's Operation messages: their dependencies, their document references
resolved, the order they run in."""

from __future__ import annotations

from xerolink.actionstep.v1 import common_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.adapters import operations as deps
from xerolink_poster.domain.records import RecordRef, XeroObjectRef


def _payment(record: RecordRef | None = None, local_ref: str = "") -> xero_pb2.Operation:
    document = (
        xero_pb2.DocumentRef(record=common_pb2.RecordKey(kind=record.kind, id=record.id))  # type: ignore[arg-type]
        if record
        else xero_pb2.DocumentRef(local_ref=local_ref)
    )
    return xero_pb2.Operation(
        local_ref="payment",
        payment=xero_pb2.Payment(document=document, document_type=xero_pb2.OBJECT_TYPE_INVOICE),
    )


def test_dependencies_resolve_to_the_linked_record_or_an_earlier_operation() -> None:
    bill = RecordRef(1, 500)
    operations = [_payment(bill)]
    assert deps.record_dependencies(operations) == [bill]
    invoice = XeroObjectRef(xero_pb2.OBJECT_TYPE_INVOICE, "inv-1", "invoice", "INV-500")
    ref, wanted = deps.document_refs(operations[0])[0]
    assert deps.resolve(ref, wanted, [], lambda r: None) is None  # not linked: wait
    assert deps.resolve(ref, wanted, [], lambda r: [invoice] if r == bill else None) == invoice
    own = XeroObjectRef(xero_pb2.OBJECT_TYPE_INVOICE, "inv-2", "invoice")
    local = _payment(local_ref="invoice")
    local_ref, local_wanted = deps.document_refs(local)[0]
    assert deps.resolve(local_ref, local_wanted, [own], lambda r: None) == own


def test_the_next_operation_is_the_first_not_yet_performed() -> None:
    first = xero_pb2.Operation(local_ref="trust-spend", bank_transaction=xero_pb2.BankTransaction())
    second = _payment(RecordRef(1, 1))
    done = [XeroObjectRef(xero_pb2.OBJECT_TYPE_BANK_TRANSACTION, "bt-1", "trust-spend")]
    assert deps.next_operation([first, second], []) is first
    assert deps.next_operation([first, second], done) is second
    assert deps.next_operation([first], done) is None


def test_an_allocation_refers_to_its_credit_note_and_invoice() -> None:
    credit, bill = RecordRef(3, 7), RecordRef(1, 8)
    allocation = xero_pb2.Operation(
        local_ref="allocation",
        allocation=xero_pb2.Allocation(
            credit_note=xero_pb2.DocumentRef(record=common_pb2.RecordKey(kind=3, id=7)),  # type: ignore[arg-type]
            invoice=xero_pb2.DocumentRef(record=common_pb2.RecordKey(kind=1, id=8)),  # type: ignore[arg-type]
        ),
    )
    refs = deps.document_refs(allocation)
    assert [(deps.record_of(ref), wanted) for ref, wanted in refs] == [
        (credit, xero_pb2.OBJECT_TYPE_CREDIT_NOTE),
        (bill, xero_pb2.OBJECT_TYPE_INVOICE),
    ]
    assert deps.record_dependencies([allocation]) == [bill, credit]
