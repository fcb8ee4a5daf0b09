"""An invoice paid from trust kept in two organisations (its spend under the trust connection, its
payment under the office one) is one Actionstep record: unlinking it under either connection, a
cascade from its bill and a correction take both halves, all or nothing. A real poster, the real
mapper and the emulator's organisations, on both registries."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import correction_pb2, organisations_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error as error_details

from tests.fixtures.poster import wait_for, wait_settled, xero_objects
from tests.fixtures.routing import sample as _tx
from tests.integration.test_organisation_routing import pair  # noqa: F401 - the fixture

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAID = common_pb2.TRANSACTION_KIND_INVOICE_PAID_FROM_TRUST
LINKED, UNLINKED = poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_UNLINKED
DELETE = correction_pb2.CORRECTION_INTENT_DELETE
A = correction_pb2
OTHER = {"office": "trust", "trust": "office"}
PAYMENT_OBJECT, SPEND_OBJECT = xero_pb2.OBJECT_TYPE_PAYMENT, xero_pb2.OBJECT_TYPE_BANK_TRANSACTION


def key(kind: int, record_id: int) -> common_pb2.RecordKey:
    return common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]


def link(stub: poster_grpc.PosterServiceStub, connection_id: str, record: common_pb2.RecordKey) -> poster_pb2.Link:
    found: poster_pb2.Link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id=connection_id, record=record, include_audit=True)
    ).link
    return found


def halves(stub: poster_grpc.PosterServiceStub, record: common_pb2.RecordKey) -> dict[str, poster_pb2.Link]:
    return {c: link(stub, c, record) for c in ("office", "trust")}


def unlink(
    stub: poster_grpc.PosterServiceStub, connection_id: str, *records: common_pb2.RecordKey, **flags: Any
) -> Any:
    return stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id=connection_id, records=records, **flags))


def orphans(stub: poster_grpc.PosterServiceStub, connection_id: str) -> list[unlink_pb2.OrphanedXeroObject]:
    return list(stub.ListOrphans(unlink_pb2.ListOrphansRequest(connection_id=connection_id)).orphans)


def post(stub: poster_grpc.PosterServiceStub, tx: Any) -> poster_pb2.PostTransactionResponse:
    posted: poster_pb2.PostTransactionResponse = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="office", transaction=tx)
    )
    return posted


def post_linked(stub: poster_grpc.PosterServiceStub, *transactions: Any) -> None:
    for tx in transactions:
        assert wait_settled(stub, post(stub, tx).posting.name).state == LINKED


def xero_id(found: poster_pb2.Link, xero_type: int) -> str:
    return next(o.xero_id for o in found.xero_objects if o.type == xero_type)


def status(emulator: Any, tenant: str, resource: str, object_id: str) -> str:
    field = {"Payments": "PaymentID", "BankTransactions": "BankTransactionID", "Invoices": "InvoiceID"}[resource]
    return str(next(o for o in xero_objects(emulator, tenant, resource) if o[field] == object_id)["Status"])


@pytest.fixture
def paid(pair: Any) -> Any:  # noqa: F811 - the fixture imported above
    """A bill and its invoice paid from trust, both halves linked."""
    stub, emulator, office_tenant, trust_tenant = pair
    bill, payment = _tx("client_bill"), _tx("invoice_paid_from_trust")
    post_linked(stub, bill, payment)
    record = key(PAID, payment.header.id)
    assert {c: h.state for c, h in halves(stub, record).items()} == {"office": LINKED, "trust": LINKED}
    return stub, emulator, office_tenant, trust_tenant, bill, payment


@pytest.mark.parametrize("side", ["office", "trust"])
def test_unlinking_under_either_connection_previews_then_unlinks_both_halves(paid: Any, side: str) -> None:
    stub, _, _, _, _, payment = paid
    record = key(PAID, payment.header.id)
    before = halves(stub, record)
    payment_id = xero_id(before["office"], xero_pb2.OBJECT_TYPE_PAYMENT)
    spend_id = xero_id(before["trust"], xero_pb2.OBJECT_TYPE_BANK_TRANSACTION)
    expected = {
        "office": (xero_pb2.OBJECT_TYPE_PAYMENT, payment_id),
        "trust": (xero_pb2.OBJECT_TYPE_BANK_TRANSACTION, spend_id),
    }

    preview = unlink(stub, side, record, validate_only=True)

    # One outcome per half, this connection's first; each names its own connection's link and objects.
    assert [o.link_name for o in preview.outcomes] == [
        f"connections/{side}/links/invoice-paid-from-trust/{payment.header.id}",
        f"connections/{OTHER[side]}/links/invoice-paid-from-trust/{payment.header.id}",
    ]
    assert [o.action for o in preview.outcomes] == [unlink_pb2.UNLINK_ACTION_UNLINK] * 2
    for outcome, connection_id in zip(preview.outcomes, (side, OTHER[side]), strict=True):
        assert outcome.record == record
        assert [(o.connection_id, o.type, o.xero_id) for o in outcome.orphaned] == [
            (connection_id, *expected[connection_id])
        ]
    assert preview.unlinked_count == 0
    assert halves(stub, record) == before
    assert orphans(stub, "office") == orphans(stub, "trust") == []

    done = unlink(stub, side, record, confirm=True, reason="paid from the wrong matter")

    assert done.unlinked_count == 2
    assert [o.link_name for o in done.outcomes] == [o.link_name for o in preview.outcomes]
    after = halves(stub, record)
    assert {c: h.state for c, h in after.items()} == {"office": UNLINKED, "trust": UNLINKED}
    for connection_id in ("office", "trust"):
        [orphan] = orphans(stub, connection_id)
        assert (orphan.type, orphan.xero_id) == expected[connection_id]
        assert orphan.name.startswith(f"connections/{connection_id}/orphans/")
        assert orphan.reason == "paid from the wrong matter"
    assert [o.orphaned[0].name for o in done.outcomes] == [orphans(stub, c)[0].name for c in (side, OTHER[side])]
    # Repeating the request is harmless.
    again = unlink(stub, OTHER[side], record, confirm=True)
    assert [o.action for o in again.outcomes] == [unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED] * 2
    assert again.unlinked_count == 0


def test_a_half_being_posted_refuses_the_whole_request(pair: Any) -> None:  # noqa: F811
    stub, emulator, _, trust_tenant = pair
    # The spend is slow to reach the trust organisation: its half stays pending meanwhile.
    emulator.faults.add(FaultRule("latency", seconds=4.0, count=1, methods=("PUT",), tenant_id=trust_tenant))
    payment = _tx("invoice_paid_from_trust")
    record = key(PAID, payment.header.id)
    post(stub, payment)
    wait_for(lambda: link(stub, "trust", record).state == poster_pb2.LINK_STATE_PENDING)
    assert link(stub, "office", record).state == poster_pb2.LINK_STATE_WAITING

    with pytest.raises(grpc.RpcError) as refused:
        unlink(stub, "office", record, confirm=True)

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error_details(refused.value)
    assert details.reason == "POSTING_IN_PROGRESS"
    trust_name = f"connections/trust/links/invoice-paid-from-trust/{payment.header.id}"
    assert [(v.type, v.subject) for v in details.precondition_violations] == [("POSTING_IN_PROGRESS", trust_name)]
    assert link(stub, "office", record).state == poster_pb2.LINK_STATE_WAITING
    assert orphans(stub, "office") == orphans(stub, "trust") == []
    preview = unlink(stub, "office", record, validate_only=True)
    assert [o.action for o in preview.outcomes] == [unlink_pb2.UNLINK_ACTION_UNLINK, unlink_pb2.UNLINK_ACTION_REFUSED]
    assert preview.outcomes[1].link_name == trust_name


def test_a_cascade_from_the_bill_takes_both_halves_of_its_payment_from_trust(paid: Any) -> None:
    stub, _, _, _, bill, payment = paid
    bill_key, record = key(BILL, bill.header.id), key(PAID, payment.header.id)

    done = unlink(stub, "office", bill_key, confirm=True, cascade=True)

    assert [(o.link_name, o.action) for o in done.outcomes] == [
        (f"connections/office/links/client-bill/{bill.header.id}", unlink_pb2.UNLINK_ACTION_UNLINK),
        (f"connections/office/links/invoice-paid-from-trust/{payment.header.id}", unlink_pb2.UNLINK_ACTION_CASCADE),
        (f"connections/trust/links/invoice-paid-from-trust/{payment.header.id}", unlink_pb2.UNLINK_ACTION_CASCADE),
    ]
    assert all(o.cascaded_from == bill_key for o in done.outcomes[1:])
    assert done.unlinked_count == 3
    assert {c: h.state for c, h in halves(stub, record).items()} == {"office": UNLINKED, "trust": UNLINKED}
    assert [o.type for o in orphans(stub, "trust")] == [xero_pb2.OBJECT_TYPE_BANK_TRANSACTION]


def test_reposting_after_an_unlink_posts_both_halves_afresh_once_each(paid: Any) -> None:
    stub, emulator, office_tenant, trust_tenant, _, payment = paid
    record = key(PAID, payment.header.id)
    unlink(stub, "office", record, confirm=True)

    again = post(stub, payment)

    assert again.outcome == poster_pb2.POST_OUTCOME_ACCEPTED
    assert wait_settled(stub, again.posting.name).state == LINKED
    after = halves(stub, record)
    assert {c: h.state for c, h in after.items()} == {"office": LINKED, "trust": LINKED}
    spends = xero_objects(emulator, trust_tenant, "BankTransactions")
    payments = xero_objects(emulator, office_tenant, "Payments")
    assert len(spends) == len(payments) == 2  # the orphans of generation 1 stay in Xero
    # Each half holds a new object of its own organisation; the orphans are generation 1's.
    for connection_id, xero_type in (("office", PAYMENT_OBJECT), ("trust", SPEND_OBJECT)):
        [orphan] = orphans(stub, connection_id)
        assert orphan.generation == 1
        assert xero_id(after[connection_id], xero_type) != orphan.xero_id
    new_spend = next(s for s in spends if s["BankTransactionID"] == xero_id(after["trust"], SPEND_OBJECT))
    assert new_spend["Reference"].endswith("#2"), new_spend["Reference"]  # the new generation's tag
    # The same content once more is the same posting: nothing new in either organisation.
    assert post(stub, payment).outcome == poster_pb2.POST_OUTCOME_DUPLICATE
    assert len(xero_objects(emulator, trust_tenant, "BankTransactions")) == 2
    assert len(xero_objects(emulator, office_tenant, "Payments")) == 2


def _correct(stub: poster_grpc.PosterServiceStub, record: common_pb2.RecordKey, apply: bool) -> Any:
    if apply:
        request = correction_pb2.ApplyCorrectionRequest(connection_id="office", record=record, intent=DELETE)
        return stub.ApplyCorrection(request, timeout=60).correction
    plan = correction_pb2.PlanCorrectionRequest(connection_id="office", record=record, intent=DELETE)
    return stub.PlanCorrection(plan).correction


def test_a_correction_deletes_the_payment_and_the_trust_spend_then_unlinks_both(paid: Any) -> None:
    stub, emulator, office_tenant, trust_tenant, _, payment = paid
    record = key(PAID, payment.header.id)
    before = halves(stub, record)
    payment_id = xero_id(before["office"], xero_pb2.OBJECT_TYPE_PAYMENT)
    spend_id = xero_id(before["trust"], xero_pb2.OBJECT_TYPE_BANK_TRANSACTION)

    plan = _correct(stub, record, apply=False)

    ours = [s for s in plan.steps if s.actor == correction_pb2.CORRECTION_ACTOR_XEROLINK]
    assert [(s.action, s.xero_id) for s in ours] == [
        (A.CORRECTION_ACTION_DELETE_PAYMENT, payment_id),
        (A.CORRECTION_ACTION_DELETE_BANK_TRANSACTION, spend_id),
        (A.CORRECTION_ACTION_UNLINK, ""),
    ]
    assert "trust" in ours[1].description and "trust" in ours[2].description
    assert halves(stub, record) == before

    done = _correct(stub, record, apply=True)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert status(emulator, office_tenant, "Payments", payment_id) == "DELETED"
    assert status(emulator, trust_tenant, "BankTransactions", spend_id) == "DELETED"
    assert {c: h.state for c, h in halves(stub, record).items()} == {"office": UNLINKED, "trust": UNLINKED}
    assert [o.xero_id for o in orphans(stub, "trust")] == [spend_id]


def test_a_correction_of_the_bill_deletes_the_trust_spend_of_its_payment_from_trust(paid: Any) -> None:
    stub, emulator, office_tenant, trust_tenant, bill, payment = paid
    record, bill_key = key(PAID, payment.header.id), key(BILL, bill.header.id)
    spend_id = xero_id(link(stub, "trust", record), xero_pb2.OBJECT_TYPE_BANK_TRANSACTION)
    invoice_id = xero_id(link(stub, "office", bill_key), xero_pb2.OBJECT_TYPE_INVOICE)

    done = _correct(stub, bill_key, apply=True)

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert status(emulator, trust_tenant, "BankTransactions", spend_id) == "DELETED"
    assert status(emulator, office_tenant, "Invoices", invoice_id) == "VOIDED"
    assert {c: h.state for c, h in halves(stub, record).items()} == {"office": UNLINKED, "trust": UNLINKED}
    assert link(stub, "office", bill_key).state == UNLINKED


def test_a_correction_stopped_half_way_by_the_trust_organisation_resumes_without_acting_twice(paid: Any) -> None:
    stub, emulator, office_tenant, trust_tenant, _, payment = paid
    record = key(PAID, payment.header.id)
    before = halves(stub, record)
    payment_id = xero_id(before["office"], xero_pb2.OBJECT_TYPE_PAYMENT)
    spend_id = xero_id(before["trust"], xero_pb2.OBJECT_TYPE_BANK_TRANSACTION)
    spend_path, payment_path = f"BankTransactions/{spend_id}", f"Payments/{payment_id}"
    emulator.faults.add(FaultRule("error", status=503, count=1, methods=("POST",), path_contains=spend_path))
    # Zero-second latency rules only count the writes that reach each organisation.
    spend_writes = emulator.faults.add(FaultRule("latency", methods=("POST",), path_contains=spend_path))
    payment_writes = emulator.faults.add(FaultRule("latency", methods=("POST",), path_contains=payment_path))

    stopped = _correct(stub, record, apply=True)

    assert stopped.state == correction_pb2.CORRECTION_STATE_FAILED
    delete_payment, delete_spend = stopped.steps[0], stopped.steps[1]
    assert delete_payment.state == correction_pb2.CORRECTION_STEP_STATE_DONE
    assert delete_spend.state == correction_pb2.CORRECTION_STEP_STATE_FAILED
    assert "apply again" in delete_spend.detail
    assert status(emulator, office_tenant, "Payments", payment_id) == "DELETED"
    assert status(emulator, trust_tenant, "BankTransactions", spend_id) == "AUTHORISED"
    assert {c: h.state for c, h in halves(stub, record).items()} == {"office": LINKED, "trust": LINKED}

    finished = _correct(stub, record, apply=True)

    assert finished.correction_id == stopped.correction_id
    assert finished.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert finished.steps[1].attempts == 2 and finished.steps[0].attempts == 1
    assert (spend_writes.hits, payment_writes.hits) == (2, 1)
    assert status(emulator, trust_tenant, "BankTransactions", spend_id) == "DELETED"
    assert {c: h.state for c, h in halves(stub, record).items()} == {"office": UNLINKED, "trust": UNLINKED}


def test_both_halves_are_unlinked_together_after_the_pairing_was_cleared(paid: Any) -> None:
    """The halves belong together because of what was posted, not because of today's routing."""
    stub, _, _, _, _, payment = paid
    record = key(PAID, payment.header.id)
    stub.UpdateConnectionRouting(
        organisations_pb2.UpdateConnectionRoutingRequest(connection_id="office", routing=None), timeout=10
    )

    done = unlink(stub, "office", record, confirm=True, reason="pairing undone")

    assert done.unlinked_count == 2
    assert {c: h.state for c, h in halves(stub, record).items()} == {"office": UNLINKED, "trust": UNLINKED}
