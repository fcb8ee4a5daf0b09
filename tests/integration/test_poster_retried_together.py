"""The elements of a call that failed as a whole are retried together: one call again, and after
an unknown outcome one look-up, not one for each part of them that a back-off of its own brought
back at another time. Each entry's back-off was drawn apart, so a call of 20 came back in a
handful of claims, each a Xero call of the organisation's 60 a minute. Each test runs on SQLite
and PostgreSQL."""

from __future__ import annotations

import pytest
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples

from tests.fixtures.contacts import Handler, intercept, settle
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, xero_objects

LINKED = poster_pb2.LINK_STATE_LINKED


@pytest.mark.parametrize("status", [503, 500])
def test_the_elements_of_a_call_xero_failed_whole_are_sent_again_in_one_call(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, status: int
) -> None:
    """Xero answers the call of 20 bills with a 5xx: its outcome is unknown, so the 20 are looked
    up and sent again. A back-off of half a second to a second (jitter of half of it) spread them
    over half a second; they must come back in one look-up and one call."""
    emulator = emulator_factory()
    stub = stub_for(poster_factory(settings(backoff_base=1.0, backoff_cap=1.0)))
    _, org = connect(stub, emulator)
    failed = FaultRule("error", status=status, count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(failed)
    creates: list[int] = []
    lookups: list[str] = []

    def count(request: Request, handle: Handler) -> Response:
        if request.method == "PUT" and request.path.rstrip("/").endswith("/Invoices"):
            creates.append(request.body.count(b'"Reference"'))
        if request.method == "GET" and request.path.rstrip("/").endswith("/Invoices") and request.param("where"):
            lookups.append(request.param("where") or "")
        return handle(request)

    intercept(emulator, count)
    bills = [samples.client_bill(9100 + n) for n in range(20)]

    assert settle(stub, bills) == [LINKED] * 20

    assert failed.hits == 1
    assert creates == [20, 20], f"elements per create call: {creates}"
    assert len(lookups) == 1, f"{len(lookups)} look-ups for one failed call: {lookups}"
    assert len([i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i.get("Type") == "ACCREC"]) == 20
