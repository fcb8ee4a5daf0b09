"""Posting a generated month of a law firm end to end: mapper, poster (SQLite registry) and the
emulator in this process on loopback, Xero's rate-limit minute scaled down. Prints how many
transactions and Xero calls the month took, how long until every link was LINKED, and the
emulated organisation's trial balance.

    python bench/firm_month.py                       # 300 matters, Xero's minute lasting 0.5 s
    python bench/firm_month.py --quick               # 40 matters (smoke)
    python bench/firm_month.py --minute-seconds 60   # Xero's real minute: the limit dominates

The proof that the balances equal what the Actionstep input implies, to the cent, is
tests/fidelity (XEROLINK_FIDELITY_MATTERS=300 for this size); this script measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import grpc
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.firm_generator import generate_month
from xerolink_common.money import cents_to_str, decimal_to_cents
from xerolink_mapper import samples
from xerolink_mapper.entrypoints.server import start as start_mapper
from xerolink_poster.domain.rate_limits import Limits
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings

CONNECTION = "bench-firm"
REQUEST_SIZE = 250


def _links(stub: poster_grpc.PosterServiceStub) -> list[poster_pb2.Link]:
    links: list[poster_pb2.Link] = []
    token = ""
    while True:
        page = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id=CONNECTION, page_size=500, page_token=token))
        links.extend(page.links)
        token = page.next_page_token
        if not token:
            return links


def run(matters: int, seed: int, minute_seconds: float, batch_size: int, workdir: Path, as_json: bool = False) -> int:
    month = generate_month(seed, matters)
    mapper = start_mapper("127.0.0.1:0")
    emulator = EmulatorServer(EmulatorConfig(minute_seconds=minute_seconds, access_token_minutes=100_000.0)).start()
    dispatcher = DispatcherSettings(
        batch_size=batch_size,
        limits=dataclasses.replace(Limits(), minute_seconds=minute_seconds),
        poll_interval=0.01,
        backoff_base=0.05,
        backoff_cap=0.5,
        lease_ttl=10.0,
        http_timeout=3.0,
    )
    app = bootstrap.start(
        PosterConfig(
            address="127.0.0.1:0",
            database_url=f"sqlite:///{workdir / 'registry.db'}",
            mapper_target=f"127.0.0.1:{mapper.port}",
            dispatcher=dispatcher,
            instance_id="bench",
            workers=16,
            run_dispatcher=True,
        )
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = poster_grpc.PosterServiceStub(channel)
            org = emulator.create_organisation("Bench Law Firm")
            stub.CreateConnection(
                poster_pb2.CreateConnectionRequest(
                    connection=poster_pb2.Connection(
                        connection_id=CONNECTION,
                        xero_base_url=emulator.base_url,
                        xero_tenant_id=org["tenant_id"],
                        access_token=org["access_token"],
                        refresh_token=org["refresh_token"],
                        mapping_context=samples.demo_context(),
                    )
                )
            )
            started = time.monotonic()
            for start in range(0, len(month.transactions), REQUEST_SIZE):
                stub.BatchPostTransactions(
                    poster_pb2.BatchPostTransactionsRequest(
                        connection_id=CONNECTION, transactions=month.transactions[start : start + REQUEST_SIZE]
                    ),
                    timeout=120,
                )
            accepted = time.monotonic() - started
            settled = {poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED}
            while True:
                links = _links(stub)
                if len(links) == len(month.transactions) and all(link.state in settled for link in links):
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - started
        linked = sum(link.state == poster_pb2.LINK_STATE_LINKED for link in links)
        calls = app.dispatcher.calls_made if app.dispatcher else 0
        ledger = emulator.ledger(org["tenant_id"])
        count = len(month.transactions)
        print(f"firm month: seed {seed}, {matters} matters, {count} transactions of {len(month.kinds())} kinds")
        print(f"  {month.early_payments} payments posted before their bill")
        print(f"  accepted by the poster in {accepted:.2f}s ({count / accepted:.0f} transactions/s)")
        print(f"  all settled in {elapsed:.2f}s: {linked} LINKED, {count - linked} not linked")
        print(f"  {calls} Xero calls ({count / max(calls, 1):.1f} transactions a call), minute of {minute_seconds}s")
        print(f"  {count / elapsed:.1f} transactions/s end to end")
        print(f"  trial balance: {len(ledger['accounts'])} accounts, debits equal credits: {ledger['balanced']}")
        for row in ledger["accounts"]:
            print(f"    {row['Code']:>4} {row['Name']:<32} {cents_to_str(decimal_to_cents(row['Balance'])):>14}")
        if as_json:
            figures = {
                "matters": matters,
                "transactions": count,
                "accepted_per_second": count / accepted,
                "settled_seconds": elapsed,
                "linked": linked,
                "xero_calls": calls,
                "transactions_per_call": count / max(calls, 1),
                "end_to_end_per_second": count / elapsed,
                "minute_seconds": minute_seconds,
                "balanced": ledger["balanced"],
            }
            print(json.dumps(figures))
        return 0 if linked == count and ledger["balanced"] else 1
    finally:
        app.stop(0)
        emulator.stop()
        mapper.stop(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--matters", type=int, default=300)
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--minute-seconds", type=float, default=0.5, help="length of Xero's rate-limit minute")
    parser.add_argument("--batch-size", type=int, default=50, help="elements per Xero call")
    parser.add_argument("--quick", action="store_true", help="a small month that only checks the bench works")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last")
    # `./dev bench` passes the same arguments to every bench script: ignore the others'.
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as workdir:
        matters = 40 if args.quick else args.matters
        return run(matters, args.seed, args.minute_seconds, args.batch_size, Path(workdir), args.json)


if __name__ == "__main__":
    raise SystemExit(main())
