"""Attacks on the dispatcher's rounds (all the leases a round starts taken in one transaction) and
on one-batch turns (while other tenants wait, a worker hands its tenant back after claiming one
batch).

A one-batch turn first set `handing_back` on the worker's gate as soon as its only batch was
claimed, so the job of that batch gave its work back (HandingBack) at the first call that had to
wait for the tenant's budget, however short the wait, losing the look-ups it had made, every
turn again. Only a budget wait of a whole turn now makes a job give way."""

from __future__ import annotations

import time
from typing import Any

import pytest
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_poster.adapters.database import now_us
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.attack.test_turns_and_budgets import CallsAtXero, _post
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    scaled_limits,
    settings,
    stub_for,
    wait_for,
    xero_objects,
)

LINKED = poster_pb2.LINK_STATE_LINKED


def _states(stub: Any, names: list[str]) -> list[int]:
    return [stub.GetPosting(poster_pb2.GetPostingRequest(name=n)).posting.state for n in names]


MINUTE = 0.2  # a scaled Xero minute
PER_MINUTE = 2  # the poster's per-tenant minute: a third call in a minute waits < 0.2 s


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_uncertain_batch_is_settled_while_another_tenant_waits_for_the_worker(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    # firm-a's three bills go in one create call whose answer is lost after Xero created them
    # (drop_after_commit): they are uncertain, and the next attempt looks each of the three up
    # before creating anything: three GETs, in one job. The tenant's minute allows two calls, so
    # the third waits under 0.2 s, far less than a turn (1 s).
    emulator = emulator_factory(minute_seconds=MINUTE)
    calls = CallsAtXero(emulator)
    app = poster_factory(
        settings(
            batch_size=3,
            max_tenants=1,
            turn=1.0,
            http_timeout=0.6,
            limits=scaled_limits(MINUTE, per_minute=PER_MINUTE),
        )
    )
    stub = stub_for(app)
    _, org_a = connect(stub, emulator, "firm-a")
    _, org_b = connect(stub, emulator, "firm-b")
    tenant_a = org_a["tenant_id"]
    emulator.faults.add(
        FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices", tenant_id=tenant_a)
    )
    names_a = _post(stub, "firm-a", 60_000, 3)
    wait_for(lambda: len(xero_objects(emulator, tenant_a, "Invoices")) == 3, timeout=10)
    # firm-b has a long backlog, so firm-a waits for the only worker (and firm-b for it) from now.
    _post(stub, "firm-b", 61_000, 90)
    posted = time.monotonic()
    calls_before = calls.calls.get(tenant_a, 0)

    # Before the fix, each turn of firm-a claimed its three uncertain entries, found the first
    # two invoices in Xero and gave the batch back when the third look-up had to wait for the
    # minute: what it found was never written, and the next turn looked the same two up again.
    # firm-a's bills stayed uncertain for as long as firm-b had work, though a turn of 1 s is
    # time enough for them.
    deadline = posted + 8.0
    while time.monotonic() < deadline and _states(stub, names_a) != [LINKED] * 3:
        time.sleep(0.1)
    waited = time.monotonic() - posted
    b_left = 90 - len(xero_objects(emulator, org_b["tenant_id"], "Invoices"))
    assert _states(stub, names_a) == [LINKED] * 3, (
        f"firm-a's uncertain bills were not settled {waited:.1f} s after firm-b began to wait "
        f"(a turn is 1 s, a third call waits under {MINUTE} s); firm-b still had {b_left} bills queued; "
        f"{len(xero_objects(emulator, tenant_a, 'Invoices'))} invoices in firm-a's Xero, and "
        f"{calls.calls.get(tenant_a, 0) - calls_before} calls of firm-a's (look-ups) made meanwhile"
    )


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_two_posters_taking_overlapping_rounds_post_every_tenant_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Ten organisations, two posters of three workers each: every round of each poster takes the
    # leases of up to three tenants in one transaction, in the tenants' order, while the other
    # poster's rounds take overlapping sets, its workers hand tenants back after every batch
    # and renew the leases they hold. Nothing may deadlock, fail a round, be posted twice, or
    # exceed an organisation's five calls at once.
    emulator = emulator_factory()
    calls = CallsAtXero(emulator)
    dispatch = settings(batch_size=2, max_tenants=3, turn=0.3, lease_ttl=5.0, idle_release=0.2)
    posters = [poster_factory(dispatch, name=f"poster-{i}") for i in range(2)]
    stubs = [stub_for(p) for p in posters]
    orgs = {f"firm-{n}": connect(stubs[0], emulator, f"firm-{n}")[1] for n in range(10)}
    caplog.set_level("ERROR")
    names: list[str] = []
    for n, connection_id in enumerate(orgs):
        names += _post(stubs[n % 2], connection_id, 70_000 + 100 * n, 5)

    wait_for(lambda: all(s == LINKED for s in _states(stubs[0], names)), timeout=60, interval=0.2)
    counts = {c: len(xero_objects(emulator, org["tenant_id"], "Invoices")) for c, org in orgs.items()}
    assert counts == dict.fromkeys(orgs, 5), f"invoices in Xero per organisation: {counts}"
    assert not [r for r in calls.refused if r.endswith(":concurrent")], calls.refused
    failed = [r.getMessage() for r in caplog.records if "dispatcher loop failed" in r.getMessage()]
    assert not failed, f"rounds failed: {failed}"

    def all_released() -> bool:
        with UnitOfWork(posters[0].db, write=False) as uow:
            leases = [uow.leases.get_lease(org["tenant_id"]) for org in orgs.values()]
        return all(lease is not None and lease.expires_us < now_us() for lease in leases)

    # Idle, every worker hands its tenant back: no lease is left taken without a worker.
    wait_for(all_released, timeout=10, interval=0.1)
