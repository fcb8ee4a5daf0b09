"""Post: validate through the mapper, then in one short transaction record the link (pending,
or waiting on a dependency) and append the outbox entry. The caller gets a posting at once;
the dispatcher does the Xero work later."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from google.protobuf import json_format
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import (
    ErrorCode,
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    failed_precondition,
    invalid_argument,
    not_found,
)

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.link_index import IndexedPosting, index_postings
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.registry import OUTBOX_DONE, OUTBOX_READY, OUTBOX_WAITING, Registry
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow, OutboxRow, PostingRow
from xerolink_poster.domain.dependencies import record_dependencies
from xerolink_poster.domain.fingerprint import content_fingerprint
from xerolink_poster.domain.records import RecordRef, group_of
from xerolink_poster.domain.states import Event, LinkState
from xerolink_poster.service_layer.connection_lifecycle import check_postable
from xerolink_poster.service_layer.errors_json import error_json
from xerolink_poster.service_layer.tracing import current_trace_context
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction


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
class _Mapped:
    index: int
    transaction: transaction_pb2.Transaction
    response: mapper_pb2.MapTransactionResponse
    fingerprint: str
    request_id: str = ""
    waits: list[RecordRef] = field(default_factory=list)


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
            "INVALID_TRANSACTION", "the transaction cannot be posted; fix the fields listed", violations
        )


def load_connection(db: Database, connection_id: str) -> ConnectionRow:
    if not connection_id:
        raise invalid_argument(
            "CONNECTION_REQUIRED", "connection_id is required", [FieldViolation("connection_id", "required")]
        )
    with UnitOfWork(db, write=False) as uow:
        row = uow.registry.get_connection(connection_id)
    if row is None:
        raise not_found(
            "CONNECTION_NOT_FOUND", f"no connection {connection_id!r}; create it with CreateConnection first"
        )
    return row


def mapping_context(connection: ConnectionRow) -> mapper_pb2.MappingContext:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(connection.mapping_context)
    return context


def _error_from_item(result: mapper_pb2.MapResult) -> XerolinkError:
    code = next((c for c in ErrorCode if c.value == result.error.code), ErrorCode.INVALID_ARGUMENT)
    return XerolinkError(
        code,
        result.error.reason or "MAPPING_FAILED",
        result.error.message,
        field_violations=[FieldViolation(v.field, v.description) for v in result.error.field_violations],
        precondition_violations=[
            PreconditionViolation(v.type, v.subject, v.description) for v in result.precondition_violations
        ],
    )


# How long a post trusts its cached connection (another poster's lifecycle change shows after it).
CONNECTION_CACHE_SECONDS = 1.0


class Poster:
    """The Post use cases; `actor` names the caller in the audit trail."""

    def __init__(self, db: Database, mapper: MapperClient) -> None:
        self.db = db
        self.mapper = mapper
        # A post reads its connection from here instead of a database round trip. This process's
        # lifecycle RPCs forget an entry at once; another poster's change is seen within the TTL.
        self._connections: dict[str, tuple[float, ConnectionRow, XerolinkError | None]] = {}

    def forget_connection(self, connection_id: str) -> None:
        self._connections.pop(connection_id, None)

    def _connection(self, connection_id: str) -> ConnectionRow:
        cached = self._connections.get(connection_id)
        if cached is None or time.monotonic() - cached[0] >= CONNECTION_CACHE_SECONDS:
            found = load_connection(self.db, connection_id)
            # Checked before anything is mapped or queued: a disconnected connection or an
            # allocation naming accounts the organisation's chart lacks.
            try:
                check_postable(found)
                refusal = None
            except XerolinkError as err:
                refusal = err
            cached = (time.monotonic(), found, refusal)
            self._connections[connection_id] = cached
        if cached[2] is not None:
            raise cached[2]
        return cached[1]

    def post(
        self, connection_id: str, transaction: transaction_pb2.Transaction, request_id: str = "", actor: str = "caller"
    ) -> PostOutcome:
        validate_transaction(transaction)
        connection = self._connection(connection_id)
        response = self.mapper.map_one(transaction, mapping_context(connection))
        mapped = _Mapped(0, transaction, response, transaction_fingerprint(transaction), request_id)
        if not response.decision.supported:
            return self._not_supported(mapped)
        outcomes = run_in_transaction(self.db, lambda uow: self._record(uow, connection, [mapped], actor))
        outcome = outcomes[0]
        if isinstance(outcome, ItemFailure):
            raise outcome.error
        return outcome

    def post_many(
        self,
        connection_id: str,
        transactions: Sequence[transaction_pb2.Transaction],
        actor: str = "caller",
        pre_integration_backfill: bool = False,
    ) -> list[PostOutcome | ItemFailure]:
        """Each item gets an outcome or its own error; the accepted ones share one transaction.
        `pre_integration_backfill` maps with the mapper's backfill flag (open client bills and
        their payments that predate the connection); the backfill checks the bills first."""
        connection = self._connection(connection_id)
        context = mapping_context(connection)
        if pre_integration_backfill:
            context.pre_integration_backfill = True
        results: list[PostOutcome | ItemFailure | None] = [None] * len(transactions)
        to_map: list[int] = []
        for index, transaction in enumerate(transactions):
            try:
                validate_transaction(transaction, f"transactions[{index}]")
                to_map.append(index)
            except XerolinkError as err:
                results[index] = ItemFailure(err)
        mapped: list[_Mapped] = []
        if to_map:
            answers = self.mapper.map_many([transactions[i] for i in to_map], context)
            for position, answer in zip(to_map, answers, strict=True):
                if answer.WhichOneof("outcome") == "error":
                    results[position] = ItemFailure(_error_from_item(answer))
                    continue
                item = _Mapped(
                    position, transactions[position], answer.response, transaction_fingerprint(transactions[position])
                )
                if not answer.response.decision.supported:
                    results[position] = self._not_supported(item)
                else:
                    mapped.append(item)
        if mapped:
            recorded = run_in_transaction(self.db, lambda uow: self._record(uow, connection, mapped, actor))
            for item, outcome in zip(mapped, recorded, strict=True):
                results[item.index] = outcome
        return [r for r in results if r is not None]

    @staticmethod
    def _not_supported(mapped: _Mapped) -> PostOutcome:
        record = RecordRef(int(mapped.response.record.kind), int(mapped.response.record.id))
        return PostOutcome(mapped.response.decision, record, mapped.fingerprint)

    def _record(
        self, uow: UnitOfWork, connection: ConnectionRow, items: list[_Mapped], actor: str
    ) -> list[PostOutcome | ItemFailure]:
        """Decides every item against the registry, then writes the accepted ones with a couple of
        flushes for the whole batch (one round trip per table, not per item)."""
        registry = uow.registry
        records = [RecordRef(int(i.response.record.kind), int(i.response.record.id)) for i in items]
        wanted = set(records) | {d for i in items for d in record_dependencies(i.response.operations)}
        links = registry.links_for(connection.connection_id, sorted(wanted))
        out: list[PostOutcome | ItemFailure | _Accept] = []
        for item, record in zip(items, records, strict=True):
            try:
                out.append(self._decide(registry, connection, item, record, links))
            except XerolinkError as err:
                out.append(ItemFailure(err))
        accepted = [a for a in out if isinstance(a, _Accept)]
        if accepted:
            registry.session.flush()  # ids for the new links
            for accept in accepted:
                self._accept(registry, connection, accept, links)
            index_postings(
                registry, [IndexedPosting(a.link, a.item.transaction, a.item.response.operations) for a in accepted]
            )
            if any(a.waits for a in accepted):
                registry.session.flush()  # ids for the outbox entries that wait
            for accept in accepted:
                if accept.waits:
                    registry.add_waits(accept.box_id(), connection.connection_id, accept.waits)
                registry.change_state(
                    accept.link, accept.event, actor, accept.now, f"posting {accept.posting_id()}", accept.posting
                )
        return [a.outcome if isinstance(a, _Accept) else a for a in out]

    def _decide(
        self,
        registry: Registry,
        connection: ConnectionRow,
        item: _Mapped,
        record: RecordRef,
        links: dict[RecordRef, LinkRow],
    ) -> PostOutcome | _Accept:
        response = item.response
        outcome = PostOutcome(response.decision, record, item.fingerprint)
        if item.request_id:
            earlier = registry.posting_by_request(connection.connection_id, item.request_id)
            if earlier is not None:
                outcome.posting = earlier
                outcome.link = registry.get_link_by_id(earlier.link_id or 0)
                outcome.duplicate = True
                return outcome
        now = now_us()
        link = links.get(record)
        if link is None:
            link = LinkRow(
                connection_id=connection.connection_id,
                kind=record.kind,
                record_id=record.id,
                link_group=group_of(record.kind),
                state="",
                fingerprint=item.fingerprint,
                posting_id="",
                create_us=now,
                update_us=now,
            )
            registry.session.add(link)
            links[record] = link
            return _Accept(item, outcome, link, Event.ACCEPTED, now)
        state = LinkState(link.state)
        same = link.fingerprint == item.fingerprint
        if same and state in (LinkState.PENDING, LinkState.WAITING, LinkState.LINKED):
            outcome.posting = registry.get_posting(link.posting_id)
            outcome.link = link
            outcome.duplicate = True
            return outcome
        if state == LinkState.LINKED:
            raise failed_precondition(
                "LINK_LOCKED",
                f"locked - unlink first: {record} is linked to Xero with other content; unlink it (and "
                "correct the Xero object) before posting the change",
                [PreconditionViolation("LINK_LOCKED", _subject(connection, record), "linked records are locked")],
            )
        if state == LinkState.PENDING:
            raise failed_precondition(
                "POSTING_IN_PROGRESS",
                f"{record} is being posted with other content; wait until it is linked or failed, then "
                "unlink or post again",
                [PreconditionViolation("POSTING_IN_PROGRESS", _subject(connection, record), "posting in progress")],
            )
        if state == LinkState.FAILED and not same and registry.xero_objects(link):
            raise failed_precondition(
                "LINK_PARTIALLY_POSTED",
                f"{record} failed after part of it reached Xero; unlink it before posting changed content",
                [PreconditionViolation("LINK_PARTIALLY_POSTED", _subject(connection, record), "partly in Xero")],
            )
        for old in registry.open_outbox_of_link(link.id or 0):
            old.state = OUTBOX_DONE
            registry.clear_waits(old.id or 0)
            registry.session.add(old)
        if state == LinkState.UNLINKED:
            link.generation += 1
            registry.set_xero_objects(link, [])
        link.fingerprint = item.fingerprint
        link.attempts = 0
        link.last_error = None
        event = Event.ACCEPTED if state == LinkState.WAITING else Event.RETRY_ACCEPTED
        return _Accept(item, outcome, link, event, now)

    @staticmethod
    def _accept(
        registry: Registry, connection: ConnectionRow, accept: _Accept, links: dict[RecordRef, LinkRow]
    ) -> None:
        response = accept.item.response
        link = accept.link
        accept.waits = [
            dep
            for dep in record_dependencies(response.operations)
            if (dep_link := links.get(dep)) is None or dep_link.state != LinkState.LINKED
        ]
        posting = PostingRow(
            posting_id=uuid.uuid4().hex,
            connection_id=connection.connection_id,
            kind=link.kind,
            record_id=link.record_id,
            link_id=link.id,
            fingerprint=accept.item.fingerprint,
            decision=response.decision.SerializeToString(),
            state="",
            request_id=accept.item.request_id,
            create_us=accept.now,
        )
        registry.add_posting(posting)
        link.posting_id = posting.posting_id
        link.waiting_on = json.dumps([[w.kind, w.id] for w in accept.waits])
        accept.box = registry.add_outbox(
            False,
            OutboxRow(
                tenant_id=connection.xero_tenant_id,
                connection_id=connection.connection_id,
                link_id=link.id or 0,
                posting_id=posting.posting_id,
                operations=response.SerializeToString(),
                state=OUTBOX_WAITING if accept.waits else OUTBOX_READY,
                available_us=accept.now,
                create_us=accept.now,
                trace_context=current_trace_context(),
            ),
        )
        if accept.waits:
            link.last_error = waiting_error(accept.waits)
            accept.event = Event.BLOCKED
        accept.posting = posting
        accept.outcome.posting = posting
        accept.outcome.link = link


@dataclass
class _Accept:
    """An item accepted for (re)posting, written in the batch's second phase."""

    item: _Mapped
    outcome: PostOutcome
    link: LinkRow
    event: Event
    now: int
    waits: list[RecordRef] = field(default_factory=list)
    posting: PostingRow | None = None
    box: OutboxRow | None = None

    def box_id(self) -> int:
        assert self.box is not None and self.box.id is not None
        return self.box.id

    def posting_id(self) -> str:
        assert self.posting is not None
        return self.posting.posting_id


def waiting_error(waits: Sequence[RecordRef]) -> str:
    names = ", ".join(str(w) for w in waits)
    return error_json(
        ErrorCode.FAILED_PRECONDITION,
        "DEPENDENCY_NOT_LINKED",
        f"waiting for {names} to be linked; it is posted automatically when they link (post them if they "
        "were never posted)",
    )


def _subject(connection: ConnectionRow, record: RecordRef) -> str:
    return f"connections/{connection.connection_id}/links/{record.kind}/{record.id}"
