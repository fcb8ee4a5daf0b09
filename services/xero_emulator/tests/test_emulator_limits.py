"""Xero's rate limits with a scaled window: per-tenant minute and day, concurrent calls, the
app-wide minute, and the headers a client steers by."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from xero_emulator import EmulatorConfig, EmulatorServer, FaultRule
from xero_emulator.limits import RateLimiter
from xero_emulator.testing import connect, new_tenant


@pytest.fixture
def emulator_with() -> Iterator[Callable[..., EmulatorServer]]:
    """Starts an emulator whose "minute" is two seconds, with the given limits (the others high)."""
    servers: list[EmulatorServer] = []

    def start(
        *, minute_limit: int = 1000, day_limit: int = 1000, app_minute_limit: int = 1000, concurrent_limit: int = 5
    ) -> EmulatorServer:
        config = EmulatorConfig(
            minute_seconds=2.0,
            minute_limit=minute_limit,
            day_limit=day_limit,
            app_minute_limit=app_minute_limit,
            concurrent_limit=concurrent_limit,
        )
        servers.append(EmulatorServer(config).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_minute_limit_headers_then_429_and_recovery(emulator_with: Callable[..., EmulatorServer]) -> None:
    tenant = new_tenant(emulator_with(minute_limit=5))
    remaining = []
    for _ in range(5):
        response = tenant.client.get("/Organisation")
        assert response.status_code == 200
        remaining.append(int(response.headers["X-MinLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    assert response.headers["X-DayLimit-Remaining"] == "995"
    assert response.headers["X-AppMinLimit-Remaining"] == "995"
    refused = tenant.client.get("/Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(refused.headers["Retry-After"]) <= 2
    time.sleep(2.05)
    assert tenant.client.get("/Organisation").status_code == 200


def test_day_limit(emulator_with: Callable[..., EmulatorServer]) -> None:
    tenant = new_tenant(emulator_with(day_limit=8))
    assert [tenant.client.get("/Organisation").status_code for _ in range(8)] == [200] * 8
    refused = tenant.client.get("/Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "day"
    assert refused.headers["X-DayLimit-Remaining"] == "0"
    # The "day" is 1,440 scaled minutes: the wait is the rest of it, in whole seconds.
    assert int(refused.headers["Retry-After"]) == pytest.approx(2 * 1440, abs=3)


def test_app_minute_limit_spans_tenants(emulator_with: Callable[..., EmulatorServer]) -> None:
    server = emulator_with(app_minute_limit=7)
    first = server.create_organisation("Firm A")
    second = server.create_organisation("Firm B", client_id=first["client_id"])
    a, b = connect(server, first), connect(server, second)
    codes = [a.get("/Organisation").status_code for _ in range(4)] + [
        b.get("/Organisation").status_code for _ in range(3)
    ]
    assert codes == [200] * 7
    refused = b.get("/Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "appminute"
    assert refused.headers["X-AppMinLimit-Remaining"] == "0"
    assert refused.headers["X-MinLimit-Remaining"] == "997"  # Firm B's own minute is far from full


def test_concurrent_limit(emulator_with: Callable[..., EmulatorServer]) -> None:
    limited = emulator_with(concurrent_limit=2)
    tenant = new_tenant(limited)
    limited.faults.add(FaultRule("latency", seconds=1.0, methods=("GET",), path_contains="/Organisation"))
    results: list[httpx.Response] = []

    def call() -> None:
        with connect(limited, tenant.info) as client:
            results.append(client.get("/Organisation"))

    slow = [threading.Thread(target=call) for _ in range(2)]
    for thread in slow:
        thread.start()
    deadline = time.monotonic() + 5
    while limited.state.limiter.in_flight(tenant.info["client_id"], tenant.tenant_id) < 2:
        assert time.monotonic() < deadline, "the two slow calls never got under way"
        time.sleep(0.01)
    refused = tenant.client.get("/Organisation")  # a third call while two are in progress
    for thread in slow:
        thread.join()
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "concurrent"
    assert [r.status_code for r in results] == [200, 200]


def test_limiter_windows_slide_with_the_clock() -> None:
    now = [0.0]
    limiter = RateLimiter(EmulatorConfig(minute_seconds=60, minute_limit=2), clock=lambda: now[0])
    for _ in range(2):
        assert limiter.acquire("app", "t").allowed
        limiter.release("app", "t")
    now[0] = 30.0
    refused = limiter.acquire("app", "t")
    assert (refused.allowed, refused.problem, refused.retry_after) == (False, "minute", 30)
    now[0] = 60.0
    assert limiter.acquire("app", "t").allowed
