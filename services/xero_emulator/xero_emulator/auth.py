"""Xero's identity side: apps (client id/secret), authorisation codes, 30-minute access tokens,
rotating refresh tokens with a grace period for the previous one, and tenant connections."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xero_emulator.config import EmulatorConfig
from xero_emulator.domain.organisation import new_id, now_utc

SCOPES = "openid profile email offline_access accounting.transactions accounting.settings accounting.contacts"


class OAuthError(Exception):
    """An OAuth2 error response: {"error": code} with HTTP 400 (or 401 for the client)."""

    def __init__(self, error: str, status: int = 400, description: str = "") -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.description = description


@dataclass
class App:
    client_id: str
    client_secret: str
    name: str
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)  # tenant id -> connection

    def connected(self, tenant_id: str) -> bool:
        return tenant_id in self.connections


@dataclass
class _Refresh:
    client_id: str
    issued_at: float
    successor: str | None = None
    rotated_at: float | None = None


@dataclass
class _Code:
    client_id: str
    tenant_ids: tuple[str, ...]
    expires_at: float


class Identity:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self.apps: dict[str, App] = {}
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, tuple[str, float]] = {}  # token -> (client id, expiry)
        self._refresh: dict[str, _Refresh] = {}

    def create_app(self, name: str = "xerolink") -> App:
        app = App("C" + secrets.token_hex(16).upper(), secrets.token_urlsafe(36), name)
        with self._lock:
            self.apps[app.client_id] = app
        return app

    def connect(self, app: App, tenant_id: str, tenant_name: str) -> dict[str, Any]:
        stamp = now_utc().strftime("%Y-%m-%dT%H:%M:%S.%f0")
        connection = {
            "id": new_id(),
            "authEventId": new_id(),
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": tenant_name,
            "createdDateUtc": stamp,
            "updatedDateUtc": stamp,
        }
        with self._lock:
            app.connections[tenant_id] = connection
        return connection

    def disconnect(self, app: App, connection_id: str) -> bool:
        with self._lock:
            for tenant_id, connection in list(app.connections.items()):
                if connection["id"] == connection_id:
                    del app.connections[tenant_id]
                    return True
        return False

    def issue_code(self, app: App) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(app.client_id, tuple(app.connections), self._clock() + self._config.minutes(10))
        return code

    def client(self, client_id: str, client_secret: str) -> App:
        app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            raise OAuthError("invalid_client", 400)
        return app

    def exchange_code(self, app: App, code: str) -> dict[str, Any]:
        with self._lock:
            grant = self._codes.pop(code, None)
            if grant is None or grant.client_id != app.client_id or grant.expires_at < self._clock():
                raise OAuthError("invalid_grant")
            return self._issue(app, None)

    def refresh(self, app: App, refresh_token: str) -> dict[str, Any]:
        with self._lock:
            record = self._refresh.get(refresh_token)
            now = self._clock()
            if record is None or record.client_id != app.client_id:
                raise OAuthError("invalid_grant")
            if now - record.issued_at > self._config.minutes(60 * 1440):
                raise OAuthError("invalid_grant", description="refresh token expired")
            if record.successor is None:
                return self._issue(app, record)
            assert record.rotated_at is not None
            if now - record.rotated_at > self._config.minutes(self._config.refresh_grace_minutes):
                raise OAuthError("invalid_grant", description="refresh token already used")
            # Within the grace period the previous token still works and yields the same successor,
            # so a client that lost the first response recovers without forking the chain.
            return self._token_response(self._new_access(app), record.successor)

    def _issue(self, app: App, previous: _Refresh | None) -> dict[str, Any]:
        refresh_token = secrets.token_hex(32)
        now = self._clock()
        self._refresh[refresh_token] = _Refresh(app.client_id, now)
        if previous is not None:
            previous.successor = refresh_token
            previous.rotated_at = now
        return self._token_response(self._new_access(app), refresh_token)

    def _new_access(self, app: App) -> str:
        token = "eyJ" + secrets.token_urlsafe(48)
        self._access[token] = (app.client_id, self._clock() + self._config.minutes(self._config.access_token_minutes))
        return token

    def _token_response(self, access: str, refresh_token: str) -> dict[str, Any]:
        return {
            "id_token": "eyJ" + secrets.token_urlsafe(32),
            "access_token": access,
            "expires_in": max(1, round(self._config.minutes(self._config.access_token_minutes))),
            "token_type": "Bearer",
            "refresh_token": refresh_token,
            "scope": SCOPES,
        }

    def tokens_for(self, app: App) -> dict[str, Any]:
        """A fresh access/refresh pair without the code dance (admin convenience)."""
        with self._lock:
            return self._issue(app, None)

    def authenticate(self, authorization: str | None) -> App | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[len("Bearer ") :].strip()
        with self._lock:
            found = self._access.get(token)
            if found is None or found[1] < self._clock():
                return None
            return self.apps.get(found[0])
