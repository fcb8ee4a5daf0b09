"""What a correction request answers: a plan or a stored saga as a view, and a refusal as an error."""

from __future__ import annotations

from dataclasses import dataclass

from xerolink_common.errors import XerolinkError, failed_precondition, not_found

from xerolink_poster.domain import corrections as dom
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer.ports import Saga, notes_of


@dataclass(frozen=True)
class CorrectionView:
    """A plan (no id, state PLANNED) or a saga as stored."""

    correction_id: str
    connection_id: str
    record: RecordRef
    intent: dom.Intent
    state: dom.SagaState
    steps: tuple[dom.Step, ...]
    xero_status: str = ""
    notes: tuple[str, ...] = ()
    create_us: int = 0
    update_us: int = 0


def view_of(saga: Saga) -> CorrectionView:
    row = saga.row
    return CorrectionView(
        row.correction_id,
        row.connection_id,
        RecordRef(row.kind, row.record_id),
        dom.Intent(row.intent),
        dom.SagaState(row.state),
        saga.steps,
        row.xero_status,
        tuple(notes_of(row)),
        row.create_us,
        row.update_us,
    )


def refusal_of(exc: dom.NotCorrectable) -> XerolinkError:
    if exc.not_found:
        return not_found(exc.reason, exc.message)
    return failed_precondition(exc.reason, exc.message)
