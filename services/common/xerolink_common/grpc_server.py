"""gRPC server bootstrap shared by both services: health checking, reflection and a
graceful SIGTERM shutdown. `create_server` is separate from `serve` so tests start a
real server on port 0."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from xerolink_common.heap import freeze_startup_heap
from xerolink_common.request_decoding import DecodeGuard

log = logging.getLogger(__name__)

# Registers a servicer on a server (the generated add_XServicer_to_server functions).
Registration = Callable[[grpc.Server], None]


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    service_names: tuple[str, ...]

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        self.health.set("", status)
        for name in self.service_names:
            self.health.set(name, status)

    def stop(self, grace: float = 5.0) -> None:
        # Report NOT_SERVING first so load balancers and probes drain traffic.
        self.set_serving(False)
        self.server.stop(grace).wait()


def create_server(
    address: str,
    registrations: Sequence[Registration],
    service_names: Sequence[str],
    max_workers: int = 16,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
    thread_initializer: Callable[[], None] | None = None,
) -> RunningServer:
    """Builds and starts a server; returns it with the port actually bound (address may end in :0).
    `thread_initializer` runs on each of the threads that will answer calls, as it starts."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc", initializer=thread_initializer),
        # The decode guard comes first so it wraps every other interceptor's handler.
        interceptors=[DecodeGuard(), *interceptors],
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    for register in registrations:
        register(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = (
        server.add_secure_port(address, credentials) if credentials is not None else server.add_insecure_port(address)
    )
    if port == 0:
        raise OSError(f"could not bind {address}")
    server.start()
    running = RunningServer(server, port, health_servicer, tuple(service_names))
    running.set_serving(True)
    return running


def serve_until_signalled(
    running: RunningServer, grace: float = 10.0, on_stop: Callable[[], None] | None = None
) -> None:
    """Blocks until SIGTERM or SIGINT, then drains and stops within `grace` seconds. Whatever
    the service built to start is frozen out of the collector's reach first (heap.py)."""
    stopped = threading.Event()

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    log.info("froze %d objects alive at start-up out of the collector's full passes", freeze_startup_heap())
    stopped.wait()
    running.stop(grace)
    if on_stop is not None:
        on_stop()
    log.info("stopped")


__all__ = ["RunningServer", "create_server", "futures", "serve_until_signalled"]
