"""After a call whose answer was lost, the elements it may have created are looked up together:
one GET for as many records' tags as fit in a URL Xero serves, each record taking only the object
that carries its own tag exactly. A lost answer to a call of many elements cost a look-up each,
out of the organisation's 60 calls a minute. Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples

from tests.fixtures.contacts import Handler, intercept, settle
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, xero_objects

LINKED = poster_pb2.LINK_STATE_LINKED


def _client_bills(count: int) -> list[transaction_pb2.Transaction]:
    return [samples.client_bill(8001 + n) for n in range(count)]


def _supplier_bills(count: int) -> list[transaction_pb2.Transaction]:
    return [samples.sample_transactions(20_000 + 100 * n)["supplier_invoice"] for n in range(count)]


def _payments(count: int) -> list[transaction_pb2.Transaction]:
    # Each 1.00 more than the one before (210.00 in all, within the bill), so each payment's amount
    # is its own: a wrong match shows.
    return [
        transaction_pb2.Transaction(
            header=samples.header(8601 + n),
            client_bill_payment=billing_pb2.ClientBillPayment(bill_id=8500, amount=samples.money(100 * (n + 1))),
        )
        for n in range(count)
    ]


def _accrec(item: dict[str, Any]) -> bool:
    return bool(item.get("Type") == "ACCREC")


def _accpay(item: dict[str, Any]) -> bool:
    return bool(item.get("Type") == "ACCPAY")


def _paid(item: dict[str, Any]) -> bool:
    return item.get("Status") != "DELETED"


KINDS: dict[str, tuple[Callable[[int], list[transaction_pb2.Transaction]], str, Callable[[dict[str, Any]], bool]]] = {
    "client-bills": (_client_bills, "Invoices", _accrec),
    "supplier-bills": (_supplier_bills, "Invoices", _accpay),
    "payments": (_payments, "Payments", _paid),
}


def _is_lookup(request: Request, resource: str) -> bool:
    listed = request.path.rstrip("/").endswith(f"/{resource}")
    return request.method == "GET" and listed and bool(request.param("where"))


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_lost_answer_to_a_call_of_many_elements_is_looked_up_in_one_call(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """Defect: each element of the call was looked up on its own, 20 GETs where one carries them."""
    make, resource, ours = KINDS[kind]
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    if kind == "payments":
        assert settle(stub, [samples.client_bill(8500)]) == [LINKED]
    transactions = make(20)
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains=resource)
    emulator.faults.add(dropped)
    lookups: list[str] = []

    def count(request: Request, handle: Handler) -> Response:
        if _is_lookup(request, resource):
            lookups.append(request.param("where") or "")
        return handle(request)

    intercept(emulator, count)

    assert settle(stub, transactions) == [LINKED] * 20

    assert dropped.hits == 1
    assert 1 <= len(lookups) <= 2, f"{len(lookups)} look-ups for 20 elements: {lookups[:3]}"
    made = [i for i in xero_objects(emulator, org["tenant_id"], resource) if ours(i)]
    assert len(made) == 20, f"{len(made)} {resource} in Xero for 20 records"
    id_field = "PaymentID" if kind == "payments" else "InvoiceID"
    linked = {
        t.header.id: stub.GetLink(
            poster_pb2.GetLinkRequest(
                connection_id="firm-1",
                record=common_pb2.RecordKey(kind=_kind_of(t), id=t.header.id),  # type: ignore[arg-type]
            )
        )
        .link.xero_objects[0]
        .xero_id
        for t in transactions
    }
    # Each record linked to its own object: distinct ids, all of them Xero's.
    assert len(set(linked.values())) == 20
    assert set(linked.values()) == {str(i[id_field]) for i in made}
    if kind == "payments":
        amounts = {str(i[id_field]): i["Amount"] for i in made}
        for t in transactions:
            assert Decimal(str(amounts[linked[t.header.id]])) * 100 == t.client_bill_payment.amount.units


def _kind_of(transaction: transaction_pb2.Transaction) -> int:
    name = transaction.WhichOneof("kind") or ""
    return int(common_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{name.upper()}"))
