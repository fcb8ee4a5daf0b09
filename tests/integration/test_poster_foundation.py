"""The foundation slice: a client bill goes caller -> poster -> mapper -> poster -> Xero
(emulator), and the link is read back; an unsupported kind is answered, not posted."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled, xero_objects


def test_client_bill_is_posted_to_xero_and_its_link_read_back(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bill = samples.client_bill(2001)

    accepted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))

    assert accepted.posting.decision.supported
    assert accepted.posting.state in (poster_pb2.LINK_STATE_PENDING, poster_pb2.LINK_STATE_LINKED)
    settled = wait_settled(stub, accepted.posting.name)
    assert settled.state == poster_pb2.LINK_STATE_LINKED
    link = stub.GetLink(
        poster_pb2.GetLinkRequest(
            connection_id="firm-1",
            record=common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=2001),
            include_audit=True,
        )
    ).link
    assert link.state == poster_pb2.LINK_STATE_LINKED
    assert link.group == poster_pb2.LINK_GROUP_SALES_INVOICES
    [invoice_ref] = link.xero_objects
    assert invoice_ref.type == xero_pb2.OBJECT_TYPE_INVOICE
    assert invoice_ref.number == "INV-2001"
    assert [(a.event, a.to_state) for a in link.audit] == [
        ("accepted", poster_pb2.LINK_STATE_PENDING),
        ("posted", poster_pb2.LINK_STATE_LINKED),
    ]
    invoices = xero_objects(emulator, org["tenant_id"], "Invoices")
    [invoice] = invoices
    assert invoice["InvoiceID"] == invoice_ref.xero_id
    assert invoice["Status"] == "AUTHORISED"
    expected_total = sum(x.amount.units + x.tax.units for x in bill.client_bill.lines)
    assert Decimal(str(invoice["Total"])) * 100 == expected_total
    contacts = xero_objects(emulator, org["tenant_id"], "Contacts")
    assert [c["ContactNumber"] for c in contacts] == ["AS-501"]
    assert invoice["Contact"]["ContactID"] == contacts[0]["ContactID"]
    listed = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links
    assert [x.record.id for x in listed] == [2001]


def test_unsupported_general_journal_is_answered_with_the_reason_and_not_stored(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    journal = samples.sample_transactions(3000)["general_journal"]

    answer = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=journal))

    assert not answer.posting.decision.supported
    assert answer.posting.decision.reason_code == "EXTENDED_ONLY"
    assert "general journals" in answer.posting.decision.reason
    assert answer.posting.posting_id == ""
    assert answer.posting.state == poster_pb2.LINK_STATE_UNSPECIFIED
    assert not stub.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1")).postings
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetLink(
            poster_pb2.GetLinkRequest(
                connection_id="firm-1",
                record=common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_GENERAL_JOURNAL, id=journal.header.id),
            )
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert from_rpc_error(raised.value).reason == "LINK_NOT_FOUND"
    assert xero_objects(emulator, org["tenant_id"], "ManualJournals") == []
