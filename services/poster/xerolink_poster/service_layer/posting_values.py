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
    # The connections whose routing chose this item's connection, with each one's routing, and the
    # item's connection with its ledgers, as this poster read them: the write checks they are
    # still so, so a record is never routed or mapped by a routing already replaced.
    routed: RoutedFrom | None = None
    # For one half of a record kept in two organisations: the fingerprint the other half has.
    complement: str = ""
    # Set by the write: the connections of the firm group the record must not be linked under.
    elsewhere: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoutedFrom:
    # (connection id, its routing as read) for every connection on the way, in order.
    hops: tuple[tuple[str, bytes], ...]
    # The ledgers of the item's connection's context as read (OrganisationLedgers value).
    ledgers: int = 0


def transaction_fingerprint(transaction: transaction_pb2.Transaction, half: str = "") -> str:
    """SHA-256 of the transaction's canonical content; for one half of a record kept in two
    organisations ("trust" or "office"), of the content and the half, so a half is never taken for
    the record posted whole nor for its other half."""
    content = json_format.MessageToDict(transaction, preserving_proto_field_name=True)
    return content_fingerprint({**content, "xerolink_half": half} if half else content)


SPLIT_KIND_FIELDS = frozenset({"invoice_paid_from_trust"})
HALF_OF_LEDGERS = {
    mapper_pb2.ORGANISATION_LEDGERS_TRUST: ("trust", "office"),
    mapper_pb2.ORGANISATION_LEDGERS_OFFICE: ("office", "trust"),
}


def fingerprints(transaction: transaction_pb2.Transaction, context: mapper_pb2.MappingContext) -> tuple[str, str]:
    """The fingerprint of the transaction as posted under a connection of this context, and for
    one half of a record kept in two organisations the fingerprint of the other half ("" else)."""
    halves = HALF_OF_LEDGERS.get(context.ledgers)
    if halves is None or transaction.WhichOneof("kind") not in SPLIT_KIND_FIELDS:
        return transaction_fingerprint(transaction), ""
    return transaction_fingerprint(transaction, halves[0]), transaction_fingerprint(transaction, halves[1])


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
