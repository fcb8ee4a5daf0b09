"""`xerolink-mapper`: serves MapperService with health checking and reflection until SIGTERM.

Address: --address, else --port (on loopback), else XEROLINK_MAPPER_ADDRESS, else 127.0.0.1:50061.
Another interface than loopback needs XEROLINK_CALLERS_FILE or XEROLINK_ALLOW_UNAUTHENTICATED=1.

This is the mapper's bootstrap (its composition root): the one entrypoint that builds adapters,
the servicer and the stream mapper, and wires them into the gRPC server (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from xerolink_common.grpc_server import RunningServer, create_server, serve_until_signalled
from xerolink_common.listening import bound, check_exposure, on_loopback
from xerolink_common.logs import configure_logging
from xerolink_common.security import ServerSecurity, server_security_from_env
from xerolink_common.telemetry import configure_telemetry

from xerolink_mapper.adapters.grpc_servicer import SERVICE_NAME, MapperServicer, registrar
from xerolink_mapper.adapters.stream_mapping import StreamMapper

DEFAULT_ADDRESS = on_loopback(50061)
log = logging.getLogger("xerolink_mapper")


@dataclass
class Mapper:
    running: RunningServer
    stream_mapper: StreamMapper

    @property
    def port(self) -> int:
        return self.running.port

    def stop(self, grace: float = 5.0) -> None:
        self.running.stop(grace)
        self.stream_mapper.close()


def start(
    address: str, max_workers: int = 16, security: ServerSecurity | None = None, stream_processes: int = 0
) -> Mapper:
    """Starts the mapper on `address` (port 0 picks a free one) and returns it running.
    `stream_processes` > 0 maps stream messages in that many worker processes. Refuses an address
    beyond loopback without authentication (listening.py)."""
    check_exposure("mapper", address, security is not None and security.authenticated)
    stream_mapper = StreamMapper(stream_processes)  # workers first: spawned before gRPC threads exist
    running = create_server(
        address,
        [registrar(MapperServicer(stream_mapper))],
        [SERVICE_NAME],
        max_workers=max_workers,
        interceptors=security.interceptors if security else (),
        credentials=security.credentials if security else None,
    )
    return Mapper(running, stream_mapper)


def listen_address(address: str | None, port: int | None) -> str:
    if address:
        return address
    if port is not None:
        return on_loopback(port)
    return os.environ.get("XEROLINK_MAPPER_ADDRESS", DEFAULT_ADDRESS)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="xerolink-mapper", description=__doc__)
    parser.add_argument("--address", help="host:port to listen on (overrides --port)")
    parser.add_argument("--port", type=int, help="port to listen on, on loopback (127.0.0.1)")
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("XEROLINK_MAPPER_WORKERS", "16")),
        help="request threads (default 16, or XEROLINK_MAPPER_WORKERS)",
    )
    parser.add_argument(
        "--stream-processes",
        type=int,
        default=int(os.environ.get("XEROLINK_MAPPER_STREAM_PROCESSES", "0")),
        help="map StreamMapTransactions messages in this many worker processes (default 0: in the "
        "request thread; or XEROLINK_MAPPER_STREAM_PROCESSES)",
    )
    args = parser.parse_args(argv)
    configure_logging("mapper")
    telemetry = configure_telemetry("xerolink-mapper")
    security = server_security_from_env("mapper", allowed_callers_env="XEROLINK_MAPPER_ALLOWED_CALLERS")
    address = listen_address(args.address, args.port)
    mapper = start(address, args.workers, security, args.stream_processes)
    log.info("mapper listening on %s (stream processes: %d)", bound(address, mapper.port), args.stream_processes)

    def stopped() -> None:
        mapper.stream_mapper.close()
        telemetry.shutdown()

    serve_until_signalled(mapper.running, on_stop=stopped)


if __name__ == "__main__":
    main()
