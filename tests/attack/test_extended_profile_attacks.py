"""Attacks on the extended profile's options (a trust organisation, a division per organisation,
reports by matter) from outside: a real poster, the real mapper and the emulator, on both
registries. Each test states a rule the product promises and fails while the rule is broken."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
import sqlalchemy
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.grpc_errors import from_rpc_error as error_details

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
from tests.fixtures.routing import post as _post
from tests.fixtures.routing import post_or_refusal as _post_or_refusal
from tests.fixtures.routing import route as _route
from tests.fixtures.routing import sample as _tx

MATTER = 7001  # samples.header's action_id


def _spends(emulator: EmulatorServer, tenant_id: str) -> list[float]:
    return [t["Total"] for t in xero_objects(emulator, tenant_id, "BankTransactions")]


# -- a record belongs in one organisation, whatever the routing became ------------------------------


def test_clearing_the_trust_routing_does_not_post_a_trust_receipt_a_second_time_in_the_office_organisation(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, office = connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    _route(stub, "office", trust_connection_id="trust")
    receipt = _tx("trust_receipt")
    first = _post(stub, "office", receipt)
    assert wait_settled(stub, first.posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert _spends(emulator, trust["tenant_id"]) == [5000.0]

    _route(stub, "office")  # the firm clears the pairing
    again = _post_or_refusal(stub, "office", receipt)

    if isinstance(again, grpc.RpcError):
        assert error_details(again).reason == "RECORD_LINKED_ELSEWHERE"
    else:
        wait_settled(stub, again.posting.name)
    # The receipt is in the trust organisation; it must not also be in the office one.
    assert _spends(emulator, office["tenant_id"]) == []


def test_moving_a_division_to_another_connection_does_not_post_its_records_a_second_time(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "head", _context(division=1))
    _, old_branch = connect(stub, emulator, "branch", _context(division=2))
    _, new_branch = connect(stub, emulator, "branch-new", _context(division=2))
    _route(stub, "head", division_connections={2: "branch"})
    bill = _tx("client_bill", 2000)
    bill.header.division_id = 2
    first = _post(stub, "head", bill)
    assert first.posting.connection_id == "branch"
    assert wait_settled(stub, first.posting.name).state == poster_pb2.LINK_STATE_LINKED

    _route(stub, "head", division_connections={2: "branch-new"})  # the division moves organisation
    again = _post_or_refusal(stub, "head", bill)

    if isinstance(again, grpc.RpcError):
        assert error_details(again).reason == "RECORD_LINKED_ELSEWHERE"
    else:
        wait_settled(stub, again.posting.name)
    assert len(xero_objects(emulator, old_branch["tenant_id"], "Invoices")) == 1
    assert xero_objects(emulator, new_branch["tenant_id"], "Invoices") == []


# -- reports by matter -----------------------------------------------------------------------------


def test_an_option_renamed_in_xero_is_still_the_matters_option(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """organisations.proto: the option "is known by it [its TrackingOptionID], whatever its name
    becomes in Xero". The firm renames the matter's option to the client's name in Xero; the
    matter's next bill must still reach Xero carrying it."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator, "firm-1", _context(tracking=True))
    first = _post(stub, "firm-1", _tx("client_bill", 1000))
    assert wait_settled(stub, first.posting.name).state == poster_pb2.LINK_STATE_LINKED
    tenant = emulator.state.organisation(org["tenant_id"])
    with tenant.lock:
        [category] = [c for c in tenant.tracking_categories.values() if c["Name"] == "Matter"]
        [option] = [o for o in category["Options"] if o["Name"] == str(MATTER)]
        option["Name"] = "Smith v Jones"
        option_id = option["TrackingOptionID"]

    second = _post(stub, "firm-1", _tx("client_bill", 3000))
    settled = wait_settled(stub, second.posting.name)

    why = stub.GetLink(poster_pb2.GetLinkRequest(name=second.posting.link.name)).link.last_error
    assert settled.state == poster_pb2.LINK_STATE_LINKED, why
    invoices = xero_objects(emulator, org["tenant_id"], "Invoices")
    [latest] = [i for i in invoices if i["InvoiceNumber"] == "INV-3001"]
    assert all(t["TrackingOptionID"] == option_id for line in latest["LineItems"] for t in line["Tracking"])


def test_a_second_poster_that_has_not_seen_the_pairing_yet_does_not_post_a_record_in_both_organisations(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """docs/matters-and-organisations.md: "A record linked under one connection of a firm's routing
    is never posted under another"; another poster sees a routing change "within a second". Two
    posters serve the firm; the caller retries a trust receipt on the other one within that second."""
    emulator = emulator_factory()
    first_poster, second_poster = poster_factory(name="a"), poster_factory(name="b")
    stub, other = stub_for(first_poster), stub_for(second_poster)
    _, office = connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    receipt = _tx("trust_receipt")
    # The second poster has read the office connection (any call naming it) just before the pairing.
    other.ListMatterOptions(organisations_pb2.ListMatterOptionsRequest(connection_id="office"))
    _route(stub, "office", trust_connection_id="trust")
    posted = _post(stub, "office", receipt)
    assert posted.posting.connection_id == "trust"

    retried = _post_or_refusal(other, "office", receipt)

    for answer in (posted, retried):
        if not isinstance(answer, grpc.RpcError):
            wait_settled(stub, answer.posting.name)
    assert _spends(emulator, trust["tenant_id"]) == [5000.0]
    assert _spends(emulator, office["tenant_id"]) == []


def test_close_matter_is_refused_while_a_posting_carrying_the_matter_on_a_line_is_pending(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """docs/matters-and-organisations.md: CloseMatter answers MATTER_HAS_PENDING_POSTINGS "while
    postings of the matter are not yet in Xero". A trust journal moves money from matter 7001 to
    matter 7002: its credit line is matter 7002's (tracked_action_id)."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, "firm-1", _context(tracking=True))
    receiving = _tx("client_bill", 1000)
    receiving.header.action_id = 7002
    assert wait_settled(stub, _post(stub, "firm-1", receiving).posting.name).state == poster_pb2.LINK_STATE_LINKED
    refusing = emulator.faults.add(FaultRule("error", status=503, path_contains="ManualJournals"))
    journal = _tx("trust_journal", 2000)
    assert journal.trust_journal.to_action_id == 7002 and journal.header.action_id != 7002
    pending = _post(stub, "firm-1", journal)
    wait_for(lambda: refusing.hits > 0)
    link = stub.GetLink(poster_pb2.GetLinkRequest(name=pending.posting.link.name)).link
    assert link.state == poster_pb2.LINK_STATE_PENDING

    try:
        closed = stub.CloseMatter(organisations_pb2.CloseMatterRequest(connection_id="firm-1", action_id=7002))
    except grpc.RpcError as err:
        assert error_details(err).reason == "MATTER_HAS_PENDING_POSTINGS"
    else:
        pytest.fail(f"matter 7002 closed while its trust journal is pending: {closed}")


def test_closing_a_matter_while_its_line_is_on_the_way_to_xero_does_not_fail_the_posting(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """service_layer/matter_options.py: the close "runs under the worker's matters lock: no job of
    the tenant is then between finding the option ACTIVE and sending lines that carry it". A slow
    Xero holds the trust journal's create call; the firm closes the receiving matter meanwhile."""
    stub = stub_for(poster_factory())
    connect(stub, emulator, "firm-1", _context(tracking=True))
    receiving = _tx("client_bill", 1000)
    receiving.header.action_id = 7002
    assert wait_settled(stub, _post(stub, "firm-1", receiving).posting.name).state == poster_pb2.LINK_STATE_LINKED
    slow = emulator.faults.add(
        FaultRule("latency", seconds=2.0, count=1, methods=("PUT",), path_contains="ManualJournals")
    )
    journal = _tx("trust_journal", 2000)
    posted = _post(stub, "firm-1", journal)
    wait_for(lambda: slow.hits > 0)

    try:
        stub.CloseMatter(organisations_pb2.CloseMatterRequest(connection_id="firm-1", action_id=7002), timeout=20)
    except grpc.RpcError as err:
        assert error_details(err).reason == "MATTER_HAS_PENDING_POSTINGS"

    settled = wait_settled(stub, posted.posting.name)
    why = stub.GetLink(poster_pb2.GetLinkRequest(name=posted.posting.link.name)).link.last_error
    assert settled.state == poster_pb2.LINK_STATE_LINKED, why


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_pairings_of_one_office_at_once_leave_no_trust_ledgers_on_a_connection_nobody_names(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    """Two operators pair the office with a trust organisation at the same moment, each naming
    another one. Whichever wins, the loser must be back to OFFICE_AND_TRUST (organisations.proto:
    "clearing it sets both back"), or its own postings of office kinds are refused for good."""
    stub = stub_for(poster_factory())
    for cid in ("office", "t1", "t2"):
        connect(stub, emulator, cid, _context())
    engine = sqlalchemy.create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    errors: list[BaseException] = []

    def pair(trust: str) -> None:
        try:
            _route(stub, "office", trust_connection_id=trust)
        except BaseException as exc:
            errors.append(exc)

    with engine.connect() as holder:
        # Another writer holds the office row for a moment (any lifecycle change does): both
        # updates have read the connections and wait for the row.
        holder.execute(sqlalchemy.text("SELECT 1 FROM connection WHERE connection_id = 'office' FOR UPDATE"))
        threads = [threading.Thread(target=pair, args=(t,)) for t in ("t1", "t2")]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        holder.rollback()
    for thread in threads:
        thread.join(20)
    engine.dispose()

    assert not errors, errors
    office = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="office")).connection
    named = office.routing.trust_connection_id
    assert named in ("t1", "t2")
    loser = "t2" if named == "t1" else "t1"
    left = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id=loser)).connection
    assert left.mapping_context.ledgers != mapper_pb2.ORGANISATION_LEDGERS_TRUST, (named, loser)


@pytest.mark.parametrize(
    ("second", "routing"),
    [
        # The division's connection becomes another office's trust organisation.
        ("office-3", {"trust_connection_id": "branch"}),
        # The division's connection starts routing divisions itself (two hops).
        ("branch", {"division_connections": {3: "office-3"}}),
    ],
)
def test_a_routing_refused_in_one_order_is_refused_in_the_other(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, second: str, routing: dict[str, Any]
) -> None:
    """routing_changes.py refuses naming a trust organisation's connection as a division's, and a
    division's connection that routes divisions ("one hop, no cycles"). The same pair of routings
    saved the other way round must be refused too, and change nothing."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "head", _context(division=1))
    connect(stub, emulator, "branch", _context(division=2))
    connect(stub, emulator, "office-3", _context(division=3))
    _route(stub, "head", division_connections={2: "branch"})

    with pytest.raises(grpc.RpcError) as refused:
        _route(stub, second, **routing)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_details(refused.value).reason == "ROUTING_INVALID"
    branch = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="branch")).connection
    assert branch.mapping_context.ledgers != mapper_pb2.ORGANISATION_LEDGERS_TRUST


def test_a_trust_organisation_of_another_division_is_refused_rather_than_every_trust_posting(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """A division's connection must be linked to the division (routing_changes.py checks it); a
    trust organisation's connection is not checked. Linked to another division, the mapper then
    answers every trust posting routed to it OTHER_DIVISION: the routing cannot work, so it is bad
    input and must be refused naming the field."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", _context(division=1))
    connect(stub, emulator, "trust", _context(division=5))

    try:
        _route(stub, "office", trust_connection_id="trust")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "routing.trust_connection_id" in [v.field for v in error_details(err).field_violations]
        return
    receipt = _tx("trust_receipt")
    receipt.header.division_id = 1
    answer = _post(stub, "office", receipt)
    assert answer.outcome != poster_pb2.POST_OUTCOME_NOT_SUPPORTED, answer.decision.reason_code


def test_a_payment_from_trust_whose_trust_half_xero_refused_says_so_on_the_posting_the_caller_got(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """The answer to an invoice paid from trust is the office half's posting; the trust half
    is another link. When Xero refuses the trust half, the office half waits for good, and its
    error must say what it waits for: the trust half under the trust connection, refused."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    _route(stub, "office", trust_connection_id="trust")
    bill = _tx("client_bill")
    assert wait_settled(stub, _post(stub, "office", bill).posting.name).state == poster_pb2.LINK_STATE_LINKED
    tenant = emulator.state.organisation(trust["tenant_id"])
    with tenant.lock:  # the firm archived the trust bank account in Xero
        for account in tenant.accounts.values():
            if account["Type"] == "BANK":
                account["Status"] = "ARCHIVED"
    paid = _tx("invoice_paid_from_trust")
    answer = _post(stub, "office", paid)
    trust_half = f"connections/trust/links/invoice-paid-from-trust/{paid.header.id}"
    wait_for(
        lambda: stub.GetLink(poster_pb2.GetLinkRequest(name=trust_half)).link.state == poster_pb2.LINK_STATE_FAILED
    )

    office_half = stub.GetLink(poster_pb2.GetLinkRequest(name=answer.posting.link.name)).link

    assert office_half.state == poster_pb2.LINK_STATE_WAITING
    said = office_half.last_error.message
    # It waits on what looks like itself ("invoice-paid-from-trust/N"), "posted automatically".
    assert "connection trust" in said or "connections/trust" in said, said
    assert "fail" in said or "refused" in said, said


def test_a_retried_request_replays_its_first_answer_after_the_routing_changed(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """A request_id names one request (AIP-155): "the same record with the same content replays
    the first answer" (posting_decisions.py). The caller's retry of a trust receipt arrives after
    the firm paired the office with its trust organisation."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", _context())
    connect(stub, emulator, "trust", _context())
    receipt = _tx("trust_receipt")
    request = poster_pb2.PostTransactionRequest(connection_id="office", transaction=receipt, request_id="req-1")
    first = stub.PostTransaction(request)
    assert wait_settled(stub, first.posting.name).state == poster_pb2.LINK_STATE_LINKED
    _route(stub, "office", trust_connection_id="trust")

    retried = stub.PostTransaction(request)

    assert retried.posting.name == first.posting.name
    assert retried.outcome == poster_pb2.POST_OUTCOME_DUPLICATE


def test_a_record_linked_before_the_pairing_is_not_posted_again_straight_to_the_trust_connection(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Posting trust money straight to the trust connection is allowed (docs: "A connection posted
    to directly, with ledgers TRUST ..."). A trust receipt linked under the office before the
    pairing is refused RECORD_LINKED_ELSEWHERE through the office; straight to the trust
    connection it must be refused too, not posted in a second organisation."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, office = connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    receipt = _tx("trust_receipt")
    first = _post(stub, "office", receipt)
    assert wait_settled(stub, first.posting.name).state == poster_pb2.LINK_STATE_LINKED
    _route(stub, "office", trust_connection_id="trust")

    again = _post_or_refusal(stub, "trust", receipt)

    if isinstance(again, grpc.RpcError):
        assert error_details(again).reason == "RECORD_LINKED_ELSEWHERE"
    else:
        wait_settled(stub, again.posting.name)
    assert _spends(emulator, office["tenant_id"]) == [5000.0]
    assert _spends(emulator, trust["tenant_id"]) == []
