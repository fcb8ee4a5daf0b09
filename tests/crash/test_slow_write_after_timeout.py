"""Found by the crash suite under fire: Xero may still be carrying out a write when the poster's
HTTP timeout gives up on it. A look-up made before that write lands finds nothing; if the poster
then creates the object again in a call of other content (other work joined the batch, so the
Idempotency-Key differs), the first write lands too: a duplicate."""

from __future__ import annotations

import time

from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples

from tests.crash import xero_trace
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_settled,
)


def test_a_write_xero_finishes_after_the_poster_timed_out_is_not_made_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory()
    # The first write is held 1.3 s before Xero carries it out; the poster gives up after 0.5 s.
    slow = emulator.faults.add(
        FaultRule("latency", seconds=1.3, count=1, methods=("PUT",), path_contains="BankTransactions")
    )
    one_call_at_a_time = scaled_limits(60.0, concurrent=1)
    app = poster_factory(
        settings(http_timeout=0.5, lease_ttl=5.0, backoff_base=0.001, backoff_cap=0.002, limits=one_call_at_a_time)
    )
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    receipts = [samples.sample_transactions(base)["trust_receipt"] for base in (9_000, 9_100)]
    for index, receipt in enumerate(receipts):
        receipt.header.id += index
    first = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=receipts[0]))
    time.sleep(0.2)  # the first receipt's call is under way; the second is queued behind it
    second = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=receipts[1]))
    for answer in (first, second):
        assert wait_settled(stub, answer.posting.name, timeout=20).state == poster_pb2.LINK_STATE_LINKED
    time.sleep(1.0)  # the slow write has landed by now
    assert slow.hits == 1
    assert not xero_trace.duplicates(xero_trace.snapshot(emulator, org["tenant_id"]))
