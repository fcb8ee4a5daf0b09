"""Attacks on drift detection and reconciliation from outside: a real poster on loopback, the real
mapper, the emulator over HTTP, on both registries. Each test states what a firm relying on
`Reconcile`, `ListDrift` and the drift records would expect, and fails while the product gets it
wrong."""

from __future__ import annotations

import time
from typing import Any

import grpc
import httpx
import sqlalchemy
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import drift_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.type.v1 import date_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples
from xerolink_poster.adapters import xero_json
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.domain import reconciliation as recon
from xerolink_poster.entrypoints.bootstrap import PosterApp
from xerolink_poster.service_layer.drift_checks import Observed, record_observations
from xerolink_poster.service_layer.unit_of_work import run_in_transaction

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled
from tests.fixtures.routing import extended_context

INVOICE = xero_pb2.OBJECT_TYPE_INVOICE
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
MARCH = ("2026-03-01", "2026-03-31")


def _date(text: str) -> date_pb2.Date:
    year, month, day = (int(p) for p in text.split("-"))
    return date_pb2.Date(year=year, month=month, day=day)


class Firm:
    """A poster connection to its own emulator organisation (extended profile: every kind the
    samples hold is posted), and a plain HTTP client acting as a person in that organisation."""

    def __init__(self, app: PosterApp, emulator: EmulatorServer, connection_id: str = "firm-1") -> None:
        self.app = app
        self.emulator = emulator
        self.connection_id = connection_id
        self.stub: poster_grpc.PosterServiceStub = stub_for(app)
        _, self.org = connect(self.stub, emulator, connection_id, extended_context(division=1))
        self.tenant = self.org["tenant_id"]
        self.xero = httpx.Client(
            base_url=f"{emulator.base_url}/api.xro/2.0",
            headers={"Authorization": f"Bearer {self.org['access_token']}", "xero-tenant-id": self.tenant},
            timeout=10.0,
        )

    def post(self, tx: transaction_pb2.Transaction) -> str:
        """Posts, waits for the link; the Xero id of the link's first object."""
        tx.header.division_id = 1
        posting = self.stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id=self.connection_id, transaction=tx)
        )
        assert wait_settled(self.stub, posting.posting.name).state == poster_pb2.LINK_STATE_LINKED
        return self.link(tx).xero_objects[0].xero_id

    def link(self, tx: transaction_pb2.Transaction) -> poster_pb2.Link:
        kind = common_pb2.TransactionKind.Value(f"TRANSACTION_KIND_{str(tx.WhichOneof('kind')).upper()}")
        record = common_pb2.RecordKey(kind=kind, id=tx.header.id)
        link: poster_pb2.Link = self.stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id=self.connection_id, record=record)
        ).link
        return link

    def reconcile(self, first: str = MARCH[0], last: str = MARCH[1], **kw: Any) -> drift_pb2.ReconcileResponse:
        request = drift_pb2.ReconcileRequest(
            connection_id=self.connection_id, from_date=_date(first), to_date=_date(last)
        )
        answer: drift_pb2.ReconcileResponse = self.stub.Reconcile(request, timeout=kw.get("timeout", 120))
        return answer

    def observe(self, resource: str, object_type: int, xero_id: str) -> list[DriftRow]:
        """Xero's current state read with a plain GET and handed to the drift checks, as the
        poller does."""
        answer = self.xero.get(f"{resource}/{xero_id}")
        document = None
        if answer.status_code != 404:
            assert answer.status_code == 200, answer.text
            document = xero_json.loads(answer.content)[resource][0]
        updated = str(document.get("UpdatedDateUTC", "")) if document else ""
        seen = Observed(object_type, xero_id, document, updated)
        return run_in_transaction(
            self.app.db,
            lambda uow: record_observations(uow, self.connection_id, [seen], "poll", time.time_ns() // 1000, "poller"),
        )

    def forget_snapshots(self) -> None:
        """As a registry upgraded from a version that kept no snapshots: the links are there, the
        snapshots are not."""
        with self.app.db.write.begin() as connection:
            connection.execute(
                sqlalchemy.text("DELETE FROM xero_snapshot WHERE connection_id = :c"), {"c": self.connection_id}
            )


def differing(answer: drift_pb2.ReconcileResponse) -> dict[str, tuple[int, int, int]]:
    """Account code -> (posted, xero, unexplained) cents, for the accounts that differ."""
    return {
        a.account_code: (a.posted.units, a.xero.units, a.unexplained.units)
        for a in answer.accounts
        if a.difference.units or a.unexplained.units
    }


def rpc_error(call: Any) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as err:
        return err
    raise AssertionError("the call succeeded")


# -- reconciliation of what xerolink posted, nothing changed in Xero -----------------------------------


def test_an_overpayment_refund_xerolink_posted_reconciles_with_xero(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Posted a bill, a receipt that overpays it and the refund of the overpayment, touched nothing
    in Xero, and reconciled March. Xero's Trial Balance shows the refund leaving the bank; the
    posted side counts it as money coming in (the refund's snapshot names an OverpaymentID, whose
    Type reconciliation never learns, so the payment defaults to ACCRECPAYMENT): the bank and
    receivables differ by twice the refund, unexplained."""
    firm = Firm(poster_factory(), emulator)
    sample = samples.sample_transactions(41000)
    for name in ("client_bill", "client_bill_payment", "overpayment_refund"):
        firm.post(sample[name])

    answer = firm.reconcile()

    assert differing(answer) == {}
    assert answer.reconciled


def test_a_bill_linked_before_snapshots_were_kept_reconciles_when_xero_is_unchanged(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Posted a bill and its payment, then removed their snapshots as a registry from before
    snapshots existed has none (docs/drift.md: such objects adopt their first read). Nothing
    changed in Xero. Reconcile reports the bill's revenue, tax, receivable and bank as Xero's
    alone, unexplained and not reconciled: what xerolink posted before the upgrade counts as
    nothing, and no read ever adopts it for reconciliation."""
    firm = Firm(poster_factory(), emulator)
    sample = samples.sample_transactions(41100)
    firm.post(sample["client_bill"])
    firm.post(sample["client_bill_payment"])
    assert firm.reconcile().reconciled
    firm.forget_snapshots()

    answer = firm.reconcile()

    assert differing(answer) == {}
    assert answer.reconciled


def test_a_bill_reposted_after_an_unlink_leaves_its_orphan_as_the_difference(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Posted a bill, unlinked it (its invoice stays in Xero, orphaned) and posted the record
    again: Xero now holds two invoices for one Actionstep bill. docs/drift.md says an unlinked
    link's snapshot is no longer active and the orphan explains the difference it makes. The
    unlink leaves the snapshot active, so the orphan counts as posted and Reconcile answers
    "reconciled", hiding the duplicate revenue in Xero."""
    firm = Firm(poster_factory(), emulator)
    bill = samples.sample_transactions(41200)["client_bill"]
    first = firm.post(bill)
    key = common_pb2.RecordKey(kind=BILL, id=bill.header.id)
    firm.stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key], confirm=True))
    bill.client_bill.bill_number += "-R"
    second = firm.post(bill)
    assert second != first

    answer = firm.reconcile()

    assert not answer.reconciled
    orphaned = [e for a in answer.accounts for e in a.explanations if e.reason == "orphaned"]
    assert {e.xero_id for e in orphaned} == {first}
    assert all(a.unexplained.units == 0 for a in answer.accounts)


def test_voiding_the_orphan_of_a_reposted_bill_is_not_drift_on_the_new_link(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Posted a bill, unlinked it and posted it again, then voided the orphaned first invoice in
    Xero (what the runbook asks an accountant to do) and let the poller read it. docs/drift.md:
    objects of an unlinked link are no longer watched. The read opens VOIDED_IN_XERO on the
    record's link, whose live invoice is untouched: a drift invented."""
    firm = Firm(poster_factory(), emulator)
    bill = samples.sample_transactions(41300)["client_bill"]
    first = firm.post(bill)
    key = common_pb2.RecordKey(kind=BILL, id=bill.header.id)
    firm.stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key], confirm=True))
    bill.client_bill.bill_number += "-R"
    firm.post(bill)
    emulator.hand_edit(firm.tenant, "Invoices", first, {"Status": "VOIDED"})

    assert firm.observe("Invoices", INVOICE, first) == []
    listed = firm.stub.ListDrift(drift_pb2.ListDriftRequest(connection_id="firm-1")).drifts
    assert list(listed) == []


def test_hand_payments_split_across_a_month_end_and_redated_deposits_are_explained_in_each_period(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Held: a supplier bill paid in full by a bank-feed match, a sales invoice part paid twice in
    Xero (2 March and 2 April), a deposit moved into April and a credit note voided, each read by
    the poller; March, April and both together each differ only by what those edits explain."""
    firm = Firm(poster_factory(), emulator)
    sample = samples.sample_transactions(42000)
    bill, invoice = firm.post(sample["supplier_invoice"]), firm.post(sample["client_bill"])
    deposit, credit = firm.post(sample["bank_deposit"]), firm.post(sample["credit_note"])
    assert firm.reconcile().reconciled
    due = xero_json.loads(firm.xero.get(f"Invoices/{bill}").content)["Invoices"][0]["AmountDue"]
    for target, amount, day in ((bill, str(due), "2026-03-20"), (invoice, "10.00", "2026-04-02")):
        match = {"InvoiceID": target, "Amount": amount, "Date": day, "AccountCode": "090"}
        emulator.bank_feed_match(firm.tenant, match)
    emulator.bank_feed_match(
        firm.tenant, {"InvoiceID": invoice, "Amount": "20.00", "Date": "2026-03-02", "AccountCode": "090"}
    )
    emulator.hand_edit(firm.tenant, "BankTransactions", deposit, {"Date": "2026-04-01"})
    emulator.hand_edit(firm.tenant, "CreditNotes", credit, {"Status": "VOIDED"})
    seen = [
        firm.observe("Invoices", INVOICE, bill),
        firm.observe("Invoices", INVOICE, invoice),
        firm.observe("BankTransactions", xero_pb2.OBJECT_TYPE_BANK_TRANSACTION, deposit),
        firm.observe("CreditNotes", xero_pb2.OBJECT_TYPE_CREDIT_NOTE, credit),
    ]
    assert [[d.kind for d in rows] for rows in seen] == [
        ["PAID_IN_XERO"],
        ["ALLOCATION_ADDED_IN_XERO"],
        ["DATE_CHANGED"],
        ["VOIDED_IN_XERO"],
    ]

    for first, last in (MARCH, ("2026-04-01", "2026-04-30"), ("2026-03-01", "2026-04-30")):
        answer = firm.reconcile(first, last)
        assert not answer.reconciled and differing(answer)
        assert all(a.unexplained.units == 0 for a in answer.accounts), (first, last, differing(answer))


# -- drift on links made before snapshots were kept -----------------------------------------------------


def test_a_bill_linked_before_snapshots_and_voided_in_xero_is_found_voided(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Posted a bill, removed its snapshot (a link from before snapshots were kept), voided the
    invoice in Xero, then the poller read it. xerolink never posts a voided invoice, and the link
    says LINKED, yet the first read is adopted as "what xerolink posted": no drift, ever."""
    firm = Firm(poster_factory(), emulator)
    invoice = firm.post(samples.sample_transactions(41400)["client_bill"])
    firm.forget_snapshots()
    emulator.hand_edit(firm.tenant, "Invoices", invoice, {"Status": "VOIDED"})

    found = firm.observe("Invoices", INVOICE, invoice)

    assert sorted((d.kind, d.state) for d in found) == [("VOIDED_IN_XERO", "open")]


def test_a_bill_linked_before_snapshots_and_gone_from_xero_is_found_deleted(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Posted a bill, removed its snapshot (a link from before snapshots were kept); Xero then no
    longer had the invoice (404). The read is dropped because there is nothing to adopt: the
    link stays LINKED to an object that does not exist and no DELETED_IN_XERO is recorded."""
    firm = Firm(poster_factory(), emulator)
    invoice = firm.post(samples.sample_transactions(41500)["client_bill"])
    firm.forget_snapshots()
    org = emulator.state.organisation(firm.tenant)
    with org.lock:
        org.objects["Invoices"].pop(invoice)

    found = firm.observe("Invoices", INVOICE, invoice)

    assert sorted((d.kind, d.state) for d in found) == [("DELETED_IN_XERO", "open")]


# -- careless callers ----------------------------------------------------------------------------------


def test_reconciling_from_the_first_day_of_the_calendar_is_refused_naming_from_date(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Reconcile from 0001-01-01 (a valid date the request accepts). The poster computes the day
    before it, overflows and answers INTERNAL "retry later", which never helps."""
    firm = Firm(poster_factory(), emulator)

    err = rpc_error(lambda: firm.reconcile("0001-01-01", "2026-03-31"))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "from_date" in [v.field for v in from_rpc_error(err).field_violations]


def test_a_period_needing_more_trial_balances_than_xeros_daily_limit_is_refused(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Reconcile 2026-01-01 to 9999-12-31. Reconciliation reads a Trial Balance at each financial
    year end in the period: about 8,000 reads, beyond Xero's 5,000 calls per tenant per day
    (/work/shared/NOTES.md), all through the tenant's rate budget that posting shares. The
    request is accepted and grinds on past any deadline (here 30 seconds: DEADLINE_EXCEEDED)
    instead of being refused up front."""
    firm = Firm(poster_factory(), emulator)

    err = rpc_error(lambda: firm.reconcile("2026-01-01", "9999-12-31", timeout=30))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())


def test_a_drift_page_token_of_one_connection_is_refused_on_another(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Two connections of one poster, each with two drifts. The first page of ListDrift on
    connection A (page_size 1) gives a token; used on connection B with the same filters it is
    accepted (its fingerprint covers the filters, not the connection) and B's page silently
    starts at A's position. docs/drift.md: a foreign page token is INVALID_ARGUMENT."""
    app = poster_factory()
    a, b = Firm(app, emulator, "firm-a"), Firm(app, emulator, "firm-b")
    for firm, base in ((a, 41600), (b, 41800)):
        for offset in (0, 100):
            invoice = firm.post(samples.sample_transactions(base + offset)["client_bill"])
            emulator.hand_edit(firm.tenant, "Invoices", invoice, {"Status": "VOIDED"})
            firm.observe("Invoices", INVOICE, invoice)
    page = a.stub.ListDrift(drift_pb2.ListDriftRequest(connection_id="firm-a", page_size=1))
    assert page.next_page_token

    err = rpc_error(
        lambda: b.stub.ListDrift(
            drift_pb2.ListDriftRequest(connection_id="firm-b", page_size=1, page_token=page.next_page_token)
        )
    )

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.code()


# -- the ledger effect of what Xero holds ----------------------------------------------------------------


def test_a_bank_transfer_deleted_in_xero_moves_no_money() -> None:
    """A bank transfer's ledger effect read with Status DELETED (Xero's OpenAPI BankTransfer has a
    Status; a deleted transfer is out of the ledger). Reconciliation still moves both banks by its
    Amount, so a drift on a deleted transfer explains nothing and the difference shows as
    unexplained."""
    accounts = recon.SystemAccounts(receivable="610", payable="800", tax="820")
    transfer = {
        "BankTransferID": "b",
        "FromBankAccount": {"Code": "090"},
        "ToBankAccount": {"Code": "094"},
        "Amount": "100.00",
        "Date": "2026-03-02",
        "Status": "DELETED",
    }

    assert recon.ledger_effect(recon.BANK_TRANSFER, transfer, accounts) == {}
