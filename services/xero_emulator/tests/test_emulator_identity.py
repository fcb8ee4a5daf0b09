"""The identity side: code exchange, rotating refresh tokens with a grace period, expiry,
/connections, and Xero's 401/403 bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from xero_emulator import EmulatorConfig, EmulatorServer


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    # A "minute" of 0.1 s: access tokens live 3 s, the refresh grace period 3 s.
    emulator = EmulatorServer(EmulatorConfig(minute_seconds=0.1)).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def token(server: EmulatorServer, form: dict[str, str], auth: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{server.base_url}/connect/token", data=form, auth=auth)


def api(server: EmulatorServer, access: str, tenant_id: str) -> httpx.Response:
    return httpx.get(
        f"{server.api_url}/Organisation", headers={"Authorization": f"Bearer {access}", "xero-tenant-id": tenant_id}
    )


def test_code_exchange_and_refresh_rotation(server: EmulatorServer) -> None:
    org = server.create_organisation()
    client = (org["client_id"], org["client_secret"])
    exchanged = token(server, {"grant_type": "authorization_code", "code": org["authorization_code"]}, client)
    assert exchanged.status_code == 200, exchanged.text
    tokens = exchanged.json()
    assert (tokens["token_type"], tokens["expires_in"]) == ("Bearer", 3)
    assert api(server, tokens["access_token"], org["tenant_id"]).status_code == 200
    # A code works once.
    again = token(server, {"grant_type": "authorization_code", "code": org["authorization_code"]}, client)
    assert again.json() == {"error": "invalid_grant"}

    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    rotated = token(server, {**form, "client_id": client[0], "client_secret": client[1]}).json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    # The previous refresh token still works during the grace period and yields the same successor.
    recovered = token(server, form, client).json()
    assert recovered["refresh_token"] == rotated["refresh_token"]
    time.sleep(3.2)
    assert token(server, form, client).json()["error"] == "invalid_grant"
    assert api(server, tokens["access_token"], org["tenant_id"]).status_code == 401  # expired
    newest = token(server, {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}, client)
    assert api(server, newest.json()["access_token"], org["tenant_id"]).status_code == 200


def test_bad_client_and_grant(server: EmulatorServer) -> None:
    org = server.create_organisation()
    bad_secret = token(server, {"grant_type": "refresh_token", "refresh_token": "x"}, (org["client_id"], "nope"))
    assert (bad_secret.status_code, bad_secret.json()) == (400, {"error": "invalid_client"})
    unsupported = token(server, {"grant_type": "password"}, (org["client_id"], org["client_secret"]))
    assert unsupported.json() == {"error": "unsupported_grant_type"}


def test_401_and_403_bodies(server: EmulatorServer) -> None:
    org = server.create_organisation()
    other = server.create_organisation("Another Firm")
    unauthenticated = api(server, "not-a-token", org["tenant_id"])
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["Detail"] == "AuthenticationUnsuccessful"
    # A valid token for a tenant its app is not connected to.
    forbidden = api(server, org["access_token"], other["tenant_id"])
    assert forbidden.status_code == 403
    assert forbidden.json()["Detail"] == "AuthorizationUnsuccessful"
    assert api(server, org["access_token"], "").status_code == 403


def test_connections_list_and_disconnect(server: EmulatorServer) -> None:
    org = server.create_organisation("Smith Legal")
    headers = {"Authorization": f"Bearer {org['access_token']}"}
    connections = httpx.get(f"{server.base_url}/connections", headers=headers).json()
    assert [(c["tenantId"], c["tenantType"], c["tenantName"]) for c in connections] == [
        (org["tenant_id"], "ORGANISATION", "Smith Legal")
    ]
    assert httpx.delete(f"{server.base_url}/connections/{connections[0]['id']}", headers=headers).status_code == 204
    assert httpx.get(f"{server.base_url}/connections", headers=headers).json() == []
    assert api(server, org["access_token"], org["tenant_id"]).status_code == 403
