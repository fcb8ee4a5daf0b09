"""A 429 whose Retry-After names no wait the clock can hold (`inf`, a huge number): the entry waits
at most a day, Xero's longest limit, and says it waits for Xero's rate limit. Before, `inf`
became the tenant's block, raised OverflowError where it was turned into microseconds, and the
bill was recorded as a dispatcher failure. Real poster and emulator over HTTP."""

from __future__ import annotations

import json
import time

import pytest
from xero_emulator.messages import Request, Response
from xerolink_common.reasons import Reason
from xerolink_mapper import samples

from tests.fixtures.contacts import Handler, post_all
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_for
from tests.fixtures.recorded_xero import RecordedXero, is_create
from tests.fixtures.stored_rows import link_row, outbox_rows

DAY_US = 86_400 * 1_000_000


@pytest.mark.parametrize("retry_after", ["inf", "1e400"])
def test_a_retry_after_beyond_a_day_waits_a_day_as_a_rate_limit(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, retry_after: str
) -> None:
    emulator = emulator_factory()
    app = poster_factory(settings(max_attempts=3))
    stub = stub_for(app)
    connect(stub, emulator)
    refused: list[float] = []

    def limited(request: Request, handle: Handler) -> Response | None:
        if is_create(request, "Invoices") and not refused:
            refused.append(time.time())
            return Response.json(
                429,
                {"Title": "Too Many Requests", "Status": 429},
                {"Retry-After": retry_after, "X-Rate-Limit-Problem": "day"},
            )
        return None

    RecordedXero(emulator, limited)
    post_all(stub, [samples.client_bill(64_001)])

    def reason() -> str:
        error = link_row(app, 64_001).last_error
        return str(json.loads(error).get("reason", "")) if error else ""

    wait_for(lambda: bool(reason()), timeout=20, what="the bill's wait recorded")
    assert reason() == Reason.XERO_RATE_LIMITED
    [row] = outbox_rows(app, 64_001)
    refused_us = int(refused[0] * 1_000_000)
    assert refused_us + DAY_US - 60_000_000 <= row.available_us <= refused_us + DAY_US + 60_000_000
    assert row.attempts == 0, "a rate limit counts no attempt"
