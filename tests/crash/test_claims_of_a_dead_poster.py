"""Found by the crash suite: a poster killed while it held claims on outbox entries left them
claimed for the whole claim time (five minutes), so its successor posted nothing of them until
then. The poster that takes a tenant's lease now voids the claims left on the tenant's entries."""

from __future__ import annotations

import time

from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, wait_settled

CLAIM_US = 300 * 1_000_000  # the dispatcher's claim time


def test_a_poster_taking_over_a_tenant_posts_the_entries_a_dead_poster_had_claimed(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database: Database
) -> None:
    emulator = emulator_factory()
    accepting = poster_factory(run_dispatcher=False, name="acceptor")
    stub = stub_for(accepting)
    _, org = connect(stub, emulator)
    bills = [samples.client_bill(8_100 + i) for i in range(3)]
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(connection_id="firm-1", transactions=bills), timeout=10
    ).results
    tenant = str(org["tenant_id"])

    def die_holding_claims(uow: UnitOfWork) -> int:
        uow.leases.acquire_lease(tenant, "dead-poster", now_us(), 1_000)  # a lease that has already run out
        return len(uow.outbox.claim(tenant, "dead-poster", 50, now_us(), CLAIM_US))

    assert run_in_transaction(database, die_holding_claims) == len(bills)
    time.sleep(0.01)

    successor = poster_factory(settings(), name="successor")
    started = time.monotonic()
    states = {wait_settled(stub_for(successor), r.posting.name, timeout=15).state for r in results}
    assert states == {poster_pb2.LINK_STATE_LINKED}
    assert time.monotonic() - started < 15
