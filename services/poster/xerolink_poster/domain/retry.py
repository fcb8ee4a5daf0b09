"""Retry timing and per-call idempotency keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IDEMPOTENCY_KEY_MAX = 128


def backoff_delay(attempt: int, base: float, cap: float, random: Callable[[], float]) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random, so retries of
    many elements spread out without ever retrying at once."""
    step: float = min(cap, base * float(2 ** max(attempt - 1, 0)))
    return step / 2 + random() * step / 2


def idempotency_key(tenant_id: str, method: str, path: str, body: bytes) -> str:
    """Deterministic per call: the same call (same tenant, endpoint and body) always carries
    the same key, so a quick retry is replayed by Xero instead of creating again."""
    digest = hashlib.sha256(b"\0".join([tenant_id.encode(), method.encode(), path.encode(), body])).hexdigest()
    key = f"xerolink-{digest}"
    assert len(key) <= IDEMPOTENCY_KEY_MAX
    return key


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]
