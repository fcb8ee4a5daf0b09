"""Drift detection against the Xero emulator, on SQLite and PostgreSQL: bills and payments posted
through a real poster keep a snapshot of Xero's answer; each is then changed in Xero (through the
API as a person's edit would be, or in the emulator's state where Xero's API cannot make the
change), read back with a plain GET and passed through record_observations."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters import xero_json
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.entrypoints.bootstrap import PosterApp
from xerolink_poster.service_layer.drift_checks import Observed, record_observations
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
INVOICE, XERO_PAYMENT = xero_pb2.OBJECT_TYPE_INVOICE, xero_pb2.OBJECT_TYPE_PAYMENT


class Firm:
    """A poster connected to an emulator organisation, and a plain HTTP client for that
    organisation (a person working in Xero)."""

    def __init__(self, app: PosterApp, emulator: EmulatorServer) -> None:
        self.app = app
        self.emulator = emulator
        self.stub: poster_grpc.PosterServiceStub = stub_for(app)
        _, self.org = connect(self.stub, emulator)
        self.xero = httpx.Client(
            base_url=f"{emulator.base_url}/api.xro/2.0",
            headers={"Authorization": f"Bearer {self.org['access_token']}", "xero-tenant-id": self.org["tenant_id"]},
            timeout=10.0,
        )

    def post(self, tx: transaction_pb2.Transaction) -> str:
        """Posts and waits for the link; the Xero id of its object."""
        posting = self.stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=tx))
        assert wait_settled(self.stub, posting.posting.name).state == poster_pb2.LINK_STATE_LINKED
        kind = BILL if tx.WhichOneof("kind") == "client_bill" else PAYMENT
        record = common_pb2.RecordKey(kind=kind, id=tx.header.id)
        link = self.stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link
        xero_id: str = link.xero_objects[0].xero_id
        return xero_id

    def bill(self, base: int) -> str:
        return self.post(samples.sample_transactions(base)["client_bill"])

    def edit(self, resource: str, xero_id: str, element: dict[str, Any]) -> None:
        answer = self.xero.post(f"{resource}/{xero_id}", content=xero_json.dumps({resource: [element]}))
        assert answer.status_code == 200, answer.text

    def in_state(self, resource: str, xero_id: str, change: Callable[[dict[str, dict[str, Any]]], object]) -> None:
        """A change Xero's API does not offer (Xero's own processes or its web app make it)."""
        org = self.emulator.state.organisation(self.org["tenant_id"])
        with org.lock:
            change(org.objects[resource])

    def observe(self, resource: str, object_type: int, xero_id: str) -> list[DriftRow]:
        answer = self.xero.get(f"{resource}/{xero_id}")
        document = None
        if answer.status_code != 404:
            assert answer.status_code == 200, answer.text
            document = xero_json.loads(answer.content)[resource][0]
        updated = str(document.get("UpdatedDateUTC", "")) if document else ""
        seen = Observed(object_type, xero_id, document, updated)
        return run_in_transaction(
            self.app.db,
            lambda uow: record_observations(uow, "firm-1", [seen], "poll", time.time_ns() // 1000, "poller"),
        )


def kinds(rows: list[DriftRow]) -> list[tuple[str, str]]:
    return sorted((row.kind, row.state) for row in rows)


def test_each_hand_edit_in_xero_is_found_as_its_drift(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    firm = Firm(poster_factory(), emulator)
    voided, dated, moved, priced, relined, gone, drafted = (firm.bill(base) for base in range(21000, 21700, 100))

    firm.edit("Invoices", voided, {"Status": "VOIDED"})
    firm.edit("Invoices", dated, {"Date": "2026-03-09"})
    other = xero_json.loads(firm.xero.put("Contacts", json={"Contacts": [{"Name": "Someone Else"}]}).content)
    firm.edit("Invoices", moved, {"Contact": {"ContactID": other["Contacts"][0]["ContactID"]}})

    def reprice(invoices: dict[str, dict[str, Any]]) -> None:
        doc = invoices[priced]
        doc["LineItems"][0]["LineAmount"] += 10
        doc["SubTotal"] += 10
        doc["Total"] += 10

    def reline(invoices: dict[str, dict[str, Any]]) -> None:
        invoices[relined]["LineItems"][0]["AccountCode"] = "260"

    firm.in_state("Invoices", priced, reprice)
    firm.in_state("Invoices", relined, reline)
    firm.in_state("Invoices", gone, lambda invoices: invoices.pop(gone))
    firm.in_state("Invoices", drafted, lambda invoices: invoices[drafted].update(Status="SUBMITTED"))

    assert kinds(firm.observe("Invoices", INVOICE, voided)) == [("VOIDED_IN_XERO", "open")]
    assert kinds(firm.observe("Invoices", INVOICE, dated)) == [("DATE_CHANGED", "open")]
    assert kinds(firm.observe("Invoices", INVOICE, moved)) == [("CONTACT_CHANGED", "open")]
    assert kinds(firm.observe("Invoices", INVOICE, priced)) == [("AMOUNT_CHANGED", "open")]
    assert kinds(firm.observe("Invoices", INVOICE, relined)) == [("LINES_CHANGED", "open")]
    assert kinds(firm.observe("Invoices", INVOICE, gone)) == [("DELETED_IN_XERO", "open")]
    assert kinds(firm.observe("Invoices", INVOICE, drafted)) == [("STATUS_CHANGED", "open")]
    # Read again, unchanged: nothing new.
    assert firm.observe("Invoices", INVOICE, dated) == []
    # Put back in Xero: resolved.
    firm.edit("Invoices", dated, {"Date": "2026-03-02"})
    [restored] = firm.observe("Invoices", INVOICE, dated)
    assert (restored.kind, restored.state, restored.resolution) == ("DATE_CHANGED", "resolved", "XERO_RESTORED")


def test_payments_xerolink_did_not_make_and_payments_deleted_in_xero(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator)
    sample = samples.sample_transactions(22000)
    bill_id = firm.post(sample["client_bill"])
    ours = firm.post(sample["client_bill_payment"])  # 500.00 of the bill
    partly, fully = firm.bill(22100), firm.bill(22200)

    # xerolink's own payment on the bill is as meant.
    assert firm.observe("Invoices", INVOICE, bill_id) == []

    def pay(invoice_id: str, amount: str) -> None:
        element = {"Invoice": {"InvoiceID": invoice_id}, "Account": {"Code": "090"}, "Date": "2026-03-03"}
        body = {"Payments": [{**element, "Amount": xero_json.loads(amount.encode())}]}
        answer = firm.xero.put("Payments", content=xero_json.dumps(body))
        assert answer.status_code == 200, answer.text

    due = xero_json.loads(firm.xero.get(f"Invoices/{fully}").content)["Invoices"][0]["AmountDue"]
    pay(partly, "100.00")
    pay(fully, str(due))
    [added] = firm.observe("Invoices", INVOICE, partly)
    assert (added.kind, added.state) == ("ALLOCATION_ADDED_IN_XERO", "open")
    [paid] = firm.observe("Invoices", INVOICE, fully)
    assert paid.kind == "PAID_IN_XERO"
    assert {"field": "Status", "posted": "AUTHORISED", "xero": "PAID"} in xero_json.loads(paid.differences.encode())

    # The payment xerolink made, deleted in Xero: seen on its invoice, then on the payment itself.
    firm.edit("Payments", ours, {"Status": "DELETED"})
    [deleted] = firm.observe("Invoices", INVOICE, bill_id)
    assert (deleted.kind, deleted.xero_id, deleted.object_type) == ("PAYMENT_DELETED_IN_XERO", ours, XERO_PAYMENT)
    with UnitOfWork(firm.app.db, write=False) as uow:
        payment_link = uow.links.link_holding("firm-1", ours)
        assert payment_link is not None and deleted.link_id == payment_link.id
        audit = [a.event for a in uow.links.audit(payment_link.id or 0)]
    assert audit[-1] == "drift_detected"
    assert firm.observe("Payments", XERO_PAYMENT, ours) == []
