"""Attacks on the last fixes, from outside: StartBackfill's new refusals (DUPLICATE_PAYMENT, the
payments judged before their bills by Poster.refusals, BACKFILL_INTERRUPTED) and the
corrections' new rules (UnlinkLinks refusing CORRECTION_UNFINISHED, the saga's unlink step
unlinking only the generation it planned, a rename step found voided done with
INVOICE_NUMBER_KEPT).

Each test's docstring says what a user would lose and whether it was a DEFECT when written
(failed before the fix; Poster.mapping_refusals was then renamed Poster.refusals) or a GUARD.
Real posters on loopback against the real mapper and the Xero emulator, on a SQLite registry
(the rules under attack do not depend on the database)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.poster.v1 import connection_pb2, correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason

from tests.attack.test_backfill_attacks import (
    ACCEPTED,
    BILL,
    DONE,
    PAYMENT,
    REFUSED,
    _amount_due_mismatches,
    _bill,
    _finish,
    _invoices,
    _item,
    _payment,
    _start,
)
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, stub_for, wait_for, xero_objects
from tests.fixtures.routing import extended_context
from tests.fixtures.routing import route as route_divisions
from tests.integration.test_poster_corrections import Firm, key

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

EDIT = correction_pb2.CORRECTION_INTENT_EDIT
DELETE = correction_pb2.CORRECTION_INTENT_DELETE
COMPLETED = correction_pb2.CORRECTION_STATE_COMPLETED
FAILED_SAGA = correction_pb2.CORRECTION_STATE_FAILED
STEP_DONE = correction_pb2.CORRECTION_STEP_STATE_DONE
RENAME = correction_pb2.CORRECTION_ACTION_RENAME_DOCUMENT
LINKED = poster_pb2.LINK_STATE_LINKED
WAITING = poster_pb2.LINK_STATE_WAITING
UNLINKED = poster_pb2.LINK_STATE_UNLINKED


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


def _unlink(firm: Firm, *records: tuple[int, int], cascade: bool = False) -> unlink_pb2.UnlinkLinksResponse:
    request = unlink_pb2.UnlinkLinksRequest(
        connection_id="firm-1", records=[key(k, r) for k, r in records], confirm=True, cascade=cascade
    )
    answer: unlink_pb2.UnlinkLinksResponse = firm.stub.UnlinkLinks(request)
    return answer


def _live_payments(firm: Firm) -> list[dict[str, Any]]:
    return [p for p in xero_objects(firm.emulator, firm.org["tenant_id"], "Payments") if p["Status"] != "DELETED"]


def _post_once(firm: Firm, name: str) -> str:
    posting = firm.stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=firm.sample[name])
    ).posting
    return str(posting.name)


def _divided(transaction: transaction_pb2.Transaction, division: int) -> transaction_pb2.Transaction:
    transaction.header.division_id = division
    return transaction


# -- the backfill: what the payments' check judges against what post_many then does ----------------


def test_a_payment_already_linked_elsewhere_refuses_its_new_bill_before_the_bill_is_posted(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT. Last week's backfill posted bill OLD-7101 with its 200.00 payment 71011. Tonight's
    backfill (another request: other bills) sends bill OLD-7102 with a 300.00 payment that the
    export numbered 71011 too (an id mix-up across runs; bill_id is right, so no request check
    catches it). The new pre-check asks only the mapper, which maps the payment happily; the
    bill is posted, then post_many refuses the payment because record 71011 is already linked
    with other content. OLD-7102 reaches Xero owing its whole 936.55 while Actionstep says 636.55
    is due: the client is chased for 300.00 already paid, exactly what docs/backfill.md promises
    cannot happen ("a bill and its payments are refused together, so Xero never gets an invoice
    with the wrong amount due"). From backfill._refuse_unpostable / Poster.mapping_refusals (since renamed),
    which look at the mapper's answer only and not at what the registry's write (decide) will
    refuse."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    first = [_bill(7101, [_payment(71011, 7101, 20000)])]
    done = _finish(stub, _start(stub, first).name)
    assert (done.state, done.linked) == (DONE, 2), done

    second = [_bill(7102, [_payment(71011, 7102, 30000)])]
    started = _start(stub, second)
    final = _finish(stub, started.name)

    [payment] = _item(final, PAYMENT, 71011)
    assert payment.outcome == REFUSED, payment
    mismatched = _amount_due_mismatches(emulator, org["tenant_id"], second)
    assert mismatched == {}, f"Xero owes (AmountDue, Actionstep totalDue) {mismatched}; payment refused {payment.error}"
    [bill] = _item(final, BILL, 7102)
    assert (bill.outcome, bill.error.reason) == (REFUSED, Reason.PAYMENT_REFUSED), bill


def test_a_disconnected_divisions_connection_refuses_only_its_own_bills_not_the_whole_backfill(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """DEFECT. The firm routes division 2 to its own connection ("branch") and has disconnected
    it (the branch moved to another Xero). A backfill on the head connection of division 1's
    bill and division 2's bill, each with a payment: post_many refuses only what is routed to
    the disconnected connection, item by item (docs/backfill.md: bills are refused "item by
    item", "every other mapper decision stands"), so before the pre-check the head office's bill
    was backfilled. Now mapping_refusals opens the branch's connection for its payment and
    raises its refusal out of StartBackfill: the whole call is refused with an error about
    another connection that names no bill, and the head office's own bill can never be
    backfilled while the branch's bill is in the request. From Poster.mapping_refusals, which
    calls self._connection(target) without the per-target try that post_many has."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, head = connect(stub, emulator, "head", extended_context(division=1))
    connect(stub, emulator, "branch", extended_context(division=2))
    route_divisions(stub, "head", division_connections={2: "branch"})
    stub.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="branch"), timeout=10)
    own = _bill(7201, [_divided(_payment(72011, 7201, 20000), 1)])
    _divided(own.bill, 1)
    branch = _bill(7202, [_divided(_payment(72021, 7202, 20000), 2)])
    _divided(branch.bill, 2)

    try:
        started = _start(stub, [own, branch], connection_id="head")
    except grpc.RpcError as err:
        error = from_rpc_error(err)
        pytest.fail(
            f"the whole backfill was refused for the branch's connection: {err.code()} {error.reason} "
            f"{error.message!r}, fields {[v.field for v in error.field_violations]}"
        )
    final = _finish(stub, started.name)
    [head_bill] = _item(final, BILL, 7201)
    assert head_bill.outcome == ACCEPTED, head_bill
    assert {i.outcome for i in final.items if i.bill_index == 1} == {REFUSED}
    assert _amount_due_mismatches(emulator, head["tenant_id"], [own]) == {}


def test_payment_ids_that_equal_bill_ids_are_not_duplicate_payments(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD. Actionstep numbers each kind apart: bill 7301's payment is record 7302 and bill
    7302's payment is record 7301 (a payment and a bill with the same id are different records).
    DUPLICATE_PAYMENT must count payments only: both groups are accepted, each invoice owes
    Actionstep's totalDue. Counted by id alone, both firms' bills would be refused and never
    backfilled."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bills = [_bill(7301, [_payment(7302, 7301, 20000)]), _bill(7302, [_payment(7301, 7302, 30000)])]

    started = _start(stub, bills)
    final = _finish(stub, started.name)

    assert {i.outcome for i in started.items} == {ACCEPTED}, [i.error for i in started.items]
    assert (final.state, final.linked) == (DONE, 4), final
    assert sorted(_invoices(emulator, org["tenant_id"])) == ["OLD-7301", "OLD-7302"]
    assert _amount_due_mismatches(emulator, org["tenant_id"], bills) == {}


def test_a_duplicate_payment_refusal_names_the_field_and_queues_nothing_of_the_group(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD. A careless export names payment 74011 under bills 7401 and 7402 (each with its own
    bill_id, so PAYMENT_OF_ANOTHER_BILL does not catch it), next to a clean bill 7403. The two
    groups are refused, each payment's error naming `bills[i].payments[0].header.id` with
    INVALID_ARGUMENT, the bills PAYMENT_REFUSED; the clean bill is backfilled, and neither of
    the refused bills reaches Xero (where it would owe its whole total)."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bills = [
        _bill(7401, [_payment(74011, 7401, 20000)]),
        _bill(7402, [_payment(74011, 7402, 20000)]),
        _bill(7403, [_payment(74031, 7403, 10000)]),
    ]

    started = _start(stub, bills)
    final = _finish(stub, started.name)

    refused = [i for i in started.items if i.record.kind == PAYMENT and i.record.id == 74011]
    assert [(i.error.reason, [v.field for v in i.error.field_violations]) for i in refused] == [
        (Reason.DUPLICATE_PAYMENT, ["bills[0].payments[0].header.id"]),
        (Reason.DUPLICATE_PAYMENT, ["bills[1].payments[0].header.id"]),
    ]
    assert {i.error.reason for i in started.items if i.record.kind == BILL and i.outcome == REFUSED} == {
        Reason.PAYMENT_REFUSED
    }
    assert final.state == DONE and final.linked == 2
    assert list(_invoices(emulator, org["tenant_id"])) == ["OLD-7403"]


# -- corrections: a record that can never be corrected nor unlinked -------------------------------


def _lock_after_the_bill(firm: Firm) -> None:
    """The adviser locks the period the bill is dated in (2026-03-02): a return was filed."""
    org = firm.emulator.state.organisation(firm.org["tenant_id"])
    with org.lock:
        org.period_lock_date = dt.date(2026, 3, 31)


def _invoice_gone(firm: Firm) -> None:
    """Xero no longer has the invoice in the connection's organisation (the connection was
    re-authorised to a fresh demo company after Xero's monthly reset, NOTES.md): every read is 404."""
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    org = firm.emulator.state.organisation(firm.org["tenant_id"])
    with org.lock:
        org.objects["Invoices"].pop(invoice_id)


@pytest.mark.parametrize(
    "xero_change",
    [
        pytest.param(_lock_after_the_bill, id="a lock date the adviser will not move"),
        pytest.param(_invoice_gone, id="an invoice Xero no longer has"),
    ],
)
def test_a_correction_xero_refuses_for_good_does_not_leave_the_record_locked_forever(
    firm: Firm, xero_change: Any
) -> None:
    """DEFECT. A client bill's DELETE correction stops at the void (Xero 500), and then Xero
    changes so that the void can never be done: the adviser locked the period after the GST
    return was filed (Xero: "The document date cannot be on or before the organisation's lock
    date"), or the invoice is no longer in the connection's organisation (404,
    XERO_OBJECT_MISSING). Applying again fails the same way every time, and there is no way to
    abandon a saga. Before the fix the operator's way out was the documented one for what
    xerolink cannot correct ("unlink it, then correct it in Xero by hand", e.g. with a credit
    note); now UnlinkLinks answers CORRECTION_UNFINISHED "apply it again to finish it" forever:
    the bill can never be unlinked, never be posted again, and every payment posted against it
    waits for ever (docs/corrections.md "Payments posted during a correction"). From
    unlink_plan._judge (facts.under_correction refuses with no exit) and
    SqlCorrectionRepository.under_correction, which counts a FAILED saga as unfinished whatever
    its failure."""
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Invoices/{invoice_id}")
    )
    assert firm.apply(BILL, firm.bill, DELETE).state == FAILED_SAGA
    xero_change(firm)
    for _ in range(2):
        again = firm.apply(BILL, firm.bill, DELETE)
        assert again.state == FAILED_SAGA, again
    stopped = [s for s in again.steps if s.state == correction_pb2.CORRECTION_STEP_STATE_FAILED]

    try:
        answer = _unlink(firm, (BILL, firm.bill))
    except grpc.RpcError as err:
        error = from_rpc_error(err)
        pytest.fail(
            f"the record is stuck: its correction fails for good ({[s.reason for s in stopped]}) and "
            f"UnlinkLinks answers {error.reason}: {error.message}"
        )
    assert answer.unlinked_count == 1
    assert firm.link(BILL, firm.bill).state == UNLINKED


def test_an_unlink_batch_refused_for_an_unfinished_correction_names_the_record_and_changes_nothing(
    firm: Firm,
) -> None:
    """GUARD. An operator selects two payments to unlink: one whose own correction stopped at the
    delete (Xero 500, so its 100.00 is still live in Xero) and a clean one of another bill. The
    request is refused whole (FAILED_PRECONDITION / CORRECTION_UNFINISHED), its message names
    the record under correction, and neither link changes: the clean payment is not unlinked on
    its own either. Half-done, the operator would not know which record was left."""
    firm.post("client_bill", "client_bill_payment")
    second = transaction_pb2.Transaction()
    second.CopyFrom(firm.sample["client_bill_payment"])
    second.header.id = firm.payment + 7
    second.client_bill_payment.amount.units = 1000
    firm.sample["second_payment"] = second
    firm.post("second_payment")
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Payments/{payment_id}")
    )
    assert firm.apply(PAYMENT, firm.payment, EDIT).state == FAILED_SAGA

    with pytest.raises(grpc.RpcError) as refused:
        _unlink(firm, (PAYMENT, second.header.id), (PAYMENT, firm.payment))

    error = from_rpc_error(refused.value)
    assert (refused.value.code(), error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CORRECTION_UNFINISHED")
    said = error.message + " ".join(v.subject + v.description for v in error.precondition_violations)
    assert str(firm.payment) in said, said
    assert firm.link(PAYMENT, second.header.id).state == LINKED
    assert firm.link(PAYMENT, firm.payment).state == LINKED


# -- the saga's unlink step and the generation it planned --------------------------------------------


def test_a_payment_unlinked_by_hand_before_the_saga_deleted_it_is_deleted_and_its_repost_left_waiting(
    firm: Firm,
) -> None:
    """GUARD. A bill's DELETE correction stops at its first step, the payment's delete (Xero 500):
    the 100.00 payment is still live. The payment itself is not under correction, so the
    operator may unlink it by hand, and the user edits and posts it again (a new generation, which
    waits for the bill under correction). Applying the bill's correction again must still delete
    the old payment in Xero (an orphan now, but the one the saga planned to undo), leave the
    user's new posting alone (WAITING, not closed), void the invoice and complete. Skipping the
    delete would leave 100.00 live on a voided-to-be invoice and the void refused; unlinking the
    repost would lose the client's edited payment."""
    firm.post("client_bill", "client_bill_payment")
    old_payment = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Payments/{old_payment}")
    )
    assert firm.apply(BILL, firm.bill, DELETE).state == FAILED_SAGA
    _unlink(firm, (PAYMENT, firm.payment))
    edited = transaction_pb2.Transaction()
    edited.CopyFrom(firm.sample["client_bill_payment"])
    edited.client_bill_payment.amount.units = 15000
    firm.sample["client_bill_payment"] = edited
    reposted = _post_once(firm, "client_bill_payment")
    wait_for(lambda: firm.link(PAYMENT, firm.payment).state == WAITING, what="the reposted payment waits")

    finished = firm.apply(BILL, firm.bill, DELETE)

    assert finished.state == COMPLETED, [(s.description, s.detail, s.reason) for s in finished.steps]
    assert firm.xero("Payments", old_payment)["Status"] == "DELETED"
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
    assert firm.stub.GetPosting(poster_pb2.GetPostingRequest(name=reposted)).posting.state == WAITING
    assert _live_payments(firm) == []


# -- INVOICE_NUMBER_KEPT: a done step with a reason ----------------------------------------------------


def test_a_rename_found_voided_is_shown_done_without_a_failure_reason(firm: Firm) -> None:
    """DEFECT. An EDIT correction stops at the rename (Xero 500); someone voids the invoice in Xero
    by hand meanwhile; applying again completes, the rename step DONE with reason
    INVOICE_NUMBER_KEPT. correction.proto's contract for CorrectionStep.reason is "UPPER_SNAKE
    reason when FAILED" (docs/corrections.md: "a state ... with detail and, when failed, an
    UPPER_SNAKE reason"), and the CLI's narrow table prints a step's reason code in the detail
    column as it does for a failed step ("[9] XERO_UNAVAILABLE"). A client that reads a non-empty
    reason as a failure (what the contract allows) reports a COMPLETED correction as having a
    failed step, and an operator applies it again or escalates for nothing. The marker the repost
    path needs belongs in the registry, not in the answered reason. From correcting._rename
    returning renamed.reason into the step row, answered by correction_rpcs.correction_message."""
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Invoices/{invoice_id}")
    )
    assert firm.apply(BILL, firm.bill, EDIT).state == FAILED_SAGA
    voided = firm.xero_call(
        "POST", f"Invoices/{invoice_id}", {"Invoices": [{"InvoiceID": invoice_id, "Status": "VOIDED"}]}
    )
    assert voided.status_code == 200, voided.text
    assert firm.apply(BILL, firm.bill, EDIT).state == COMPLETED

    shown = firm.stub.GetCorrection(
        correction_pb2.GetCorrectionRequest(connection_id="firm-1", record=key(BILL, firm.bill))
    ).correction

    assert shown.state == COMPLETED
    [rename] = [s for s in shown.steps if s.action == RENAME]
    assert rename.state == STEP_DONE
    done_with_reason = [(s.order, s.reason) for s in shown.steps if s.state == STEP_DONE and s.reason]
    assert done_with_reason == [], f"DONE steps answered with a failure reason: {done_with_reason}"
