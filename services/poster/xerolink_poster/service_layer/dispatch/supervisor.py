"""The dispatcher itself: one thread that starts a worker per tenant with ready work (taking the
tenant's lease), lends workers to corrections, releases waiting work whose dependencies linked,
and purges done outbox entries past their retention."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial

from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, Database, now_us
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.rate_limits import AppCallMoves, SlidingWindow
from xerolink_poster.domain.stored_rows import HeldLease
from xerolink_poster.service_layer import drift_holds, outcomes
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper
from xerolink_poster.service_layer.dispatch.answer_groups import AnswerGroups
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.leasing import take_lease
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.metrics import PosterMetrics
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
US = 1_000_000
# A tenant whose worker failed outside a job waits this long before its next worker, doubled
# with each failure in a row up to the cap: a registry failing for a while must not restart the
# worker (a lease write and a logged error each time) at every round.
FAILED_WORKER_PAUSE = 1.0
FAILED_WORKER_PAUSE_CAP = 30.0
# The safety net for waits (release_satisfied_waits) reads every wait of every connection: with
# 100,000 entries waiting it took about 100 ms on SQLite, a fifth of the supervisor's thread at a
# sweep every half second. A sweep starts SWEEP_INTERVAL after the last at the soonest, and
# 1 / SWEEP_SHARE times as long after it as it took at the latest, so however many entries wait
# it takes at most that share of the thread (and the race it covers waits a little longer). A
# sweep slowed by something else (its write waiting for the writer) must not put the net off
# for long: never more than SWEEP_PAUSE_CAP apart.
SWEEP_INTERVAL = 0.5
SWEEP_SHARE = 0.05
SWEEP_PAUSE_CAP = 30.0


def _step(run: Callable[[], object], what: str) -> None:
    """One step of the supervisor's loop; its failure is logged, and the loop goes on."""
    try:
        run()
    except Exception:
        log.exception("the dispatcher's %s failed; trying again later", what)


def sweep_pause(took: float) -> float:
    """Seconds from the end of a sweep that took `took` seconds to the start of the next."""
    return min(max(SWEEP_INTERVAL, took / SWEEP_SHARE - took), SWEEP_PAUSE_CAP)


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
        self._stop = threading.Event()
        self._workers: dict[str, TenantWorker] = {}
        self._workers_lock = threading.Lock()
        # When each tenant's worker last started here: the tenant served longest ago goes first.
        self._served_at: dict[str, float] = {}
        self._others_waiting = False
        # Tenants whose worker failed: when the next may start, and the pause that led there.
        self._paused: dict[str, tuple[float, float]] = {}
        self._thread: threading.Thread | None = None
        self.actor = f"{outcomes.ACTOR}:{holder}"[:128]
        self.answers = AnswerGroups(db, holder, self.actor)
        self.calls_made = 0
        self.calls_refused = 0
        self.app_moves = AppCallMoves()

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
        try:
            self.write_app_moves()
        except Exception:
            log.warning("could not write the app minute's last moves", exc_info=True)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def others_waiting(self) -> bool:
        return self._others_waiting

    def hand_back(self, tenant_id: str, worker: object, claims_left: bool = False) -> None:
        # Not under _workers_lock: a round holds it while its transaction takes leases, and
        # workers that ended meanwhile waited for the round, alive, each keeping a place a tenant
        # with work waited for. No newer worker can take the tenant over meanwhile: a worker is
        # replaced only once it is no longer alive, and it is alive until this returns.
        if self._workers.get(tenant_id) is worker:
            run_in_transaction(self.db, lambda uow: uow.leases.release_lease(tenant_id, self.holder, claims_left))

    def worker_failed(self, tenant_id: str) -> None:
        _, pause = self._paused.get(tenant_id, (0.0, 0.0))
        pause = min(max(pause * 2, FAILED_WORKER_PAUSE), FAILED_WORKER_PAUSE_CAP)
        self._paused[tenant_id] = (time.monotonic() + pause, pause)

    def worker_served(self, tenant_id: str) -> None:
        self._paused.pop(tenant_id, None)

    def _run(self) -> None:
        next_sweep = last_moves = last_purge = 0.0
        while not self._stop.is_set():
            # Each step apart: one that fails every time (a row the sweep cannot read, a statement
            # timeout) must not keep the others from running, least of all the workers' rounds,
            # and is tried again at its own pace (a failed sweep is spaced by its cost too).
            if time.monotonic() >= next_sweep:
                started = time.monotonic()
                _step(self.release_satisfied_waits, "the sweep for waits whose records linked")
                ended = time.monotonic()
                next_sweep = ended + sweep_pause(ended - started)
            if time.monotonic() - last_moves > 0.5:
                last_moves = time.monotonic()
                _step(self.write_app_moves, "writing the app minute's moves")
            if time.monotonic() - last_purge > self.settings.purge_interval:
                last_purge = time.monotonic()
                _step(self.purge_done_outbox, "the outbox purge")
            _step(self._start_workers, "a round of the tenants' workers")
            self._stop.wait(self.settings.poll_interval * 5)

    def _start_workers(self) -> None:
        """Starts a worker for each tenant with ready work and none running here, up to
        max_tenants: tenants never served here first (the registry lists them longest-waiting
        first), then the one served longest ago. Tenants left over make the running workers take
        turns (`others_waiting`), so none waits for another tenant's whole backlog."""
        with UnitOfWork(self.db, write=False) as uow:
            tenants = uow.outbox.tenants_with_ready_work(now_us())
        now = time.monotonic()
        with self._workers_lock:
            idle = [
                t
                for t in tenants
                if ((w := self._workers.get(t)) is None or not w.is_alive()) and self._paused.get(t, (now,))[0] <= now
            ]
        if idle:
            # A tenant another poster serves is not waiting: its own worker is there.
            with UnitOfWork(self.db, write=False) as uow:
                elsewhere = uow.leases.held_by_others(idle, self.holder, now_us())
            idle = [t for t in idle if t not in elsewhere]
        idle.sort(key=lambda t: self._served_at.get(t, float("-inf")))  # stable: keeps the registry's order
        with self._workers_lock:
            free = max(self.settings.max_tenants - len(self._alive()), 0)
            # Said before any worker of this round starts: a worker that began while the flag
            # still said nobody waits kept its tenant for the whole backlog.
            self._others_waiting = len(idle) > free
            if idle[:free]:
                self._start_many(idle[:free])

    def _start_many(self, tenants: list[str]) -> None:
        """Takes the leases of `tenants` in one transaction and starts a worker for each lease
        taken (the caller holds _workers_lock). One transaction a round: a write each, queued
        behind the workers' writes, let a round start only a few tenants a second, and tenants
        far down the list waited for the round instead of their turn."""
        wanted = [t for t in tenants if (w := self._workers.get(t)) is None or not w.is_alive()]
        # In the tenants' order, so two posters taking overlapping sets cannot deadlock.
        taken = run_in_transaction(self.db, lambda uow: [self._acquire(t, uow) for t in sorted(wanted)])
        by_tenant = {lease.tenant_id: lease for lease in taken if lease is not None}
        for tenant in wanted:
            if tenant in by_tenant:
                self._launch(tenant, by_tenant[tenant])

    def _start_lent_worker(self, tenant: str) -> TenantWorker | None:
        """Takes the tenant's lease and starts its worker lent to the caller (who holds
        _workers_lock and gives it back); None when another poster holds the lease."""
        lease = run_in_transaction(self.db, partial(self._acquire, tenant))
        return None if lease is None else self._launch(tenant, lease, lent=True)

    def _launch(self, tenant: str, lease: HeldLease, lent: bool = False) -> TenantWorker:
        log.info("serving tenant %s", tenant, extra={"tenant_id": tenant})
        history = [t + self.settings.http_timeout for t in _json_list(lease.minute_log)]
        day = (lease.day_calls, lease.day_started_us / US)
        worker = TenantWorker(self, self.settings, tenant, history, *day, lease.blocked_until_us / US)
        if lent:
            # Before it runs: while tenants wait, a worker's turn is one batch, and one lent
            # only after starting could already be closing, refusing the loan it was started for.
            worker.lend()
        self._workers[tenant] = worker
        self._served_at[tenant] = time.monotonic()
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
            closing: TenantWorker | None = None
            with self._workers_lock:
                worker = self._workers.get(tenant)
                if worker is not None and worker.is_alive() and not worker.lend():
                    # Handing the tenant back, its last calls may still be at Xero: a second
                    # worker now would not count them against the tenant's concurrency, and
                    # whichever of the two ended first would release the lease under the
                    # other's calls. Wait for it to end, then start afresh.
                    closing, worker = worker, None
                elif worker is None or not worker.is_alive():
                    worker = self._start_lent_worker(tenant)
            if worker is not None:
                break
            if time.monotonic() > deadline:
                raise LeaseLost(tenant)
            if closing is not None:
                closing.join(min(0.2, max(deadline - time.monotonic(), 0.0)))
            else:
                time.sleep(min(0.2, self.settings.lease_ttl / 10))
        try:
            yield worker
        finally:
            worker.give_back()

    def _acquire(self, tenant: str, uow: UnitOfWork) -> HeldLease | None:
        return take_lease(uow, tenant, self.holder, now_us(), int(self.settings.lease_ttl * US))

    def _alive(self) -> list[TenantWorker]:
        return [w for w in self._workers.values() if w.is_alive()]

    def write_app_moves(self) -> None:
        """Writes the app minute's moves no call's count has written yet (AppCallMoves), so a call
        is never left in the bucket it was reserved in when no other call follows."""
        moves = self.app_moves.take()
        if not moves:
            return
        try:
            run_in_transaction(self.db, lambda uow: uow.leases.add_app_calls(moves))
        except CommitMayHaveGoneThrough:
            raise  # written, perhaps: again, a bucket would lose a call it holds (as in Gate.call)
        except BaseException:
            self.app_moves.put_back(moves)
            raise

    def release_satisfied_waits(self) -> None:
        """The safety net for a dependency that linked while the waiting post was being written:
        a read finds waiting entries whose dependencies are all linked; only then a write
        releases them."""
        self.release_waits(self.satisfied_waits())

    def satisfied_waits(self) -> list[int]:
        """The sweep's read: waiting entries whose dependencies were all linked when it ran."""
        with UnitOfWork(self.db, write=False) as uow:
            return uow.outbox.satisfied_waiting_entries()

    def release_waits(self, found: Sequence[int]) -> None:
        """The sweep's write. What the read found may have changed since (another poster released
        it, its document was unlinked or is being corrected, a drift holds it): release_entry
        re-checks every wait in this transaction."""
        if not found:
            return

        def sweep(uow: UnitOfWork) -> int:
            return sum(
                outcomes.release_entry(uow, i, now_us(), "dependencies linked")
                for i in found
                if not _waits_on_a_correction(uow, i) and not drift_holds.still_held(uow, i)
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
        run_in_transaction(self.db, lambda uow: uow.leases.purge_app_calls(now - 2 * minute_us))
        purged = 0
        while not self._stop.is_set():
            deleted = run_in_transaction(self.db, lambda uow: uow.outbox.purge_done_outbox(cutoff, batch))
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
    return any(
        uow.corrections.under_correction(connection_id, record, dep.generation)
        for connection_id, record, dep in outcomes.dependency_links(uow, outbox_id)
    )


def _json_list(text: str) -> list[float]:
    return [float(x) for x in json.loads(text)]
