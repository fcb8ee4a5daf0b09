"""Attacks on the routing of the extended profile (a trust organisation, a connection per
division), the firm groups and the routing-freshness check, from outside: real posters on one
registry, the real mapper and the emulator. Each test states a rule the product promises and
fails while the rule is broken."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import billing_pb2, transaction_pb2
from xerolink.poster.v1 import backfill_pb2, organisations_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.grpc_errors import from_rpc_error as error_details
from xerolink_mapper import samples
from xerolink_poster.domain.kinds import TransactionKind

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.fixtures.routing import extended_context as _context
from tests.fixtures.routing import link_row_held
from tests.fixtures.routing import post as _post
from tests.fixtures.routing import post_or_refusal as _post_or_refusal
from tests.fixtures.routing import route as _route
from tests.fixtures.routing import sample as _tx


def _spends(emulator: EmulatorServer, tenant_id: str) -> list[float]:
    return [t["Total"] for t in xero_objects(emulator, tenant_id, "BankTransactions")]


def _warm(stub: poster_grpc.PosterServiceStub, *connection_ids: str) -> None:
    """Any call naming a connection makes that poster read it (and keep it for a second)."""
    for cid in connection_ids:
        stub.ListMatterOptions(organisations_pb2.ListMatterOptionsRequest(connection_id=cid))


# -- the routing-freshness check -----------------------------------------------------------------


def test_a_poster_that_has_not_seen_a_divisions_trust_pairing_does_not_post_trust_money_to_its_office(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """docs: a transaction of a listed division is posted under the division's connection "(then,
    by that connection's own routing, to its trust organisation)", and "a post routed by a routing
    that has changed since is refused when written with UNAVAILABLE ROUTING_CHANGED". The second
    hop is a routing too: the firm pairs the division's connection with its trust organisation,
    and a poster that read the division's connection a moment before takes a trust receipt of the
    division. It must be refused (ROUTING_CHANGED) or go to the trust organisation, never to the
    division's office organisation."""
    emulator = emulator_factory()
    first, second = poster_factory(name="a"), poster_factory(name="b")
    stub, other = stub_for(first), stub_for(second)
    connect(stub, emulator, "head", _context(division=1))
    _, branch = connect(stub, emulator, "branch", _context(division=2))
    _, branch_trust = connect(stub, emulator, "branch-trust", _context(division=2))
    _route(stub, "head", division_connections={2: "branch"})
    receipt = _tx("trust_receipt", 3000, division=2)

    _warm(other, "head", "branch", "branch-trust")  # poster b reads the firm's connections
    read_at = time.monotonic()
    _route(stub, "branch", trust_connection_id="branch-trust")  # on poster a
    answer = _post_or_refusal(other, "head", receipt)
    assert time.monotonic() - read_at < 1.0, "too slow to be inside poster b's cached second"

    if isinstance(answer, grpc.RpcError):
        assert error_details(answer).reason == "ROUTING_CHANGED", answer
        return
    wait_settled(stub, answer.posting.name)
    assert _spends(emulator, branch["tenant_id"]) == [], (
        f"trust money of division 2 posted under {answer.posting.connection_id}, the division's office organisation"
    )
    assert _spends(emulator, branch_trust["tenant_id"]) == [5000.0]


# -- a record in one organisation of a firm group --------------------------------------------------


def _waiting_on_a_lock(engine: sqlalchemy.Engine) -> bool:
    with engine.connect() as probe:
        count = probe.execute(
            sqlalchemy.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
        ).scalar_one()
    return bool(count)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_post_written_while_the_office_is_paired_is_not_also_posted_to_the_trust_organisation(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    """docs: "The check runs in the transaction that writes the post ... two posts of one record to
    two connections of the group (two posters, one of them not yet aware of a new routing) are
    written in turn and the second is refused." Poster b is writing a trust receipt under the
    office (not yet paired, so it is in no group and locks nothing) when the firm pairs the office
    with its trust organisation on poster a, and the caller's retry of the receipt arrives at
    poster a. The receipt must end up in one organisation, not in both."""
    emulator = emulator_factory()
    first, second = poster_factory(name="a"), poster_factory(name="b")
    stub, other = stub_for(first), stub_for(second)
    _, office = connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    receipt = _tx("trust_receipt", 4000)
    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    answers: list[Any] = []

    holder = link_row_held(engine, "office", int(TransactionKind.TRUST_RECEIPT), receipt.header.id)
    try:
        writing = threading.Thread(target=lambda: answers.append(_post_or_refusal(other, "office", receipt)))
        writing.start()
        wait_for(lambda: _waiting_on_a_lock(engine))  # poster b has checked and is writing
        # The pairing, then the caller's retry on poster a, while poster b's write is in flight.
        pairing = threading.Thread(target=lambda: _route(stub, "office", trust_connection_id="trust"))
        pairing.start()
        time.sleep(0.5)
        retry = threading.Thread(target=lambda: answers.append(_post_or_refusal(stub, "office", receipt)))
        retry.start()
        time.sleep(0.5)
    finally:
        holder.rollback()
        holder.close()
    for thread in (writing, pairing, retry):
        thread.join(30)
    engine.dispose()

    for answer in answers:
        if not isinstance(answer, grpc.RpcError):
            wait_settled(stub, answer.posting.name)
    in_office, in_trust = _spends(emulator, office["tenant_id"]), _spends(emulator, trust["tenant_id"])
    assert len(in_office) + len(in_trust) == 1, (
        f"the receipt is in the office organisation {in_office} and in the trust organisation {in_trust}; "
        f"answers: {[a.posting.connection_id if not isinstance(a, grpc.RpcError) else a.details() for a in answers]}"
    )


# -- an invoice paid from trust: two halves in two organisations -----------------------------------


def _settled_link(stub: poster_grpc.PosterServiceStub, name: str) -> Any:
    """The link once it is no longer pending; None when there is none."""

    def get() -> Any:
        try:
            return stub.GetLink(poster_pb2.GetLinkRequest(name=name)).link
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, err
            return None

    wait_for(lambda: (link := get()) is None or link.state != poster_pb2.LINK_STATE_PENDING)
    return get()


def _trust_bank_spends(emulator: EmulatorServer, tenant_id: str) -> list[Any]:
    return [t["Total"] for t in xero_objects(emulator, tenant_id, "BankTransactions") if t["Type"] == "SPEND"]


def test_an_invoice_paid_from_trust_linked_whole_before_the_pairing_is_not_spent_again_in_the_trust_organisation(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """docs: "A record linked under one connection of the group is never posted under another";
    the two halves are "the one exception". Before the pairing the office posts an invoice paid
    from trust whole (ledgers OFFICE_AND_TRUST): the spend from the trust bank and the payment are
    both in the office organisation. After the pairing the caller re-sends the same record (a
    retry, a re-sync). Its spend is already in Xero; the trust half must not spend it again in
    the trust organisation."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, office = connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    bill = _tx("client_bill")
    assert wait_settled(stub, _post(stub, "office", bill).posting.name).state == poster_pb2.LINK_STATE_LINKED
    paid = _tx("invoice_paid_from_trust")
    whole = _post(stub, "office", paid)
    assert wait_settled(stub, whole.posting.name).state == poster_pb2.LINK_STATE_LINKED
    spent_in_office = _trust_bank_spends(emulator, office["tenant_id"])
    assert spent_in_office, "the whole posting spends from the trust bank in the office organisation"
    _route(stub, "office", trust_connection_id="trust")

    again = _post_or_refusal(stub, "office", paid)

    if isinstance(again, grpc.RpcError):
        assert error_details(again).reason == "RECORD_LINKED_ELSEWHERE", again
    _settled_link(stub, f"connections/trust/links/invoice-paid-from-trust/{paid.header.id}")
    assert _trust_bank_spends(emulator, trust["tenant_id"]) == [], (
        f"the spend from trust is in the office organisation {spent_in_office} and again in the trust one"
    )


# -- a careless caller ----------------------------------------------------------------------------


def test_a_request_id_reused_for_another_record_is_refused_when_the_routing_sends_it_elsewhere(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """posting_decisions.py: "A request_id names one request (AIP-155): ... anything else under it
    is refused, so no record is silently dropped". The caller sends a client bill to the office
    under request_id r-1, then, reusing r-1 by mistake, a trust receipt to the same office; the
    routing sends the receipt to the trust organisation's connection. The caller addressed both
    to the office: the second must be refused ALREADY_EXISTS REQUEST_ID_REUSED, as it is when
    both stay under the office."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", _context())
    connect(stub, emulator, "trust", _context())
    _route(stub, "office", trust_connection_id="trust")
    bill = poster_pb2.PostTransactionRequest(
        connection_id="office", transaction=_tx("client_bill", 5000), request_id="r-1"
    )
    assert stub.PostTransaction(bill).posting.connection_id == "office"
    receipt = poster_pb2.PostTransactionRequest(
        connection_id="office", transaction=_tx("trust_receipt", 5000), request_id="r-1"
    )

    with pytest.raises(grpc.RpcError) as refused:
        stub.PostTransaction(receipt)

    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_details(refused.value).reason == "REQUEST_ID_REUSED"


def test_create_connection_names_a_bad_routing_field_by_its_path_in_the_request(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Bad input gets a clear error naming the field (AIP-193: a field path from the request
    message). CreateConnection's routing is connection.routing; a routing naming a connection
    that does not exist must name connection.routing.trust_connection_id, as its other fields are
    named connection.xero_base_url and connection.mapping_context.*, and create nothing."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    org = emulator.create_organisation("Org of office", region="AU")
    connection = poster_pb2.Connection(
        connection_id="office",
        xero_base_url=emulator.base_url,
        xero_tenant_id=org["tenant_id"],
        access_token="token",
        mapping_context=_context(),
        routing=organisations_pb2.ConnectionRouting(trust_connection_id="no-such-trust"),
    )

    with pytest.raises(grpc.RpcError) as refused:
        stub.CreateConnection(poster_pb2.CreateConnectionRequest(connection=connection))

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [v.field for v in error_details(refused.value).field_violations]
    assert fields == ["connection.routing.trust_connection_id"], fields
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="office"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


# -- the backfill on a routed connection -----------------------------------------------------------


def _before_connecting(transaction: transaction_pb2.Transaction, division: int) -> transaction_pb2.Transaction:
    """Dated before the demo connection's connected_at (2026-01-01), in `division`."""
    posted = datetime(2025, 12, 10, 9, 0, tzinfo=UTC)
    transaction.header.posted_at.CopyFrom(samples.timestamp(posted))
    date = transaction.header.transaction_date
    date.year, date.month, date.day = posted.year, posted.month, posted.day
    transaction.header.division_id = division
    return transaction


def test_a_backfill_whose_bills_a_division_routing_sent_elsewhere_reports_them_linked(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """docs/poster.md: a backfill is "recorded as one operation whose progress is read from the
    links". Started on the firm's connection, a division's open bill and its payment are posted
    under the division's connection (the routing) and link there. The backfill must then say DONE
    with both linked; it looks for their links under the connection it was started on, finds none,
    and counts nothing while calling itself done."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "head", _context(division=1))
    _, branch = connect(stub, emulator, "branch", _context(division=2))
    _route(stub, "head", division_connections={2: "branch"})
    bill = _before_connecting(samples.client_bill(8001), division=2)
    bill.client_bill.bill_number = "OLD-8001"
    payment = _before_connecting(
        transaction_pb2.Transaction(
            header=samples.header(80011),
            client_bill_payment=billing_pb2.ClientBillPayment(bill_id=8001, amount=samples.money(2000)),
        ),
        division=2,
    )
    due = bill.client_bill.totals.inclusive.units - 2000
    request = backfill_pb2.StartBackfillRequest(
        connection_id="head",
        bills=[
            backfill_pb2.BackfillBill(
                bill=bill, status=backfill_pb2.BILL_STATUS_OPEN, total_due=samples.money(due), payments=[payment]
            )
        ],
    )

    started = stub.StartBackfill(request).backfill
    assert started.accepted == 2, started
    wait_for(lambda: len(xero_objects(emulator, branch["tenant_id"], "Payments")) == 1)
    wait_for(
        lambda: (
            stub.GetLink(
                poster_pb2.GetLinkRequest(name=f"connections/branch/links/client-bill-payment/{payment.header.id}")
            ).link.state
            == poster_pb2.LINK_STATE_LINKED
        )
    )

    progress = stub.GetBackfill(backfill_pb2.GetBackfillRequest(name=started.name)).backfill
    assert (progress.state, progress.linked) == (backfill_pb2.BACKFILL_STATE_DONE, 2), progress


# -- firm groups are never split --------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_offices_paired_at_once_with_one_trust_organisation_keep_their_records_out_of_it(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database_url: str
) -> None:
    """docs: "The connections a routing ever joins ... form a firm group, and routing changes never
    split it", so a record linked under one connection of the group is refused under another. Two
    offices of the firm each posted a trust receipt to their own organisation; then each is paired
    with the firm's one trust organisation, by two operators at the same moment. Re-sending either
    receipt must not spend it again in the trust organisation: every one of the three is in one
    group, whichever pairing was written last."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    offices = {cid: connect(stub, emulator, cid, _context())[1] for cid in ("office-1", "office-2")}
    _, trust = connect(stub, emulator, "trust", _context())
    receipts = {"office-1": _tx("trust_receipt", 6000), "office-2": _tx("trust_receipt", 6100)}
    for cid, receipt in receipts.items():
        assert wait_settled(stub, _post(stub, cid, receipt).posting.name).state == poster_pb2.LINK_STATE_LINKED
    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    errors: list[BaseException] = []

    def pair(office: str) -> None:
        try:
            _route(stub, office, trust_connection_id="trust")
        except BaseException as exc:
            errors.append(exc)

    with engine.connect() as holder:
        # Another writer holds the trust row for a moment (any lifecycle change does): both
        # pairings have read the connections and wait for it.
        holder.execute(sqlalchemy.text("SELECT 1 FROM connection WHERE connection_id = 'trust' FOR UPDATE"))
        threads = [threading.Thread(target=pair, args=(o,)) for o in offices]
        for thread in threads:
            thread.start()
        wait_for(lambda: _waiting_on_a_lock(engine))
        time.sleep(0.5)
        holder.rollback()
    for thread in threads:
        thread.join(20)
    engine.dispose()
    assert not errors, errors

    answers = {cid: _post_or_refusal(stub, cid, receipt) for cid, receipt in receipts.items()}

    for answer in answers.values():
        if not isinstance(answer, grpc.RpcError):
            wait_settled(stub, answer.posting.name)
    for cid, tenant in offices.items():
        assert len(_spends(emulator, tenant["tenant_id"])) == 1, cid
    assert _spends(emulator, trust["tenant_id"]) == [], {
        cid: a.details() if isinstance(a, grpc.RpcError) else a.posting.connection_id for cid, a in answers.items()
    }


def test_the_trust_half_sent_again_straight_to_the_trust_connection_is_a_duplicate_not_linked_elsewhere(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """docs: a connection posted to directly with ledgers TRUST takes trust money; "the two halves
    of an invoice paid from trust are the one exception" to RECORD_LINKED_ELSEWHERE. The trust
    half of an invoice paid from trust is linked under the trust connection; a caller re-sends the
    same record straight to the trust connection. That is the trust half with its content: a
    DUPLICATE of it. It is refused instead, saying the record is linked under the office and
    "the routing now posts it under trust" (no routing was involved), and telling the caller to
    unlink it under the office, which would orphan both halves in Xero."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", _context())
    connect(stub, emulator, "trust", _context())
    _route(stub, "office", trust_connection_id="trust")
    assert wait_settled(stub, _post(stub, "office", _tx("client_bill")).posting.name).state == (
        poster_pb2.LINK_STATE_LINKED
    )
    paid = _tx("invoice_paid_from_trust")
    assert wait_settled(stub, _post(stub, "office", paid).posting.name).state == poster_pb2.LINK_STATE_LINKED

    again = _post_or_refusal(stub, "trust", paid)

    assert not isinstance(again, grpc.RpcError), again.details()
    assert again.outcome == poster_pb2.POST_OUTCOME_DUPLICATE
    assert again.posting.link.name == f"connections/trust/links/invoice-paid-from-trust/{paid.header.id}"


def test_a_poster_that_read_the_trust_connection_before_the_pairing_maps_its_half_with_the_trust_ledgers(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """docs: "An invoice paid from trust is mapped twice, each half with its own connection's
    context (its ledgers: TRUST gives only the spend, OFFICE only the payment)". Poster b read the
    trust connection (ledgers OFFICE_AND_TRUST) a moment before the firm paired it, and reads the
    office, already paired, just after. The routing it posts by is the current one, so the
    ROUTING_CHANGED check passes; but the trust half is mapped with the trust connection's old
    ledgers: spend and payment. The payment of an invoice that is not in the trust organisation
    waits there for good, and the office half waits for it: the invoice paid from trust never
    reaches Xero. Both halves must link, each holding only its own ledger."""
    emulator = emulator_factory()
    first, second = poster_factory(name="a"), poster_factory(name="b")
    stub, other = stub_for(first), stub_for(second)
    connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    assert wait_settled(stub, _post(stub, "office", _tx("client_bill")).posting.name).state == (
        poster_pb2.LINK_STATE_LINKED
    )
    paid = _tx("invoice_paid_from_trust")

    _warm(other, "trust")
    read_at = time.monotonic()
    _route(stub, "office", trust_connection_id="trust")
    _warm(other, "office")
    answer = _post_or_refusal(other, "office", paid)
    assert time.monotonic() - read_at < 1.0, "too slow to be inside poster b's cached second"

    if isinstance(answer, grpc.RpcError):
        assert error_details(answer).reason == "ROUTING_CHANGED", answer
        return
    trust_half = _settled_link(stub, f"connections/trust/links/invoice-paid-from-trust/{paid.header.id}")
    time.sleep(1.0)  # anything it was going to do, it has done
    trust_half = stub.GetLink(poster_pb2.GetLinkRequest(name=trust_half.name)).link
    office_half = stub.GetLink(poster_pb2.GetLinkRequest(name=answer.posting.link.name)).link
    assert (trust_half.state, office_half.state) == (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_LINKED), (
        trust_half.last_error.message,
        office_half.last_error.message,
    )
    assert xero_objects(emulator, trust["tenant_id"], "Payments") == []
