"""Second attacks on the check before an invoice paid from trust's trust SPEND is sent
(dispatch/payable.py: the invoice read with GET Invoices?IDs=..&page=1, the batch's other payments
counted) and on every token refresh now listing Xero's GET /connections (connection_tokens.py).

Attacked: the trust half of an invoice paid from trust posted in the firm's own trust organisation
(two connections, the payment in the office one); a batch's receipt that Xero itself refuses
counted as paid; a receipt and a trust payment together exactly equal to the amount due; an
invoice with a credit note applied; and a refresh whose GET /connections answers 200 with a body
that lists nothing readable, or with a page that is no JSON.

Xero's contract (/work/shared/xero-openapi/xero_accounting.yaml): Payment.Amount "Must be less
than or equal to the outstanding amount owing on the invoice"; Invoice.AmountDue "Amount
remaining to be paid on invoice"; "Payments can only be made against Authorised documents"
(NOTES.md). Xero's GET /connections answers a JSON array of the tenants the token may call
(developer.xero.com, "Check the tenants you're authorized to access").

Each docstring starts with "DEFECT (fixed):" (failed before its fix), "DEFECT (open, xfail):" (a
known gap, marked strict xfail) or "GUARD:" (holds). Real poster and mapper on
loopback, the Xero emulator over HTTP, SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.messages import Request, Response
from xerolink.poster.v1 import connection_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples

from tests.attack.test_trust_spend_and_reconnect_attacks import (
    BILL,
    FROM_TRUST,
    LINKED,
    PAYMENT,
    PENDING,
    _batch,
    _from_trust,
    _live_payments,
    _settled_link,
    _stranded,
)
from tests.fixtures.contacts import Handler, intercept, post_all, wait
from tests.fixtures.hand_edits import bank_feed_match
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, stub_for, wait_for, xero_objects
from tests.fixtures.routing import extended_context, route, sample
from tests.integration.connection_helpers import PosterMaker, TokenCalls, posters
from tests.integration.test_poster_corrections import Firm
from tests.integration.test_refresh_after_a_403 import _connected, _refresh, _state

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

INVOICE = xero_pb2.OBJECT_TYPE_INVOICE
CONNECTED = connection_pb2.CONNECTION_STATE_CONNECTED


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


@pytest.fixture
def sqlite_posters(database_url: str, mapper_target: str) -> Iterator[PosterMaker]:
    with posters(database_url, mapper_target) as make:
        yield make


def _spends_in(emulator: EmulatorServer, tenant: str, record_id: int) -> list[dict[str, Any]]:
    tag = f"[AS-IPFT-{record_id}]"
    return [
        t
        for t in xero_objects(emulator, tenant, "BankTransactions")
        if t["Type"] == "SPEND" and tag in str(t.get("Reference", "")) and t["Status"] not in ("DELETED", "VOIDED")
    ]


def _link_of(stub: Any, connection_id: str, record_id: int) -> poster_pb2.Link | None:
    name = f"connections/{connection_id}/links/invoice-paid-from-trust/{record_id}"
    try:
        link: poster_pb2.Link = stub.GetLink(poster_pb2.GetLinkRequest(name=name), timeout=10).link
        return link
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
        return None


# -- 1. the trust half in the firm's own trust organisation --------------------------------------
@pytest.mark.xfail(
    strict=True,
    reason="known open defect, kept as its reproduction (docs/drift.md, 'A posting that moves money before it "
    "pays'): the trust half of a firm keeping trust money in its own organisation is a posting of its own, "
    "whose invoice is in the office organisation; payable.py checks a posting's own later payments only, and a "
    "hold across two connections is not supported. strict: the test fails the suite once the spend is checked",
)
def test_an_invoice_paid_from_trust_for_an_office_bill_paid_in_xero_moves_no_money_in_the_trust_organisation(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """DEFECT (open, xfail): trust in its own organisation (docs/matters-and-organisations.md): the invoice paid
    from trust is the SPEND in the trust organisation, then the payment of the bill in the office
    one, which waits for the SPEND. The office bill was paid in full in Xero (a bank-feed match).
    The check before the spend (payable.check_later_payments) only sees a posting whose own later
    operations pay a document: the trust half has none (its payment is another connection's
    posting), so nothing reads the office invoice and the SPEND is sent. Xero then refuses the
    payment on the PAID invoice ("Payments can only be made against Authorised documents"): the
    client's money is out of the trust bank in the trust organisation for a fee never paid,
    exactly what the check was written to stop."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, office = connect(stub, emulator, "office", extended_context())
    _, trust = connect(stub, emulator, "trust", extended_context())
    route(stub, "office", trust_connection_id="trust")
    bill, paid = sample("client_bill"), sample("invoice_paid_from_trust")
    posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=bill))
    name = posted.posting.name
    wait_for(lambda: stub.GetPosting(poster_pb2.GetPostingRequest(name=name)).posting.state == LINKED, 20)
    [invoice] = xero_objects(emulator, office["tenant_id"], "Invoices")
    match = {"InvoiceID": invoice["InvoiceID"], "Amount": str(invoice["AmountDue"]), "Date": "2026-07-02"}
    bank_feed_match(emulator, office["tenant_id"], {**match, "AccountCode": "090"})

    stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=paid))
    record = paid.header.id
    wait_for(lambda: (_link_of(stub, "trust", record) or poster_pb2.Link()).state != PENDING, 20, what="trust half")
    time.sleep(3.0)

    office_half = _link_of(stub, "office", record)
    spends = _spends_in(emulator, trust["tenant_id"], record)
    assert not (spends and (office_half is None or office_half.state != LINKED)), (
        f"SPEND {spends[0]['Total']} live in the trust organisation, the office payment "
        f"{poster_pb2.LinkState.Name(office_half.state) if office_half else None} "
        f"{office_half.last_error if office_half else ''}"
    )


# -- 2. what the batch counts as paid --------------------------------------------------------------
def test_a_receipt_xero_refuses_in_the_same_batch_does_not_refuse_a_payable_trust_payment_for_good(
    firm: Firm,
) -> None:
    """DEFECT (fixed): the bill owes 936.55. One batch holds a client receipt of 1,000.00 (over the amount
    due: Xero refuses it, Payment.Amount "Must be less than or equal to the outstanding amount
    owing on the invoice") and an invoice paid from trust of 500.00, which Xero would take.
    payable._paid_first counts every payment sent with the batch as paid before the check, whether
    or not Xero takes it, so the trust payment is refused for good, PAYMENT_NOT_PAYABLE_IN_XERO,
    "Correct the amount in Actionstep and post it again": the amount was right, the bill stays
    unpaid in Xero and the firm is sent to change a correct record."""
    firm.post("client_bill")
    receipt = firm.sample["client_bill_payment"]
    receipt.client_bill_payment.amount.units = 100000
    from_trust = _from_trust(5000, 5911, 50000)

    _batch(firm, receipt, from_trust)
    wait_for(lambda: firm.link(PAYMENT, firm.payment).state != PENDING, 20, what="the receipt settles")
    link = _settled_link(firm, FROM_TRUST, 5911)

    receipt_link = firm.link(PAYMENT, firm.payment)
    assert receipt_link.state != LINKED, "Xero took a receipt over the amount due"
    assert link.state == LINKED, (poster_pb2.LinkState.Name(link.state), link.last_error)
    assert _stranded(firm, [5911]) == []


def test_a_receipt_and_a_trust_payment_together_exactly_the_amount_due_both_post(firm: Firm) -> None:
    """GUARD: the bill owes 936.55; one batch holds the client's receipt of 436.55 and an invoice
    paid from trust of 500.00: together exactly the amount due. Both link, the invoice is PAID,
    one SPEND."""
    firm.post("client_bill")
    receipt = firm.sample["client_bill_payment"]
    receipt.client_bill_payment.amount.units = 43655
    from_trust = _from_trust(5000, 5912, 50000)

    _batch(firm, receipt, from_trust)
    wait_for(lambda: firm.link(PAYMENT, firm.payment).state != PENDING, 20)
    link = _settled_link(firm, FROM_TRUST, 5912)

    assert link.state == LINKED, link.last_error
    assert firm.link(PAYMENT, firm.payment).state == LINKED
    invoice_id = firm.xero_id(BILL, firm.bill, INVOICE)
    assert firm.xero("Invoices", invoice_id)["AmountDue"] == Decimal("0.00")
    assert len(_live_payments(firm.emulator, firm.org["tenant_id"], invoice_id)) == 2
    assert len(_spends_in(firm.emulator, firm.org["tenant_id"], 5912)) == 1


def test_a_trust_payment_of_what_is_left_after_a_credit_note_posts(firm: Firm) -> None:
    """GUARD: a credit note is applied to the bill (Xero's AmountDue falls by it); an invoice paid
    from trust of exactly what is left is checked against that AmountDue and posts."""
    firm.post("client_bill", "credit_note", "credit_note_application")
    invoice_id = firm.xero_id(BILL, firm.bill, INVOICE)
    due = firm.xero("Invoices", invoice_id)["AmountDue"]
    assert Decimal("0") < due < Decimal("936.55")

    link_record = 5913
    from_trust = _from_trust(5000, link_record, int(due * 100))
    firm.stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=from_trust))
    link = _settled_link(firm, FROM_TRUST, link_record)

    assert link.state == LINKED, link.last_error
    assert firm.xero("Invoices", invoice_id)["Status"] == "PAID"


# -- 3. every refresh lists GET /connections --------------------------------------------------------
@pytest.mark.parametrize("body", [b"", b"{}", b'{"Connections": []}'], ids=["empty", "object", "wrapped"])
def test_a_connections_answer_that_lists_nothing_readable_does_not_demote_a_connected_organisation(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Any, body: bytes
) -> None:
    """DEFECT (fixed): a CONNECTED connection is refreshed (RefreshConnection; the dispatcher's early
    refresh takes the same path). Xero's GET /connections answers 200 with a body that is not the
    JSON array Xero answers (empty, an object: a proxy's or a truncated answer). XeroIdentity.
    connections reads any such body as an empty list, and _organisation_listed then takes the
    organisation as removed in Xero: the connection is stored NEEDS_RECONNECT, every entry of it
    waits, and an administrator is told to redo the consent of an organisation Xero never left.
    An answer that lists nothing readable says nothing (as a 503 does: state unchanged)."""
    emulator, _, stub = _connected(emulator_factory, sqlite_posters, tmp_path)
    garbled: list[str] = []

    def change(request: Request, handle: Handler) -> Response:
        if request.method == "GET" and request.path.rstrip("/").endswith("/connections") and not garbled:
            garbled.append(request.path)
            return Response(200, body, {"Content-Type": "application/json"})
        return handle(request)

    intercept(emulator, change)
    try:
        _refresh(stub)
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())

    assert garbled, "the refresh did not list Xero's connections"
    assert _state(stub) == CONNECTED, stub.GetConnection(
        poster_pb2.GetConnectionRequest(connection_id="firm-1")
    ).connection.status


def test_a_connections_answer_that_is_no_json_keeps_the_rotated_tokens(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Any
) -> None:
    """DEFECT (fixed): RefreshConnection exchanges the refresh token at Xero (the old one is spent from
    then, honoured only for Xero's grace period), then GET /connections answers 200 with an HTML
    page (a proxy's). xero_json.loads raises JSONDecodeError, which ConnectionTokens._exchange and
    _organisation_listed do not catch: the rotated pair Xero issued is never stored, the refresh
    claim is not released (other refreshes wait it out, refresh_claim 20 s), and the caller is
    answered INTERNAL. The poster goes on calling with the pre-refresh token and holds a spent
    refresh token: once Xero's grace period ends, the connection can only be consented again. The
    dispatcher's early refresh (ConnectionTokens.credentials) takes the same path, and a non-
    XerolinkError there escapes it too."""
    emulator, _, stub = _connected(emulator_factory, sqlite_posters, tmp_path)
    calls = TokenCalls(emulator)
    garbled: list[str] = []
    bearers: list[str] = []

    def change(request: Request, handle: Handler) -> Response:
        if request.method == "GET" and request.path.rstrip("/").endswith("/connections") and not garbled:
            garbled.append(request.path)
            return Response(200, b"<html><body>Service busy</body></html>", {"Content-Type": "text/html"})
        if request.method in ("PUT", "POST") and "Invoices" in request.path:
            bearers.append(request.header("authorization") or "")
        return handle(request)

    intercept(emulator, change)
    said = "OK"
    try:
        _refresh(stub)
    except grpc.RpcError as err:
        said = f"{err.code()}: {err.details()}"
    assert garbled and calls.refreshes == 1
    issued = calls.tokens[-2]  # the access token of the refresh's rotated pair

    [name] = post_all(stub, [samples.client_bill(77_501)])
    wait(stub, [name])

    assert bearers, "the bill was not sent"
    used_new = bearers[-1] == f"Bearer {issued}"
    assert "INTERNAL" not in said and used_new, (
        f"refresh answered {said}; the next call used the {'new' if used_new else 'pre-refresh'} access token"
    )
