"""Xero's app-wide minute across posters, on SQLite and on PostgreSQL: two posters serving two
tenants count their calls in the shared registry, so together they stay within the app's
minute from the first call on, before any X-AppMinLimit-Remaining header could tell them."""

from __future__ import annotations

from typing import Any

from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples

from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    scaled_limits,
    settings,
    stub_for,
    wait_settled,
)

MINUTE = 3.0  # seconds: long enough that each poster alone could spend the app's minute in it
APP_PER_MINUTE = 6  # in the emulator and in every poster
BILLS = 6  # per tenant


def test_two_posters_together_stay_within_the_app_minute(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory(minute_seconds=MINUTE, app_minute_limit=APP_PER_MINUTE)
    refused: list[str] = []
    allowed: list[str] = []
    limiter = emulator.state.limiter
    acquire = limiter.acquire

    def counting_acquire(app: str, tenant: str) -> Any:
        decision = acquire(app, tenant)
        (allowed if decision.allowed else refused).append(f"{tenant}:{decision.problem}")
        return decision

    limiter.acquire = counting_acquire  # type: ignore[method-assign]
    dispatch = settings(
        batch_size=1,
        limits=scaled_limits(MINUTE, app_per_minute=APP_PER_MINUTE),
        max_tenants=1,  # one tenant per poster: the two tenants are served by different posters
        idle_release=2.0,
    )
    posters = [poster_factory(dispatch, name=f"poster-{i}") for i in range(2)]
    stub = stub_for(posters[0])
    postings = []
    client_id = None
    for connection_id, base in (("firm-a", 100), ("firm-b", 200)):
        # Both organisations connected to one app: Xero's app minute is that app's.
        org = emulator.create_organisation(f"Org of {connection_id}", client_id=client_id)
        client_id = org["client_id"]
        register_emulated_connection(stub, connection_id, emulator.base_url, org, samples.demo_context())
        postings += [
            stub.PostTransaction(
                poster_pb2.PostTransactionRequest(
                    connection_id=connection_id, transaction=samples.client_bill(base + i)
                )
            ).posting
            for i in range(4)
        ]

    for posting in postings:
        assert wait_settled(stub, posting.name, timeout=60).state == poster_pb2.LINK_STATE_LINKED
    assert not refused, refused
    assert len(allowed) >= 2 * BILLS  # at least a call per bill: the posters did the work, within the minute
