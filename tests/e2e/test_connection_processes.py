"""Two `xerolink-poster` processes on one registry (a SQLite file, then the real PostgreSQL server)
refresh one connection's tokens at the same moment: Xero sees one token exchange, both processes
use the winner's tokens, and posting continues through either. Their debug logs hold no token."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import grpc
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import connection_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.poster import EmulatorFactory, wait_settled, xero_objects
from tests.fixtures.processes import child_env, console_script, free_port, running
from tests.integration.connection_helpers import TokenCalls, connect_request, refresh_all, write_apps


def test_two_poster_processes_refresh_a_connection_once(
    database_url: str, mapper_target: str, emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    emulator = emulator_factory(access_token_minutes=30.0)
    calls = TokenCalls(emulator)
    org = emulator.create_organisation("Harper Legal")
    apps = write_apps(tmp_path / "xero-apps.json", org, emulator)
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        for index, port in enumerate(ports):
            env = child_env(
                XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
                XEROLINK_DATABASE_URL=database_url,
                XEROLINK_MAPPER_TARGET=mapper_target,
                XEROLINK_POSTER_INSTANCE=f"process-{index}",
                XEROLINK_XERO_APPS_FILE=str(apps),
                XEROLINK_LOG_LEVEL="DEBUG",
            )
            log = tmp_path / f"poster-{index}.log"
            stack.enter_context(running(console_script("xerolink-poster"), port, env=env, log=log))
        stubs = [
            poster_grpc.PosterServiceStub(stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{port}")))
            for port in ports
        ]
        stubs[0].ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator), timeout=30)
        emulator.faults.add(FaultRule("latency", seconds=0.5, path_contains="/connect/token"))

        answers = refresh_all(stubs * 3, "firm-1")

        assert all(isinstance(a, connection_pb2.RefreshConnectionResponse) for a in answers), answers
        assert calls.refreshes == 1
        assert sum(a.exchanged for a in answers) == 1
        emulator.faults.clear()
        for index, poster in enumerate(stubs):
            posting = poster.PostTransaction(
                poster_pb2.PostTransactionRequest(
                    connection_id="firm-1", transaction=samples.client_bill(9600 + index)
                ),
                timeout=30,
            ).posting
            assert wait_settled(poster, posting.name, timeout=30).state == poster_pb2.LINK_STATE_LINKED
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 2
    logs = "".join((tmp_path / f"poster-{index}.log").read_text() for index in range(2))
    assert "refreshed the Xero tokens" in logs
    assert calls.tokens and not [t for t in [*calls.tokens, org["client_secret"]] if t in logs]
