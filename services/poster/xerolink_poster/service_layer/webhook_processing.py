"""Processing stored webhook events after they were answered (docs/drift.md "Webhooks").

A worker thread takes pending events oldest first. An event names a Xero object of a tenant; each
connection to that tenant that links the object gets Xero's current state of it, read through the
tenant's budget (a worker lent by the dispatcher, as corrections borrow one), compared with what
xerolink posted (drift_checks.record_observations), and the event is marked done in the same
transaction. The events of one object are coalesced: one read answers every pending event of the
object received before the read started, all marked done with the observation. The comparison
uses Xero's current state, never the event's order or content, so a repeated, replayed or
out-of-order event changes nothing wrongly.

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
        """Processes the pending events that are due, one read per object however many events
        name it; how many events were handled (done, ignored or failed this time)."""
        with UnitOfWork(self.db, write=False) as uow:
            rows = uow.drift.pending_events(self.batch * 4)
        now = time.monotonic()
        due = [r for r in rows if self._not_before.get(r.id or 0, 0.0) <= now][: self.batch]
        groups: dict[tuple[str, str, str], list[WebhookEventRow]] = {}
        for row in due:
            groups.setdefault(_object_of(row), []).append(row)
        handled = 0
        for group in groups.values():
            if self._stop.is_set() or self.dispatcher.stopping:
                break
            handled += self._process(group)
        return handled

    def _process(self, group: Sequence[WebhookEventRow]) -> int:
        try:
            return self._handle(group)
        except ReadFailed as exc:
            self._failed(group, str(exc))
        except LeaseLost as exc:
            self._failed(group, f"another poster is serving the Xero organisation, or this one is stopping ({exc})")
        except Exception as exc:
            log.exception("webhook event %s failed", group[0].id)
            self._failed(group, f"{type(exc).__name__}: {str(exc)[:300]}")
        return 0

    def _handle(self, group: Sequence[WebhookEventRow]) -> int:
        """Handles the events of one object: every one of its pending events received before the
        read starts is answered by the read (a storm of 30 saves of one invoice costs one GET)."""
        row = group[0]
        started_us = now_us()
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
            return self._finish(group, started_us, DONE if linking else IGNORED, [])
        resource = BY_CATEGORY.get(row.category)
        if resource is None or not linking:
            return self._finish(group, started_us, IGNORED, [])
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
        return self._finish(group, started_us, DONE, [(c.connection_id, observed) for c in usable])

    def _finish(
        self,
        group: Sequence[WebhookEventRow],
        started_us: int,
        state: str,
        observed: Sequence[tuple[str, drift_checks.Observed]],
    ) -> int:
        """Records the observations and, in the same transaction, the outcome of every pending
        event of the object received before `started_us` (the group's, and any stored since the
        batch was taken); how many events it closed."""
        row = group[0]

        def write(uow: UnitOfWork) -> int:
            now = now_us()
            for connection_id, seen in observed:
                drift_checks.record_observations(uow, connection_id, [seen], SOURCE, now, self.actor)
            answered = {
                r.id: r for r in uow.drift.pending_events_of(row.tenant_id, row.category, row.resource_id, started_us)
            }
            for member in group:
                stored = _event(uow, member)
                if stored is not None and stored.state == PENDING:  # else another poster finished it
                    answered[stored.id] = stored
            for stored in answered.values():
                stored.state = state
                stored.attempts += 1
                stored.last_error = ""
                stored.done_us = now
                uow.drift.save_event(stored)
            return len(answered)

        closed = run_in_transaction(self.db, write)
        for member in group:
            self._not_before.pop(member.id or 0, None)
        return closed

    def _failed(self, group: Sequence[WebhookEventRow], message: str) -> None:
        """Counts a failed attempt on each event of the object; all are tried again together."""

        def write(uow: UnitOfWork) -> int:
            most = 0
            for member in group:
                stored = _event(uow, member)
                if stored is None or stored.state != PENDING:
                    continue
                stored.attempts += 1
                stored.last_error = message[:1000]
                if stored.attempts >= MAX_ATTEMPTS:
                    stored.state = FAILED
                    stored.done_us = now_us()
                uow.drift.save_event(stored)
                most = max(most, stored.attempts)
            return most

        attempts = run_in_transaction(self.db, write)
        delay = min(self.backoff_cap, self.backoff_base * 2 ** max(attempts - 1, 0))
        for member in group:
            self._not_before[member.id or 0] = time.monotonic() + delay
        row = group[0]
        log.warning(
            "webhook event %s (%s %s) not processed (attempt %d): %s",
            row.id,
            row.category,
            row.resource_id,
            attempts,
            message,
            extra={"tenant_id": row.tenant_id},
        )


def _object_of(row: WebhookEventRow) -> tuple[str, str, str]:
    """What one read answers: an object of an organisation (GUIDs compare without case)."""
    return (row.tenant_id.lower(), row.category, row.resource_id.lower())


def _links(uow: UnitOfWork, connection_id: str, xero_id: str) -> bool:
    """Whether a live link of the connection holds the Xero object: its active snapshot, or
    (linked before snapshots were kept) a link that is not unlinked naming it. An unlinked link's
    objects (inactive snapshots, orphans) are no longer watched, so reading them would spend a
    call of the organisation's budget on an object nobody compares."""
    # Snapshots name objects by their id in lower case (Xero's GUIDs compare without case).
    snapshot = uow.drift.snapshots_by_xero_ids(connection_id, [xero_id.lower()]).get(xero_id.lower())
    if snapshot is not None:
        return snapshot.active
    link = uow.links.link_holding(connection_id, xero_id)
    return link is not None and link.state != LinkState.UNLINKED


def _event(uow: UnitOfWork, row: WebhookEventRow) -> WebhookEventRow | None:
    return uow.drift.get_event(row.id or 0)
