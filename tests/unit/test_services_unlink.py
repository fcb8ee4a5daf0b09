"""Unlinking at the service layer, on the fake unit of work: what each record's state allows, the
orphans and audit it leaves, and all or nothing across the records of one request."""

from __future__ import annotations

import copy

import pytest
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper import samples
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState, OutboxState
from xerolink_poster.domain.unlink_plan import Action
from xerolink_poster.service_layer.unlinking import preview_unlink, unlink_chosen, unlink_record

from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes.posts import CONNECTION, accepted, connected, link_of, post, xero_created

SAMPLE = samples.sample_transactions(1100)
BILL, PAYMENT, CREDIT_NOTE = RecordRef(1, 1101), RecordRef(2, 1102), RecordRef(3, 1103)


def linked(uow: FakeUnitOfWork, *names: str) -> None:
    connection = connected(uow)
    for name in names:
        outcome = accepted(post(uow, connection, SAMPLE[name]))
        xero_created(uow, outcome.record, xero_id=f"xero-{outcome.record.id}")


def unlink(
    uow: FakeUnitOfWork, *records: RecordRef, cascade: bool = False
) -> tuple[list[tuple[RecordRef, Action]], int]:
    result = uow.run(lambda u: unlink_chosen(u, CONNECTION, list(records), cascade, "edited in Actionstep", "operator"))
    return [(o.record, o.action) for o in result.outcomes], result.unlinked


def test_a_linked_record_unlinks_and_its_xero_objects_are_recorded_as_orphans() -> None:
    uow = FakeUnitOfWork()
    linked(uow, "client_bill")

    assert unlink(uow, BILL) == ([(BILL, Action.UNLINK)], 1)

    link = link_of(uow, BILL)
    assert link.state == LinkState.UNLINKED
    [orphan] = uow.links.list_orphans(CONNECTION, BILL, 0, 0, 10)
    assert (orphan.xero_id, orphan.generation, orphan.reason) == ("xero-1101", 1, "edited in Actionstep")
    last = uow.links.audit(link.id or 0)[-1]
    assert (last.event, last.from_state, last.actor) == ("unlinked", "linked", "operator")
    assert "xero-1101" in last.detail


def test_a_bill_with_a_linked_payment_is_refused_and_nothing_is_unlinked() -> None:
    uow = FakeUnitOfWork()
    linked(uow, "client_bill", "client_bill_payment")
    before = copy.deepcopy(uow.registry)

    with pytest.raises(XerolinkError) as refused:
        unlink(uow, BILL)

    assert (refused.value.code, refused.value.reason) == (ErrorCode.FAILED_PRECONDITION, "LINKED_DEPENDENTS")
    assert uow.registry == before


def test_cascading_unlinks_the_bill_and_its_payment() -> None:
    uow = FakeUnitOfWork()
    linked(uow, "client_bill", "client_bill_payment")

    outcomes, unlinked = unlink(uow, BILL, cascade=True)

    assert outcomes == [(BILL, Action.UNLINK), (PAYMENT, Action.CASCADE)] and unlinked == 2
    assert [link_of(uow, r).state for r in (BILL, PAYMENT)] == [LinkState.UNLINKED, LinkState.UNLINKED]
    assert "cascaded from" in uow.links.audit(link_of(uow, PAYMENT).id or 0)[-1].detail


def test_one_record_being_posted_refuses_the_whole_request() -> None:
    uow = FakeUnitOfWork()
    linked(uow, "client_bill")
    accepted(post(uow, connected(uow), SAMPLE["credit_note"]))  # pending: being posted

    with pytest.raises(XerolinkError) as refused:
        unlink(uow, BILL, CREDIT_NOTE)

    assert refused.value.reason == "POSTING_IN_PROGRESS"
    assert link_of(uow, BILL).state == LinkState.LINKED
    assert uow.links.list_orphans(CONNECTION, None, 0, 0, 10) == []


def test_a_record_never_posted_is_not_found() -> None:
    uow = FakeUnitOfWork()
    linked(uow, "client_bill")

    with pytest.raises(XerolinkError) as refused:
        unlink(uow, RecordRef(1, 9999))

    assert (refused.value.code, refused.value.reason) == (ErrorCode.NOT_FOUND, "LINK_NOT_FOUND")


def test_a_preview_plans_without_writing() -> None:
    uow = FakeUnitOfWork()
    linked(uow, "client_bill", "client_bill_payment")
    before = copy.deepcopy(uow.registry)

    with uow:
        plan = preview_unlink(uow, CONNECTION, [BILL], cascade=True)

    assert [(o.record, o.action) for o in plan.outcomes] == [(BILL, Action.UNLINK), (PAYMENT, Action.CASCADE)]
    assert plan.unlinked == 0 and uow.registry == before


def test_unlinking_a_waiting_payment_closes_its_work_and_its_wait() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, SAMPLE["client_bill_payment"]))
    [entry] = uow.outbox.open_outbox_of_link(link_of(uow, PAYMENT).id or 0)

    unlink(uow, PAYMENT)

    link = link_of(uow, PAYMENT)
    assert (link.state, link.waiting_on, link.last_error) == (LinkState.UNLINKED, "[]", None)
    assert entry.state == OutboxState.DONE and uow.outbox.waiters_on(CONNECTION, BILL) == []


def test_the_single_record_step_refuses_a_record_being_posted() -> None:
    uow = FakeUnitOfWork()
    accepted(post(uow, connected(uow), SAMPLE["client_bill"]))

    with pytest.raises(XerolinkError) as refused:
        uow.run(lambda u: unlink_record(u, CONNECTION, BILL, "saga"))

    assert refused.value.reason == "POSTING_IN_PROGRESS" and link_of(uow, BILL).state == LinkState.PENDING
