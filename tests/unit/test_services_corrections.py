"""What the correction service decides before it calls Xero, on the fake unit of work: which
records can be corrected, and when an apply is answered from the saga already stored."""

from __future__ import annotations

import pytest
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper import samples
from xerolink_poster.adapters.correction_tables import CorrectionRow
from xerolink_poster.domain.corrections import Action, Actor, Intent, SagaState, Step, StepState
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer.correcting import completed_answer, correction_target
from xerolink_poster.service_layer.outcomes import record_created, record_rejected
from xerolink_poster.service_layer.ports import Saga
from xerolink_poster.service_layer.posting import kind_of
from xerolink_poster.service_layer.unlinking import unlink_record

from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes.posts import (
    CONNECTION,
    NOW,
    accepted,
    connected,
    link_of,
    open_entry,
    post,
    xero_created,
    xero_gave_up,
)

SAMPLE = samples.sample_transactions(1100)
BILL = RecordRef(1, 1101)


def target(
    uow: FakeUnitOfWork, record: RecordRef = BILL, connection_id: str = CONNECTION
) -> tuple[Saga | None, LinkState]:
    with uow:
        _, saga, facts = correction_target(uow, connection_id, record)
    return saga, facts.state


def refusal(uow: FakeUnitOfWork, record: RecordRef = BILL, connection_id: str = CONNECTION) -> XerolinkError:
    with pytest.raises(XerolinkError) as refused:
        target(uow, record, connection_id)
    return refused.value


def saga_of(uow: FakeUnitOfWork, intent: Intent, state: SagaState, generation: int = 1) -> Saga:
    row = CorrectionRow(
        correction_id=f"c-{generation}",
        connection_id=CONNECTION,
        kind=BILL.kind,
        record_id=BILL.id,
        generation=generation,
        intent=int(intent),
        state=state.value,
        create_us=NOW,
        update_us=NOW,
    )
    step = Step(Action.UNLINK, Actor.XEROLINK, "unlink the bill", BILL, state=StepState.PENDING)
    uow.run(lambda u: u.corrections.add_saga(row, [step]))
    saga = uow.corrections.find_saga(CONNECTION, BILL, generation)
    assert saga is not None
    return saga


def posted_bill(uow: FakeUnitOfWork) -> None:
    accepted(post(uow, connected(uow), SAMPLE["client_bill"]))


def test_a_linked_record_is_a_target_with_its_xero_objects_and_generation() -> None:
    uow = FakeUnitOfWork()
    posted_bill(uow)
    xero_created(uow, BILL, xero_id="inv-1")

    with uow:
        connection, saga, facts = correction_target(uow, CONNECTION, BILL)

    assert connection.connection_id == CONNECTION and saga is None
    assert (facts.state, [o.xero_id for o in facts.objects], facts.generation) == (LinkState.LINKED, ["inv-1"], 1)


def test_an_unknown_connection_is_not_found() -> None:
    uow = FakeUnitOfWork()
    posted_bill(uow)

    error = refusal(uow, connection_id="nobody")

    assert (error.code, error.reason) == (ErrorCode.NOT_FOUND, "CONNECTION_NOT_FOUND")


def test_a_record_never_posted_is_not_found_with_nothing_to_correct_in_xero() -> None:
    uow = FakeUnitOfWork()
    connected(uow)

    error = refusal(uow)

    assert (error.code, error.reason) == (ErrorCode.NOT_FOUND, "LINK_NOT_FOUND")
    assert "correct it in Actionstep only" in error.message


def test_a_record_being_posted_or_waiting_is_refused_until_it_settles() -> None:
    uow = FakeUnitOfWork()
    connection = connected(uow)
    accepted(post(uow, connection, SAMPLE["client_bill"]))
    accepted(post(uow, connection, SAMPLE["client_bill_payment"]))

    assert refusal(uow).reason == "POSTING_IN_PROGRESS"
    assert refusal(uow, RecordRef(2, 1102)).reason == "POSTING_IN_PROGRESS"


def test_a_failed_record_is_not_in_xero_and_is_refused() -> None:
    uow = FakeUnitOfWork()
    posted_bill(uow)
    xero_gave_up(uow, BILL)

    error = refusal(uow)

    assert (error.code, error.reason) == (ErrorCode.FAILED_PRECONDITION, "NOT_IN_XERO")


def test_a_failed_record_part_of_which_reached_xero_names_what_xero_holds() -> None:
    """An invoice paid from trust whose trust spend Xero made and whose payment it then refused
    ends FAILED holding the spend. It was answered NOT_IN_XERO ("failed to post, so it is not in
    Xero"): a person told so deleted it in Actionstep alone, and the money stayed withdrawn from
    the trust bank in Xero."""
    uow = FakeUnitOfWork()
    posted_bill(uow)
    xero_created(uow, BILL)
    from_trust = SAMPLE["invoice_paid_from_trust"]
    record = RecordRef(kind_of(from_trust), from_trust.header.id)
    accepted(post(uow, connected(uow), from_trust))
    spend = XeroObjectRef(int(ObjectType.BANK_TRANSACTION), "spend-1", "trust-spend", "")

    def spend_made_then_payment_refused(u: FakeUnitOfWork) -> None:
        record_created(u, open_entry(u, record), link_of(u, record), spend, finished=False, now_us=NOW)
        record_rejected(u, open_entry(u, record), link_of(u, record), "XERO_VALIDATION", "over due", [], NOW)

    uow.run(spend_made_then_payment_refused)

    error = refusal(uow, record)

    assert (error.code, error.reason) == (ErrorCode.FAILED_PRECONDITION, "LINK_PARTIALLY_POSTED")
    assert "spend-1" in error.message and "UnlinkLinks" in error.message, error.message


def test_an_unlinked_record_is_refused_unless_its_correction_unlinked_it() -> None:
    uow = FakeUnitOfWork()
    posted_bill(uow)
    xero_created(uow, BILL)
    uow.run(lambda u: unlink_record(u, CONNECTION, BILL, "operator"))

    assert refusal(uow).code == ErrorCode.FAILED_PRECONDITION

    saga_of(uow, Intent.EDIT, SagaState.COMPLETED)
    saga, state = target(uow)
    assert saga is not None and saga.row.correction_id == "c-1" and state == LinkState.UNLINKED


def test_a_saga_of_an_earlier_generation_does_not_count() -> None:
    uow = FakeUnitOfWork()
    posted_bill(uow)
    xero_created(uow, BILL)
    saga_of(uow, Intent.EDIT, SagaState.COMPLETED, generation=0)

    saga, state = target(uow)

    assert saga is None and state == LinkState.LINKED


def test_applying_with_another_intent_than_the_sagas_is_refused() -> None:
    uow = FakeUnitOfWork()
    saga = saga_of(uow, Intent.DELETE, SagaState.FAILED)

    with pytest.raises(XerolinkError) as refused:
        completed_answer(saga, Intent.EDIT)

    assert refused.value.reason == "INTENT_MISMATCH" and "DELETE" in refused.value.message


def test_a_completed_saga_is_answered_as_stored_and_an_unfinished_one_runs() -> None:
    uow = FakeUnitOfWork()
    completed = saga_of(uow, Intent.EDIT, SagaState.COMPLETED)
    failed = saga_of(uow, Intent.EDIT, SagaState.FAILED, generation=2)

    view = completed_answer(completed, Intent.EDIT)

    assert view is not None and (view.correction_id, view.state) == ("c-1", SagaState.COMPLETED)
    assert [s.action for s in view.steps] == [Action.UNLINK]
    assert completed_answer(failed, Intent.EDIT) is None
    assert completed_answer(None, Intent.EDIT) is None
