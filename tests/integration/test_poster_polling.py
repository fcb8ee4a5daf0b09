"""The If-Modified-Since poller against the emulator, on both registries: it reads only the
collections a connection links objects in, page by page, keeps its cursor at the latest change it
recorded, and stays within its share of the tenant's calls (counted in the emulator's record of
the requests it received)."""

from __future__ import annotations

import time

from sqlmodel import select
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.drift_tables import PollCursorRow
from xerolink_poster.service_layer.drift_polling import PollSettings
from xerolink_poster.service_layer.drift_reads import iso_of_ms, updated_ms

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
from tests.integration.test_poster_drift_watch import firm
from tests.integration.test_poster_webhooks import registry

MINUTE = 2.0
POLLED_PATHS = ("Invoices", "CreditNotes", "Payments", "BankTransactions", "BankTransfers", "ManualJournals")


def poll_reads(emulator: EmulatorServer, tenant: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """The poller's reads the tenant received: a collection (no id in the path), paged and ordered,
    no filter (the dispatcher's look-ups filter with `where` or ids)."""
    return [
        (r.path.rsplit("/", 1)[-1], r.params)
        for r in emulator.state.requests.entries(tenant)
        if r.method == "GET"
        and r.path.rsplit("/", 1)[-1] in POLLED_PATHS
        and {n for n, _ in r.params} <= {"page", "order"}
    ]


def cursors(database_url: str) -> dict[str, str]:
    with registry(database_url) as session:
        return {c.resource: c.modified_since for c in session.exec(select(PollCursorRow)).all()}


def test_the_poller_reads_what_is_linked_and_keeps_its_cursor_at_the_latest_change(
    poster_factory: PosterFactory, emulator: EmulatorServer, database_url: str
) -> None:
    app = poster_factory(polling=PollSettings(interval=0.2, share=0.5))
    f = firm(app, emulator, "client_bill", "client_bill_payment")
    wait_for(lambda: set(cursors(database_url)) == {"Invoices", "Payments"})
    reads = poll_reads(emulator, f.tenant)
    assert {path for path, _ in reads} == {"Invoices", "Payments"}  # nothing else is linked
    assert all(("page", "1") in params and ("order", "UpdatedDateUTC ASC") in params for _, params in reads)

    def latest(resource: str) -> str:
        """One millisecond before the latest change: the next read includes that change."""
        stamps = [updated_ms(o) for o in xero_objects(emulator, f.tenant, resource)]
        return iso_of_ms(max(s for s in stamps if s is not None) - 1)

    wait_for(lambda: cursors(database_url) == {"Invoices": latest("Invoices"), "Payments": latest("Payments")})
    before = cursors(database_url)
    f.edit("Payments", "client_bill_payment", {"Status": "DELETED"})
    wait_for(lambda: cursors(database_url) == {"Invoices": latest("Invoices"), "Payments": latest("Payments")})
    assert cursors(database_url)["Payments"] > before["Payments"]


def test_the_poller_stays_within_its_share_of_the_tenants_calls(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory(minute_seconds=MINUTE)
    share = 0.1
    app = poster_factory(
        dispatcher=settings(limits=scaled_limits(MINUTE)), polling=PollSettings(interval=0.01, share=share)
    )
    f = firm(app, emulator, "client_bill", "client_bill_payment")
    per_window = int(60 * share)
    # Counted as the emulator received them, sampled: any stretch shorter than the poller's
    # minute (less the time a call takes) holds at most its share.
    samples: list[tuple[float, int]] = []
    until = time.monotonic() + 4 * MINUTE
    while time.monotonic() < until:
        samples.append((time.monotonic(), len(poll_reads(emulator, f.tenant))))
        time.sleep(0.02)
    assert samples[-1][1] - samples[0][1] >= per_window  # it did poll, as often as it could
    worst = max(
        later - earlier
        for i, (t1, earlier) in enumerate(samples)
        for t2, later in samples[i:]
        if t2 - t1 <= MINUTE - 0.2
    )
    assert worst <= per_window


def test_the_poller_waits_while_posting_work_is_ready(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    minute, backlog, batch, concurrent = 10.0, 600, 50, 5
    emulator = emulator_factory(minute_seconds=minute)
    accepting = poster_factory(run_dispatcher=False)
    stub = stub_for(accepting)
    _, org = connect(stub, emulator, "firm-1")
    tenant = str(org["tenant_id"])
    bills = [samples.client_bill(900_000 + i) for i in range(backlog)]
    stub.BatchPostTransactions(poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=bills))
    accepting.stop(0)

    poster_factory(
        dispatcher=settings(limits=scaled_limits(minute), batch_size=batch),
        polling=PollSettings(interval=0.01, share=0.5),
    )
    first_read_at: list[int] = []

    def polled() -> bool:
        posted = len(xero_objects(emulator, tenant, "Invoices"))
        if poll_reads(emulator, tenant) and not first_read_at:
            first_read_at.append(posted)
        return bool(first_read_at) and posted == backlog

    wait_for(polled, timeout=60.0)
    # Only once nothing was left to claim: at most the last claims were still at Xero.
    assert first_read_at[0] >= backlog - batch * concurrent
