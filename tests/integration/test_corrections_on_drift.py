"""Corrections of a document that drifted in Xero (docs/corrections.md, docs/drift.md): an invoice
voided by hand needs no void step, and one paid by a bank-feed match waits for a person to remove
that payment; a payment held on the drift does not stop the correction, and once the document is
unlinked its drift is resolved and the payment waits for the document to be posted again. Real
poster and emulator, both registries."""

from __future__ import annotations

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import correction_pb2, drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.grpc_errors import from_rpc_error

from tests.fixtures.drift_firm import BILL, Firm
from tests.fixtures.hand_edits import hand_edit
from tests.fixtures.poster import PosterFactory, xero_objects

EDIT = correction_pb2.CORRECTION_INTENT_EDIT
XEROLINK = correction_pb2.CORRECTION_ACTOR_XEROLINK
XERO_USER = correction_pb2.CORRECTION_ACTOR_XERO_USER
DONE = correction_pb2.CORRECTION_STEP_STATE_DONE
VOID = correction_pb2.CORRECTION_ACTION_VOID_OR_DELETE_DOCUMENT
UNLINK = correction_pb2.CORRECTION_ACTION_UNLINK


def _plan(firm: Firm) -> correction_pb2.Correction:
    request = correction_pb2.PlanCorrectionRequest(
        connection_id="firm-1", record=firm.link(BILL, firm.bill.header.id).record, intent=EDIT
    )
    plan: correction_pb2.Correction = firm.stub.PlanCorrection(request).correction
    return plan


def _apply(firm: Firm) -> correction_pb2.Correction:
    request = correction_pb2.ApplyCorrectionRequest(
        connection_id="firm-1", record=firm.link(BILL, firm.bill.header.id).record, intent=EDIT
    )
    done: correction_pb2.Correction = firm.stub.ApplyCorrection(request, timeout=60).correction
    return done


def _writes(firm: Firm) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in firm.emulator.state.requests.entries(firm.tenant)
        if r.method in ("PUT", "POST", "DELETE")
    ]


def _after_unlink(firm: Firm) -> None:
    """The bill is unlinked, its drift resolved as such, and the held payment waits for the bill."""
    assert firm.link(BILL, firm.bill.header.id).state == poster_pb2.LINK_STATE_UNLINKED
    [drift] = firm.drifts()
    assert (drift.state, drift.resolution) == (drift_pb2.DRIFT_STATE_RESOLVED, drift_pb2.DRIFT_RESOLUTION_UNLINKED)
    held = firm.payment_link()
    assert (held.state, held.last_error.reason) == (poster_pb2.LINK_STATE_WAITING, "DEPENDENCY_NOT_LINKED")
    assert [(w.kind, w.id) for w in held.waiting_on] == [(BILL, firm.bill.header.id)]


def test_correcting_an_invoice_voided_in_xero_by_hand_only_unlinks_it(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator, 3800)
    invoice = firm.linked_bill()
    hand_edit(emulator, firm.tenant, "Invoices", invoice["InvoiceID"], {"Status": "VOIDED"})
    firm.observe_bill(invoice)
    firm.held()

    plan = _plan(firm)

    assert plan.xero_status == "VOIDED"
    [void] = [s for s in plan.steps if s.action == VOID]
    assert (void.state, void.detail) == (DONE, "already voided in Xero")
    assert not [s for s in plan.steps if s.actor == XERO_USER]
    assert any("is held, not in Xero" in n for n in plan.notes)
    emulator.state.requests.clear()

    done = _apply(firm)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    assert [s.action for s in done.steps if s.actor == XEROLINK] == [VOID, UNLINK]
    assert _writes(firm) == []  # nothing left to do in Xero
    _after_unlink(firm)


def test_correcting_an_invoice_paid_by_a_bank_feed_match_waits_for_that_payment_to_be_removed(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator, 3900)
    invoice = firm.linked_bill()
    matched = firm.pay_in_full_by_bank_feed(invoice)
    firm.observe_bill(invoice)
    firm.held()

    plan = _plan(firm)

    assert plan.xero_status == "PAID"
    [manual] = [s for s in plan.steps if s.actor == XERO_USER]
    assert manual.xero_id.lower() == matched["PaymentID"].lower() and "by hand" in manual.description
    with pytest.raises(grpc.RpcError) as blocked:
        _apply(firm)
    assert blocked.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert from_rpc_error(blocked.value).reason == "CORRECTION_BLOCKED"
    assert firm.link(BILL, firm.bill.header.id).state == poster_pb2.LINK_STATE_LINKED
    assert firm.drifts()[0].state == drift_pb2.DRIFT_STATE_OPEN

    # The bookkeeper removes the bank-feed payment; the correction then voids and unlinks.
    hand_edit(emulator, firm.tenant, "Payments", matched["PaymentID"], {"Status": "DELETED"})
    done = _apply(firm)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    [voided] = [i for i in xero_objects(emulator, firm.tenant, "Invoices") if i["InvoiceID"] == invoice["InvoiceID"]]
    assert voided["Status"] == "VOIDED"
    _after_unlink(firm)
    assert firm.our_payments() == []
