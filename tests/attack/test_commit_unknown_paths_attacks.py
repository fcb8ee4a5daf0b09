"""Attacks on the writers that see CommitMayHaveGoneThrough since b7d4c33 (run_in_transaction no
longer replays a COMMIT that failed without the database refusing it), other than a grouped Post
and the job's answers and marks: the dispatcher's supervisor (taking leases, handing back), the
contact link of a job, and the RPCs that write (UnlinkLinks, ApplyCorrection,
ConnectOrganisation, RefreshConnection).

Each loses the acknowledgement of one COMMIT, after the real commit, inside the one writer it
attacks (on that call's thread only: the dispatcher commits on other threads meanwhile), as
tests/fixtures/commit_ack.py does: psycopg's "server closed the connection unexpectedly", no
SQLSTATE. Then it asks what a caller, or the tenant's work, sees next."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import connection_pb2, correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.service_layer import unlinking
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper
from xerolink_poster.service_layer.connection_tokens import ConnectionTokens
from xerolink_poster.service_layer.correcting import Corrections
from xerolink_poster.service_layer.dispatch.contacts import Contacts
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher

from tests.fixtures.commit_ack import LoseAcks, answer_or_error, described
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.integration.connection_helpers import PosterMaker, connect_request, posters, stub, write_apps

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
LINKED = poster_pb2.LINK_STATE_LINKED
UNLINKED = poster_pb2.LINK_STATE_UNLINKED
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _error(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str, str]:
    """(code, ErrorInfo reason, message) of the RpcError `call` raises."""
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return described(caught.value)


def _post(stub: poster_grpc.PosterServiceStub, bill_id: int) -> poster_pb2.Posting:
    posting: poster_pb2.Posting = stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=samples.client_bill(bill_id))
    ).posting
    return posting


def _link(stub: poster_grpc.PosterServiceStub, bill_id: int) -> poster_pb2.Link:
    request = poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=bill_id))
    link: poster_pb2.Link = stub.GetLink(request).link
    return link


# -- the supervisor --------------------------------------------------------------------------------


def test_a_round_whose_lease_taking_committed_unacknowledged_still_serves_the_tenant_promptly(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dispatcher._start_many takes the round's leases in one transaction: its acknowledgement
    lost, the leases are this poster's (lease_ttl, 30 s here) and no worker started. The next round
    must take them again (they are its own) and post the bill, not wait out the lease."""
    lost = LoseAcks(monkeypatch, Dispatcher, "_start_many")
    stub = stub_for(poster_factory(settings(lease_ttl=30.0)))
    _, org = connect(stub, emulator)
    started = time.monotonic()
    posting = _post(stub, 7301)
    assert wait_settled(stub, posting.name, timeout=15).state == LINKED
    assert lost.lost == 1, "the round's lease commit was not reached"
    assert time.monotonic() - started < 15
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 1


def test_a_hand_back_whose_commit_went_through_unacknowledged_leaves_the_tenant_served(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's hand-back (release_lease) commits and hears an error: the worker logs it and
    ends. The next bill of the tenant must still be posted at once, and once."""
    stub = stub_for(poster_factory(settings(lease_ttl=30.0, idle_release=0.2)))
    _, org = connect(stub, emulator)
    lost = LoseAcks(monkeypatch, Dispatcher, "hand_back")
    assert wait_settled(stub, _post(stub, 7311).name, timeout=15).state == LINKED
    wait_for(lambda: lost.lost == 1, timeout=10, what="the worker handed the tenant back")
    started = time.monotonic()
    assert wait_settled(stub, _post(stub, 7312).name, timeout=15).state == LINKED
    assert time.monotonic() - started < 10
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 2


# -- a job's contact link -------------------------------------------------------------------------


def test_a_contact_whose_link_committed_unacknowledged_is_not_created_again(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job created the participant's contact in Xero, and its link's commit went through
    unacknowledged (Contacts._link). The job fails; the entry's next attempt must use the stored
    link: one contact in Xero, and the bill posted to it."""
    lost = LoseAcks(monkeypatch, Contacts, "_link")
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    assert wait_settled(stub, _post(stub, 7321).name, timeout=20).state == LINKED
    assert lost.lost == 1, "the contact link's commit was not reached"
    contacts = xero_objects(emulator, org["tenant_id"], "Contacts")
    invoices = xero_objects(emulator, org["tenant_id"], "Invoices")
    assert len(contacts) == 1, [c.get("Name") for c in contacts]
    assert len(invoices) == 1 and invoices[0]["Contact"]["ContactID"] == contacts[0]["ContactID"]


# -- UnlinkLinks -----------------------------------------------------------------------------------


def test_an_unlink_retried_after_its_commit_went_through_unacknowledged_is_answered_and_orphans_once(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UnlinkLinks commits, and its caller hears an error. Sent again, the request must be answered
    (the record already unlinked), not refused, and its Xero objects recorded as orphaned once."""
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    assert wait_settled(stub, _post(stub, 7331).name).state == LINKED
    lost = LoseAcks(monkeypatch, unlinking, "unlink_links")
    request = unlink_pb2.UnlinkLinksRequest(
        connection_id="firm-1", records=[common_pb2.RecordKey(kind=BILL, id=7331)], confirm=True, reason="attack"
    )
    first: Any
    try:
        first = stub.UnlinkLinks(request)
    except grpc.RpcError as err:
        first = described(err)
    assert lost.lost == 1
    assert _link(stub, 7331).state == UNLINKED, f"the unlink was not stored; first answer {first}"
    again = stub.UnlinkLinks(request)
    assert [o.action for o in again.outcomes] == [unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED], again
    orphans = stub.ListOrphans(unlink_pb2.ListOrphansRequest(connection_id="firm-1")).orphans
    assert len(orphans) == len(_link(stub, 7331).xero_objects) >= 1, orphans


# -- ApplyCorrection -------------------------------------------------------------------------------


def test_a_correction_whose_claim_committed_unacknowledged_is_applied_by_the_callers_retry(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Corrections._claim takes the saga for a runner named afresh per request; its commit goes
    through unacknowledged and ApplyCorrection fails (INTERNAL) without `_finish`, which would
    give the claim back. The saga is then claimed by a runner nobody runs, for claim_ttl (the lease
    time: 30 s by default). ApplyCorrection again must apply it, not answer ABORTED /
    CORRECTION_RUNNING "being applied by another request" after waiting lease_wait."""
    stub = stub_for(poster_factory(settings(lease_ttl=30.0)))
    connect(stub, emulator)
    assert wait_settled(stub, _post(stub, 7341).name).state == LINKED
    lost = LoseAcks(monkeypatch, Corrections, "_claim")
    request = correction_pb2.ApplyCorrectionRequest(
        connection_id="firm-1",
        record=common_pb2.RecordKey(kind=BILL, id=7341),
        intent=correction_pb2.CORRECTION_INTENT_DELETE,
    )
    # The poster may read the unconfirmed claim back and apply at once; else the caller retries.
    first = answer_or_error(lambda: stub.ApplyCorrection(request, timeout=60))
    assert lost.lost == 1, first
    if isinstance(first, correction_pb2.ApplyCorrectionResponse):
        again = first.correction
    else:
        try:
            again = stub.ApplyCorrection(request, timeout=60).correction
        except grpc.RpcError as err:
            pytest.fail(f"the retry of ApplyCorrection was refused: {described(err)}; first answer {first}")
    assert again.state == correction_pb2.CORRECTION_STATE_COMPLETED, again
    assert _link(stub, 7341).state == UNLINKED


# -- ConnectOrganisation and RefreshConnection ----------------------------------------------------


@pytest.fixture
def lifecycle(database_url: str, mapper_target: str) -> Iterator[PosterMaker]:
    with posters(database_url, mapper_target) as make:
        yield make


def test_connect_retried_with_its_code_after_its_commit_went_through_unacknowledged_is_not_refused(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ConnectOrganisation exchanged the code, and its write (the sealed tokens, the organisation)
    committed unacknowledged: the caller hears INTERNAL, "retry later". Retried as asked, with the
    same request, the code has been used: the poster answers INVALID_ARGUMENT /
    AUTHORIZATION_CODE_REFUSED, "start the consent again", while the organisation is connected
    and its tokens stored. The retry must answer the stored connection (or at least not say the
    request was invalid)."""
    emulator = emulator_factory()
    org = emulator.create_organisation("Retry Legal", region="AU")
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    lost = LoseAcks(monkeypatch, ConnectionKeeper, "connect")
    request = connect_request("firm-1", org["authorization_code"], emulator)
    # The poster may settle the unconfirmed write itself and answer at once; else the caller retries.
    first = answer_or_error(lambda: stub_.ConnectOrganisation(request))
    assert lost.lost == 1, first
    stored = stub_.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection
    assert stored.xero_tenant_id.lower() == org["tenant_id"].lower(), "the connection was stored"
    assert stored.status.state == connection_pb2.CONNECTION_STATE_CONNECTED, stored.status
    if isinstance(first, tuple):
        try:
            again = stub_.ConnectOrganisation(request)
        except grpc.RpcError as err:
            code, reason, message = described(err)
            pytest.fail(
                f"the organisation is connected (its tokens stored) but the retry was answered {code.name} / "
                f"{reason}: {message}; the first answer was {first[0].name}: {first[2]}"
            )
    else:
        again = first
    assert again.connection_id == "firm-1" and again.status.state == connection_pb2.CONNECTION_STATE_CONNECTED


@SQLITE_ONLY
def test_a_refresh_whose_claim_committed_unacknowledged_does_not_hold_the_next_refresh_off(
    emulator_factory: EmulatorFactory, lifecycle: PosterMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RefreshConnection claims the refresh (refresh_holder, for refresh_claim: 20 s) and its
    commit goes through unacknowledged: the RPC fails before exchanging anything and nothing
    releases the claim. The claim names the poster, not the request, so the same poster's retry
    (and every worker of it needing a fresh token) waits for it to lapse, told meanwhile that
    "another worker is refreshing". The retry must refresh at once."""
    emulator = emulator_factory()
    org = emulator.create_organisation("Refresh Legal", region="AU")
    stub_ = stub(lifecycle(write_apps(tmp_path / "xero-apps.json", org, emulator)))
    stub_.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    lost = LoseAcks(monkeypatch, ConnectionTokens, "refresh")
    request = connection_pb2.RefreshConnectionRequest(connection_id="firm-1")
    started = time.monotonic()
    answer = answer_or_error(lambda: stub_.RefreshConnection(request, timeout=60))
    assert lost.lost == 1, answer
    if not isinstance(answer, connection_pb2.RefreshConnectionResponse):  # else read back and refreshed at once
        started = time.monotonic()
        answer = answer_or_error(lambda: stub_.RefreshConnection(request, timeout=60))
    took = time.monotonic() - started
    assert took < 5, f"the retry took {took:.1f} s (the unacknowledged claim lapsing), answered {answer}"
    assert isinstance(answer, connection_pb2.RefreshConnectionResponse) and answer.exchanged, answer
