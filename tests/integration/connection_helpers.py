"""Helpers for the connection lifecycle tests: a poster configured with a Xero app of the
emulator (client secret in a server-side apps file), and the OAuth consent done the emulator's way."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from grpc_status import rpc_status
from xero_emulator import EmulatorServer
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import connection_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.adapters.token_vault import TokenVault, new_key_entry
from xerolink_poster.adapters.xero_identity import XeroApps
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig

from tests.fixtures.poster import settings

VAULT_TEXT = new_key_entry("k1")


def write_apps(
    path: Path, org: dict[str, Any], emulator: EmulatorServer, names: tuple[str, ...] = ("default",)
) -> Path:
    """The server-side apps file: the emulator app's client id and secret, and its token endpoint,
    under each of `names`. The poster reads the file at every use, so rewriting it takes effect."""
    app = {"client_id": org["client_id"], "client_secret": org["client_secret"], "identity_url": emulator.base_url}
    path.write_text(json.dumps({"apps": dict.fromkeys(names, app)}))
    return path


def new_context() -> mapper_pb2.MappingContext:
    """What a new connection brings: the demo allocation and tax maps; the chart comes from Xero."""
    return samples.demo_context(with_chart=False)


def new_code(emulator: EmulatorServer, org: dict[str, Any]) -> str:
    """A fresh consent for the app (as Xero's consent page would redirect with)."""
    app = emulator.state.identity.apps[org["client_id"]]
    return emulator.state.identity.issue_code(app)


def connect_request(
    connection_id: str, code: str, emulator: EmulatorServer, **extra: Any
) -> connection_pb2.ConnectOrganisationRequest:
    return connection_pb2.ConnectOrganisationRequest(
        connection_id=connection_id,
        authorization_code=code,
        redirect_uri="https://firm.example/xero/callback",
        xero_base_url=emulator.base_url,
        mapping_context=new_context(),
        **extra,
    )


def status_of(err: grpc.RpcError) -> Any:
    status = rpc_status.from_call(err)
    assert status is not None
    return status


def details_of(err: grpc.RpcError, kind: Any) -> list[Any]:
    found = []
    for detail in status_of(err).details:
        message = kind()
        if detail.Unpack(message):
            found.append(message)
    return found


class TokenCalls:
    """Counts the token endpoint's grants and remembers every token it issued."""

    def __init__(self, emulator: EmulatorServer) -> None:
        identity = emulator.state.identity
        self.refreshes = 0
        self.tokens: list[str] = []
        self._lock = threading.Lock()
        original_refresh, original_exchange = identity.refresh, identity.exchange_code

        def refresh(app: Any, token: str) -> dict[str, Any]:
            with self._lock:
                self.refreshes += 1
            return self._keep(original_refresh(app, token))

        def exchange(app: Any, code: str) -> dict[str, Any]:
            return self._keep(original_exchange(app, code))

        identity.refresh = refresh  # type: ignore[method-assign,assignment]
        identity.exchange_code = exchange  # type: ignore[method-assign]

    def _keep(self, answer: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.tokens += [answer["access_token"], answer["refresh_token"]]
        return answer


def stub(app: bootstrap.PosterApp) -> poster_grpc.PosterServiceStub:
    return poster_grpc.PosterServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))


def refresh_all(targets: list[Any], connection_id: str) -> list[Any]:
    """Every target asks for a refresh at the same moment; returns the answers (or errors)."""
    barrier = threading.Barrier(len(targets))
    answers: list[Any] = [None] * len(targets)

    def run(index: int) -> None:
        barrier.wait()
        try:
            answers[index] = targets[index].RefreshConnection(
                connection_pb2.RefreshConnectionRequest(connection_id=connection_id), timeout=30
            )
        except grpc.RpcError as err:
            answers[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


PosterMaker = Callable[..., bootstrap.PosterApp]


@contextmanager
def posters(database_url: str, mapper_target: str) -> Iterator[PosterMaker]:
    """Starts posters on `database_url` with a Xero apps file; stops them on leaving."""
    started: list[bootstrap.PosterApp] = []

    def make(apps_file: Path, name: str = "", vault_text: str = VAULT_TEXT, **dispatcher: Any) -> bootstrap.PosterApp:
        config = PosterConfig(
            address="127.0.0.1:0",
            database_url=database_url,
            mapper_target=mapper_target,
            dispatcher=settings(**dispatcher),
            instance_id=name or f"lifecycle-{len(started)}",
            workers=16,
            run_dispatcher=True,
            token_vault=TokenVault.parse(vault_text, "test"),
            xero_apps=XeroApps(str(apps_file)),
        )
        app = bootstrap.start(config)
        started.append(app)
        return app

    try:
        yield make
    finally:
        for app in started:
            app.stop(0)
