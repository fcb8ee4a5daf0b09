"""PlanCorrection, ApplyCorrection and GetCorrection: a mixin of the poster's servicer. Thin:
the work is in service_layer/correcting.py."""

from __future__ import annotations

import grpc
from xerolink.poster.v1 import correction_pb2
from xerolink_common.errors import FieldViolation, invalid_argument
from xerolink_common.grpc_errors import translate_errors
from xerolink_common.reasons import Reason
from xerolink_common.security import require_connection

from xerolink_poster.domain import corrections as dom
from xerolink_poster.entrypoints import proto_mapping as pm
from xerolink_poster.entrypoints.request_context import actor_of, record_of
from xerolink_poster.service_layer.correcting import Corrections, CorrectionView
from xerolink_poster.service_layer.posting import Poster

_STEP_STATES = {
    dom.StepState.PENDING: correction_pb2.CORRECTION_STEP_STATE_PENDING,
    dom.StepState.IN_PROGRESS: correction_pb2.CORRECTION_STEP_STATE_IN_PROGRESS,
    dom.StepState.DONE: correction_pb2.CORRECTION_STEP_STATE_DONE,
    dom.StepState.FAILED: correction_pb2.CORRECTION_STEP_STATE_FAILED,
}
_SAGA_STATES = {
    dom.SagaState.PLANNED: correction_pb2.CORRECTION_STATE_PLANNED,
    dom.SagaState.RUNNING: correction_pb2.CORRECTION_STATE_RUNNING,
    dom.SagaState.FAILED: correction_pb2.CORRECTION_STATE_FAILED,
    dom.SagaState.COMPLETED: correction_pb2.CORRECTION_STATE_COMPLETED,
}


def correction_message(view: CorrectionView) -> correction_pb2.Correction:
    message = correction_pb2.Correction(
        name=f"connections/{view.connection_id}/corrections/{view.correction_id}" if view.correction_id else "",
        correction_id=view.correction_id,
        connection_id=view.connection_id,
        record=pm.record_key(view.record),
        intent=int(view.intent),  # type: ignore[arg-type]
        state=_SAGA_STATES[view.state],
        xero_status=view.xero_status,
        notes=list(view.notes),
    )
    if view.create_us:
        message.create_time.CopyFrom(pm.timestamp(view.create_us))
        message.update_time.CopyFrom(pm.timestamp(view.update_us))
    for order, step in enumerate(view.steps, start=1):
        item = message.steps.add(
            order=order,
            action=int(step.action),
            actor=int(step.actor),
            description=step.description,
            state=_STEP_STATES[step.state],
            detail=step.detail,
            xero_type=step.xero_type,
            xero_id=step.xero_id,
            # The contract's reason is a failure's; a done step's (INVOICE_NUMBER_KEPT) is the registry's.
            reason=step.reason if step.state == dom.StepState.FAILED else "",
            attempts=step.attempts,
        )
        if step.record is not None:
            item.record.CopyFrom(pm.record_key(step.record))
        if step.update_us:
            item.update_time.CopyFrom(pm.timestamp(step.update_us))
    return message


def _intent(value: int) -> dom.Intent:
    if value not in (dom.Intent.EDIT, dom.Intent.DELETE):
        raise invalid_argument(
            Reason.INVALID_INTENT,
            "say what the Actionstep user will do with the record: EDIT or DELETE",
            [FieldViolation("intent", "CORRECTION_INTENT_EDIT or CORRECTION_INTENT_DELETE")],
        )
    return dom.Intent(value)


class CorrectionRpcs:
    """Needs `corrections`, set by bootstrap. (The request helpers live in grpc_servicer, which
    imports this module: they are imported when called.)"""

    corrections: Corrections
    poster: Poster

    @translate_errors
    def PlanCorrection(
        self, request: correction_pb2.PlanCorrectionRequest, context: grpc.ServicerContext
    ) -> correction_pb2.PlanCorrectionResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        record = record_of(request.record, "record")
        view = self.corrections.plan(request.connection_id, record, _intent(request.intent))
        return correction_pb2.PlanCorrectionResponse(correction=correction_message(view))

    @translate_errors
    def ApplyCorrection(
        self, request: correction_pb2.ApplyCorrectionRequest, context: grpc.ServicerContext
    ) -> correction_pb2.ApplyCorrectionResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        record = record_of(request.record, "record")
        intent = _intent(request.intent)
        view = self.corrections.apply(request.connection_id, record, intent, actor_of(context))
        return correction_pb2.ApplyCorrectionResponse(correction=correction_message(view))

    @translate_errors
    def GetCorrection(
        self, request: correction_pb2.GetCorrectionRequest, context: grpc.ServicerContext
    ) -> correction_pb2.GetCorrectionResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        view = self.corrections.get(request.connection_id, record_of(request.record, "record"))
        return correction_pb2.GetCorrectionResponse(correction=correction_message(view))
