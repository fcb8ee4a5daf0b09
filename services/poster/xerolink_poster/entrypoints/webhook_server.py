"""The HTTP endpoint Xero delivers webhooks to (docs/drift.md "Webhooks").

Xero signs each delivery's raw body with HMAC-SHA256 and the webhook key (base64, header
`x-xero-signature`) and expects 200 for a good signature and 401 for a bad one within 5 seconds,
else it retries and finally disables the subscription; its intent-to-receive check sends signed
and badly signed deliveries with no events (developer.xero.com/documentation/webhooks). So:

- a missing or bad signature: 401 with an empty body, nothing read beyond the body, nothing stored;
- a good signature: every event is stored in one transaction, then 200 with an empty body; no
  Xero call is made here (a worker reads the objects after answering);
- a good signature on a body that is not a delivery in Xero's shape: 400 saying what is wrong,
  nothing stored. Xero documents only 200 and 401; a 400 makes it retry and, if the body never
  changes, disable the subscription, which Xero's developer portal then shows: better than
  answering 200 and dropping events silently;
- a body over the size bound: 413 before it is read (Xero's deliveries are small);
- another method than POST: 401 unless signed, else 405; another path: 404;
- the registry failing: 500, so Xero delivers again later."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from xerolink_poster.domain.webhook_events import MalformedDelivery, WebhookEvent, parse_delivery, signature_valid
from xerolink_poster.entrypoints.drift_config import WebhookSettings

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-xero-signature"
# Reading a body may not use up Xero's 5 seconds.
READ_TIMEOUT = 3.0


class WebhookEndpoint:
    def __init__(
        self,
        settings: WebhookSettings,
        store: Callable[[Sequence[WebhookEvent]], int],
        on_stored: Callable[[], None] = lambda: None,
    ) -> None:
        """`store` keeps a delivery's events in one transaction (webhook_intake.store_events) and
        says how many were new; `on_stored` wakes the worker that processes them."""
        self.settings = settings
        self.store = store
        self.on_stored = on_stored
        host, _, port = settings.address.rpartition(":")
        self._server = ThreadingHTTPServer((host.strip("[]") or "0.0.0.0", int(port)), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.deliveries = 0

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}{self.settings.path}"

    def start(self) -> WebhookEndpoint:
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    def receive(self, body: bytes, signature: str | None) -> tuple[int, str]:
        """The answer (status, text) to a POST of `body`."""
        if not signature_valid(self.settings.key, body, signature):
            log.warning("refused a webhook delivery with a %s signature", "bad" if signature else "missing")
            return 401, ""
        try:
            events = parse_delivery(body)
        except MalformedDelivery as exc:
            log.error("a signed webhook delivery is not in Xero's shape, nothing stored: %s", exc)
            return 400, f"not a Xero webhook delivery: {exc}"
        try:
            added = self.store(events)
        except Exception:
            log.exception("could not store a webhook delivery's events; Xero will deliver it again")
            return 500, "the events could not be stored; deliver again"
        self.deliveries += 1
        if added:
            self.on_stored()
        log.info("webhook delivery: %d events, %d new", len(events), added)
        return 200, ""


def _handler(endpoint: WebhookEndpoint) -> type[BaseHTTPRequestHandler]:
    settings = endpoint.settings

    class Handler(BaseHTTPRequestHandler):
        server_version = "xerolink-webhooks"
        sys_version = ""
        timeout = READ_TIMEOUT

        def log_message(self, format: str, *args: object) -> None:
            log.debug("webhooks: " + format, *args)

        def _answer(self, status: int, text: str = "", headers: dict[str, str] | None = None) -> None:
            payload = text.encode()
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if payload:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload:
                self.wfile.write(payload)

        def _body(self) -> bytes | None:
            """The raw body, or None after answering (too large, or unreadable)."""
            try:
                length = int(self.headers.get("Content-Length", "0") or "0")
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                self._answer(400, "Content-Length is not a number")
                return None
            if length > settings.max_bytes:
                self.close_connection = True
                self._answer(413, f"the body is over {settings.max_bytes} bytes")
                return None
            try:
                return self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True
                return None

        def _route(self, method: str) -> None:
            if self.path.split("?", 1)[0] != settings.path:
                self._answer(404)
                return
            body = self._body()
            if body is None:
                return
            signature = self.headers.get(SIGNATURE_HEADER)
            if method != "POST":
                if not signature_valid(settings.key, body, signature):
                    self._answer(401)
                else:
                    self._answer(405, "Xero delivers webhooks by POST", {"Allow": "POST"})
                return
            status, text = endpoint.receive(body, signature)
            self._answer(status, text)

        def do_POST(self) -> None:
            self._route("POST")

        def do_GET(self) -> None:
            self._route("GET")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def do_PATCH(self) -> None:
            self._route("PATCH")

    return Handler
