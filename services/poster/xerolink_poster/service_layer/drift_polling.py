"""The poller: If-Modified-Since reads of the collections xerolink links objects in, for
organisations whose webhooks are not set up (docs/drift.md "Polling").

Every `interval` seconds, for each connected connection with snapshots, for each collection
holding a type of object it links: GET the collection with If-Modified-Since (Xero's OpenAPI,
components.parameters.ifModifiedSince: "Only records created or modified since this timestamp
will be returned", format date-time), oldest change first (`order=UpdatedDateUTC ASC`), page by
page, and pass the linked objects among the answer to drift_checks.record_observations.

The cursor never passes an object not yet read. Ordered by UpdatedDateUTC, every object changed
before the newest change of a page read has been read (an object changed meanwhile moves to the
end of the list), so each page moves the cursor to that change, in the transaction that records
the page, and the next call reads page 1 from there. A read cut short (budget, lease, an error)
goes on from the cursor, so a poller allowed one call a minute still moves a page a minute. Only
when a whole page changed in one instant does the read go on to the next page from the same
cursor. Recording twice changes nothing. The first poll of a collection starts from the
connection's creation (nothing xerolink posted is older).

The calls go through the tenant's worker (Dispatcher.tenant_calls), so they count in the tenant's
budget with posting, and they never starve it: at most `share` of the tenant's calls per minute
are the poller's, and none is made while the tenant has posting work ready (ready work is work
waiting for the tenant's budget), so a backlog is drained before the poller reads."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.drift_tables import PollCursorRow
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain.rate_limits import SlidingWindow
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer import drift_checks
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.drift_reads import (
    PAGE_SIZE,
    POLLED,
    ReadFailed,
    Resource,
    iso_of_ms,
    ms_of_iso,
    read_page,
    updated_ms,
)
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
US = 1_000_000
SOURCE = "poll"
# The poller's shortest pause between rounds, and before a round cut short is taken up again.
MIN_PAUSE = 0.05
RETRY_PAUSE = 1.0


class NoBudget(Exception):
    """The poller's share is used, or posting waits for the tenant's budget: stop for now."""


@dataclass(frozen=True)
class PollSettings:
    # Seconds between two polls of a connection; 0: the poller is off.
    interval: float = 0.0
    # At most this share of the tenant's calls per minute are the poller's.
    share: float = 0.1
    # How long to wait for the tenant's lease when another poster holds it.
    lease_wait: float = 0.5


class Poller:
    def __init__(self, db: Database, dispatcher: Dispatcher, settings: PollSettings) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.settings = settings
        self.actor = dispatcher.actor
        limits = dispatcher.settings.limits
        # The poller's calls per tenant per minute: its share of the tenant's, at least one.
        self.per_minute = max(1, math.floor(limits.per_minute * settings.share))
        self._windows: dict[str, SlidingWindow] = {}
        # A read cut short inside more than a page of changes made in one instant, per connection
        # and collection: its If-Modified-Since and the next page (in memory: after a restart
        # that run is read again from its first page).
        self._progress: dict[tuple[str, str], tuple[str, int]] = {}
        # When each connection is next polled (monotonic).
        self._due: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.calls = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="drift-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set() and not self.dispatcher.stopping:
            try:
                self.poll_due()
            except Exception:
                log.exception("polling Xero failed; retrying")
            self._stop.wait(min(1.0, max(self.settings.interval / 4, MIN_PAUSE)))

    def poll_due(self) -> int:
        """Polls every connection whose interval has passed; how many were polled to the end."""
        now = time.monotonic()
        with UnitOfWork(self.db, write=False) as uow:
            due = [
                c
                for c in uow.connections.all_connections()
                if c.state == ConnectionState.CONNECTED
                and c.xero_tenant_id
                and self._due.get(c.connection_id, 0.0) <= now
            ]
            types = {c.connection_id: uow.drift.snapshot_types(c.connection_id) for c in due}
        finished = 0
        for connection in due:
            if self._stop.is_set() or self.dispatcher.stopping:
                break
            cid = connection.connection_id
            resources = [r for r in POLLED if r.object_type in types[cid]]
            if not resources:
                self._due[cid] = time.monotonic() + self.settings.interval
            elif self.poll_connection(connection, resources):
                self._due[cid] = time.monotonic() + self.settings.interval
                finished += 1
            else:
                # Cut short (share used, posting waiting, lease elsewhere): try again soon, from
                # the cursor.
                self._due[cid] = time.monotonic() + min(max(self.settings.interval, MIN_PAUSE), RETRY_PAUSE)
        return finished

    def poll_connection(self, connection: ConnectionRow, resources: Sequence[Resource]) -> bool:
        """Reads each collection changed since its cursor; False when cut short (budget, lease,
        Xero), to be taken up again at the next round."""
        tenant = connection.xero_tenant_id
        try:
            with self.dispatcher.tenant_calls(tenant, self.settings.lease_wait) as worker:
                creds = worker.credentials(connection)
                for resource in resources:
                    self._poll_resource(connection, resource, worker, creds)
        except NoBudget:
            return False
        except LeaseLost:
            return False  # another poster serves the tenant; its poller reads it
        except ReadFailed as exc:
            log.warning(
                "polling %s of %s stopped: %s",
                "Xero",
                connection.connection_id,
                exc,
                extra={"tenant_id": tenant},
            )
            return False
        return True

    def _poll_resource(self, connection: ConnectionRow, resource: Resource, worker: TenantWorker, creds: Any) -> None:
        """Reads the collection's changes oldest first, moving the cursor with each page read (see
        the module's docstring), until a page that is not full."""
        cid = connection.connection_id
        key = (cid, resource.collection)
        with UnitOfWork(self.db, write=False) as uow:
            cursor = uow.drift.get_cursor(cid, resource.collection)
        since = (
            cursor.modified_since
            if cursor is not None and cursor.modified_since
            else iso_of_ms(connection.create_us // 1000)
        )
        page = 1
        resumed = self._progress.get(key)
        if resumed is not None and resumed[0] == since:
            page = resumed[1]  # inside a run of more than a page of changes made in one instant
        while True:
            self._progress[key] = (since, page)
            window = self._take_call(worker)
            try:
                items = read_page(worker, creds, resource, since, page)
            finally:
                window.complete(time.time())  # counted as Xero counts it: made
            self.calls += 1
            last = not resource.paged or len(items) < PAGE_SIZE
            stamps = [s for i in items if (s := updated_ms(i)) is not None]
            # Every object changed before the page's newest change has been read: the next read
            # starts there. One millisecond back, as Xero does not say whether "since" includes
            # the instant itself; an object read twice is harmless.
            after = max(stamps) - 1 if stamps else 0
            moved = after > ms_of_iso(since)
            if moved:
                since, page = iso_of_ms(after), 1
            elif not last:
                page += 1  # a full page changed in one instant: the next page, from the same moment
            self._record(cid, resource, items, since if moved or last else None)
            if last:
                self._progress.pop(key, None)
                return
            self._progress[key] = (since, page)

    def _take_call(self, worker: TenantWorker) -> SlidingWindow:
        """Takes one call of the poller's share, unless posting waits for the tenant's budget."""
        tenant = worker.tenant_id
        window = self._windows.get(tenant)
        if window is None:
            window = SlidingWindow(self.per_minute, self.dispatcher.settings.limits.minute_seconds)
            self._windows[tenant] = window
        if self._stop.is_set() or self.dispatcher.stopping:
            raise NoBudget("stopping")
        now = time.time()
        if window.wait_time(now) > 0:
            raise NoBudget("the poller's share of this minute is used")
        if self._posting_waits(tenant):
            # Ready posting work is work waiting for this tenant's budget: it goes first. Under a
            # backlog the poller waits for the queue to drain (webhooks are not held back).
            raise NoBudget("posting work is waiting")
        window.reserve()
        return window

    def _posting_waits(self, tenant: str) -> bool:
        with UnitOfWork(self.db, write=False) as uow:
            return uow.outbox.has_claimable(tenant, now_us())

    def _record(self, connection_id: str, resource: Resource, items: list[dict[str, Any]], cursor: str | None) -> None:
        """Records the page's linked objects, and with the last page the new cursor."""
        ids = [str(i.get(resource.id_field) or "") for i in items]

        def write(uow: UnitOfWork) -> None:
            now = now_us()
            # Snapshots name objects by their id in lower case (Xero's GUIDs compare without case).
            snapshots = uow.drift.snapshots_by_xero_ids(connection_id, [x.lower() for x in ids if x])
            linked = {x for x in ids if x and x.lower() in snapshots}
            linked |= uow.links.held_xero_ids(connection_id, [x for x in ids if x and x not in linked], 0)
            observed = [
                drift_checks.Observed(resource.object_type, xero_id, item, str(item.get("UpdatedDateUTC", "")))
                for xero_id, item in zip(ids, items, strict=True)
                if xero_id in linked
            ]
            if observed:
                drift_checks.record_observations(uow, connection_id, observed, SOURCE, now, self.actor)
            if cursor is not None:
                uow.drift.save_cursor(
                    PollCursorRow(
                        connection_id=connection_id,
                        resource=resource.collection,
                        modified_since=cursor,
                        last_poll_us=now,
                    )
                )

        run_in_transaction(self.db, write)
