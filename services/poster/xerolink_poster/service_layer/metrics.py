"""The poster's OpenTelemetry metrics: what an SRE watches to see work piling up, failing, or
running out of Xero's limits.

- `xerolink.outbox.depth` (gauge): outbox entries not done, by tenant and state (ready, waiting)
- `xerolink.links` (gauge): links by connection and state (pending, waiting, linked, failed, unlinked)
- `xerolink.xero.call.duration` (histogram, s): each Xero call, by method, resource and status
- `xerolink.xero.rate_limit.remaining` (gauge): the minute and day calls Xero says are left, by tenant
- `xerolink.drift` (counter): drift records opened or changed ("detected") and resolved because
  Xero was put back ("cleared"), by connection, kind and source (docs/drift.md)

Gauges are read from the registry when the exporter collects, so every replica reports the
shared database's truth, not only its own work."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.repositories.gauges import GaugeReadings
from xerolink_poster.domain.rate_limits import RateHeaders

_meter = metrics.get_meter("xerolink.poster")
_call_duration = _meter.create_histogram(
    "xerolink.xero.call.duration", unit="s", description="Duration of each call to the Xero API"
)

_drift = _meter.create_counter(
    "xerolink.drift", description="Drift records detected in or cleared from Xero's objects xerolink linked"
)


def count_drift(connection_id: str, kind: str, source: str, event: str) -> None:
    _drift.add(1, {"xerolink.connection_id": connection_id, "kind": kind, "source": source, "event": event})


def record_call(method: str, path: str, status: int, seconds: float) -> None:
    resource = path.split("/", 1)[0].split("?", 1)[0]
    _call_duration.record(seconds, {"http.method": method, "xero.resource": resource, "http.status_code": status})


class PosterMetrics:
    """Registers the gauges for one database; `headroom` is fed by the dispatcher's calls."""

    def __init__(self, db: Database) -> None:
        self._readings = GaugeReadings(db)
        self._lock = threading.Lock()
        self._remaining: dict[tuple[str, str], int] = {}
        _meter.create_observable_gauge(
            "xerolink.outbox.depth", [self._outbox], description="Outbox entries not yet done"
        )
        _meter.create_observable_gauge("xerolink.links", [self._links], description="Links by state")
        _meter.create_observable_gauge(
            "xerolink.xero.rate_limit.remaining",
            [self._headroom],
            description="Calls Xero says are left in the current window",
        )

    def headroom(self, tenant_id: str, rate: RateHeaders) -> None:
        with self._lock:
            if rate.minute_remaining is not None:
                self._remaining[(tenant_id, "minute")] = rate.minute_remaining
            if rate.day_remaining is not None:
                self._remaining[(tenant_id, "day")] = rate.day_remaining

    def _outbox(self, _options: CallbackOptions) -> Iterable[Observation]:
        rows = self._readings.open_outbox()
        return [
            Observation(int(count), {"xerolink.tenant_id": tenant, "state": state}) for tenant, state, count in rows
        ]

    def _links(self, _options: CallbackOptions) -> Iterable[Observation]:
        rows = self._readings.links()
        return [Observation(int(n), {"xerolink.connection_id": conn_id, "state": state}) for conn_id, state, n in rows]

    def _headroom(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._remaining.items())
        return [Observation(left, {"xerolink.tenant_id": tenant, "window": window}) for (tenant, window), left in items]
