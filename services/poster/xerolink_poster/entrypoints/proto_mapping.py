"""Registry rows as xerolink.poster.v1 messages."""

from __future__ import annotations

import json

from google.protobuf import timestamp_pb2
from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.type.v1 import errors_pb2
from xerolink_common.errors import XerolinkError, bounded

from xerolink_poster.domain.records import RecordRef, link_name
from xerolink_poster.entrypoints.connection_messages import status_message
from xerolink_poster.service_layer.errors_json import parse_error
from xerolink_poster.service_layer.ports import AuditRow, ConnectionRow, LinkRow, PostingRow
from xerolink_poster.service_layer.posting_values import ItemFailure, PostOutcome
from xerolink_poster.service_layer.queries import xero_objects
from xerolink_poster.service_layer.routing_changes import routing_message

STATE_TO_PROTO = {
    "pending": poster_pb2.LINK_STATE_PENDING,
    "waiting": poster_pb2.LINK_STATE_WAITING,
    "linked": poster_pb2.LINK_STATE_LINKED,
    "failed": poster_pb2.LINK_STATE_FAILED,
    "unlinked": poster_pb2.LINK_STATE_UNLINKED,
}
PROTO_TO_STATE = {v: k for k, v in STATE_TO_PROTO.items()}


def timestamp(us: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(us)
    return ts


def record_key(record: RecordRef) -> common_pb2.RecordKey:
    return common_pb2.RecordKey(kind=record.kind, id=record.id)  # type: ignore[arg-type]


def item_error(err: XerolinkError) -> errors_pb2.ItemError:
    err = bounded(err)
    return errors_pb2.ItemError(
        code=err.code.value,
        reason=err.reason,
        message=err.message,
        field_violations=[
            errors_pb2.FieldViolation(field=v.field, description=v.description) for v in err.field_violations
        ]
        + [
            errors_pb2.FieldViolation(field=v.subject, description=f"{v.type}: {v.description}")
            for v in err.precondition_violations
        ],
    )


def link_message(link: LinkRow, audit: list[AuditRow] | None = None) -> poster_pb2.Link:
    error = parse_error(link.last_error)
    message = poster_pb2.Link(
        name=link_name(link.connection_id, RecordRef(link.kind, link.record_id)),
        connection_id=link.connection_id,
        record=record_key(RecordRef(link.kind, link.record_id)),
        group=link.link_group,  # type: ignore[arg-type]
        state=STATE_TO_PROTO.get(link.state, poster_pb2.LINK_STATE_UNSPECIFIED),
        xero_objects=[
            poster_pb2.XeroObject(type=o.type, xero_id=o.xero_id, local_ref=o.local_ref, number=o.number)  # type: ignore[arg-type]
            for o in xero_objects(link)
        ],
        content_fingerprint=link.fingerprint,
        attempts=link.attempts,
        waiting_on=[record_key(RecordRef(k, i)) for k, i in json.loads(link.waiting_on)],
        create_time=timestamp(link.create_us),
        update_time=timestamp(link.update_us),
        audit=[
            poster_pb2.AuditEntry(
                time=timestamp(a.time_us),
                actor=a.actor,
                event=a.event,
                from_state=STATE_TO_PROTO.get(a.from_state, poster_pb2.LINK_STATE_UNSPECIFIED),
                to_state=STATE_TO_PROTO.get(a.to_state, poster_pb2.LINK_STATE_UNSPECIFIED),
                detail=a.detail,
            )
            for a in audit or []
        ],
    )
    if error:
        message.last_error.CopyFrom(
            errors_pb2.ItemError(
                code=error["code"],
                reason=error["reason"],
                message=error["message"],
                field_violations=[errors_pb2.FieldViolation(**v) for v in error["field_violations"]],
            )
        )
    return message


def explained(decision: mapper_pb2.Decision) -> mapper_pb2.Decision:
    """The decision with its outcome set: decisions stored before the mapper sent one have none,
    and a refusal's JSON would otherwise carry nothing that says it is one."""
    if decision.outcome == mapper_pb2.DECISION_OUTCOME_UNSPECIFIED:
        decision.outcome = (
            mapper_pb2.DECISION_OUTCOME_SUPPORTED if decision.supported else mapper_pb2.DECISION_OUTCOME_NOT_SUPPORTED
        )
    return decision


def posting_message(posting: PostingRow, link: LinkRow | None, duplicate: bool = False) -> poster_pb2.Posting:
    decision = mapper_pb2.Decision()
    decision.ParseFromString(posting.decision)
    explained(decision)
    message = poster_pb2.Posting(
        name=f"postings/{posting.posting_id}",
        posting_id=posting.posting_id,
        connection_id=posting.connection_id,
        record=record_key(RecordRef(posting.kind, posting.record_id)),
        decision=decision,
        state=STATE_TO_PROTO.get(posting.state, poster_pb2.LINK_STATE_UNSPECIFIED),
        content_fingerprint=posting.fingerprint,
        duplicate=duplicate,
        create_time=timestamp(posting.create_us),
    )
    if link is not None:
        message.link.CopyFrom(link_message(link))
    return message


def outcome_message(outcome: PostOutcome, connection_id: str) -> poster_pb2.Posting:
    if outcome.posting is None:
        # Not supported: nothing was stored. The unnamed posting is kept for v1 callers that read
        # posting.decision; post_outcome and the decision beside it say plainly what happened.
        return poster_pb2.Posting(
            connection_id=connection_id,
            record=record_key(outcome.record),
            decision=explained(_copy(outcome.decision)),
            state=poster_pb2.LINK_STATE_UNSPECIFIED,
            content_fingerprint=outcome.fingerprint,
        )
    return posting_message(outcome.posting, outcome.link, outcome.duplicate)


def _copy(decision: mapper_pb2.Decision) -> mapper_pb2.Decision:
    copied = mapper_pb2.Decision()
    copied.CopyFrom(decision)
    return copied


def post_outcome(outcome: PostOutcome) -> poster_pb2.PostOutcome.ValueType:
    if outcome.posting is None:
        return poster_pb2.POST_OUTCOME_NOT_SUPPORTED
    return poster_pb2.POST_OUTCOME_DUPLICATE if outcome.duplicate else poster_pb2.POST_OUTCOME_ACCEPTED


def post_response(outcome: PostOutcome, connection_id: str) -> poster_pb2.PostTransactionResponse:
    posting = outcome_message(outcome, connection_id)
    return poster_pb2.PostTransactionResponse(posting=posting, outcome=post_outcome(outcome), decision=posting.decision)


def results_messages(results: list[PostOutcome | ItemFailure], connection_id: str) -> list[poster_pb2.PostResult]:
    out = []
    for index, result in enumerate(results):
        if isinstance(result, ItemFailure):
            out.append(poster_pb2.PostResult(index=index, error=item_error(result.error)))
        else:
            posting = outcome_message(result, connection_id)
            out.append(
                poster_pb2.PostResult(
                    index=index, posting=posting, post_outcome=post_outcome(result), decision=posting.decision
                )
            )
    return out


def connection_message(row: ConnectionRow) -> poster_pb2.Connection:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(row.mapping_context)
    return poster_pb2.Connection(
        name=f"connections/{row.connection_id}",
        connection_id=row.connection_id,
        xero_base_url=row.xero_base_url,
        xero_tenant_id=row.xero_tenant_id,
        mapping_context=context,
        create_time=timestamp(row.create_us),
        status=status_message(row),
        xero_app=row.xero_app,
        routing=routing_message(row),
    )
