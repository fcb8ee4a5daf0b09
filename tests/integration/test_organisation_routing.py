"""Trust money in its own Xero organisation, and a division per organisation (extended profile):
a real poster, the real mapper and the emulator's organisations, on both registries."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
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
from tests.fixtures.routing import route as _route
from tests.fixtures.routing import sample as _tx


def _link(stub: poster_grpc.PosterServiceStub, connection_id: str, tx: Any) -> poster_pb2.Link | None:
    kind = tx.WhichOneof("kind")
    name = f"connections/{connection_id}/links/{kind.replace('_', '-')}/{tx.header.id}"
    try:
        link: poster_pb2.Link = stub.GetLink(poster_pb2.GetLinkRequest(name=name), timeout=10).link
        return link
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.NOT_FOUND
        return None


@pytest.fixture
def pair(poster_factory: PosterFactory, emulator_factory: EmulatorFactory) -> Any:
    """An office connection whose trust money is in its own organisation."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, office = connect(stub, emulator, "office", _context())
    _, trust = connect(stub, emulator, "trust", _context())
    _route(stub, "office", trust_connection_id="trust")
    return stub, emulator, office["tenant_id"], trust["tenant_id"]


def test_the_pairing_gives_each_connection_its_ledgers_and_clearing_gives_them_back(pair: Any) -> None:
    stub, _, _, _ = pair
    office = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="office")).connection
    trust = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="trust")).connection
    assert office.routing.trust_connection_id == "trust"
    assert office.mapping_context.ledgers == mapper_pb2.ORGANISATION_LEDGERS_OFFICE
    assert trust.mapping_context.ledgers == mapper_pb2.ORGANISATION_LEDGERS_TRUST

    _route(stub, "office")

    office = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="office")).connection
    trust = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="trust")).connection
    assert not office.HasField("routing") or not office.routing.trust_connection_id
    assert office.mapping_context.ledgers == mapper_pb2.ORGANISATION_LEDGERS_OFFICE_AND_TRUST
    assert trust.mapping_context.ledgers == mapper_pb2.ORGANISATION_LEDGERS_OFFICE_AND_TRUST


def test_trust_money_posted_to_the_office_connection_is_linked_in_the_trust_organisation(pair: Any) -> None:
    stub, emulator, office_tenant, trust_tenant = pair
    receipt = _tx("trust_receipt")

    posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=receipt))

    assert posted.posting.connection_id == "trust"
    assert wait_settled(stub, posted.posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert [t["Total"] for t in xero_objects(emulator, trust_tenant, "BankTransactions")] == [5000.0]
    assert xero_objects(emulator, office_tenant, "BankTransactions") == []
    assert _link(stub, "office", receipt) is None
    # The same content again, posted either way, is the same posting.
    again = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=receipt))
    assert again.outcome == poster_pb2.POST_OUTCOME_DUPLICATE
    assert again.posting.name == posted.posting.name


def test_an_invoice_paid_from_trust_is_spent_in_the_trust_organisation_then_paid_in_the_office_one(pair: Any) -> None:
    stub, emulator, office_tenant, trust_tenant = pair
    bill = _tx("client_bill")
    paid = _tx("invoice_paid_from_trust")
    assert paid.invoice_paid_from_trust.bill_id == bill.header.id

    bill_posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=bill))
    assert bill_posting.posting.connection_id == "office"
    assert wait_settled(stub, bill_posting.posting.name).state == poster_pb2.LINK_STATE_LINKED
    posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=paid))

    assert posted.outcome == poster_pb2.POST_OUTCOME_ACCEPTED
    assert posted.posting.connection_id == "office"
    assert wait_settled(stub, posted.posting.name).state == poster_pb2.LINK_STATE_LINKED
    trust_half = _link(stub, "trust", paid)
    assert trust_half is not None and trust_half.state == poster_pb2.LINK_STATE_LINKED
    spends = xero_objects(emulator, trust_tenant, "BankTransactions")
    assert [(s["Type"], s["Total"]) for s in spends] == [("SPEND", 400.0)]
    payments = xero_objects(emulator, office_tenant, "Payments")
    assert [p["Amount"] for p in payments] == [400.0]
    assert xero_objects(emulator, office_tenant, "BankTransactions") == []
    assert xero_objects(emulator, trust_tenant, "Payments") == []
    # The office half waited for the trust half: its audit trail says so.
    audit = stub.GetLink(poster_pb2.GetLinkRequest(name=posted.posting.link.name, include_audit=True)).link.audit
    assert any(e.to_state == poster_pb2.LINK_STATE_WAITING for e in audit)


def test_an_invoice_paid_from_trust_is_recorded_in_both_connections_or_in_neither(pair: Any) -> None:
    stub, _, _, _ = pair
    paid = _tx("invoice_paid_from_trust")
    first = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=paid))
    office_half = _link(stub, "office", paid)
    assert office_half is not None and office_half.state == poster_pb2.LINK_STATE_WAITING

    # Changed content while the first version is still in flight: refused, and neither half changes.
    changed = _tx("invoice_paid_from_trust")
    changed.invoice_paid_from_trust.amount.units = 41000
    trust_before = _link(stub, "trust", paid)
    with pytest.raises(grpc.RpcError):
        stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=changed))
    assert _link(stub, "trust", paid) == trust_before
    assert _link(stub, "office", paid) == office_half
    assert first.posting.connection_id == "office"


def test_a_division_posts_to_its_own_organisation(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, head = connect(stub, emulator, "head", _context(division=1))
    _, branch = connect(stub, emulator, "branch", _context(division=2))
    _route(stub, "head", division_connections={2: "branch"})

    ours = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="head", transaction=_tx("client_bill", 1000, division=1))
    )
    theirs = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="head", transaction=_tx("client_bill", 2000, division=2))
    )

    assert (ours.posting.connection_id, theirs.posting.connection_id) == ("head", "branch")
    for posting in (ours, theirs):
        assert wait_settled(stub, posting.posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert [i["InvoiceNumber"] for i in xero_objects(emulator, head["tenant_id"], "Invoices")] == ["INV-1001"]
    assert [i["InvoiceNumber"] for i in xero_objects(emulator, branch["tenant_id"], "Invoices")] == ["INV-2001"]
    # A batch splits the same way.
    batch = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(
            connection_id="head",
            transactions=[_tx("client_bill", 3000, division=2), _tx("client_bill", 4000, division=1)],
        )
    )
    assert [r.posting.connection_id for r in batch.results] == ["branch", "head"]


def test_a_record_linked_before_the_routing_changed_is_not_posted_again_elsewhere(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    _, office = connect(stub, emulator, "office", _context())
    connect(stub, emulator, "trust", _context())
    receipt = _tx("trust_receipt")
    before = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=receipt))
    assert wait_settled(stub, before.posting.name).state == poster_pb2.LINK_STATE_LINKED

    _route(stub, "office", trust_connection_id="trust")
    with pytest.raises(grpc.RpcError) as refused:
        stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=receipt))

    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(refused.value).reason == "RECORD_LINKED_ELSEWHERE"
    assert _link(stub, "trust", receipt) is None
    assert len(xero_objects(emulator, office["tenant_id"], "BankTransactions")) == 1


@pytest.mark.parametrize(
    ("routing", "field"),
    [
        ({"trust_connection_id": "nobody"}, "routing.trust_connection_id"),
        ({"trust_connection_id": "office"}, "routing.trust_connection_id"),
        ({"trust_connection_id": "plain"}, "routing.trust_connection_id"),
        ({"division_connections": {3: "trust"}}, "routing.division_connections[3]"),
        ({"division_connections": {0: "trust"}}, "routing.division_connections[0]"),
        ({"trust_connection_id": "bad id!"}, "routing.trust_connection_id"),
    ],
)
def test_a_routing_that_cannot_work_is_refused_naming_the_field_and_changes_nothing(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, routing: dict[str, Any], field: str
) -> None:
    emulator = emulator_factory()
    stub = stub_for(poster_factory())
    connect(stub, emulator, "office", _context())
    connect(stub, emulator, "trust", _context())
    connect(stub, emulator, "plain", _context(profile=mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE))

    with pytest.raises(grpc.RpcError) as refused:
        _route(stub, "office", **routing)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in error_details(refused.value).field_violations]
    office = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="office")).connection
    assert office.routing == organisations_pb2.ConnectionRouting()
    assert office.mapping_context.ledgers == mapper_pb2.ORGANISATION_LEDGERS_UNSPECIFIED


def test_an_unknown_connection_is_not_found(poster_factory: PosterFactory) -> None:
    stub = stub_for(poster_factory())
    with pytest.raises(grpc.RpcError) as refused:
        _route(stub, "nobody", trust_connection_id="trust")
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_waiting_office_half_is_released_when_its_trust_half_links(pair: Any) -> None:
    """The office half waits for the bill (this connection) and the trust half (the trust one):
    it is released only when both are linked, whichever links last."""
    stub, emulator, office_tenant, _ = pair
    paid = _tx("invoice_paid_from_trust")
    posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=paid))
    wait_for(lambda: (link := _link(stub, "trust", paid)) is not None and link.state == poster_pb2.LINK_STATE_LINKED)
    office_half = _link(stub, "office", paid)
    assert office_half is not None and office_half.state == poster_pb2.LINK_STATE_WAITING

    stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=_tx("client_bill")))

    assert wait_settled(stub, posted.posting.name).state == poster_pb2.LINK_STATE_LINKED
    assert len(xero_objects(emulator, office_tenant, "Payments")) == 1
