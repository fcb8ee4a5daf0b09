"""Pre-integration backfill of a firm's open bills against the Xero emulator (real Xero limits:
60 calls a minute), with the mapper and poster in this process on loopback and a SQLite registry.

    python bench/backfill_throughput.py            # 1,000 open bills
    python bench/backfill_throughput.py --quick    # 200 open bills (smoke)

Figures printed:
  - StartBackfill answer time (mapping and recording every bill and payment);
  - time until the backfill is done (every transaction linked), and Xero calls made;
  - the same backfill again: answer time, and Xero objects it created (must be 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# The bills are built by the backfill tests' own helper, so both measure the same shapes.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.poster.v1 import backfill_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples
from xerolink_mapper.entrypoints.server import start as start_mapper
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings

from tests.integration.test_poster_backfill import open_bill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    bills_count = 200 if parser.parse_args().quick else 1000
    bills = [open_bill(100_000 + n, [500 + 11 * n + 250 * k for k in range(n % 3)]) for n in range(bills_count)]
    transactions = sum(1 + len(b.payments) for b in bills)
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0)).start()
    mapper = start_mapper("127.0.0.1:0")
    with tempfile.TemporaryDirectory() as folder:
        config = PosterConfig(
            "127.0.0.1:0",
            f"sqlite:///{Path(folder) / 'registry.db'}",
            f"127.0.0.1:{mapper.port}",
            DispatcherSettings(poll_interval=0.01),
            "bench",
            16,
            True,
        )
        app = bootstrap.start(config)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = poster_grpc.PosterServiceStub(channel)
                org = emulator.create_organisation("Backfill bench")
                register_emulated_connection(stub, "firm", emulator.base_url, org, samples.demo_context())
                request = backfill_pb2.StartBackfillRequest(connection_id="firm", bills=bills)

                began = time.perf_counter()
                started = stub.StartBackfill(request, timeout=600).backfill
                answered = time.perf_counter() - began
                for update in stub.WatchBackfill(backfill_pb2.WatchBackfillRequest(name=started.name), timeout=900):
                    done = update.backfill
                finished = time.perf_counter() - began
                calls = app.dispatcher.calls_made if app.dispatcher else 0
                objects = emulator.ledger(org["tenant_id"])["objects"]

                began = time.perf_counter()
                again = stub.StartBackfill(request, timeout=600).backfill
                again_answered = time.perf_counter() - began
                time.sleep(1.0)  # anything queued by mistake would reach Xero in this time
                created = emulator.ledger(org["tenant_id"])["objects"] != objects
        finally:
            app.stop(0)
            mapper.stop(0)
            emulator.stop()
    print(f"bills {bills_count}, transactions {transactions} (bills and partial payments)")
    print(f"StartBackfill answered in {answered:.2f} s ({transactions / answered:.0f} transactions/s recorded)")
    print(f"done in {finished:.2f} s: {done.linked} linked, {done.failed} failed, {done.waiting} waiting")
    print(f"Xero calls made: {calls} ({transactions / max(calls, 1):.1f} transactions per call)")
    print(
        f"second run answered in {again_answered:.2f} s: {again.already_done} already done, {again.accepted} "
        f"accepted; new Xero objects: {'yes' if created else 'none'}"
    )


if __name__ == "__main__":
    main()
