"""Post (single, batch, stream), idempotent reposts, request ids, locking and watching, on SQLite
and on PostgreSQL."""

from __future__ import annotations

import threading

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled, xero_objects

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL


def payment_key(record_id: int) -> common_pb2.RecordKey:
    return common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT, id=record_id)


def _post(
    stub: poster_grpc.PosterServiceStub, transaction: transaction_pb2.Transaction, connection_id: str = "firm-1"
) -> poster_pb2.Posting:
    response = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id=connection_id, transaction=transaction)
    )
    posting: poster_pb2.Posting = response.posting
    return posting


def test_same_content_again_returns_the_existing_link_and_creates_nothing_new_in_xero(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    first = _post(stub, samples.client_bill(10))
    assert wait_settled(stub, first.name).state == poster_pb2.LINK_STATE_LINKED

    again = _post(stub, samples.client_bill(10))

    assert again.duplicate
    assert again.posting_id == first.posting_id
    assert again.state == poster_pb2.LINK_STATE_LINKED
    assert again.content_fingerprint == first.content_fingerprint
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 1
    assert len(stub.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1")).postings) == 1


def test_changed_content_for_a_linked_record_is_refused_as_locked(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    assert wait_settled(stub, _post(stub, samples.client_bill(11)).name).state == poster_pb2.LINK_STATE_LINKED
    changed = samples.client_bill(11, [samples.line("Advice", "200", "GST", 10000, 1000)])

    with pytest.raises(grpc.RpcError) as raised:
        _post(stub, changed)

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = from_rpc_error(raised.value)
    assert error.reason == "LINK_LOCKED"
    assert "locked - unlink first" in error.message
    assert error.precondition_violations[0].type == "LINK_LOCKED"
    link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=11))
    ).link
    assert link.state == poster_pb2.LINK_STATE_LINKED
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 1


def test_watch_streams_each_state_change_until_linked(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    # Post the payment first: it waits for its bill, then is released and linked.
    payment = samples.sample_transactions(100)["client_bill_payment"]
    posting = _post(stub, payment)
    assert posting.state == poster_pb2.LINK_STATE_WAITING
    watch = stub.WatchPosting(poster_pb2.WatchPostingRequest(name=posting.name), timeout=20)
    seen = [next(watch).posting.state]
    _post(stub, samples.sample_transactions(100)["client_bill"])
    seen += [update.posting.state for update in watch]
    assert seen[0] == poster_pb2.LINK_STATE_WAITING
    assert seen[-1] == poster_pb2.LINK_STATE_LINKED
    assert len(seen) == len(set(seen))  # one message per change, no repeats
    link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=payment_key(payment.header.id), include_audit=True)
    ).link
    assert [a.event for a in link.audit] == ["blocked", "released", "posted"]


def test_batch_and_stream_post_each_item_with_its_own_outcome(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    journal = samples.sample_transactions(900)["general_journal"]
    no_header = samples.client_bill(31)
    no_header.ClearField("header")

    batch = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(
            connection_id="firm-1", transactions=[samples.client_bill(30), journal, no_header]
        )
    ).results

    assert [r.index for r in batch] == [0, 1, 2]
    assert batch[0].posting.decision.supported and batch[0].posting.posting_id
    assert batch[1].posting.decision.reason_code == "EXTENDED_ONLY" and not batch[1].posting.posting_id
    assert batch[2].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert batch[2].error.field_violations[0].field == "transactions[2].header"

    requests = [
        poster_pb2.StreamPostTransactionsRequest(connection_id="firm-1", transactions=[samples.client_bill(40 + i)])
        for i in range(3)
    ]
    streamed = [r.results[0].posting for r in stub.StreamPostTransactions(iter(requests))]
    assert [p.record.id for p in streamed] == [40, 41, 42]
    for posting in [batch[0].posting, *streamed]:
        assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    numbers = sorted(i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices"))
    assert numbers == ["INV-30", "INV-40", "INV-41", "INV-42"]


def test_bad_requests_are_refused_with_field_details_and_change_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    with pytest.raises(grpc.RpcError) as unknown:
        _post(stub, samples.client_bill(50), connection_id="nobody")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert from_rpc_error(unknown.value).reason == "CONNECTION_NOT_FOUND"

    empty_kind = samples.client_bill(51)
    empty_kind.ClearField("client_bill")
    with pytest.raises(grpc.RpcError) as invalid:
        _post(stub, empty_kind)
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in from_rpc_error(invalid.value).field_violations] == ["transaction.kind"]

    unbalanced = samples.client_bill(52)
    unbalanced.client_bill.totals.inclusive.units += 1
    with pytest.raises(grpc.RpcError) as rejected:
        _post(stub, unbalanced)
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert from_rpc_error(rejected.value).field_violations
    assert not stub.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1")).postings


def _post_as(
    stub: poster_grpc.PosterServiceStub, transaction: transaction_pb2.Transaction, request_id: str
) -> poster_pb2.Posting:
    response = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=transaction, request_id=request_id)
    )
    posting: poster_pb2.Posting = response.posting
    return posting


def _link_of(stub: poster_grpc.PosterServiceStub, record_id: int) -> poster_pb2.Link:
    request = poster_pb2.GetLinkRequest(
        connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=record_id), include_audit=True
    )
    link: poster_pb2.Link = stub.GetLink(request).link
    return link


def _postings(stub: poster_grpc.PosterServiceStub) -> list[poster_pb2.Posting]:
    return list(stub.ListPostings(poster_pb2.ListPostingsRequest(connection_id="firm-1")).postings)


def _assert_request_id_reused(error: grpc.RpcError, first_record_id: int) -> None:
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    details = from_rpc_error(error)
    assert details.reason == "REQUEST_ID_REUSED"
    assert [v.field for v in details.field_violations] == ["request_id"]
    assert f"links/client-bill/{first_record_id}" in details.field_violations[0].description


def test_a_request_id_used_for_one_bill_is_refused_for_another_and_changes_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    first = _post_as(stub, samples.client_bill(5501), "req-5501")
    assert wait_settled(stub, first.name).state == poster_pb2.LINK_STATE_LINKED
    before = _link_of(stub, 5501)

    with pytest.raises(grpc.RpcError) as raised:
        _post_as(stub, samples.client_bill(5502), "req-5501")

    _assert_request_id_reused(raised.value, 5501)
    assert _link_of(stub, 5501) == before
    with pytest.raises(grpc.RpcError) as missing:
        _link_of(stub, 5502)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert [p.posting_id for p in _postings(stub)] == [first.posting_id]
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 1

    # 5502 under its own request_id is posted and linked; each request repeated replays its answer.
    second = _post_as(stub, samples.client_bill(5502), "req-5502")
    assert not second.duplicate and second.record.id == 5502
    assert wait_settled(stub, second.name).state == poster_pb2.LINK_STATE_LINKED
    for request_id, record_id, posting in [("req-5501", 5501, first), ("req-5502", 5502, second)]:
        again = _post_as(stub, samples.client_bill(record_id), request_id)
        assert again.duplicate
        assert again.posting_id == posting.posting_id
        assert again.record.id == record_id
    numbers = sorted(i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices"))
    assert numbers == ["INV-5501", "INV-5502"]
    assert len(_postings(stub)) == 2


def test_a_request_id_reused_for_changed_content_of_the_same_bill_is_refused(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    first = _post_as(stub, samples.client_bill(5511), "req-5511")
    changed = samples.client_bill(5511, [samples.line("Advice", "200", "GST", 10000, 1000)])

    with pytest.raises(grpc.RpcError) as raised:
        _post_as(stub, changed, "req-5511")

    _assert_request_id_reused(raised.value, 5511)
    assert "other content" in from_rpc_error(raised.value).message
    assert _link_of(stub, 5511).content_fingerprint == first.content_fingerprint
    assert [p.posting_id for p in _postings(stub)] == [first.posting_id]


def test_a_used_request_id_is_refused_for_a_transaction_that_is_not_supported(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    first = _post_as(stub, samples.client_bill(5521), "req-5521")
    journal = samples.sample_transactions(5600)["general_journal"]

    with pytest.raises(grpc.RpcError) as raised:
        _post_as(stub, journal, "req-5521")

    _assert_request_id_reused(raised.value, 5521)
    assert [p.posting_id for p in _postings(stub)] == [first.posting_id]


def test_concurrent_posts_of_two_bills_under_one_request_id_accept_exactly_one(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    barrier = threading.Barrier(2)
    answers: dict[int, poster_pb2.Posting | grpc.RpcError] = {}

    def post(record_id: int) -> None:
        barrier.wait()
        try:
            answers[record_id] = _post_as(stub, samples.client_bill(record_id), "req-shared")
        except grpc.RpcError as err:
            answers[record_id] = err

    threads = [threading.Thread(target=post, args=(record_id,)) for record_id in (5531, 5532)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    accepted = {r: a for r, a in answers.items() if isinstance(a, poster_pb2.Posting)}
    refused = {r: a for r, a in answers.items() if isinstance(a, grpc.RpcError)}
    assert len(accepted) == 1 and len(refused) == 1, answers
    (winner, posting), (_, error) = next(iter(accepted.items())), next(iter(refused.items()))
    _assert_request_id_reused(error, winner)
    assert [p.posting_id for p in _postings(stub)] == [posting.posting_id]
