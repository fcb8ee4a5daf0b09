"""Configuration of the webhook endpoint and the poller (docs/poster.md, docs/drift.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from xerolink_poster.service_layer.drift_polling import PollSettings

DEFAULT_WEBHOOK_PATH = "/xero/webhooks"
# Xero's deliveries are small (a few events, developer.xero.com/documentation/webhooks): a body
# far larger is not Xero's and is refused before it is read.
DEFAULT_WEBHOOK_MAX_BYTES = 1_000_000
_OFF = ("", "off", "0", "false")


@dataclass(frozen=True)
class WebhookSettings:
    # host:port of the endpoint; "" when it is off (the default).
    address: str = ""
    path: str = DEFAULT_WEBHOOK_PATH
    # The webhook key Xero's developer portal shows for the app's subscription.
    key: bytes = b""
    max_bytes: int = DEFAULT_WEBHOOK_MAX_BYTES

    @property
    def enabled(self) -> bool:
        return bool(self.address)


def load_webhooks(env: Mapping[str, str]) -> WebhookSettings:
    address = env.get("XEROLINK_WEBHOOK_ADDRESS", "").strip()
    if address.lower() in _OFF:
        return WebhookSettings()
    if ":" not in address:
        raise SystemExit(f"XEROLINK_WEBHOOK_ADDRESS={address!r} must be host:port (port 0 picks a free one)")
    path = env.get("XEROLINK_WEBHOOK_PATH", DEFAULT_WEBHOOK_PATH).strip() or DEFAULT_WEBHOOK_PATH
    if not path.startswith("/") or "?" in path or "#" in path:
        raise SystemExit(f"XEROLINK_WEBHOOK_PATH={path!r} must be a path starting with '/'")
    key = _key(env)
    if not key:
        raise SystemExit(
            "XEROLINK_WEBHOOK_ADDRESS is set but no webhook key is: set XEROLINK_WEBHOOK_KEY or "
            "XEROLINK_WEBHOOK_KEY_FILE to the key Xero's developer portal shows for the app's webhooks"
        )
    raw_max = env.get("XEROLINK_WEBHOOK_MAX_BYTES", "") or str(DEFAULT_WEBHOOK_MAX_BYTES)
    if not raw_max.isdigit() or int(raw_max) < 1024:
        raise SystemExit(f"XEROLINK_WEBHOOK_MAX_BYTES={raw_max!r} must be a whole number of at least 1024")
    return WebhookSettings(address, path, key, int(raw_max))


def _key(env: Mapping[str, str]) -> bytes:
    if env.get("XEROLINK_WEBHOOK_KEY") and env.get("XEROLINK_WEBHOOK_KEY_FILE"):
        raise SystemExit("set XEROLINK_WEBHOOK_KEY or XEROLINK_WEBHOOK_KEY_FILE, not both")
    file = env.get("XEROLINK_WEBHOOK_KEY_FILE", "")
    if file:
        try:
            return Path(file).read_text(encoding="utf-8").strip().encode()
        except OSError as exc:
            raise SystemExit(f"XEROLINK_WEBHOOK_KEY_FILE: cannot read {file}: {exc.strerror}") from exc
    return env.get("XEROLINK_WEBHOOK_KEY", "").strip().encode()


def load_polling(env: Mapping[str, str]) -> PollSettings:
    interval = _number(env, "XEROLINK_POLL_INTERVAL_SECONDS", 0.0)
    if interval < 0:
        raise SystemExit("XEROLINK_POLL_INTERVAL_SECONDS must be zero (off) or more")
    share = _number(env, "XEROLINK_POLL_SHARE", 0.1)
    if not 0 < share <= 0.5:
        raise SystemExit("XEROLINK_POLL_SHARE must be above 0 and at most 0.5 (a share of the tenant's calls)")
    return PollSettings(interval=interval, share=share)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "")
    if not value:
        return default
    try:
        return float(value)
    except ValueError as exc:
        raise SystemExit(f"{name}={value!r} is not a number") from exc
