"""The real `xerolink-mapper` console script: it listens where told (--port or
XEROLINK_MAPPER_ADDRESS), answers health checks and reflection, maps, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_mapper import samples

from tests.fixtures.processes import assert_froze_its_startup_heap, child_env, console_script, free_port, running

SERVICE = "xerolink.mapper.v1.MapperService"


def _health(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def _reflected_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    return {s.name for r in responses for s in r.list_services_response.service}


def test_console_script_serves_health_reflection_and_maps_then_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "mapper.log"
    with running([*console_script("xerolink-mapper"), "--port", str(port)], port, log=log) as proc:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=10)
            assert _health(channel, "") == health_pb2.HealthCheckResponse.SERVING
            assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
            assert {SERVICE, "grpc.health.v1.Health"} <= _reflected_services(channel)
            stub = mapper_grpc.MapperServiceStub(channel)
            response = stub.MapTransaction(
                mapper_pb2.MapTransactionRequest(transaction=samples.client_bill(), context=samples.demo_context()),
                timeout=10,
            )
            assert response.operations[0].invoice.invoice_number == "INV-1001"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - started < 12
    assert "shutting down" in log.read_text()
    assert_froze_its_startup_heap(log.read_text())


def test_console_script_listens_on_the_address_from_the_environment_and_streams_through_workers() -> None:
    port = free_port()
    env = child_env(XEROLINK_MAPPER_ADDRESS=f"127.0.0.1:{port}", XEROLINK_MAPPER_STREAM_PROCESSES="2")
    with running(console_script("xerolink-mapper"), port, env=env) as proc:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=20)
            assert _health(channel, SERVICE) == health_pb2.HealthCheckResponse.SERVING
            stub = mapper_grpc.MapperServiceStub(channel)
            message = mapper_pb2.StreamMapTransactionsRequest(
                requests=[
                    mapper_pb2.MapTransactionRequest(transaction=samples.client_bill(9000 + i)) for i in range(3)
                ],
                context=samples.demo_context(),
            )
            (answer,) = stub.StreamMapTransactions(iter([message]), timeout=20)
            assert [r.response.record.id for r in answer.results] == [9000, 9001, 9002]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
