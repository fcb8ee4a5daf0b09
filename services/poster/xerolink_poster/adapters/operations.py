"""The mapper's xerolink.xero.v1.Operation messages as the poster reads them: their body, the
records they need linked first, and their document references resolved by the domain's rules
(domain/dependencies.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from xerolink.xero.v1 import objects_pb2 as xero_pb2

from xerolink_poster.domain.dependencies import later_operations, next_operation, resolve_target
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, XeroObjectRef

__all__ = [
    "OBJECT_TYPE_BY_BODY",
    "body_of",
    "document_refs",
    "later_operations",
    "next_operation",
    "record_dependencies",
    "record_of",
    "resolve",
]

OBJECT_TYPE_BY_BODY: Mapping[str, ObjectType] = {
    "invoice": ObjectType.INVOICE,
    "credit_note": ObjectType.CREDIT_NOTE,
    "payment": ObjectType.PAYMENT,
    "allocation": ObjectType.ALLOCATION,
    "bank_transaction": ObjectType.BANK_TRANSACTION,
    "bank_transfer": ObjectType.BANK_TRANSFER,
    "manual_journal": ObjectType.MANUAL_JOURNAL,
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
            (operation.allocation.credit_note, ObjectType.CREDIT_NOTE),
            (operation.allocation.invoice, ObjectType.INVOICE),
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


def resolve(
    ref: xero_pb2.DocumentRef,
    wanted_type: int,
    own: Iterable[XeroObjectRef],
    linked_objects: Callable[[RecordRef], list[XeroObjectRef] | None],
) -> XeroObjectRef | None:
    """The Xero object a reference points at (see resolve_target)."""
    local_ref = ref.local_ref if ref.WhichOneof("target") == "local_ref" else None
    return resolve_target(local_ref, record_of(ref), wanted_type, own, linked_objects)
