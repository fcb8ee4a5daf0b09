"""Retry timing and per-call idempotency keys."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IDEMPOTENCY_KEY_MAX = 128


def backoff_delay(attempt: int, base: float, cap: float, random: Callable[[], float]) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random, so retries of
    many failures spread out without ever retrying at once. The entries of one failure share a
    draw (`Results.retry`), so they come back together, in one claim and one call."""
    step: float = min(cap, base * float(2 ** max(attempt - 1, 0)))
    return step / 2 + random() * step / 2


def idempotency_key(tenant_id: str, method: str, path: str, names: Sequence[str], body: bytes) -> str:
    """Deterministic per call and named by what the call is for: `names` identify the Actionstep
    records, their versions and the operations it carries (a batch: the set of them), or the Xero
    object it changes. Two records whose Xero bodies are equal (two applications of 50.00 from one
    credit note to one invoice) therefore never share a key, so Xero never replays one's answer
    for the other; the same call repeated (same names, same body) replays. The body's digest is
    part of it so that changed content under the same names is a new call, never Xero's 400 for
    a key reused with another body."""
    if not names:
        raise ValueError("an idempotency key needs the records or object the call is for")
    parts = [tenant_id.encode(), method.encode(), path.encode(), *(n.encode() for n in sorted(names)), body]
    digest = hashlib.sha256(b"\0".join(parts)).hexdigest()
    key = f"xerolink-{digest}"
    assert len(key) <= IDEMPOTENCY_KEY_MAX
    return key


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]
