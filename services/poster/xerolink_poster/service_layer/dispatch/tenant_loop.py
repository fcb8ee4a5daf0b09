"""A tenant's worker: one thread per tenant holding its lease, claiming outbox entries and
running each claimed batch as a job (prepare, look up, contacts, matters' options, create) on a pool as wide as
Xero's concurrency limit. It is also lent to corrections, whose calls share its gate."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, now_us, registry_unreachable
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.xero_client import Credentials, XeroAnswer
from xerolink_poster.domain.retry import chunks
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.domain.stored_rows import ClaimedEntry
from xerolink_poster.service_layer.dispatch import payable, preparing
from xerolink_poster.service_layer.dispatch.contacts import Contacts
from xerolink_poster.service_layer.dispatch.creating import Creator
from xerolink_poster.service_layer.dispatch.gate import Gate, LeaseLost
from xerolink_poster.service_layer.dispatch.leasing import renew_lease
from xerolink_poster.service_layer.dispatch.lookups import LookUps
from xerolink_poster.service_layer.dispatch.matters import Matters, tracked_category
from xerolink_poster.service_layer.dispatch.results import Results, Retry, connection_wait
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
US = 1_000_000
# The longest pause between two polls of an idle tenant's queue.
IDLE_POLL_CAP = 0.1


class TenantWorker(threading.Thread):
    def __init__(
        self,
        shared: Shared,
        settings: DispatcherSettings,
        tenant_id: str,
        history: list[float],
        day_calls: int,
        day_started: float,
        blocked_until: float,
    ) -> None:
        super().__init__(name=f"tenant-{tenant_id[:8]}", daemon=True)
        self.d = shared
        self.settings = settings
        self.tenant_id = tenant_id
        self.gate = Gate(shared, settings, tenant_id, history, day_calls, day_started, blocked_until)
        self.results = Results(shared, settings)
        self.lookups = LookUps(shared, self.gate, self.results)
        self.contacts = Contacts(shared, settings, tenant_id, self.gate, self.results)
        self.matters = Matters(shared, tenant_id, self.gate, self.results)
        self.creator = Creator(tenant_id, self.gate, self.results, retrack=self._retrack)
        self.lock = threading.Lock()  # guards the loan
        self.lease_lost = False
        # A job could not put its claims back: the lease is handed back as one that ran out.
        self.claims_left = False
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
        headers: dict[str, str] | None = None,
    ) -> XeroAnswer:
        """One Xero call for a borrower, within the tenant's limits and lease; `names` say what
        the call is for, for its Idempotency-Key (default: the object its path names)."""
        return self.gate.call(creds, method, path, params=params, body=body, names=names, headers=headers)

    def credentials(self, connection: ConnectionRow) -> Credentials:
        """The connection's access token, opened from its sealed box (refreshed when expiring)."""
        return self.gate.credentials(connection)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self._serve()
            self.d.worker_served(self.tenant_id)
        except Exception as exc:
            # The registry failed outside a job (a session ended mid-statement, a restart): the
            # turn ends and the tenant goes back. Jobs in flight finished as the pool closed, and
            # a correction the worker was lent to gives it back first; the dispatcher serves the
            # tenant again after a pause, when it next finds its work ready.
            if isinstance(exc, CommitMayHaveGoneThrough):
                # A claim that may have committed: its entries are this poster's until the claim
                # runs out (minutes), unless the tenant's next taking voids them.
                self.claims_left = True
            log.exception("tenant worker failed; handing the tenant back", extra={"tenant_id": self.tenant_id})
            self.d.worker_failed(self.tenant_id)
            self._wait_for_borrowers()
        with self.lock:
            self.closing = True
        try:
            self.d.hand_back(self.tenant_id, self, self.claims_left)
        except Exception:
            # Left to expire (lease_ttl); this poster takes it again before that if it must.
            log.warning("could not hand tenant %s back", self.tenant_id, exc_info=True)
            return
        log.info("released tenant %s", self.tenant_id, extra={"tenant_id": self.tenant_id})

    def _serve(self) -> None:
        """The turn: claims and submits batches until the turn is over, the lease is lost or the
        dispatcher stops; the pool's jobs have finished when it returns or raises."""
        limits = self.settings.limits
        slots = threading.Semaphore(limits.concurrent)
        started = idle_since = last_renew = time.monotonic()
        idle = 0  # polls in a row that found no work
        drained = False  # the last claim took less than a batch: the queue looked empty then
        batches = 0  # claimed in this turn
        with (
            ThreadPoolExecutor(limits.concurrent, thread_name_prefix=f"xero-{self.tenant_id[:8]}") as pool,
            self._no_loans_after_an_error(),  # before the pool waits for its jobs
        ):
            while not self.d.stopping and not self.lease_lost:
                if time.monotonic() - last_renew > self.settings.lease_ttl / 3:
                    if not self._renew():
                        break
                    last_renew = time.monotonic()
                wait = self.gate.wait_time()
                if self._turn_over(started, wait, batches) and self._close_when_idle():
                    # Jobs in flight finish as the pool closes; the lease goes back after them.
                    # When Xero's budget keeps the tenant waiting a turn anyway, jobs still
                    # waiting for it put their work back. Otherwise a job waits for the budget
                    # it needs: stopped at a short wait, a job of several calls (look-ups, a
                    # create's reads) would lose the calls it had made, every turn again.
                    self.gate.handing_back = wait >= self.settings.turn
                    break
                if wait > 0:
                    time.sleep(min(wait, 0.05))
                    continue
                if not slots.acquire(timeout=0.05):
                    continue
                # After a claim found nothing, or less than a batch, a read looks for work before
                # the next claim: a claim is a write transaction, and polling with it would queue
                # every poll behind (and ahead of) the writes that post.
                rows = self._claim() if not (idle or drained) or self._claimable() else []
                drained = len(rows) < self.settings.batch_size
                if not rows:
                    slots.release()
                    if time.monotonic() - idle_since > self.settings.idle_release and self._close_when_idle():
                        break
                    # Polls of an idle queue slow down, to at most IDLE_POLL_CAP apart.
                    time.sleep(min(self.settings.poll_interval * 2 ** min(idle, 10), IDLE_POLL_CAP))
                    idle += 1
                    continue
                idle = 0
                idle_since = time.monotonic()
                batches += 1

                def job(claimed: list[Work] = rows) -> None:
                    try:
                        self._run(claimed)
                    finally:
                        slots.release()

                pool.submit(job)

    def _run(self, claimed: list[Work]) -> None:
        """One job's batch. A batch that fails before anything of it still held was sent runs
        again as two halves apart: an entry the dispatcher cannot process (a bug its data
        reaches) then fails alone, after about log2(batch) runs, and the rest are posted. Failed
        together, every entry of the batch was given up with it, each time. Not when the registry
        is unreachable, which no entry's data causes, nor once anything was sent: Xero may have
        it, and only a look-up after the settle may send it again."""
        try:
            self._process(claimed)
        except LeaseLost:
            self.lease_lost = True
            self._put_back(_still_held(claimed))
        except Exception as exc:
            if any(w.commit_unknown for w in claimed):
                # A write that may not have committed left entries claimed: handed back as a
                # lease that ran out, the tenant's next taking voids its claims (no job of this
                # worker is in flight by then). Else they wait out their claim (minutes) before
                # their look-up.
                self.claims_left = True
            held = [w for w in claimed if not w.handed_back]
            if len(held) > 1 and not any(w.sending for w in held) and not registry_unreachable(exc):
                log.warning(
                    "dispatch job failed before sending; its entries run again in halves",
                    exc_info=True,
                    extra={"tenant_id": self.tenant_id},
                )
                halves = [held[: len(held) // 2], held[len(held) // 2 :]]
                for n, half in enumerate(halves):
                    if self.lease_lost or self.d.stopping:
                        self._put_back([w for part in halves[n:] for w in part])
                        return
                    try:
                        works = self._reloaded(half)
                    except Exception:
                        log.exception("could not read the entries again", extra={"tenant_id": self.tenant_id})
                        self.claims_left = True  # voided at the tenant's next taking
                        return
                    self._run(works)
                return
            log.exception("dispatch job failed", extra={"tenant_id": self.tenant_id})
            self._record_failure(held, exc)

    def _put_back(self, works: list[Work]) -> None:
        """Unclaims a job's entries when the lease is lost: the tenant's next worker takes them.
        Only under the job's own claims: another job of this poster may hold one by now."""
        try:
            self._unclaim([w.row for w in works], {w.row.id: w.claims for w in works})
        except Exception:
            log.exception("could not put the work back", extra={"tenant_id": self.tenant_id})
            self.claims_left = True  # retried after the claim, or voided by the next holder

    @contextmanager
    def _no_loans_after_an_error(self) -> Iterator[None]:
        """A turn ending on an error lends the worker to no correction from then on: one lent
        while the pool waits for its jobs would have the tenant handed back under it."""
        try:
            yield
        except Exception:
            with self.lock:
                self.closing = True
            raise

    def _wait_for_borrowers(self) -> None:
        """Until the corrections the worker was lent to give it back, as a turn's normal end waits
        (their calls renew the lease meanwhile)."""
        while not self.d.stopping:
            with self.lock:
                if not self.borrowers:
                    return
            time.sleep(0.05)

    def _turn_over(self, started: float, wait: float, batches: int) -> bool:
        """Whether to hand the tenant back for others waiting: after a batch, so every tenant
        waiting gets one in its turn whatever the machine's load (a turn of time gave a worker
        one batch or five as its threads were scheduled); after the turn's time, when a batch
        was never claimed; or at once when Xero's budget keeps this tenant waiting a turn anyway."""
        if not self.d.others_waiting:
            return False
        return batches > 0 or time.monotonic() - started >= self.settings.turn or wait >= self.settings.turn

    def _claim(self) -> list[Work]:
        """A batch claimed, with its links and connections read in the same transaction."""

        def claim(uow: UnitOfWork) -> list[Work]:
            rows = uow.outbox.claim(
                self.tenant_id, self.d.holder, self.settings.batch_size, now_us(), int(self.settings.claim_ttl * US)
            )
            return self._works(uow, rows)

        return run_in_transaction(self.d.db, claim)

    def _claimable(self) -> bool:
        with UnitOfWork(self.d.db, write=False) as uow:
            return uow.outbox.has_claimable(self.tenant_id, now_us())

    def _record_failure(self, held: list[Work], exc: Exception) -> None:
        """An unexpected error must not leave work silently pending: each entry gets the error as
        its visible reason, counts an attempt and backs off, and fails for good after the last
        attempt. An entry whose call may have gone out (`Work.sending`) is looked up first, after
        the settle; one this job never sent keeps the mark it was claimed with."""
        message = f"the dispatcher could not process it ({type(exc).__name__}: {str(exc)[:200]})"
        try:
            # Loaded again: what the job learned (a look-up that found nothing) is not trusted.
            works = self._reloaded(held)
            sent = {w.row.id for w in held if w.sending}
            retries = [
                Retry(part, uncertain, Reason.DISPATCH_ERROR, message)
                for uncertain in (True, False)
                if (part := [w for w in works if (w.row.id in sent) == uncertain])
            ]
            self.results.retry_together(retries)
        except Exception:
            log.exception("could not record the failure; the entries are retried after their claim expires")
            self.claims_left = True  # the next holder voids them sooner

    def _renew(self) -> bool:
        lease = run_in_transaction(
            self.d.db,
            lambda uow: renew_lease(uow, self.tenant_id, self.d.holder, now_us(), int(self.settings.lease_ttl * US)),
        )
        if lease is None:
            # Lent to nobody from now: the loop stops, but says it is closing only after its jobs
            # in flight end, and a borrower meanwhile would call beside the tenant's next worker.
            self.lease_lost = True
        return lease is not None

    def _unclaim(self, rows: Sequence[ClaimedEntry], claims: dict[int, tuple[int, ...]] | None = None) -> None:
        run_in_transaction(self.d.db, lambda uow: uow.outbox.unclaim([r.id for r in rows], self.d.holder, claims))

    # -- one job -----------------------------------------------------------------------------
    def _process(self, claimed: list[Work]) -> None:
        works = self._held_back(claimed)
        works = preparing.prepare(self.d, self.results, works)
        if not works:
            return
        uncertain = [w for w in works if w.row.uncertain]
        if uncertain:
            works = [w for w in works if not w.row.uncertain] + self.lookups.look_up(uncertain)
        # After the look-ups: a first operation they did not find in Xero is sent again, checked.
        works = payable.check_later_payments(self.gate, self.results, works)
        needing_contacts = [w for w in works if w.contact is not None and not w.contact_id]
        if needing_contacts:
            with self.contacts.lock:
                self.contacts.ensure(needing_contacts)
            works = [w for w in works if w.contact is None or w.contact_id]
        works = self._with_tracking(works)
        groups: dict[tuple[str, str, int], list[Work]] = defaultdict(list)
        for w in works:
            assert w.operation is not None
            target = payloads.target_of(w.operation, w.resolved)
            # Alone: refused whole before, or an endpoint that answers no outcome per element.
            alone = w.row.alone or not target.per_element
            groups[(w.connection.connection_id, target.path, w.row.id if alone else 0)].append(w)
        for (_, path, _), members in groups.items():
            for chunk in chunks(members, self.settings.batch_size):
                self.creator.create(path, list(chunk))

    def _with_tracking(self, works: list[Work]) -> list[Work]:
        """Entries of connections that track matters get their matters' options (finding or
        creating them once, under the lock); those whose options cannot be had now fail or wait,
        saying why. Nothing is sent without its tracking."""
        tracks: dict[str, bool] = {}
        needing: list[Work] = []
        others: list[Work] = []
        for w in works:
            cid = w.connection.connection_id
            if cid not in tracks:
                tracks[cid] = tracked_category(w.connection) is not None
            if not tracks[cid]:
                others.append(w)
                continue
            assert w.operation is not None
            w.tracking = {}
            (needing if payloads.tracked_matters(w.operation) else others).append(w)
        if not needing:
            return works
        with self.matters.lock:
            return others + self.matters.ensure(needing)

    def _retrack(self, works: list[Work]) -> list[Work]:
        """Entries Xero refused over their lines' tracking, with the names Xero has now (under the
        lock, as their options were found): the ones to send again."""
        with self.matters.lock:
            return self.matters.refresh(works)

    def _held_back(self, works: list[Work]) -> list[Work]:
        """Work of a disconnected connection, or one that needs reconnecting, waits (visible, not
        counted as an attempt) until the organisation is connected again."""
        usable = [w for w in works if w.connection.state == ConnectionState.CONNECTED]
        held = [w for w in works if w.connection.state != ConnectionState.CONNECTED]
        if held:
            self.results.retry_together([connection_wait(held, held[0].connection.state)])
        return usable

    def _reloaded(self, works: list[Work]) -> list[Work]:
        """The works' entries read again, each under the claim its work knew."""
        fresh = self._load([w.row for w in works])
        claims = {w.row.id: (w.claim_until_us, w.claim_if_marked_us) for w in works}
        for w in fresh:
            w.claim_until_us, w.claim_if_marked_us = claims[w.row.id]
        return fresh

    def _load(self, rows: list[ClaimedEntry]) -> list[Work]:
        with UnitOfWork(self.d.db, write=False) as uow:
            return self._works(uow, rows)

    @staticmethod
    def _works(uow: UnitOfWork, entries: list[ClaimedEntry]) -> list[Work]:
        out: list[Work] = []
        links = uow.links.stored_links([e.link_id for e in entries])
        connections: dict[str, ConnectionRow] = {}
        for entry in entries:
            link = links.get(entry.link_id)
            connection = connections.get(entry.connection_id) or uow.connections.get_connection(entry.connection_id)
            if link is None or connection is None:
                continue
            connections[entry.connection_id] = connection
            out.append(Work(entry, link, connection))
        return out


def _still_held(claimed: list[Work]) -> list[Work]:
    """The job's entries it has not handed back: an entry handed back may be held by another of
    the tenant's jobs by now, under a claim of the same poster's name."""
    return [w for w in claimed if not w.handed_back]
