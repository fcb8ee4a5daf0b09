"""The real `xerolink-poster` console script beside a real `xerolink-mapper` and the Xero
emulator: health, reflection, a client bill posted end to end, and a clean stop on SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.poster import connect, wait_settled, xero_objects
from tests.fixtures.processes import (
    assert_froze_its_startup_heap,
    assert_spaced_its_young_collections,
    child_env,
    console_script,
    free_port,
    running,
)

SERVICE = "xerolink.poster.v1.PosterService"


def _reflected_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    return {s.name for r in responses for s in r.list_services_response.service}


def test_poster_console_script_posts_a_bill_through_the_mapper_to_xero_and_stops_on_sigterm(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    mapper_port, poster_port = free_port(), free_port()
    env = child_env(
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{poster_port}",
        XEROLINK_DATABASE_URL=f"sqlite:///{tmp_path / 'poster.db'}",
        XEROLINK_MAPPER_TARGET=f"127.0.0.1:{mapper_port}",
    )
    log = tmp_path / "poster.log"
    with (
        running([*console_script("xerolink-mapper"), "--port", str(mapper_port)], mapper_port),
        running(console_script("xerolink-poster"), poster_port, env=env, log=log) as poster,
        grpc.insecure_channel(f"127.0.0.1:{poster_port}") as channel,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        assert {SERVICE, "grpc.health.v1.Health"} <= _reflected_services(channel)
        stub = poster_grpc.PosterServiceStub(channel)
        _, org = connect(stub, emulator, "firm-e2e")
        bill = samples.client_bill(4001)
        accepted = stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-e2e", transaction=bill), timeout=10
        )
        assert wait_settled(stub, accepted.posting.name).state == poster_pb2.LINK_STATE_LINKED
        link = stub.GetLink(
            poster_pb2.GetLinkRequest(
                connection_id="firm-e2e",
                record=common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=4001),
            )
        ).link
        [invoice] = xero_objects(emulator, org["tenant_id"], "Invoices")
        assert link.xero_objects[0].xero_id == invoice["InvoiceID"]
        started = time.monotonic()
        poster.send_signal(signal.SIGTERM)
        assert poster.wait(timeout=15) == 0
        assert time.monotonic() - started < 12
    assert "shutting down" in log.read_text()
    assert_froze_its_startup_heap(log.read_text())
    assert_spaced_its_young_collections(log.read_text())
