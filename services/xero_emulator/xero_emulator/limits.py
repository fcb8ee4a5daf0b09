"""Xero's rate limits: per tenant (per app) 5 calls in progress, 60 a minute, 5,000 a day; per app
10,000 a minute across tenants. Sliding windows of scalable length; refused calls do not count."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from xero_emulator.config import EmulatorConfig


@dataclass
class Decision:
    allowed: bool
    day_remaining: int
    minute_remaining: int
    app_minute_remaining: int
    problem: str | None = None  # "concurrent", "minute", "day" or "appminute" as Xero names them
    retry_after: int = 0

    def headers(self) -> dict[str, str]:
        headers = {
            "X-DayLimit-Remaining": str(self.day_remaining),
            "X-MinLimit-Remaining": str(self.minute_remaining),
            "X-AppMinLimit-Remaining": str(self.app_minute_remaining),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
            headers["X-Rate-Limit-Problem"] = self.problem or ""
        return headers


@dataclass
class _Window:
    seconds: float
    limit: int
    hits: deque[float] = field(default_factory=deque)

    def prune(self, now: float) -> None:
        while self.hits and self.hits[0] <= now - self.seconds:
            self.hits.popleft()

    def remaining(self) -> int:
        return max(0, self.limit - len(self.hits))

    def wait(self, now: float) -> float:
        return self.hits[0] + self.seconds - now if self.hits else 0.0


class RateLimiter:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._minute: dict[tuple[str, str], _Window] = {}
        self._day: dict[tuple[str, str], _Window] = {}
        self._app: dict[str, _Window] = {}
        self._in_flight: dict[tuple[str, str], int] = {}

    def acquire(self, app: str, tenant: str) -> Decision:
        """Counts the call if every limit allows it; the caller must `release` an allowed call."""
        cfg = self._config
        key = (app, tenant)
        with self._lock:
            now = self._clock()
            minute = self._minute.setdefault(key, _Window(cfg.minute_seconds, cfg.minute_limit))
            day = self._day.setdefault(key, _Window(cfg.day_seconds, cfg.day_limit))
            app_minute = self._app.setdefault(app, _Window(cfg.minute_seconds, cfg.app_minute_limit))
            for window in (minute, day, app_minute):
                window.prune(now)
            decision = Decision(True, day.remaining(), minute.remaining(), app_minute.remaining())
            if self._in_flight.get(key, 0) >= cfg.concurrent_limit:
                return self._refuse(decision, "concurrent", 1.0)
            for problem, window in (("day", day), ("appminute", app_minute), ("minute", minute)):
                if window.remaining() == 0:
                    return self._refuse(decision, problem, window.wait(now))
            for window in (minute, day, app_minute):
                window.hits.append(now)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
            decision.day_remaining, decision.minute_remaining = day.remaining(), minute.remaining()
            decision.app_minute_remaining = app_minute.remaining()
            return decision

    @staticmethod
    def _refuse(decision: Decision, problem: str, wait: float) -> Decision:
        decision.allowed = False
        decision.problem = problem
        # Retry-After is whole seconds in HTTP; never 0 so a client always backs off.
        decision.retry_after = max(1, math.ceil(wait))
        return decision

    def in_flight(self, app: str, tenant: str) -> int:
        with self._lock:
            return self._in_flight.get((app, tenant), 0)

    def release(self, app: str, tenant: str) -> None:
        with self._lock:
            key = (app, tenant)
            self._in_flight[key] = max(0, self._in_flight.get(key, 0) - 1)

    def reset(self) -> None:
        with self._lock:
            self._minute.clear()
            self._day.clear()
            self._app.clear()
