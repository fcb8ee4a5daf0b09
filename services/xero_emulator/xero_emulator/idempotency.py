"""Idempotency-Key replay: the first response to a key is stored with a fingerprint of the
request; a retry with the same request gets that response again (errors included), a different
request with the same key is refused. Keys expire after a window (Xero: minutes)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEY_LENGTH = 128


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    stored_at: float


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.lower().encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class IdempotencyStore:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], StoredResponse] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}

    def key_lock(self, tenant: str, key: str) -> threading.Lock:
        """Serialises requests sharing a key so a concurrent retry waits and then replays."""
        with self._lock:
            return self._key_locks.setdefault((tenant, key), threading.Lock())

    @property
    def ttl_seconds(self) -> float:
        return self._ttl

    def set_ttl(self, seconds: float) -> None:
        """Changes the window for every key, stored ones included; 0 makes each key expire at
        once, so every retry arrives as if Xero's minutes had passed."""
        if seconds < 0:
            raise ValueError("the idempotency window cannot be negative")
        with self._lock:
            self._ttl = seconds

    def forget_all(self) -> int:
        """Drops every stored key now (the window has passed for all of them); returns how many."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count

    def count(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, tenant: str, key: str) -> StoredResponse | None:
        with self._lock:
            entry = self._entries.get((tenant, key))
            if entry is not None and self._clock() - entry.stored_at >= self._ttl:
                del self._entries[(tenant, key)]
                return None
            return entry

    def put(self, tenant: str, key: str, fp: str, status: int, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self._entries[(tenant, key)] = StoredResponse(fp, status, tuple(headers.items()), body, self._clock())

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
