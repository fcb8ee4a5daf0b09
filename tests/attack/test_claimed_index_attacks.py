"""Attacks on voiding a dead poster's claims (`SqlOutboxRepository.release_claims`), which a
poster runs when it takes a tenant's lease that its last holder did not hand back.

Written against a first version that read the claims through a partial index of them and wrote
its predicate as literals (not kept: these attacks showed that the index made every claim and
mark on PostgreSQL write a new entry into each outbox index, and that it could deadlock with a
late answer), and kept as guards, on both registries: every combination of state, claimed_by and
lease_until_us with tenant ids a caller may send; a caller holding ORM copies of the entries in
the same unit of work; the real caller (Dispatcher._acquire); a claim and a mark staying
PostgreSQL heap-only updates; and another poster's answer, mark, move or unclaim racing the
release on PostgreSQL."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from sqlalchemy import Engine, Table, insert, select, text
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.gate import TestXero
from tests.fixtures.outbox import ready_row
from tests.fixtures.poster import settings
from tests.fixtures.postgres import lock_waiters
from tests.fixtures.threads import Call

OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
US = 1_000_000
# (claimed_by, lease_until_us, state, tenant_id) of an entry.
Stored = tuple[str, int, str, str]
COLUMNS = "claimed_by, lease_until_us, state, tenant_id"


# -- the registry, written straight ----------------------------------------------------------------


def _rows(entries: list[dict[str, Any]], first: int = 0) -> list[dict[str, Any]]:
    """Ready entries of tenant t1 with the columns each dict gives, numbered from `first`."""
    return [{**ready_row("t1", "c1", first + n, 0, 0), **columns} for n, columns in enumerate(entries)]


def _insert(database: Database, rows: list[dict[str, Any]]) -> list[int]:
    """The rows written in one transaction; their ids in the order of `rows`."""
    ids: list[int] = []
    with database.write.begin() as conn:
        for start in range(0, len(rows), 2000):
            chunk = rows[start : start + 2000]
            got = conn.execute(insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True), chunk)
            ids += [int(i) for i in got.scalars()]
    return ids


def _stored(database: Database, ids: list[int] | None = None) -> dict[int, Stored]:
    query = select(OUTBOX.c.id, OUTBOX.c.claimed_by, OUTBOX.c.lease_until_us, OUTBOX.c.state, OUTBOX.c.tenant_id)
    if ids is not None:
        query = query.where(OUTBOX.c.id.in_(ids))
    with database.read.connect() as conn:
        return {int(i): (str(by), int(until), str(state), str(t)) for i, by, until, state, t in conn.execute(query)}


def _release(database: Database, tenant: str) -> None:
    run_in_transaction(database, lambda uow: uow.outbox.release_claims(tenant))


def _voided(before: dict[int, Stored], tenant: str) -> dict[int, Stored]:
    """What release_claims(tenant) does (an ORM UPDATE with bound values, as before the index tried):
    the ready entries of `tenant` with lease_until_us > 0 lose their claim; nothing else moves."""
    return {
        i: ("", 0, state, t)
        if t == tenant and state == OutboxState.READY.value and until > 0
        else (by, until, state, t)
        for i, (by, until, state, t) in before.items()
    }


# -- 1. the rows it voids ----------------------------------------------------------------------------

TENANTS = [
    "t1",
    "T1",
    "t1 ",
    " t1",
    "",
    " ",
    "t'1",
    "''",
    "'; UPDATE outbox SET state = 'done'; --",
    "%",
    "t%1",
    "%(tenant_id_1)s",
    "_",
    ":t",
    "?",
    "a\\b",
    "ü-ß-日本-\u200b",
    "x" * 64,
]
STATES = ["ready", "waiting", "done", "READY", "ready ", ""]
HOLDERS = ["", "dead", "t1"]


def _leases(now: int) -> list[int]:
    return [0, -1, -(2**63), 1, now - 1, now, now + 600 * US, 2**63 - 1]


def test_every_tenant_voids_exactly_the_claims_on_its_ready_entries(database: Database) -> None:
    """Every tenant id a caller may send (quotes, LIKE wildcards, paramstyle markers, spaces that
    differ, unicode, empty, the longest) against entries of every state (those of other posters
    and typed by hand too), claimer and lease (none, negative, the smallest and largest 64-bit
    values, run out, live): each release must void what the ORM statement voided, and only it."""
    now = now_us()
    entries = [
        {"tenant_id": t, "state": s, "claimed_by": by, "lease_until_us": until}
        for t in TENANTS
        for s in STATES
        for by in HOLDERS
        for until in _leases(now)
    ]
    _insert(database, _rows(entries))
    expected = _stored(database)
    for tenant in [*TENANTS, "t2", "t", "x" * 65]:
        _release(database, tenant)
        expected = _voided(expected, tenant)
        assert _stored(database) == expected, tenant
    assert all(until <= 0 for (_, until, state, _) in expected.values() if state == "ready")


def test_thousands_of_claims_with_every_lease_are_each_voided_once(database: Database) -> None:
    """The UPDATE writes the column it selects on: every claimed entry must be voided, however many and
    whatever order their leases make, and the rest of the queue left alone."""
    now = now_us()
    claimed = [
        {"claimed_by": f"p{n % 7}", "lease_until_us": (now + n * 7919 % 5000) * (n % 3 + 1)} for n in range(3000)
    ]
    ids = _insert(database, _rows([*claimed, *({} for _ in range(500))]))
    _release(database, "t1")
    stored = _stored(database, ids)
    assert {i: stored[i][:2] for i in ids} == dict.fromkeys(ids, ("", 0))


# -- 2. rows the unit of work holds ------------------------------------------------------------------


def test_a_unit_that_read_an_entry_sees_its_claim_voided_after_the_release(database: Database) -> None:
    """A caller reads an entry, takes the tenant (release_claims) and reads the entry again in the same
    unit of work. The ORM UPDATE brings the session's copy along (its default synchronisation; the
    Core one tried with the index did not); the repository's other Core UPDATEs of outbox rows
    (unclaim) and of leases expire the copies they change. The entry as read again must be the
    stored one, not the dead poster's claim."""
    now = now_us()
    (entry,) = _insert(database, _rows([{"claimed_by": "dead", "lease_until_us": now + 600 * US}]))
    with UnitOfWork(database) as uow:
        held = uow.outbox.get_outbox(entry)
        assert held is not None and held.claimed_by == "dead"
        uow.outbox.release_claims("t1")
        again = uow.outbox.get_outbox(entry)
        seen = [(again.claimed_by, again.lease_until_us) if again else None]
        listed = uow.outbox.outbox_by_ids([entry])[entry]
        seen.append((listed.claimed_by, listed.lease_until_us))
        locked = uow.outbox.lock_entries([entry])[entry]  # read again to be written (SQLite: no refresh)
        seen.append((locked.claimed_by, locked.lease_until_us))
        uow.commit()
    assert _stored(database, [entry])[entry][:2] == ("", 0)
    assert seen == [("", 0)] * 3, "the unit still sees the voided claim"


def test_a_claim_the_unit_wrote_and_has_not_flushed_is_voided_too(database: Database) -> None:
    """A caller sets a claim on an entry it holds (not yet flushed) and releases the tenant in the
    same unit: the Core UPDATE must see the claim (the session flushes first), or the flush at
    commit would write the voided claim back."""
    (entry,) = _insert(database, _rows([{}]))
    with UnitOfWork(database) as uow:
        row = uow.outbox.get_outbox(entry)
        assert row is not None
        row.claimed_by, row.lease_until_us = "dead", now_us() + 600 * US
        uow.outbox.save(row)
        uow.outbox.release_claims("t1")
        uow.commit()
    assert _stored(database, [entry])[entry][:2] == ("", 0)


def test_a_dispatcher_taking_tenants_voids_the_claims_of_those_it_took_only(database: Database) -> None:
    """The real caller: a round takes the leases of several tenants in one transaction, in
    order (Dispatcher._acquire). The claims on the tenants it took are voided; a tenant another
    poster holds a live lease on keeps its claims, and the poster's later claim takes the voided
    entries at once."""
    now = now_us()
    until = now + 600 * US
    tenants = ["t'1", "t1", "t2", "ü"]
    ids = _insert(
        database,
        [{**ready_row(t, "c1", n, 0, 0), "claimed_by": "dead", "lease_until_us": until} for n, t in enumerate(tenants)],
    )
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t2", "other", now, 600 * US))
    dispatcher = Dispatcher(database, TestXero(), settings(), "poster-a")
    taken = run_in_transaction(database, lambda uow: [dispatcher._acquire(t, uow) for t in sorted(tenants)])
    assert [lease is not None for lease in taken] == [t != "t2" for t in sorted(tenants)]
    stored = _stored(database, ids)
    assert {stored[i][3]: stored[i][:2] for i in ids} == {t: ("dead", until) if t == "t2" else ("", 0) for t in tenants}
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "poster-a", 50, now_us(), 300 * US))
    assert [c.id for c in claimed] == [ids[1]]


# -- 4. PostgreSQL's heap-only updates of claims and marks -------------------------------------------


def _hot_updates(uow: UnitOfWork) -> tuple[int, int]:
    """(updates, heap-only updates) of outbox rows in this unit's transaction so far."""
    row = uow.outbox._session.execute(  # type: ignore[attr-defined]
        text(
            "SELECT pg_stat_get_xact_tuples_updated('outbox'::regclass),"
            " pg_stat_get_xact_tuples_hot_updated('outbox'::regclass)"
        )
    ).one()
    return int(row[0]), int(row[1])


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_postgres_a_claim_and_its_mark_stay_heap_only_updates(database: Database) -> None:
    """A claim writes claimed_by and lease_until_us, the mark before a create call lookup_hint,
    uncertain and lease_until_us, a lost lease's unclaim claimed_by and lease_until_us: columns no
    index holds, so PostgreSQL writes each as a heap-only tuple (HOT), adding nothing to the
    outbox's five indexes (ix_outbox_ready among them, which every claim and the tenant poll
    read). The partial index over lease_until_us tried made each of these writes a new entry in
    every index of the table. Ten entries on a page with room: every write must stay heap-only."""
    now = now_us()
    ids = _insert(database, _rows([{}] * 10))

    def cycle(uow: UnitOfWork) -> list[tuple[int, int]]:
        seen = [_hot_updates(uow)]
        claimed = uow.outbox.claim("t1", "p", 50, now, 300 * US)
        assert sorted(c.id for c in claimed) == ids
        seen.append(_hot_updates(uow))
        assert uow.outbox.mark_uncertain(dict.fromkeys(ids, "h"), now + 600 * US, "p", now) == 10
        seen.append(_hot_updates(uow))
        assert uow.outbox.unclaim(ids, "p") == 10
        seen.append(_hot_updates(uow))
        return seen

    seen = run_in_transaction(database, cycle)
    steps = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(seen)]
    assert steps == [(10, 10)] * 3, f"(updates, heap-only) of claim, mark, unclaim: {steps}"


# -- 5. PostgreSQL: another poster's writes racing the release --------------------------------------


def _waits_for_a_lock(call: Call, outsider: Engine) -> None:
    deadline = time.monotonic() + 10
    while lock_waiters(outsider, "transactionid") == 0:
        assert not call.answered_within(0.02), "the release did not wait for the row another poster holds"
        assert time.monotonic() < deadline, "the release never waited"


def _release_once(database: Database) -> Call:
    """The new holder's release on a thread, not retried: a lost race shows as its error."""
    return Call(lambda: run_in_transaction(database, lambda uow: uow.outbox.release_claims("t1"), attempts=1))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize(
    ("write", "kept"),
    [
        # The old claimer's answer: the entry done, its claim columns as they were.
        ("state = 'done'", True),
        # The connection moved to another organisation (move_outbox): the entry is t2's now.
        ("tenant_id = 't2'", True),
        # The old claimer's mark before its create call: its claim extended.
        ("lease_until_us = lease_until_us + 1000000, uncertain = true", False),
        # The old claimer's lost-lease unclaim: nothing left to void.
        ("claimed_by = '', lease_until_us = 0", True),
    ],
    ids=["answered", "moved", "marked", "unclaimed"],
)
def test_on_postgres_a_release_waiting_for_an_entry_decides_on_what_was_committed(
    database: Database, outsider: Engine, write: str, kept: bool
) -> None:
    """The release reads the tenant's claimed entries, then waits for an entry another poster's
    transaction is writing. Once that commits, the release must decide on the entry as committed
    (PostgreSQL rechecks the row against the whole WHERE): an entry answered, moved or unclaimed
    keeps what that write left, one whose claim was extended is voided. The other claimed entry is
    voided either way."""
    now = now_us()
    until = now + 600 * US
    held, other = _insert(database, _rows([{"claimed_by": "dead", "lease_until_us": until}] * 2))
    with outsider.connect() as conn:
        conn.execute(text(f"UPDATE outbox SET {write} WHERE id = :i"), {"i": held})
        written = tuple(conn.execute(text(f"SELECT {COLUMNS} FROM outbox WHERE id = :i"), {"i": held}).one())
        release = _release_once(database)
        _waits_for_a_lock(release, outsider)
        conn.commit()
    release.result()
    stored = _stored(database, [held, other])
    assert stored[other][:2] == ("", 0)
    assert stored[held] == (written if kept else ("", 0, *written[2:])), (write, stored[held])


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_postgres_a_release_and_a_late_answer_do_not_deadlock(database: Database, outsider: Engine) -> None:
    """The dead poster's late answer locks its entries in id order (stored_entries, FOR UPDATE
    ... ORDER BY id) while the new holder's release locks the claimed entries in the order it
    reads them. Entry A (the smaller id) was claimed in a later batch than B, so its lease ends
    later. The answer has locked A and goes on to B as the release starts: the release must not
    hold B while it waits for A, or PostgreSQL aborts one of them as a deadlock (after its
    deadlock_timeout, a second of a worker's time, the transaction done again)."""
    now = now_us()
    a, b = _insert(
        database,
        _rows(
            [
                {"claimed_by": "dead", "lease_until_us": now + 900 * US},
                {"claimed_by": "dead", "lease_until_us": now + 600 * US},
            ]
        ),
    )
    with outsider.connect() as conn:
        conn.execute(text("SELECT id FROM outbox WHERE id = :i FOR UPDATE"), {"i": a})
        release = _release_once(database)
        _waits_for_a_lock(release, outsider)
        answer_error: BaseException | None = None
        try:
            conn.execute(text("SELECT id FROM outbox WHERE id = :i FOR UPDATE"), {"i": b})
            conn.execute(text("UPDATE outbox SET state = 'done' WHERE id IN (:a, :b)"), {"a": a, "b": b})
            conn.commit()
        except Exception as exc:  # reported below
            answer_error = exc
            conn.rollback()
    errors = [answer_error]
    try:
        release.result()
    except Exception as exc:  # reported below
        errors.append(exc)
    assert errors == [None], errors
