"""A look-up that lists more than one page, while someone works in Xero.

Xero's OpenAPI gives every list the look-ups read a `page` ("Up to 100 ... will be returned in a
single API call") and an `order` ("Order by an any element"), and says nothing of the order a list
comes in without one. XeroAPI/xero-mcp-server#21 (Xero's own) says invoices come "Ascending by
Updated date and Id" by default: an object edited between two pages' reads moves to the end, and
an object of the second page slides onto the first, already read, and is never seen. A look-up
after a lost answer then finds nothing and creates the record's object again. So a look-up names
its order, by the object's id, which no edit changes. The test serves bank transactions in that
default order too (the emulator keeps it for invoices only, where it is sourced).

The case where many pages are real: an overpayment's look-up selects every overpayment of its
type and contact (it carries no Reference to filter on), and a long-standing client has many."""

from __future__ import annotations

import dataclasses
from typing import Any

from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xero_emulator.testing import Tenant
from xero_emulator.testing import connect as emulator_client
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.contacts import Handler, intercept, settle
from tests.fixtures.lookups import is_lookup, live_objects
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, xero_objects

REFUND = common_pb2.TRANSACTION_KIND_OVERPAYMENT_REFUND
LINKED = poster_pb2.LINK_STATE_LINKED
PAGE = 100  # Xero's page


def _refund(record_id: int) -> transaction_pb2.Transaction:
    """An overpayment refund of 25.00 by the sample firm's client (participant 501)."""
    refund = samples.sample_transactions(63_000)["overpayment_refund"]
    refund.header.id = record_id
    refund.header.reference = f"AS-{record_id}"
    return refund


def _ids(stub: poster_grpc.PosterServiceStub, record_id: int) -> list[str]:
    record = common_pb2.RecordKey(kind=REFUND, id=record_id)
    link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link
    return [o.xero_id for o in link.xero_objects]


def _order_by_last_update(request: Request) -> Request:
    """The request as Xero's default order for invoices would serve bank transactions: the order
    asked for, if any, else by last update and id."""
    if request.param("order"):
        return request
    default = ["UpdatedDateUTC ASC, BankTransactionID ASC"]
    return dataclasses.replace(request, query={**request.query, "order": default})


def test_an_overpayment_looked_up_over_two_pages_while_one_on_the_first_is_edited_is_found_and_not_made_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The client has 100 overpayments in Xero: one xerolink made, 99 entered by hand. A second
    refund is posted; Xero makes its RECEIVE-OVERPAYMENT but the answer is lost, so the poster
    lists the client's overpayments to find it: the 101st, on page 2. Between the reads of page
    1 and page 2 a bookkeeper redates one of the hand-entered ones; with no order asked for, the
    list comes by last update. The second refund's overpayment must be found and linked, never
    made a second time (25.00 of the client's money twice)."""
    emulator = emulator_factory(idempotency_minutes=0.0005)  # no replay to hide a "none found"
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=20)))
    _, org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
    tenant_id = org["tenant_id"]
    assert settle(stub, [_refund(66_001)]) == [LINKED]
    [made] = xero_objects(emulator, tenant_id, "BankTransactions")
    tenant = Tenant(emulator, org, emulator_client(emulator, org))
    by_hand: dict[str, Any] = {
        "Type": "RECEIVE-OVERPAYMENT",
        "Contact": {"ContactID": made["Contact"]["ContactID"]},
        "BankAccount": {"AccountID": made["BankAccount"]["AccountID"]},
        "LineAmountTypes": "NoTax",
        "Date": "2026-03-01",
    }
    entered = tenant.put(
        "BankTransactions",
        *[
            {**by_hand, "LineItems": [{**made["LineItems"][0], "Description": f"Overpaid by cheque {n}"}]}
            for n in range(PAGE - 1)
        ],
    )
    assert entered.status_code == 200, entered.text
    first_page_item = entered.json()["BankTransactions"][0]["BankTransactionID"]
    pages: list[str] = []

    def edit_between_pages(request: Request, handle: Handler) -> Response:
        if not is_lookup(request, "BankTransactions"):
            return handle(request)
        page = request.param("page") or ""
        pages.append(page)
        if page == "2" and pages.count("2") == 1:
            emulator.state.hand_edit(tenant_id, "BankTransactions", first_page_item, {"Date": "2026-03-09"})
        return handle(_order_by_last_update(request))

    intercept(emulator, edit_between_pages)
    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="BankTransactions"))

    [outcome] = settle(stub, [_refund(66_002)])

    assert "2" in pages, f"the look-up read pages {pages}: the test set up no second page"
    tagged = [
        t
        for t in live_objects(xero_objects(emulator, tenant_id, "BankTransactions"))
        if t["LineItems"][0]["Description"] == made["LineItems"][0]["Description"].replace("66001", "66002")
    ]
    assert len(tagged) == 1, f"the second refund's overpayment was made {len(tagged)} times"
    assert outcome == LINKED
    assert tagged[0]["BankTransactionID"] in _ids(stub, 66_002)
