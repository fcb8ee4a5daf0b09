"""The dispatcher's settings (read from the environment in entrypoints/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from xerolink_poster.domain.rate_limits import Limits


@dataclass(frozen=True)
class DispatcherSettings:
    batch_size: int = 50
    limits: Limits = field(default_factory=Limits)
    # The tenant lease: renewed before every call; a call never outlives it (timeout < ttl / 2).
    lease_ttl: float = 30.0
    # How long a claimed outbox entry stays claimed (renewed before each call).
    claim_ttl: float = 300.0
    poll_interval: float = 0.02
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    # A tenant worker with no work for this long hands its lease back.
    idle_release: float = 1.0
    # While tenants with work wait for a worker (max_tenants are served), a worker that has
    # served its tenant this long, or whose tenant must wait this long for Xero's budget, hands
    # the tenant back so the one waiting longest is served next.
    turn: float = 0.5
    http_timeout: float = 10.0
    max_tenants: int = 50
    # Done outbox entries older than this (seconds since accepted) are deleted, `purge_batch`
    # rows a transaction, every `purge_interval` seconds.
    outbox_retention: float = 30 * 86400.0
    purge_batch: int = 500
    purge_interval: float = 60.0
