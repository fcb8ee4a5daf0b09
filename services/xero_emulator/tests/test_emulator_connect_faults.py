"""What the connection lifecycle needs from the emulator: Xero's 30-minute token lifetime, faults
on the token endpoint (only for rules that name it), and an organisation whose chart differs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.faults import FaultRule


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    emulator = EmulatorServer(EmulatorConfig()).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def _refresh(server: EmulatorServer, org: dict[str, str], refresh_token: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(org["client_id"], org["client_secret"]),
    )


def test_tokens_last_thirty_minutes_and_a_dropped_refresh_answer_is_recoverable(server: EmulatorServer) -> None:
    org = server.create_organisation()
    assert org["expires_in"] == 1800
    server.faults.add(FaultRule("drop_after_commit", count=1, path_contains="/connect/token"))
    with pytest.raises(httpx.RemoteProtocolError):
        _refresh(server, org, org["refresh_token"])
    # The rotation happened; the previous refresh token still works during the grace period.
    recovered = _refresh(server, org, org["refresh_token"])
    assert recovered.status_code == 200 and recovered.json()["expires_in"] == 1800
    assert _refresh(server, org, recovered.json()["refresh_token"]).status_code == 200


def test_faults_without_a_path_leave_the_token_endpoint_alone(server: EmulatorServer) -> None:
    org = server.create_organisation()
    server.faults.add(FaultRule("error", status=503))
    assert _refresh(server, org, org["refresh_token"]).status_code == 200
    server.faults.add(FaultRule("error", status=503, path_contains="/connect/token", count=1))
    refused = _refresh(server, org, org["refresh_token"])
    assert refused.status_code == 503


def test_an_organisation_can_be_created_without_some_accounts(server: EmulatorServer) -> None:
    created = httpx.post(
        f"{server.base_url}/emulator/organisations", json={"name": "Replacement", "without_accounts": ["091", "850"]}
    ).json()
    accounts = httpx.get(
        f"{server.api_url}/Accounts",
        headers={"Authorization": f"Bearer {created['access_token']}", "xero-tenant-id": created["tenant_id"]},
    ).json()["Accounts"]
    codes = {a["Code"] for a in accounts}
    assert "090" in codes and not {"091", "850"} & codes
