"""Attacks on how an UnlinkLinks plan learns which of its links has an unfinished correction
(service_layer/unlinking.py _plan and _facts; CorrectionRepository.sagas_of: the sagas of one
connection's links read together, keyed by (record, generation), the other halves of records
kept in two organisations read under their own connections).

The promise under attack (docs/unlinking.md, docs/corrections.md): a link whose current
generation has a correction still to be finished (domain/corrections.to_finish: running, or
failed on a step applying again may get past) refuses the whole request, FAILED_PRECONDITION /
CORRECTION_UNFINISHED, naming that link, and the preview (validate_only) shows the same plan;
another generation's saga, another kind's record of the same number, another connection's
record of the same number and a saga that failed for good do not refuse anything.

Each docstring starts with "DEFECT:" (failed when written) or "GUARD:" (held already); all are
guards.
Real posters on loopback, the real mapper and the Xero emulator; where a state takes many
records (a selection of 500) the registry rows are written directly, as the service writes them."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from sqlalchemy import Table, insert, select
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_poster.adapters.correction_tables import CorrectionRow, CorrectionStepRow
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import LinkDependencyRow, LinkRow
from xerolink_poster.domain.corrections import Action, Actor, SagaState, StepState
from xerolink_poster.domain.kinds import LinkGroup
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.domain.states import LinkState

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_for,
    wait_settled,
)
from tests.fixtures.routing import sample as routed_sample
from tests.integration.test_organisation_routing import pair  # noqa: F401 - the fixture
from tests.integration.test_poster_corrections import Firm, key

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
PAID = common_pb2.TRANSACTION_KIND_INVOICE_PAID_FROM_TRUST
EDIT = correction_pb2.CORRECTION_INTENT_EDIT
DELETE = correction_pb2.CORRECTION_INTENT_DELETE
COMPLETED = correction_pb2.CORRECTION_STATE_COMPLETED
FAILED_SAGA = correction_pb2.CORRECTION_STATE_FAILED
LINKED = poster_pb2.LINK_STATE_LINKED
UNLINKED = poster_pb2.LINK_STATE_UNLINKED
UNLINK = unlink_pb2.UNLINK_ACTION_UNLINK
CASCADE = unlink_pb2.UNLINK_ACTION_CASCADE
REFUSED = unlink_pb2.UNLINK_ACTION_REFUSED
ALREADY = unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED
UNFINISHED = "CORRECTION_UNFINISHED"

Plan = list[tuple[str, int, str]]


# -- helpers -------------------------------------------------------------------------------------


def _request(
    connection_id: str, records: Sequence[tuple[int, int]], *, cascade: bool, preview: bool
) -> unlink_pb2.UnlinkLinksRequest:
    return unlink_pb2.UnlinkLinksRequest(
        connection_id=connection_id,
        records=[key(k, r) for k, r in records],
        cascade=cascade,
        validate_only=preview,
        confirm=not preview,
    )


def _preview(
    stub: poster_grpc.PosterServiceStub, connection_id: str, *records: tuple[int, int], cascade: bool = False
) -> Plan:
    """The preview's outcomes: (link name, action, refusal reason)."""
    answer = stub.UnlinkLinks(_request(connection_id, records, cascade=cascade, preview=True), timeout=30)
    return [(o.link_name, o.action, o.error.reason) for o in answer.outcomes]


def _apply(
    stub: poster_grpc.PosterServiceStub, connection_id: str, *records: tuple[int, int], cascade: bool = False
) -> unlink_pb2.UnlinkLinksResponse | grpc.RpcError:
    try:
        done: unlink_pb2.UnlinkLinksResponse = stub.UnlinkLinks(
            _request(connection_id, records, cascade=cascade, preview=False), timeout=60
        )
    except grpc.RpcError as err:
        return err
    return done


def _refusal(answer: unlink_pb2.UnlinkLinksResponse | grpc.RpcError) -> tuple[str, list[tuple[str, str]]]:
    """The reason of a refused apply and its violations (type, subject)."""
    assert isinstance(answer, grpc.RpcError), f"the unlink was not refused: {answer}"
    error = from_rpc_error(answer)
    assert answer.code() == grpc.StatusCode.FAILED_PRECONDITION, (answer.code(), error)
    return str(error.reason), [(v.type, v.subject) for v in error.precondition_violations]


def _name(connection_id: str, kind: int, record_id: int) -> str:
    slug = common_pb2.TransactionKind.Name(kind).removeprefix("TRANSACTION_KIND_").lower().replace("_", "-")  # type: ignore[arg-type]
    return f"connections/{connection_id}/links/{slug}/{record_id}"


def _state(stub: poster_grpc.PosterServiceStub, connection_id: str, kind: int, record_id: int) -> int:
    request = poster_pb2.GetLinkRequest(connection_id=connection_id, record=key(kind, record_id))
    return int(stub.GetLink(request).link.state)


def _apply_correction(
    stub: poster_grpc.PosterServiceStub, connection_id: str, kind: int, record_id: int, intent: int
) -> correction_pb2.Correction:
    request = correction_pb2.ApplyCorrectionRequest(
        connection_id=connection_id,
        record=key(kind, record_id),
        intent=intent,  # type: ignore[arg-type]
    )
    found: correction_pb2.Correction = stub.ApplyCorrection(request, timeout=60).correction
    return found


def _fail_once(emulator: EmulatorServer, xero_id: str, resource: str, tenant: str | None = None) -> None:
    """Xero answers the next write to the object 500: a correction step stops there, to be
    finished by applying again."""
    emulator.faults.add(
        FaultRule(
            "error", status=500, count=1, methods=("POST",), path_contains=f"{resource}/{xero_id}", tenant_id=tenant
        )
    )


def _copy(tx: transaction_pb2.Transaction) -> transaction_pb2.Transaction:
    made = transaction_pb2.Transaction()
    made.CopyFrom(tx)
    return made


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


# -- one record, its generations -----------------------------------------------------------------


@BOTH
def test_an_unfinished_correction_refuses_the_preview_and_the_apply_alike(firm: Firm) -> None:
    """GUARD: a payment's EDIT correction stops at its delete (Xero 500): its payment is still
    live in Xero. The preview of unlinking it shows it REFUSED / CORRECTION_UNFINISHED; the
    apply is refused FAILED_PRECONDITION / CORRECTION_UNFINISHED naming the same link, and the
    link stays linked. Once the correction is applied again and completes, the record is
    already unlinked (by the saga) in both preview and apply."""
    firm.post("client_bill", "client_bill_payment")
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    _fail_once(firm.emulator, payment_id, "Payments")
    assert firm.apply(PAYMENT, firm.payment, EDIT).state == FAILED_SAGA
    name = _name("firm-1", PAYMENT, firm.payment)

    assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, REFUSED, UNFINISHED)]
    assert _refusal(_apply(firm.stub, "firm-1", (PAYMENT, firm.payment))) == (UNFINISHED, [(UNFINISHED, name)])
    assert firm.link(PAYMENT, firm.payment).state == LINKED

    assert firm.apply(PAYMENT, firm.payment, EDIT).state == COMPLETED
    assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, ALREADY, "")]
    done = _apply(firm.stub, "firm-1", (PAYMENT, firm.payment))
    assert isinstance(done, unlink_pb2.UnlinkLinksResponse) and done.unlinked_count == 0


@SQLITE
def test_an_old_generation_failed_for_good_does_not_refuse_but_the_current_one_unfinished_does(
    firm: Firm,
) -> None:
    """GUARD: generation 1 of a payment has a correction that failed for good (its payment gone
    from Xero: XERO_OBJECT_MISSING); it may then be unlinked, and is, and posted again
    (generation 2). Generation 2 is unlinkable while it has no correction of its own (the preview
    says UNLINK); once its own correction stops at a step applying again gets past (Xero 500),
    preview and apply both refuse it CORRECTION_UNFINISHED. The old generation's saga must
    neither refuse the new one nor hide the new one's."""
    firm.post("client_bill", "client_bill_payment")
    name = _name("firm-1", PAYMENT, firm.payment)
    old = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    _fail_once(firm.emulator, old, "Payments")
    assert firm.apply(PAYMENT, firm.payment, EDIT).state == FAILED_SAGA
    org = firm.emulator.state.organisation(firm.org["tenant_id"])
    with org.lock:
        org.objects["Payments"].pop(old)
    stopped = firm.apply(PAYMENT, firm.payment, EDIT)
    assert stopped.state == FAILED_SAGA
    reasons = [s.reason for s in stopped.steps if s.state == correction_pb2.CORRECTION_STEP_STATE_FAILED]
    assert reasons == ["XERO_OBJECT_MISSING"], reasons
    assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, UNLINK, "")]
    assert isinstance(_apply(firm.stub, "firm-1", (PAYMENT, firm.payment)), unlink_pb2.UnlinkLinksResponse)
    # The user edits the payment (the emulator still counts the vanished one on the invoice).
    edited = _copy(firm.sample["client_bill_payment"])
    edited.client_bill_payment.amount.units = 10000
    posting = firm.stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=edited)
    ).posting
    settled = wait_settled(firm.stub, posting.name)
    assert settled.state == LINKED, firm.link(PAYMENT, firm.payment)
    new = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    assert new != old  # generation 2

    assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, UNLINK, "")]
    _fail_once(firm.emulator, new, "Payments")
    second = firm.apply(PAYMENT, firm.payment, EDIT)
    assert second.state == FAILED_SAGA and second.correction_id != stopped.correction_id

    assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, REFUSED, UNFINISHED)]
    assert _refusal(_apply(firm.stub, "firm-1", (PAYMENT, firm.payment))) == (UNFINISHED, [(UNFINISHED, name)])
    assert firm.link(PAYMENT, firm.payment).state == LINKED


@SQLITE
def test_an_old_generation_still_to_finish_does_not_refuse_the_record_posted_again(firm: Firm) -> None:
    """GUARD: a payment's own EDIT correction stops at its delete (Xero 500), unfinished. The
    bill's DELETE correction then deletes that payment itself, voids the invoice and unlinks
    both. The user posts the bill and the payment again (generation 2 of each). The payment's
    saga of generation 1 can never be resumed (ApplyCorrection acts on generation 2), so it must
    not refuse generation 2: the preview and the apply unlink the new payment."""
    firm.post("client_bill", "client_bill_payment")
    name = _name("firm-1", PAYMENT, firm.payment)
    old = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    _fail_once(firm.emulator, old, "Payments")
    assert firm.apply(PAYMENT, firm.payment, EDIT).state == FAILED_SAGA
    assert firm.apply(BILL, firm.bill, DELETE).state == COMPLETED
    assert firm.link(PAYMENT, firm.payment).state == UNLINKED
    for tx in (firm.sample["client_bill"], firm.sample["client_bill_payment"]):
        posting = firm.stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=tx))
        assert wait_settled(firm.stub, posting.posting.name).state == LINKED
    assert firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT) != old

    assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, UNLINK, "")]
    done = _apply(firm.stub, "firm-1", (PAYMENT, firm.payment))
    assert isinstance(done, unlink_pb2.UnlinkLinksResponse) and done.unlinked_count == 1


# -- the same number for another kind, another connection ------------------------------------------


@BOTH
def test_a_saga_of_one_kind_does_not_refuse_another_kinds_record_of_the_same_number(firm: Firm) -> None:
    """GUARD: Actionstep numbers each kind apart. Bill 5001 is paid by payment 5002; bill 5002 is
    paid by payment 5001. Payment 5002's correction stops (Xero 500), unfinished. Unlinking bill
    5002 with its payment 5001 (cascade) is planned and done; unlinking bill 5001 with cascade
    is refused because of payment 5002 only (the violation names that link, not bill 5002's
    number under the payment kind or the reverse), in preview and apply alike."""
    firm.post("client_bill", "client_bill_payment")
    bill, payment = firm.bill, firm.payment
    other_bill = _copy(firm.sample["client_bill"])
    other_bill.header.id = payment
    other_bill.client_bill.bill_number = f"INV-{payment}"
    other_payment = _copy(firm.sample["client_bill_payment"])
    other_payment.header.id = bill
    other_payment.client_bill_payment.bill_id = payment
    other_payment.client_bill_payment.amount.units = 10000
    firm.sample["other_bill"], firm.sample["other_payment"] = other_bill, other_payment
    firm.post("other_bill", "other_payment")
    _fail_once(firm.emulator, firm.xero_id(PAYMENT, payment, xero_pb2.OBJECT_TYPE_PAYMENT), "Payments")
    assert firm.apply(PAYMENT, payment, EDIT).state == FAILED_SAGA
    bill_name, payment_name = _name("firm-1", BILL, bill), _name("firm-1", PAYMENT, payment)

    assert _preview(firm.stub, "firm-1", (BILL, bill), cascade=True) == [
        (bill_name, UNLINK, ""),
        (payment_name, REFUSED, UNFINISHED),
    ]
    assert _refusal(_apply(firm.stub, "firm-1", (BILL, bill), cascade=True)) == (
        UNFINISHED,
        [(UNFINISHED, payment_name)],
    )
    clean = [(_name("firm-1", BILL, payment), UNLINK, ""), (_name("firm-1", PAYMENT, bill), CASCADE, "")]
    assert _preview(firm.stub, "firm-1", (BILL, payment), cascade=True) == clean
    done = _apply(firm.stub, "firm-1", (BILL, payment), cascade=True)
    assert isinstance(done, unlink_pb2.UnlinkLinksResponse) and done.unlinked_count == 2
    assert (firm.link(BILL, bill).state, firm.link(PAYMENT, payment).state) == (LINKED, LINKED)
    assert (firm.link(BILL, payment).state, firm.link(PAYMENT, bill).state) == (UNLINKED, UNLINKED)


@SQLITE
def test_another_firms_unfinished_correction_of_the_same_numbers_refuses_nothing_here(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """GUARD: two firms (two connections, two organisations, not paired) hold a bill and payment
    with the same Actionstep ids. firm-2's payment correction stops (Xero 500). firm-1 unlinks its
    bill with cascade (both records planned and unlinked); firm-2's same request is refused
    CORRECTION_UNFINISHED naming firm-2's payment, and firm-2's links stay linked."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    one = Firm(stub, emulator)
    one.post("client_bill", "client_bill_payment")
    _, org_two = connect(stub, emulator, "firm-2")
    one.post("client_bill", "client_bill_payment", connection_id="firm-2")
    two_payment = (
        stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-2", record=key(PAYMENT, one.payment)))
        .link.xero_objects[0]
        .xero_id
    )
    _fail_once(emulator, two_payment, "Payments", org_two["tenant_id"])
    assert _apply_correction(stub, "firm-2", PAYMENT, one.payment, EDIT).state == FAILED_SAGA

    for connection_id in ("firm-2", "firm-1"):
        expected = [(_name(connection_id, BILL, one.bill), UNLINK, "")]
        expected.append(
            (
                _name(connection_id, PAYMENT, one.payment),
                *((REFUSED, UNFINISHED) if connection_id == "firm-2" else (CASCADE, "")),
            )
        )
        assert _preview(stub, connection_id, (BILL, one.bill), cascade=True) == expected, connection_id
    assert _refusal(_apply(stub, "firm-2", (BILL, one.bill), cascade=True)) == (
        UNFINISHED,
        [(UNFINISHED, _name("firm-2", PAYMENT, one.payment))],
    )
    done = _apply(stub, "firm-1", (BILL, one.bill), cascade=True)
    assert isinstance(done, unlink_pb2.UnlinkLinksResponse) and done.unlinked_count == 2
    assert [_state(stub, "firm-2", k, r) for k, r in ((BILL, one.bill), (PAYMENT, one.payment))] == [LINKED] * 2


# -- a record kept in two organisations ------------------------------------------------------------


def _paid_from_trust(linked: Any) -> tuple[poster_grpc.PosterServiceStub, EmulatorServer, str, str, int, int]:
    """A bill and its invoice paid from trust, both halves linked: (stub, emulator, office
    tenant, trust tenant, bill id, payment id)."""
    stub, emulator, office_tenant, trust_tenant = linked
    bill, payment = routed_sample("client_bill"), routed_sample("invoice_paid_from_trust")
    for tx in (bill, payment):
        posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=tx))
        assert wait_settled(stub, posting.posting.name).state == LINKED
    for connection_id in ("office", "trust"):
        assert _state(stub, connection_id, PAID, payment.header.id) == LINKED
    return stub, emulator, office_tenant, trust_tenant, bill.header.id, payment.header.id


def _half_object(stub: poster_grpc.PosterServiceStub, connection_id: str, record_id: int) -> str:
    request = poster_pb2.GetLinkRequest(connection_id=connection_id, record=key(PAID, record_id))
    return str(stub.GetLink(request).link.xero_objects[0].xero_id)


@SQLITE
def test_a_correction_stopped_in_the_trust_organisation_refuses_the_record_from_either_side(
    pair: Any,  # noqa: F811 - the fixture imported above
) -> None:
    """GUARD: the office connection's correction of an invoice paid from trust deletes the office
    payment, then stops at the trust spend (Xero 503 in the trust organisation): the saga is the
    office half's. Unlinking the record under the trust connection must still see it (the other
    half is read under its own connection): the preview shows the trust half UNLINK and the
    office half REFUSED / CORRECTION_UNFINISHED, and the apply is refused naming the office half.
    Under the office connection, and cascading from the bill, the same. Both halves stay linked."""
    stub, emulator, _, trust_tenant, bill, payment = _paid_from_trust(pair)
    spend = _half_object(stub, "trust", payment)
    emulator.faults.add(
        FaultRule(
            "error",
            status=503,
            count=1,
            methods=("POST",),
            path_contains=f"BankTransactions/{spend}",
            tenant_id=trust_tenant,
        )
    )
    assert _apply_correction(stub, "office", PAID, payment, DELETE).state == FAILED_SAGA
    office, trust = _name("office", PAID, payment), _name("trust", PAID, payment)

    assert _preview(stub, "trust", (PAID, payment)) == [(trust, UNLINK, ""), (office, REFUSED, UNFINISHED)]
    assert _refusal(_apply(stub, "trust", (PAID, payment))) == (UNFINISHED, [(UNFINISHED, office)])
    assert _preview(stub, "office", (PAID, payment)) == [(office, REFUSED, UNFINISHED), (trust, UNLINK, "")]
    assert _refusal(_apply(stub, "office", (PAID, payment))) == (UNFINISHED, [(UNFINISHED, office)])
    bill_name = _name("office", BILL, bill)
    assert _preview(stub, "office", (BILL, bill), cascade=True) == [
        (bill_name, UNLINK, ""),
        (office, REFUSED, UNFINISHED),
        (trust, CASCADE, ""),
    ]
    assert _refusal(_apply(stub, "office", (BILL, bill), cascade=True)) == (UNFINISHED, [(UNFINISHED, office)])
    assert [_state(stub, c, PAID, payment) for c in ("office", "trust")] == [LINKED, LINKED]
    assert _state(stub, "office", BILL, bill) == LINKED


@SQLITE
def test_a_correction_applied_under_the_trust_connection_refuses_the_office_sides_unlink(
    pair: Any,  # noqa: F811 - the fixture imported above
) -> None:
    """GUARD: the same record corrected under the trust connection (docs/corrections.md: "under
    either connection"), stopped at its first step, the office payment's delete (Xero 500 in the
    office organisation): the saga is the trust half's. UnlinkLinks under the office connection
    previews the office half UNLINK and the trust half REFUSED / CORRECTION_UNFINISHED, and the
    apply is refused naming the trust half."""
    stub, emulator, office_tenant, _, _, payment = _paid_from_trust(pair)
    _fail_once(emulator, _half_object(stub, "office", payment), "Payments", office_tenant)
    assert _apply_correction(stub, "trust", PAID, payment, DELETE).state == FAILED_SAGA
    office, trust = _name("office", PAID, payment), _name("trust", PAID, payment)

    assert _preview(stub, "office", (PAID, payment)) == [(office, UNLINK, ""), (trust, REFUSED, UNFINISHED)]
    assert _refusal(_apply(stub, "office", (PAID, payment))) == (UNFINISHED, [(UNFINISHED, trust)])
    assert [_state(stub, c, PAID, payment) for c in ("office", "trust")] == [LINKED, LINKED]


# -- registry rows written directly: many records, a poster that died mid-saga --------------------

_LINK: Table = LinkRow.__table__  # type: ignore[attr-defined]
_DEPENDENCY: Table = LinkDependencyRow.__table__  # type: ignore[attr-defined]
_SAGA: Table = CorrectionRow.__table__  # type: ignore[attr-defined]
_STEP: Table = CorrectionStepRow.__table__  # type: ignore[attr-defined]
_GROUP: dict[int, int] = {BILL: LinkGroup.SALES_INVOICES, PAYMENT: LinkGroup.PAYMENTS}
_OBJECT: dict[int, int] = {BILL: xero_pb2.OBJECT_TYPE_INVOICE, PAYMENT: xero_pb2.OBJECT_TYPE_PAYMENT}


def _links(db: Database, connection_id: str, rows: Sequence[tuple[int, int, int, str]]) -> dict[tuple[int, int], int]:
    """Links as the poster leaves them: (kind, record id, generation, state), each holding one
    Xero object of its generation. Their ids by (kind, record id)."""
    now = now_us()
    values = [
        {
            "connection_id": connection_id,
            "kind": kind,
            "record_id": record_id,
            "link_group": int(_GROUP[kind]),
            "state": state,
            "fingerprint": f"{kind:02d}{record_id:062d}",
            "generation": generation,
            "attempts": 1,
            "xero_objects": json.dumps(
                [XeroObjectRef(_OBJECT[kind], f"{connection_id}-{kind}-{record_id}-{generation}", "op-1").to_json()]
            ),
            "waiting_on": "[]",
            "outcome_unknown": False,
            "posting_id": f"{connection_id}-{kind}-{record_id}-{generation}",
            "create_us": now,
            "update_us": now,
        }
        for kind, record_id, generation, state in rows
    ]
    with db.write.begin() as conn:
        conn.execute(insert(_LINK), values)
        found = conn.execute(
            select(_LINK.c.kind, _LINK.c.record_id, _LINK.c.id).where(_LINK.c.connection_id == connection_id)
        ).all()
    return {(int(k), int(r)): int(i) for k, r, i in found}


def _pays(db: Database, connection_id: str, ids: dict[tuple[int, int], int], pairs: Sequence[tuple[int, int]]) -> None:
    """Each payment's current posting refers to its bill: (payment id, bill id)."""
    with db.write.begin() as conn:
        conn.execute(
            insert(_DEPENDENCY),
            [
                {"link_id": ids[(PAYMENT, p)], "connection_id": connection_id, "kind": BILL, "record_id": b}
                for p, b in pairs
            ],
        )


def _sagas(db: Database, rows: Sequence[tuple[str, int, int, int, str, str]]) -> None:
    """Sagas as a correction leaves them: (connection, kind, record id, generation, saga state,
    the reason of its failed step: "" for none). A saga is a delete step and an unlink step: both
    done when completed, the delete failed (or in progress while running) otherwise."""
    now = now_us()
    sagas, steps = [], []
    for n, (connection_id, kind, record_id, generation, state, reason) in enumerate(rows):
        correction_id = f"saga-{n}-{connection_id}-{kind}-{record_id}-{generation}"
        sagas.append(
            {
                "correction_id": correction_id,
                "connection_id": connection_id,
                "kind": kind,
                "record_id": record_id,
                "generation": generation,
                "intent": int(EDIT),
                "state": state,
                "xero_status": "AUTHORISED",
                "notes": "[]",
                "runner": "",
                "runner_until_us": 0,
                "create_us": now,
                "update_us": now,
            }
        )
        first = {
            SagaState.COMPLETED: StepState.DONE,
            SagaState.FAILED: StepState.FAILED,
            SagaState.RUNNING: StepState.IN_PROGRESS,
        }[SagaState(state)]
        for position, (action, step_state, why) in enumerate(
            [
                (Action.DELETE_PAYMENT if kind == PAYMENT else Action.VOID_OR_DELETE_DOCUMENT, first, reason),
                (Action.UNLINK, StepState.DONE if state == SagaState.COMPLETED else StepState.PENDING, ""),
            ],
            start=1,
        ):
            steps.append(
                {
                    "correction_id": correction_id,
                    "position": position,
                    "action": int(action),
                    "actor": int(Actor.XEROLINK),
                    "description": f"step {position} of {correction_id}",
                    "kind": kind,
                    "record_id": record_id,
                    "xero_type": _OBJECT[kind],
                    "xero_id": f"{connection_id}-{kind}-{record_id}-{generation}",
                    "parent_xero_id": "",
                    "state": step_state.value,
                    "detail": "",
                    "reason": why,
                    "attempts": 1 if step_state != StepState.PENDING else 0,
                    "update_us": now,
                }
            )
    with db.write.begin() as conn:
        conn.execute(insert(_SAGA), sagas)
        conn.execute(insert(_STEP), steps)


def _link_states(db: Database, connection_id: str) -> dict[str, int]:
    with db.write.connect() as conn:
        rows = conn.execute(select(_LINK.c.state).where(_LINK.c.connection_id == connection_id)).all()
    counted: dict[str, int] = {}
    for (state,) in rows:
        counted[str(state)] = counted.get(str(state), 0) + 1
    return counted


@BOTH
def test_five_hundred_bills_with_cascade_refuse_exactly_the_links_whose_generation_is_unfinished(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: 500 bills (the most a request takes), each at generation 2 after a completed
    correction of generation 1, each paid by a payment of the same Actionstep number (another
    kind). Among the 1,000 links: a bill whose generation-2 correction failed for good
    (XERO_REFUSED), a bill whose generation-1 saga is still RUNNING (its poster died after the
    unlink step; the bill was posted again since), a payment at generation 2 whose generation-1
    saga failed on a step applying again gets past, another connection's RUNNING saga of one
    bill's number; and two payments whose current generation is unfinished (one FAILED on
    XERO_UNAVAILABLE, one RUNNING). The preview of the 500 bills with cascade refuses exactly
    those two payments, CORRECTION_UNFINISHED, and the apply is refused naming exactly them,
    with nothing unlinked; without their two bills, the other 996 links are unlinked."""
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    connect(stub, emulator, "firm-2")
    numbers = list(range(10_001, 10_501))
    payment_generation = {10_200: 2}
    ids = _links(
        app.db,
        "firm-1",
        [(BILL, n, 2, LinkState.LINKED.value) for n in numbers]
        + [(PAYMENT, n, payment_generation.get(n, 1), LinkState.LINKED.value) for n in numbers],
    )
    _pays(app.db, "firm-1", ids, [(n, n) for n in numbers])
    _links(app.db, "firm-2", [(BILL, 10_400, 2, LinkState.LINKED.value)])
    running, failed = SagaState.RUNNING.value, SagaState.FAILED.value
    _sagas(
        app.db,
        [("firm-1", BILL, n, 1, SagaState.COMPLETED.value, "") for n in numbers if n != 10_450]
        + [
            ("firm-1", BILL, 10_100, 2, failed, "XERO_REFUSED"),
            ("firm-1", BILL, 10_450, 1, running, ""),
            ("firm-1", PAYMENT, 10_200, 1, failed, "XERO_UNAVAILABLE"),
            ("firm-2", BILL, 10_400, 2, running, ""),
            ("firm-1", PAYMENT, 10_300, 1, failed, "XERO_UNAVAILABLE"),
            ("firm-1", PAYMENT, 10_500, 1, running, ""),
        ],
    )
    bills = [(BILL, n) for n in numbers]
    unfinished = [_name("firm-1", PAYMENT, n) for n in (10_300, 10_500)]

    preview = _preview(stub, "firm-1", *bills, cascade=True)

    assert len(preview) == 1000
    assert [(n, r) for n, a, r in preview if a == REFUSED] == [(u, UNFINISHED) for u in unfinished]
    assert {a for n, a, _ in preview if n not in unfinished} == {UNLINK, CASCADE}
    reason, violations = _refusal(_apply(stub, "firm-1", *bills, cascade=True))
    assert (reason, sorted(violations)) == (UNFINISHED, [(UNFINISHED, u) for u in unfinished])
    assert _link_states(app.db, "firm-1") == {"linked": 1000}

    rest = [(k, n) for k, n in bills if n not in (10_300, 10_500)]
    done = _apply(stub, "firm-1", *rest, cascade=True)
    assert isinstance(done, unlink_pb2.UnlinkLinksResponse) and done.unlinked_count == 996
    assert _link_states(app.db, "firm-1") == {"linked": 4, "unlinked": 996}
    assert _link_states(app.db, "firm-2") == {"linked": 1}


@SQLITE
def test_a_link_its_dead_saga_unlinked_is_already_unlinked_not_refused(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: a payment's correction did its delete and its unlink step, and its poster died
    before recording the saga completed: the saga stays RUNNING on the payment's generation 1,
    which is UNLINKED. Unlinking the payment (selected, or with its bill, cascade) is not refused
    for it: the payment is ALREADY_UNLINKED and the bill is unlinked alone."""
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    ids = _links(app.db, "firm-1", [(BILL, 20_001, 1, LinkState.LINKED.value), (PAYMENT, 20_002, 1, "unlinked")])
    _pays(app.db, "firm-1", ids, [(20_002, 20_001)])
    _sagas(app.db, [("firm-1", PAYMENT, 20_002, 1, SagaState.RUNNING.value, "")])
    with app.db.write.begin() as conn:  # the saga's steps both done, as the dead poster left them
        conn.execute(_STEP.update().values(state=StepState.DONE.value))
    bill, payment = _name("firm-1", BILL, 20_001), _name("firm-1", PAYMENT, 20_002)

    assert _preview(stub, "firm-1", (PAYMENT, 20_002)) == [(payment, ALREADY, "")]
    assert _preview(stub, "firm-1", (BILL, 20_001), cascade=True) == [(bill, UNLINK, "")]
    done = _apply(stub, "firm-1", (BILL, 20_001), (PAYMENT, 20_002), cascade=True)
    assert isinstance(done, unlink_pb2.UnlinkLinksResponse), _refusal(done)
    assert [(o.link_name, o.action) for o in done.outcomes] == [(bill, UNLINK), (payment, ALREADY)]
    assert done.unlinked_count == 1


@SQLITE
def test_a_correction_running_right_now_refuses_the_unlink_until_it_completes(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: a payment's correction is running: its delete is on its way to Xero (Xero slow to
    answer). An UnlinkLinks sent meanwhile is refused CORRECTION_UNFINISHED (preview and apply),
    nothing changes; once the correction completes the payment is unlinked by it, deleted in
    Xero, and the request answers ALREADY_UNLINKED."""
    # Xero answers the delete after 4 s, well within the poster's 10 s timeout: with the
    # fixtures' 3 s timeout and a 3 s delay the call sometimes timed out and the correction failed.
    firm = Firm(stub_for(poster_factory(settings(http_timeout=10.0))), emulator)
    firm.post("client_bill", "client_bill_payment")
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    firm.emulator.faults.add(
        FaultRule("latency", seconds=4.0, count=1, methods=("POST",), path_contains=f"Payments/{payment_id}")
    )
    answers: list[correction_pb2.Correction] = []
    worker = threading.Thread(target=lambda: answers.append(firm.apply(PAYMENT, firm.payment, EDIT)))
    worker.start()
    try:
        wait_for(
            lambda: correction_pb2.CORRECTION_STEP_STATE_IN_PROGRESS in _step_states(firm),
            what="the correction's delete is in progress",
        )
        name = _name("firm-1", PAYMENT, firm.payment)
        assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, REFUSED, UNFINISHED)]
        assert _refusal(_apply(firm.stub, "firm-1", (PAYMENT, firm.payment))) == (UNFINISHED, [(UNFINISHED, name)])
        assert firm.link(PAYMENT, firm.payment).state == LINKED
    finally:
        worker.join(30)
    assert [a.state for a in answers] == [COMPLETED]
    assert firm.xero("Payments", payment_id)["Status"] == "DELETED"
    assert _preview(firm.stub, "firm-1", (PAYMENT, firm.payment)) == [(name, ALREADY, "")]


def _step_states(firm: Firm) -> list[int]:
    """The states of the payment's correction's steps; none before it is recorded."""
    request = correction_pb2.GetCorrectionRequest(connection_id="firm-1", record=key(PAYMENT, firm.payment))
    try:
        return [int(s.state) for s in firm.stub.GetCorrection(request).correction.steps]
    except grpc.RpcError:
        return []


@SQLITE
def test_a_cascade_refuses_for_a_credit_note_application_under_correction(firm: Firm) -> None:
    """GUARD: a bill has a payment and a credit note applied to it. The application's own
    correction stops at the allocation's delete (Xero 500). Unlinking the bill with cascade,
    and the credit note with cascade, brings the application in as a dependent: both previews
    show it REFUSED / CORRECTION_UNFINISHED, both applies are refused naming it only, and every
    link stays linked."""
    firm.post("client_bill", "client_bill_payment", "credit_note", "credit_note_application")
    APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION
    CREDIT = common_pb2.TRANSACTION_KIND_CREDIT_NOTE
    firm.emulator.faults.add(
        FaultRule("error", status=500, count=1, methods=("PUT", "POST", "DELETE"), path_contains="Allocations")
    )
    stopped = firm.apply(APPLICATION, firm.application, DELETE)
    assert stopped.state == FAILED_SAGA, stopped
    application = _name("firm-1", APPLICATION, firm.application)

    bill_plan = _preview(firm.stub, "firm-1", (BILL, firm.bill), cascade=True)
    assert [(n, r) for n, a, r in bill_plan if a == REFUSED] == [(application, UNFINISHED)], bill_plan
    credit_plan = _preview(firm.stub, "firm-1", (CREDIT, firm.credit_note), cascade=True)
    assert [(n, r) for n, a, r in credit_plan if a == REFUSED] == [(application, UNFINISHED)], credit_plan
    for record in ((BILL, firm.bill), (CREDIT, firm.credit_note)):
        assert _refusal(_apply(firm.stub, "firm-1", record, cascade=True)) == (UNFINISHED, [(UNFINISHED, application)])
    links = firm.stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links
    assert {link.state for link in links} == {LINKED}


@BOTH
def test_records_numbered_beyond_32_bits_find_their_own_sagas(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: Actionstep ids are int64. A bill and a payment both numbered 9,000,000,000,000,000,001
    (and a bill 2,147,483,648): the payment's current generation has a FAILED saga a new apply gets
    past, the bills have none. Selected together, the preview refuses the payment only and the
    apply is refused naming it only; the two bills alone are unlinked."""
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    huge, past_int32 = 9_000_000_000_000_000_001, 2**31
    _links(
        app.db,
        "firm-1",
        [(BILL, huge, 1, LinkState.LINKED.value), (BILL, past_int32, 1, "linked"), (PAYMENT, huge, 1, "linked")],
    )
    _sagas(app.db, [("firm-1", PAYMENT, huge, 1, SagaState.FAILED.value, "XERO_NO_ANSWER")])
    chosen = [(BILL, huge), (PAYMENT, huge), (BILL, past_int32)]

    assert _preview(stub, "firm-1", *chosen) == [
        (_name("firm-1", BILL, huge), UNLINK, ""),
        (_name("firm-1", PAYMENT, huge), REFUSED, UNFINISHED),
        (_name("firm-1", BILL, past_int32), UNLINK, ""),
    ]
    assert _refusal(_apply(stub, "firm-1", *chosen)) == (UNFINISHED, [(UNFINISHED, _name("firm-1", PAYMENT, huge))])
    done = _apply(stub, "firm-1", (BILL, huge), (BILL, past_int32))
    assert isinstance(done, unlink_pb2.UnlinkLinksResponse) and done.unlinked_count == 2
