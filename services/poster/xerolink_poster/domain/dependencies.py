"""Which records an operation needs linked first, and how its document references resolve to
Xero ids. Operations are the mapper's xerolink.xero.v1.Operation messages (plain data)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from xerolink.xero.v1 import objects_pb2 as xero_pb2

from xerolink_poster.domain.records import RecordRef, XeroObjectRef

OBJECT_TYPE_BY_BODY: Mapping[str, int] = {
    "invoice": xero_pb2.OBJECT_TYPE_INVOICE,
    "credit_note": xero_pb2.OBJECT_TYPE_CREDIT_NOTE,
    "payment": xero_pb2.OBJECT_TYPE_PAYMENT,
    "allocation": xero_pb2.OBJECT_TYPE_ALLOCATION,
    "bank_transaction": xero_pb2.OBJECT_TYPE_BANK_TRANSACTION,
    "bank_transfer": xero_pb2.OBJECT_TYPE_BANK_TRANSFER,
    "manual_journal": xero_pb2.OBJECT_TYPE_MANUAL_JOURNAL,
}


def body_of(operation: xero_pb2.Operation) -> str:
    name = operation.WhichOneof("body")
    if name is None:
        raise ValueError(f"operation {operation.local_ref!r} has no body")
    return name


def document_refs(operation: xero_pb2.Operation) -> list[tuple[xero_pb2.DocumentRef, int]]:
    """The document references of an operation with the Xero object type each must resolve to."""
    body = body_of(operation)
    if body == "payment":
        return [(operation.payment.document, operation.payment.document_type)]
    if body == "allocation":
        return [
            (operation.allocation.credit_note, xero_pb2.OBJECT_TYPE_CREDIT_NOTE),
            (operation.allocation.invoice, xero_pb2.OBJECT_TYPE_INVOICE),
        ]
    return []


def record_of(ref: xero_pb2.DocumentRef) -> RecordRef | None:
    if ref.WhichOneof("target") == "record":
        return RecordRef(int(ref.record.kind), int(ref.record.id))
    return None


def record_dependencies(operations: Iterable[xero_pb2.Operation]) -> list[RecordRef]:
    """Other Actionstep records that must be linked before these operations can run."""
    found = {record for op in operations for ref, _ in document_refs(op) if (record := record_of(ref)) is not None}
    return sorted(found)


def next_operation(
    operations: Sequence[xero_pb2.Operation], done: Iterable[XeroObjectRef]
) -> xero_pb2.Operation | None:
    """The first operation not yet performed (operations run in the mapper's order)."""
    performed = {obj.local_ref for obj in done}
    return next((op for op in operations if op.local_ref not in performed), None)


def resolve(
    ref: xero_pb2.DocumentRef,
    wanted_type: int,
    own: Iterable[XeroObjectRef],
    linked_objects: Callable[[RecordRef], list[XeroObjectRef] | None],
) -> XeroObjectRef | None:
    """The Xero object a reference points at: an earlier operation of the same posting, or the
    object of the wanted type held by another record's link (None when not linked)."""
    target = ref.WhichOneof("target")
    if target == "local_ref":
        # By type too: an overpayment transaction's operation holds the BankTransaction and the
        # Overpayment Xero made with it, and a refund must pay the Overpayment's own id.
        return next((o for o in own if o.local_ref == ref.local_ref and o.type == wanted_type), None)
    record = record_of(ref)
    if record is None:
        return None
    objects = linked_objects(record)
    if objects is None:
        return None
    return next((o for o in objects if o.type == wanted_type), None)
