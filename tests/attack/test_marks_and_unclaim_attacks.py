"""Attacks on the two statements run around a Xero call: `SqlOutboxRepository.mark_uncertain`
(built once, an expanding IN bound per call: before every create call it marks the batch
uncertain with its look-up hints and extends its claims, only where this poster's live claim
holds; the gate refuses the call when fewer were marked than asked) and
`SqlOutboxRepository.unclaim` (one UPDATE ... WHERE id IN (...) AND claimed_by = holder, run by
`TenantWorker._unclaim` when the tenant's lease was lost before a call; it replaced a loop of ORM
gets and saves). From outside, on both registries: every kind of entry a batch may name (live,
run out, another poster's, voided, done, waiting, moved to another tenant, missing, named
twice), many distinct hints, long lists, a second poster taking the tenant over while the
statement waits for its rows, and a caller holding ORM copies of the entries in the same unit of
work. What a user must see: no Xero document created twice (no call once any entry is no longer
this poster's; no claim of the new holder erased, which would let a third claim send it again),
no entry left unclaimable, and every look-up hint stored with its own entry. Tests that go
through `TenantWorker._unclaim` or `mark_uncertain` also run on the code before the change."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.xero_client import Credentials
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.domain.stored_rows import ClaimedEntry
from xerolink_poster.service_layer import outcomes
from xerolink_poster.service_layer.dispatch.gate import ClaimsLost
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.gate import TestXero, tenant_worker
from tests.fixtures.outbox import ready_row
from tests.fixtures.poster import settings
from tests.fixtures.postgres import lock_waiters
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection
from tests.fixtures.threads import Call

US = 1_000_000
TENANT = "t1"
HOLDER = "poster-a"
OTHER = "poster-b"
# The column values each test compares: (claimed_by, lease_until_us, uncertain, lookup_hint, state, tenant).
Stored = tuple[str, int, bool, str, str, str]


# -- the registry as the statements find it ----------------------------------------------------------


def _entry(n: int, now: int, **columns: Any) -> dict[str, Any]:
    return {**ready_row(TENANT, "c1", n, 0, now), "state": OutboxState.READY.value, **columns}


def _insert(database: Database, rows: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = run_in_transaction(database, lambda uow: uow.outbox.insert_outbox(rows, returning_ids=True))
    return ids


def _stored(database: Database, ids: list[int]) -> dict[int, Stored]:
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    return {
        i: (r.claimed_by, r.lease_until_us, bool(r.uncertain), r.lookup_hint, r.state, r.tenant_id)
        for i, r in rows.items()
    }


def _missing_id(database: Database) -> int:
    with database.write.connect() as conn:
        return int(conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM outbox")).scalar_one()) + 1000


def _mark(database: Database, hints: dict[int, str], until: int, now: int, holder: str = HOLDER) -> int:
    marked: int = run_in_transaction(database, lambda uow: uow.outbox.mark_uncertain(hints, until, holder, now))
    return marked


def _as_claimed(ids: list[int]) -> list[ClaimedEntry]:
    """What a job holds of its batch: _unclaim reads only the ids."""
    blank = ClaimedEntry(0, 0, "c1", b"", False, False, "", "")
    return [replace(blank, id=i) for i in ids]


def _worker(database: Database) -> TenantWorker:
    return tenant_worker(database, TestXero(), settings(), TENANT, HOLDER)


# Every kind of entry a batch's ids may name, as stored at `now`.
def _kinds(now: int) -> dict[str, dict[str, Any]]:
    live = now + 60 * US
    return {
        "mine": {"claimed_by": HOLDER, "lease_until_us": live},
        "mine, last microsecond": {"claimed_by": HOLDER, "lease_until_us": now},
        "mine, run out": {"claimed_by": HOLDER, "lease_until_us": now - 1},
        "another poster's": {"claimed_by": OTHER, "lease_until_us": live},
        "voided": {"claimed_by": "", "lease_until_us": 0},
        "done, mine": {"claimed_by": HOLDER, "lease_until_us": live, "state": OutboxState.DONE.value},
        "waiting, mine": {"claimed_by": HOLDER, "lease_until_us": live, "state": OutboxState.WAITING.value},
        "mine, moved to another tenant": {"claimed_by": HOLDER, "lease_until_us": live, "tenant_id": "t2"},
        "mine, not in the batch": {"claimed_by": HOLDER, "lease_until_us": live},
    }


def _queue_kinds(database: Database, now: int) -> dict[str, int]:
    kinds = _kinds(now)
    ids = _insert(database, [_entry(n, now, **cols) for n, cols in enumerate(kinds.values())])
    return dict(zip(kinds, ids, strict=True))


class _TakeOver:
    """Poster B (a registry of its own, as another process) taking the tenant over: its lease,
    release_claims and its own claim, in one transaction left open until `commit`."""

    def __init__(self, database: Database, at: int) -> None:
        self.db = open_database(database.url)
        self.uow = UnitOfWork(self.db).__enter__()
        assert self.uow.leases.acquire_lease(TENANT, OTHER, at, 600 * US) is not None
        self.uow.outbox.release_claims(TENANT)
        self.claimed = [c.id for c in self.uow.outbox.claim(TENANT, OTHER, 100, at, 600 * US)]

    def commit(self) -> None:
        self.uow.commit()
        self.close()

    def close(self) -> None:
        self.uow.__exit__(None, None, None)
        self.db.dispose()


def _waits_for_the_takeover(call: Call, outsider: Engine | None) -> None:
    """Until `call` waits for the takeover's locks: on PostgreSQL, a lock waiter on the database;
    on SQLite (its BEGIN IMMEDIATE waits for the writer), still running half a second on."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert not call.answered_within(0.05), "the statement did not wait for the takeover in flight"
        if outsider is None:
            if call.answered_within(0.5):
                raise AssertionError("the statement did not wait for the takeover in flight")
            return
        if lock_waiters(outsider):
            return
    raise AssertionError("the statement never waited for the takeover's locks")


@pytest.fixture
def outsider(database: Database) -> Iterator[Engine | None]:
    """PostgreSQL: sessions of nobody's pool, to see lock waits; None on SQLite."""
    if database.is_sqlite:
        yield None
        return
    engine = create_engine(database.url, poolclass=NullPool)
    yield engine
    engine.dispose()


# -- mark_uncertain ----------------------------------------------------------------------------------


def test_a_mark_takes_exactly_the_live_claims_each_with_its_own_hint_and_counts_them(database: Database) -> None:
    """A batch naming every kind of entry, each with a hint of its own (empty, unicode, SQL-ish,
    long JSON): only entries this poster's live claim holds (ready, claimed by it, the claim not
    run out at `now`; the claim's last microsecond counts) are marked, each with its own hint
    and the extended claim; the count says exactly how many, so the caller refuses the call
    (the batch also names a missing entry). Nothing else changes: another poster's claim, a done
    or waiting entry, an expired claim. (The statement does not look at the tenant: an entry of
    another tenant this poster holds is marked, as before the change.)"""
    now = now_us()
    by_name = _queue_kinds(database, now)
    names = [n for n in by_name if n != "mine, not in the batch"]
    hint_of = {
        name: hint
        for name, hint in zip(
            names,
            ["", "ünïcødé ✓", "%s :x ?", '["' + "a" * 36 + '"]' * 40, "h4", "h5", "h6", ""],
            strict=True,
        )
    }
    missing = _missing_id(database)
    hints = {by_name[n]: hint_of[n] for n in names} | {missing: "gone"}
    before = _stored(database, list(by_name.values()))
    until = now + 300 * US

    marked = _mark(database, hints, until, now)

    expected_marked = {"mine", "mine, last microsecond", "mine, moved to another tenant"}
    assert marked == len(expected_marked) < len(hints)
    after = _stored(database, list(by_name.values()))
    for name, i in by_name.items():
        claimed_by, _, _, _, state, tenant = before[i]
        if name in expected_marked:
            assert after[i] == (claimed_by, until, True, hint_of[name], state, tenant), name
        else:
            assert after[i] == before[i], name


def test_a_long_batch_of_many_distinct_hints_is_counted_once_per_entry_and_short_once_one_is_lost(
    database: Database,
) -> None:
    """600 claimed entries, a third with no hint and the rest with hints of their own (one
    statement per distinct hint), then batches of other sizes on the same registry (a statement
    built once, its IN list expanded per call): each count must be the entries marked, each hint
    stored with its own entry, and a batch one of whose entries another poster took must count
    one short (the caller refuses the call), leaving that entry as the other poster holds it."""
    now = now_us()
    ids = _insert(
        database,
        [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(600)],
    )
    hints = {i: "" if k % 3 == 0 else f"hint-{k}" for k, i in enumerate(ids)}
    assert _mark(database, hints, now + 300 * US, now) == 600
    after = _stored(database, ids)
    assert all(after[i][1:4] == (now + 300 * US, True, hints[i]) for i in ids)

    for size in (1, 7, 1, 100, 2):
        batch = ids[:size]
        assert _mark(database, {i: f"again-{size}" for i in batch}, now + 301 * US, now) == size
        stored = _stored(database, ids[: size + 1])
        assert [stored[i][3] for i in batch] == [f"again-{size}"] * size
    run_in_transaction(database, lambda uow: uow.outbox.update_outbox([{"id": ids[5], "claimed_by": OTHER}]))
    assert _mark(database, {i: "x" for i in ids[:50]}, now + 302 * US, now) == 49
    assert _mark(database, {i: f"x{i}" for i in ids[:50]}, now + 302 * US, now) == 49
    assert _stored(database, [ids[5]])[ids[5]][0] == OTHER


def test_a_mark_waiting_for_a_takeover_in_flight_marks_nothing_of_the_new_holders(
    database: Database, outsider: Engine | None
) -> None:
    """Poster B takes the tenant over (lease, release_claims, its own claim) while A's mark runs:
    A's UPDATE waits for B's rows (PostgreSQL) or for the writer (SQLite). Once B commits, A must
    count none marked (its claims are gone: the gate refuses the call, or B's entries are sent
    twice) and B's claims must stay as B wrote them, unmarked."""
    now = now_us()
    ids = _insert(database, [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(4)])
    take_over = _TakeOver(database, now + US)
    try:
        assert take_over.claimed == ids
        call = Call(lambda: _mark(database, {i: f"h{i}" for i in ids}, now + 300 * US, now + US))
        _waits_for_the_takeover(call, outsider)
        take_over.commit()
    except BaseException:
        take_over.close()
        raise
    assert call.result() == 0
    assert _stored(database, ids) == {i: (OTHER, now + 601 * US, False, "", "ready", TENANT) for i in ids}


def test_marks_of_many_jobs_at_once_each_count_and_hint_their_own_entries(database: Database) -> None:
    """One statement object serves every job of every tenant worker at once: four jobs marking
    their own batches (of different sizes and hints) twenty times each, concurrently. Each count
    must be its own batch's, and each entry must end with its own job's last hint."""
    now = now_us()
    sizes = [1, 3, 5, 8]
    ids = _insert(
        database, [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(sum(sizes))]
    )
    batches = [ids[sum(sizes[:k]) : sum(sizes[: k + 1])] for k in range(len(sizes))]

    def job(k: int) -> list[int]:
        return [_mark(database, {i: f"job{k}-round{r}" for i in batches[k]}, now + 300 * US, now) for r in range(20)]

    calls = [Call(lambda k=k: job(k)) for k in range(len(sizes))]  # type: ignore[misc]
    assert [c.result(60) for c in calls] == [[size] * 20 for size in sizes]
    stored = _stored(database, ids)
    assert {i: stored[i][3] for i in ids} == {i: f"job{k}-round19" for k, b in enumerate(batches) for i in b}


def test_a_create_call_whose_claim_ran_out_on_one_entry_is_not_made_and_marks_none(database: Database) -> None:
    """Two entries of one batch with distinct hints (two statements); the claim on the second ran
    out while the job worked (nobody else took it). The create call must not reach Xero, and the
    first entry's mark, made before the second came up short, must roll back with the count."""
    now = now_us()

    def fill(uow: UnitOfWork) -> list[Work]:
        uow.connections.add_connection(unreachable_connection("c1", TENANT))
        links = [link_with_posting(uow, r) for r in (1, 2)]
        uow.outbox.insert_outbox([_entry(n, now, link_id=link.id) for n, link in enumerate(links)])
        return TenantWorker._works(uow, uow.outbox.claim(TENANT, HOLDER, 10, now, 600 * US))

    works: list[Work] = run_in_transaction(database, fill)
    assert len(works) == 2
    works[0].hint, works[1].hint = "first", "second"
    ids = [w.row.id for w in works]
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease(TENANT, HOLDER, now_us(), 30 * US))
    run_in_transaction(database, lambda uow: uow.outbox.update_outbox([{"id": ids[1], "lease_until_us": now - 1}]))
    before = _stored(database, ids)
    xero = TestXero()
    worker = tenant_worker(database, xero, settings(), TENANT, HOLDER)

    creds = Credentials("http://127.0.0.1:9/xero", TENANT, "access")
    with pytest.raises(ClaimsLost):
        worker.gate.call(creds, "PUT", "Invoices", body={"Invoices": [{"Reference": "r"}]}, mark_uncertain=works)
    assert xero.calls == 0
    assert _stored(database, ids) == before


# -- unclaim -----------------------------------------------------------------------------------------


def test_a_lost_leases_batch_is_let_go_exactly_where_this_poster_still_claims_it(database: Database) -> None:
    """The worker lost the lease and lets its batch go (TenantWorker._unclaim), the batch naming
    every kind of entry, one twice, and a missing one. Entries this poster still claims (live or
    run out, whatever their state or tenant now, as the loop before the change did) become
    claimable at once; another poster's claim, a voided one and an entry not in the batch keep
    theirs, every other column unchanged."""
    now = now_us()
    by_name = _queue_kinds(database, now)
    batch = [i for n, i in by_name.items() if n != "mine, not in the batch"]
    batch += [by_name["mine"], _missing_id(database)]
    before = _stored(database, list(by_name.values()))

    _worker(database)._unclaim(_as_claimed(batch))

    let_go = {"mine", "mine, last microsecond", "mine, run out", "done, mine", "waiting, mine"}
    let_go.add("mine, moved to another tenant")
    after = _stored(database, list(by_name.values()))
    for name, i in by_name.items():
        if name in let_go:
            assert after[i] == ("", 0, *before[i][2:]), name
        else:
            assert after[i] == before[i], name
    assert [c.id for c in run_in_transaction(database, lambda uow: uow.outbox.claim(TENANT, OTHER, 50, now, US))] == [
        by_name[n] for n in ("mine", "mine, last microsecond", "mine, run out", "voided")
    ]


def test_unclaim_counts_each_entry_let_go_once(database: Database) -> None:
    """The count the new statement returns: entries named twice count once, others' and missing
    ones not at all, an empty batch runs nothing."""
    now = now_us()
    by_name = _queue_kinds(database, now)
    named = [by_name["mine"], by_name["mine"], by_name["another poster's"], by_name["done, mine"]]
    named.append(_missing_id(database))
    assert run_in_transaction(database, lambda uow: uow.outbox.unclaim(named, HOLDER)) == 2
    assert run_in_transaction(database, lambda uow: uow.outbox.unclaim(named, HOLDER)) == 0
    assert run_in_transaction(database, lambda uow: uow.outbox.unclaim([], HOLDER)) == 0


def test_a_long_batch_is_let_go_whole(database: Database) -> None:
    """2,500 entries named at once (far beyond a batch): all let go, none of another poster's."""
    now = now_us()
    ids = _insert(
        database,
        [
            _entry(n, now, claimed_by=OTHER if n % 250 == 0 else HOLDER, lease_until_us=now + 60 * US)
            for n in range(2500)
        ],
    )
    _worker(database)._unclaim(_as_claimed(ids))
    after = _stored(database, ids)
    assert {i for i in ids if after[i][:2] == ("", 0)} == {i for k, i in enumerate(ids) if k % 250}
    assert {i for i in ids if after[i][0] == OTHER} == {i for k, i in enumerate(ids) if k % 250 == 0}


def test_letting_go_while_another_poster_takes_the_tenant_over_keeps_the_new_holders_claims(
    database: Database, outsider: Engine | None
) -> None:
    """Poster A lost the lease and lets its batch go while poster B's takeover (lease,
    release_claims, B's claim of the same entries) is in flight: A's write waits for B's rows
    (PostgreSQL) or for the writer (SQLite). Once B commits, B's claims must stand: erased, the
    entries are claimable by a third claim while B sends them, and Xero gets each twice."""
    now = now_us()
    ids = _insert(database, [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(4)])
    worker = _worker(database)
    take_over = _TakeOver(database, now + US)
    try:
        assert take_over.claimed == ids
        call = Call(lambda: worker._unclaim(_as_claimed(ids)))
        _waits_for_the_takeover(call, outsider)
        take_over.commit()
    except BaseException:
        take_over.close()
        raise
    call.result()
    assert _stored(database, ids) == {i: (OTHER, now + 601 * US, False, "", "ready", TENANT) for i in ids}
    assert run_in_transaction(database, lambda uow: uow.outbox.claim(TENANT, "poster-c", 50, now + 2 * US, US)) == []


# -- ORM copies in the same unit of work -------------------------------------------------------------


def test_a_pending_change_to_an_orm_copy_is_not_written_back_over_the_statements(database: Database) -> None:
    """A careless caller changed ORM copies of two entries (not yet flushed), then lets one go
    and marks the other in the same unit: the session's pending changes must be written before
    the statements, never after them over what they wrote."""
    now = now_us()
    ids = _insert(database, [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(2)])

    def work(uow: UnitOfWork) -> tuple[int, int]:
        first, second = uow.outbox.get_outbox(ids[0]), uow.outbox.get_outbox(ids[1])
        assert first is not None and second is not None
        first.lease_until_us = now + 90 * US
        second.lookup_hint = "stale"
        second.lease_until_us = now + 90 * US
        uow.outbox.save(first)
        uow.outbox.save(second)
        return uow.outbox.unclaim([ids[0]], HOLDER), uow.outbox.mark_uncertain(
            {ids[1]: "fresh"}, now + 300 * US, HOLDER, now
        )

    assert run_in_transaction(database, work) == (1, 1)
    assert _stored(database, ids) == {
        ids[0]: ("", 0, False, "", "ready", TENANT),
        ids[1]: (HOLDER, now + 300 * US, True, "fresh", "ready", TENANT),
    }


def test_an_orm_copy_read_before_unclaim_in_the_same_unit_shows_the_entry_let_go(database: Database) -> None:
    """The loop before the change let go through the session's copies; the new statement does
    not touch them. A caller that read its entries (get_outbox or preload, as Results does), lets
    them go, and then asks in the same unit whether they are still its own (outcomes.still_ours,
    the check before writing an answer) must be told they are not: a stale 'yes' writes an
    answer or a retry for entries that are no longer this poster's."""
    now = now_us()
    ids = _insert(database, [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(2)])

    def work(uow: UnitOfWork) -> list[bool]:
        uow.outbox.preload_outbox(ids)
        assert uow.outbox.unclaim(ids, HOLDER) == 2
        return [outcomes.still_ours(uow.outbox.get_outbox(i), HOLDER) for i in ids]

    assert run_in_transaction(database, work) == [False, False]
