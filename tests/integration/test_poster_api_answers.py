"""What a caller reads in the poster's answers: a refusal is a decision whose outcome is always
present, resource names carry the kind by name, and errors come in the order a caller fixes them
(authentication, then the resource, then the body). On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from google.protobuf import json_format
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import backfill_pb2, connection_pb2, correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2
from xerolink_common.errors import ErrorCode
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_common.reasons import Reason
from xerolink_mapper import samples

from tests.fixtures.commit_ack import AckLost
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
UNKNOWN_STATE = poster_pb2.LinkState.ValueType(99)
UNKNOWN_TYPE = objects_pb2.ObjectType.ValueType(99)


def _journal(record_id: int) -> transaction_pb2.Transaction:
    """A general journal: not posted in the compatible profile."""
    transaction = transaction_pb2.Transaction(header=samples.header(record_id))
    transaction.header.ClearField("participant")
    transaction.general_journal.CopyFrom(samples.sample_transactions(record_id)["general_journal"].general_journal)
    return transaction


def test_a_refusal_says_not_supported_in_json_with_its_reason(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)

    answer = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=_journal(6001)))

    assert answer.outcome == poster_pb2.POST_OUTCOME_NOT_SUPPORTED
    assert answer.decision.outcome == mapper_pb2.DECISION_OUTCOME_NOT_SUPPORTED
    assert answer.decision.reason_code == "EXTENDED_ONLY"
    assert answer.decision.reason
    as_json = json_format.MessageToDict(answer)
    assert as_json["outcome"] == "POST_OUTCOME_NOT_SUPPORTED"
    assert as_json["decision"]["outcome"] == "DECISION_OUTCOME_NOT_SUPPORTED"
    # v1 callers still read the decision inside the (unnamed, unstored) posting.
    assert not answer.posting.name and answer.posting.decision.reason_code == "EXTENDED_ONLY"


def test_accepted_and_repeated_posts_say_so(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    request = poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(6101))

    first = stub.PostTransaction(request)
    again = stub.PostTransaction(request)

    assert first.outcome == poster_pb2.POST_OUTCOME_ACCEPTED
    assert first.decision.outcome == mapper_pb2.DECISION_OUTCOME_SUPPORTED and first.decision.supported
    assert again.outcome == poster_pb2.POST_OUTCOME_DUPLICATE and again.posting.name == first.posting.name
    # Postings read later carry the explicit outcome too, also when stored before it existed.
    read = stub.GetPosting(poster_pb2.GetPostingRequest(name=first.posting.name)).posting
    assert read.decision.outcome == mapper_pb2.DECISION_OUTCOME_SUPPORTED


def test_batch_results_say_what_happened_to_each_item(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)

    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(
            connection_id="firm-1", transactions=[samples.client_bill(6201), _journal(6202)]
        )
    ).results

    outcomes = [r.post_outcome for r in results]
    assert outcomes == [poster_pb2.POST_OUTCOME_ACCEPTED, poster_pb2.POST_OUTCOME_NOT_SUPPORTED]
    assert results[1].decision.outcome == mapper_pb2.DECISION_OUTCOME_NOT_SUPPORTED
    assert results[1].decision.reason


def test_a_batch_whose_commit_went_unconfirmed_is_answered_that_it_may_be_stored(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's COMMIT goes through and the connection drops before its acknowledgement. The
    caller must not hear "an internal error occurred": the answer says the batch may be stored
    and how to learn which, and the same batch again finds every bill stored, once."""
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    request = poster_pb2.BatchPostTransactionsRequest(
        connection_id="firm-1", transactions=[samples.client_bill(6301), samples.client_bill(6302)]
    )
    ack = AckLost(monkeypatch)
    ack.arm()
    with pytest.raises(grpc.RpcError) as raised:
        stub.BatchPostTransactions(request)
    error = from_rpc_error(raised.value)

    assert ack.lost == 1
    assert (error.code, error.reason) == (ErrorCode.UNAVAILABLE, Reason.REGISTRY_COMMIT_UNCONFIRMED), error
    again = stub.BatchPostTransactions(request).results
    assert [r.post_outcome for r in again] == [poster_pb2.POST_OUTCOME_DUPLICATE] * 2


def test_link_names_carry_the_kind_by_name_and_old_numeric_names_still_resolve(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(1103))
    ).posting
    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED

    link = stub.GetLink(poster_pb2.GetLinkRequest(name="connections/firm-1/links/client-bill/1103")).link
    by_number = stub.GetLink(poster_pb2.GetLinkRequest(name="connections/firm-1/links/1/1103")).link

    assert link.name == "connections/firm-1/links/client-bill/1103"
    assert by_number == link
    assert link.record == common_pb2.RecordKey(kind=BILL, id=1103)


def test_the_lock_error_names_the_record_by_kind(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(1104))
    ).posting
    assert wait_settled(stub, posting.name).state == poster_pb2.LINK_STATE_LINKED
    changed = samples.client_bill(1104, [samples.line("Advice", "200", "GST", 10000, 1000)])

    with pytest.raises(grpc.RpcError) as raised:
        stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=changed))

    error = from_rpc_error(raised.value)
    assert error.reason == "LINK_LOCKED"
    assert "client-bill/1104 is linked" in error.message
    assert error.precondition_violations[0].subject == "connections/firm-1/links/client-bill/1104"


@pytest.mark.parametrize(
    "name",
    [
        "connections/firm-1/links/no-such-kind/1",
        "connections/firm-1/links/client-bill/0",
        "connections/firm-1/links/client-bill",
        "links/client-bill/1",
        "connections/firm-1/links/99/1",
        # An id beyond int64 names no record a request could carry.
        "connections/firm-1/links/client-bill/9223372036854775808",
        pytest.param("connections/firm-1/links/client-bill/" + "1" * 5000, id="5000-digit-id"),
        # A name has one spelling (AIP-122): lower-case kind, id without leading zeros, ASCII digits.
        "connections/firm-1/links/CLIENT-BILL/1002",
        "connections/firm-1/links/client-bill/01002",
        "connections/firm-1/links/01/1002",
        "connections/firm-1/links/client-bill/\uff11\uff10\uff10\uff11",
        "connections/firm-1/links/client-bill/\u00b2",
    ],
)
def test_a_malformed_link_name_is_refused_on_the_name(
    poster_factory: PosterFactory, emulator: EmulatorServer, name: str
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetLink(poster_pb2.GetLinkRequest(name=name))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in from_rpc_error(raised.value).field_violations] == ["name"]


def test_unlinking_by_a_malformed_link_name_is_refused_on_that_name(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    names = [
        "connections/firm-1/links/client-bill/1001",
        "connections/firm-1/links/client-bill/9223372036854775808",
        "connections/firm-1/links/client-bill/\uff11\uff10\uff10\uff11",
    ]

    with pytest.raises(grpc.RpcError) as raised:
        stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", names=names, validate_only=True))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in from_rpc_error(raised.value).field_violations] == ["names[1]", "names[2]"]


def test_a_link_name_of_another_connection_than_connection_id_is_refused(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    connect(stub, emulator, "firm-2")

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-2", name="connections/firm-1/links/client-bill/1001")
        )

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in from_rpc_error(raised.value).field_violations] == ["connection_id"]
    # The same connection in both is no contradiction: the link is looked up (and was never posted).
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-1", name="connections/firm-1/links/client-bill/1001")
        )
    assert from_rpc_error(raised.value).reason == "LINK_NOT_FOUND"


def test_an_unknown_connection_is_not_found_before_the_body_is_judged(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    invalid = transaction_pb2.Transaction()  # no kind, no header

    calls: dict[str, Callable[[], object]] = {
        "PostTransaction": lambda: stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="nobody", transaction=invalid, request_id="x" * 500)
        ),
        "BatchPostTransactions": lambda: stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(connection_id="nobody", transactions=[invalid] * 1001)
        ),
        "GetLink": lambda: stub.GetLink(poster_pb2.GetLinkRequest(connection_id="nobody")),
        "GetLink by name": lambda: stub.GetLink(
            poster_pb2.GetLinkRequest(name="connections/nobody/links/client-bill/1")
        ),
        "ListPostings": lambda: stub.ListPostings(
            poster_pb2.ListPostingsRequest(connection_id="nobody", state=UNKNOWN_STATE)
        ),
        "UnlinkLinks": lambda: stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="nobody")),
        "ListOrphans": lambda: stub.ListOrphans(
            unlink_pb2.ListOrphansRequest(connection_id="nobody", type=UNKNOWN_TYPE)
        ),
        "ListLinks": lambda: stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="nobody", state=UNKNOWN_STATE)),
        # No record, no intent: the body is wrong too, but the connection is judged first.
        "PlanCorrection": lambda: stub.PlanCorrection(correction_pb2.PlanCorrectionRequest(connection_id="nobody")),
        "ApplyCorrection": lambda: stub.ApplyCorrection(correction_pb2.ApplyCorrectionRequest(connection_id="nobody")),
        "GetCorrection": lambda: stub.GetCorrection(correction_pb2.GetCorrectionRequest(connection_id="nobody")),
        "RunPreflight": lambda: stub.RunPreflight(
            backfill_pb2.RunPreflightRequest(connection_id="nobody", division_ids=[-1])
        ),
        "RemapAccounts": lambda: stub.RemapAccounts(connection_pb2.RemapAccountsRequest(connection_id="nobody")),
    }
    for rpc, call in calls.items():
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND, rpc
        assert from_rpc_error(raised.value).reason == "CONNECTION_NOT_FOUND", rpc


def test_preflight_checks_that_pass_carry_no_reason_code(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    context = samples.demo_context()
    context.accounting_method = mapper_pb2.ACCOUNTING_METHOD_CASH
    connect(stub, emulator, "firm-1", context)

    checks = stub.RunPreflight(backfill_pb2.RunPreflightRequest(connection_id="firm-1", division_ids=[1])).checks

    passed = [c for c in checks if c.status == backfill_pb2.PREFLIGHT_STATUS_PASS]
    [failed] = [c for c in checks if c.status == backfill_pb2.PREFLIGHT_STATUS_FAIL]
    assert passed and all(c.reason_code == "" for c in passed)
    assert failed.reason_code == "CASH_ACCOUNTING"
