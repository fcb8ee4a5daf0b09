"""Which Xero object an operation's document reference stands for, and which operation of a
posting runs next. Plain rules: reading the mapper's Operation messages is
adapters/operations.py's job."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from xerolink_poster.domain.records import RecordRef, XeroObjectRef


class Performable(Protocol):
    """An operation as far as ordering goes: the reference its Xero objects are recorded under."""

    @property
    def local_ref(self) -> str: ...


OperationT = TypeVar("OperationT", bound=Performable)


def next_operation(operations: Sequence[OperationT], done: Iterable[XeroObjectRef]) -> OperationT | None:
    """The first operation not yet performed (operations run in the mapper's order)."""
    performed = {obj.local_ref for obj in done}
    return next((op for op in operations if op.local_ref not in performed), None)


def later_operations(operations: Sequence[OperationT], done: Iterable[XeroObjectRef]) -> list[OperationT]:
    """The operations not yet performed after the next one."""
    performed = {obj.local_ref for obj in done}
    return [op for op in operations if op.local_ref not in performed][1:]


def resolve_target(
    local_ref: str | None,
    record: RecordRef | None,
    wanted_type: int,
    own: Iterable[XeroObjectRef],
    linked_objects: Callable[[RecordRef], list[XeroObjectRef] | None],
) -> XeroObjectRef | None:
    """The Xero object a reference points at: an earlier operation of the same posting (local_ref),
    or the object of the wanted type held by another record's link (None when not linked)."""
    if local_ref is not None:
        # By type too: an overpayment transaction's operation holds the BankTransaction and the
        # Overpayment Xero made with it, and a refund must pay the Overpayment's own id.
        return next((o for o in own if o.local_ref == local_ref and o.type == wanted_type), None)
    if record is None:
        return None
    objects = linked_objects(record)
    if objects is None:
        return None
    return next((o for o in objects if o.type == wanted_type), None)
