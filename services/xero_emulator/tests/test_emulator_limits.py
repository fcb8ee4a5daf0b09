"""Xero's rate limits with a scaled window: per-tenant minute and day, concurrent calls, the
app-wide minute, and the headers a client steers by."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from xero_emulator import EmulatorConfig, EmulatorServer, FaultRule
from xero_emulator.limits import RateLimiter
from xero_emulator.testing import connect, new_tenant


@pytest.fixture
def limited() -> Iterator[EmulatorServer]:
    config = EmulatorConfig(minute_seconds=0.5, minute_limit=5, day_limit=8, app_minute_limit=7, concurrent_limit=2)
    server = EmulatorServer(config).start()
    try:
        yield server
    finally:
        server.stop()


def test_minute_limit_headers_then_429_and_recovery(limited: EmulatorServer) -> None:
    tenant = new_tenant(limited)
    remaining = []
    for _ in range(5):
        response = tenant.client.get("/Organisation")
        assert response.status_code == 200
        remaining.append(int(response.headers["X-MinLimit-Remaining"]))
    assert remaining == [4, 3, 2, 1, 0]
    assert response.headers["X-DayLimit-Remaining"] == "3"
    assert response.headers["X-AppMinLimit-Remaining"] == "2"
    refused = tenant.client.get("/Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "minute"
    assert int(refused.headers["Retry-After"]) >= 1
    time.sleep(0.55)
    assert tenant.client.get("/Organisation").status_code == 200


def test_day_limit(limited: EmulatorServer) -> None:
    tenant = new_tenant(limited)
    statuses = []
    for _ in range(3):
        for _ in range(3):
            statuses.append(tenant.client.get("/Organisation").status_code)
        time.sleep(0.55)  # let the minute window pass; the day keeps counting
    assert statuses.count(200) == 8
    refused = tenant.client.get("/Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "day"
    assert refused.headers["X-DayLimit-Remaining"] == "0"
    # The "day" is 1,440 scaled minutes: the wait is the rest of it, in whole seconds.
    assert int(refused.headers["Retry-After"]) == pytest.approx(0.5 * 1440, abs=2)


def test_app_minute_limit_spans_tenants(limited: EmulatorServer) -> None:
    first = limited.create_organisation("Firm A")
    second = limited.create_organisation("Firm B", client_id=first["client_id"])
    a, b = connect(limited, first), connect(limited, second)
    codes = [a.get("/Organisation").status_code for _ in range(4)] + [
        b.get("/Organisation").status_code for _ in range(3)
    ]
    assert codes == [200] * 7
    refused = b.get("/Organisation")
    assert refused.status_code == 429
    assert refused.headers["X-Rate-Limit-Problem"] == "appminute"
    assert refused.headers["X-AppMinLimit-Remaining"] == "0"


def test_concurrent_limit(limited: EmulatorServer) -> None:
    tenant = new_tenant(limited)
    limited.faults.add(FaultRule("latency", seconds=0.3, methods=("GET",), path_contains="/Organisation"))
    results: list[httpx.Response] = []

    def call() -> None:
        with connect(limited, tenant.info) as client:
            results.append(client.get("/Organisation"))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 429]
    refused = next(r for r in results if r.status_code == 429)
    assert refused.headers["X-Rate-Limit-Problem"] == "concurrent"


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
