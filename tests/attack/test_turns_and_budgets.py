"""Tenants taking turns for the dispatcher's workers (XEROLINK_TENANT_TURN_SECONDS) against Xero's
per-tenant budgets and against corrections that borrow a tenant's worker.

A worker rebuilds the tenant's budget from its lease row at each start: the calls of the last
minute, and the day's count (`day_calls`, kept without times since `day_started_us`). Taking
turns starts a new worker every turn, so whatever the rebuilt budget gets wrong happens every
turn instead of once a handover; and a worker handing its tenant back may still have calls at
Xero, which nothing may count twice or leave uncounted."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import now_us
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_for,
    xero_objects,
)

LINKED = poster_pb2.LINK_STATE_LINKED


def _post(stub: Any, connection_id: str, first_id: int, count: int) -> list[str]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(
            connection_id=connection_id,
            transactions=[samples.client_bill(first_id + i) for i in range(count)],
        )
    ).results
    return [r.posting.name for r in results]


class CallsAtXero:
    """Counts each organisation's calls at the emulator, those in progress (the most at once) and
    the calls it refused, by wrapping its limiter."""

    def __init__(self, emulator: Any) -> None:
        self.calls: dict[str, int] = {}
        self.in_progress: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.refused: list[str] = []
        self.lock = threading.Lock()
        limiter = emulator.state.limiter
        acquire, release = limiter.acquire, limiter.release

        def counting_acquire(app_id: str, tenant: str) -> Any:
            decision = acquire(app_id, tenant)
            with self.lock:
                self.calls[tenant] = self.calls.get(tenant, 0) + 1
                if decision.allowed:
                    self.in_progress[tenant] = self.in_progress.get(tenant, 0) + 1
                    self.most[tenant] = max(self.most.get(tenant, 0), self.in_progress[tenant])
                else:
                    self.refused.append(f"{tenant}:{decision.problem}")
            return decision

        def counting_release(app_id: str, tenant: str) -> None:
            with self.lock:
                self.in_progress[tenant] = self.in_progress.get(tenant, 0) - 1
            release(app_id, tenant)

        limiter.acquire = counting_acquire
        limiter.release = counting_release


MINUTE = 0.004  # a scaled Xero minute: the day is 1,440 of them, 5.76 s
DAY = MINUTE * 1440


def _two_tenants(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, max_tenants: int = 1
) -> tuple[Any, Any, Any, dict[str, str]]:
    """Two organisations with four calls a (scaled) day each, in Xero and in the poster, and one
    worker for both: they take turns."""
    emulator = emulator_factory(minute_seconds=MINUTE, day_limit=4)
    app = poster_factory(
        settings(batch_size=1, max_tenants=max_tenants, turn=0.3, limits=scaled_limits(MINUTE, per_day=4))
    )
    stub = stub_for(app)
    tenants = {}
    for n in range(2):
        _, org = connect(stub, emulator, f"firm-{n}")
        tenants[f"firm-{n}"] = org["tenant_id"]
    return emulator, app, stub, tenants


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_tenant_out_of_day_budget_does_not_keep_the_worker_from_a_tenant_waiting_its_turn(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # firm-0 has four bills: a contact look-up, the contact and four invoices are six calls, two
    # more than its day allows. Its worker claims all four bills at once (five slots); the jobs
    # of the last two wait inside the gate for the day budget.
    emulator, _, stub, tenants = _two_tenants(poster_factory, emulator_factory)
    _post(stub, "firm-0", 30_000, 4)
    wait_for(lambda: len(xero_objects(emulator, tenants["firm-0"], "Invoices")) == 2, timeout=10)

    # firm-1 now has one bill and waits for the only worker. firm-0's worker sees a wait of a
    # whole day, far over a turn, and hands the tenant back at once: the two jobs waiting for the
    # day budget must put their work back, not hold the closing worker (which counts against
    # max_tenants) for a Xero day.
    posted = time.monotonic()
    _post(stub, "firm-1", 31_000, 1)
    deadline = posted + 3.0  # ten turns
    while time.monotonic() < deadline and not xero_objects(emulator, tenants["firm-1"], "Invoices"):
        time.sleep(0.05)
    waited = time.monotonic() - posted
    assert xero_objects(emulator, tenants["firm-1"], "Invoices"), (
        f"firm-1 waited {waited:.1f} s (a day is {DAY:.2f} s, a turn 0.3 s) "
        "behind firm-0's jobs blocked on its day budget"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("max_tenants", [1, 2], ids=["taking-turns", "a-worker-each"])
def test_a_tenant_whose_day_is_used_up_is_served_again_once_xeros_day_has_passed(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, max_tenants: int
) -> None:
    # Each organisation spends its day on a contact look-up, the contact and two invoices. With a
    # worker each (no turns) this passes: the next worker waits one day from its start and posts.
    emulator, app, stub, tenants = _two_tenants(poster_factory, emulator_factory, max_tenants)
    for n, connection_id in enumerate(tenants):
        _post(stub, connection_id, 20_000 * (n + 1), 2)

    def invoices() -> int:
        return sum(len(xero_objects(emulator, t, "Invoices")) for t in tenants.values())

    assert app.dispatcher is not None
    wait_for(lambda: invoices() == 4, timeout=10)
    wait_for(lambda: app.dispatcher.calls_made == 8, timeout=5)
    used_up = time.monotonic()
    # Two more bills each, queued with the day's budget used up.
    for n, connection_id in enumerate(tenants):
        _post(stub, connection_id, 20_000 * (n + 1) + 100, 2)

    # Xero's day slides: a day after the first calls it allows four more calls per organisation.
    # But each turn's worker stamps the lease's `day_calls` at its own start (Gate.__init__), so
    # it sees a whole day to wait, over a turn, and with the other tenant waiting it hands the
    # tenant back at once. The lease's count is reset only by a call (log_call), which never
    # comes: neither tenant's day ever ends, and nothing is posted again.
    deadline = used_up + DAY + 4.0
    while time.monotonic() < deadline and invoices() == 4:
        time.sleep(0.1)
    assert invoices() > 4, (
        f"no invoice posted {time.monotonic() - used_up:.1f} s after the day's budget was used "
        f"(a day is {DAY:.2f} s); calls made {app.dispatcher.calls_made}"
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_correction_borrowing_a_tenant_at_the_end_of_its_turn_keeps_to_five_calls_in_progress(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # Slow invoice calls (1 s each) so a worker ending its turn still has five calls in progress.
    emulator = emulator_factory()
    calls = CallsAtXero(emulator)
    app = poster_factory(settings(batch_size=1, max_tenants=1, turn=0.3))
    stub = stub_for(app)
    _, org_a = connect(stub, emulator, "firm-a")
    connect(stub, emulator, "firm-b")
    tenant_a = org_a["tenant_id"]
    emulator.faults.add(FaultRule("latency", seconds=1.0, methods=("PUT",), path_contains="Invoices"))
    _post(stub, "firm-a", 40_000, 30)
    # firm-b waits for the worker only once firm-a's has calls out: a turn is one batch while
    # another tenant waits, so a worker would otherwise end its turn with one call in progress.
    wait_for(lambda: calls.in_progress.get(tenant_a, 0) >= 4, timeout=20, interval=0.005)
    _post(stub, "firm-b", 41_000, 30)
    dispatcher = app.dispatcher
    assert dispatcher is not None

    def closing_with_calls_out() -> bool:
        worker = dispatcher._workers.get(tenant_a)
        return worker is not None and worker.is_alive() and worker.closing and calls.in_progress.get(tenant_a, 0) >= 4

    wait_for(closing_with_calls_out, timeout=20, interval=0.005)
    # A correction of one of firm-a's records borrows its worker now (Corrections._xero): the
    # closing worker is not lent, so tenant_calls starts another one, with a budget of its own
    # that knows nothing of the calls still in progress, and it claims firm-a's next entries.
    with dispatcher.tenant_calls(tenant_a, 8.0):
        time.sleep(1.5)
    time.sleep(1.0)

    # Xero (the emulator) refuses a sixth call in progress with 429 "concurrent": the poster sent
    # more than five at once for firm-a.
    assert f"{tenant_a}:concurrent" not in calls.refused, f"Xero refused firm-a's calls: {calls.refused}"
    assert calls.most.get(tenant_a, 0) <= 5


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_worker_started_for_a_correction_does_not_release_the_lease_under_calls_still_in_progress(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # A worker that ends its turn with calls in progress, and a correction that borrows the tenant
    # meanwhile (tenant_calls): a second worker started beside the first, ending first, released
    # the lease under the first one's create calls. Whoever takes the tenant next voids the
    # claims (release_claims) and looks the entries up while the first creates are still in
    # progress; only an identical batch (the same Idempotency-Key) kept it from creating again.
    emulator = emulator_factory()
    calls = CallsAtXero(emulator)
    # Calls are given longer than the 4 s they take: a call the poster gave up on may rightly
    # still be at Xero when the lease goes (the entries then wait before their look-up).
    first = poster_factory(
        settings(batch_size=1, max_tenants=1, turn=0.3, http_timeout=6.0, lease_ttl=15.0), name="poster-1"
    )
    stub = stub_for(first)
    _, org_a = connect(stub, emulator, "firm-a")
    connect(stub, emulator, "firm-b")
    tenant_a = org_a["tenant_id"]
    # firm-a's five invoice calls take 4 s at Xero; nothing after them is slow.
    emulator.faults.add(FaultRule("latency", seconds=4.0, count=5, methods=("PUT",), path_contains="Invoices"))
    _post(stub, "firm-a", 50_000, 5)
    wait_for(lambda: calls.in_progress.get(tenant_a, 0) == 5, timeout=20, interval=0.005)
    _post(stub, "firm-b", 51_000, 3)  # firm-b now waits for the only worker: firm-a's turn ends
    dispatcher = first.dispatcher
    assert dispatcher is not None

    def closing() -> bool:
        worker = dispatcher._workers.get(tenant_a)
        return worker is not None and worker.is_alive() and worker.closing

    wait_for(closing, timeout=10, interval=0.005)
    with dispatcher.tenant_calls(tenant_a, 8.0):
        pass  # a correction's read, say

    def lease_released() -> bool:
        with UnitOfWork(first.db, write=False) as uow:
            lease = uow.leases.get_lease(tenant_a)
            return lease is not None and lease.expires_us < now_us()

    wait_for(lease_released, timeout=5, interval=0.01)
    still_out = calls.in_progress.get(tenant_a, 0)
    # The tenant is free for any poster (held_by_others, acquire_lease), and the next worker for it
    # (here or in another replica) voids the claims of the calls still in progress.
    assert still_out == 0, f"poster-1 released firm-a's lease with {still_out} of its calls still at Xero"
