"""Attacks on the dispatcher's claims read as values and on the Core statements of the drain:
`SqlOutboxRepository.claim` (one UPDATE ... RETURNING the columns a job reads, as ClaimedEntry),
`TenantWorker._works` (a job's links as StoredLink values), `SqlLeaseRepository.lease_for_call` (the
lease check before each Xero call, a Core SELECT and UPDATE), `records_with_waiters` and the audit
rows of `apply_transitions` (Core statements). From outside, on both registries unless marked: a
second poster claiming at the same time, a poster that crashed with entries claimed and marked
uncertain, a poster whose tenant was taken over while its job ran, a caller holding an ORM copy of
the lease in the same transaction, several calls of one holder at once, the day boundary, many
state changes in one call, and Xero losing a batch's answer. Each test states what a user must see
(an accountant: no Xero document duplicated, lost or booked to another record; an entry claimed by
one poster at a time and never left unclaimable; the lease refusing a call once lost; a link's
audit trail complete and in order). Every wait has a timeout: a test fails, never hangs."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import create_engine, text, update
from sqlalchemy.pool import NullPool
from xero_emulator.faults import FaultRule
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.errors import XerolinkError
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.tables import AuditRow, LinkRow, OutboxRow, PostingRow
from xerolink_poster.adapters.xero_client import Credentials, XeroClient
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import ConnectionState, Event, LinkState, OutboxState
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredLink
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.ports import StateChange
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.gate import TestXero, tenant_worker
from tests.fixtures.leases import record_call
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    wait_settled,
    xero_objects,
)
from tests.fixtures.registry_rows import as_values, unreachable_connection
from tests.fixtures.threads import started

US = 1_000_000
MINUTE_US = 60 * US
DAY_US = 86_400 * US
TENANT = "t1"
HOLDER = "poster-a"
OTHER = "poster-b"
KIND = 1
LINKED = poster_pb2.LINK_STATE_LINKED
# A W3C traceparent, as a Post's request carries it into its entry.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# -- the registry as the dispatcher finds it ---------------------------------------------------------


def _connections(uow: UnitOfWork) -> None:
    for connection_id, tenant in (("c1", TENANT), ("c2", "t2")):
        if uow.connections.get_connection(connection_id) is None:
            uow.connections.add_connection(unreachable_connection(connection_id, tenant))


def _links(uow: UnitOfWork, record_ids: list[int], connection_id: str = "c1", state: str = "") -> list[int]:
    """Links (with their postings) of these records, in one statement each; their ids in order."""
    now = now_us()
    ids = uow.links.insert_links(
        [
            {
                "connection_id": connection_id,
                "kind": KIND,
                "record_id": r,
                "link_group": 1,
                "state": state,
                "fingerprint": "f" * 64,
                "generation": 1 + r % 3,
                "attempts": r % 2,
                "xero_objects": "[]",
                "waiting_on": "[]",
                "outcome_unknown": False,
                "posting_id": f"p-{connection_id}-{r}",
                "create_us": now,
                "update_us": now,
            }
            for r in record_ids
        ]
    )
    uow.links.insert_postings(
        [
            {
                "posting_id": f"p-{connection_id}-{r}",
                "connection_id": connection_id,
                "kind": KIND,
                "record_id": r,
                "link_id": link_id,
                "fingerprint": "f" * 64,
                "decision": b"",
                "state": state,
                "create_us": now,
            }
            for r, link_id in zip(record_ids, ids, strict=True)
        ]
    )
    return ids


def _entry(link_id: int, **columns: Any) -> dict[str, Any]:
    """An outbox entry of the link, ready and unclaimed unless `columns` say otherwise."""
    return {
        "tenant_id": TENANT,
        "connection_id": "c1",
        "link_id": link_id,
        "posting_id": f"p-{link_id}",
        "operations": f"ops-{link_id}".encode(),
        "state": OutboxState.READY.value,
        "available_us": 0,
        "claimed_by": "",
        "lease_until_us": 0,
        "attempts": 0,
        "uncertain": False,
        "create_us": now_us(),
        "trace_context": "",
        "alone": False,
        "lookup_hint": "",
        **columns,
    }


def _queue(database: Database, entries: Callable[[list[int]], list[dict[str, Any]]], records: int) -> list[int]:
    """`records` pending links on c1 and the entries `entries` makes of their ids; the entries' ids."""

    def fill(uow: UnitOfWork) -> list[int]:
        _connections(uow)
        link_ids = _links(uow, list(range(1, records + 1)), state=LinkState.PENDING.value)
        return uow.outbox.insert_outbox(entries(link_ids), returning_ids=True)

    ids: list[int] = run_in_transaction(database, fill)
    return ids


def _rows(database: Database, ids: list[int]) -> dict[int, OutboxRow]:
    with UnitOfWork(database, write=False) as uow:
        return dict(uow.outbox.outbox_by_ids(ids))


def _claim(database: Database, holder: str, limit: int, now: int, lease_us: int = 600 * US) -> list[ClaimedEntry]:
    claimed: list[ClaimedEntry] = run_in_transaction(
        database, lambda uow: uow.outbox.claim(TENANT, holder, limit, now, lease_us)
    )
    return claimed


def _claim_works(database: Database, holder: str, limit: int, now: int) -> list[Work]:
    """A claim as the tenant worker makes it (TenantWorker._claim): the entries claimed and their
    links and connections read in the same transaction."""

    def claim(uow: UnitOfWork) -> list[Work]:
        return TenantWorker._works(uow, uow.outbox.claim(TENANT, holder, limit, now, 600 * US))

    works: list[Work] = run_in_transaction(database, claim)
    return works


def _lease(database: Database) -> tuple[str, int, list[float], int, int, int]:
    """(holder, expires, minute log, day calls, day started, blocked until) as stored."""
    with UnitOfWork(database, write=False) as uow:
        lease = uow.leases.get_lease(TENANT)
        assert lease is not None
        return (
            lease.holder,
            lease.expires_us,
            json.loads(lease.minute_log),
            lease.day_calls,
            lease.day_started_us,
            lease.blocked_until_us,
        )


def _record_call(database: Database, holder: str, at: int, ttl_us: int = 600 * US) -> bool:
    ok: bool = run_in_transaction(
        database, lambda uow: record_call(uow.leases, TENANT, holder, at, ttl_us, MINUTE_US, DAY_US)
    )
    return ok


def _join(threads: list[threading.Thread], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    assert not any(t.is_alive() for t in threads), f"threads still running after {timeout} s"


@pytest.fixture
def other_posters(database_url: str, database: Database) -> Iterator[list[Database]]:
    """Two more posters' registries on the same database (their own pools and write turns, as
    separate processes have)."""
    opened = [open_database(database_url) for _ in range(2)]
    yield opened
    for db in opened:
        db.dispose()


# -- claims ------------------------------------------------------------------------------------------


def test_a_claim_hands_its_job_each_entrys_columns_exactly_as_stored(database: Database) -> None:
    """The claim returns what a job reads (ClaimedEntry) from its UPDATE ... RETURNING. Attacked
    with entries whose columns steer the job: uncertain (look up before creating again, or a
    lost answer's invoice is created twice), alone (sent in a call of its own after a batch was
    refused whole), the look-up hint (which allocations the credit note held before the lost
    call: without it the look-up may adopt a hand-made allocation of the same amount), the trace
    and the operations as bytes with NULs. Every value must be the stored one, in a claim sorted
    by id whatever the order the entries became available in, the booleans as booleans (SQLite
    returns integers)."""
    operations = mapper_pb2.MapTransactionResponse(
        operations=[xero_pb2.Operation(local_ref="inv"), xero_pb2.Operation(local_ref="pay")]
    ).SerializeToString()
    wanted = [
        {"uncertain": True, "alone": False, "lookup_hint": '["alloc-1", "alloc-2"]', "trace_context": TRACEPARENT},
        {"uncertain": False, "alone": True, "lookup_hint": "", "trace_context": "", "operations": b"\x00\xff\x00"},
        {"uncertain": True, "alone": True, "lookup_hint": "ünïcødé ✓ " * 50, "trace_context": "t" * 128},
        {"uncertain": False, "alone": False, "lookup_hint": "", "trace_context": "", "operations": operations},
        {"uncertain": False, "alone": False, "lookup_hint": "", "trace_context": "", "operations": b""},
    ]
    now = now_us()
    ids = _queue(
        database,
        # The last accepted became available first (back-offs end in any order).
        lambda links: [_entry(link, available_us=now - (i + 1) * US, **wanted[i]) for i, link in enumerate(links)],
        len(wanted),
    )

    claimed = _claim(database, HOLDER, 10, now, lease_us=300 * US)

    assert [c.id for c in claimed] == sorted(ids)
    rows = _rows(database, ids)
    for entry, columns in zip(claimed, wanted, strict=True):
        row = rows[entry.id]
        assert entry == as_values(ClaimedEntry, row)
        assert (entry.link_id, entry.connection_id) == (row.link_id, "c1")
        expected = {"operations": f"ops-{row.link_id}".encode(), **columns}
        assert {name: getattr(entry, name) for name in expected} == expected
        assert type(entry.uncertain) is bool and type(entry.alone) is bool
        assert type(entry.operations) is bytes
        assert (row.claimed_by, row.lease_until_us) == (HOLDER, now + 300 * US)


def test_a_claim_retakes_expired_and_voided_claims_and_never_a_live_one(database: Database) -> None:
    """An entry must never be claimed by two posters at once, nor left unclaimable. The claim
    takes ready, available entries of its tenant whose claim expired (a poster that crashed) or
    was voided (release_claims by a new lease holder), and leaves entries another poster holds a
    live claim on, waiting and done ones, another tenant's and those still backing off. Once the
    tenant changes hands, the new holder voids every claim, and all its ready work is claimable
    again."""
    now = now_us()
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("free", {}),
        ("live", {"claimed_by": OTHER, "lease_until_us": now + 60 * US}),
        ("expired", {"claimed_by": OTHER, "lease_until_us": now - 1}),
        ("voided", {"claimed_by": OTHER, "lease_until_us": 0}),
        ("waiting", {"state": OutboxState.WAITING.value}),
        ("done", {"state": OutboxState.DONE.value}),
        ("other tenant", {"tenant_id": "t2"}),
        ("backing off", {"available_us": now + 60 * US}),
    ]
    ids = _queue(database, lambda links: [_entry(link, **kinds[i][1]) for i, link in enumerate(links)], len(kinds))
    by_name = {name: ids[i] for i, (name, _) in enumerate(kinds)}

    first = _claim(database, HOLDER, 50, now)
    assert {c.id for c in first} == {by_name["free"], by_name["expired"], by_name["voided"]}
    assert _claim(database, OTHER, 50, now) == [], "a live claim was taken by a second poster"

    def take_over(uow: UnitOfWork) -> None:
        assert uow.leases.acquire_lease(TENANT, OTHER, now, 30 * US) is not None
        uow.outbox.release_claims(TENANT)

    run_in_transaction(database, take_over)
    after = _claim(database, OTHER, 50, now)
    assert {c.id for c in after} == {by_name[n] for n in ("free", "live", "expired", "voided")}
    rows = _rows(database, ids)
    assert {i for i, r in rows.items() if r.claimed_by == OTHER and r.lease_until_us > now} == {c.id for c in after}


def test_claimers_of_three_posters_take_each_entry_once_and_never_more_than_asked(
    database: Database, other_posters: list[Database]
) -> None:
    """Three posters (their own pools, as processes) with two claimers each race for one tenant's
    240 entries, 4 at a time (SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite). Each entry
    must be claimed exactly once, no claim may return more than it asked for (an UPDATE whose
    subquery ran again would), and each entry must be stored as claimed by the poster whose claim
    returned it, with the values it holds."""
    total = 240
    ids = _queue(database, lambda links: [_entry(link) for link in links], total)
    registries = [database, *other_posters]
    got: dict[str, list[list[ClaimedEntry]]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claimer(db: Database, name: str) -> None:
        try:
            while True:
                batch = _claim(db, name, 4, now_us())
                if not batch:
                    return
                with lock:
                    got.setdefault(name, []).append(batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        started(lambda db=db, name=f"poster-{p}-{t}": claimer(db, name))  # type: ignore[misc]
        for p, db in enumerate(registries)
        for t in range(2)
    ]
    _join(threads, 60)
    assert not errors, errors
    counted = Counter(c.id for batches in got.values() for batch in batches for c in batch)
    assert sorted(counted) == sorted(ids) and set(counted.values()) == {1}
    assert max(len(batch) for batches in got.values() for batch in batches) <= 4
    rows = _rows(database, ids)
    for name, batches in got.items():
        for entry in (c for batch in batches for c in batch):
            assert rows[entry.id].claimed_by == name
            assert entry == as_values(ClaimedEntry, rows[entry.id])


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_claim_passes_over_entries_being_written_and_takes_them_once_free(database: Database) -> None:
    """PostgreSQL: another transaction holds two of the tenant's entries (answers being applied,
    stored_entries locks them). A claim must not wait for them nor take them, and must take the
    rest; once that transaction ends, the next claim takes the two (they are not left
    unclaimable)."""
    now = now_us()
    ids = _queue(database, lambda links: [_entry(link) for link in links], 6)
    held = ids[1:3]
    engine = create_engine(database.url, poolclass=NullPool)
    try:
        with engine.connect() as other:
            other.execute(text("SELECT id FROM outbox WHERE id IN (:a, :b) FOR UPDATE"), {"a": held[0], "b": held[1]})
            result: list[list[ClaimedEntry]] = []
            thread = started(lambda: result.append(_claim(database, HOLDER, 50, now)))
            thread.join(10)
            assert not thread.is_alive(), "the claim waited for entries another transaction holds"
            assert {c.id for c in result[0]} == set(ids) - set(held)
            other.rollback()
    finally:
        engine.dispose()
    assert {c.id for c in _claim(database, HOLDER, 50, now)} == set(held)


def test_a_crashed_posters_claims_reach_the_next_holder_uncertain_with_their_hint(database: Database) -> None:
    """A poster claims two entries, counts its create call and marks them uncertain (one with an
    allocation's look-up hint), and dies before Xero answers. The next poster takes the tenant
    once the lease has expired: it must know of the call (minute log, day's count), void the dead
    poster's claims, and its own claim must hand its job the uncertain marks and the hint, so it
    looks up before creating (else Xero holds each document twice). The dead poster's late
    lease check must be refused."""
    now = now_us()
    ids = _queue(database, lambda links: [_entry(link) for link in links], 2)
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now, 5 * US))
    works = _claim_works(database, HOLDER, 10, now)
    assert [w.row.id for w in works] == ids and not any(w.row.uncertain for w in works)
    hint = json.dumps(["a1b2c3d4-0000-0000-0000-000000000001"])

    def before_call(uow: UnitOfWork) -> bool:
        ok = record_call(uow.leases, TENANT, HOLDER, now + US, 5 * US, MINUTE_US, DAY_US)
        assert uow.outbox.mark_uncertain({ids[0]: hint, ids[1]: ""}, now + 300 * US, HOLDER, now + US) == 2
        return ok

    assert run_in_transaction(database, before_call)
    # The poster dies here. Ten seconds on, its lease (renewed to now + 6 s) has expired.
    later = now + 10 * US

    def take_over(uow: UnitOfWork) -> tuple[int, list[float]]:
        lease = uow.leases.acquire_lease(TENANT, OTHER, later, 30 * US)
        assert lease is not None
        facts = (lease.day_calls, json.loads(lease.minute_log))
        uow.outbox.release_claims(TENANT)
        return facts

    assert run_in_transaction(database, take_over) == (1, [(now + US) / 1e6])
    taken = _claim_works(database, OTHER, 10, later)
    assert [(w.row.id, w.row.uncertain, w.row.lookup_hint) for w in taken] == [(ids[0], True, hint), (ids[1], True, "")]
    assert not _record_call(database, HOLDER, later + 1)
    assert {i: r.claimed_by for i, r in _rows(database, ids).items()} == {ids[0]: OTHER, ids[1]: OTHER}


def _worker(database: Database, xero: XeroClient) -> TenantWorker:
    """This poster's (HOLDER's) worker for the tenant, not started: its jobs' parts are called by
    the test. Its dispatcher is the real one, never started either."""
    return tenant_worker(database, xero, settings(), TENANT, HOLDER)


def test_a_job_whose_tenant_was_taken_over_calls_nothing_and_leaves_the_new_holders_entries(
    database: Database,
) -> None:
    """Poster A claims two entries; its lease lapses while the job waits (a long GC pause), and
    poster B takes the tenant, voids A's claims and claims the first entry. A's job goes on with
    its claim's values, now stale: its create call (marking both uncertain) must be refused
    before Xero is called, and what the job then writes (its work put back after the lost
    lease, then, as after any error, a failed attempt) must leave B's claim, both entries'
    marks and attempts, and both links and their audit trails as they were."""
    now = now_us()
    ids = _queue(database, lambda links: [_entry(link) for link in links], 2)
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now, 30 * US))
    xero = TestXero()
    worker = _worker(database, xero)
    works = _claim_works(database, HOLDER, 10, now)
    assert [w.row.id for w in works] == ids

    # B takes over once A's lease has lapsed, in B's clock.
    later = now + 31 * US

    def take_over(uow: UnitOfWork) -> None:
        assert uow.leases.acquire_lease(TENANT, OTHER, later, 600 * US) is not None
        uow.outbox.release_claims(TENANT)

    run_in_transaction(database, take_over)
    assert [c.id for c in _claim(database, OTHER, 1, later)] == ids[:1]
    before = _rows(database, ids)
    with UnitOfWork(database, write=False) as uow:
        trails = {w.link.id: [(a.event, a.actor) for a in uow.links.audit(w.link.id)] for w in works}
        links_before = uow.links.stored_links([w.link.id for w in works])

    creds = Credentials("http://127.0.0.1:9/xero", TENANT, "access")
    with pytest.raises(LeaseLost):
        worker.gate.call(creds, "PUT", "Invoices", body={"Invoices": [{"Reference": "r"}]}, mark_uncertain=works)
    worker._unclaim([w.row for w in works])
    worker._record_failure(works, RuntimeError("the job failed"))

    assert xero.calls == 0
    after = _rows(database, ids)
    for i in ids:
        assert as_values(ClaimedEntry, after[i]) == as_values(ClaimedEntry, before[i])
        old, new = before[i], after[i]
        assert (new.claimed_by, new.lease_until_us, new.attempts, new.available_us, new.state) == (
            old.claimed_by,
            old.lease_until_us,
            old.attempts,
            old.available_us,
            old.state,
        )
    assert after[ids[0]].claimed_by == OTHER
    with UnitOfWork(database, write=False) as uow:
        assert {w.link.id: [(a.event, a.actor) for a in uow.links.audit(w.link.id)] for w in works} == trails
        assert uow.links.stored_links([w.link.id for w in works]) == links_before
    assert [c.id for c in _claim(database, OTHER, 10, later)] == ids[1:], "B cannot claim the entry A let go"


def test_a_paused_jobs_create_call_is_refused_once_another_poster_posted_its_entry(database: Database) -> None:
    """Found failing (a defect older than the claims as values, which kept it). Poster A claims an
    entry and pauses (a frozen VM) past its lease; poster B takes the tenant, voids A's claim, claims and
    posts the entry (Xero created the invoice, the record is linked, the entry done) and hands the
    tenant back. A resumes: its worker renews the lease (free again, under the same holder name),
    and A's job goes on to its create call with its claim's values. That call must not reach Xero:
    the invoice would be created a second time (a new batch makes a new Idempotency-Key, and
    Xero keeps keys only for a while), and A's answer is then dropped (the entry is no longer
    A's), leaving the accountant a second, unlinked invoice of the bill. The transaction before
    the call (gate.py, Gate.call's `before`: lease_for_call, then outbox.mark_uncertain) checks only
    the lease, never that the entries it marks are still claimed by this poster and ready; it
    even marked the done entry uncertain. It now refuses the call (ClaimsLost) unless this
    poster's live claim still holds every entry."""
    operations = mapper_pb2.MapTransactionResponse(operations=[xero_pb2.Operation(local_ref="inv")])
    now = now_us()
    ids = _queue(database, lambda links: [_entry(link, operations=operations.SerializeToString()) for link in links], 1)
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now, 10 * US))
    xero = TestXero()
    worker = _worker(database, xero)
    works = _claim_works(database, HOLDER, 10, now)
    assert [w.row.id for w in works] == ids

    # A is paused. Eleven seconds on, in B's clock, B serves the tenant and posts the entry.
    later = now + 11 * US

    def take_over(uow: UnitOfWork) -> None:
        assert uow.leases.acquire_lease(TENANT, OTHER, later, 10 * US) is not None
        uow.outbox.release_claims(TENANT)

    run_in_transaction(database, take_over)
    assert [c.id for c in _claim(database, OTHER, 10, later)] == ids
    created = ElementResult(ids[0], created=XeroObjectRef(ObjectType.INVOICE, "b-made-it", "inv"))
    run_in_transaction(database, lambda uow: apply_batch(uow, [created], OTHER, f"dispatcher:{OTHER}", later))
    run_in_transaction(database, lambda uow: uow.leases.release_lease(TENANT, OTHER))
    assert _rows(database, ids)[ids[0]].state == OutboxState.DONE

    # A resumes: its loop renews the lease, its job makes its create call.
    assert worker._renew(), "the resumed poster could not take the free tenant again"
    creds = Credentials("http://127.0.0.1:9/xero", TENANT, "access")
    with contextlib.suppress(LeaseLost):
        worker.gate.call(creds, "PUT", "Invoices", body={"Invoices": [{"Reference": "r"}]}, mark_uncertain=works)

    row = _rows(database, ids)[ids[0]]
    assert xero.calls == 0, "the entry B posted was sent to Xero again by A's paused job"
    assert (row.state, row.uncertain) == (OutboxState.DONE, False)


def test_a_jobs_links_and_connections_are_those_stored_at_the_claim(database: Database) -> None:
    """The job reads its links as values (StoredLink) in the claim's transaction: each entry must
    get its own link's stored values (generation and record: the tag Xero finds the document
    by; its Xero objects: what is already created) and its own connection, entries of two
    connections of one tenant in one claim included (one of them to be connected again: one
    organisation has one connected connection), in the claim's order."""

    def fill(uow: UnitOfWork) -> list[int]:
        _connections(uow)
        waiting = unreachable_connection("c3", TENANT)
        waiting.state = ConnectionState.NEEDS_RECONNECT
        uow.connections.add_connection(waiting)
        first = _links(uow, [11, 12], "c1", LinkState.PENDING.value)
        second = _links(uow, [11, 13], "c3", LinkState.PENDING.value)
        objects = json.dumps([{"type": 2, "xero_id": "x-1", "local_ref": "inv", "number": ""}])
        uow.links.update_links([{"id": first[1], "xero_objects": objects, "attempts": 3}])
        links = [*first, *second]
        connections = ["c1", "c1", "c3", "c3"]
        return uow.outbox.insert_outbox(
            [_entry(link, connection_id=c) for link, c in zip(links, connections, strict=True)], returning_ids=True
        )

    ids = run_in_transaction(database, fill)
    works = _claim_works(database, HOLDER, 10, now_us())

    rows = _rows(database, ids)
    with UnitOfWork(database, write=False) as uow:
        links = uow.links.links_by_ids([r.link_id for r in rows.values()])
        expected = [(as_values(StoredLink, links[rows[i].link_id]), rows[i].connection_id) for i in ids]
    assert [w.row.id for w in works] == ids
    assert [(w.link, w.connection.connection_id) for w in works] == expected
    assert [w.link.connection_id for w in works] == [w.connection.connection_id for w in works]


# -- the lease check before each call ----------------------------------------------------------------


def test_the_lease_check_refuses_a_lost_expired_or_missing_lease_and_counts_nothing(database: Database) -> None:
    """The check before each Xero call must refuse the call when the lease is another poster's,
    when ours has expired (a poster whose clock moved on after a pause), or when there is no
    lease row, and a refused check must change nothing the next holder reads (minute log, day's
    count, day start, expiry)."""
    now = now_us()
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now, 5 * US))
    assert _record_call(database, HOLDER, now + 1 * US, ttl_us=5 * US)
    stored = _lease(database)

    assert not _record_call(database, OTHER, now + 2 * US), "another poster's call was allowed"
    assert not _record_call(database, HOLDER, now + 6 * US + 1), "a call was allowed on an expired lease"
    ok = run_in_transaction(
        database, lambda uow: record_call(uow.leases, "no-such-tenant", HOLDER, now, US, MINUTE_US, DAY_US)
    )
    assert not ok
    assert _lease(database) == stored
    # At the last microsecond of the lease, the call is still ours.
    assert _record_call(database, HOLDER, now + 6 * US, ttl_us=5 * US)


def test_every_call_is_counted_across_the_day_boundary_and_handed_to_the_next_holder(database: Database) -> None:
    """The lease row is the tenant's call history: each allowed call renews the lease, keeps the
    calls of the last minute, and counts the day's calls, the count starting again once a day
    has passed since the day started (exactly at the boundary too). A poster taking the tenant
    over must start from that history, and its calls must add to it."""
    t0 = now_us()
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, t0, 600 * US))
    day = DAY_US
    long_ttl = 2 * day
    for at in (t0 + US, t0 + 70 * US, t0 + day - US):
        assert _record_call(database, HOLDER, at, ttl_us=long_ttl)
    # The calls at t0 + 1 s and t0 + 70 s have left the minute by then.
    assert _lease(database)[2:5] == ([(t0 + day - US) / 1e6], 3, t0)
    assert _record_call(database, HOLDER, t0 + day, ttl_us=5 * US)
    holder, expires, log, calls, started_us, _ = _lease(database)
    assert (holder, expires, calls, started_us) == (HOLDER, t0 + day + 5 * US, 1, t0 + day)
    assert log == [(t0 + day - US) / 1e6, (t0 + day) / 1e6]

    taken_at = t0 + day + 6 * US

    def take_over(uow: UnitOfWork) -> tuple[int, int, list[float]]:
        lease = uow.leases.acquire_lease(TENANT, OTHER, taken_at, 30 * US)
        assert lease is not None
        return lease.day_calls, lease.day_started_us, json.loads(lease.minute_log)

    assert run_in_transaction(database, take_over) == (1, t0 + day, log)
    assert _record_call(database, OTHER, taken_at + US, ttl_us=30 * US)
    assert _lease(database)[:5] == (OTHER, taken_at + 31 * US, [*log, (taken_at + US) / 1e6], 2, t0 + day)
    assert not _record_call(database, HOLDER, taken_at + 2 * US)
    assert _lease(database)[3] == 2


def test_a_lease_read_earlier_in_the_same_transaction_shows_the_call_and_keeps_its_changes(
    database: Database,
) -> None:
    """A caller holding the tenant's lease as an ORM object in the transaction of the check (read
    with get_lease), with a change of its own not yet written (Xero's Retry-After):
    after the check, the object must show the call just counted (not the values before it), and
    after the commit both the call and the caller's change must be stored."""
    now = now_us()
    blocked = now + 42 * US
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now, 30 * US))

    def check(uow: UnitOfWork) -> tuple[bool, tuple[int, list[float], int, int]]:
        lease = uow.leases.get_lease(TENANT)  # the session's ORM row
        assert lease is not None and lease.day_calls == 0
        lease.blocked_until_us = blocked
        ok = record_call(uow.leases, TENANT, HOLDER, now + US, 30 * US, MINUTE_US, DAY_US)
        return ok, (lease.day_calls, json.loads(lease.minute_log), lease.expires_us, lease.blocked_until_us)

    ok, seen = run_in_transaction(database, check)
    assert ok
    assert seen == (1, [(now + US) / 1e6], now + 31 * US, blocked)
    assert _lease(database) == (HOLDER, now + 31 * US, [(now + US) / 1e6], 1, now, blocked)


def test_calls_of_one_holder_made_at_once_are_all_counted(database: Database) -> None:
    """Jobs of one tenant call Xero side by side (up to Xero's concurrency), and a correction
    borrowing the tenant's worker calls from a thread that answers callers (on PostgreSQL, its
    transactions run beside the dispatcher's). Every allowed call must be in the lease's history:
    a count lost to two checks reading the same row would let the next holder, resuming from
    it, exceed Xero's minute and day limits."""
    now = now_us()
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now, 600 * US))
    per_thread, threads_n = 12, 4
    answers: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def calls(n: int) -> None:
        try:
            for i in range(per_thread):
                ok = _record_call(database, HOLDER, now + (n * per_thread + i + 1) * 1000)
                with lock:
                    answers.append(ok)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [started(lambda n=n: calls(n), callers=n % 2 == 1) for n in range(threads_n)]  # type: ignore[misc]
    _join(threads, 60)
    assert not errors, errors
    assert answers == [True] * per_thread * threads_n
    _, _, log, day_calls, _, _ = _lease(database)
    assert day_calls == per_thread * threads_n
    assert len(log) == per_thread * threads_n


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_lease_check_waits_for_a_takeover_in_progress_and_then_refuses(database: Database) -> None:
    """PostgreSQL: poster B is taking the tenant over (its lease write not yet committed) as
    poster A checks its lease before a call. A's check must wait for B's transaction and then
    refuse: a check that read the row without locking it would see its own lease, and its UPDATE
    (by tenant only) would then renew B's lease in A's name, and A would call Xero beside B."""
    now = now_us()
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now, 600 * US))
    engine = create_engine(database.url, poolclass=NullPool)
    result: list[bool] = []
    try:
        with engine.connect() as other:
            other.execute(
                text("UPDATE tenant_lease SET holder = :h, expires_us = :e WHERE tenant_id = :t"),
                {"h": OTHER, "e": now + 900 * US, "t": TENANT},
            )
            thread = started(lambda: result.append(_record_call(database, HOLDER, now + US)))
            thread.join(1.0)
            waited = thread.is_alive()
            other.commit()
        thread.join(10)
        assert not thread.is_alive(), "the lease check did not end after the takeover committed"
    finally:
        engine.dispose()
    assert waited, "the lease check did not wait for the takeover in progress"
    assert result == [False], "A was allowed to call Xero while B holds the tenant"
    assert _lease(database)[:4] == (OTHER, now + 900 * US, [], 0)


# -- waiters and audit rows --------------------------------------------------------------------------


def test_only_records_waited_for_on_the_same_connection_and_kind_are_reported(database: Database) -> None:
    """When records link, the entries waiting for them are released: records_with_waiters must
    name exactly the records (kind and id) something waits for on that connection. A wait on the
    same record id of another kind, or on another connection (another client's organisation), is
    not released by this one linking; every record of a large call is asked about at once."""
    other_kind = 2

    def fill(uow: UnitOfWork) -> None:
        _connections(uow)
        links = _links(uow, [901, 902, 903])
        waits = [
            ("c1", [RecordRef(KIND, 5), RecordRef(other_kind, 6)]),
            ("c2", [RecordRef(KIND, 7), RecordRef(KIND, 6)]),
            ("c1", [RecordRef(KIND, 5)]),
        ]
        entry_ids = uow.outbox.insert_outbox(
            [_entry(link, state=OutboxState.WAITING.value) for link in links], returning_ids=True
        )
        for outbox_id, (connection_id, records) in zip(entry_ids, waits, strict=True):
            uow.outbox.add_waits(outbox_id, connection_id, records)

    run_in_transaction(database, fill)
    asked = [RecordRef(KIND, 5), RecordRef(KIND, 6), RecordRef(other_kind, 6), RecordRef(KIND, 7)]
    asked += [RecordRef(other_kind, 5), RecordRef(3, 5)]
    many = asked + [RecordRef(KIND, 10_000 + i) for i in range(600)]
    with UnitOfWork(database, write=False) as uow:

        def waited_for(connection_id: str, records: list[RecordRef]) -> list[RecordRef]:
            found = uow.outbox.records_with_waiters([(connection_id, r) for r in records])
            assert {c for c, _ in found} <= {connection_id}
            return [r for _, r in found]

        assert waited_for("c1", asked) == [RecordRef(KIND, 5), RecordRef(other_kind, 6)]
        assert waited_for("c2", asked) == [RecordRef(KIND, 6), RecordRef(KIND, 7)]
        assert waited_for("c1", many) == [RecordRef(KIND, 5), RecordRef(other_kind, 6)]
        assert waited_for("c9", asked) == []
        assert waited_for("c1", []) == []
        # Asked about both connections at once: each record named with the connection it waits on.
        both = uow.outbox.records_with_waiters([("c1", r) for r in asked] + [("c2", r) for r in asked])
        assert both == [
            ("c1", RecordRef(KIND, 5)),
            ("c1", RecordRef(other_kind, 6)),
            ("c2", RecordRef(KIND, 6)),
            ("c2", RecordRef(KIND, 7)),
        ]


def test_many_state_changes_in_one_call_leave_each_links_audit_trail_complete_and_in_order(
    database: Database,
) -> None:
    """One call's answers change many links at once (apply_transitions, its audit rows one Core
    INSERT; more than a page of SQLAlchemy's multi-row INSERT here), in the order of the answers,
    not of the links. In the same transaction one link first changed state on its own
    (change_state, an ORM audit row not yet flushed). Every link must get
    exactly one audit row of the call, with its own event, states, actor and detail (long and
    non-ASCII ones too), after the rows it had; and a call with one illegal change writes nothing
    at all."""
    count = 1100
    record_ids = list(range(1, count + 1))

    def fill(uow: UnitOfWork) -> list[int]:
        _connections(uow)
        return _links(uow, record_ids)

    link_ids: list[int] = run_in_transaction(database, fill)
    first = link_ids[0]
    now = now_us()

    def detail(i: int) -> str:
        return f"posting {i}: Müller & Søn — ✓" + ("x" * 1900 if i % 97 == 0 else "")

    def change(uow: UnitOfWork) -> None:
        stored = uow.links.stored_links(link_ids[1:])
        link = uow.links.get_link_by_id(first)
        assert link is not None
        # Its audit row not yet written when the call's changes are applied.
        uow.links.change_state(link, Event.ACCEPTED, "caller:alone", now, "on its own")
        changes = [StateChange(link, Event.POSTED, detail(first))]
        # Not in id order: the order of the call's answers.
        changes += [StateChange(stored[i], Event.ACCEPTED, detail(i)) for i in reversed(link_ids[1:])]
        uow.links.apply_transitions(changes, "dispatcher:a", now + 1)

    run_in_transaction(database, change)

    def illegal(uow: UnitOfWork) -> None:
        stored = uow.links.stored_links(link_ids[:3])
        changes = [StateChange(stored[link_ids[1]], Event.POSTED, "fine")]
        changes += [StateChange(stored[link_ids[2]], Event.RETRY_ACCEPTED, "pending cannot be posted again")]
        uow.links.apply_transitions(changes, "dispatcher:a", now + 2)

    with pytest.raises(XerolinkError):
        run_in_transaction(database, illegal)

    table: Any = AuditRow.__table__  # type: ignore[attr-defined]
    with database.read.connect() as conn:
        rows = conn.execute(
            sqlalchemy.select(
                table.c.link_id, table.c.time_us, table.c.actor, table.c.event, table.c.from_state, table.c.to_state
            ).order_by(table.c.id)
        ).all()
        of_the_call = sqlalchemy.select(table.c.link_id, table.c.detail).where(table.c.time_us == now + 1)
        details: dict[int, str] = {i: d for i, d in conn.execute(of_the_call).all()}
    trails: dict[int, list[tuple[Any, ...]]] = {}
    for link_id, *rest in rows:
        trails.setdefault(link_id, []).append(tuple(rest))
    assert len(rows) == count + 1
    assert trails[first] == [
        (now, "caller:alone", "accepted", "", "pending"),
        (now + 1, "dispatcher:a", "posted", "pending", "linked"),
    ]
    for i in link_ids[1:]:
        assert trails[i] == [(now + 1, "dispatcher:a", "accepted", "", "pending")], i
    assert details == {i: detail(i) for i in link_ids}
    with UnitOfWork(database, write=False) as uow:
        states = Counter(link.state for link in uow.links.links_by_ids(link_ids).values())
        postings = Counter(p.state for p in _postings(uow, link_ids))
    assert states == Counter({LinkState.PENDING.value: count - 1, LinkState.LINKED.value: 1})
    assert postings == states


def _postings(uow: UnitOfWork, link_ids: list[int]) -> list[PostingRow]:
    links: dict[int, LinkRow] = dict(uow.links.links_by_ids(link_ids))
    found = [uow.links.get_posting(link.posting_id) for link in links.values()]
    return [p for p in found if p is not None]


# -- end to end: a poster and Xero ---------------------------------------------------------------------


def _post(stub: poster_grpc.PosterServiceStub, record_ids: list[int]) -> list[poster_pb2.Posting]:
    results = stub.BatchPostTransactions(
        poster_pb2.BatchPostTransactionsRequest(
            connection_id="firm-1", transactions=[samples.client_bill(r) for r in record_ids]
        )
    ).results
    return [r.posting for r in results]


def _creates(emulator: Any, tenant: str, resource: str) -> int:
    return sum(
        1
        for r in emulator.state.requests.entries(tenant)
        if r.method in {"PUT", "POST"} and r.path.rstrip("/").endswith(f"/{resource}")
    )


def test_a_batch_whose_answer_was_lost_is_looked_up_and_each_invoice_exists_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Xero creates a batch of three client bills and the answer is lost (the connection drops
    after Xero committed), after the Idempotency-Key window: the entries' uncertain mark, read
    back by the next claim, must make the job look the invoices up and adopt them. The
    accountant must see each bill once in Xero, each linked to its own record."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(dropped)
    records = [7101, 7102, 7103]

    postings = _post(stub, records)
    assert [wait_settled(stub, p.name, timeout=40).state for p in postings] == [LINKED] * 3

    assert dropped.hits == 1
    invoices = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i.get("Status") != "DELETED"]
    assert len(invoices) == 3, f"{len(invoices)} invoices for 3 bills: {[i.get('Reference') for i in invoices]}"
    looked_up = [
        r for r in emulator.state.requests.entries(org["tenant_id"]) if r.method == "GET" and "Invoices" in r.path
    ]
    assert looked_up, "the entries were not looked up after the lost answer"
    links = [
        stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=postings[n].record))
        .link.xero_objects[0]
        .xero_id
        for n in range(3)
    ]
    assert sorted(links) == sorted(i["InvoiceID"] for i in invoices)


def test_entries_refused_whole_in_a_batch_before_are_each_sent_in_a_call_of_their_own(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, database: Database
) -> None:
    """Two of four accepted bills were in a batch Xero refused whole before (their entries say
    `alone`): the claim must hand the job that mark, so each goes to Xero in a call of its own
    (where a refusal is its own) and the other two share one call. All four must be created
    once."""
    emulator = emulator_factory()
    accepting = stub_for(poster_factory(run_dispatcher=False))
    _, org = connect(accepting, emulator)
    postings = _post(accepting, [7201, 7202, 7203, 7204])
    table: Any = OutboxRow.__table__  # type: ignore[attr-defined]
    with database.read.connect() as conn:
        ids = sorted(conn.execute(sqlalchemy.select(table.c.id)).scalars())
    assert len(ids) == 4
    with database.write.begin() as conn:
        conn.execute(update(table).where(table.c.id.in_(ids[:2])).values(alone=True))

    stub = stub_for(poster_factory())
    assert [wait_settled(stub, p.name, timeout=40).state for p in postings] == [LINKED] * 4

    assert _creates(emulator, org["tenant_id"], "Invoices") == 3
    assert len(xero_objects(emulator, org["tenant_id"], "Invoices")) == 4
