"""Attacks on corrections and unlinking: which Xero object and which version of an Actionstep
record a correction acts on, what a plan says about money on a document that no linked record
holds, what a voided-by-hand invoice leaves for the repost, and what a careless caller gets back.

Each test's docstring says what a user would lose and whether it was a DEFECT when written
(failed before the fix; the docstring tells what happened then) or a GUARD (behaviour that
held). Real posters on loopback against the local Xero emulator, on a SQLite registry (the paths
under attack do not depend on the database)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.integration.test_poster_corrections import Firm, key

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
EDIT = correction_pb2.CORRECTION_INTENT_EDIT
DELETE = correction_pb2.CORRECTION_INTENT_DELETE
XERO_USER = correction_pb2.CORRECTION_ACTOR_XERO_USER
COMPLETED = correction_pb2.CORRECTION_STATE_COMPLETED
FAILED_SAGA = correction_pb2.CORRECTION_STATE_FAILED
LINKED = poster_pb2.LINK_STATE_LINKED
WAITING = poster_pb2.LINK_STATE_WAITING
UNLINKED = poster_pb2.LINK_STATE_UNLINKED
RENAME = correction_pb2.CORRECTION_ACTION_RENAME_DOCUMENT


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


def refusal(call: Any) -> tuple[grpc.StatusCode, str, list[str]]:
    """The code, ErrorInfo reason and the fields named by BadRequest of a refused call."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    err: Any = caught.value
    status = rpc_status.from_call(err)
    reason, fields = "", []
    for detail in status.details if status is not None else []:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad):
            fields += [v.field for v in bad.field_violations]
    return err.code(), reason, fields


def live_payments(firm: Firm) -> list[dict[str, Any]]:
    return [p for p in xero_objects(firm.emulator, firm.org["tenant_id"], "Payments") if p["Status"] != "DELETED"]


def edited_payment(firm: Firm, cents: int) -> transaction_pb2.Transaction:
    edited = transaction_pb2.Transaction()
    edited.CopyFrom(firm.sample["client_bill_payment"])
    edited.client_bill_payment.amount.units = cents
    firm.sample["client_bill_payment"] = edited
    return edited


def post_once(firm: Firm, name: str) -> str:
    posting = firm.stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=firm.sample[name])
    ).posting
    return str(posting.name)


# -- which version of a record a resumed saga unlinks ---------------------------------------------
def test_a_resumed_invoice_correction_does_not_unlink_the_payment_reposted_meanwhile(firm: Firm) -> None:
    """DEFECT. An invoice correction stops at the void (Xero 500) after deleting the bill's
    payment. The operator corrects the payment on its own (ApplyCorrection: "already deleted",
    unlinked), and the Actionstep user, as the plan says, edits the payment and posts it again: it
    is a new generation and waits for the bill (under correction). Applying the invoice's
    correction again resumes its old step "Unlink payment N", which names the record only, not the
    generation it planned for: it unlinks the user's new, waiting payment, closing its outbox work.
    After the bill is posted again the edited payment is never sent: the client's 200.00 payment
    is lost from Xero with nothing pending. Comes from correcting._unlink / unlinking.unlink
    (record key only; the saga's generation of the dependent is not stored or checked)."""
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Invoices/{invoice_id}")
    )
    assert firm.apply(BILL, firm.bill, DELETE).state == FAILED_SAGA
    assert live_payments(firm) == []
    # The payment's own correction: already deleted in Xero, so it only unlinks it.
    assert firm.apply(PAYMENT, firm.payment, EDIT).state == COMPLETED
    assert firm.link(PAYMENT, firm.payment).state == UNLINKED
    # The user edits the payment and posts it again: it waits for the bill under correction.
    edited_payment(firm, 20000)
    reposted = post_once(firm, "client_bill_payment")
    wait_for(lambda: firm.link(PAYMENT, firm.payment).state == WAITING, what="the reposted payment waits")

    finished = firm.apply(BILL, firm.bill, DELETE)

    assert finished.state == COMPLETED
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
    state = firm.stub.GetPosting(poster_pb2.GetPostingRequest(name=reposted)).posting.state
    assert state == WAITING, (
        "the saga's unlink step of the first payment took the user's edited repost with it: it is now "
        f"{poster_pb2.LinkState.Name(state)} and will never be sent"
    )


# -- money on the document that no linked record holds ----------------------------------------
def test_a_payment_orphaned_by_a_plain_unlink_blocks_the_invoice_correction_up_front(firm: Firm) -> None:
    """DEFECT. The operator unlinks a bill's payment alone (UnlinkLinks): its Xero payment stays on
    the invoice, orphaned. docs/corrections.md: "A payment or credit on the document that no link
    holds (entered in Xero by hand, or orphaned by an earlier unlink) becomes a XERO_USER step ...
    and blocks ApplyCorrection". But the plan counts the payment as xerolink's because an unlinked
    dependent still lists it, so PlanCorrection shows no step for it and ApplyCorrection starts
    the saga, which Xero refuses at the void (the invoice has a payment): the operator learns of
    the orphan from a failed saga, not from the plan. From correction_plans.plan_document: `ours`
    is built from every dependent's objects, linked or not."""
    firm.post("client_bill", "client_bill_payment")
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    firm.stub.UnlinkLinks(
        unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key(PAYMENT, firm.payment)], confirm=True)
    )
    assert [p["PaymentID"] for p in live_payments(firm)] == [payment_id]

    plan = firm.plan(BILL, firm.bill, DELETE)

    named = [s for s in plan.steps if s.actor == XERO_USER and s.xero_id == payment_id]
    assert named, "the plan does not name the orphaned payment still on the invoice in Xero"
    code, reason, _ = refusal(lambda: firm.apply(BILL, firm.bill, DELETE))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CORRECTION_BLOCKED")


# -- a rename step that renamed nothing --------------------------------------------------------
def test_an_invoice_voided_by_hand_before_the_rename_can_still_be_reposted(firm: Firm) -> None:
    """DEFECT. An EDIT correction of a client bill stops at the rename (Xero 500). Someone voids
    the invoice in Xero by hand under its own number meanwhile; applying again records the rename
    step DONE ("already voided in Xero under INV-…: … stays taken") although nothing was renamed,
    and completes. docs/unlinking.md: a client bill whose own orphan was voided in Xero under its
    number is posted again as <number>-repost-<id>-<generation>. But the repost's renumbering
    skips orphans a correction "renamed" (any DONE RENAME_DOCUMENT step), so this one is skipped,
    Xero refuses the number ("Invoice # must be unique") and the edited bill fails: it cannot be
    posted at all. From CorrectionRepository.renamed_documents (DONE is read as renamed) with
    correcting._rename recording a skipped rename as DONE."""
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    number = firm.xero("Invoices", invoice_id)["InvoiceNumber"]
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Invoices/{invoice_id}")
    )
    stopped = firm.apply(BILL, firm.bill, EDIT)
    assert stopped.state == FAILED_SAGA
    assert next(s for s in stopped.steps if s.action == RENAME).state == correction_pb2.CORRECTION_STEP_STATE_FAILED
    voided = firm.xero_call(
        "POST", f"Invoices/{invoice_id}", {"Invoices": [{"InvoiceID": invoice_id, "Status": "VOIDED"}]}
    )
    assert voided.status_code == 200, voided.text

    finished = firm.apply(BILL, firm.bill, EDIT)
    assert finished.state == COMPLETED
    assert firm.xero("Invoices", invoice_id)["InvoiceNumber"] == number  # nothing was renamed

    edited = transaction_pb2.Transaction()
    edited.CopyFrom(firm.sample["client_bill"])
    edited.client_bill.lines[0].description = "Professional fees (corrected)"
    firm.sample["client_bill"] = edited
    posting = post_once(firm, "client_bill")
    settled = wait_settled(firm.stub, posting)
    error = firm.link(BILL, firm.bill).last_error
    said = "; ".join(v.description for v in error.field_violations)
    assert settled.state == LINKED, f"the edited bill was refused: {error.reason} {said}"
    new_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    assert firm.xero("Invoices", new_id)["InvoiceNumber"] == f"{number}-repost-{firm.bill}-2"


# -- another organisation's record with the same Actionstep id -----------------------------------
def test_a_correction_under_one_connection_never_touches_the_same_record_of_another(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """GUARD. Two firms (two connections, two organisations) post a bill and payment with the same
    Actionstep ids. Correcting firm-2's bill must void firm-2's invoice and delete firm-2's payment
    only: firm-1's money stays AUTHORISED in its organisation and its links stay linked. A
    correction found by record id alone would void another firm's invoice."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    one = Firm(stub, emulator)
    one.post("client_bill", "client_bill_payment")
    _, org_two = connect(stub, emulator, "firm-2")
    one.post("client_bill", "client_bill_payment", connection_id="firm-2")
    request = correction_pb2.ApplyCorrectionRequest(connection_id="firm-2", record=key(BILL, one.bill), intent=DELETE)

    done = stub.ApplyCorrection(request, timeout=30).correction

    assert done.state == COMPLETED
    two_objects = {s.xero_id for s in done.steps if s.xero_id}
    one_invoice = one.xero_id(BILL, one.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    one_payment = one.xero_id(PAYMENT, one.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    assert not two_objects & {one_invoice, one_payment}
    assert one.xero("Invoices", one_invoice)["Status"] == "PAID" or one.xero("Invoices", one_invoice)["Status"] == (
        "AUTHORISED"
    )
    assert one.xero("Payments", one_payment)["Status"] == "AUTHORISED"
    assert one.link(BILL, one.bill).state == LINKED and one.link(PAYMENT, one.payment).state == LINKED
    two_invoices = xero_objects(emulator, org_two["tenant_id"], "Invoices")
    assert [i["Status"] for i in two_invoices] == ["VOIDED"]
    assert all(p["Status"] == "DELETED" for p in xero_objects(emulator, org_two["tenant_id"], "Payments"))


# -- a half-done correction stranded by a plain unlink and a repost -----------------------------
def test_a_record_whose_correction_stopped_is_not_unlinked_by_hand_and_applying_again_finishes_it(
    firm: Firm,
) -> None:
    """DEFECT (fixed). A payment's correction stops at its first step (Xero 500 on the delete):
    its 100.00 payment is still live in Xero. The operator, impatient, unlinked the payment by
    hand and the user posted the edited 200.00 payment; ApplyCorrection then started a new saga
    on the new generation and deleted the user's new payment, while the old one stayed live: Xero
    had the wrong amount paid and no link pointed at the live payment. Now UnlinkLinks refuses a
    record whose correction has not completed (FAILED_PRECONDITION / CORRECTION_UNFINISHED,
    nothing changed), and applying the correction again resumes it and deletes the old payment."""
    firm.post("client_bill", "client_bill_payment")
    old_payment = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Payments/{old_payment}")
    )
    stopped = firm.apply(PAYMENT, firm.payment, EDIT)
    assert stopped.state == FAILED_SAGA
    assert firm.xero("Payments", old_payment)["Status"] == "AUTHORISED"
    with pytest.raises(grpc.RpcError) as refused:
        firm.stub.UnlinkLinks(
            unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key(PAYMENT, firm.payment)], confirm=True)
        )
    error = from_rpc_error(refused.value)
    assert (refused.value.code(), error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CORRECTION_UNFINISHED")
    links = firm.stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links
    assert {link.state for link in links} == {poster_pb2.LINK_STATE_LINKED}, "the refused unlink changed a link"

    again = firm.apply(PAYMENT, firm.payment, EDIT)

    assert again.correction_id == stopped.correction_id and again.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert firm.xero("Payments", old_payment)["Status"] == "DELETED"


# -- a careless caller ---------------------------------------------------------------------------
def test_bad_correction_requests_get_field_errors_and_change_nothing(firm: Firm) -> None:
    """GUARD. A caller that leaves out the record, sends an id of 0, a kind that does not exist or
    an intent that is not EDIT or DELETE gets INVALID_ARGUMENT naming the field (`record`,
    `intent`), and nothing is corrected: the bill and its payment stay linked and live in Xero and
    no correction is recorded. An unknown connection is NOT_FOUND, not a correction of firm-1."""
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    bad: list[tuple[correction_pb2.ApplyCorrectionRequest, str, str]] = [
        (correction_pb2.ApplyCorrectionRequest(connection_id="firm-1", intent=DELETE), "INVALID_RECORD", "record"),
        (
            correction_pb2.ApplyCorrectionRequest(connection_id="firm-1", record=key(BILL, 0), intent=DELETE),
            "INVALID_RECORD",
            "record",
        ),
        (
            correction_pb2.ApplyCorrectionRequest(connection_id="firm-1", record=key(987, firm.bill), intent=DELETE),
            "INVALID_RECORD",
            "record",
        ),
        (
            correction_pb2.ApplyCorrectionRequest(connection_id="firm-1", record=key(BILL, firm.bill)),
            "INVALID_INTENT",
            "intent",
        ),
        (
            correction_pb2.ApplyCorrectionRequest(
                connection_id="firm-1",
                record=key(BILL, firm.bill),
                intent=77,  # type: ignore[arg-type]
            ),
            "INVALID_INTENT",
            "intent",
        ),
    ]
    for request, reason, field in bad:
        code, said, fields = refusal(lambda request=request: firm.stub.ApplyCorrection(request, timeout=30))
        assert (code, said, fields) == (grpc.StatusCode.INVALID_ARGUMENT, reason, [field]), request
    unknown = correction_pb2.ApplyCorrectionRequest(connection_id="firm-9", record=key(BILL, firm.bill), intent=DELETE)
    code, said, _ = refusal(lambda: firm.stub.ApplyCorrection(unknown, timeout=30))
    assert (code, said) == (grpc.StatusCode.NOT_FOUND, "CONNECTION_NOT_FOUND")
    code, said, _ = refusal(
        lambda: firm.stub.GetCorrection(
            correction_pb2.GetCorrectionRequest(connection_id="firm-1", record=key(BILL, firm.bill))
        )
    )
    assert (code, said) == (grpc.StatusCode.NOT_FOUND, "CORRECTION_NOT_FOUND")
    assert firm.xero("Invoices", invoice_id)["Status"] == "PAID" or firm.xero("Invoices", invoice_id)["Status"] == (
        "AUTHORISED"
    )
    assert len(live_payments(firm)) == 1
    assert firm.link(BILL, firm.bill).state == LINKED and firm.link(PAYMENT, firm.payment).state == LINKED


def test_an_unlink_by_a_name_of_another_connection_or_a_bad_id_changes_nothing(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """GUARD. Two firms hold a bill with the same Actionstep id. A caller of firm-2 who pastes
    firm-1's link name (or a name with id 0) into UnlinkLinks gets INVALID_ARGUMENT on `names[i]`
    and nothing is unlinked in either firm: it is never read as firm-2's record of that id."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    one = Firm(stub, emulator)
    one.post("client_bill")
    connect(stub, emulator, "firm-2")
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-2", transaction=one.sample["client_bill"])
    ).posting
    assert wait_settled(stub, posting.name).state == LINKED
    names = [f"connections/firm-1/links/client-bill/{one.bill}", "connections/firm-2/links/client-bill/0"]
    for i, name in enumerate(names):
        request = unlink_pb2.UnlinkLinksRequest(connection_id="firm-2", names=[name], confirm=True)
        code, said, fields = refusal(lambda request=request: stub.UnlinkLinks(request))
        assert (code, said, fields) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_UNLINK_REQUEST", ["names[0]"]), i
    for connection_id in ("firm-1", "firm-2"):
        link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id=connection_id, record=key(BILL, one.bill))).link
        assert link.state == LINKED, connection_id


# -- a dependent whose outcome is unknown ---------------------------------------------------------
def test_an_invoice_plan_does_not_call_a_payment_of_unknown_outcome_not_in_xero(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """DEFECT. A payment's PUT reaches Xero but its answer is lost, and look-ups fail until the
    attempts run out: the link is FAILED with its outcome unknown ("Check Xero for the reference
    before posting again") while Xero holds the payment. Planning the bill's correction then tells
    the operator "payment N failed to post: it is not in Xero; delete or fix it in Actionstep",
    and lists the very same Xero payment as one "no linked Actionstep record holds it (entered in
    Xero by hand, or orphaned by an earlier unlink)". The plan misstates what is in Xero: an
    operator who trusts it deletes the payment in Actionstep and leaves a client's payment live in
    Xero against nothing, or reposts it believing nothing was made. From
    correction_plans.plan_document, which notes every FAILED dependent as not in Xero without
    reading the link's outcome_unknown."""
    firm = Firm(stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=3))), emulator)
    firm.post("client_bill")
    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Payments"))
    emulator.faults.add(FaultRule("error", status=503, methods=("GET",), path_contains="Payments"))
    posting = post_once(firm, "client_bill_payment")
    assert wait_settled(firm.stub, posting, timeout=30).state == poster_pb2.LINK_STATE_FAILED
    emulator.faults.clear()
    [made] = live_payments(firm)

    plan = firm.plan(BILL, firm.bill, DELETE)

    assert any(s.actor == XERO_USER and s.xero_id == made["PaymentID"] for s in plan.steps)
    said = [n for n in plan.notes if f"payment {firm.payment}" in n]
    assert not [n for n in said if "not in Xero" in n], (
        f"the plan says {said} while Xero holds payment {made['PaymentID']} of that record"
    )
