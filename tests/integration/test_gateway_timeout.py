"""A 504 from a gateway in front of Xero: it stopped waiting for Xero, which may still carry out
the call (RFC 9110, 15.6.5: the gateway "did not receive a timely response from an upstream
server"). Retried and looked up at once, the look-up ran before Xero finished, found nothing, and
the record was created a second time. A 504 waits as a call left unanswered does."""

from __future__ import annotations

import threading
import time

from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import common_pb2, transaction_pb2, trust_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples

from tests.fixtures.contacts import Handler, intercept, settle
from tests.fixtures.lookups import collection_of, live_objects
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, xero_objects

RECEIPT = common_pb2.TRANSACTION_KIND_TRUST_RECEIPT
# Xero finishes the call this long after the gateway gave up on it: longer than the retry's
# back-off, shorter than the wait after an unanswered call (two HTTP timeouts).
LANDS_AFTER = 1.0


def _receipt(record_id: int) -> transaction_pb2.Transaction:
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        trust_receipt=trust_pb2.TrustReceipt(amount=samples.money(500000), description="Deposit on purchase"),
    )


def test_a_receipt_whose_create_call_a_gateway_answered_504_is_deposited_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The first create call reaches Xero, but the gateway in front of it answers 504 at once and
    Xero books the receipt a second later. The receipt (5,000.00 into trust) must end linked to
    the one bank transaction Xero made, not deposited twice."""
    emulator = emulator_factory(idempotency_minutes=0.0005)  # no replay to hide a second create
    stub = stub_for(poster_factory(settings(http_timeout=1.0, backoff_base=0.05, backoff_cap=0.2, max_attempts=5)))
    _, org = connect(stub, emulator)
    landed = threading.Event()
    first: list[Request] = []

    def gateway(request: Request, handle: Handler) -> Response:
        if request.method != "PUT" or collection_of(request) != "BankTransactions" or first:
            return handle(request)
        first.append(request)

        def xero_finishes() -> None:
            time.sleep(LANDS_AFTER)
            handle(request)
            landed.set()

        threading.Thread(target=xero_finishes, daemon=True).start()
        return Response.json(504, {"Title": "Gateway Timeout", "Status": 504})

    intercept(emulator, gateway)
    receipt = _receipt(97_001)

    [state] = settle(stub, [receipt])

    assert first and landed.wait(5), "the scenario did not unfold"
    tag = f"-{receipt.header.id}]"
    made = [
        t for t in live_objects(xero_objects(emulator, org["tenant_id"], "BankTransactions")) if tag in t["Reference"]
    ]
    assert len(made) == 1, f"the receipt was deposited {len(made)} times"
    assert state == poster_pb2.LINK_STATE_LINKED
    link = stub.GetLink(
        poster_pb2.GetLinkRequest(
            connection_id="firm-1", record=common_pb2.RecordKey(kind=RECEIPT, id=receipt.header.id)
        )
    ).link
    assert [o.xero_id for o in link.xero_objects] == [made[0]["BankTransactionID"]]
