"""Configuration from environment variables (documented in docs/poster.md)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from xerolink_common.listening import on_loopback

from xerolink_poster.adapters.database import MAX_TIMEOUT_MS, PostgresTimeouts
from xerolink_poster.adapters.token_vault import TokenKeyError, TokenVault
from xerolink_poster.adapters.xero_identity import XeroApps
from xerolink_poster.domain.rate_limits import Limits
from xerolink_poster.entrypoints.drift_config import WebhookSettings, load_polling, load_webhooks
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.drift_polling import PollSettings
from xerolink_poster.service_layer.posting import GroupSettings

DEFAULT_ADDRESS = on_loopback(50062)
DEFAULT_DATABASE_URL = "sqlite:///xerolink-poster.db"
DEFAULT_MAPPER_TARGET = "127.0.0.1:50061"


@dataclass(frozen=True)
class PosterConfig:
    address: str
    database_url: str
    mapper_target: str
    dispatcher: DispatcherSettings
    instance_id: str
    workers: int
    run_dispatcher: bool
    # The keys sealing OAuth tokens at rest (XEROLINK_TOKEN_ENCRYPTION_KEY / _FILE); None: from the environment.
    token_vault: TokenVault | None = None
    # Where the Xero apps' client credentials are configured (XEROLINK_XERO_APPS_FILE).
    xero_apps: XeroApps = field(default_factory=XeroApps)
    grouping: GroupSettings = field(default_factory=GroupSettings)
    # Xero's webhooks (XEROLINK_WEBHOOK_*) and the If-Modified-Since poller (XEROLINK_POLL_*).
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    polling: PollSettings = field(default_factory=PollSettings)
    # How long PostgreSQL sessions wait (XEROLINK_PG_IDLE_IN_TRANSACTION_MS, XEROLINK_PG_CALL_LOCK_TIMEOUT_MS).
    postgres: PostgresTimeouts = field(default_factory=PostgresTimeouts)


def _float(env: Mapping[str, str], name: str, default: float, zero_allowed: bool = False) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        parsed = float(value)
    except ValueError as exc:
        raise SystemExit(f"{name}={value!r} is not a number") from exc
    if parsed < 0 or (parsed == 0 and not zero_allowed):
        raise SystemExit(f"{name} must be {'zero or more' if zero_allowed else 'positive'}")
    return parsed


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    parsed = _float(env, name, default)
    if parsed != int(parsed):
        # Rounded down, 0.5 would be 0: a Post group of at most none never forms, its callers wait.
        raise SystemExit(f"{name} must be a whole number, not {env.get(name)!r}")
    return int(parsed)


def _milliseconds(env: Mapping[str, str], name: str, default: int) -> int:
    """A PostgreSQL timeout: a whole number of milliseconds PostgreSQL takes (0: not set)."""
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) > MAX_TIMEOUT_MS:
        raise SystemExit(f"{name}={value!r} must be a whole number of milliseconds from 0 to {MAX_TIMEOUT_MS}")
    return int(value)


def load(env: Mapping[str, str] | None = None) -> PosterConfig:
    env = os.environ if env is None else env
    batch = _int(env, "XEROLINK_BATCH_SIZE", 50)
    if batch > 100:
        raise SystemExit("XEROLINK_BATCH_SIZE must be at most 100 (Xero advises 50)")
    limits = Limits(
        concurrent=_int(env, "XEROLINK_XERO_CONCURRENT_LIMIT", 5),
        per_minute=_int(env, "XEROLINK_XERO_MINUTE_LIMIT", 60),
        per_day=_int(env, "XEROLINK_XERO_DAY_LIMIT", 5000),
        app_per_minute=_int(env, "XEROLINK_XERO_APP_MINUTE_LIMIT", 10_000),
        minute_seconds=_float(env, "XEROLINK_XERO_MINUTE_SECONDS", 60.0),
    )
    settings = DispatcherSettings(
        batch_size=batch,
        limits=limits,
        lease_ttl=_float(env, "XEROLINK_TENANT_LEASE_SECONDS", 30.0),
        max_attempts=_int(env, "XEROLINK_MAX_ATTEMPTS", 8),
        backoff_base=_float(env, "XEROLINK_BACKOFF_BASE_SECONDS", 0.5),
        backoff_cap=_float(env, "XEROLINK_BACKOFF_CAP_SECONDS", 60.0),
        http_timeout=_float(env, "XEROLINK_XERO_TIMEOUT_SECONDS", 10.0),
        max_tenants=_int(env, "XEROLINK_DISPATCHER_MAX_TENANTS", 50),
        idle_release=_float(env, "XEROLINK_TENANT_IDLE_RELEASE_SECONDS", 1.0),
        turn=_float(env, "XEROLINK_TENANT_TURN_SECONDS", 0.5),
        outbox_retention=_float(env, "XEROLINK_OUTBOX_RETENTION_DAYS", 30.0) * 86400,
        purge_batch=_int(env, "XEROLINK_OUTBOX_PURGE_BATCH", 500),
        purge_interval=_float(env, "XEROLINK_OUTBOX_PURGE_INTERVAL_SECONDS", 60.0),
    )
    if settings.http_timeout >= settings.lease_ttl / 2:
        raise SystemExit("XEROLINK_XERO_TIMEOUT_SECONDS must be under half of XEROLINK_TENANT_LEASE_SECONDS")
    return PosterConfig(
        address=env.get("XEROLINK_POSTER_ADDRESS", DEFAULT_ADDRESS),
        database_url=env.get("XEROLINK_DATABASE_URL", DEFAULT_DATABASE_URL),
        mapper_target=env.get("XEROLINK_MAPPER_TARGET", DEFAULT_MAPPER_TARGET),
        dispatcher=settings,
        instance_id=env.get("XEROLINK_POSTER_INSTANCE", f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"),
        workers=_int(env, "XEROLINK_POSTER_WORKERS", 32),
        run_dispatcher=env.get("XEROLINK_DISPATCHER", "on").lower() not in ("off", "0", "false"),
        token_vault=_vault(env),
        xero_apps=XeroApps.from_environment(env),
        grouping=GroupSettings(
            enabled=env.get("XEROLINK_POST_GROUP_COMMIT", "on").lower() not in ("off", "0", "false"),
            window=_float(env, "XEROLINK_POST_GROUP_WINDOW_MS", 0.0, zero_allowed=True) / 1000,
            max_size=_int(env, "XEROLINK_POST_GROUP_MAX", 256),
        ),
        webhooks=load_webhooks(env),
        polling=load_polling(env),
        postgres=PostgresTimeouts(
            idle_in_transaction_ms=_milliseconds(env, "XEROLINK_PG_IDLE_IN_TRANSACTION_MS", 60_000),
            call_lock_ms=_milliseconds(env, "XEROLINK_PG_CALL_LOCK_TIMEOUT_MS", 2_000),
        ),
    )


def _vault(env: Mapping[str, str]) -> TokenVault:
    try:
        return TokenVault.from_environment(env)
    except TokenKeyError as exc:
        raise SystemExit(f"token keys: {exc}") from exc
