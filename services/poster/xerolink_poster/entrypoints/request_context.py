"""What every RPC handler reads from a request: who is calling (for the audit trail) and which
Actionstep record a request names. Kept apart from the servicer so its mixins can import it."""

from __future__ import annotations

import grpc
from xerolink_common.errors import FieldViolation, invalid_argument
from xerolink_common.reasons import Reason
from xerolink_common.security import LOCAL_DEVELOPER, current_caller, require_connection

from xerolink_poster.domain.records import KNOWN_KINDS, RecordRef, parse_link_name


def actor_of(context: grpc.ServicerContext) -> str:
    """Who the audit trail names: the authenticated caller, else what an unauthenticated local
    caller says it is, else its address."""
    caller = current_caller()
    if caller is not LOCAL_DEVELOPER:
        return f"caller:{caller.name}"[:128]
    metadata = dict(context.invocation_metadata() or ())
    return f"caller:{metadata.get('x-xerolink-actor') or context.peer() or 'unknown'}"[:128]


def record_of(request_record: object, field: str) -> RecordRef:
    """The record a request names; INVALID_ARGUMENT on `field` without a known kind and a positive id."""
    kind = int(getattr(request_record, "kind", 0))
    record_id = int(getattr(request_record, "id", 0))
    if kind not in KNOWN_KINDS or record_id <= 0:
        raise invalid_argument(
            Reason.INVALID_RECORD,
            "record needs a transaction kind and the record's positive Actionstep id",
            [FieldViolation(field, "kind: a TransactionKind value (e.g. TRANSACTION_KIND_CLIENT_BILL); id: > 0")],
        )
    return RecordRef(kind, record_id)


def link_of(request: object) -> tuple[str, RecordRef | None]:
    """The connection a Get request names, after the caller is checked against it, and the record
    when the request names the link by `name` (either kind form, "client-bill" or v1's number);
    None when it names the record with `record`, which is checked after the connection exists."""
    name = str(getattr(request, "name", ""))
    if not name:
        connection_id = str(getattr(request, "connection_id", ""))
        require_connection(connection_id)
        return connection_id, None
    parsed = parse_link_name(name)
    if parsed is None:
        raise invalid_argument(
            Reason.INVALID_LINK_NAME,
            f"{name[:200]!r} is not a link name",
            [
                FieldViolation(
                    "name",
                    "write connections/{connection_id}/links/{kind}/{id}, e.g. connections/main/links/client-bill/1103",
                )
            ],
        )
    require_connection(parsed[0])
    # A connection_id beside the name must agree with it: answering for the name's connection
    # would hide a caller's mistake.
    connection_id = str(getattr(request, "connection_id", ""))
    if connection_id and connection_id != parsed[0]:
        raise invalid_argument(
            Reason.CONNECTION_MISMATCH,
            f"connection_id {connection_id[:100]!r} is not the connection of {name[:200]!r}",
            [FieldViolation("connection_id", "leave it empty, or give the connection the name names")],
        )
    return parsed
