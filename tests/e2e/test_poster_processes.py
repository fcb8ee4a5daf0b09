"""Two `xerolink-poster` processes on one PostgreSQL database and one emulator: every bill is
created in Xero exactly once, no call is refused for rate although the limit binds, and both
processes take part (each serves one tenant at a time through the tenant lease)."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from typing import Any

import grpc
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.poster import EmulatorFactory, connect, wait_settled, xero_objects
from tests.fixtures.processes import child_env, console_script, free_port, running

PER_MINUTE = 10  # calls per one-second minute, in the emulator and in both posters


def test_two_poster_processes_share_the_tenants_without_duplicates_or_refused_calls(
    postgres_url: str, mapper_target: str, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory(minute_seconds=1.0, minute_limit=PER_MINUTE)
    refused: list[str] = []
    acquire = emulator.state.limiter.acquire

    def counting_acquire(app: str, tenant: str) -> Any:
        decision = acquire(app, tenant)
        if not decision.allowed:
            refused.append(str(decision.problem))
        return decision

    emulator.state.limiter.acquire = counting_acquire  # type: ignore[method-assign]
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        for index, port in enumerate(ports):
            env = child_env(
                XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
                XEROLINK_DATABASE_URL=postgres_url,
                XEROLINK_MAPPER_TARGET=mapper_target,
                XEROLINK_POSTER_INSTANCE=f"process-{index}",
                XEROLINK_XERO_MINUTE_SECONDS="1",
                XEROLINK_XERO_MINUTE_LIMIT=str(PER_MINUTE),
                XEROLINK_BATCH_SIZE="2",
                XEROLINK_TENANT_LEASE_SECONDS="2",
                XEROLINK_XERO_TIMEOUT_SECONDS="0.9",
                XEROLINK_TENANT_IDLE_RELEASE_SECONDS="0.3",
                XEROLINK_DISPATCHER_MAX_TENANTS="1",
            )
            stack.enter_context(running(console_script("xerolink-poster"), port, env=env))
        channel = stack.enter_context(grpc.insecure_channel(f"127.0.0.1:{ports[0]}"))
        stub = poster_grpc.PosterServiceStub(channel)
        orgs = {cid: connect(stub, emulator, cid)[1] for cid in ("firm-a", "firm-b")}
        count = 30
        postings = []
        for connection_id, base in (("firm-a", 10_000), ("firm-b", 20_000)):
            results = stub.BatchPostTransactions(
                poster_pb2.BatchPostTransactionsRequest(
                    connection_id=connection_id, transactions=[samples.client_bill(base + i) for i in range(count)]
                ),
                timeout=30,
            ).results
            postings += [r.posting for r in results]

        states = {wait_settled(stub, p.name, timeout=60).state for p in postings}
        actors: Counter[str] = Counter()
        for posting in postings:
            link = stub.GetLink(
                poster_pb2.GetLinkRequest(
                    connection_id=posting.connection_id, record=posting.record, include_audit=True
                )
            ).link
            actors.update(a.actor for a in link.audit if a.event == "posted")

    assert states == {poster_pb2.LINK_STATE_LINKED}
    for connection_id, org in orgs.items():
        numbers = Counter(i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices"))
        assert len(numbers) == count and set(numbers.values()) == {1}, connection_id
    assert refused == []
    assert set(actors) == {"dispatcher:process-0", "dispatcher:process-1"}, actors
