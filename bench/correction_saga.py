"""Correcting an invoice with many payments, against the emulator with a scaled rate-limit minute:
how long PlanCorrection and ApplyCorrection take, how many Xero calls each makes, and that the
correction's calls stay within the tenant's limit (no 429) because they share the dispatcher's
budget. Mapper, poster and emulator run in this process on loopback; SQLite registry.

    python bench/correction_saga.py            # 40 payments, 20 calls per 1-second minute
    python bench/correction_saga.py --quick    # 8 payments
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import correction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples
from xerolink_mapper.entrypoints.server import start as start_mapper
from xerolink_poster.domain.rate_limits import Limits
from xerolink_poster.entrypoints import bootstrap
from xerolink_poster.entrypoints.config import PosterConfig
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings

PER_MINUTE = 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    payments = 8 if args.quick else 40
    emulator = EmulatorServer(
        EmulatorConfig(access_token_minutes=100_000.0, minute_seconds=1.0, minute_limit=PER_MINUTE)
    ).start()
    refused: list[str] = []
    acquire = emulator.state.limiter.acquire

    def counting_acquire(app: str, tenant: str) -> Any:
        decision = acquire(app, tenant)
        if not decision.allowed:
            refused.append(str(decision.problem))
        return decision

    emulator.state.limiter.acquire = counting_acquire  # type: ignore[method-assign]
    mapper = start_mapper("127.0.0.1:0")
    folder = Path(tempfile.mkdtemp(prefix="correction-bench-"))
    settings = DispatcherSettings(
        limits=dataclasses.replace(Limits(minute_seconds=1.0), per_minute=PER_MINUTE),
        poll_interval=0.01,
        lease_ttl=10.0,
        http_timeout=3.0,
        idle_release=0.5,
    )
    config = PosterConfig(
        "127.0.0.1:0", f"sqlite:///{folder / 'registry.db'}", f"127.0.0.1:{mapper.port}", settings, "bench", 16, True
    )
    app = bootstrap.start(config)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub = poster_grpc.PosterServiceStub(channel)
            org = emulator.create_organisation("Bench firm")
            register_emulated_connection(stub, "bench", emulator.base_url, org, samples.demo_context())
            sample = samples.sample_transactions(100)
            bill = sample["client_bill"]
            postings = [
                stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="bench", transaction=bill))
            ]
            for n in range(payments):
                payment = transaction_pb2.Transaction()
                payment.CopyFrom(sample["client_bill_payment"])
                payment.header.id = 10_000 + n
                payment.client_bill_payment.amount.units = 1000
                postings.append(
                    stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="bench", transaction=payment))
                )
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                states = [
                    stub.GetPosting(poster_pb2.GetPostingRequest(name=p.posting.name)).posting.state for p in postings
                ]
                if all(s == poster_pb2.LINK_STATE_LINKED for s in states):
                    break
                time.sleep(0.2)
            refused.clear()
            calls = emulator.faults.add(FaultRule("latency"))  # zero seconds: counts every call
            record = common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=bill.header.id)
            intent = correction_pb2.CORRECTION_INTENT_DELETE
            started = time.perf_counter()
            plan = stub.PlanCorrection(
                correction_pb2.PlanCorrectionRequest(connection_id="bench", record=record, intent=intent), timeout=300
            ).correction
            plan_seconds, plan_calls = time.perf_counter() - started, calls.hits
            started = time.perf_counter()
            done = stub.ApplyCorrection(
                correction_pb2.ApplyCorrectionRequest(connection_id="bench", record=record, intent=intent), timeout=600
            ).correction
            apply_seconds, apply_calls = time.perf_counter() - started, calls.hits - plan_calls
    finally:
        app.stop(0)
        mapper.stop(0)
        emulator.stop()
    ours = sum(s.actor == correction_pb2.CORRECTION_ACTOR_XEROLINK for s in done.steps)
    print(f"invoice with {payments} linked payments; Xero limit {PER_MINUTE} calls per 1-second minute")
    print(f"plan:  {len(plan.steps)} steps, {plan_calls} Xero calls, {plan_seconds:.2f} s")
    print(
        f"apply: {ours} xerolink steps, {apply_calls} Xero calls, {apply_seconds:.2f} s "
        f"({apply_calls / apply_seconds:.1f} calls/s against a ceiling of {PER_MINUTE}/s); state "
        f"{correction_pb2.CorrectionState.Name(done.state)}"
    )
    print(f"calls refused for rate (429) during plan and apply: {len(refused)}")


if __name__ == "__main__":
    main()
