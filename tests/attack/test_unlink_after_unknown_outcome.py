"""A link that gave up while a call's outcome was unknown may already be in Xero; posting the
same content again looks it up, changed content is refused (LINK_OUTCOME_UNKNOWN). But unlinking
it was allowed ("failed ... holds nothing in Xero"), recorded no orphan, and the repost as
generation 2 was looked up under the `#2` tag only: the object the lost call made was never found,
never listed, and the payment was made twice. Unlinking such a link is now refused."""

from __future__ import annotations

import grpc
import pytest
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import unlink_pb2
from xerolink_mapper import samples

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_settled,
    xero_objects,
)

LINKED, FAILED = poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT


def test_unlinking_a_link_whose_outcome_is_unknown_and_reposting_never_pays_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=3)))
    _, org = connect(stub, emulator)
    bill = samples.client_bill(9701)
    posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    assert wait_settled(stub, posted.posting.name).state == LINKED
    payment = transaction_pb2.Transaction(
        header=samples.header(9702),
        client_bill_payment=billing_pb2.ClientBillPayment(bill_id=9701, amount=samples.money(10000)),
    )
    # The payment is made but its answer is lost, and Xero is then unreachable for look-ups
    # until the attempts run out.
    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Payments"))
    emulator.faults.add(FaultRule("error", status=503, methods=("GET",), path_contains="Payments"))
    posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=payment))
    assert wait_settled(stub, posted.posting.name, timeout=60).state == FAILED
    emulator.faults.clear()
    assert len(xero_objects(emulator, org["tenant_id"], "Payments")) == 1

    # The operator tries to unlink the failed record to post it afresh: refused, since Xero may
    # hold what the lost call made; posting the same content again finds it instead.
    record = common_pb2.RecordKey(kind=PAYMENT, id=9702)
    with pytest.raises(grpc.RpcError) as refused:
        stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[record], confirm=True))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "LINK_OUTCOME_UNKNOWN" in str(refused.value.details()) or "without knowing" in str(refused.value.details())
    posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=payment))
    assert wait_settled(stub, posted.posting.name, timeout=60).state == LINKED

    payments = [p for p in xero_objects(emulator, org["tenant_id"], "Payments") if p.get("Status") != "DELETED"]
    assert len(payments) == 1, f"the 100.00 payment was made {len(payments)} times"
    # Found, linked, and now it unlinks as any linked record does, its payment listed as an orphan.
    stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[record], confirm=True))
    orphans = stub.ListOrphans(unlink_pb2.ListOrphansRequest(connection_id="firm-1")).orphans
    assert [o.xero_id for o in orphans] == [payments[0]["PaymentID"]]
