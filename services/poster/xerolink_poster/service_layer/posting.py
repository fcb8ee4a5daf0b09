"""Post: validate through the mapper, then in one short transaction record the link (pending,
or waiting on a dependency) and append the outbox entry. The caller gets a posting at once;
the dispatcher does the Xero work later."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from opentelemetry import context as otel_context
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import (
    ErrorCode,
    FieldViolation,
    PreconditionViolation,
    XerolinkError,
    invalid_argument,
)
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, Database, DatabaseError
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.operations import record_dependencies
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain.kinds import TransactionKind
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.routing import Half, HeldConnection, Routing, Target, route
from xerolink_poster.service_layer.connection_lifecycle import check_postable
from xerolink_poster.service_layer.connections import get_connection, request_id_violations
from xerolink_poster.service_layer.group_commit import GroupQueue, Job
from xerolink_poster.service_layer.ports import Repositories
from xerolink_poster.service_layer.posting_decisions import (
    Accept,
    Earlier,
    check_same_request,
    decide,
    hold_replaceable,
)
from xerolink_poster.service_layer.posting_values import (
    ItemFailure,
    Mapped,
    PostOutcome,
    RoutedFrom,
    fingerprints,
    mapping_context,
    validate_transaction,
)
from xerolink_poster.service_layer.posting_writes import write_accepted
from xerolink_poster.service_layer.routing_changes import routing_of
from xerolink_poster.service_layer.tracing import current_trace_context, grouped_span
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)


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
    routed: RoutedFrom | None = None
    complement: str = ""


@dataclass(frozen=True)
class GroupSettings:
    """Group commit of single Posts: `window` seconds to wait for more after the first of a
    group (0: take only what queued while the previous group was written), at most `max_size`
    Posts a group. enabled=False writes each Post in its own transaction."""

    enabled: bool = True
    window: float = 0.0
    max_size: int = 256


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
        self.mapping: GroupQueue[_Submitted, PostOutcome, Job[Mapped, PostOutcome]] | None = None
        self.writing: GroupQueue[Mapped, PostOutcome, None] | None = None
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

    def _routing(self, connection_id: str) -> Routing:
        return routing_of(self._cached_connection(connection_id).row)

    def _targets(self, connection_id: str, transaction: transaction_pb2.Transaction) -> tuple[Target, ...]:
        """The connections the transaction is posted under (docs/matters-and-organisations.md)."""
        if not self._cached_connection(connection_id).row.routing:
            return (Target(connection_id),)
        return route(self._routing, connection_id, kind_of(transaction), transaction.header.division_id)

    def _routed_from(self, connection_id: str, target: str) -> RoutedFrom:
        """The routings that chose `target` for a post to `connection_id` (its divisions'
        connections' too, whose trust organisations it may go on to) and the target's ledgers, as
        read here; the write checks them again."""
        hops = [connection_id, *sorted(set(self._routing(connection_id).division_connections.values()))]
        routings = tuple((c, self._cached_connection(c).row.routing or b"") for c in hops)
        return RoutedFrom(routings, int(self._cached_connection(target).context.ledgers))

    def post(
        self, connection_id: str, transaction: transaction_pb2.Transaction, request_id: str = "", actor: str = "caller"
    ) -> PostOutcome:
        self.require_known_connection(connection_id)
        validate_transaction(transaction)
        if violations := request_id_violations(request_id):
            raise invalid_argument(
                Reason.INVALID_REQUEST_ID, "request_id cannot be stored as an idempotency key", violations
            )
        targets = self._targets(connection_id, transaction)
        if len(targets) == 2:
            return self._post_split(connection_id, targets, transaction, request_id, actor)
        target = targets[0].connection_id
        return self._post_to(target, transaction, request_id, actor, self._routed_from(connection_id, target))

    def _post_to(
        self,
        connection_id: str,
        transaction: transaction_pb2.Transaction,
        request_id: str,
        actor: str,
        routed: RoutedFrom,
    ) -> PostOutcome:
        connection, context = self._connection(connection_id)
        fingerprint, complement = fingerprints(transaction, context)
        if self.mapping is not None and self.writing is not None:
            future: Future[PostOutcome] = Future()
            submitted = _Submitted(
                connection,
                context,
                transaction,
                request_id,
                actor,
                fingerprint,
                otel_context.get_current(),
                current_trace_context(),
                routed,
                complement,
            )
            # Whoever leads the mapping of this Post's group carries the group on to the writer.
            to_write = self.mapping.run([Job(submitted, future)])
            if to_write:
                self.writing.run(to_write)
            return future.result()
        response = self.mapper.map_one(transaction, context)
        mapped = Mapped(
            0,
            connection,
            transaction,
            response,
            fingerprint,
            actor,
            current_trace_context(),
            request_id,
            routed=routed,
            complement=complement,
        )
        if not response.decision.supported:
            return self._not_supported(mapped)
        outcome = run_in_transaction(self.db, lambda uow: record_mapped(uow, [mapped]))[0]
        if isinstance(outcome, ItemFailure):
            raise outcome.error
        return outcome

    def _post_split(
        self,
        origin: str,
        targets: Sequence[Target],
        transaction: transaction_pb2.Transaction,
        request_id: str,
        actor: str,
    ) -> PostOutcome:
        """An invoice paid from trust when trust money is in its own organisation: the spend from
        the trust bank under the trust connection and the payment of the invoice under the office
        one, mapped each with its own connection's context and recorded in one transaction (both
        or neither). The office half waits until the trust half is linked. Answers the office
        half, accepted when either half was."""
        trust, office = (next(t for t in targets if t.half is h) for h in (Half.TRUST, Half.OFFICE))
        traceparent = current_trace_context()
        halves: list[Mapped] = []
        for index, target in enumerate((trust, office)):
            connection, context = self._connection(target.connection_id)
            fingerprint, complement = fingerprints(transaction, context)
            response = self.mapper.map_one(transaction, context)
            after = () if target is trust else ((trust.connection_id, _record_of(response)),)
            half = Mapped(
                index,
                connection,
                transaction,
                response,
                fingerprint,
                actor,
                traceparent,
                request_id,
                after,
                routed=self._routed_from(origin, target.connection_id),
                complement=complement,
            )
            if not response.decision.supported:
                return self._not_supported(half)
            halves.append(half)

        def write(uow: UnitOfWork) -> list[PostOutcome]:
            outcomes = record_mapped(uow, halves)
            for outcome in outcomes:
                if isinstance(outcome, ItemFailure):
                    raise outcome.error  # rolls back the other half too
            return [o for o in outcomes if isinstance(o, PostOutcome)]

        trust_outcome, office_outcome = run_in_transaction(self.db, write)
        office_outcome.duplicate = office_outcome.duplicate and trust_outcome.duplicate
        return office_outcome

    def _map_group(self, jobs: list[Job[_Submitted, PostOutcome]]) -> list[Job[Mapped, PostOutcome]]:
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
        to_write: list[Job[Mapped, PostOutcome]] = []
        for index, (job, answer) in enumerate(zip(jobs, answers, strict=True)):
            if isinstance(answer, XerolinkError):
                job.settle(answer)
                continue
            submitted = job.payload
            mapped = Mapped(
                index,
                submitted.connection,
                submitted.transaction,
                answer,
                submitted.fingerprint,
                submitted.actor,
                submitted.traceparent,
                submitted.request_id,
                routed=submitted.routed,
                complement=submitted.complement,
            )
            if not answer.decision.supported:
                try:
                    job.settle(self._not_supported(mapped))
                except XerolinkError as err:
                    job.settle(err)
            else:
                to_write.append(Job(mapped, job.future))
        return to_write

    def _write_group(self, jobs: list[Job[Mapped, PostOutcome]]) -> list[None]:
        """The group's rows in one transaction; every caller hears only after the commit. A
        database error fails every Post of the group and leaves nothing behind (rollback); a
        COMMIT the registry did not confirm may have stored them, and says so."""
        try:
            outcomes = run_in_transaction(self.db, lambda uow: record_mapped(uow, [j.payload for j in jobs]))
        except CommitMayHaveGoneThrough:
            log.exception("the registry did not confirm the commit of a group of %d posts", len(jobs))
            for job in jobs:
                job.settle(commit_unconfirmed(len(jobs)))
            return []
        except DatabaseError:
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
        """Each item gets an outcome or its own error; the accepted ones share one transaction per
        connection they are posted under. `pre_integration_backfill` maps with the mapper's
        backfill flag (open client bills and their payments that predate the connection); the
        backfill checks the bills first."""
        cached = self._cached_connection(connection_id)
        if cached.refusal is not None or not cached.row.routing:
            routed = self._routed_from(connection_id, connection_id)
            return self._post_many_to(connection_id, transactions, actor, pre_integration_backfill, routed)
        results: list[PostOutcome | ItemFailure | None] = [None] * len(transactions)
        by_target: dict[str, list[int]] = {}
        split: list[tuple[int, tuple[Target, ...]]] = []
        for index, transaction in enumerate(transactions):
            try:
                validate_transaction(transaction, f"transactions[{index}]")
            except XerolinkError as err:
                results[index] = ItemFailure(err)
                continue
            targets = self._targets(connection_id, transaction)
            if len(targets) == 2:
                split.append((index, targets))
            else:
                by_target.setdefault(targets[0].connection_id, []).append(index)
        for target, positions in by_target.items():
            try:
                outcomes = self._post_many_to(
                    target,
                    [transactions[p] for p in positions],
                    actor,
                    pre_integration_backfill,
                    self._routed_from(connection_id, target),
                )
            except XerolinkError as err:  # the connection it is routed to cannot post now
                outcomes = [ItemFailure(err)] * len(positions)
            for position, outcome in zip(positions, outcomes, strict=True):
                results[position] = outcome
        for index, targets in split:
            try:
                results[index] = self._post_split(connection_id, targets, transactions[index], "", actor)
            except XerolinkError as err:
                results[index] = ItemFailure(err)
        return [r for r in results if r is not None]

    def refusals(
        self, connection_id: str, transactions: Sequence[transaction_pb2.Transaction], pre_integration_backfill: bool
    ) -> list[XerolinkError | mapper_pb2.Decision | None]:
        """What post_many would answer each transaction, recording nothing: its error (the
        mapper's, the registry's such as a record locked under other content, or its routed
        connection's when that cannot post), its decision when it is not supported, or None when
        it would be accepted or found already posted. Mapped and decided as post_many does, in
        a transaction rolled back; a transaction split between two organisations is judged under
        the first. The backfill asks this of a bill's payments before the bill is posted
        (service_layer/backfill.py). What post_many would raise for the whole call (the
        connection itself cannot post: disconnected, say) is raised here too: it is no refusal
        of a transaction."""
        cached = self._cached_connection(connection_id)
        whole = cached.refusal is not None or not cached.row.routing  # as post_many decides
        by_target: dict[str, list[int]] = {}
        out: list[XerolinkError | mapper_pb2.Decision | None] = [None] * len(transactions)
        for index, transaction in enumerate(transactions):
            try:
                target = self._targets(connection_id, transaction)[0].connection_id
            except XerolinkError as err:
                out[index] = err
                continue
            by_target.setdefault(target, []).append(index)
        for target, positions in by_target.items():
            chosen = [transactions[p] for p in positions]
            results: list[PostOutcome | ItemFailure | None]
            try:
                routed = self._routed_from(connection_id, target)
                results, mapped = self._mapped(target, chosen, "backfill check", pre_integration_backfill, routed)
                if mapped:
                    with UnitOfWork(self.db) as uow:  # never committed: rolled back as it closes
                        for item, recorded in zip(mapped, record_mapped(uow, mapped), strict=True):
                            results[item.index] = recorded
            except XerolinkError as err:
                if whole:
                    raise
                results = [ItemFailure(err)] * len(positions)  # the connection it is routed to
            for position, outcome in zip(positions, results, strict=True):
                if isinstance(outcome, ItemFailure):
                    out[position] = outcome.error
                elif outcome is not None and outcome.posting is None:
                    out[position] = outcome.decision
        return out

    def _post_many_to(
        self,
        connection_id: str,
        transactions: Sequence[transaction_pb2.Transaction],
        actor: str,
        pre_integration_backfill: bool,
        routed: RoutedFrom,
    ) -> list[PostOutcome | ItemFailure]:
        results, mapped = self._mapped(connection_id, transactions, actor, pre_integration_backfill, routed)
        if mapped:
            recorded = run_in_transaction(self.db, lambda uow: record_mapped(uow, mapped))
            for item, outcome in zip(mapped, recorded, strict=True):
                results[item.index] = outcome
        return [r for r in results if r is not None]

    def _mapped(
        self,
        connection_id: str,
        transactions: Sequence[transaction_pb2.Transaction],
        actor: str,
        pre_integration_backfill: bool,
        routed: RoutedFrom,
    ) -> tuple[list[PostOutcome | ItemFailure | None], list[Mapped]]:
        """Each transaction's outcome where validation or the mapper decided it, and the mapped
        items to record (each with its index in `transactions`)."""
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
        mapped: list[Mapped] = []
        if to_map:
            answers = self.mapper.map_many([transactions[i] for i in to_map], context)
            for position, answer in zip(to_map, answers, strict=True):
                if answer.WhichOneof("outcome") == "error":
                    results[position] = ItemFailure(_error_from_item(answer))
                    continue
                fingerprint, complement = fingerprints(transactions[position], context)
                item = Mapped(
                    position,
                    connection,
                    transactions[position],
                    answer.response,
                    fingerprint,
                    actor,
                    traceparent,
                    routed=routed,
                    complement=complement,
                )
                if not answer.response.decision.supported:
                    results[position] = self._not_supported(item)
                else:
                    mapped.append(item)
        return results, mapped

    def _not_supported(self, mapped: Mapped) -> PostOutcome:
        """The mapper's refusal, which stores nothing; under a request_id that already names
        another request it is that request's refusal instead (the caller reused the id)."""
        record = RecordRef(int(mapped.response.record.kind), int(mapped.response.record.id))
        outcome = PostOutcome(mapped.response.decision, record, mapped.fingerprint)
        if mapped.request_id:
            connection_id = mapped.connection.connection_id
            with UnitOfWork(self.db, write=False) as uow:
                stored = uow.links.posting_by_request(connection_id, mapped.request_id)
                if stored is not None:
                    check_same_request(mapped.connection, mapped.request_id, stored, record, mapped.fingerprint)
                    # The same content was supported when it was posted (the profile changed since).
                    outcome.posting = stored
                    outcome.link = uow.links.get_link_by_id(stored.link_id or 0)
                    outcome.duplicate = True
        return outcome


def record_mapped(repos: Repositories, items: list[Mapped]) -> list[PostOutcome | ItemFailure]:
    """Records a batch or a group (whose Posts may belong to several connections) in the
    caller's transaction, one connection at a time. Takes the repositories, not the database,
    so the rules run on any unit of work (tests/unit/fakes/ hands out in-memory ones)."""
    by_connection: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        by_connection.setdefault(item.connection.connection_id, []).append(position)
    results: list[PostOutcome | ItemFailure | None] = [None] * len(items)
    for _, positions in sorted(by_connection.items()):  # connections in one order, as their links lock
        recorded = _record_connection(repos, [items[p] for p in positions])
        for position, outcome in zip(positions, recorded, strict=True):
            results[position] = outcome
    return [r for r in results if r is not None]


def _record_connection(repos: Repositories, items: list[Mapped]) -> list[PostOutcome | ItemFailure]:
    """Decides every item against the registry, then writes the accepted ones with a couple of
    flushes for the whole batch (one round trip per table, not per item)."""
    connection = items[0].connection
    records = [RecordRef(int(i.response.record.kind), int(i.response.record.id)) for i in items]
    wanted = set(records) | {d for i in items for d in record_dependencies(i.response.operations)}
    held = repos.connections.share_connection(connection.connection_id)
    members = _firm_members(repos, held)
    links = repos.links.links_for(connection.connection_id, sorted(wanted))
    hold_replaceable(repos, connection.connection_id, records, links)
    earlier = Earlier()
    out: list[PostOutcome | ItemFailure | Accept] = []
    seen: dict[str, HeldConnection | None] = {connection.connection_id: held}
    for item, record in zip(items, records, strict=True):
        item.elsewhere = tuple(m for m in members if m != connection.connection_id)
        try:
            _check_routing(repos, item, seen)
            out.append(decide(repos, connection, item, record, links, earlier))
        except XerolinkError as err:
            out.append(ItemFailure(err))
    accepted = [a for a in out if isinstance(a, Accept)]
    if accepted:
        write_accepted(repos, connection, accepted, links)
    return [a.outcome if isinstance(a, Accept) else a for a in out]


def kind_of(transaction: transaction_pb2.Transaction) -> int:
    """The TransactionKind of the transaction's oneof (validate_transaction made sure it has one)."""
    name = transaction.WhichOneof("kind") or "unspecified"
    return int(TransactionKind[name.upper()])


def _record_of(response: mapper_pb2.MapTransactionResponse) -> RecordRef:
    return RecordRef(int(response.record.kind), int(response.record.id))


def _firm_members(repos: Repositories, held: HeldConnection | None) -> list[str]:
    """The connections of the firm group the connection (`held`: read in this transaction, never
    from a cache, so a pairing made a moment ago counts) is in. On PostgreSQL the connection's row
    is held shared and the group's first row exclusively until the transaction ends: a routing
    change (which locks every row it changes) waits for the posts being written, and two posts of
    one record to two connections of a group are written in turn, the second finding the first."""
    if held is None or not held.firm_group:
        return []
    repos.connections.lock_connection(held.firm_group)
    return repos.connections.firm_members(held.firm_group)


def _check_routing(repos: Repositories, item: Mapped, seen: dict[str, HeldConnection | None]) -> None:
    """The routings that chose this item's connection are still those, and so are its ledgers
    (`seen`: the connections read and held in this transaction so far)."""
    if item.routed is None:
        return
    changed = ""
    for origin, routing in item.routed.hops:
        if origin not in seen:
            seen[origin] = repos.connections.share_connection(origin)
        held = seen[origin]
        if (held.routing if held is not None else b"") != routing:
            changed = origin
    target = item.connection.connection_id
    if target not in seen:
        seen[target] = repos.connections.share_connection(target)
    current = seen[target]
    if not changed and current is not None and current.firm_group and _ledgers(current) != item.routed.ledgers:
        changed = target
    if changed:
        raise XerolinkError(
            ErrorCode.UNAVAILABLE,
            Reason.ROUTING_CHANGED,
            f"the routing of connection {changed} changed while this was posted; nothing was stored: post it "
            "again (after a second, when every poster has read the new routing)",
            retry_after_seconds=CONNECTION_CACHE_SECONDS,
        )


def _ledgers(held: HeldConnection) -> int:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(held.mapping_context)
    return int(context.ledgers)


def commit_unconfirmed(group_size: int) -> XerolinkError:
    return XerolinkError(
        ErrorCode.UNAVAILABLE,
        Reason.REGISTRY_COMMIT_UNCONFIRMED,
        f"the registry did not confirm the commit holding this post (with {group_size - 1} others written "
        "together): it may be stored and then posted to Xero. Post again under the same request_id: the answer is "
        "the stored posting, or the post is stored then",
        retry_after_seconds=1.0,
    )


def registry_write_failed(group_size: int) -> XerolinkError:
    return XerolinkError(
        ErrorCode.UNAVAILABLE,
        Reason.REGISTRY_WRITE_FAILED,
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
        Reason.INTERNAL,
        "an internal error occurred while recording the post; it was logged, nothing was stored: retry later "
        "or contact the operator",
    )
