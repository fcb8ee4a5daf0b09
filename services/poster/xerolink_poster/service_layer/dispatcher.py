"""The dispatcher: per Xero tenant, one worker in one process at a time (a lease row in the
database), claiming outbox entries, batching elements of one endpoint into one call, and keeping
under Xero's limits before Xero has to refuse.

Exactly once: before a create call the entries are marked uncertain in the database; the answer
clears the mark. An entry found marked (a timeout, a dropped connection, a crash between call
and commit, an answer that cannot be matched to what was sent) is looked up in Xero by the tag
naming its Actionstep record, in a field Xero keeps for the type, before anything is re-created;
an object another link holds is never adopted. Only an element Xero explicitly refused fails.
Quick retries of the same call carry the same Idempotency-Key, named by the records, versions and
operations the call carries, so Xero replays them and never mistakes one record for another."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2

from xerolink_poster.adapters import correction_store
from xerolink_poster.adapters import operations as deps
from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.registry import OUTBOX_READY
from xerolink_poster.adapters.tables import (
    ConnectionRow,
    ContactLinkRow,
    LinkRow,
    OutboxRow,
    PostingRow,
    TenantLeaseRow,
)
from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer, XeroClient
from xerolink_poster.domain.rate_limits import Limits, SlidingWindow, TenantBudget
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.retry import backoff_delay, chunks, idempotency_key
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer import outcomes, tracing
from xerolink_poster.service_layer.connection_lifecycle import CONNECTED, ConnectionKeeper
from xerolink_poster.service_layer.metrics import PosterMetrics, record_call
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
US = 1_000_000
# After a call went unanswered, its entries wait this many HTTP timeouts before the look-up.
NO_ANSWER_SETTLE_TIMEOUTS = 2
# Xero pages lists by 100; a look-up reads at most this many pages (its `where` selects a few).
XERO_PAGE_SIZE = 100
LOOKUP_PAGES = 20
# How often work of an unusable connection looks again whether it was reconnected.
CONNECTION_RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class DispatcherSettings:
    batch_size: int = 50
    limits: Limits = field(default_factory=Limits)
    # The tenant lease: renewed before every call; a call never outlives it (timeout < ttl / 2).
    lease_ttl: float = 30.0
    # How long a claimed outbox entry stays claimed (renewed before each call).
    claim_ttl: float = 300.0
    poll_interval: float = 0.02
    max_attempts: int = 8
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    # A tenant worker with no work for this long hands its lease back.
    idle_release: float = 1.0
    http_timeout: float = 10.0
    max_tenants: int = 50
    # Done outbox entries older than this (seconds since accepted) are deleted, `purge_batch`
    # rows a transaction, every `purge_interval` seconds.
    outbox_retention: float = 30 * 86400.0
    purge_batch: int = 500
    purge_interval: float = 60.0


class LeaseLost(Exception):
    """Another poster holds the tenant now; stop calling Xero for it."""


class AppMinuteFull(Exception):
    """The posters together have made the app's calls of this minute: wait, call nothing."""


class StateChanges:
    """Wakes watchers in this process when a state changes (they also poll, for other processes)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._version = 0

    def notify(self) -> None:
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._version != seen, timeout=timeout)
            return self._version

    @property
    def version(self) -> int:
        return self._version


@dataclass
class _Work:
    """One claimed entry and what the job learned about it."""

    row: OutboxRow
    link: LinkRow
    connection: ConnectionRow
    operation: xero_pb2.Operation | None = None
    resolved: dict[str, str] = field(default_factory=dict)
    contact: xero_pb2.Contact | None = None
    contact_id: str = ""
    # The value of the field carrying the record's tag (xero_payloads.tag_base + the tag).
    reference: str = ""
    # Written with the uncertain mark: what the look-up needs that Xero cannot carry.
    hint: str = ""

    @property
    def body(self) -> str:
        assert self.operation is not None
        return deps.body_of(self.operation)

    @property
    def identity(self) -> str:
        """The Actionstep record, its version (generation) and the operation this element is."""
        assert self.operation is not None
        link = self.link
        return f"{link.connection_id}/{link.kind}/{link.record_id}#{link.generation}/{self.operation.local_ref}"


class Dispatcher:
    def __init__(
        self,
        db: Database,
        xero: XeroClient,
        settings: DispatcherSettings,
        holder: str,
        changes: StateChanges | None = None,
        metrics: PosterMetrics | None = None,
        keeper: ConnectionKeeper | None = None,
    ) -> None:
        self.db = db
        # Opens the sealed tokens and refreshes them (one worker at a time, across posters).
        self.keeper = keeper
        self.metrics = metrics
        self.xero = xero
        self.settings = settings
        self.holder = holder
        self.changes = changes or StateChanges()
        self.app_window = SlidingWindow(settings.limits.app_per_minute, settings.limits.minute_seconds)
        self.app_lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: dict[str, TenantWorker] = {}
        self._workers_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.actor = f"{outcomes.ACTOR}:{holder}"[:128]
        self.calls_made = 0
        self.calls_refused = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dispatcher", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in list(self._workers.values()):
            worker.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        last_sweep = last_purge = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > 0.5:
                    self.release_satisfied_waits()
                    last_sweep = time.monotonic()
                if time.monotonic() - last_purge > self.settings.purge_interval:
                    last_purge = time.monotonic()
                    self.purge_done_outbox()
                self._start_workers()
            except Exception:
                log.exception("dispatcher loop failed; retrying")
            self._stop.wait(self.settings.poll_interval * 5)

    def _start_workers(self) -> None:
        with UnitOfWork(self.db, write=False) as uow:
            tenants = uow.registry.tenants_with_ready_work(now_us())
        for tenant in tenants:
            with self._workers_lock:
                worker = self._workers.get(tenant)
                if worker is not None and worker.is_alive():
                    continue
                if len(self._alive()) >= self.settings.max_tenants:
                    break
                self._start_worker(tenant)

    def _start_worker(self, tenant: str) -> TenantWorker | None:
        """Takes the tenant's lease and starts its worker (the caller holds _workers_lock);
        None when another poster holds the lease."""
        previous = self._workers.get(tenant)
        # A worker of this process still closing (idle, or refusing a loan) may have a call in
        # flight: its claims stay. Claims are voided only when no worker here runs the tenant.
        release = previous is None or not previous.is_alive()
        lease = run_in_transaction(self.db, partial(self._acquire, tenant, release=release))
        if lease is None:
            return None
        log.info("serving tenant %s", tenant, extra={"tenant_id": tenant})
        history = [t + self.settings.http_timeout for t in _json_list(lease.minute_log)]
        worker = TenantWorker(self, tenant, history, lease.day_calls, lease.blocked_until_us / US)
        self._workers[tenant] = worker
        worker.start()
        return worker

    @contextmanager
    def tenant_calls(self, tenant: str, wait: float) -> Iterator[TenantWorker]:
        """Lends the tenant's worker to work outside the outbox (corrections): its `call` shares
        the tenant's budget and lease with the posting work, so every limit holds across both.
        Starts the worker (taking the lease) when none runs here; LeaseLost when another poster
        keeps the tenant for longer than `wait` seconds."""
        deadline = time.monotonic() + wait
        while True:
            if self.stopping:
                raise LeaseLost("stopping")
            with self._workers_lock:
                worker = self._workers.get(tenant)
                if worker is None or not worker.is_alive() or not worker.lend():
                    worker = self._start_worker(tenant)
                    if worker is not None and not worker.lend():
                        worker = None
            if worker is not None:
                break
            if time.monotonic() > deadline:
                raise LeaseLost(tenant)
            time.sleep(min(0.2, self.settings.lease_ttl / 10))
        try:
            yield worker
        finally:
            worker.give_back()

    def _acquire(self, tenant: str, uow: UnitOfWork, release: bool = True) -> TenantLeaseRow | None:
        lease = uow.registry.acquire_lease(tenant, self.holder, now_us(), int(self.settings.lease_ttl * US))
        if lease is not None and release:
            # No worker of this process runs the tenant, and no other poster may: claims left
            # on its entries belong to a dead or deposed claimer.
            uow.registry.release_claims(tenant)
        return lease

    def _alive(self) -> list[TenantWorker]:
        return [w for w in self._workers.values() if w.is_alive()]

    def release_satisfied_waits(self) -> None:
        """The safety net for a dependency that linked while the waiting post was being written:
        a read finds waiting entries whose dependencies are all linked; only then a write
        releases them (release_entry re-checks, so a race with another poster is harmless)."""
        with UnitOfWork(self.db, write=False) as uow:
            ready = uow.registry.satisfied_waiting_entries()
        if not ready:
            return

        def sweep(uow: UnitOfWork) -> int:
            return sum(
                outcomes.release_entry(uow.registry, i, now_us(), "dependencies linked")
                for i in ready
                if not _waits_on_a_correction(uow, i)
            )

        if run_in_transaction(self.db, sweep):
            self.changes.notify()

    def purge_done_outbox(self) -> int:
        """Deletes the done entries past retention in small transactions (a long one would hold
        SQLite's single write lock against posts); returns how many."""
        now = now_us()
        cutoff = now - int(self.settings.outbox_retention * US)
        batch = self.settings.purge_batch
        minute_us = int(self.settings.limits.minute_seconds * US)
        run_in_transaction(self.db, lambda uow: uow.registry.purge_app_calls(now - 2 * minute_us))
        purged = 0
        while not self._stop.is_set():
            deleted = run_in_transaction(self.db, lambda uow: uow.registry.purge_done_outbox(cutoff, batch))
            purged += deleted
            if deleted < batch:
                break
        if purged:
            log.info("deleted %d done outbox entries older than %.0f s", purged, self.settings.outbox_retention)
        return purged


def _waits_on_a_correction(uow: UnitOfWork, outbox_id: int) -> bool:
    """A document being corrected is linked but about to be voided and unlinked: work waiting for
    it stays waiting (released, it would only be found waiting again, and could be caught pending
    when the correction ends)."""
    row = uow.registry.get_outbox(outbox_id)
    if row is None:
        return False
    for record in uow.registry.waits_of(outbox_id):
        dep = uow.registry.get_link(row.connection_id, record)
        if dep is not None and correction_store.under_correction(
            uow.registry.session, row.connection_id, record, dep.generation
        ):
            return True
    return False


def _json_list(text: str) -> list[float]:
    return [float(x) for x in json.loads(text)]


class TenantWorker(threading.Thread):
    def __init__(
        self, dispatcher: Dispatcher, tenant_id: str, history: list[float], day_calls: int, blocked_until: float
    ) -> None:
        super().__init__(name=f"tenant-{tenant_id[:8]}", daemon=True)
        self.d = dispatcher
        self.settings = dispatcher.settings
        self.tenant_id = tenant_id
        self.budget = TenantBudget(self.settings.limits, dispatcher.app_window, history)
        now = time.time()
        for _ in range(day_calls):
            self.budget.day.done.append(now)
        self.budget.blocked_until = blocked_until
        self.lock = threading.Lock()  # guards the budget
        self.contacts_lock = threading.Lock()
        self.lease_lost = False
        self.random = random.Random()
        # Lent to work outside the outbox (see Dispatcher.tenant_calls): the worker keeps the
        # lease while lent, and once closing it is never lent again.
        self.borrowers = 0
        self.closing = False

    def lend(self) -> bool:
        with self.lock:
            if self.closing or self.lease_lost:
                return False
            self.borrowers += 1
            return True

    def give_back(self) -> None:
        with self.lock:
            self.borrowers -= 1

    def _close_when_idle(self) -> bool:
        with self.lock:
            if self.borrowers:
                return False
            self.closing = True
            return True

    def call(
        self,
        creds: Credentials,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        names: Sequence[str] = (),
    ) -> XeroAnswer:
        """One Xero call for a borrower, within the tenant's limits and lease; `names` say what
        the call is for, for its Idempotency-Key (default: the object its path names)."""
        return self._call(creds, method, path, params=params, body=body, names=names)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        limits = self.settings.limits
        slots = threading.Semaphore(limits.concurrent)
        idle_since = time.monotonic()
        last_renew = time.monotonic()
        with ThreadPoolExecutor(limits.concurrent, thread_name_prefix=f"xero-{self.tenant_id[:8]}") as pool:
            while not self.d.stopping and not self.lease_lost:
                if time.monotonic() - last_renew > self.settings.lease_ttl / 3:
                    if not self._renew():
                        break
                    last_renew = time.monotonic()
                with self.lock:
                    wait = self.budget.wait_time(time.time())
                if wait > 0:
                    time.sleep(min(wait, 0.05))
                    continue
                if not slots.acquire(timeout=0.05):
                    continue
                rows = run_in_transaction(
                    self.d.db,
                    lambda uow: uow.registry.claim(
                        self.tenant_id,
                        self.d.holder,
                        self.settings.batch_size,
                        now_us(),
                        int(self.settings.claim_ttl * US),
                    ),
                )
                if not rows:
                    slots.release()
                    if time.monotonic() - idle_since > self.settings.idle_release and self._close_when_idle():
                        break
                    time.sleep(self.settings.poll_interval)
                    continue
                idle_since = time.monotonic()

                def job(claimed: list[OutboxRow] = rows) -> None:
                    try:
                        self._process(claimed)
                    except LeaseLost:
                        self.lease_lost = True
                        self._unclaim(claimed)
                    except Exception as exc:
                        log.exception("dispatch job failed", extra={"tenant_id": self.tenant_id})
                        self._record_failure(claimed, exc)
                    finally:
                        slots.release()

                pool.submit(job)
        with self.lock:
            self.closing = True
        run_in_transaction(self.d.db, lambda uow: uow.registry.release_lease(self.tenant_id, self.d.holder))
        log.info("released tenant %s", self.tenant_id, extra={"tenant_id": self.tenant_id})

    def _record_failure(self, claimed: list[OutboxRow], exc: Exception) -> None:
        """An unexpected error must not leave work silently pending: each entry gets the error as
        its visible reason, counts an attempt and backs off, and fails for good after the last
        attempt. Whether a request went out is unknown, so the next attempt looks up first."""
        try:
            works = self._load(claimed)
            self._retry(
                works,
                uncertain=True,
                reason="DISPATCH_ERROR",
                message=f"the dispatcher could not process it ({type(exc).__name__}: {str(exc)[:200]})",
            )
        except Exception:
            log.exception("could not record the failure; the entries are retried after their claim expires")

    def _renew(self) -> bool:
        lease = run_in_transaction(
            self.d.db,
            lambda uow: uow.registry.acquire_lease(
                self.tenant_id, self.d.holder, now_us(), int(self.settings.lease_ttl * US)
            ),
        )
        return lease is not None

    def _unclaim(self, rows: Sequence[OutboxRow]) -> None:
        def work(uow: UnitOfWork) -> None:
            for stale in rows:
                row = uow.registry.get_outbox(stale.id or 0)
                if row is not None and row.claimed_by == self.d.holder:
                    row.claimed_by = ""
                    row.lease_until_us = 0
                    uow.session.add(row)

        run_in_transaction(self.d.db, work)

    # -- one job -----------------------------------------------------------------------------
    def _process(self, rows: list[OutboxRow]) -> None:
        works = self._held_back(self._load(rows))
        works = self._prepare(works)
        if not works:
            return
        uncertain = [w for w in works if w.row.uncertain]
        if uncertain:
            works = [w for w in works if not w.row.uncertain] + self._look_up(uncertain)
        needing_contacts = [w for w in works if w.contact is not None and not w.contact_id]
        if needing_contacts:
            with self.contacts_lock:
                self._ensure_contacts(needing_contacts)
            works = [w for w in works if w.contact is None or w.contact_id]
        groups: dict[tuple[str, str, int], list[_Work]] = defaultdict(list)
        for w in works:
            assert w.operation is not None
            target = payloads.target_of(w.operation, w.resolved)
            # Alone: refused whole before, or an endpoint that answers no outcome per element.
            alone = w.row.alone or not target.per_element
            groups[(w.connection.connection_id, target.path, w.row.id or 0 if alone else 0)].append(w)
        for (_, path, _), members in groups.items():
            for chunk in chunks(members, self.settings.batch_size):
                self._create(path, list(chunk))

    def _held_back(self, works: list[_Work]) -> list[_Work]:
        """Work of a disconnected connection, or one that needs reconnecting, waits (visible, not
        counted as an attempt) until the organisation is connected again."""
        usable = [w for w in works if w.connection.state == CONNECTED]
        held = [w for w in works if w.connection.state != CONNECTED]
        if held:
            state = held[0].connection.state
            self._retry(
                held,
                uncertain=False,
                reason=f"CONNECTION_{state.upper()}",
                message=f"the connection is {state.replace('_', ' ')}: connect the organisation again "
                "(ConnectOrganisation); the work is sent then",
                at=time.time() + CONNECTION_RECHECK_SECONDS,
                count=False,
            )
        return usable

    def _load(self, rows: list[OutboxRow]) -> list[_Work]:
        out: list[_Work] = []
        with UnitOfWork(self.d.db, write=False) as uow:
            uow.registry.preload(LinkRow, LinkRow.id, [r.link_id for r in rows])
            connections: dict[str, ConnectionRow] = {}
            for row in rows:
                link = uow.registry.get_link_by_id(row.link_id)
                connection = connections.get(row.connection_id) or uow.registry.get_connection(row.connection_id)
                if link is None or connection is None:
                    continue
                connections[row.connection_id] = connection
                out.append(_Work(row, link, connection))
        return out

    def _prepare(self, works: list[_Work]) -> list[_Work]:
        """Finds each entry's next operation and resolves its documents and contact; entries whose
        documents are not linked start waiting, finished ones link."""
        ready: list[_Work] = []
        waiting: list[tuple[_Work, list[RecordRef]]] = []
        broken: list[tuple[_Work, str]] = []
        finished: list[_Work] = []
        with UnitOfWork(self.d.db, write=False) as uow:
            registry = uow.registry
            for w in works:
                mapped = mapper_pb2.MapTransactionResponse()
                mapped.ParseFromString(w.row.operations)
                own = registry.xero_objects(w.link)
                w.operation = deps.next_operation(mapped.operations, own)
                if w.operation is None:
                    finished.append(w)
                    continue

                def linked_objects(
                    record: RecordRef, cid: str = w.connection.connection_id
                ) -> list[XeroObjectRef] | None:
                    dep = registry.get_link(cid, record)
                    if dep is None or dep.state != LinkState.LINKED:
                        return None
                    # A document being corrected is about to be voided and unlinked: a payment
                    # made on it now would stop the void. It waits for the document to link again.
                    if correction_store.under_correction(registry.session, cid, record, dep.generation):
                        return None
                    return registry.xero_objects(dep)

                missing: list[RecordRef] = []
                problem = ""
                names = ["document"] if w.body == "payment" else ["credit_note", "invoice"]
                for name, (ref, wanted) in zip(names, deps.document_refs(w.operation), strict=False):
                    found = deps.resolve(ref, wanted, own, linked_objects)
                    if found is not None:
                        w.resolved[name] = found.xero_id
                        continue
                    record = deps.record_of(ref)
                    if record is None and any(o.local_ref == ref.local_ref for o in own):
                        wanted_name = xero_pb2.ObjectType.Name(wanted)  # type: ignore[arg-type]
                        problem = f"operation {ref.local_ref!r} was performed but Xero named no {wanted_name} for it"
                    elif record is None:
                        problem = f"operation {w.operation.local_ref} refers to {ref.local_ref!r}, not performed"
                    elif linked_objects(record) is None:
                        missing.append(record)
                    else:
                        wanted_name = xero_pb2.ObjectType.Name(wanted)  # type: ignore[arg-type]
                        problem = f"{record} is linked but holds no {wanted_name}"
                if problem:
                    broken.append((w, problem))
                    continue
                if missing:
                    waiting.append((w, missing))
                    continue
                w.contact = payloads.contact_of(w.operation)
                if w.contact is not None:
                    known = registry.get_contact(w.connection.connection_id, w.contact.participant_id)
                    w.contact_id = known.contact_id if known is not None else ""
                w.reference = payloads.tracking_reference(
                    payloads.tag_base(w.operation), w.link.kind, w.link.record_id, w.link.generation
                )
                ready.append(w)
        if waiting or broken or finished:

            def write(uow: UnitOfWork) -> None:
                now = now_us()
                for w, missing in waiting:
                    row, link = self._reload(uow, w)
                    if row is not None and link is not None:
                        outcomes.record_waiting(uow.registry, row, link, missing, now, self.d.actor)
                for w, problem in broken:
                    row, link = self._reload(uow, w)
                    if row is not None and link is not None:
                        outcomes.record_rejected(
                            uow.registry, row, link, "DEPENDENCY_HAS_NO_DOCUMENT", problem, [], now, self.d.actor
                        )
                for w in finished:
                    row, link = self._reload(uow, w)
                    if row is not None and link is not None and own_last(uow, link) is not None:
                        last = own_last(uow, link)
                        assert last is not None
                        outcomes.record_created(uow.registry, row, link, last, True, now, self.d.actor)

            run_in_transaction(self.d.db, write)
            self.d.changes.notify()
        return ready

    @staticmethod
    def _preload(uow: UnitOfWork, works: Sequence[_Work]) -> None:
        """One query per table for a whole batch; the per-entry gets below then cost no SQL."""
        uow.registry.preload(OutboxRow, OutboxRow.id, [w.row.id for w in works])
        uow.registry.preload(LinkRow, LinkRow.id, [w.link.id for w in works])
        uow.registry.preload(PostingRow, PostingRow.posting_id, [w.link.posting_id for w in works])

    def _reload(self, uow: UnitOfWork, w: _Work) -> tuple[OutboxRow | None, LinkRow | None]:
        row = uow.registry.get_outbox(w.row.id or 0)
        if not outcomes.still_ours(row, self.d.holder):
            return None, None
        return row, uow.registry.get_link_by_id(w.link.id or 0)

    # -- Xero calls --------------------------------------------------------------------------
    def _wait_for_budget(self) -> None:
        while True:
            if self.d.stopping:
                raise LeaseLost("stopping")
            with self.lock:
                wait = self.budget.try_acquire(time.time())
            if wait <= 0:
                return
            time.sleep(min(wait, 0.05))

    def _recount(self, counted_us: int, minute_us: int) -> None:
        """Counts the call in the app's shared minute from now, when it has surely reached Xero."""
        run_in_transaction(self.d.db, lambda uow: uow.registry.move_app_call(counted_us, now_us(), minute_us))

    def _call(
        self,
        creds: Credentials,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        mark_uncertain: Sequence[_Work] = (),
        refreshed: bool = False,
        names: Sequence[str] = (),
    ) -> XeroAnswer:
        """One call within every limit: waits for the budget, checks and renews the lease, counts
        the call in the app's shared minute (and marks the entries of a create call uncertain)
        in one short transaction, then calls. `names` say what the call is for (the records and
        operations it creates); a call without them changes the Xero object its path names."""
        key = None
        if body is not None:
            key = idempotency_key(creds.tenant_id, method, path, names or [f"{method} {path}"], payloads_bytes(body))
        minute_us = int(self.settings.limits.minute_seconds * US)
        counted_at: list[int] = []

        def before(uow: UnitOfWork) -> bool:
            now = now_us()
            counted_at[:] = [now]
            ok = uow.registry.record_call(
                self.tenant_id,
                self.d.holder,
                now,
                int(self.settings.lease_ttl * US),
                minute_us,
                int(self.settings.limits.day_seconds * US),
            )
            if ok and uow.registry.count_app_call(now, minute_us) > self.settings.limits.app_per_minute:
                raise AppMinuteFull  # rolls the count back with the rest
            if ok and mark_uncertain:
                uow.registry.preload(OutboxRow, OutboxRow.id, [w.row.id for w in mark_uncertain])
                for w in mark_uncertain:
                    row = uow.registry.get_outbox(w.row.id or 0)
                    if row is not None:
                        row.uncertain = True
                        row.lookup_hint = w.hint
                        row.lease_until_us = now + int(self.settings.claim_ttl * US)
                        uow.session.add(row)
            return ok

        while True:
            self._wait_for_budget()
            try:
                allowed = run_in_transaction(self.d.db, before)
            except AppMinuteFull:
                with self.lock:
                    self.budget.cancel()
                time.sleep(self.settings.limits.minute_seconds / 60)
                continue
            except Exception:
                with self.lock:
                    self.budget.release(time.time())
                raise
            break
        if not allowed:
            with self.lock:
                self.budget.release(time.time())
            raise LeaseLost(self.tenant_id)
        try:
            answer = self.d.xero.call(creds, method, path, params=params, body=body, idempotency_key=key)
        except Uncertain:
            with self.lock:
                self.budget.release(time.time())
            self._recount(counted_at[0], minute_us)
            raise
        self._recount(counted_at[0], minute_us)
        with self.lock:
            self.budget.release(time.time(), answer.rate, answer.elapsed)
        record_call(method, path, answer.status, answer.elapsed)
        if self.d.metrics is not None:
            self.d.metrics.headroom(self.tenant_id, answer.rate)
        self.d.calls_made += 1
        if answer.status == 429:
            self.d.calls_refused += 1
            log.warning("Xero refused a call for rate (%s)", answer.rate.problem, extra={"tenant_id": self.tenant_id})
            self._persist_block()
        if answer.status == 401 and not refreshed and self.d.keeper is not None and creds.connection_id:
            # The access token expired or was revoked early: refresh once and repeat the call
            # (a 401 changed nothing at Xero, and the Idempotency-Key stays the same).
            fresh = self.d.keeper.after_unauthorised(creds)
            if fresh is not None:
                return self._call(fresh, method, path, params, body, mark_uncertain, refreshed=True, names=names)
        return answer

    def _persist_block(self) -> None:
        """Writes Retry-After to the tenant's lease, so a poster that takes the tenant over (after
        a crash or a hand-back) waits it out too instead of being refused again."""
        with self.lock:
            until = self.budget.blocked_until
        if until > time.time():
            run_in_transaction(self.d.db, lambda uow: uow.registry.block_tenant(self.tenant_id, int(until * US)))

    def credentials(self, connection: ConnectionRow) -> Credentials:
        """The connection's access token, opened from its sealed box (refreshed when expiring)."""
        if self.d.keeper is None:
            raise RuntimeError("the dispatcher has no connection keeper to open the tokens with")
        return self.d.keeper.credentials(connection)

    def _create(self, path: str, works: list[_Work]) -> None:
        first = works[0]
        assert first.operation is not None
        target = payloads.target_of(first.operation, first.resolved)
        elements = []
        for w in works:
            assert w.operation is not None
            elements.append(payloads.element_of(w.operation, w.reference, w.contact_id, w.resolved))
        body = {target.collection: elements}
        members = [(w.row.trace_context, w.link) for w in works]
        creds = self.credentials(first.connection)
        with tracing.xero_call(path, self.tenant_id, members) as (call, linked):
            try:
                if target.body == "allocation":
                    self._note_allocations(creds, works)
                answer = self._call(
                    creds,
                    "PUT",
                    path,
                    params={"summarizeErrors": "false"} if target.per_element else None,
                    body=body,
                    mark_uncertain=works,
                    names=[w.identity for w in works],
                )
            except Uncertain as exc:
                for span in (call, *linked):
                    span.set_attribute("xerolink.outcome", "uncertain")
                self._retry(works, uncertain=True, reason="XERO_NO_ANSWER", message=f"no answer from Xero ({exc})")
                return
            except _LookupFailed as exc:  # the credit note could not be read: nothing was sent
                self._retry(works, uncertain=False, reason="XERO_LOOKUP_FAILED", message=str(exc))
                return
            read = read_answer(answer, target.collection, works)
            for span, outcome in zip((call, *linked), read.outcomes(len(works)), strict=True):
                span.set_attribute("xerolink.outcome", outcome)
            self._apply(works, answer, read)

    def _note_allocations(self, creds: Credentials, works: list[_Work]) -> None:
        """Allocations carry no field for a tag, and two allocations of equal amounts from one
        credit note to one invoice are both legitimate: the look-up after an uncertain call tells
        ours apart by what the credit note held just before it (stored with the uncertain mark)."""
        answer = self._call(creds, "GET", f"CreditNotes/{works[0].resolved['credit_note']}")
        _check_lookup(answer)
        ids = sorted(
            str(a.get("AllocationID", ""))
            for note in answer.body.get("CreditNotes") or []
            if isinstance(note, dict)
            for a in note.get("Allocations") or []
            if isinstance(a, dict)
        )
        for w in works:
            w.hint = json.dumps(ids)

    def _apply(self, works: list[_Work], answer: XeroAnswer, read: ReadAnswer) -> None:
        if read.call == "rate_limited":
            self._retry(
                works,
                uncertain=False,
                reason="XERO_RATE_LIMITED",
                message="Xero asked to slow down",
                at=self.budget.blocked_until,
                count=False,
            )
            return
        if read.call == "unavailable":
            self._retry(works, uncertain=True, reason="XERO_UNAVAILABLE", message=f"Xero answered {answer.status}")
            return
        if read.call == "unauthorised":
            self._retry(
                works,
                uncertain=False,
                reason="XERO_UNAUTHORISED",
                message=f"Xero refused the connection's credentials ({answer.status}); reconnect the organisation",
            )
            return
        created: list[tuple[_Work, list[XeroObjectRef]]] = []
        rejected: list[tuple[_Work, list[str]]] = []
        unknown: list[_Work] = []
        for w, element in zip(works, read.elements, strict=True):
            if element.refused is not None:
                rejected.append((w, element.refused))
            elif element.created:
                created.append((w, element.created))
            else:
                unknown.append(w)
        if created or rejected:
            self._write_results(created, rejected)
        if unknown:
            # Not a refusal: Xero may hold the objects. The next attempt looks each up and
            # creates only what is not there (alone, when the batch was refused whole).
            self._retry(unknown, uncertain=True, reason=read.reason, message=read.message, alone=read.alone)

    def _write_results(
        self, created: list[tuple[_Work, list[XeroObjectRef]]], rejected: list[tuple[_Work, list[str]]]
    ) -> None:
        """Applies a call's per-element answers in one short transaction, a few statements for the
        whole batch (see outcomes.apply_batch)."""
        results = [
            outcomes.ElementResult(w.row.id or 0, created=objects[0], also=tuple(objects[1:])) for w, objects in created
        ]
        results += [
            outcomes.ElementResult(
                w.row.id or 0,
                rejected=(
                    "Xero refused it; fix what Xero says in Actionstep or in Xero, then post it again",
                    messages,
                ),
            )
            for w, messages in rejected
        ]
        run_in_transaction(
            self.d.db, lambda uow: outcomes.apply_batch(uow.registry, results, self.d.holder, self.d.actor, now_us())
        )
        self.d.changes.notify()

    def _reject(self, works: list[_Work], messages: list[str]) -> None:
        self._write_results([], [(w, [m]) for w, m in zip(works, messages, strict=True)])

    def _retry(
        self,
        works: Sequence[_Work],
        uncertain: bool,
        reason: str,
        message: str,
        at: float | None = None,
        count: bool = True,
        alone: bool = False,
    ) -> None:
        def write(uow: UnitOfWork) -> None:
            now = now_us()
            self._preload(uow, works)
            for w in works:
                row, link = self._reload(uow, w)
                if row is None or link is None:
                    continue
                row.alone = row.alone or alone
                if count and row.attempts + 1 >= self.settings.max_attempts:
                    outcomes.record_rejected(
                        uow.registry,
                        row,
                        link,
                        reason,
                        f"{message}; gave up after {row.attempts + 1} attempts. "
                        + (
                            "Check Xero for the reference before posting again"
                            if row.uncertain or uncertain
                            else "Post it again when Xero is reachable"
                        ),
                        [],
                        now,
                        self.d.actor,
                        outcome_unknown=row.uncertain or uncertain,
                    )
                    continue
                delay = backoff_delay(
                    row.attempts + 1, self.settings.backoff_base, self.settings.backoff_cap, self.random.random
                )
                when = int(at * US) if at is not None else now + int(delay * US)
                if uncertain and reason == "XERO_NO_ANSWER":
                    # Xero may still be carrying out the call we gave up on: a look-up made
                    # before it lands finds nothing, and creating again then duplicates it.
                    when = max(when, now + int(NO_ANSWER_SETTLE_TIMEOUTS * self.settings.http_timeout * US))
                outcomes.record_retry(uow.registry, row, link, when, uncertain, count, reason, message)

        run_in_transaction(self.d.db, write)
        self.d.changes.notify()

    # -- uncertain outcomes: look up before re-creating -----------------------------------------
    def _look_up(self, works: list[_Work]) -> list[_Work]:
        """Finds the objects uncertain calls may have created. Found: recorded as created. Not
        found: returned, to be created now. Xero unreachable: retried later, still uncertain."""
        to_create: list[_Work] = []
        found: list[tuple[_Work, list[XeroObjectRef]]] = []
        taken: set[str] = set()  # adopted in this pass, not yet written: held all the same
        for w in works:
            assert w.operation is not None
            try:
                match = self._find_existing(self.credentials(w.connection), w, taken)
            except Uncertain as exc:
                self._retry([w], uncertain=True, reason="XERO_NO_ANSWER", message=f"look-up failed ({exc})")
                continue
            except _LookupFailed as exc:
                self._retry(
                    [w],
                    uncertain=True,
                    reason="XERO_LOOKUP_FAILED",
                    message=str(exc),
                    at=self.budget.blocked_until if exc.rate_limited else None,
                    count=not exc.rate_limited,
                )
                continue
            if match is None:
                to_create.append(w)
            else:
                log.info("found %s in Xero after an uncertain call: %s", w.identity, match[0].xero_id)
                taken.add(match[0].xero_id)
                found.append((w, match))
        if found:
            self._write_results(found, [])
        return to_create

    def _find_existing(self, creds: Credentials, w: _Work, taken: set[str]) -> list[XeroObjectRef] | None:
        """This record's object in Xero, found by fields Xero keeps (xero_payloads.lookup_of),
        never one another link holds or an unlink left orphaned."""
        assert w.operation is not None
        body = w.body
        if body == "allocation":
            return self._find_allocation(creds, w, taken)
        lookup = payloads.lookup_of(w.operation, w.reference, w.contact_id)
        if lookup is None or (body == "bank_transaction" and not w.contact_id and "Contact" in lookup.where):
            return None  # an overpayment whose contact was never linked was never sent
        items = [
            item
            for item in self._list_all(creds, lookup.resource, lookup.where)
            if str(item.get("Status", "")).upper() not in ("DELETED", "VOIDED") and lookup.tagged(item)
        ]
        free = self._unheld(w, [payloads.ids_of(body, item)[0] for item in items], taken)
        for item in items:
            if payloads.ids_of(body, item)[0] in free:
                return payloads.created_objects(body, w.operation.local_ref, item)
        return None

    def _list_all(self, creds: Credentials, resource: str, where: str) -> list[dict[str, Any]]:
        """Every object `where` selects. Paged where Xero declares `page`: an unpaged list of
        invoices, credit notes, bank transactions or journals comes without its lines (Xero's
        OpenAPI, `page`: "Up to 100 ... with line items shown"), and an overpayment's tag is in
        its first line. BankTransfers declares no `page` and has no lines."""
        if resource == "BankTransfers":
            answer = self._call(creds, "GET", resource, params={"where": where})
            _check_lookup(answer)
            return [i for i in answer.body.get(resource) or [] if isinstance(i, dict)]
        items: list[dict[str, Any]] = []
        for page in range(1, LOOKUP_PAGES + 1):
            answer = self._call(creds, "GET", resource, params={"where": where, "page": str(page)})
            _check_lookup(answer)
            found = [i for i in answer.body.get(resource) or [] if isinstance(i, dict)]
            items += found
            if len(found) < XERO_PAGE_SIZE:
                break
        return items

    def _find_allocation(self, creds: Credentials, w: _Work, taken: set[str]) -> list[XeroObjectRef] | None:
        """An allocation of this amount to this invoice that the credit note did not hold before
        the uncertain call (`hint`) and no other link holds."""
        assert w.operation is not None
        answer = self._call(creds, "GET", f"CreditNotes/{w.resolved['credit_note']}")
        _check_lookup(answer)
        before = set(json.loads(w.row.lookup_hint)) if w.row.lookup_hint else set()
        amount = payloads.element_of(w.operation, "", "", w.resolved)["Amount"]
        candidates = [
            str(allocation.get("AllocationID", ""))
            for note in answer.body.get("CreditNotes") or []
            if isinstance(note, dict)
            for allocation in note.get("Allocations") or []
            if isinstance(allocation, dict)
            and str((allocation.get("Invoice") or {}).get("InvoiceID", "")).lower() == w.resolved["invoice"].lower()
            and not allocation.get("IsDeleted")
            and payloads.same_amount(allocation.get("Amount"), amount)
            and str(allocation.get("AllocationID", "")) not in before
        ]
        free = self._unheld(w, candidates, taken)
        match = next((c for c in candidates if c in free), None)
        if match is None:
            return None
        return [XeroObjectRef(xero_pb2.OBJECT_TYPE_ALLOCATION, match, w.operation.local_ref)]

    def _unheld(self, w: _Work, xero_ids: list[str], taken: set[str]) -> set[str]:
        candidates = [x for x in xero_ids if x and x not in taken]
        if not candidates:
            return set()
        with UnitOfWork(self.d.db, write=False) as uow:
            held = uow.registry.held_xero_ids(w.connection.connection_id, candidates, w.link.id or 0)
        if held:
            log.warning("a look-up for %s passed over objects other links hold: %s", w.identity, sorted(held))
        return set(candidates) - held

    # -- contacts ------------------------------------------------------------------------------
    def _ensure_contacts(self, works: list[_Work]) -> None:
        """Participants become Xero contacts once, each its own. A participant's contact is found
        in Xero only by ContactNumber "AS-<participant id>" (set by xerolink when it creates the
        contact, or by the firm on a contact entered before connecting, to adopt it); never by
        name, so two participants never share a contact. When another contact holds the display
        name (Xero keeps names unique among active contacts), the contact is created under the
        name followed by its number. Every call is in the traces of the postings that need it."""
        by_participant: dict[tuple[str, int], list[_Work]] = defaultdict(list)
        for w in works:
            assert w.contact is not None
            by_participant[(w.connection.connection_id, w.contact.participant_id)].append(w)
        with UnitOfWork(self.d.db, write=False) as uow:
            for (cid, pid), members in by_participant.items():
                known = uow.registry.get_contact(cid, pid)
                if known is not None:
                    for w in members:
                        w.contact_id = known.contact_id
        pending = {key: members for key, members in by_participant.items() if not members[0].contact_id}
        if not pending:
            return
        traced = [(w.row.trace_context, w.link) for members in pending.values() for w in members]
        with tracing.xero_call("Contacts", self.tenant_id, traced):
            to_create: dict[tuple[str, int], list[_Work]] = {}
            for key, members in pending.items():
                contact = members[0].contact
                assert contact is not None
                try:
                    found = self._find_contact(self.credentials(members[0].connection), contact.contact_number)
                except (Uncertain, _LookupFailed) as exc:
                    self._retry(members, uncertain=False, reason="XERO_CONTACT_LOOKUP_FAILED", message=str(exc))
                    continue
                if not found:
                    to_create[key] = members
                elif len(found) > 1:
                    self._reject(
                        members,
                        [
                            f"{len(found)} Xero contacts carry ContactNumber {contact.contact_number}: keep it on "
                            "the one that is this participant's (clear it on the others), then post again"
                        ],
                    )
                else:
                    self._adopt_contact(members, found[0])
            by_connection: dict[str, list[tuple[str, int]]] = defaultdict(list)
            for key in to_create:
                by_connection[key[0]].append(key)
            for keys in by_connection.values():
                for chunk in chunks(keys, self.settings.batch_size):
                    self._create_contacts([to_create[k] for k in chunk], renamed=False)

    def _find_contact(self, creds: Credentials, number: str) -> list[str]:
        """The ids of the Xero contacts whose ContactNumber is exactly `number`."""
        if not number:
            return []
        quoted = number.replace('"', "")
        answer = self._call(creds, "GET", "Contacts", params={"where": f'ContactNumber=="{quoted}"'})
        _check_lookup(answer)
        return [
            str(item["ContactID"])
            for item in answer.body.get("Contacts") or []
            if isinstance(item, dict) and item.get("ContactID") and item.get("ContactNumber") == number
        ]

    def _adopt_contact(self, members: list[_Work], contact_id: str) -> None:
        """The contact that carries this participant's number, unless another participant's
        link already holds it (its number was changed in Xero since)."""
        first = members[0]
        assert first.contact is not None
        with UnitOfWork(self.d.db, write=False) as uow:
            holder = uow.registry.participant_of_contact(first.connection.connection_id, contact_id)
        if holder is not None and holder != first.contact.participant_id:
            self._reject(
                members,
                [
                    f"the Xero contact with ContactNumber {first.contact.contact_number} is participant {holder}'s "
                    "contact: give it back its own number in Xero, then post again"
                ],
            )
            return
        self._link_contact(members, contact_id, "contact_number")

    def _create_contacts(self, groups: list[list[_Work]], renamed: bool) -> None:
        contacts = [g[0].contact for g in groups]
        elements = [payloads.contact_element(c) for c in contacts if c is not None]
        if renamed:
            for element in elements:
                element["Name"] = distinguishable_name(element["Name"], element["ContactNumber"])
        all_works = [w for g in groups for w in g]
        creds = self.credentials(groups[0][0].connection)
        names = [f"contact/{g[0].connection.connection_id}/{c.participant_id}" for g in groups if (c := g[0].contact)]
        try:
            answer = self._call(
                creds,
                "PUT",
                "Contacts",
                params={"summarizeErrors": "false"},
                body={"Contacts": elements},
                names=names,
            )
        except Uncertain as exc:
            # Nothing is lost: the next attempt finds the contact by its number before creating.
            self._retry(all_works, uncertain=False, reason="XERO_NO_ANSWER", message=f"contacts: {exc}")
            return
        if not answer.ok:
            self._retry(
                all_works,
                uncertain=False,
                reason="XERO_CONTACTS_FAILED",
                message=_message_of(answer.body) or f"Xero answered {answer.status}",
                at=self.budget.blocked_until if answer.status == 429 else None,
                count=answer.status != 429,
            )
            return
        items = answer.body.get("Contacts") if isinstance(answer.body, dict) else None
        if not isinstance(items, list) or len(items) != len(groups) or not all(isinstance(i, dict) for i in items):
            # Created or not, the next attempt finds each contact by its number first.
            self._retry(
                all_works,
                uncertain=False,
                reason="XERO_ANSWER_UNREADABLE",
                message="Xero's answer to creating contacts could not be matched to what was sent",
            )
            return
        clashes: list[list[_Work]] = []
        for members, item in zip(groups, items, strict=True):
            errors = [str(e.get("Message", "")) for e in item.get("ValidationErrors") or [] if isinstance(e, dict)]
            if not errors and item.get("ContactID"):
                self._link_contact(members, str(item["ContactID"]), "created_renamed" if renamed else "created")
            elif not renamed and any(NAME_TAKEN in e for e in errors):
                clashes.append(members)
            else:
                self._reject(members, ["; ".join(errors) or "Xero refused the contact"])
        if clashes:
            self._create_contacts(clashes, renamed=True)

    def _link_contact(self, members: list[_Work], contact_id: str, origin: str) -> None:
        first = members[0]
        assert first.contact is not None
        contact = first.contact
        log.info(
            "participant %s is Xero contact %s (%s)",
            contact.participant_id,
            contact_id,
            origin,
            extra={"tenant_id": self.tenant_id},
        )
        run_in_transaction(
            self.d.db,
            lambda uow: uow.registry.add_contact(
                ContactLinkRow(
                    connection_id=first.connection.connection_id,
                    participant_id=contact.participant_id,
                    contact_id=contact_id,
                    contact_number=contact.contact_number,
                    create_us=now_us(),
                    origin=origin,
                )
            ),
        )
        for w in members:
            w.contact_id = contact_id


# Xero's refusal of a contact whose name another active contact holds: "The contact name X is
# already assigned to another contact. The contact name must be unique across all active
# contacts." (reported from Xero's API in Pinelab-studio/pinelab-vendure-plugins#505).
NAME_TAKEN = "is already assigned to another contact"
CONTACT_NAME_MAX = 255  # Contact.Name maxLength in Xero's OpenAPI description


def distinguishable_name(name: str, number: str) -> str:
    """The name a participant's contact is created under when another contact holds its display
    name: the name followed by the participant's contact number, "Jane Smith (AS-777)"."""
    suffix = f" ({number})"
    return name[: CONTACT_NAME_MAX - len(suffix)].rstrip() + suffix


class _LookupFailed(Exception):
    def __init__(self, message: str, rate_limited: bool) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


def _check_lookup(answer: XeroAnswer) -> None:
    if not answer.ok or not isinstance(answer.body, dict):
        raise _LookupFailed(f"Xero answered {answer.status} to a look-up", answer.status == 429)


@dataclass
class ElementAnswer:
    """One element's outcome: created (its objects), refused by Xero (its messages), or unknown."""

    created: list[XeroObjectRef] = field(default_factory=list)
    refused: list[str] | None = None


@dataclass
class ReadAnswer:
    """Xero's answer to a create call, read element by element. `call` is set when the answer
    speaks for the whole call (rate limited, unavailable, unauthorised); otherwise each element
    is created, refused, or unknown (`reason`, `message`; `alone`: post it in a call of its own)."""

    call: str = ""
    elements: list[ElementAnswer] = field(default_factory=list)
    reason: str = ""
    message: str = ""
    alone: bool = False

    def outcomes(self, count: int) -> list[str]:
        """Each element's outcome for its trace."""
        if self.call:
            return [self.call] * count
        return ["created" if e.created else "rejected" if e.refused is not None else "uncertain" for e in self.elements]


def read_answer(answer: XeroAnswer, collection: str, works: Sequence[_Work]) -> ReadAnswer:
    """The one place a create call's answer is classified. Only an element Xero explicitly
    refused fails: an answer that proves nothing (unparsable, a count that does not match, an
    element without an id or with another record's tag) leaves its elements unknown, to be looked
    up before anything is created again. A 4xx refusing a batch whole names no element: without
    summarizeErrors=false Xero may still have created the valid ones (NOTES: Xero facts)."""
    if answer.status == 429:
        return ReadAnswer(call="rate_limited")
    if answer.status >= 500:
        return ReadAnswer(call="unavailable")
    if answer.status in (401, 403):
        return ReadAnswer(call="unauthorised")
    body = answer.body if isinstance(answer.body, dict) else {}
    items = body.get(collection)
    if answer.status != 200 and not items:
        items = body.get("Elements")
    matched = isinstance(items, list) and len(items) == len(works) and all(isinstance(i, dict) for i in items)
    if not matched or not isinstance(items, list):
        message = _message_of(answer.body) or f"Xero answered {answer.status}"
        if answer.status != 200 and len(works) == 1:
            return ReadAnswer(elements=[ElementAnswer(refused=[message])])
        if answer.status == 200:
            return _unknown(works, "XERO_ANSWER_UNREADABLE", "Xero's answer could not be matched to what was sent")
        return _unknown(
            works, "XERO_BATCH_REFUSED", f"Xero refused the call whole ({message}); each is tried alone", alone=True
        )
    read = ReadAnswer(reason="XERO_ANSWER_UNREADABLE", message="Xero's answer named no object for it")
    for w, item in zip(works, items, strict=True):
        errors = [str(e.get("Message", "")) for e in item.get("ValidationErrors") or [] if isinstance(e, dict)]
        if item.get("StatusAttributeString") == "ERROR" or errors or item.get("HasErrors"):
            read.elements.append(ElementAnswer(refused=errors or ["Xero rejected the element"]))
            continue
        if answer.status != 200:
            # Valid, in a batch refused whole: Xero may have created it without naming its id.
            read.elements.append(ElementAnswer())
            read.reason, read.message, read.alone = "XERO_BATCH_REFUSED", "Xero refused the call whole", True
            continue
        assert w.operation is not None
        objects = payloads.created_objects(w.body, w.operation.local_ref, item)
        lookup = payloads.lookup_of(w.operation, w.reference, w.contact_id)
        tag_answered = lookup is not None and item.get(lookup.tag_path[0]) is not None
        if not objects[0].xero_id or (tag_answered and lookup is not None and not lookup.tagged(item)):
            read.elements.append(ElementAnswer())
            continue
        read.elements.append(ElementAnswer(created=objects))
    return read


def _unknown(works: Sequence[_Work], reason: str, message: str, alone: bool = False) -> ReadAnswer:
    return ReadAnswer(elements=[ElementAnswer() for _ in works], reason=reason, message=message, alone=alone)


def _message_of(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("Message") or body.get("Detail") or body.get("Title") or "")
    return ""


def own_last(uow: UnitOfWork, link: LinkRow) -> XeroObjectRef | None:
    objects = uow.registry.xero_objects(link)
    return objects[-1] if objects else None


def payloads_bytes(body: Any) -> bytes:
    from xerolink_poster.adapters.xero_json import dumps

    return dumps(body)


__all__ = ["OUTBOX_READY", "Callable", "Dispatcher", "DispatcherSettings", "StateChanges"]
