"""What unlinking costs: a firm's bills and their payments are posted and linked, then the
operator's path is timed — select by filters, preview, unlink with cascade, list the orphans —
with the poster, mapper and Xero emulator in this process on loopback.

    python bench/unlink_throughput.py                 # 250 bills + 250 payments, SQLite
    python bench/unlink_throughput.py --database-url postgresql+psycopg://user@127.0.0.1:5432/empty_db
    python bench/unlink_throughput.py --bills 500

Figures printed: acceptance time of the batch post (which records each link's matter,
participant and dependencies), ListLinks pages by kind and by matter, UnlinkLinks preview and
apply latency for every bill with cascade (one request), and ListOrphans over every orphan.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import grpc
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.poster.v1 import unlink_pb2
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples
from xerolink_mapper.entrypoints.server import start as start_mapper
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL


def timed(label: str, started: float, extra: str = "") -> None:
    print(f"{label:<58} {1000 * (time.perf_counter() - started):9.1f} ms {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bills", type=int, default=250, help="bills, each with one payment (at most 500)")
    parser.add_argument("--database-url", default="", help="an empty registry database (default: a SQLite file)")
    args = parser.parse_args()
    count = min(args.bills, 500)
    mapper = start_mapper("127.0.0.1:0")
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0)).start()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'registry.db'}"
        dispatcher = DispatcherSettings(poll_interval=0.01, backoff_base=0.05, backoff_cap=0.5, idle_release=0.5)
        config = PosterConfig("127.0.0.1:0", url, f"127.0.0.1:{mapper.port}", dispatcher, "bench", 16, True)
        app = bootstrap.start(config)
        try:
            run(app, emulator, count, url.split(":", 1)[0])
        finally:
            app.stop(0)
    emulator.stop()
    mapper.stop(0)


def run(app: bootstrap.PosterApp, emulator: EmulatorServer, count: int, database: str) -> None:
    print(f"unlink figures: {count} bills + {count} payments, {database} registry")
    with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        org = emulator.create_organisation("Bench firm")
        register_emulated_connection(stub, "bench", emulator.base_url, org, samples.demo_context())
        transactions = []
        for n in range(count):
            sample = samples.sample_transactions(100_000 + 100 * n)
            bill, payment = sample["client_bill"], sample["client_bill_payment"]
            for tx in (bill, payment):
                tx.header.action_id = 9000 + n % 10  # ten matters
            transactions += [bill, payment]
        started = time.perf_counter()
        stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(connection_id="bench", transactions=transactions), timeout=300
        )
        timed(f"BatchPostTransactions accepts {len(transactions)}", started)
        started = time.perf_counter()
        while not settled(stub):
            time.sleep(0.2)
        timed("every link linked in Xero (dispatcher, emulator)", started)

        records = select(stub, poster_pb2.ListLinksRequest(connection_id="bench", kinds=[BILL], page_size=100))
        matter = select(stub, poster_pb2.ListLinksRequest(connection_id="bench", action_id=9003, page_size=100))
        print(f"{'':<58} selected {len(records)} bills; matter 9003 holds {len(matter)} links")

        request = unlink_pb2.UnlinkLinksRequest(connection_id="bench", records=records, cascade=True)
        request.validate_only = True
        started = time.perf_counter()
        preview = stub.UnlinkLinks(request, timeout=120)
        timed(f"UnlinkLinks preview, {len(records)} bills with cascade", started, f"{len(preview.outcomes)} outcomes")
        request.validate_only, request.confirm = False, True
        started = time.perf_counter()
        done = stub.UnlinkLinks(request, timeout=120)
        timed(f"UnlinkLinks apply, {len(records)} bills with cascade", started, f"{done.unlinked_count} unlinked")
        started = time.perf_counter()
        orphans, token = 0, ""
        while True:
            page = stub.ListOrphans(
                unlink_pb2.ListOrphansRequest(connection_id="bench", page_size=500, page_token=token)
            )
            orphans += len(page.orphans)
            token = page.next_page_token
            if not token:
                break
        timed("ListOrphans, every orphan in pages of 500", started, f"{orphans} orphans")


def settled(stub: poster_grpc.PosterServiceStub) -> bool:
    busy = [poster_pb2.LINK_STATE_PENDING, poster_pb2.LINK_STATE_WAITING]
    return not any(
        stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="bench", state=s, page_size=1)).links for s in busy
    )


def select(stub: poster_grpc.PosterServiceStub, request: poster_pb2.ListLinksRequest) -> list[common_pb2.RecordKey]:
    found: list[common_pb2.RecordKey] = []
    started = time.perf_counter()
    pages = 0
    while True:
        page = stub.ListLinks(request)
        pages += 1
        found.extend(link.record for link in page.links)
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    label = "kinds" if request.kinds else "action_id"
    timed(f"ListLinks by {label}, pages of {request.page_size}", started, f"{pages} pages, {len(found)} links")
    return found


if __name__ == "__main__":
    main()
