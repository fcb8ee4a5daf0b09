"""The HTTP server: stdlib ThreadingHTTPServer (full control of the socket, so a fault can drop
the connection after the write committed), embeddable in tests and runnable as `xero-emulator`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from xero_emulator.config import EmulatorConfig
from xero_emulator.domain.regions import REGIONS
from xero_emulator.gateway import Gateway
from xero_emulator.messages import Request, Response, problem
from xero_emulator.state import EmulatorState


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"
    server_version = "xero-emulator"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default; the gateway's responses carry what a test needs."""

    def _serve(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(problem(400, "Bad Request", "Content-Length must be a whole number of bytes"))
            self.close_connection = True
            return
        if length > self.server.config.max_body_bytes:
            self._send(problem(413, "Request Entity Too Large", "The request is larger than 3.5 MB"))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=urllib.parse.unquote(parsed.path),
            query=urllib.parse.parse_qs(parsed.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            query_string=parsed.query,
            target=self.path,
        )
        try:
            response = self.server.gateway.handle(request)
        except Exception as exc:  # a bug must still answer, and say what it was
            response = problem(500, "Internal Server Error", f"emulator error: {type(exc).__name__}: {exc}")
        if response.drop_connection:
            # The write is committed; the client never hears about it.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _serve

    def __getattr__(self, name: str) -> Any:
        # Any other method (QUERY, PROPFIND...) reaches the gateway too, which answers 405 + Allow.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], gateway: Gateway, config: EmulatorConfig) -> None:
        self.gateway = gateway
        self.config = config
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away before sending its request or reading its answer (a killed
        # poster, a timeout) is not the emulator's error, and a write it asked for stands, as at
        # Xero; anything else is.
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)


class EmulatorServer:
    """`EmulatorServer(EmulatorConfig(minute_seconds=1.0)).start()`; `.base_url`; `.stop()`.
    `.state` gives in-process access to organisations, faults, limits and identity."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config)
        self.gateway = Gateway(self.state)
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        self._httpd = _HttpServer((self.config.host, self.config.port), self.gateway, self.config)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="xero-emulator", daemon=True
        )
        self._thread.start()
        self.state.webhooks.base_url = self.base_url
        return self

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api.xro/2.0"

    @property
    def faults(self) -> Any:
        return self.state.faults

    def create_organisation(self, name: str = "Demo Law Firm Pty Ltd", **kwargs: Any) -> dict[str, Any]:
        return self.state.create_organisation(name, **kwargs)

    def ledger(self, tenant_id: str) -> dict[str, Any]:
        return self.state.ledger(tenant_id)

    def hand_edit(self, tenant_id: str, resource: str, object_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """As a person editing in Xero's web app; raises ValidationFailure as the API would refuse."""
        return self.state.hand_edit(tenant_id, resource, object_id, changes)

    def bank_feed_match(self, tenant_id: str, match: dict[str, Any]) -> dict[str, Any]:
        """A payment made in Xero by reconciling a bank-feed line; returns the payment."""
        return self.state.bank_feed_match(tenant_id, match)

    def serve_forever(self) -> None:
        assert self._httpd is not None
        self._httpd.serve_forever()

    def stop(self) -> None:
        self.state.webhooks.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xero-emulator", description="Local emulator of the Xero Accounting API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--minute-seconds", type=float, default=60.0, help="length of Xero's rate-limit minute")
    parser.add_argument("--seed-demo", action="store_true", help="create a demo organisation and print its credentials")
    parser.add_argument("--seed-region", default="AU", choices=list(REGIONS), help="the demo organisation's region")
    parser.add_argument("--webhook-url", help="send Xero's webhooks (invoices, credit notes, contacts) to this URL")
    parser.add_argument("--webhook-key", help="the webhook key that signs them (x-xero-signature)")
    args = parser.parse_args(argv)
    if (args.webhook_url is None) != (args.webhook_key is None):
        parser.error("--webhook-url and --webhook-key go together")
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        minute_seconds=args.minute_seconds,
        webhook_url=args.webhook_url,
        webhook_key=args.webhook_key,
    )
    server = EmulatorServer(config)
    server.start()
    print(f"xero-emulator listening on {server.base_url}", flush=True)
    if args.seed_demo:
        demo = server.create_organisation("Demo Law Firm Pty Ltd", region=args.seed_region, is_demo=True)
        for key in ("tenant_id", "client_id", "client_secret", "authorization_code", "access_token", "refresh_token"):
            print(f"{key}={demo[key]}", flush=True)
    stopped = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stopped.wait()
    server.stop()
    print("xero-emulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
