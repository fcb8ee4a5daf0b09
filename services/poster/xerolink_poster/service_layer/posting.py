"""Post: validate through the mapper, then in one short transaction record the link (pending,
or waiting on a dependency) and append the outbox entry. The caller gets a posting at once;
the dispatcher does the Xero work later."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from opentelemetry import context as otel_context
from sqlalchemy.exc import SQLAlchemyError
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import (
    ErrorCode,
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    failed_precondition,
    invalid_argument,
)

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.link_index import IndexedPosting, index_postings
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.operations import record_dependencies
from xerolink_poster.adapters.registry import OUTBOX_DONE, OUTBOX_READY, OUTBOX_WAITING, Registry
from xerolink_poster.adapters.tables import AuditRow, ConnectionRow, DependencyWaitRow, LinkRow, OutboxRow, PostingRow
from xerolink_poster.domain.fingerprint import content_fingerprint
from xerolink_poster.domain.records import RecordRef, group_of, link_name
from xerolink_poster.domain.states import Event, LinkState, transition
from xerolink_poster.service_layer.connection_lifecycle import check_postable
from xerolink_poster.service_layer.connections import get_connection, request_id_violations
from xerolink_poster.service_layer.errors_json import error_json
from xerolink_poster.service_layer.group_commit import GroupQueue, Job
from xerolink_poster.service_layer.tracing import current_trace_context, grouped_span
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)


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
    connection: ConnectionRow
    transaction: transaction_pb2.Transaction
    response: mapper_pb2.MapTransactionResponse
    fingerprint: str
    actor: str
    # The accepting request's traceparent, stored with the outbox entry.
    trace_context: str
    request_id: str = ""


@dataclass
class _Submitted:
    """A Post waiting for its group's mapper call."""

    connection: ConnectionRow
    context: mapper_pb2.MappingContext
    transaction: transaction_pb2.Transaction
    request_id: str
    actor: str
    fingerprint: str
    # The caller's trace (the group's mapper call runs in the first one's) and its traceparent.
    trace: otel_context.Context
    traceparent: str


@dataclass(frozen=True)
class GroupSettings:
    """Group commit of single Posts: `window` seconds to wait for more after the first of a
    group (0: take only what queued while the previous group was written), at most `max_size`
    Posts a group. enabled=False writes each Post in its own transaction."""

    enabled: bool = True
    window: float = 0.0
    max_size: int = 256


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


@dataclass(frozen=True)
class _CachedConnection:
    read_at: float
    row: ConnectionRow
    context: mapper_pb2.MappingContext
    refusal: XerolinkError | None


class Poster:
    """The Post use cases; `actor` names the caller in the audit trail."""

    def __init__(self, db: Database, mapper: MapperClient, grouping: GroupSettings | None = None) -> None:
        self.db = db
        self.mapper = mapper
        # A post reads its connection, and its parsed mapping context, from here instead of a
        # database round trip. This process's lifecycle RPCs forget an entry at once; another
        # poster's change is seen within the TTL.
        self._connections: dict[str, _CachedConnection] = {}
        grouping = grouping or GroupSettings()
        self.mapping: GroupQueue[_Submitted, PostOutcome, Job[_Mapped, PostOutcome]] | None = None
        self.writing: GroupQueue[_Mapped, PostOutcome, None] | None = None
        if grouping.enabled:
            # Two stages, so one group's mapper call overlaps the previous group's transaction.
            self.mapping = GroupQueue("post-mapping", self._map_group, _unexpected, grouping.window, grouping.max_size)
            self.writing = GroupQueue("post-writing", self._write_group, _unexpected, 0.0, grouping.max_size)

    def forget_connection(self, connection_id: str) -> None:
        self._connections.pop(connection_id, None)

    def require_known_connection(self, connection_id: str) -> None:
        """NOT_FOUND for a connection that does not exist, before any of the request's body is
        judged: a caller fixes the resource it names before the body it sends."""
        self._cached_connection(connection_id)

    def _connection(self, connection_id: str) -> tuple[ConnectionRow, mapper_pb2.MappingContext]:
        cached = self._cached_connection(connection_id)
        if cached.refusal is not None:
            raise cached.refusal
        return cached.row, cached.context

    def _cached_connection(self, connection_id: str) -> _CachedConnection:
        cached = self._connections.get(connection_id)
        if cached is None or time.monotonic() - cached.read_at >= CONNECTION_CACHE_SECONDS:
            found = get_connection(self.db, connection_id)
            # Checked before anything is mapped or queued: a disconnected connection or an
            # allocation naming accounts the organisation's chart lacks.
            try:
                check_postable(found)
                refusal = None
            except XerolinkError as err:
                refusal = err
            cached = _CachedConnection(time.monotonic(), found, mapping_context(found), refusal)
            self._connections[connection_id] = cached
        return cached

    def post(
        self, connection_id: str, transaction: transaction_pb2.Transaction, request_id: str = "", actor: str = "caller"
    ) -> PostOutcome:
        self.require_known_connection(connection_id)
        validate_transaction(transaction)
        if violations := request_id_violations(request_id):
            raise invalid_argument(
                "INVALID_REQUEST_ID", "request_id cannot be stored as an idempotency key", violations
            )
        connection, context = self._connection(connection_id)
        if self.mapping is not None and self.writing is not None:
            future: Future[PostOutcome] = Future()
            submitted = _Submitted(
                connection,
                context,
                transaction,
                request_id,
                actor,
                transaction_fingerprint(transaction),
                otel_context.get_current(),
                current_trace_context(),
            )
            # Whoever leads the mapping of this Post's group carries the group on to the writer.
            to_write = self.mapping.run([Job(submitted, future)])
            if to_write:
                self.writing.run(to_write)
            return future.result()
        response = self.mapper.map_one(transaction, context)
        mapped = _Mapped(
            0,
            connection,
            transaction,
            response,
            transaction_fingerprint(transaction),
            actor,
            current_trace_context(),
            request_id,
        )
        if not response.decision.supported:
            return self._not_supported(mapped)
        outcome = run_in_transaction(self.db, lambda uow: self._record(uow, [mapped]))[0]
        if isinstance(outcome, ItemFailure):
            raise outcome.error
        return outcome

    def _map_group(self, jobs: list[Job[_Submitted, PostOutcome]]) -> list[Job[_Mapped, PostOutcome]]:
        """One mapper call for the group (MapTransaction for a lone Post), in the first Post's
        trace and linked from the others'; returns the supported ones, for the writer."""
        members = [(j.payload.trace, {"xerolink.actionstep.id": str(j.payload.transaction.header.id)}) for j in jobs]
        if len(jobs) == 1:
            single = jobs[0].payload
            token = otel_context.attach(single.trace)
            try:
                answers: list[mapper_pb2.MapTransactionResponse | XerolinkError] = [
                    self.mapper.map_one(single.transaction, single.context)
                ]
            except XerolinkError as err:
                answers = [err]
            finally:
                otel_context.detach(token)
        else:
            with grouped_span("map transactions", members):
                results = self.mapper.map_each([(j.payload.transaction, j.payload.context) for j in jobs])
            answers = [_error_from_item(r) if r.WhichOneof("outcome") == "error" else r.response for r in results]
        to_write: list[Job[_Mapped, PostOutcome]] = []
        for index, (job, answer) in enumerate(zip(jobs, answers, strict=True)):
            if isinstance(answer, XerolinkError):
                job.settle(answer)
                continue
            submitted = job.payload
            mapped = _Mapped(
                index,
                submitted.connection,
                submitted.transaction,
                answer,
                submitted.fingerprint,
                submitted.actor,
                submitted.traceparent,
                submitted.request_id,
            )
            if not answer.decision.supported:
                try:
                    job.settle(self._not_supported(mapped))
                except XerolinkError as err:
                    job.settle(err)
            else:
                to_write.append(Job(mapped, job.future))
        return to_write

    def _write_group(self, jobs: list[Job[_Mapped, PostOutcome]]) -> list[None]:
        """The group's rows in one transaction; every caller hears only after the commit. A
        database error fails every Post of the group and leaves nothing behind (rollback)."""
        try:
            outcomes = run_in_transaction(self.db, lambda uow: self._record(uow, [j.payload for j in jobs]))
        except SQLAlchemyError:
            log.exception("the registry refused a group of %d posts; nothing of it was stored", len(jobs))
            for job in jobs:
                job.settle(registry_write_failed(len(jobs)))
            return []
        for job, outcome in zip(jobs, outcomes, strict=True):
            job.settle(outcome.error if isinstance(outcome, ItemFailure) else outcome)
        return []

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
        connection, context = self._connection(connection_id)
        if pre_integration_backfill:
            shared, context = context, mapper_pb2.MappingContext()
            context.CopyFrom(shared)  # the cached context is every post's: flag a copy
            context.pre_integration_backfill = True
        traceparent = current_trace_context()
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
                    position,
                    connection,
                    transactions[position],
                    answer.response,
                    transaction_fingerprint(transactions[position]),
                    actor,
                    traceparent,
                )
                if not answer.response.decision.supported:
                    results[position] = self._not_supported(item)
                else:
                    mapped.append(item)
        if mapped:
            recorded = run_in_transaction(self.db, lambda uow: self._record(uow, mapped))
            for item, outcome in zip(mapped, recorded, strict=True):
                results[item.index] = outcome
        return [r for r in results if r is not None]

    def _not_supported(self, mapped: _Mapped) -> PostOutcome:
        """The mapper's refusal, which stores nothing; under a request_id that already names
        another request it is that request's refusal instead (the caller reused the id)."""
        record = RecordRef(int(mapped.response.record.kind), int(mapped.response.record.id))
        outcome = PostOutcome(mapped.response.decision, record, mapped.fingerprint)
        if mapped.request_id:
            connection_id = mapped.connection.connection_id
            with UnitOfWork(self.db, write=False) as uow:
                stored = uow.registry.posting_by_request(connection_id, mapped.request_id)
                if stored is not None:
                    check_same_request(mapped.connection, mapped.request_id, stored, record, mapped.fingerprint)
                    # The same content was supported when it was posted (the profile changed since).
                    outcome.posting = stored
                    outcome.link = uow.registry.get_link_by_id(stored.link_id or 0)
                    outcome.duplicate = True
        return outcome

    def _record(self, uow: UnitOfWork, items: list[_Mapped]) -> list[PostOutcome | ItemFailure]:
        """Records a batch or a group (whose Posts may belong to several connections) in the
        caller's transaction, one connection at a time."""
        by_connection: dict[str, list[int]] = {}
        for position, item in enumerate(items):
            by_connection.setdefault(item.connection.connection_id, []).append(position)
        results: list[PostOutcome | ItemFailure | None] = [None] * len(items)
        for positions in by_connection.values():
            recorded = self._record_connection(uow, [items[p] for p in positions])
            for position, outcome in zip(positions, recorded, strict=True):
                results[position] = outcome
        return [r for r in results if r is not None]

    def _record_connection(self, uow: UnitOfWork, items: list[_Mapped]) -> list[PostOutcome | ItemFailure]:
        """Decides every item against the registry, then writes the accepted ones with a couple of
        flushes for the whole batch (one round trip per table, not per item)."""
        registry = uow.registry
        connection = items[0].connection
        records = [RecordRef(int(i.response.record.kind), int(i.response.record.id)) for i in items]
        wanted = set(records) | {d for i in items for d in record_dependencies(i.response.operations)}
        links = registry.links_for(connection.connection_id, sorted(wanted))
        earlier = _Earlier()
        out: list[PostOutcome | ItemFailure | _Accept] = []
        for item, record in zip(items, records, strict=True):
            try:
                out.append(self._decide(registry, connection, item, record, links, earlier))
            except XerolinkError as err:
                out.append(ItemFailure(err))
        accepted = [a for a in out if isinstance(a, _Accept)]
        if accepted:
            _write_accepted(registry, connection, accepted, links)
        return [a.outcome if isinstance(a, _Accept) else a for a in out]

    def _decide(
        self,
        registry: Registry,
        connection: ConnectionRow,
        item: _Mapped,
        record: RecordRef,
        links: dict[RecordRef, LinkRow],
        earlier: _Earlier,
    ) -> PostOutcome | _Accept:
        response = item.response
        outcome = PostOutcome(response.decision, record, item.fingerprint)
        # A request_id names one request (AIP-155): the same record with the same content replays
        # the first answer; anything else under it is refused, so no record is silently dropped.
        # Earlier in this batch counts as if it had been committed before this one arrived.
        if item.request_id and (first := earlier.by_request.get(item.request_id)) is not None:
            if not first.same_request(record, item.fingerprint):
                raise request_id_reused(connection, item.request_id, first.record, record == first.record)
            return first.answer_for(outcome)
        if item.request_id:
            stored = registry.posting_by_request(connection.connection_id, item.request_id)
            if stored is not None:
                check_same_request(connection, item.request_id, stored, record, item.fingerprint)
                outcome.posting = stored
                outcome.link = registry.get_link_by_id(stored.link_id or 0)
                outcome.duplicate = True
                return outcome
        if (same_record := earlier.by_record.get(record)) is not None:
            if same_record.item.fingerprint == item.fingerprint:
                self._remember_request(earlier, item, record, same_record)
                return same_record.follow(outcome)
            raise _in_progress(connection, record)
        accept = self._decide_against_registry(registry, connection, item, record, links, outcome)
        if isinstance(accept, _Accept):
            earlier.by_record[record] = accept
        self._remember_request(earlier, item, record, accept)
        return accept

    @staticmethod
    def _remember_request(earlier: _Earlier, item: _Mapped, record: RecordRef, answer: PostOutcome | _Accept) -> None:
        """A later item of the batch under the same request_id is judged against this one, also
        when this one was answered with an existing posting (and so stores no request_id).
        `answer` is the _Accept whose posting answers it, or its answer if that is known now."""
        if item.request_id:
            earlier.by_request[item.request_id] = _FirstRequest(record, item.fingerprint, answer)

    def _decide_against_registry(
        self,
        registry: Registry,
        connection: ConnectionRow,
        item: _Mapped,
        record: RecordRef,
        links: dict[RecordRef, LinkRow],
        outcome: PostOutcome,
    ) -> PostOutcome | _Accept:
        now = now_us()
        link = links.get(record)
        if link is None:  # a new record: its link is written by _write_accepted
            return _Accept(item, record, outcome, None, Event.ACCEPTED, now)
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
            raise _in_progress(connection, record)
        if state == LinkState.FAILED and not same and registry.xero_objects(link):
            raise failed_precondition(
                "LINK_PARTIALLY_POSTED",
                f"{record} failed after part of it reached Xero; unlink it before posting changed content",
                [PreconditionViolation("LINK_PARTIALLY_POSTED", _subject(connection, record), "partly in Xero")],
            )
        if state == LinkState.FAILED and not same and link.outcome_unknown:
            # A look-up would find, and adopt, an object holding the old content.
            raise failed_precondition(
                "LINK_OUTCOME_UNKNOWN",
                f"{record} gave up without knowing whether Xero created it; post the same content again "
                "so xerolink looks it up in Xero, then unlink or correct it to post the change",
                [PreconditionViolation("LINK_OUTCOME_UNKNOWN", _subject(connection, record), "may be in Xero")],
            )
        # Xero may hold what the failed attempt sent: the repost's first call is a look-up.
        look_up_first = state == LinkState.FAILED and link.outcome_unknown
        link.outcome_unknown = False
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
        return _Accept(item, record, outcome, link, event, now, look_up_first=look_up_first)


@dataclass
class _Accept:
    """An item accepted for (re)posting, written in the batch's second phase."""

    item: _Mapped
    record: RecordRef
    outcome: PostOutcome
    # The loaded link of a record posted before; None for a new record.
    link: LinkRow | None
    event: Event
    now: int
    # The outbox entry starts uncertain: a failed attempt's object may be in Xero.
    look_up_first: bool = False
    waits: list[RecordRef] = field(default_factory=list)
    # Later items of the batch with the same content or request: answered with this posting.
    followers: list[PostOutcome] = field(default_factory=list)

    def follow(self, outcome: PostOutcome) -> PostOutcome:
        outcome.duplicate = True
        self.followers.append(outcome)
        return outcome


def _write_accepted(
    registry: Registry, connection: ConnectionRow, accepted: list[_Accept], links: dict[RecordRef, LinkRow]
) -> None:
    """Writes the accepted items with one multi-row INSERT per table (links, postings, outbox,
    waits, audit): Core statements, as the ORM's unit of work costs more than the SQL here. A
    re-posted record's link is a loaded row, updated by the session at commit."""
    for accept in accepted:
        accept.waits = [
            dep
            for dep in record_dependencies(accept.item.response.operations)
            if (dep_link := links.get(dep)) is None or dep_link.state != LinkState.LINKED
        ]
        if accept.waits:
            accept.event = Event.BLOCKED
    steps = [transition(LinkState(a.link.state) if a.link is not None else None, a.event) for a in accepted]
    posting_ids = [uuid.uuid4().hex for _ in accepted]
    fresh = [a.link is None for a in accepted]
    changes: list[dict[str, Any]] = [
        {
            "state": step.to_state.value,
            "update_us": accept.now,
            "posting_id": posting_id,
            "waiting_on": json.dumps([[w.kind, w.id] for w in accept.waits]),
            **({"last_error": waiting_error(accept.waits)} if accept.waits else {}),
        }
        for accept, step, posting_id in zip(accepted, steps, posting_ids, strict=True)
    ]
    new = [(accept, values) for accept, values in zip(accepted, changes, strict=True) if accept.link is None]
    rows: list[dict[str, Any]] = [
        {
            "connection_id": connection.connection_id,
            "kind": accept.record.kind,
            "record_id": accept.record.id,
            "link_group": group_of(accept.record.kind),
            "fingerprint": accept.item.fingerprint,
            "generation": 1,
            "attempts": 0,
            "last_error": None,
            "xero_objects": "[]",
            "outcome_unknown": False,
            "create_us": accept.now,
            **values,
        }
        for accept, values in new
    ]
    for row, link_id in zip(rows, registry.insert_rows(LinkRow, rows, True), strict=True):
        row["id"] = link_id
    for (accept, _), row in zip(new, rows, strict=True):
        accept.link = LinkRow.model_construct(**row)
    for accept, values, is_new in zip(accepted, changes, fresh, strict=True):
        if not is_new:
            for name, value in values.items():
                setattr(accept.link, name, value)
    index_postings(
        registry,
        [
            IndexedPosting(_link(a), a.item.transaction, a.item.response.operations, is_new)
            for a, is_new in zip(accepted, fresh, strict=True)
        ],
    )
    postings: list[dict[str, Any]] = [
        {
            "posting_id": posting_id,
            "connection_id": connection.connection_id,
            "kind": accept.record.kind,
            "record_id": accept.record.id,
            "link_id": _id(accept.link),
            "fingerprint": accept.item.fingerprint,
            "decision": accept.item.response.decision.SerializeToString(),
            "state": step.to_state.value,
            "duplicate": False,
            "request_id": accept.item.request_id,
            "create_us": accept.now,
        }
        for accept, step, posting_id in zip(accepted, steps, posting_ids, strict=True)
    ]
    registry.insert_rows(PostingRow, postings)
    for accept, values in zip(accepted, postings, strict=True):
        posting = PostingRow.model_construct(**values)
        for outcome in (accept.outcome, *accept.followers):
            outcome.posting = posting
            outcome.link = accept.link
    boxes = [
        {
            "tenant_id": connection.xero_tenant_id,
            "connection_id": connection.connection_id,
            "link_id": _id(accept.link),
            "posting_id": posting_id,
            "operations": accept.item.response.SerializeToString(),
            "state": OUTBOX_WAITING if accept.waits else OUTBOX_READY,
            "available_us": accept.now,
            "claimed_by": "",
            "lease_until_us": 0,
            "attempts": 0,
            "uncertain": accept.look_up_first,
            "create_us": accept.now,
            "trace_context": accept.item.trace_context,
        }
        for accept, posting_id in zip(accepted, posting_ids, strict=True)
    ]
    waiting = any(a.waits for a in accepted)
    box_ids = registry.insert_rows(OutboxRow, boxes, waiting)
    if waiting:
        registry.insert_rows(
            DependencyWaitRow,
            [
                {"outbox_id": box_id, "connection_id": connection.connection_id, "kind": w.kind, "record_id": w.id}
                for accept, box_id in zip(accepted, box_ids, strict=True)
                for w in accept.waits
            ],
        )
    registry.insert_rows(
        AuditRow,
        [
            {
                "link_id": _id(accept.link),
                "time_us": accept.now,
                "actor": accept.item.actor,
                "event": accept.event.value,
                "from_state": step.from_state.value if step.from_state else "",
                "to_state": step.to_state.value,
                "detail": f"posting {posting_id}",
            }
            for accept, step, posting_id in zip(accepted, steps, posting_ids, strict=True)
        ],
    )


def _link(accept: _Accept) -> LinkRow:
    assert accept.link is not None
    return accept.link


def _id(link: LinkRow | None) -> int:
    assert link is not None and link.id is not None
    return link.id


@dataclass(frozen=True)
class _FirstRequest:
    """The first item of a batch under a request_id, and the answer it got."""

    record: RecordRef
    fingerprint: str
    answer: PostOutcome | _Accept

    def same_request(self, record: RecordRef, fingerprint: str) -> bool:
        return record == self.record and fingerprint == self.fingerprint

    def answer_for(self, outcome: PostOutcome) -> PostOutcome:
        if isinstance(self.answer, _Accept):
            return self.answer.follow(outcome)
        outcome.posting, outcome.link, outcome.duplicate = self.answer.posting, self.answer.link, True
        return outcome


@dataclass
class _Earlier:
    """The items of a batch answered so far, by record (accepted ones) and by request id."""

    by_record: dict[RecordRef, _Accept] = field(default_factory=dict)
    by_request: dict[str, _FirstRequest] = field(default_factory=dict)


def request_id_reused(connection: ConnectionRow, request_id: str, first: RecordRef, same_record: bool) -> XerolinkError:
    """ALREADY_EXISTS, not INVALID_ARGUMENT: the request is only wrong because the id already
    names another request (docs/poster.md, "Request ids")."""
    what = f"{first} with other content" if same_record else str(first)
    return XerolinkError(
        ErrorCode.ALREADY_EXISTS,
        "REQUEST_ID_REUSED",
        f"request_id {request_id!r} was already used for {what} on connection {connection.connection_id}; "
        "nothing was posted: send a new request_id for a new request (reuse one only to retry the same request)",
        field_violations=[
            FieldViolation(
                "request_id", f"already used for {_subject(connection, first)}; a new request needs a new request_id"
            )
        ],
        metadata={"request_id": request_id, "first_record": _subject(connection, first)},
    )


def check_same_request(
    connection: ConnectionRow, request_id: str, stored: PostingRow, record: RecordRef, fingerprint: str
) -> None:
    """Refuses a request that is not the one `stored` answered under `request_id`."""
    first = RecordRef(stored.kind, stored.record_id)
    if record != first or stored.fingerprint != fingerprint:
        raise request_id_reused(connection, request_id, first, record == first)


def _in_progress(connection: ConnectionRow, record: RecordRef) -> XerolinkError:
    return failed_precondition(
        "POSTING_IN_PROGRESS",
        f"{record} is being posted with other content; wait until it is linked or failed, then unlink or post again",
        [PreconditionViolation("POSTING_IN_PROGRESS", _subject(connection, record), "posting in progress")],
    )


def registry_write_failed(group_size: int) -> XerolinkError:
    return XerolinkError(
        ErrorCode.UNAVAILABLE,
        "REGISTRY_WRITE_FAILED",
        f"the registry refused the transaction holding this post (with {group_size - 1} others written together); "
        "nothing of it was stored: post again, and if it keeps failing ask the operator to check the database",
        retry_after_seconds=1.0,
    )


def _unexpected(exc: BaseException) -> XerolinkError:
    """A group's error for each of its callers: the mapper's own errors as they are."""
    if isinstance(exc, XerolinkError):
        return exc
    return XerolinkError(
        ErrorCode.INTERNAL,
        "INTERNAL",
        "an internal error occurred while recording the post; it was logged, nothing was stored: retry later "
        "or contact the operator",
    )


def waiting_error(waits: Sequence[RecordRef]) -> str:
    names = ", ".join(str(w) for w in waits)
    return error_json(
        ErrorCode.FAILED_PRECONDITION,
        "DEPENDENCY_NOT_LINKED",
        f"waiting for {names} to be linked; it is posted automatically when they link (post them if they "
        "were never posted)",
    )


def _subject(connection: ConnectionRow, record: RecordRef) -> str:
    return link_name(connection.connection_id, record)
