"""Emulator settings. Time-based windows scale with `minute_seconds` so a test can run Xero's
minute in one second (the day becomes 1,440 of those minutes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    minute_seconds: float = 60.0
    concurrent_limit: int = 5
    minute_limit: int = 60
    day_limit: int = 5000
    app_minute_limit: int = 10000
    # Xero keeps idempotency keys for minutes (about six); expressed in emulated minutes.
    idempotency_minutes: float = 6.0
    access_token_minutes: float = 30.0
    # How long a rotated-out refresh token keeps working, so a lost token response can be recovered.
    refresh_grace_minutes: float = 30.0
    max_body_bytes: int = 3_500_000
    provider_name: str = "xerolink emulator"
    seed: int = 20260701
    # Where Xero's webhooks go and the key that signs them (both, or neither); see webhooks.py.
    webhook_url: str | None = None
    webhook_key: str | None = None

    @property
    def day_seconds(self) -> float:
        return self.minute_seconds * 1440

    def minutes(self, count: float) -> float:
        return count * self.minute_seconds
