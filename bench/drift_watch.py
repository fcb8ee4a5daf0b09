"""Drift detection's cost and speed, in-process against the emulator (SQLite registry):

- posting throughput with the If-Modified-Since poller off and on (share 0.1, polling as often as
  it may), as elements posted per scaled minute against Xero's per-tenant ceiling (60 calls x batch
  size): a backlog of client bills accepted with the dispatcher off, then drained;
- the time from a hand edit in the emulator (voiding a linked invoice) to its drift record, through
  a signed webhook delivered by the emulator, and through the poller with webhooks off (Xero's real
  60-second minute, interval 10 s, share 0.1).

  python bench/drift_watch.py            # 2 scaled minutes of 20 s per mode; 5 edits each way
  python bench/drift_watch.py --quick    # 1 minute per mode; 2 edits each way
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from sqlmodel import select
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples
from xerolink_mapper.entrypoints.server import start as start_mapper
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.domain.rate_limits import Limits
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig
from xerolink_poster.entrypoints.drift_config import WebhookSettings
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.drift_polling import PollSettings

BATCH = 50
CEILING = 60 * BATCH  # elements per minute per tenant
KEY = "bench-webhook-key"
POLLED = ("Invoices", "CreditNotes", "Payments", "BankTransactions", "BankTransfers", "ManualJournals")


def dispatcher(minute: float) -> DispatcherSettings:
    return DispatcherSettings(
        batch_size=BATCH,
        limits=Limits(minute_seconds=minute),
        poll_interval=0.01,
        lease_ttl=10.0,
        http_timeout=3.0,
        idle_release=0.5,
    )


@contextmanager
def poster(
    folder: Path, mapper: str, minute: float, name: str, run_dispatcher: bool = True, **extra: Any
) -> Iterator[bootstrap.PosterApp]:
    url = f"sqlite:///{folder / 'registry.db'}"
    config = PosterConfig("127.0.0.1:0", url, mapper, dispatcher(minute), name, 16, run_dispatcher, **extra)
    app = bootstrap.start(config)
    try:
        yield app
    finally:
        app.stop(0)


def stub_of(app: bootstrap.PosterApp) -> poster_grpc.PosterServiceStub:
    return poster_grpc.PosterServiceStub(grpc.insecure_channel(f"127.0.0.1:{app.port}"))


def poll_reads(emulator: EmulatorServer, tenant: str) -> list[Any]:
    entries = emulator.state.requests.entries(tenant)
    # The poller's reads take only `page` (the dispatcher's look-ups filter with `where` or ids).
    return [
        r
        for r in entries
        if r.method == "GET" and r.path.rsplit("/", 1)[-1] in POLLED and {n for n, _ in r.params} <= {"page"}
    ]


def invoices(emulator: EmulatorServer, tenant: str) -> int:
    org = emulator.state.organisation(tenant)
    with org.lock:
        return len(org.objects["Invoices"])


def throughput(mapper: str, minute: float, minutes: int, poll: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0, minute_seconds=minute)).start()
    try:
        org = emulator.create_organisation("Bench firm")
        tenant = str(org["tenant_id"])
        backlog = int(CEILING * (minutes + 0.5))  # outlasts the measured minutes
        with poster(folder, mapper, minute, "accept", run_dispatcher=False) as app:
            stub = stub_of(app)
            register_emulated_connection(stub, "bench", emulator.base_url, org, samples.demo_context())
            for start in range(0, backlog, 500):
                bills = [samples.client_bill(1_000_000 + i) for i in range(start, min(start + 500, backlog))]
                stub.BatchPostTransactions(
                    poster_pb2.BatchPostTransactionsRequest(connection_id="bench", transactions=bills), timeout=120
                )
        polling = PollSettings(interval=0.01, share=0.1) if poll else PollSettings()
        with poster(folder, mapper, minute, "drain", polling=polling):
            while not invoices(emulator, tenant):
                time.sleep(0.01)
            counts = []
            reads_before = len(poll_reads(emulator, tenant))
            for _ in range(minutes):
                before = invoices(emulator, tenant)
                time.sleep(minute)
                counts.append(invoices(emulator, tenant) - before)
            measured = len(poll_reads(emulator, tenant)) - reads_before
            # The backlog drains; with the poller on, it reads once the queue is empty.
            deadline = time.monotonic() + minute * 4
            while time.monotonic() < deadline and (
                invoices(emulator, tenant) < backlog or (poll and not poll_reads(emulator, tenant))
            ):
                time.sleep(0.2)
            drained = len(poll_reads(emulator, tenant))
        refused = sum(1 for r in emulator.state.requests.entries(tenant) if r.status == 429)
    finally:
        emulator.stop()
    share = [n / CEILING for n in counts]
    label = "on " if poll else "off"
    print(
        f"poller {label}: elements per {minute:g}-s minute: "
        + ", ".join(f"{n} ({s:.1%})" for n, s in zip(counts, share, strict=True))
        + f" of {CEILING}; poll reads while measured {measured}, by the backlog's end {drained}; "
        f"calls refused for rate {refused}"
    )
    return {
        "elements_per_minute": counts,
        "share_of_ceiling": [round(s, 4) for s in share],
        "poll_reads_measured": measured,
        "poll_reads_after_backlog": drained,
        "refused": refused,
    }


def linked_bills(stub: poster_grpc.PosterServiceStub, emulator: EmulatorServer, count: int) -> tuple[str, list[str]]:
    org = emulator.create_organisation("Edited firm")
    register_emulated_connection(stub, "edited", emulator.base_url, org, samples.demo_context())
    ids = []
    for n in range(count):
        bill = samples.client_bill(5_000_000 + n)
        stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="edited", transaction=bill))
    for n in range(count):
        record = common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=5_000_000 + n)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="edited", record=record)).link
            if link.state == poster_pb2.LINK_STATE_LINKED:
                ids.append(next(o.xero_id for o in link.xero_objects if o.type == xero_pb2.OBJECT_TYPE_INVOICE))
                break
            time.sleep(0.05)
    return str(org["tenant_id"]), ids


def time_to_drift(emulator: EmulatorServer, tenant: str, ids: list[str], url: str, pause: float) -> list[float]:
    db = open_database(url)
    seconds = []
    try:
        for xero_id in ids:
            time.sleep(pause)
            started = time.monotonic()
            emulator.hand_edit(tenant, "Invoices", xero_id, {"Status": "VOIDED"})
            while True:
                with db.session(write=False) as session:
                    found = session.exec(
                        select(DriftRow.id).where(
                            DriftRow.xero_id == xero_id.lower(), DriftRow.kind == "VOIDED_IN_XERO"
                        )
                    ).first()
                if found is not None:
                    break
                time.sleep(0.005)
            seconds.append(time.monotonic() - started)
    finally:
        db.dispose()
    return seconds


def latency(mapper: str, edits: int, webhooks: bool) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="drift-latency-"))
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0)).start()
    extra: dict[str, Any] = (
        {"webhooks": WebhookSettings(address="127.0.0.1:0", key=KEY.encode())}
        if webhooks
        else {"polling": PollSettings(interval=10.0, share=0.1)}
    )
    try:
        with poster(folder, mapper, 60.0, "watch", **extra) as app:
            tenant, ids = linked_bills(stub_of(app), emulator, edits)
            if app.webhooks is not None:
                emulator.state.webhooks.configure(app.webhooks.url, KEY)
            seconds = time_to_drift(
                emulator, tenant, ids, f"sqlite:///{folder / 'registry.db'}", 0.2 if webhooks else 3.0
            )
    finally:
        emulator.stop()
    how = "webhook" if webhooks else "poll (interval 10 s, share 0.1, 60-s minute)"
    print(
        f"hand edit to drift record by {how}: median {statistics.median(seconds):.2f} s, "
        f"max {max(seconds):.2f} s over {len(seconds)} edits"
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last")
    args = parser.parse_args()
    minute, minutes, edits = (20.0, 1, 2) if args.quick else (20.0, 1, 5)
    mapper = start_mapper("127.0.0.1:0")
    target = f"127.0.0.1:{mapper.port}"
    try:
        print(f"batch size {BATCH}; Xero's ceiling {CEILING} elements a minute a tenant (60 calls x {BATCH})")
        off = throughput(target, minute, minutes, poll=False)
        on = throughput(target, minute, minutes, poll=True)
        hook = latency(target, edits, webhooks=True)
        poll = latency(target, edits, webhooks=False)
    finally:
        mapper.stop(0)
    figures = {
        "ceiling_per_minute": CEILING,
        "minute_seconds": minute,
        "poller_off": off,
        "poller_on": on,
        "webhook_seconds": [round(s, 3) for s in hook],
        "poll_seconds": [round(s, 3) for s in poll],
    }
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
