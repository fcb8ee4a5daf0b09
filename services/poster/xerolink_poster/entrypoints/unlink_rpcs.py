"""The unlink RPCs (UnlinkLinks, ListOrphans) and the ListLinks filters an operator selects by:
thin adapters over service_layer/unlinking.py, authorised per connection like every handler."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

import grpc
from google.protobuf import timestamp_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import unlink_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.errors import FieldViolation, invalid_argument
from xerolink_common.grpc_errors import translate_errors
from xerolink_common.reasons import Reason
from xerolink_common.security import require_connection

from xerolink_poster.domain.link_filter import LinkFilter
from xerolink_poster.domain.records import KNOWN_KINDS, RecordRef, XeroObjectRef
from xerolink_poster.domain.unlink_plan import Action, Outcome, link_name
from xerolink_poster.entrypoints import proto_mapping as pm
from xerolink_poster.entrypoints.request_context import actor_of, record_of
from xerolink_poster.service_layer import unlinking
from xerolink_poster.service_layer.posting import Poster

_XERO_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_ACTIONS = {
    Action.UNLINK: unlink_pb2.UNLINK_ACTION_UNLINK,
    Action.CASCADE: unlink_pb2.UNLINK_ACTION_CASCADE,
    Action.ALREADY_UNLINKED: unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED,
    Action.REFUSED: unlink_pb2.UNLINK_ACTION_REFUSED,
}


def link_filter(request: poster_pb2.ListLinksRequest, group: int, state: str) -> LinkFilter:
    """The ListLinks filters beyond group and state, validated: bad input is refused, never read
    as "no filter" (which would select everything)."""
    violations: list[FieldViolation] = []
    violations.extend(
        FieldViolation(f"kinds[{i}]", f"{kind} is not a transaction kind")
        for i, kind in enumerate(request.kinds)
        if kind not in KNOWN_KINDS
    )
    for name in ("action_id", "participant_id"):
        if getattr(request, name) < 0:
            violations.append(FieldViolation(name, "must be a positive Actionstep id, or 0 for any"))
    start_set, end_set = request.HasField("update_time_start"), request.HasField("update_time_end")
    start = _micros(request.update_time_start if start_set else None, "update_time_start", violations)
    end = _micros(request.update_time_end if end_set else None, "update_time_end", violations)
    if start and end and start >= end:
        violations.append(FieldViolation("update_time_end", "must be after update_time_start"))
    if request.xero_id and not _XERO_ID.fullmatch(request.xero_id):
        violations.append(FieldViolation("xero_id", "a Xero id: letters, digits and '-', at most 64 characters"))
    if violations:
        raise invalid_argument(
            Reason.INVALID_LINK_FILTER, "the link filters are not valid; fix the fields listed", violations
        )
    return LinkFilter(
        group=group,
        state=state,
        kinds=tuple(sorted(set(request.kinds))),
        action_id=request.action_id,
        participant_id=request.participant_id,
        updated_from_us=start,
        updated_to_us=end,
        xero_id=request.xero_id,
        drifted=request.drifted,
    )


def _micros(value: timestamp_pb2.Timestamp | None, name: str, violations: list[FieldViolation]) -> int:
    if value is None:
        return 0
    if value.seconds <= 0 or value.seconds > 253402300799 or not 0 <= value.nanos < 1_000_000_000:
        violations.append(FieldViolation(name, "a time between 1970 and 9999"))
        return 0
    return int(value.ToMicroseconds())


def _orphan(connection_id: str, record: RecordRef, obj: XeroObjectRef) -> unlink_pb2.OrphanedXeroObject:
    """An object a preview would orphan (not stored, so no name)."""
    return unlink_pb2.OrphanedXeroObject(
        connection_id=connection_id,
        record=pm.record_key(record),
        type=obj.type,  # type: ignore[arg-type]
        xero_id=obj.xero_id,
        local_ref=obj.local_ref,
        number=obj.number,
    )


class StoredOrphan(Protocol):
    """What a message needs of an orphan the registry holds (its row, read by the service layer)."""

    id: int | None
    connection_id: str
    kind: int
    record_id: int
    generation: int
    object_type: int
    xero_id: str
    local_ref: str
    number: str
    orphaned_us: int
    actor: str
    reason: str


def orphan_message(row: StoredOrphan) -> unlink_pb2.OrphanedXeroObject:
    return unlink_pb2.OrphanedXeroObject(
        name=f"connections/{row.connection_id}/orphans/{row.id}",
        connection_id=row.connection_id,
        record=pm.record_key(RecordRef(row.kind, row.record_id)),
        generation=row.generation,
        type=row.object_type,  # type: ignore[arg-type]
        xero_id=row.xero_id,
        local_ref=row.local_ref,
        number=row.number,
        orphan_time=pm.timestamp(row.orphaned_us),
        actor=row.actor,
        reason=row.reason,
    )


def _outcome_message(
    connection_id: str, outcome: Outcome, stored: Sequence[StoredOrphan] | None
) -> unlink_pb2.UnlinkOutcome:
    """One outcome; the other half of a record kept in two organisations is an outcome of its own
    whose link_name (and orphans' connection_id) names the other connection."""
    connection_id = outcome.connection_id or connection_id
    message = unlink_pb2.UnlinkOutcome(
        record=pm.record_key(outcome.record),
        action=_ACTIONS[outcome.action],
        link_name=link_name(connection_id, outcome.record),
        blocked_by=[pm.record_key(b) for b in outcome.blocked_by],
        orphaned=[orphan_message(r) for r in stored]
        if stored is not None
        else [_orphan(connection_id, outcome.record, o) for o in outcome.orphans],
    )
    if outcome.cascaded_from is not None:
        message.cascaded_from.CopyFrom(pm.record_key(outcome.cascaded_from))
    if outcome.error is not None:
        message.error.CopyFrom(pm.item_error(outcome.error))
    return message


def _record_filter(request: unlink_pb2.ListOrphansRequest) -> RecordRef | None:
    return record_of(request.record, "record") if request.HasField("record") else None


class UnlinkRpcs:
    """Mixed into PosterServicer."""

    # The database comes with the service layer's Poster, so entrypoints never name an adapter.
    poster: Poster

    @translate_errors
    def UnlinkLinks(
        self, request: unlink_pb2.UnlinkLinksRequest, context: grpc.ServicerContext
    ) -> unlink_pb2.UnlinkLinksResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        result = unlinking.unlink_links(
            self.poster.db,
            request.connection_id,
            [(int(r.kind), int(r.id)) for r in request.records],
            names=list(request.names),
            validate_only=request.validate_only,
            confirm=request.confirm,
            cascade=request.cascade,
            reason=request.reason,
            actor=actor_of(context),
        )
        return unlink_pb2.UnlinkLinksResponse(
            outcomes=[
                _outcome_message(
                    request.connection_id,
                    o,
                    None
                    if request.validate_only
                    else result.orphans.get((o.connection_id or request.connection_id, o.record), []),
                )
                for o in result.outcomes
            ],
            validate_only=request.validate_only,
            unlinked_count=result.unlinked,
        )

    @translate_errors
    def ListOrphans(
        self, request: unlink_pb2.ListOrphansRequest, context: grpc.ServicerContext
    ) -> unlink_pb2.ListOrphansResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        if request.type not in xero_pb2.ObjectType.values():
            raise invalid_argument(
                Reason.UNKNOWN_OBJECT_TYPE,
                f"type {request.type} is not a Xero object type",
                [FieldViolation("type", "use an ObjectType value")],
            )
        rows, token = unlinking.list_orphans(
            self.poster.db,
            request.connection_id,
            _record_filter(request),
            int(request.type),
            request.page_size,
            request.page_token,
        )
        return unlink_pb2.ListOrphansResponse(orphans=[orphan_message(r) for r in rows], next_page_token=token)
