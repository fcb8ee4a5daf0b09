"""Processing stored webhook events after they were answered (docs/drift.md "Webhooks").

A worker thread takes pending events oldest first. An event names a Xero object of a tenant; each
connection to that tenant that links the object gets Xero's current state of it, read through the
tenant's budget (a worker lent by the dispatcher, as corrections borrow one), compared with what
xerolink posted (drift_checks.record_observations), and the event is marked done in the same
transaction. The comparison uses Xero's current state, never the event's order or content, so a
repeated, replayed or out-of-order event changes nothing wrongly.

An event of an object no connection links is marked ignored without a Xero call (xerolink reads
only what it made). A CONTACT event is recorded done when a connection uses the contact, ignored
otherwise, without a call: what xerolink compares about a contact is which contact a linked
document names, and that is read from the document (its INVOICE or CREDITNOTE event). A failure
(Xero unreachable, the tenant served by another poster) keeps the event pending with its
last_error and tries again after a back-off; after MAX_ATTEMPTS it is marked failed, still listed
with its last error."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.drift_tables import WebhookEventRow
from xerolink_poster.domain.states import ConnectionState, LinkState
from xerolink_poster.service_layer import drift_checks
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.drift_reads import BY_CATEGORY, ReadFailed, read_one
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
US = 1_000_000
DONE = "done"
IGNORED = "ignored"
FAILED = "failed"
PENDING = "pending"
# Xero retries a delivery for hours; an event that fails this often is left visible as failed.
MAX_ATTEMPTS = 12
SOURCE = "webhook"


class EventProcessor:
    def __init__(
        self,
        db: Database,
        dispatcher: Dispatcher,
        batch: int = 50,
        lease_wait: float = 5.0,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        idle_wait: float = 1.0,
    ) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.batch = batch
        self.lease_wait = lease_wait
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.idle_wait = idle_wait
        self.actor = dispatcher.actor
        # Event id -> when it may be tried again (monotonic); after a restart every pending
        # event is tried at once.
        self._not_before: dict[int, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-events", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def notify(self) -> None:
        """New events were stored: look now rather than at the next idle wake-up."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set() and not self.dispatcher.stopping:
            try:
                handled = self.run_once()
            except Exception:
                log.exception("processing webhook events failed; retrying")
                handled = 0
            if not handled:
                self._wake.wait(self.idle_wait)
                self._wake.clear()

    def run_once(self) -> int:
        """Processes the pending events that are due; how many were handled (done, ignored or
        failed this time)."""
        with UnitOfWork(self.db, write=False) as uow:
            rows = uow.drift.pending_events(self.batch * 4)
        now = time.monotonic()
        due = [r for r in rows if self._not_before.get(r.id or 0, 0.0) <= now][: self.batch]
        handled = 0
        for row in due:
            if self._stop.is_set() or self.dispatcher.stopping:
                break
            handled += self._process(row)
        return handled

    def _process(self, row: WebhookEventRow) -> int:
        try:
            self._handle(row)
        except ReadFailed as exc:
            self._failed(row, str(exc))
            return 0
        except LeaseLost as exc:
            self._failed(row, f"another poster is serving the Xero organisation, or this one is stopping ({exc})")
            return 0
        except Exception as exc:
            log.exception("webhook event %s failed", row.id)
            self._failed(row, f"{type(exc).__name__}: {str(exc)[:300]}")
            return 0
        self._not_before.pop(row.id or 0, None)
        return 1

    def _handle(self, row: WebhookEventRow) -> None:
        with UnitOfWork(self.db, write=False) as uow:
            connections = [
                c
                for cid in uow.connections.connection_ids_of_tenant(row.tenant_id)
                if (c := uow.connections.get_connection(cid)) is not None
            ]
            if row.category == "CONTACT":
                linking = [
                    c for c in connections if uow.contacts.participant_of_contact(c.connection_id, row.resource_id)
                ]
            else:
                linking = [c for c in connections if _links(uow, c.connection_id, row.resource_id)]
        if row.category == "CONTACT":
            self._finish(row, DONE if linking else IGNORED, [])
            return
        resource = BY_CATEGORY.get(row.category)
        if resource is None or not linking:
            self._finish(row, IGNORED, [])
            return
        usable = [c for c in linking if c.state == ConnectionState.CONNECTED]
        if not usable:
            raise ReadFailed(
                f"the connection {linking[0].connection_id} is {linking[0].state.replace('_', ' ')}: "
                "connect the organisation again; the event is read then"
            )
        with self.dispatcher.tenant_calls(usable[0].xero_tenant_id, self.lease_wait) as worker:
            # One read for every connection to the tenant: the object is the same.
            document = read_one(worker, worker.credentials(usable[0]), resource, row.resource_id)
        updated = str(document.get("UpdatedDateUTC", "")) if document is not None else ""
        observed = drift_checks.Observed(resource.object_type, row.resource_id, document, updated)
        self._finish(row, DONE, [(c.connection_id, observed) for c in usable])

    def _finish(self, row: WebhookEventRow, state: str, observed: Sequence[tuple[str, drift_checks.Observed]]) -> None:
        """Records the observations and the event's outcome in one transaction."""

        def write(uow: UnitOfWork) -> None:
            now = now_us()
            for connection_id, seen in observed:
                drift_checks.record_observations(uow, connection_id, [seen], SOURCE, now, self.actor)
            stored = _event(uow, row)
            if stored is None or stored.state != PENDING:
                return  # another poster finished it meanwhile
            stored.state = state
            stored.attempts += 1
            stored.last_error = ""
            stored.done_us = now
            uow.drift.save_event(stored)

        run_in_transaction(self.db, write)

    def _failed(self, row: WebhookEventRow, message: str) -> None:
        def write(uow: UnitOfWork) -> int:
            stored = _event(uow, row)
            if stored is None or stored.state != PENDING:
                return 0
            stored.attempts += 1
            stored.last_error = message[:1000]
            if stored.attempts >= MAX_ATTEMPTS:
                stored.state = FAILED
                stored.done_us = now_us()
            uow.drift.save_event(stored)
            return stored.attempts

        attempts = run_in_transaction(self.db, write)
        delay = min(self.backoff_cap, self.backoff_base * 2 ** max(attempts - 1, 0))
        self._not_before[row.id or 0] = time.monotonic() + delay
        log.warning(
            "webhook event %s (%s %s) not processed (attempt %d): %s",
            row.id,
            row.category,
            row.resource_id,
            attempts,
            message,
            extra={"tenant_id": row.tenant_id},
        )


def _links(uow: UnitOfWork, connection_id: str, xero_id: str) -> bool:
    """Whether a live link of the connection holds the Xero object: its active snapshot, or
    (linked before snapshots were kept) a link that is not unlinked naming it. An unlinked link's
    objects (inactive snapshots, orphans) are no longer watched, so reading them would spend a
    call of the organisation's budget on an object nobody compares."""
    # Snapshots name objects by their id in lower case (Xero's GUIDs compare without case).
    snapshot = uow.drift.snapshots_by_xero_ids(connection_id, [xero_id.lower()]).get(xero_id.lower())
    if snapshot is not None:
        return snapshot.active
    link = uow.links.link_holding(connection_id, xero_id.lower())
    return link is not None and link.state != LinkState.UNLINKED


def _event(uow: UnitOfWork, row: WebhookEventRow) -> WebhookEventRow | None:
    return uow.drift.get_event(row.id or 0)
