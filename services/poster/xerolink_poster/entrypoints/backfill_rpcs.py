"""RunPreflight, StartBackfill, GetBackfill and WatchBackfill: a mixin of PosterServicer."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import backfill_pb2
from xerolink.type.v1 import errors_pb2
from xerolink_common.errors import FieldViolation, invalid_argument, not_found
from xerolink_common.grpc_errors import translate_errors, translate_stream_errors
from xerolink_common.money import ISO_4217
from xerolink_common.reasons import Reason
from xerolink_common.security import current_caller, require_connection

from xerolink_poster.domain import preflight
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState
from xerolink_poster.entrypoints import proto_mapping as pm
from xerolink_poster.entrypoints.request_context import actor_of
from xerolink_poster.service_layer import backfill
from xerolink_poster.service_layer.connections import request_id_violations
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.posting import Poster
from xerolink_poster.service_layer.preflight_checks import run_preflight

_STATUS = {
    preflight.Status.PASS: backfill_pb2.PREFLIGHT_STATUS_PASS,
    preflight.Status.WARNING: backfill_pb2.PREFLIGHT_STATUS_WARNING,
    preflight.Status.FAIL: backfill_pb2.PREFLIGHT_STATUS_FAIL,
}
_PROFILE = {
    preflight.Profile.COMPATIBLE: mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE,
    preflight.Profile.EXTENDED: mapper_pb2.POLICY_PROFILE_EXTENDED,
}
_BILL_STATUS = {
    backfill_pb2.BILL_STATUS_DRAFT: "draft",
    backfill_pb2.BILL_STATUS_OPEN: backfill.OPEN,
    backfill_pb2.BILL_STATUS_CLOSED: "closed",
    backfill_pb2.BILL_STATUS_DELETED: "deleted",
}
_OUTCOME = {
    "accepted": backfill_pb2.BACKFILL_ITEM_OUTCOME_ACCEPTED,
    "already_done": backfill_pb2.BACKFILL_ITEM_OUTCOME_ALREADY_DONE,
    "refused": backfill_pb2.BACKFILL_ITEM_OUTCOME_REFUSED,
}
_ITEM_STATE = {
    LinkState.PENDING: backfill_pb2.BACKFILL_ITEM_STATE_PENDING,
    LinkState.WAITING: backfill_pb2.BACKFILL_ITEM_STATE_WAITING,
    LinkState.LINKED: backfill_pb2.BACKFILL_ITEM_STATE_LINKED,
    LinkState.FAILED: backfill_pb2.BACKFILL_ITEM_STATE_FAILED,
    LinkState.UNLINKED: backfill_pb2.BACKFILL_ITEM_STATE_UNLINKED,
}


def _check_shape(request: backfill_pb2.StartBackfillRequest) -> None:
    """Values no Actionstep bill has, refused with the whole request (nothing recorded), unlike
    the facts about a bill that refuse it item by item (docs/backfill.md)."""
    violations = request_id_violations(request.request_id)
    for i, bill in enumerate(request.bills[: backfill.MAX_BILLS]):
        if bill.status != backfill_pb2.BILL_STATUS_UNSPECIFIED and bill.status not in _BILL_STATUS:
            violations.append(
                FieldViolation(f"bills[{i}].status", "a BillStatus value: OPEN, CLOSED, DRAFT or DELETED")
            )
        if not bill.HasField("total_due"):
            continue
        due, total = bill.total_due.units, bill.bill.client_bill.totals.inclusive.units
        if due < 0 or (bill.bill.HasField("client_bill") and due > total):
            violations.append(
                FieldViolation(
                    f"bills[{i}].total_due.units",
                    "Actionstep's totalDue in cents: from 0 to the bill's inclusive total",
                )
            )
        if bill.total_due.currency_code and not ISO_4217.fullmatch(bill.total_due.currency_code):
            violations.append(
                FieldViolation(f"bills[{i}].total_due.currency_code", "an ISO-4217 code such as AUD, or empty")
            )
    if violations:
        raise invalid_argument(
            Reason.INVALID_BACKFILL_REQUEST, "the backfill request is not valid; fix the fields listed", violations
        )


def _bill_input(bill: backfill_pb2.BackfillBill) -> backfill.BillInput:
    return backfill.BillInput(
        bill=bill.bill,
        status=_BILL_STATUS.get(bill.status, ""),
        total_due_cents=bill.total_due.units if bill.HasField("total_due") else None,
        total_due_currency=bill.total_due.currency_code,
        payments=list(bill.payments),
    )


def _error(text: str | None) -> errors_pb2.ItemError | None:
    if not text:
        return None
    error = json.loads(text)
    return errors_pb2.ItemError(
        code=error["code"],
        reason=error["reason"],
        message=error["message"],
        field_violations=[errors_pb2.FieldViolation(**v) for v in error["field_violations"]],
    )


def backfill_message(view: backfill.BackfillView) -> backfill_pb2.Backfill:
    p = view.progress
    message = backfill_pb2.Backfill(
        name=f"backfills/{view.row.backfill_id}",
        backfill_id=view.row.backfill_id,
        connection_id=view.row.connection_id,
        state=backfill_pb2.BACKFILL_STATE_DONE if p.done else backfill_pb2.BACKFILL_STATE_RUNNING,
        bills=view.row.bills,
        total=p.total,
        accepted=p.accepted,
        already_done=p.already_done,
        refused=p.refused,
        pending=p.pending,
        waiting=p.waiting,
        linked=p.linked,
        failed=p.failed,
        unlinked=p.unlinked,
        create_time=pm.timestamp(view.row.create_us),
        request_id=view.row.request_id,
    )
    for item in view.items:
        row = item.row
        out = message.items.add(
            bill_index=row.bill_index,
            record=pm.record_key(RecordRef(row.kind, row.record_id)),
            outcome=_OUTCOME[row.outcome],
            state=_ITEM_STATE.get(item.state, backfill_pb2.BACKFILL_ITEM_STATE_UNSPECIFIED)
            if item.state
            else backfill_pb2.BACKFILL_ITEM_STATE_UNSPECIFIED,
            posting=f"postings/{row.posting_id}" if row.posting_id else "",
        )
        error = _error(item.error)
        if error is not None:
            out.error.CopyFrom(error)
    return message


class BackfillRpcs:
    # The database comes with the service layer's Poster, so entrypoints never name an adapter.
    poster: Poster
    changes: StateChanges

    def _visible(self, name: str) -> str:
        """A backfill of a connection the caller may not use looks exactly like a missing one."""
        backfill_id = backfill.backfill_id_of(name)
        view = backfill.get_backfill(self.poster.db, backfill_id)
        if not current_caller().may_use(view.row.connection_id):
            raise not_found(Reason.BACKFILL_NOT_FOUND, f"no backfill {backfill_id}; start one with StartBackfill")
        return backfill_id

    @translate_errors
    def RunPreflight(
        self, request: backfill_pb2.RunPreflightRequest, context: grpc.ServicerContext
    ) -> backfill_pb2.RunPreflightResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        facts, checks = run_preflight(self.poster.db, request.connection_id, list(request.division_ids) or None)
        return backfill_pb2.RunPreflightResponse(
            checks=[
                backfill_pb2.PreflightCheck(
                    check=c.check,
                    status=_STATUS[c.status],
                    # A check that passes refuses nothing, so it names no refusal reason.
                    reason_code="" if _STATUS[c.status] == backfill_pb2.PREFLIGHT_STATUS_PASS else c.reason_code,
                    profiles=[_PROFILE[p] for p in c.profiles],
                    message=c.message,
                )
                for c in checks
            ],
            ready=not preflight.failed(checks),
            profile=_PROFILE[facts.profile],
        )

    @translate_errors
    def StartBackfill(
        self, request: backfill_pb2.StartBackfillRequest, context: grpc.ServicerContext
    ) -> backfill_pb2.StartBackfillResponse:
        require_connection(request.connection_id)
        _check_shape(request)
        backfill_id = backfill.start_backfill(
            self.poster,
            request.connection_id,
            [_bill_input(b) for b in request.bills],
            request.request_id,
            actor_of(context),
        )
        view = backfill.get_backfill(self.poster.db, backfill_id)
        return backfill_pb2.StartBackfillResponse(backfill=backfill_message(view))

    @translate_errors
    def GetBackfill(
        self, request: backfill_pb2.GetBackfillRequest, context: grpc.ServicerContext
    ) -> backfill_pb2.GetBackfillResponse:
        backfill_id = self._visible(request.name)
        return backfill_pb2.GetBackfillResponse(
            backfill=backfill_message(backfill.get_backfill(self.poster.db, backfill_id))
        )

    @translate_stream_errors
    def WatchBackfill(
        self, request: backfill_pb2.WatchBackfillRequest, context: grpc.ServicerContext
    ) -> Iterator[backfill_pb2.WatchBackfillResponse]:
        backfill_id = self._visible(request.name)
        for view in backfill.watch_backfill(self.poster.db, backfill_id, self.changes, lambda: not context.is_active()):
            yield backfill_pb2.WatchBackfillResponse(backfill=backfill_message(view))
