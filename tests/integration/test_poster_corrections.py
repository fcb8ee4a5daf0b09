"""Corrections through real gRPC on loopback, against the emulator, on SQLite and PostgreSQL: the
plan follows the seed's best practice and is computed from the registry and what Xero reports
now; applying it deletes payments and allocations, voids or deletes the document and unlinks; a
Xero fault mid-saga leaves a state that ApplyCorrection finishes without acting twice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc
import httpx
import pytest
from grpc_status import rpc_status
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xero_emulator.jsonio import dumps
from xero_emulator.testing import payment
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples
from xerolink_poster.entrypoints import bootstrap

from tests.contract.xero_parameters import undeclared_requests
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_for, wait_settled, xero_objects
from tests.fixtures.processes import child_env, console_script, free_port, running
from tests.integration.test_poster_tenant_isolation import as_caller, poster  # noqa: F401 - the fixture

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
CREDIT_NOTE = common_pb2.TRANSACTION_KIND_CREDIT_NOTE
APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION
EDIT = correction_pb2.CORRECTION_INTENT_EDIT
DELETE = correction_pb2.CORRECTION_INTENT_DELETE
XEROLINK = correction_pb2.CORRECTION_ACTOR_XEROLINK
USER = correction_pb2.CORRECTION_ACTOR_ACTIONSTEP_USER
XERO_USER = correction_pb2.CORRECTION_ACTOR_XERO_USER
A = correction_pb2
DONE = correction_pb2.CORRECTION_STEP_STATE_DONE
PENDING = correction_pb2.CORRECTION_STEP_STATE_PENDING
FAILED = correction_pb2.CORRECTION_STEP_STATE_FAILED


def key(kind: int, record_id: int) -> common_pb2.RecordKey:
    return common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]


class Firm:
    """One connection with a bill, its payment, and a credit note applied to it, all linked."""

    def __init__(self, stub: poster_grpc.PosterServiceStub, emulator: EmulatorServer, base: int = 5000) -> None:
        self.stub = stub
        self.emulator = emulator
        _, self.org = connect(stub, emulator)
        self.sample = samples.sample_transactions(base)
        self.bill = self.sample["client_bill"].header.id
        self.payment = self.sample["client_bill_payment"].header.id
        self.credit_note = self.sample["credit_note"].header.id
        self.application = self.sample["credit_note_application"].header.id

    def post(self, *names: str, connection_id: str = "firm-1") -> None:
        """Posts these samples under the connection (another firm's, holding the same Actionstep
        ids, when not firm-1's) and waits for each to be linked."""
        for name in names:
            posting = self.stub.PostTransaction(
                poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=self.sample[name])
            ).posting
            assert wait_settled(self.stub, posting.name).state == poster_pb2.LINK_STATE_LINKED, name

    def link(self, kind: int, record_id: int) -> poster_pb2.Link:
        request = poster_pb2.GetLinkRequest(connection_id="firm-1", record=key(kind, record_id), include_audit=True)
        found: poster_pb2.Link = self.stub.GetLink(request).link
        return found

    def xero_id(self, kind: int, record_id: int, xero_type: int) -> str:
        return next(o.xero_id for o in self.link(kind, record_id).xero_objects if o.type == xero_type)

    def plan(self, kind: int, record_id: int, intent: int) -> correction_pb2.Correction:
        request = correction_pb2.PlanCorrectionRequest(
            connection_id="firm-1",
            record=key(kind, record_id),
            intent=intent,  # type: ignore[arg-type]
        )
        found: correction_pb2.Correction = self.stub.PlanCorrection(request).correction
        return found

    def apply(self, kind: int, record_id: int, intent: int) -> correction_pb2.Correction:
        request = correction_pb2.ApplyCorrectionRequest(
            connection_id="firm-1",
            record=key(kind, record_id),
            intent=intent,  # type: ignore[arg-type]
        )
        found: correction_pb2.Correction = self.stub.ApplyCorrection(request, timeout=60).correction
        return found

    def xero(self, resource: str, xero_id: str) -> dict[str, Any]:
        return next(
            o for o in xero_objects(self.emulator, self.org["tenant_id"], resource) if o[_ID[resource]] == xero_id
        )

    def xero_call(self, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        """A call a person makes in Xero (the organisation's own user, not xerolink)."""
        return httpx.request(
            method,
            f"{self.emulator.base_url}/api.xro/2.0/{path}",
            content=dumps(body),
            headers={
                "Authorization": f"Bearer {self.org['access_token']}",
                "xero-tenant-id": self.org["tenant_id"],
                "Content-Type": "application/json",
            },
        )

    def hand_made_payment(self, invoice_id: str) -> str:
        response = self.xero_call("PUT", "Payments", {"Payments": [payment(invoice_id, "10.00")]})
        assert response.status_code == 200, response.text
        return str(response.json()["Payments"][0]["PaymentID"])

    def balance(self, code: str) -> Decimal:
        for account in self.emulator.ledger(self.org["tenant_id"])["accounts"]:
            if account["Code"] == code:
                return Decimal(str(account["Balance"]))
        return Decimal("0.00")

    def post_edited_bill(self, first_line_cents: int) -> transaction_pb2.Transaction:
        """The user's steps after an EDIT correction: the bill, reverted to draft in Actionstep,
        edited and posted again under its own bill number."""
        edited = transaction_pb2.Transaction()
        edited.CopyFrom(self.sample["client_bill"])
        bill = edited.client_bill
        bill.lines[0].amount.units = first_line_cents
        bill.lines[0].tax.units = first_line_cents // 10
        bill.lines[0].unit_price = f"{first_line_cents // 100}.{first_line_cents % 100:02d}"
        bill.totals.CopyFrom(samples.totals(list(bill.lines)))
        self.sample["client_bill"] = edited
        self.post("client_bill")
        return edited


_ID = {"Invoices": "InvoiceID", "Payments": "PaymentID", "CreditNotes": "CreditNoteID"}


def shape(correction: correction_pb2.Correction) -> list[tuple[int, int, int]]:
    """Each step as (action, actor, state)."""
    return [(s.action, s.actor, s.state) for s in correction.steps]


def rpc_error(call: Any) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    err: Any = caught.value
    status = rpc_status.from_call(err)
    reason = ""
    if status is not None:
        from google.rpc import error_details_pb2

        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                reason = info.reason
    return err.code(), reason, err.details()


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


# -- plans --------------------------------------------------------------------------------------
@pytest.mark.parametrize("intent", [EDIT, DELETE])
def test_a_payment_plan_follows_the_seed_and_changes_nothing(firm: Firm, intent: int) -> None:
    firm.post("client_bill", "client_bill_payment")
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)

    plan = firm.plan(PAYMENT, firm.payment, intent)

    assert plan.state == correction_pb2.CORRECTION_STATE_PLANNED and not plan.correction_id
    assert [s.order for s in plan.steps] == list(range(1, len(plan.steps) + 1))
    expected = [
        (A.CORRECTION_ACTION_DELETE_PAYMENT, XEROLINK, PENDING),
        (A.CORRECTION_ACTION_UNLINK, XEROLINK, PENDING),
    ]
    expected.append((A.CORRECTION_ACTION_MANUAL, USER, PENDING))
    if intent == EDIT:
        expected.append((A.CORRECTION_ACTION_MANUAL, USER, PENDING))
    assert shape(plan) == expected
    assert plan.steps[0].xero_id == payment_id
    assert (plan.steps[1].record.kind, plan.steps[1].record.id) == (PAYMENT, firm.payment)
    if intent == EDIT:
        assert "Edit" in plan.steps[2].description and "still linked" in plan.steps[3].description
    else:
        assert plan.steps[2].description.startswith("Delete")
    assert firm.xero("Payments", payment_id)["Status"] == "AUTHORISED"
    assert firm.link(PAYMENT, firm.payment).state == poster_pb2.LINK_STATE_LINKED


@pytest.mark.parametrize("intent", [EDIT, DELETE])
def test_an_invoice_plan_lists_its_linked_payments_and_allocations_and_reads_xero(firm: Firm, intent: int) -> None:
    firm.post("client_bill", "client_bill_payment", "credit_note", "credit_note_application")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    allocation_id = firm.xero_id(APPLICATION, firm.application, xero_pb2.OBJECT_TYPE_ALLOCATION)

    plan = firm.plan(BILL, firm.bill, intent)

    assert plan.xero_status == firm.xero("Invoices", invoice_id)["Status"] == "AUTHORISED"
    ours = [(s.action, s.xero_id or (s.record.kind, s.record.id)) for s in plan.steps if s.actor == XEROLINK]
    # An edit reposts the bill under its own number, which the old invoice must give up before it
    # is voided (Xero keeps a voided invoice's number); a deletion leaves the number on it.
    rename = [(A.CORRECTION_ACTION_RENAME_DOCUMENT, invoice_id)] if intent == EDIT else []
    assert ours == [
        (A.CORRECTION_ACTION_DELETE_PAYMENT, payment_id),
        (A.CORRECTION_ACTION_DELETE_ALLOCATION, allocation_id),
        *rename,
        (A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT, invoice_id),
        (A.CORRECTION_ACTION_UNLINK, (PAYMENT, firm.payment)),
        (A.CORRECTION_ACTION_UNLINK, (APPLICATION, firm.application)),
        (A.CORRECTION_ACTION_UNLINK, (BILL, firm.bill)),
    ]
    void = next(s for s in plan.steps if s.action == A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT)
    assert "Void" in void.description
    if intent == EDIT:
        renamed = f"INV-{firm.bill}-void-{firm.bill}-1"
        assert f"INV-{firm.bill}" in plan.steps[2].description and renamed in plan.steps[2].description
        assert any(f"renamed {renamed} and voided" in n for n in plan.notes)
    people = [s.description for s in plan.steps if s.actor == USER]
    assert people[0].startswith("Delete payment") and people[1].startswith("Delete credit note application")
    assert "Revert" in people[2] and "Draft" in people[2]
    if intent == EDIT:
        assert "post it again" in people[3] and "payments again" in people[4]
    else:
        assert people[3].startswith("Delete client bill") and len(people) == 4
    assert all(s.state == PENDING for s in plan.steps)
    assert any("read from Xero" in n for n in plan.notes)
    assert firm.xero("Invoices", invoice_id)["Status"] == "AUTHORISED"


def test_an_invoice_plan_sees_what_was_done_in_xero_by_hand(firm: Firm) -> None:
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    tenant = firm.org["tenant_id"]
    # Someone deletes xerolink's payment in Xero and enters another one by hand.
    with httpx.Client(base_url=firm.emulator.base_url) as client:
        headers = {"Authorization": f"Bearer {firm.org['access_token']}", "xero-tenant-id": tenant}
        deleted = client.post(
            f"/api.xro/2.0/Payments/{payment_id}", json={"Payments": [{"Status": "DELETED"}]}, headers=headers
        )
        assert deleted.status_code == 200, deleted.text
    by_hand = firm.hand_made_payment(invoice_id)

    plan = firm.plan(BILL, firm.bill, DELETE)

    assert plan.steps[0].xero_id == payment_id and plan.steps[0].state == DONE
    assert "already deleted" in plan.steps[0].detail
    [manual] = [s for s in plan.steps if s.actor == XERO_USER]
    assert manual.xero_id == by_hand and "by hand" in manual.description
    code, reason, message = rpc_error(lambda: firm.apply(BILL, firm.bill, DELETE))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CORRECTION_BLOCKED")
    assert by_hand in message
    assert firm.xero("Invoices", invoice_id)["Status"] == "AUTHORISED"
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED


def test_records_that_cannot_be_corrected_get_clear_errors(firm: Firm) -> None:
    firm.post("client_bill")
    code, reason, message = rpc_error(lambda: firm.plan(PAYMENT, 999_999, EDIT))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "LINK_NOT_FOUND") and "Actionstep" in message
    code, reason, _ = rpc_error(lambda: firm.plan(BILL, firm.bill, correction_pb2.CORRECTION_INTENT_UNSPECIFIED))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_INTENT")
    # A payment whose bill is not linked waits: it is not in Xero yet.
    waiting = samples.sample_transactions(7000)["client_bill_payment"]
    firm.stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=waiting))
    code, reason, message = rpc_error(lambda: firm.plan(PAYMENT, waiting.header.id, DELETE))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "POSTING_IN_PROGRESS") and "wait" in message
    receipt = samples.sample_transactions(8000)["trust_receipt"]
    posting = firm.stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=receipt))
    wait_settled(firm.stub, posting.posting.name)
    code, reason, _ = rpc_error(lambda: firm.plan(common_pb2.TRANSACTION_KIND_TRUST_RECEIPT, receipt.header.id, DELETE))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CORRECTION_NOT_SUPPORTED")


# -- applying -----------------------------------------------------------------------------------
def test_applying_an_invoice_correction_voids_it_deletes_its_money_and_unlinks_everything(firm: Firm) -> None:
    firm.post("client_bill", "client_bill_payment", "credit_note", "credit_note_application")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    note_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, xero_pb2.OBJECT_TYPE_CREDIT_NOTE)
    allocation_id = firm.xero_id(APPLICATION, firm.application, xero_pb2.OBJECT_TYPE_ALLOCATION)

    done = firm.apply(BILL, firm.bill, EDIT)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    assert done.name == f"connections/firm-1/corrections/{done.correction_id}"
    assert all(s.state == DONE for s in done.steps if s.actor == XEROLINK)
    assert all(s.state == PENDING for s in done.steps if s.actor == USER)
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
    assert firm.xero("Payments", payment_id)["Status"] == "DELETED"
    [allocation] = firm.xero("CreditNotes", note_id)["Allocations"]
    assert allocation["AllocationID"] == allocation_id and allocation["IsDeleted"]
    for kind, record_id, xero_id in (
        (BILL, firm.bill, invoice_id),
        (PAYMENT, firm.payment, payment_id),
        (APPLICATION, firm.application, allocation_id),
    ):
        link = firm.link(kind, record_id)
        assert link.state == poster_pb2.LINK_STATE_UNLINKED
        assert xero_id in link.audit[-1].detail and "orphaned" in link.audit[-1].detail
        assert done.correction_id in link.audit[-1].actor
    # The credit note itself stays linked: only its application to this bill was undone.
    assert firm.link(CREDIT_NOTE, firm.credit_note).state == poster_pb2.LINK_STATE_LINKED
    again = firm.apply(BILL, firm.bill, EDIT)
    assert again.correction_id == done.correction_id and shape(again) == shape(done)
    got = firm.stub.GetCorrection(
        correction_pb2.GetCorrectionRequest(connection_id="firm-1", record=key(BILL, firm.bill))
    )
    assert got.correction == again


def test_applying_a_payment_correction_deletes_it_and_the_repost_recreates_it(firm: Firm) -> None:
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)

    done = firm.apply(PAYMENT, firm.payment, EDIT)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert firm.xero("Payments", payment_id)["Status"] == "DELETED"
    assert firm.xero("Invoices", invoice_id)["AmountPaid"] == 0
    assert firm.link(PAYMENT, firm.payment).state == poster_pb2.LINK_STATE_UNLINKED
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED
    # The user's steps: edit and resave, which posts it again while the invoice is still linked.
    edited = transaction_pb2.Transaction()
    edited.CopyFrom(firm.sample["client_bill_payment"])
    edited.client_bill_payment.amount.units = 20000
    firm.sample["client_bill_payment"] = edited
    firm.post("client_bill_payment")
    assert firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT) != payment_id
    # A new generation of the link: a new correction can be planned for it.
    assert firm.plan(PAYMENT, firm.payment, DELETE).steps[0].state == PENDING


@pytest.mark.parametrize("kind", ["drop_after_commit", "garble_after_commit", "error"])
def test_a_fault_on_the_void_leaves_a_saga_that_applying_again_finishes_once(firm: Firm, kind: str) -> None:
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    fault = FaultRule(kind, status=500, count=1, methods=("POST",), path_contains=f"Invoices/{invoice_id}")
    firm.emulator.faults.add(fault)
    # Counts the void requests that reach Xero (a zero-second latency rule only counts).
    writes = firm.emulator.faults.add(FaultRule("latency", methods=("POST",), path_contains=f"Invoices/{invoice_id}"))

    stopped = firm.apply(BILL, firm.bill, DELETE)

    assert stopped.state == correction_pb2.CORRECTION_STATE_FAILED
    void = next(s for s in stopped.steps if s.action == A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT)
    assert void.state == FAILED and void.attempts == 1
    assert void.reason in ("XERO_NO_ANSWER", "XERO_UNAVAILABLE") and "apply again" in void.detail
    assert stopped.steps[0].state == DONE  # the payment was deleted before the void
    assert firm.xero("Payments", payment_id)["Status"] == "DELETED"
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED
    assert firm.link(PAYMENT, firm.payment).state == poster_pb2.LINK_STATE_LINKED
    committed = fault.kind != "error"
    assert firm.xero("Invoices", invoice_id)["Status"] == ("VOIDED" if committed else "AUTHORISED")

    finished = firm.apply(BILL, firm.bill, DELETE)

    assert finished.correction_id == stopped.correction_id
    assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED
    void = next(s for s in finished.steps if s.action == A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT)
    assert void.attempts == 2 and void.state == DONE
    assert ("already voided" in void.detail) == committed
    assert writes.hits == (1 if committed else 2)  # a committed void is found, never sent again
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED
    assert firm.link(PAYMENT, firm.payment).state == poster_pb2.LINK_STATE_UNLINKED


def test_a_draft_is_deleted_not_voided(firm: Firm) -> None:
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    # An organisation where the bill sits as a draft (the emulator's state stands in for Xero's UI).
    org = firm.emulator.state.organisation(firm.org["tenant_id"])
    with org.lock:
        org.objects["Invoices"][invoice_id]["Status"] = "DRAFT"

    plan = firm.plan(BILL, firm.bill, DELETE)
    assert plan.xero_status == "DRAFT" and "Delete invoice" in plan.steps[0].description

    done = firm.apply(BILL, firm.bill, DELETE)
    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert firm.xero("Invoices", invoice_id)["Status"] == "DELETED"


def test_a_poster_killed_mid_saga_is_resumed_by_a_new_poster_on_the_same_database(
    database_url: str, mapper_target: str, emulator: EmulatorServer
) -> None:
    def poster_env(port: int, name: str) -> dict[str, str]:
        return child_env(
            XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
            XEROLINK_DATABASE_URL=database_url,
            XEROLINK_MAPPER_TARGET=mapper_target,
            XEROLINK_POSTER_INSTANCE=name,
            XEROLINK_TENANT_LEASE_SECONDS="2",
            XEROLINK_XERO_TIMEOUT_SECONDS="0.9",
            XEROLINK_TENANT_IDLE_RELEASE_SECONDS="0.3",
        )

    port = free_port()
    with running(console_script("xerolink-poster"), port, env=poster_env(port, "first")) as first:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        firm = Firm(poster_grpc.PosterServiceStub(channel), emulator)
        firm.post("client_bill", "client_bill_payment")
        invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
        payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
        # The void is slow; the poster dies while it is in flight (Xero still commits it).
        path = f"Invoices/{invoice_id}"
        emulator.faults.add(FaultRule("latency", seconds=0.5, methods=("POST",), path_contains=path))
        writes = emulator.faults.add(FaultRule("latency", methods=("POST",), path_contains=path))
        threading.Thread(target=lambda: rpc_error(lambda: firm.apply(BILL, firm.bill, DELETE)), daemon=True).start()

        def void_step() -> correction_pb2.CorrectionStep:
            request = correction_pb2.GetCorrectionRequest(connection_id="firm-1", record=key(BILL, firm.bill))
            steps = firm.stub.GetCorrection(request).correction.steps
            step: correction_pb2.CorrectionStep = next(
                s for s in steps if s.action == A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT
            )
            return step

        def void_started() -> bool:
            try:
                return void_step().state == correction_pb2.CORRECTION_STEP_STATE_IN_PROGRESS
            except grpc.RpcError:
                return False

        wait_for(void_started, timeout=15, interval=0.02)
        wait_for(lambda: writes.hits == 1, timeout=5, interval=0.01)  # the void is on the wire
        first.kill()
        first.wait()
        channel.close()
    wait_for(lambda: firm.xero("Invoices", invoice_id)["Status"] == "VOIDED", timeout=5)

    port = free_port()
    with (
        running(console_script("xerolink-poster"), port, env=poster_env(port, "second")),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        firm.stub = poster_grpc.PosterServiceStub(channel)
        left = void_step()
        assert left.state == correction_pb2.CORRECTION_STEP_STATE_IN_PROGRESS and left.attempts == 1
        assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED

        finished = firm.apply(BILL, firm.bill, DELETE)

        assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED, finished
        resumed = void_step()
        assert resumed.attempts == 2 and "already voided" in resumed.detail
        assert writes.hits == 1
        assert firm.xero("Payments", payment_id)["Status"] == "DELETED"
        assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED
        assert firm.link(PAYMENT, firm.payment).state == poster_pb2.LINK_STATE_UNLINKED


def test_a_poster_killed_during_the_rename_is_resumed_without_renaming_twice(
    database_url: str, mapper_target: str, emulator: EmulatorServer
) -> None:
    """The poster dies while the rename is on the wire and Xero commits it: the answer is lost
    and the step is left in progress. A new poster reads the invoice, finds it renamed, and goes
    on to void it: one rename, one void."""
    port = free_port()
    env = child_env(
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
        XEROLINK_DATABASE_URL=database_url,
        XEROLINK_MAPPER_TARGET=mapper_target,
        XEROLINK_POSTER_INSTANCE="first",
        XEROLINK_TENANT_LEASE_SECONDS="2",
        XEROLINK_XERO_TIMEOUT_SECONDS="0.9",
        XEROLINK_TENANT_IDLE_RELEASE_SECONDS="0.3",
    )
    with running(console_script("xerolink-poster"), port, env=env) as first:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        firm = Firm(poster_grpc.PosterServiceStub(channel), emulator)
        firm.post("client_bill", "client_bill_payment")
        invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
        path = f"Invoices/{invoice_id}"
        # The rename (the first POST to the invoice) is slow; Xero still commits it.
        emulator.faults.add(FaultRule("latency", seconds=0.5, count=1, methods=("POST",), path_contains=path))
        writes = emulator.faults.add(FaultRule("latency", methods=("POST",), path_contains=path))
        threading.Thread(target=lambda: rpc_error(lambda: firm.apply(BILL, firm.bill, EDIT)), daemon=True).start()
        wait_for(lambda: writes.hits == 1, timeout=15, interval=0.01)  # the rename is on the wire
        first.kill()
        first.wait()
        channel.close()
    renamed = f"INV-{firm.bill}-void-{firm.bill}-1"
    wait_for(lambda: firm.xero("Invoices", invoice_id)["InvoiceNumber"] == renamed, timeout=5)

    port = free_port()
    env.update(XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}", XEROLINK_POSTER_INSTANCE="second")
    with (
        running(console_script("xerolink-poster"), port, env=env),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        firm.stub = poster_grpc.PosterServiceStub(channel)
        request = correction_pb2.GetCorrectionRequest(connection_id="firm-1", record=key(BILL, firm.bill))
        steps = firm.stub.GetCorrection(request).correction.steps
        left = next(s for s in steps if s.action == A.CORRECTION_ACTION_RENAME_DOCUMENT)
        assert left.state == correction_pb2.CORRECTION_STEP_STATE_IN_PROGRESS and left.attempts == 1
        assert firm.xero("Invoices", invoice_id)["Status"] == "AUTHORISED"
        assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED

        finished = firm.apply(BILL, firm.bill, EDIT)

        assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED, finished
        resumed = next(s for s in finished.steps if s.action == A.CORRECTION_ACTION_RENAME_DOCUMENT)
        assert resumed.attempts == 2 and "already renamed" in resumed.detail
        assert writes.hits == 2  # the rename once, the void once
        invoice = firm.xero("Invoices", invoice_id)
        assert (invoice["Status"], invoice["InvoiceNumber"]) == ("VOIDED", renamed)
        assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED
        firm.post_edited_bill(52000)
        new = firm.xero("Invoices", firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE))
        assert (new["InvoiceNumber"], new["Status"]) == (f"INV-{firm.bill}", "AUTHORISED")


def test_corrections_are_authorised_per_connection(poster: bootstrap.PosterApp, emulator: EmulatorServer) -> None:  # noqa: F811
    with grpc.insecure_channel(f"127.0.0.1:{poster.port}") as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        operator, a, b = as_caller("operator"), as_caller("firm-a-app"), as_caller("firm-b-app")
        org = emulator.create_organisation("firm-b")
        register_emulated_connection(stub, "firm-b", emulator.base_url, org, samples.demo_context(), metadata=operator)
        sample = samples.sample_transactions(9000)["client_bill"]
        posting = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-b", transaction=sample), metadata=b
        ).posting
        wait_for(
            lambda: (
                stub.GetPosting(poster_pb2.GetPostingRequest(name=posting.name), metadata=b).posting.state
                == poster_pb2.LINK_STATE_LINKED
            )
        )
        record = key(BILL, sample.header.id)
        denied: dict[str, Callable[[], object]] = {
            "plan": lambda: stub.PlanCorrection(
                correction_pb2.PlanCorrectionRequest(connection_id="firm-b", record=record, intent=DELETE), metadata=a
            ),
            "apply": lambda: stub.ApplyCorrection(
                correction_pb2.ApplyCorrectionRequest(connection_id="firm-b", record=record, intent=DELETE), metadata=a
            ),
            "get": lambda: stub.GetCorrection(
                correction_pb2.GetCorrectionRequest(connection_id="firm-b", record=record), metadata=a
            ),
        }
        for what, call in denied.items():
            code, reason, _ = rpc_error(call)
            assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "CONNECTION_NOT_PERMITTED"), what
        link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-b", record=record), metadata=b).link
        assert link.state == poster_pb2.LINK_STATE_LINKED
        invoice = next(i for i in xero_objects(emulator, org["tenant_id"], "Invoices"))
        assert invoice["Status"] == "AUTHORISED"
        # Its own caller may.
        own = stub.ApplyCorrection(
            correction_pb2.ApplyCorrectionRequest(connection_id="firm-b", record=record, intent=DELETE), metadata=b
        ).correction
        assert own.state == correction_pb2.CORRECTION_STATE_COMPLETED
        assert next(i for i in xero_objects(emulator, org["tenant_id"], "Invoices"))["Status"] == "VOIDED"


def test_a_fully_applied_credit_note_is_freed_of_its_allocation_then_voided(firm: Firm) -> None:
    firm.post("client_bill", "credit_note", "credit_note_application")
    note_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, xero_pb2.OBJECT_TYPE_CREDIT_NOTE)
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    allocation_id = firm.xero_id(APPLICATION, firm.application, xero_pb2.OBJECT_TYPE_ALLOCATION)
    due_before = firm.xero("Invoices", invoice_id)["AmountDue"]
    assert firm.xero("CreditNotes", note_id)["Status"] == "PAID"  # Xero: a PAID credit note cannot be voided

    plan = firm.plan(CREDIT_NOTE, firm.credit_note, DELETE)
    assert [(s.action, s.xero_id) for s in plan.steps[:2]] == [
        (A.CORRECTION_ACTION_DELETE_ALLOCATION, allocation_id),
        (A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT, note_id),
    ]
    assert plan.xero_status == "PAID" and any("PAID by the records above" in n for n in plan.notes)

    done = firm.apply(CREDIT_NOTE, firm.credit_note, DELETE)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    note = firm.xero("CreditNotes", note_id)
    assert note["Status"] == "VOIDED" and all(a["IsDeleted"] for a in note["Allocations"])
    assert firm.xero("Invoices", invoice_id)["AmountDue"] == due_before + note["Total"]
    assert firm.link(APPLICATION, firm.application).state == poster_pb2.LINK_STATE_UNLINKED
    assert firm.link(CREDIT_NOTE, firm.credit_note).state == poster_pb2.LINK_STATE_UNLINKED
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED


def test_an_invoice_paid_from_trust_loses_its_payment_before_its_trust_spend(firm: Firm) -> None:
    firm.post("client_bill", "invoice_paid_from_trust")
    record = firm.sample["invoice_paid_from_trust"].header.id
    kind = common_pb2.TRANSACTION_KIND_INVOICE_PAID_FROM_TRUST
    payment_id = firm.xero_id(kind, record, xero_pb2.OBJECT_TYPE_PAYMENT)
    spend_id = firm.xero_id(kind, record, xero_pb2.OBJECT_TYPE_BANK_TRANSACTION)

    plan = firm.plan(kind, record, EDIT)
    assert [(s.action, s.xero_id) for s in plan.steps[:3]] == [
        (A.CORRECTION_ACTION_DELETE_PAYMENT, payment_id),
        (A.CORRECTION_ACTION_DELETE_BANK_TRANSACTION, spend_id),
        (A.CORRECTION_ACTION_UNLINK, ""),
    ]

    done = firm.apply(kind, record, EDIT)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    assert firm.xero("Payments", payment_id)["Status"] == "DELETED"
    spend = next(
        t
        for t in xero_objects(firm.emulator, firm.org["tenant_id"], "BankTransactions")
        if t["BankTransactionID"] == spend_id
    )
    assert spend["Status"] == "DELETED"
    assert firm.link(kind, record).state == poster_pb2.LINK_STATE_UNLINKED


def test_a_rate_limited_void_waits_and_is_sent_again_within_the_same_apply(firm: Firm) -> None:
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    path = f"Invoices/{invoice_id}"
    firm.emulator.faults.add(FaultRule("rate_limit", count=1, retry_after=1, methods=("POST",), path_contains=path))
    writes = firm.emulator.faults.add(FaultRule("latency", methods=("POST",), path_contains=path))

    done = firm.apply(BILL, firm.bill, DELETE)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert done.steps[0].attempts == 1 and done.steps[0].state == DONE
    assert writes.hits == 2  # refused with 429, then sent again after Retry-After
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"


def test_a_payment_posted_while_its_invoice_is_being_corrected_waits_instead_of_stopping_the_void(
    firm: Firm,
) -> None:
    """The saga deletes the bill's payment, then Xero fails on the void. A second payment of the
    bill posted now must not reach Xero (the invoice would then have a payment again and every
    re-run of the void would be refused): it waits, the saga finishes, and the payment still
    waits for the bill to be linked again."""
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("POST",), path_contains=f"Invoices/{invoice_id}")
    )
    assert firm.apply(BILL, firm.bill, DELETE).state == correction_pb2.CORRECTION_STATE_FAILED

    second = transaction_pb2.Transaction(
        header=samples.header(firm.payment + 50),
        client_bill_payment=firm.sample["client_bill_payment"].client_bill_payment,
    )
    posting = firm.stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=second)
    ).posting
    wait_for(lambda: firm.link(PAYMENT, second.header.id).state == poster_pb2.LINK_STATE_WAITING)
    assert [(w.kind, w.id) for w in firm.link(PAYMENT, second.header.id).waiting_on] == [(BILL, firm.bill)]
    live = [p for p in xero_objects(firm.emulator, firm.org["tenant_id"], "Payments") if p["Status"] != "DELETED"]
    assert live == []

    finished = firm.apply(BILL, firm.bill, DELETE)

    assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED
    assert firm.stub.GetPosting(poster_pb2.GetPostingRequest(name=posting.name)).posting.state == (
        poster_pb2.LINK_STATE_WAITING
    )


# -- editing an invoice: the old one gives up its number --------------------------------------
def test_the_seed_edit_of_an_invoice_ends_linked_under_its_own_number_and_paid_again(firm: Firm) -> None:
    """The seed's "edit an invoice": xerolink deletes the payment, renames and voids the old
    invoice and unlinks; the user edits the bill, posts it again under the number the client
    holds, and pays it again. Xero ends with the edited invoice under that number, paid."""
    firm.post("client_bill", "client_bill_payment")
    number = f"INV-{firm.bill}"
    old_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    assert firm.xero("Invoices", old_id)["InvoiceNumber"] == number

    done = firm.apply(BILL, firm.bill, EDIT)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    renamed = f"{number}-void-{firm.bill}-1"
    rename = next(s for s in done.steps if s.action == A.CORRECTION_ACTION_RENAME_DOCUMENT)
    assert rename.state == DONE and renamed in rename.detail
    old = firm.xero("Invoices", old_id)
    assert (old["Status"], old["InvoiceNumber"]) == ("VOIDED", renamed)
    assert firm.xero("Payments", payment_id)["Status"] == "DELETED"
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED

    # The user: deletes the payment, reverts the bill to draft, edits it (the first line 450.00
    # becomes 520.00 with its GST), posts it again, and enters the new payment.
    firm.post_edited_bill(52000)
    new_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    assert new_id != old_id
    link = firm.link(BILL, firm.bill)
    assert link.state == poster_pb2.LINK_STATE_LINKED
    new = firm.xero("Invoices", new_id)
    assert (new["InvoiceNumber"], new["Status"]) == (number, "AUTHORISED")
    # 520.00 + 300.00 + 20.50 + 89.00 exclusive; GST 52.00 + 30.00 + 2.05.
    assert (new["SubTotal"], new["TotalTax"], new["Total"]) == (
        Decimal("929.50"),
        Decimal("84.05"),
        Decimal("1013.55"),
    )
    again = transaction_pb2.Transaction(
        header=samples.header(firm.payment + 100),
        client_bill_payment=firm.sample["client_bill_payment"].client_bill_payment,
    )
    again.client_bill_payment.amount.units = 61355
    firm.sample["new_payment"] = again
    firm.post("new_payment")
    new_payment_id = firm.xero_id(PAYMENT, again.header.id, xero_pb2.OBJECT_TYPE_PAYMENT)
    assert firm.xero("Payments", new_payment_id)["Invoice"]["InvoiceID"] == new_id

    new = firm.xero("Invoices", new_id)
    assert (new["AmountPaid"], new["AmountDue"]) == (Decimal("613.55"), Decimal("400.00"))
    # The ledger holds only the edited invoice and its payment, to the cent.
    assert firm.balance("610") == Decimal("400.00")  # receivable: what the client still owes
    assert firm.balance("090") == Decimal("613.55")  # the office bank: the new payment only
    assert firm.balance("200") == Decimal("-820.00")  # fees: 520.00 + 300.00
    assert firm.balance("210") == Decimal("-109.50")  # disbursements: 20.50 + 89.00
    numbered = [i for i in xero_objects(firm.emulator, firm.org["tenant_id"], "Invoices") if i["Type"] == "ACCREC"]
    assert sorted((i["InvoiceNumber"], i["Status"]) for i in numbered) == [
        (number, "AUTHORISED"),
        (renamed, "VOIDED"),
    ]
    # Every call of the flow, corrections included, carries only parameters Xero declares for it.
    assert undeclared_requests(firm.emulator.state.requests.entries(firm.org["tenant_id"])) == []


def test_deleting_an_invoice_voids_it_under_its_own_number(firm: Firm) -> None:
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)

    done = firm.apply(BILL, firm.bill, DELETE)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert all(s.action != A.CORRECTION_ACTION_RENAME_DOCUMENT for s in done.steps)
    invoice = firm.xero("Invoices", invoice_id)
    assert (invoice["Status"], invoice["InvoiceNumber"]) == ("VOIDED", f"INV-{firm.bill}")


@pytest.mark.parametrize("kind", ["drop_after_commit", "garble_after_commit", "error"])
def test_a_fault_on_the_rename_leaves_a_saga_that_applying_again_finishes_once(firm: Firm, kind: str) -> None:
    """The rename's answer is lost (or Xero fails): the saga stops at the rename with the invoice
    still live and linked; applying again reads the invoice to learn whether it was renamed, and
    never sends the rename twice when it was."""
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    path = f"Invoices/{invoice_id}"
    # The first POST to the invoice is the rename (the payment is deleted at Payments/{id}).
    firm.emulator.faults.add(FaultRule(kind, status=500, count=1, methods=("POST",), path_contains=path))
    writes = firm.emulator.faults.add(FaultRule("latency", methods=("POST",), path_contains=path))
    number, renamed = f"INV-{firm.bill}", f"INV-{firm.bill}-void-{firm.bill}-1"

    stopped = firm.apply(BILL, firm.bill, EDIT)

    assert stopped.state == correction_pb2.CORRECTION_STATE_FAILED
    rename = next(s for s in stopped.steps if s.action == A.CORRECTION_ACTION_RENAME_DOCUMENT)
    assert rename.state == FAILED and rename.attempts == 1
    assert rename.reason in ("XERO_NO_ANSWER", "XERO_UNAVAILABLE") and "apply again" in rename.detail
    void = next(s for s in stopped.steps if s.action == A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT)
    assert void.state == PENDING and void.attempts == 0
    committed = kind != "error"
    invoice = firm.xero("Invoices", invoice_id)
    assert (invoice["Status"], invoice["InvoiceNumber"]) == ("AUTHORISED", renamed if committed else number)
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED

    finished = firm.apply(BILL, firm.bill, EDIT)

    assert finished.correction_id == stopped.correction_id
    assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED, finished
    rename = next(s for s in finished.steps if s.action == A.CORRECTION_ACTION_RENAME_DOCUMENT)
    assert rename.attempts == 2 and rename.state == DONE
    assert ("already renamed" in rename.detail) == committed
    assert writes.hits == (2 if committed else 3)  # rename once (twice if it failed), void once
    invoice = firm.xero("Invoices", invoice_id)
    assert (invoice["Status"], invoice["InvoiceNumber"]) == ("VOIDED", renamed)
    firm.post_edited_bill(52000)
    assert firm.xero("Invoices", firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE))["InvoiceNumber"] == number


def test_a_failure_between_the_rename_and_the_void_is_finished_by_applying_again(firm: Firm) -> None:
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    # The rename goes through; Xero fails the void, the second POST to the invoice.
    firm.emulator.faults.add(
        _AfterFirst("error", status=503, count=1, methods=("POST",), path_contains=f"Invoices/{invoice_id}")
    )

    stopped = firm.apply(BILL, firm.bill, EDIT)

    assert stopped.state == correction_pb2.CORRECTION_STATE_FAILED
    actions = {s.action: s for s in stopped.steps}
    assert actions[A.CORRECTION_ACTION_RENAME_DOCUMENT].state == DONE
    assert actions[A.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT].state == FAILED
    invoice = firm.xero("Invoices", invoice_id)
    assert (invoice["Status"], invoice["InvoiceNumber"]) == ("AUTHORISED", f"INV-{firm.bill}-void-{firm.bill}-1")
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED

    finished = firm.apply(BILL, firm.bill, EDIT)

    assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED
    actions = {s.action: s for s in finished.steps}
    assert actions[A.CORRECTION_ACTION_RENAME_DOCUMENT].attempts == 1  # done steps are not run again
    assert firm.xero("Invoices", invoice_id)["Status"] == "VOIDED"
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED


@dataclass
class _AfterFirst(FaultRule):
    """A fault that lets the first matching call through and hits the ones after it."""

    seen: int = 0

    def applies(self, method: str, path: str, tenant_id: str | None, identity: bool = False) -> bool:
        if not super().applies(method, path, tenant_id, identity):
            return False
        self.seen += 1
        return self.seen > 1


def test_a_rename_refused_by_xero_stops_the_saga_with_nothing_half_done(
    poster_factory: PosterFactory, emulator_factory: Callable[..., EmulatorServer]
) -> None:
    """Someone pays the invoice in Xero by hand after the plan was made: Xero refuses the rename
    (an invoice with a payment cannot be edited). The saga stops there with Xero's reason; the
    invoice keeps its number and status and every link stays linked, until the payment is gone."""
    # Xero replays a key's first answer for minutes, refusals included: the emulator's six.
    firm = Firm(stub_for(poster_factory()), emulator_factory())
    firm.post("client_bill", "client_bill_payment")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    path = f"Invoices/{invoice_id}"
    firm.emulator.faults.add(FaultRule("error", status=503, count=1, methods=("POST",), path_contains=path))
    assert firm.apply(BILL, firm.bill, EDIT).state == correction_pb2.CORRECTION_STATE_FAILED
    by_hand = firm.hand_made_payment(invoice_id)

    refused = firm.apply(BILL, firm.bill, EDIT)

    assert refused.state == correction_pb2.CORRECTION_STATE_FAILED
    rename = next(s for s in refused.steps if s.action == A.CORRECTION_ACTION_RENAME_DOCUMENT)
    assert rename.state == FAILED and rename.reason == "XERO_REFUSED"
    assert "payment" in rename.detail and f"INV-{firm.bill}" in rename.detail and "apply again" in rename.detail
    assert all(s.state == PENDING for s in refused.steps if s.actor == XEROLINK and s.order > rename.order), refused
    invoice = firm.xero("Invoices", invoice_id)
    assert (invoice["Status"], invoice["InvoiceNumber"]) == ("AUTHORISED", f"INV-{firm.bill}")
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_LINKED
    assert firm.link(PAYMENT, firm.payment).state == poster_pb2.LINK_STATE_LINKED

    deleted = firm.xero_call("POST", f"Payments/{by_hand}", {"Status": "DELETED"})
    assert deleted.status_code == 200, deleted.text
    # Applying again at once is a new request: Xero does not replay its refusal (which it keeps
    # for minutes under the same Idempotency-Key).
    finished = firm.apply(BILL, firm.bill, EDIT)

    assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED, finished
    invoice = firm.xero("Invoices", invoice_id)
    assert (invoice["Status"], invoice["InvoiceNumber"]) == ("VOIDED", f"INV-{firm.bill}-void-{firm.bill}-1")


def test_a_bill_corrected_twice_gets_a_new_void_number_each_time(firm: Firm) -> None:
    firm.post("client_bill")
    first_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    assert firm.apply(BILL, firm.bill, EDIT).state == correction_pb2.CORRECTION_STATE_COMPLETED
    firm.post_edited_bill(52000)
    second_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)

    assert firm.apply(BILL, firm.bill, EDIT).state == correction_pb2.CORRECTION_STATE_COMPLETED
    firm.post_edited_bill(53000)

    number = f"INV-{firm.bill}"
    assert firm.xero("Invoices", first_id)["InvoiceNumber"] == f"{number}-void-{firm.bill}-1"
    assert firm.xero("Invoices", second_id)["InvoiceNumber"] == f"{number}-void-{firm.bill}-2"
    third = firm.xero("Invoices", firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE))
    assert (third["InvoiceNumber"], third["Status"]) == (number, "AUTHORISED")


def test_after_unlinking_an_invoice_by_hand_the_refusal_says_how_to_free_its_number(firm: Firm) -> None:
    """Unlinking by hand leaves the Xero invoice live under the bill's number, so posting the
    edited bill again is refused by Xero. docs/unlinking.md sends an edit to the correction
    instead; once unlinked, PlanCorrection's refusal says what to do in Xero, and doing it lets
    the repost link under the same number."""
    firm.post("client_bill")
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    firm.stub.UnlinkLinks(
        unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key(BILL, firm.bill)], confirm=True)
    )
    assert firm.link(BILL, firm.bill).state == poster_pb2.LINK_STATE_UNLINKED

    code, reason, message = rpc_error(lambda: firm.plan(BILL, firm.bill, EDIT))

    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_UNLINKED")
    number = f"INV-{firm.bill}"
    assert f"invoice {number}" in message and "rename" in message and "before posting" in message
    # What the message says, done in Xero by hand: rename, then void.
    renamed = firm.xero_call("POST", f"Invoices/{invoice_id}", {"Invoices": [{"InvoiceNumber": f"{number}-old"}]})
    assert renamed.status_code == 200, renamed.text
    voided = firm.xero_call("POST", f"Invoices/{invoice_id}", {"Invoices": [{"Status": "VOIDED"}]})
    assert voided.status_code == 200, voided.text
    firm.post_edited_bill(52000)
    new = firm.xero("Invoices", firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE))
    assert (new["InvoiceNumber"], new["Status"]) == (number, "AUTHORISED")
