"""A record of the Accounting API requests the emulator received (method, path, query parameters,
tenant, answer status), so tests can check what a client really sent, e.g. that it sends no query
parameter Xero does not declare. Bounded: a long load run keeps only the latest requests."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

MAX_RECORDED = 10_000


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str  # as received, e.g. /api.xro/2.0/CreditNotes/<id>/Allocations
    params: tuple[tuple[str, str], ...]  # every query parameter, in order, repeats kept
    tenant_id: str
    status: int

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "params": [[name, value] for name, value in self.params],
            "tenant_id": self.tenant_id,
            "status": self.status,
        }


class RequestLog:
    def __init__(self, limit: int = MAX_RECORDED) -> None:
        self._lock = threading.Lock()
        self._entries: deque[ReceivedRequest] = deque(maxlen=limit)

    def record(self, entry: ReceivedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, tenant_id: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [e for e in self._entries if tenant_id is None or e.tenant_id == tenant_id]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
