"""The Xero Accounting API over httpx. One pooled client per base URL; every write carries an
Idempotency-Key; every answer returns the rate headers. A write whose answer never arrived
(timeout, dropped connection) raises Uncertain: it may or may not have been applied."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx

from xerolink_poster.adapters import xero_json
from xerolink_poster.domain.rate_limits import RateHeaders

API_PREFIX = "/api.xro/2.0/"


@dataclass(frozen=True)
class Credentials:
    base_url: str
    tenant_id: str
    access_token: str
    # Which connection and token version these are: a 401 reports them back for one refresh.
    connection_id: str = ""
    token_version: int = 0

    def __repr__(self) -> str:  # never log the token
        return f"Credentials({self.base_url!r}, tenant={self.tenant_id!r}, version={self.token_version})"


@dataclass
class XeroAnswer:
    status: int
    body: Any
    rate: RateHeaders
    elapsed: float

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Uncertain(Exception):
    """No answer arrived for a call that may have changed Xero."""


@lru_cache(maxsize=1024)
def api_url(base_url: str, path: str, params: tuple[tuple[str, str], ...] | None = None) -> httpx.URL:
    """The absolute URL of an API path with its query, joined as httpx's client joins it to its
    base URL (BaseClient._merge_url: the path appended to the base's path made to end in "/"; a
    query given replaces one in the path). Kept: parsing a URL is a sixth of a call's CPU in
    httpx, and a drain sends the same few URLs (PUT Invoices?summarizeErrors=false) over and over."""
    base = httpx.URL(base_url)
    if not base.raw_path.endswith(b"/"):
        base = base.copy_with(raw_path=base.raw_path + b"/")
    url = base.copy_with(raw_path=base.raw_path + httpx.URL(API_PREFIX + path).raw_path.lstrip(b"/"))
    return url if params is None else httpx.URL(url, params=dict(params))


# Xero answers 404 "The resource you're looking for cannot be found" to a URL longer than this
# (XeroAPI/Xero-NetStandard#471: GET Contacts?IDs=... past 2,091 characters; XeroAPI/xero-node#404).
XERO_URL_MAX = 2091
XERO_ORIGIN = "https://api.xero.com"


def url_length(base_url: str, path: str, param: str) -> int:
    """How long the URL of `path` with the query parameter `param` (its value still to come) is,
    here and at Xero's own host, whichever is longer: the limit is Xero's."""
    return max(len(str(api_url(url, path))) for url in (base_url, XERO_ORIGIN)) + len(f"?{param}=")


def value_length(value: str) -> int:
    """How many characters `value` takes as a query parameter's value in the URL httpx sends. Each
    character is encoded on its own, so the parts of a value add up to the whole, and each
    character's length is found once (parsing a URL a value cost a look-up of fifty numbers 10 ms)."""
    total = 0
    for character in value:
        length = _ENCODED.get(character)
        if length is None:
            length = len(httpx.URL("http://h/", params={"v": character}).raw_path) - len(b"/?v=")
            if len(_ENCODED) < 4096:
                _ENCODED[character] = length
        total += length
    return total


_ENCODED: dict[str, int] = {}


class XeroClient:
    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    def _client(self, base_url: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(base_url)
            if client is None:
                client = httpx.Client(
                    base_url=base_url,
                    timeout=self.timeout,
                    limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
                )
                self._clients[base_url] = client
            return client

    def call(
        self,
        creds: Credentials,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        content: bytes | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> XeroAnswer:
        """One call; `content` is its JSON body, encoded by the caller (xero_json.dumps), who
        derives the Idempotency-Key from the same bytes. `extra_headers`: e.g. a read's
        If-Modified-Since."""
        headers = {
            **(extra_headers or {}),
            "Authorization": f"Bearer {creds.access_token}",
            "xero-tenant-id": creds.tenant_id,
            "Accept": "application/json",
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        started = time.monotonic()
        try:
            response = self._client(creds.base_url).request(
                method,
                api_url(creds.base_url, path, None if params is None else tuple(params.items())),
                content=content,
                headers=headers,
            )
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Uncertain(f"{method} {path}: {type(exc).__name__}") from exc
        elapsed = time.monotonic() - started
        parsed: Any = None
        if response.content:
            try:
                parsed = xero_json.loads(response.content)
            except ValueError:
                parsed = {"Message": response.text[:500]}
        # items() decodes the headers once; dict(headers) decodes all of them again for each name.
        return XeroAnswer(response.status_code, parsed, RateHeaders.parse(dict(response.headers.items())), elapsed)

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
