"""Xero's Retry-After as the budget reads it: seconds to wait, never more than a day and never
a value the clock cannot hold, whatever the header says."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xerolink_poster.domain.rate_limits import (
    MAX_RETRY_AFTER_SECONDS,
    Limits,
    RateHeaders,
    SlidingWindow,
    TenantBudget,
)

NOW = 1_800_000_000.0


def _wait(value: str) -> float | None:
    return RateHeaders.parse({"Retry-After": value}, now=NOW).retry_after


def test_a_wait_in_seconds_is_kept() -> None:
    assert _wait("30") == 30.0
    assert _wait("0") == 0.0


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400", "999999999999999999999999"])
def test_a_wait_longer_than_a_day_waits_a_day(value: str) -> None:
    """Xero's longest limit is the day's (developer.xero.com/faq/limits: "5000 calls per day"):
    no wait it names can be longer. Before, `inf` became the tenant's block and raised
    OverflowError where it was turned into microseconds, failing the job."""
    assert _wait(value) == MAX_RETRY_AFTER_SECONDS == 86_400


@pytest.mark.parametrize("value", ["nan", "-5", "soon", ""])
def test_a_wait_that_is_no_number_of_seconds_waits_a_second(value: str) -> None:
    assert _wait(value) == 1.0


def test_an_http_date_waits_until_that_date() -> None:
    """RFC 9110, 10.2.3: Retry-After is delay-seconds or an HTTP-date."""
    assert _wait(formatdate(NOW + 120, usegmt=True)) == 120.0
    assert _wait(formatdate(NOW - 120, usegmt=True)) == 0.0


@given(st.text(max_size=40))
def test_any_header_gives_a_wait_the_budget_can_hold(value: str) -> None:
    wait = _wait(value)
    assert wait is not None and math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER_SECONDS
    budget = TenantBudget(Limits(), SlidingWindow(10_000, 60.0))
    budget.observe(RateHeaders(retry_after=wait), NOW)
    assert int(budget.blocked_until * 1_000_000) >= int(NOW * 1_000_000)
