"""RefreshConnection on a connection that a 403 marked NEEDS_RECONNECT. Xero answers 403 to a
valid token once the organisation's connection to the app is removed in Xero (XeroAPI/Xero-OpenAPI#585),
and its token endpoint still refreshes that token: the refresh alone says nothing of the
organisation. Xero's `GET /connections` lists the tenants the token may call, so the poster asks it
before it calls such a connection connected again. Real posters on loopback, the emulator over
real HTTP, a SQLite registry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.poster.v1 import connection_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.contacts import Handler, intercept, post_all, wait
from tests.fixtures.lookups import live_objects
from tests.fixtures.poster import EmulatorFactory, wait_for, xero_objects
from tests.integration.connection_helpers import (
    PosterMaker,
    TokenCalls,
    connect_request,
    details_of,
    new_code,
    posters,
    write_apps,
)
from tests.integration.connection_helpers import stub as lifecycle_stub

CONNECTED = connection_pb2.CONNECTION_STATE_CONNECTED
NEEDS_RECONNECT = connection_pb2.CONNECTION_STATE_NEEDS_RECONNECT
LINKED = poster_pb2.LINK_STATE_LINKED


@pytest.fixture
def sqlite_posters(tmp_path: Path, mapper_target: str) -> Iterator[PosterMaker]:
    with posters(f"sqlite:///{tmp_path / 'registry.db'}", mapper_target) as make:
        yield make


def _state(stub: poster_grpc.PosterServiceStub) -> connection_pb2.ConnectionState.ValueType:
    state: connection_pb2.ConnectionState.ValueType = stub.GetConnection(
        poster_pb2.GetConnectionRequest(connection_id="firm-1")
    ).connection.status.state
    return state


def _refresh(stub: poster_grpc.PosterServiceStub) -> connection_pb2.RefreshConnectionResponse:
    response: connection_pb2.RefreshConnectionResponse = stub.RefreshConnection(
        connection_pb2.RefreshConnectionRequest(connection_id="firm-1")
    )
    return response


def _connected(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> tuple[EmulatorServer, dict[str, str], poster_grpc.PosterServiceStub]:
    emulator = emulator_factory(access_token_minutes=30.0)
    org = emulator.create_organisation("Harper Legal")
    stub = lifecycle_stub(sqlite_posters(write_apps(tmp_path / "apps.json", org, emulator)))
    stub.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    return emulator, org, stub


def _marked_by_a_403(stub: poster_grpc.PosterServiceStub, bill_id: int) -> str:
    """Posts a bill, which Xero answers 403, and waits for the connection to need reconnecting."""
    [name] = post_all(stub, [samples.client_bill(bill_id)])
    wait_for(lambda: _state(stub) == NEEDS_RECONNECT, timeout=15, what="the 403 to mark the connection")
    return name


def test_refreshing_a_connection_removed_in_xero_keeps_it_needing_a_reconnect(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> None:
    """The adviser removed the app in Xero, a bill's call was answered 403 and the connection
    needs reconnecting. An operator's RefreshConnection gets a new token from Xero, but Xero's
    /connections no longer lists the organisation: the answer is FAILED_PRECONDITION
    CONNECTION_NEEDS_RECONNECT and the connection stays NEEDS_RECONNECT (before, it read CONNECTED
    until the next call was answered 403 again). The rotated tokens are kept: the next refresh
    continues the chain, and once the adviser consents again the bill is posted once."""
    emulator, org, stub = _connected(emulator_factory, sqlite_posters, tmp_path)
    calls = TokenCalls(emulator)
    identity = emulator.state.identity
    xero_app = identity.apps[org["client_id"]]
    identity.disconnect(xero_app, xero_app.connections[org["tenant_id"]]["id"])
    name = _marked_by_a_403(stub, 77_001)

    for attempt in range(2):
        with pytest.raises(grpc.RpcError) as refused:
            _refresh(stub)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value.details()
        assert "CONNECTION_NEEDS_RECONNECT" in {
            i.reason for i in details_of(refused.value, error_details_pb2.ErrorInfo)
        }, refused.value.details()
        assert "ConnectOrganisation" in (refused.value.details() or "")
        assert _state(stub) == NEEDS_RECONNECT, f"refresh {attempt + 1} called the connection connected"
    assert calls.refreshes == 2  # each refresh used the refresh token the one before stored
    time.sleep(0.5)
    assert stub.GetPosting(poster_pb2.GetPostingRequest(name=name)).posting.link.state != LINKED

    identity.connect(xero_app, org["tenant_id"], "Harper Legal")
    stub.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(connection_id="firm-1", authorization_code=new_code(emulator, org))
    )
    assert _state(stub) == CONNECTED
    [state] = wait(stub, [name])
    assert state == LINKED
    made = [i for i in live_objects(xero_objects(emulator, org["tenant_id"], "Invoices")) if "-77001]" in str(i)]
    assert len(made) == 1, made


def test_refreshing_a_connection_xero_still_lists_calls_it_connected_again(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> None:
    """A 403 that was not the organisation's removal (a proxy's, say) marked the connection.
    Xero's /connections still lists the organisation for the refreshed token, so RefreshConnection
    calls it CONNECTED and the bill waiting for it is posted."""
    emulator, _, stub = _connected(emulator_factory, sqlite_posters, tmp_path)
    refused: list[str] = []

    def forbid_once(request: Request, handle: Handler) -> Response:
        if request.method in ("PUT", "POST") and "Invoices" in request.path and not refused:
            refused.append(request.path)
            return Response(403, b'{"Title":"Forbidden","Detail":"AuthorizationUnsuccessful"}', {})
        return handle(request)

    intercept(emulator, forbid_once)
    name = _marked_by_a_403(stub, 77_101)
    assert refused

    response = _refresh(stub)
    assert response.exchanged and response.status.state == CONNECTED
    [state] = wait(stub, [name])
    assert state == LINKED


def test_a_refresh_that_cannot_list_xeros_connections_keeps_the_tokens_and_the_state(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> None:
    """Xero's /connections does not answer after the refresh: the connection is not called
    connected on a guess. RefreshConnection answers UNAVAILABLE, the state and the 403's reason
    stay, the rotated tokens are kept (the next refresh is accepted), and a later refresh that can
    list them calls the connection connected."""
    emulator, _, stub = _connected(emulator_factory, sqlite_posters, tmp_path)
    calls = TokenCalls(emulator)
    refused: list[str] = []
    unlisted: list[str] = []

    def change(request: Request, handle: Handler) -> Response:
        if request.method in ("PUT", "POST") and "Invoices" in request.path and not refused:
            refused.append(request.path)
            return Response(403, b'{"Title":"Forbidden","Detail":"AuthorizationUnsuccessful"}', {})
        if request.method == "GET" and request.path.rstrip("/").endswith("/connections") and not unlisted:
            unlisted.append(request.path)
            return Response(503, b"", {})
        return handle(request)

    intercept(emulator, change)
    name = _marked_by_a_403(stub, 77_201)
    why = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection.status.last_error

    with pytest.raises(grpc.RpcError) as unknown:
        _refresh(stub)
    assert unknown.value.code() == grpc.StatusCode.UNAVAILABLE, unknown.value.details()
    assert unlisted and calls.refreshes == 1
    status = stub.GetConnection(poster_pb2.GetConnectionRequest(connection_id="firm-1")).connection.status
    assert status.state == NEEDS_RECONNECT and status.last_error == why

    response = _refresh(stub)
    assert response.exchanged and response.status.state == CONNECTED and calls.refreshes == 2
    [state] = wait(stub, [name])
    assert state == LINKED
