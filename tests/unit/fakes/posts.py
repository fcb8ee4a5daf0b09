"""Posting and dispatching through the service layer on a fake unit of work: the mapper's own
mapping runs in-process (no server), and the dispatcher's outcome writes stand in for Xero."""

from __future__ import annotations

from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_mapper import samples
from xerolink_mapper.adapters.mapping_calls import map_request
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow, OutboxRow
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.service_layer.outcomes import record_created, record_rejected
from xerolink_poster.service_layer.posting import record_mapped
from xerolink_poster.service_layer.posting_values import ItemFailure, Mapped, PostOutcome, transaction_fingerprint

from tests.unit.fakes.unit_of_work import FakeUnitOfWork

CONNECTION = "firm-1"
NOW = 1_800_000_000_000_000


def connected(uow: FakeUnitOfWork, connection_id: str = CONNECTION) -> ConnectionRow:
    row = ConnectionRow(
        connection_id=connection_id,
        xero_base_url="https://xero.invalid",
        xero_tenant_id=f"tenant-{connection_id}",
        mapping_context=samples.demo_context().SerializeToString(),
        create_us=NOW,
    )
    uow.run(lambda u: u.connections.add_connection(row))
    return row


def mapped(connection: ConnectionRow, transaction: transaction_pb2.Transaction, request_id: str = "") -> Mapped:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(connection.mapping_context)
    response = map_request(mapper_pb2.MapTransactionRequest(transaction=transaction, context=context))
    assert response.decision.supported, response.decision
    return Mapped(0, connection, transaction, response, transaction_fingerprint(transaction), "tester", "", request_id)


def post_all(uow: FakeUnitOfWork, items: list[Mapped]) -> list[PostOutcome | ItemFailure]:
    """One Post batch in one committed unit, as Poster.post_many records it."""
    return uow.run(lambda u: record_mapped(u, items))


def post(
    uow: FakeUnitOfWork, connection: ConnectionRow, transaction: transaction_pb2.Transaction, request_id: str = ""
) -> PostOutcome | ItemFailure:
    [outcome] = post_all(uow, [mapped(connection, transaction, request_id)])
    return outcome


def accepted(outcome: PostOutcome | ItemFailure) -> PostOutcome:
    assert isinstance(outcome, PostOutcome), outcome
    return outcome


def refused(outcome: PostOutcome | ItemFailure) -> ItemFailure:
    assert isinstance(outcome, ItemFailure), outcome
    return outcome


def link_of(uow: FakeUnitOfWork, record: RecordRef) -> LinkRow:
    link = uow.links.get_link(CONNECTION, record)
    assert link is not None, f"{record} has no link"
    return link


def open_entry(uow: FakeUnitOfWork, record: RecordRef) -> OutboxRow:
    [row] = uow.outbox.open_outbox_of_link(link_of(uow, record).id or 0)
    return row


def xero_created(uow: FakeUnitOfWork, record: RecordRef, xero_id: str = "") -> list[int]:
    """Xero created the record's object: what the dispatcher writes; returns the released entries."""
    obj = XeroObjectRef(int(ObjectType.INVOICE), xero_id or f"x-{record.kind}-{record.id}", "op-1", f"N-{record.id}")

    def work(u: FakeUnitOfWork) -> list[int]:
        row = open_entry(u, record)
        row.claimed_by = "dispatcher"
        return record_created(u, row, link_of(u, record), obj, finished=True, now_us=NOW)

    return uow.run(work)


def xero_gave_up(uow: FakeUnitOfWork, record: RecordRef, outcome_unknown: bool = False) -> None:
    """The dispatcher gave up on the record (Xero's answers never came, or it refused)."""

    def work(u: FakeUnitOfWork) -> None:
        reason = "XERO_NO_ANSWER" if outcome_unknown else "XERO_VALIDATION"
        row = open_entry(u, record)
        record_rejected(u, row, link_of(u, record), reason, "gave up", [], NOW, outcome_unknown=outcome_unknown)

    uow.run(work)
