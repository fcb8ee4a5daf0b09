"""ListDrift and ResolveDrift: a mixin of the poster's servicer (docs/drift.md)."""

from __future__ import annotations

import grpc
from xerolink.poster.v1 import drift_pb2
from xerolink_common.errors import FieldViolation, invalid_argument
from xerolink_common.grpc_errors import translate_errors
from xerolink_common.reasons import Reason
from xerolink_common.security import require_connection

from xerolink_poster.domain.records import parse_link_name
from xerolink_poster.entrypoints.drift_messages import drift_message
from xerolink_poster.service_layer import drift_views
from xerolink_poster.service_layer.posting import Poster

_STATES = {
    drift_pb2.DRIFT_STATE_UNSPECIFIED: "",
    drift_pb2.DRIFT_STATE_OPEN: "open",
    drift_pb2.DRIFT_STATE_RESOLVED: "resolved",
}


def drift_filter(request: drift_pb2.ListDriftRequest) -> drift_views.DriftFilter:
    """ListDrift's filters, validated: an enum number this version does not know, or a link that
    is not a link of the connection, is refused rather than read as "no filter"."""
    violations: list[FieldViolation] = []
    if request.state not in _STATES:
        violations.append(FieldViolation("state", "use a DriftState value (OPEN or RESOLVED), or leave it unset"))
    kinds: list[str] = []
    for i, kind in enumerate(request.kinds):
        if kind == drift_pb2.DRIFT_KIND_UNSPECIFIED or kind not in drift_pb2.DriftKind.values():
            violations.append(FieldViolation(f"kinds[{i}]", f"{kind} is not a drift kind; use a DriftKind value"))
        else:
            kinds.append(drift_pb2.DriftKind.Name(kind).removeprefix("DRIFT_KIND_"))
    link = None
    if request.link:
        named = parse_link_name(request.link)
        if named is None:
            violations.append(FieldViolation("link", "a link name: connections/{connection_id}/links/{kind}/{id}"))
        elif named[0] != request.connection_id:
            violations.append(FieldViolation("link", f"a link of connection {request.connection_id!r}"))
        else:
            link = named[1]
    if violations:
        raise invalid_argument(
            Reason.INVALID_DRIFT_FILTER, "the drift filters are not valid; fix the fields listed", violations
        )
    return drift_views.DriftFilter(_STATES.get(request.state, ""), tuple(sorted(set(kinds))), link)


class DriftRpcs:
    """Mixed into PosterServicer."""

    poster: Poster

    @translate_errors
    def ListDrift(
        self, request: drift_pb2.ListDriftRequest, context: grpc.ServicerContext
    ) -> drift_pb2.ListDriftResponse:
        require_connection(request.connection_id)
        self.poster.require_known_connection(request.connection_id)
        wanted = drift_filter(request)
        rows, token = drift_views.list_drifts(
            self.poster.db, request.connection_id, wanted, request.page_size, request.page_token
        )
        return drift_pb2.ListDriftResponse(
            drifts=[drift_message(row, link) for row, link in rows], next_page_token=token
        )

    def ResolveDrift(
        self, request: drift_pb2.ResolveDriftRequest, context: grpc.ServicerContext
    ) -> drift_pb2.ResolveDriftResponse:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "ResolveDrift is not implemented yet")
        raise AssertionError("abort raises")
