"""Attacks on how an unconfirmed COMMIT is settled since e078bc9, d52a25c and e3171b1: a correction's
claim and a refresh claim taken again or read back by their attempt's name, ConnectOrganisation's
write run again (a row with this request's sealed tokens counting as its own write), and every RPC
ending in CommitMayHaveGoneThrough answered UNAVAILABLE / REGISTRY_COMMIT_UNCONFIRMED, "send the same
request again: it is answered with what was stored".

The acknowledgement of a COMMIT is lost after the real commit, as psycopg reports a connection that
dropped there (tests/fixtures/commit_ack.py). Where another request's write falls between the lost
acknowledgement and ConnectOrganisation's re-run (the re-run needs a new connection to the registry
while other requests go on), that request is sent, over gRPC, at that moment."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import connection_pb2, correction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_common.reasons import Reason
from xerolink_mapper import samples
from xerolink_poster.adapters.database import CommitMayHaveGoneThrough
from xerolink_poster.service_layer import connection_lifecycle, connections, correcting
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper
from xerolink_poster.service_layer.connection_tokens import ConnectionTokens
from xerolink_poster.service_layer.correcting import Corrections
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.commit_ack import ACK_LOST, AckLost, LoseAcks, answer_or_error, described
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_settled,
    xero_objects,
)
from tests.integration.connection_helpers import (
    PosterMaker,
    TokenCalls,
    connect_request,
    new_code,
    posters,
    refresh_all,
    stub,
    write_apps,
)

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
CONNECTED = connection_pb2.CONNECTION_STATE_CONNECTED
DISCONNECTED = connection_pb2.CONNECTION_STATE_DISCONNECTED
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CONNECT_WRITE = "ConnectionKeeper.connect.<locals>.write"


class MeanwhileAfterConnectWrite:
    """ConnectOrganisation's first write commits, its acknowledgement is lost, and `meanwhile` runs
    (another request, answered) before the re-run that d52a25c makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], Any]) -> None:
        self.answer: Any = None
        self.fired = False
        real = run_in_transaction

        def run(db: Any, work: Callable[[UnitOfWork], Any], attempts: int = 5) -> Any:
            result = real(db, work, attempts)
            if getattr(work, "__qualname__", "") == CONNECT_WRITE and not self.fired:
                self.fired = True
                self.answer = answer_or_error(meanwhile)
                raise CommitMayHaveGoneThrough("COMMIT", {}, Exception(ACK_LOST))
            return result

        monkeypatch.setattr(f"{connection_lifecycle.__name__}.run_in_transaction", run)


def _connection(stub_: poster_grpc.PosterServiceStub, connection_id: str = "firm-1") -> poster_pb2.Connection:
    found: poster_pb2.Connection = stub_.GetConnection(
        poster_pb2.GetConnectionRequest(connection_id=connection_id)
    ).connection
    return found


def _post(stub_: poster_grpc.PosterServiceStub, bill_id: int) -> poster_pb2.Posting:
    posting: poster_pb2.Posting = stub_.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(bill_id))
    ).posting
    return posting


@pytest.fixture
def lifecycle(database_url: str, mapper_target: str) -> Iterator[PosterMaker]:
    with posters(database_url, mapper_target) as make:
        yield make


# -- ConnectOrganisation's re-run (d52a25c) ------------------------------------------------------


def test_a_connect_rerun_never_undoes_a_later_connect_to_another_organisation(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connect A (organisation X) commits, its acknowledgement lost. Before its re-run, connect B
    moves the connection to organisation Y and is answered "replaced X" (so A's write came first).
    The re-run finds B's tokens, not its own, and writes X again over B: the connection (and its
    queued work) goes back to X, which B's caller was told it left. A bill posted afterwards, for
    Y, lands in X: the wrong client's books."""
    emulator = emulator_factory()
    org_x = emulator.create_organisation("Xavier Legal", region="AU")
    org_y = emulator.create_organisation("Yarra Legal", region="AU", client_id=org_x["client_id"])
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org_x, emulator)))
    request_b = connect_request("firm-1", new_code(emulator, org_x), emulator, xero_tenant_id=org_y["tenant_id"])
    between = MeanwhileAfterConnectWrite(monkeypatch, lambda: stub_.ConnectOrganisation(request_b))
    request_a = connect_request("firm-1", new_code(emulator, org_x), emulator, xero_tenant_id=org_x["tenant_id"])
    answer_a = answer_or_error(lambda: stub_.ConnectOrganisation(request_a))
    answer_b = between.answer

    assert isinstance(answer_b, connection_pb2.ConnectOrganisationResponse), answer_b
    assert answer_b.replaced_organisation and answer_b.previous_tenant_id == org_x["tenant_id"], answer_b
    # B's caller, told the firm is in Y now, posts a bill.
    assert wait_settled(stub_, _post(stub_, 8101).name, timeout=20).state == poster_pb2.LINK_STATE_LINKED
    in_x = len(xero_objects(emulator, org_x["tenant_id"], "Invoices"))
    in_y = len(xero_objects(emulator, org_y["tenant_id"], "Invoices"))
    stored = _connection(stub_).xero_tenant_id
    assert (stored, in_x, in_y) == (org_y["tenant_id"], 0, 1), (
        f"B, answered after A's write was stored, moved the connection to Y; A's re-run put it back to "
        f"{'X' if stored == org_x['tenant_id'] else stored} and the bill went to X ({in_x}) not Y ({in_y}). "
        f"A was answered {answer_a}"
    )


def test_a_connect_rerun_never_reconnects_a_connection_disconnected_after_its_write(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connect's write commits unacknowledged; DisconnectConnection then disconnects it (at
    Xero too) and answers DISCONNECTED. The re-run finds no tokens of its own and connects the
    connection again, with tokens of a Xero connection that no longer exists."""
    emulator = emulator_factory()
    org = emulator.create_organisation("Dropped Legal", region="AU")
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    between = MeanwhileAfterConnectWrite(
        monkeypatch,
        lambda: stub_.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-1")),
    )
    answer = answer_or_error(
        lambda: stub_.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    )

    assert isinstance(between.answer, connection_pb2.DisconnectConnectionResponse), between.answer
    assert between.answer.status.state == DISCONNECTED
    state = _connection(stub_).status.state
    assert state == DISCONNECTED, (
        f"the disconnection, answered after the connect's write was stored, was undone by its re-run: "
        f"{connection_pb2.ConnectionState.Name(state)}; the connect was answered {answer}"
    )


@SQLITE_ONLY
def test_a_connect_rerun_never_puts_back_a_refresh_token_a_later_refresh_rotated(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connect's write commits unacknowledged; a RefreshConnection then exchanges its refresh
    token (Xero rotates it) and stores the successor. The re-run writes the connect's tokens back,
    the rotated-out refresh token among them: once Xero's grace period is over (here at once),
    the next refresh is invalid_grant and the connection NEEDS_RECONNECT."""
    emulator = emulator_factory(refresh_grace_minutes=0.0)
    org = emulator.create_organisation("Rotated Legal", region="AU")
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    refresh = connection_pb2.RefreshConnectionRequest(connection_id="firm-1")
    between = MeanwhileAfterConnectWrite(monkeypatch, lambda: stub_.RefreshConnection(refresh, timeout=30))
    answer_or_error(lambda: stub_.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator)))
    assert isinstance(between.answer, connection_pb2.RefreshConnectionResponse) and between.answer.exchanged

    after = answer_or_error(lambda: stub_.RefreshConnection(refresh, timeout=30))
    assert isinstance(after, connection_pb2.RefreshConnectionResponse), (
        f"the refresh after the connect was refused: {after}; the re-run stored a refresh token Xero had rotated"
    )
    assert _connection(stub_).status.state == CONNECTED


def test_a_connect_whose_own_replacement_write_is_found_again_answers_the_replaced_organisation(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection moves to another organisation, the write's acknowledgement lost: the re-run
    finds its own tokens stored and must still answer what was replaced."""
    emulator = emulator_factory()
    org = emulator.create_organisation("First Legal", region="AU")
    other = emulator.create_organisation("Second Legal", region="AU", client_id=org["client_id"])
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    stub_.ConnectOrganisation(
        connect_request("firm-1", org["authorization_code"], emulator, xero_tenant_id=org["tenant_id"])
    )
    lost = LoseAcks(monkeypatch, ConnectionKeeper, "connect")
    answer = stub_.ConnectOrganisation(
        connect_request("firm-1", new_code(emulator, org), emulator, xero_tenant_id=other["tenant_id"])
    )
    assert lost.lost == 1
    assert answer.replaced_organisation and answer.previous_tenant_id == org["tenant_id"], answer
    assert _connection(stub_).xero_tenant_id == other["tenant_id"]


def test_a_connect_whose_write_and_rerun_both_went_unconfirmed_is_not_sent_to_a_retry_that_is_refused(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry loses two acknowledgements in a row (a fail-over): the write and its re-run
    both commit unconfirmed. The caller is told UNAVAILABLE / REGISTRY_COMMIT_UNCONFIRMED, "send the
    same request again: it is answered with what was stored". Sent again, the spent code is
    refused, "start the consent again", while the organisation is connected."""
    emulator = emulator_factory()
    org = emulator.create_organisation("Failover Legal", region="AU")
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    lost = LoseAcks(monkeypatch, ConnectionKeeper, "connect", count=2)
    request = connect_request("firm-1", org["authorization_code"], emulator)
    first = answer_or_error(lambda: stub_.ConnectOrganisation(request))
    assert lost.lost == 2, first
    assert _connection(stub_).status.state == CONNECTED
    if isinstance(first, tuple):
        again = answer_or_error(lambda: stub_.ConnectOrganisation(request))
        assert isinstance(again, connection_pb2.ConnectOrganisationResponse), (
            f"told {first[0].name} / {first[1]}: {first[2]!r}; the same request again was answered {again}"
        )


# -- e3171b1: the answer "send the same request again" ------------------------------------------


@SQLITE_ONLY
def test_a_create_connection_sent_again_as_told_after_an_unconfirmed_commit_is_answered_with_the_stored_one(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CreateConnection's commit goes through unacknowledged: UNAVAILABLE /
    REGISTRY_COMMIT_UNCONFIRMED, "send the same request again: it is answered with what was
    stored". Sent again, it is answered ALREADY_EXISTS, "choose another connection_id"."""
    stub_ = stub_for(poster_factory(run_dispatcher=False))
    org = emulator.create_organisation("Created Legal", region="AU")
    lost = LoseAcks(monkeypatch, connections, "create_connection")

    def create() -> poster_pb2.Connection:
        return register_emulated_connection(stub_, "firm-1", emulator.base_url, org, samples.demo_context())

    first = answer_or_error(create)
    assert lost.lost == 1
    if isinstance(first, poster_pb2.Connection):  # the poster settled its own write: answered at once
        return
    assert first[:2] == (grpc.StatusCode.UNAVAILABLE, Reason.REGISTRY_COMMIT_UNCONFIRMED), first
    again = answer_or_error(create)
    assert isinstance(again, poster_pb2.Connection), f"told {first[2]!r}; the same request again: {again}"


@SQLITE_ONLY
def test_a_stream_ending_in_an_unconfirmed_commit_says_so_and_its_last_batch_sent_again_is_stored_once(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """StreamPostTransactions answers a first batch, then the second batch's commit goes through
    unacknowledged: the stream ends UNAVAILABLE / REGISTRY_COMMIT_UNCONFIRMED, and that batch
    sent again finds its bills stored once."""
    stub_ = stub_for(poster_factory(run_dispatcher=False))
    connect(stub_, emulator)
    ack = AckLost(monkeypatch)
    answered = threading.Event()
    second = poster_pb2.StreamPostTransactionsRequest(
        connection_id="firm-1", transactions=[samples.client_bill(8201), samples.client_bill(8202)]
    )

    def requests() -> Iterator[poster_pb2.StreamPostTransactionsRequest]:
        yield poster_pb2.StreamPostTransactionsRequest(connection_id="firm-1", transactions=[samples.client_bill(8200)])
        assert answered.wait(10)
        ack.arm()
        yield second

    responses = []
    with pytest.raises(grpc.RpcError) as raised:
        for response in stub_.StreamPostTransactions(requests(), timeout=30):
            responses.append(response)
            answered.set()
    assert ack.lost == 1 and len(responses) == 1
    assert described(raised.value)[:2] == (grpc.StatusCode.UNAVAILABLE, Reason.REGISTRY_COMMIT_UNCONFIRMED)
    again = stub_.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=second.transactions)
    ).results
    assert [r.post_outcome for r in again] == [poster_pb2.POST_OUTCOME_DUPLICATE] * 2


# -- the refresh claim read back by its attempt's name (e078bc9) --------------------------------


@SQLITE_ONLY
def test_two_refreshes_of_one_poster_around_an_unconfirmed_claim_exchange_the_refresh_token_once(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads of one poster refresh at once; a claim's commit (whichever comes first) goes
    through unacknowledged. Exactly one exchange with Xero (no grace period here: a second
    exchange of the same refresh token would be invalid_grant, NEEDS_RECONNECT), both answered."""
    emulator = emulator_factory(refresh_grace_minutes=0.0)
    org = emulator.create_organisation("Twin Legal", region="AU")
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    stub_.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    calls = TokenCalls(emulator)
    lost = LoseAcks(monkeypatch, ConnectionTokens, "refresh")
    answers = refresh_all([stub_, stub_], "firm-1")
    assert lost.lost == 1
    assert all(isinstance(a, connection_pb2.RefreshConnectionResponse) for a in answers), [
        described(a) if isinstance(a, grpc.RpcError) else a for a in answers
    ]
    assert calls.refreshes == 1 and sum(a.exchanged for a in answers) == 1
    assert _connection(stub_).status.state == CONNECTED


# -- the correction's claim taken again (e078bc9) ------------------------------------------------


@SQLITE_ONLY
def test_a_correction_whose_claim_and_its_retaking_both_went_unconfirmed_is_applied_when_sent_again(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim commits unacknowledged and so does its retaking: the caller is told
    REGISTRY_COMMIT_UNCONFIRMED, "send the same request again". The claim is held by a runner
    nobody runs, so the request sent again waits and is told ABORTED / CORRECTION_RUNNING, "being
    applied by another request" (by no one), until the claim expires."""
    real_init = Corrections.__init__

    def quick(self: Corrections, db: Any, dispatcher: Any, lease_wait: float = 10.0) -> None:
        real_init(self, db, dispatcher, lease_wait=1.0)

    monkeypatch.setattr(correcting.Corrections, "__init__", quick)
    stub_ = stub_for(poster_factory(settings(lease_ttl=30.0)))
    connect(stub_, emulator)
    assert wait_settled(stub_, _post(stub_, 8301).name).state == poster_pb2.LINK_STATE_LINKED
    lost = LoseAcks(monkeypatch, Corrections, "_claim", count=2)
    request = correction_pb2.ApplyCorrectionRequest(
        connection_id="firm-1",
        record=common_pb2.RecordKey(kind=BILL, id=8301),
        intent=correction_pb2.CORRECTION_INTENT_DELETE,
    )
    first = answer_or_error(lambda: stub_.ApplyCorrection(request, timeout=60))
    assert lost.lost == 2, first
    if isinstance(first, correction_pb2.ApplyCorrectionResponse):  # the poster settled its claim itself
        again = first
    else:
        assert first[:2] == (grpc.StatusCode.UNAVAILABLE, Reason.REGISTRY_COMMIT_UNCONFIRMED), first
        again = answer_or_error(lambda: stub_.ApplyCorrection(request, timeout=60))
        assert isinstance(again, correction_pb2.ApplyCorrectionResponse), f"told {first[2]!r}; sent again: {again}"
    assert again.correction.state == correction_pb2.CORRECTION_STATE_COMPLETED
