"""Xero's identity side over httpx: the OAuth2 token endpoint (code exchange, refresh), the tenant
connections (/connections) and the organisation facts read when an organisation is connected.

Client credentials come from the server's configuration, never from a request:
- the app named "default": XEROLINK_XERO_CLIENT_ID and XEROLINK_XERO_CLIENT_SECRET (Kubernetes
  Secret references), token endpoint at XEROLINK_XERO_IDENTITY_URL (https://identity.xero.com);
- more apps, or all of them: XEROLINK_XERO_APPS_FILE, re-read on every use so a rotated mounted
  Secret takes effect without a restart (its entries win over the variables):

  {"apps": {"default": {"client_id": "...", "client_secret": "...",
                        "identity_url": "https://identity.xero.com"}}}

`client_secret_file` may replace `client_secret` (a path to a file holding only the secret)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from xerolink_poster.adapters import xero_json
from xerolink_poster.adapters.xero_client import API_PREFIX, Uncertain

DEFAULT_IDENTITY_URL = "https://identity.xero.com"
DEFAULT_APP = "default"


@dataclass(frozen=True)
class XeroApp:
    name: str
    client_id: str
    client_secret: str
    identity_url: str = DEFAULT_IDENTITY_URL

    def __repr__(self) -> str:  # never print the secret
        return f"XeroApp({self.name!r}, client_id={self.client_id!r})"


class AppNotConfigured(Exception):
    pass


@dataclass(frozen=True)
class XeroApps:
    """Where the server's Xero apps are configured: a JSON file path ("" = none)."""

    path: str = ""
    # The "default" app from XEROLINK_XERO_CLIENT_ID / _SECRET, when those are set.
    env_app: XeroApp | None = None

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> XeroApps:
        env = os.environ if env is None else env
        client_id, secret = env.get("XEROLINK_XERO_CLIENT_ID", ""), env.get("XEROLINK_XERO_CLIENT_SECRET", "")
        identity = (env.get("XEROLINK_XERO_IDENTITY_URL") or DEFAULT_IDENTITY_URL).rstrip("/")
        env_app = XeroApp(DEFAULT_APP, client_id, secret, identity) if client_id and secret else None
        return cls(env.get("XEROLINK_XERO_APPS_FILE", ""), env_app)

    def get(self, name: str) -> XeroApp:
        name = name or DEFAULT_APP
        if not self.path:
            if self.env_app is not None and name == DEFAULT_APP:
                return self.env_app
            raise AppNotConfigured(
                f"no Xero app {name!r} is configured: set XEROLINK_XERO_CLIENT_ID and XEROLINK_XERO_CLIENT_SECRET, "
                "or XEROLINK_XERO_APPS_FILE (see docs/connections.md)"
            )
        try:
            apps = json.loads(Path(self.path).read_text()).get("apps", {})
        except (OSError, ValueError, AttributeError) as exc:
            raise AppNotConfigured(f"XEROLINK_XERO_APPS_FILE={self.path} is unreadable or not JSON: {exc}") from exc
        entry = apps.get(name) if isinstance(apps, dict) else None
        if entry is None and self.env_app is not None and name == DEFAULT_APP:
            return self.env_app
        if not isinstance(entry, dict) or not entry.get("client_id"):
            raise AppNotConfigured(f"no Xero app {name!r} in XEROLINK_XERO_APPS_FILE; add it or name a configured one")
        secret = entry.get("client_secret") or ""
        if not secret and entry.get("client_secret_file"):
            secret = Path(str(entry["client_secret_file"])).read_text().strip()
        if not secret:
            raise AppNotConfigured(f"Xero app {name!r} has no client_secret or client_secret_file")
        identity = str(entry.get("identity_url") or DEFAULT_IDENTITY_URL).rstrip("/")
        return XeroApp(name, str(entry["client_id"]), str(secret), identity)


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    expires_in: float


class TokenRefused(Exception):
    """The token endpoint refused the grant (e.g. invalid_grant: the refresh token is dead)."""

    def __init__(self, error: str, description: str, status: int) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.status = status


class XeroRefused(Exception):
    """An identity or organisation call answered with an error status."""

    def __init__(self, status: int, what: str) -> None:
        super().__init__(f"Xero answered {status} to {what}")
        self.status = status


class XeroIdentity:
    def __init__(self, timeout: float = 10.0) -> None:
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    # -- token endpoint --------------------------------------------------------------------------
    def exchange_code(self, app: XeroApp, code: str, redirect_uri: str) -> TokenGrant:
        form = {"grant_type": "authorization_code", "code": code}
        if redirect_uri:
            form["redirect_uri"] = redirect_uri
        return self._token(app, form)

    def refresh(self, app: XeroApp, refresh_token: str) -> TokenGrant:
        return self._token(app, {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token(self, app: XeroApp, form: dict[str, str]) -> TokenGrant:
        try:
            response = self._http.post(
                f"{app.identity_url}/connect/token", data=form, auth=(app.client_id, app.client_secret)
            )
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Uncertain(f"token endpoint: {type(exc).__name__}") from exc
        body = _json(response)
        if response.status_code != 200 or not body.get("access_token"):
            raise TokenRefused(
                str(body.get("error") or f"http_{response.status_code}"),
                str(body.get("error_description") or ""),
                response.status_code,
            )
        return TokenGrant(str(body["access_token"]), str(body.get("refresh_token") or ""), _lifetime(body, response))

    # -- tenants and organisation ----------------------------------------------------------------
    def connections(self, base_url: str, access_token: str) -> list[dict[str, Any]]:
        """The tenants the token may call. Xero answers a JSON array of 0 to n Connection
        (getConnections in Xero's identity OpenAPI description): any other answer was garbled on
        the way and says nothing of them (Uncertain), never "none"."""
        response = self._get(f"{base_url}/connections", access_token, None, "GET /connections")
        try:
            body = xero_json.loads(response.content)
        except ValueError as exc:
            raise Uncertain("GET /connections: the answer is no JSON") from exc
        if not isinstance(body, list):
            raise Uncertain("GET /connections: the answer is not the array of connections Xero sends")
        return [c for c in body if isinstance(c, dict)]

    def disconnect(self, base_url: str, access_token: str, xero_connection_id: str) -> bool:
        """True when Xero removed the tenant connection (or it was already gone)."""
        try:
            response = self._http.delete(
                f"{base_url}/connections/{xero_connection_id}", headers={"Authorization": f"Bearer {access_token}"}
            )
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Uncertain(f"DELETE /connections: {type(exc).__name__}") from exc
        if response.status_code in (200, 204, 404):
            return True
        raise XeroRefused(response.status_code, "DELETE /connections")

    def organisation(self, base_url: str, access_token: str, tenant_id: str) -> dict[str, Any]:
        response = self._get(f"{base_url}{API_PREFIX}Organisation", access_token, tenant_id, "GET Organisation")
        organisations = _json(response).get("Organisations") or [{}]
        found = organisations[0]
        return found if isinstance(found, dict) else {}

    def accounts(self, base_url: str, access_token: str, tenant_id: str) -> list[dict[str, Any]]:
        response = self._get(f"{base_url}{API_PREFIX}Accounts", access_token, tenant_id, "GET Accounts")
        return [a for a in _json(response).get("Accounts") or [] if isinstance(a, dict)]

    def tax_rates(self, base_url: str, access_token: str, tenant_id: str) -> list[dict[str, Any]]:
        response = self._get(f"{base_url}{API_PREFIX}TaxRates", access_token, tenant_id, "GET TaxRates")
        return [r for r in _json(response).get("TaxRates") or [] if isinstance(r, dict)]

    def _get(self, url: str, access_token: str, tenant_id: str | None, what: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        if tenant_id:
            headers["xero-tenant-id"] = tenant_id
        try:
            response = self._http.get(url, headers=headers)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise Uncertain(f"{what}: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise XeroRefused(response.status_code, what)
        return response


def _lifetime(body: dict[str, Any], response: httpx.Response) -> float:
    """The access token's lifetime in seconds: `expires_in`, a number (RFC 6749, 5.1), 1800 when
    absent (Xero's 30 minutes). An answer whose lifetime cannot be read is refused like one without
    a token: the refresh token it carries is not kept, and the previous one stays valid during
    Xero's grace period."""
    value = body.get("expires_in")
    if value is None:
        return 1800.0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise TokenRefused(
            "unreadable_answer", f"expires_in is {value!r}, not a number of seconds", response.status_code
        )
    return seconds


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = xero_json.loads(response.content) if response.content else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
