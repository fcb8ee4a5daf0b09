"""Xero's limits as pure budgets, so the dispatcher waits before Xero has to refuse.

Per tenant: 5 calls in progress, 60 a minute, 5,000 a day; per app: 10,000 a minute. Each budget
is a sliding-window log. A call counts from the moment it is reserved and, once answered, from
the time the answer arrived: Xero counted it at some instant before that, so the entry expires
no earlier than Xero's does, whatever Xero's window alignment. The windows scale with
`minute_seconds` (tests and benches run with scaled minutes against the emulator).
Times are wall-clock seconds (the log survives a lease moving to another process)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

MINUTES_PER_DAY = 1440
# The longest wait a Retry-After is taken for: a day, Xero's longest limit.
MAX_RETRY_AFTER_SECONDS = 86_400.0


@dataclass(frozen=True)
class Limits:
    concurrent: int = 5
    per_minute: int = 60
    per_day: int = 5000
    app_per_minute: int = 10_000
    minute_seconds: float = 60.0

    @property
    def day_seconds(self) -> float:
        return self.minute_seconds * MINUTES_PER_DAY


class SlidingWindow:
    """At most `limit` calls in any `window` seconds; in-flight calls count too."""

    def __init__(self, limit: int, window: float, history: Iterable[float] = ()) -> None:
        self.limit = limit
        self.window = window
        self.done: deque[float] = deque(sorted(history))
        # Calls that left the window during the last window: the only ones that can explain why
        # Xero, counting from when a call arrived, reports fewer remaining than we count.
        self.expired: deque[float] = deque()
        self.in_flight = 0

    def _expire(self, now: float) -> None:
        edge = now - self.window
        while self.done and self.done[0] <= edge:
            self.expired.append(self.done.popleft())
        while self.expired and self.expired[0] <= edge - self.window:
            self.expired.popleft()

    def wait_time(self, now: float) -> float:
        """0 when a call may start now, else seconds until one may (a short poll while every
        counted call is still in flight)."""
        self._expire(now)
        if self.in_flight + len(self.done) < self.limit:
            return 0.0
        if not self.done:
            return min(0.05, self.window)
        return max(self.done[0] + self.window - now, 0.001)

    def reserve(self) -> None:
        self.in_flight += 1

    def complete(self, now: float) -> None:
        self.in_flight = max(self.in_flight - 1, 0)
        self.done.append(now)

    def cancel(self) -> None:
        """A reserved call that was not made after all: it counts no more."""
        self.in_flight = max(self.in_flight - 1, 0)

    def sync_remaining(self, remaining: int, now: float, round_trip: float = 0.0) -> None:
        """Xero said `remaining` calls are left: if it counts more than we do (a log lost in a
        crash, calls we did not make), add entries at `now` so our count is not below Xero's.
        Xero counted when the call arrived, `round_trip` seconds ago at most: our calls that left
        the window since then may still be in its count, so that many of difference is skew, not
        usage we missed. Any difference beyond them is adopted."""
        self._expire(now)
        skew = sum(1 for t in self.expired if t > now - self.window - round_trip)
        ours = self.limit - self.in_flight - len(self.done)
        for _ in range(max(ours - max(remaining, 0) - skew, 0)):
            self.done.append(now)

    def history(self, now: float) -> list[float]:
        self._expire(now)
        return list(self.done)


class TenantBudget:
    """All of one tenant's limits plus the app-wide minute shared by every tenant of a process."""

    def __init__(self, limits: Limits, app: SlidingWindow, minute_history: Iterable[float] = ()) -> None:
        self.limits = limits
        history = list(minute_history)
        self.minute = SlidingWindow(limits.per_minute, limits.minute_seconds, history)
        self.day = SlidingWindow(limits.per_day, limits.day_seconds, history)
        self.app = app
        self.in_progress = 0
        self.blocked_until = 0.0

    def wait_time(self, now: float) -> float:
        if now < self.blocked_until:
            return self.blocked_until - now
        if self.in_progress >= self.limits.concurrent:
            return 0.005
        return max(self.minute.wait_time(now), self.day.wait_time(now), self.app.wait_time(now))

    def try_acquire(self, now: float) -> float:
        """Reserves one call and returns 0, or returns how long to wait."""
        wait = self.wait_time(now)
        if wait > 0:
            return wait
        self.in_progress += 1
        for window in (self.minute, self.day, self.app):
            window.reserve()
        return 0.0

    def release(self, now: float, headers: RateHeaders | None = None, round_trip: float = 0.0) -> None:
        self.in_progress = max(self.in_progress - 1, 0)
        for window in (self.minute, self.day, self.app):
            window.complete(now)
        if headers is not None:
            self.observe(headers, now, round_trip)

    def cancel(self) -> None:
        """Gives back a reservation whose call was not made (another limit said no first)."""
        self.in_progress = max(self.in_progress - 1, 0)
        for window in (self.minute, self.day, self.app):
            window.cancel()

    def observe(self, headers: RateHeaders, now: float, round_trip: float = 0.0) -> None:
        if headers.minute_remaining is not None:
            self.minute.sync_remaining(headers.minute_remaining, now, round_trip)
        if headers.day_remaining is not None:
            self.day.sync_remaining(headers.day_remaining, now, round_trip)
        if headers.app_minute_remaining is not None:
            self.app.sync_remaining(headers.app_minute_remaining, now, round_trip)
        if headers.retry_after is not None:
            self.blocked_until = max(self.blocked_until, now + headers.retry_after)

    def minute_headroom(self, now: float) -> int:
        return self.limits.per_minute - self.minute.in_flight - len(self.minute.history(now))


@dataclass(frozen=True)
class RateHeaders:
    """What a Xero response says about the limits (any may be absent)."""

    minute_remaining: int | None = None
    day_remaining: int | None = None
    app_minute_remaining: int | None = None
    retry_after: float | None = None
    problem: str = ""

    @classmethod
    def parse(cls, headers: dict[str, str], now: float | None = None) -> RateHeaders:
        """`Retry-After` is in seconds (whole seconds in HTTP, whatever the window's scale);
        `now` (epoch seconds) reads one given as a date."""
        lower = {k.lower(): v for k, v in headers.items()}

        def number(name: str) -> int | None:
            value = lower.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        retry = (
            _retry_after(lower["retry-after"], time.time() if now is None else now) if "retry-after" in lower else None
        )
        return cls(
            minute_remaining=number("x-minlimit-remaining"),
            day_remaining=number("x-daylimit-remaining"),
            app_minute_remaining=number("x-appminlimit-remaining"),
            retry_after=retry,
            problem=lower.get("x-rate-limit-problem", ""),
        )


def _retry_after(value: str, now: float) -> float:
    """Seconds to wait, from delay-seconds or an HTTP-date (RFC 9110, 10.2.3), at most a day:
    Xero's longest limit is the day's (developer.xero.com/faq/limits), so a longer wait names
    none of them, and `inf` became a block the clock could not hold. Anything else waits a
    second, as a 429 without the header does not."""
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
            # The asctime form and a -0000 zone come back without a zone: HTTP-dates are GMT.
            seconds = when.replace(tzinfo=when.tzinfo or UTC).timestamp() - now
        except (TypeError, ValueError, IndexError, OverflowError):  # overflow: a 20-digit field
            return 1.0
        seconds = max(seconds, 0.0)
    if math.isnan(seconds) or seconds < 0:
        return 1.0
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


def app_bucket_size(window_us: int) -> int:
    """The app's shared minute counts calls in buckets of a sixtieth of the window, so a count
    leaves the window at most a sixtieth late and never early."""
    return max(window_us // 60, 1)


def app_bucket_of(at_us: int, window_us: int) -> int:
    """The start of the bucket the app's shared minute counts a call at `at_us` in."""
    return at_us - at_us % app_bucket_size(window_us)


class AppCallMoves:
    """Calls to move in the app's shared minute from the bucket they were counted in (as they
    were reserved) to the bucket of their answer, which Xero counted them by. Gathered here and
    written by the next transaction that counts a call, or by the dispatcher's loop, instead of a
    transaction of their own each: most calls are answered in a later bucket than their count.
    Until written, a call stays in its earlier bucket, which leaves the window a minute later."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deltas: dict[int, int] = {}

    def add(self, counted_us: int, answered_us: int, window_us: int) -> None:
        source, target = app_bucket_of(counted_us, window_us), app_bucket_of(answered_us, window_us)
        if source == target:
            return
        with self._lock:
            self._deltas[source] = self._deltas.get(source, 0) - 1
            self._deltas[target] = self._deltas.get(target, 0) + 1

    def take(self) -> dict[int, int]:
        """The calls to add to each bucket (negative: to take away), now owed by the caller: it
        writes them, or puts them back."""
        with self._lock:
            taken = {bucket: calls for bucket, calls in self._deltas.items() if calls}
            self._deltas = {}
        return taken

    def put_back(self, deltas: dict[int, int]) -> None:
        with self._lock:
            for bucket, calls in deltas.items():
                self._deltas[bucket] = self._deltas.get(bucket, 0) + calls
