"""A real emulator on a loopback port per test, with a fresh organisation and an httpx client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.testing import Tenant, new_tenant


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(EmulatorConfig(minute_seconds=1.0, minute_limit=1000, day_limit=100000)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tenant(emulator: EmulatorServer) -> Iterator[Tenant]:
    t = new_tenant(emulator)
    with t.client:
        yield t
