"""What a Post carries and answers, and the checks of a transaction before it is mapped."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import FieldViolation, XerolinkError, invalid_argument
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.tables import ConnectionRow, LinkRow, PostingRow
from xerolink_poster.domain.fingerprint import content_fingerprint
from xerolink_poster.domain.records import RecordRef


@dataclass
class PostOutcome:
    """What a post answers: the stored posting (None when not supported), the mapper's decision,
    and whether the content repeated an accepted posting."""

    decision: mapper_pb2.Decision
    record: RecordRef
    fingerprint: str
    posting: PostingRow | None = None
    link: LinkRow | None = None
    duplicate: bool = False


@dataclass
class ItemFailure:
    error: XerolinkError


@dataclass
class Mapped:
    index: int
    connection: ConnectionRow
    transaction: transaction_pb2.Transaction
    response: mapper_pb2.MapTransactionResponse
    fingerprint: str
    actor: str
    # The accepting request's traceparent, stored with the outbox entry.
    trace_context: str
    request_id: str = ""
    # Records of other connections this item waits for: the office half of an invoice paid from
    # trust waits for its trust half, in the trust organisation's connection.
    after: tuple[tuple[str, RecordRef], ...] = ()
    # The connection the caller posted to and its routing as this poster read it: the write checks
    # the routing is still that one, so a record is never routed by a routing already replaced.
    routed: RoutedFrom | None = None
    # The connection holding the record's other half (an invoice paid from trust), if any.
    partner: str = ""
    # Set by the write: the connections of the firm group the record must not be linked under.
    elsewhere: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutedFrom:
    connection_id: str
    routing: bytes


def transaction_fingerprint(transaction: transaction_pb2.Transaction) -> str:
    return content_fingerprint(json_format.MessageToDict(transaction, preserving_proto_field_name=True))


def validate_transaction(transaction: transaction_pb2.Transaction, path: str = "transaction") -> None:
    """What the poster itself needs (the mapper validates the content)."""
    violations: list[FieldViolation] = []
    if not transaction.HasField("header"):
        violations.append(FieldViolation(f"{path}.header", "required: the transaction header with its Actionstep id"))
    elif transaction.header.id <= 0:
        violations.append(FieldViolation(f"{path}.header.id", "must be the positive Actionstep record id"))
    if transaction.WhichOneof("kind") is None:
        violations.append(FieldViolation(f"{path}.kind", "set exactly one kind (client_bill, trust_receipt, ...)"))
    if violations:
        raise invalid_argument(
            Reason.INVALID_TRANSACTION, "the transaction cannot be posted; fix the fields listed", violations
        )


def mapping_context(connection: ConnectionRow) -> mapper_pb2.MappingContext:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(connection.mapping_context)
    return context
