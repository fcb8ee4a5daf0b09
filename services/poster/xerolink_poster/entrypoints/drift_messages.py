"""Drift records as messages (xerolink.poster.v1.Drift), for ListDrift, ResolveDrift and the
open drifts on a Link."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

from google.protobuf import timestamp_pb2
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2

from xerolink_poster.domain.records import RecordRef, link_name
from xerolink_poster.entrypoints import proto_mapping as pm
from xerolink_poster.service_layer.ports import DriftRow, LinkRow

STATES = {"open": drift_pb2.DRIFT_STATE_OPEN, "resolved": drift_pb2.DRIFT_STATE_RESOLVED}
SOURCES = {
    "webhook": drift_pb2.DRIFT_SOURCE_WEBHOOK,
    "poll": drift_pb2.DRIFT_SOURCE_POLL,
    "posting": drift_pb2.DRIFT_SOURCE_POSTING,
    "reconcile": drift_pb2.DRIFT_SOURCE_RECONCILE,
}


def drift_name(connection_id: str, drift_id: int | None) -> str:
    return f"connections/{connection_id}/drifts/{drift_id or 0}"


def _enum(enum: object, prefix: str, name: str) -> int:
    """The number of `prefix + name` in a proto enum; 0 (UNSPECIFIED) for a name it lacks."""
    values: Mapping[str, int] = getattr(enum, "DESCRIPTOR").values_by_name  # noqa: B009
    value = values.get(f"{prefix}{name}")
    return int(getattr(value, "number", 0)) if value is not None else 0


_MS = re.compile(r"/Date\((\d+)([+-]\d{4})?\)/")


def xero_time(updated: str) -> timestamp_pb2.Timestamp | None:
    """Xero's UpdatedDateUTC ("/Date(1782864000000+0000)/", milliseconds since the epoch, UTC)
    as a timestamp; None when it is not one."""
    match = _MS.fullmatch(updated.strip())
    if match is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(int(match.group(1)))
    return stamp


def drift_message(row: DriftRow, link: LinkRow | None) -> drift_pb2.Drift:
    message = drift_pb2.Drift(
        name=drift_name(row.connection_id, row.id),
        drift_id=str(row.id or 0),
        connection_id=row.connection_id,
        object_type=row.object_type,  # type: ignore[arg-type]
        xero_id=row.xero_id,
        kind=_enum(drift_pb2.DriftKind, "DRIFT_KIND_", row.kind),  # type: ignore[arg-type]
        state=STATES.get(row.state, drift_pb2.DRIFT_STATE_UNSPECIFIED),
        differences=[
            drift_pb2.FieldDifference(field=d["field"], posted=d["posted"], xero=d["xero"])
            for d in json.loads(row.differences or "[]")
        ],
        description=row.description,
        source=SOURCES.get(row.source, drift_pb2.DRIFT_SOURCE_UNSPECIFIED),
        detect_time=pm.timestamp(row.detected_us),
        resolution=_enum(drift_pb2.DriftResolution, "DRIFT_RESOLUTION_", row.resolution),  # type: ignore[arg-type]
        resolved_by=row.resolved_by,
        resolve_note=row.resolve_note,
    )
    if link is not None:
        record = RecordRef(link.kind, link.record_id)
        message.link = link_name(link.connection_id, record)
        message.record.CopyFrom(pm.record_key(record))
    updated = xero_time(row.xero_updated)
    if updated is not None:
        message.xero_update_time.CopyFrom(updated)
    if row.resolved_us:
        message.resolve_time.CopyFrom(pm.timestamp(row.resolved_us))
    return message


def with_drifts(message: poster_pb2.Link, link: LinkRow, drifts: Sequence[DriftRow]) -> poster_pb2.Link:
    """The link's message with its open drifts."""
    message.drifts.extend(drift_message(row, link) for row in drifts)
    return message
