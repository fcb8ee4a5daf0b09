"""The registry on SQLite and on the real PostgreSQL server: the transition table
with its audit trail, the outbox claim and the tenant lease."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import event, text
from xerolink_common.errors import XerolinkError
from xerolink_poster.adapters.correction_tables import CorrectionRow
from xerolink_poster.adapters.database import Database, DatabaseError, now_us, open_database
from xerolink_poster.adapters.tables import ContactLinkRow, LinkRow, OutboxRow
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.corrections import Action, Actor, SagaState, Step, StepState
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, OutboxState
from xerolink_poster.service_layer import drift_snapshots
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.ports import StateChange
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.leases import record_call
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection
from tests.fixtures.statements import Statement, query_plan, statements_sent

US = 1_000_000


def _connection(uow: UnitOfWork, connection_id: str = "c1", tenant: str = "t1") -> None:
    uow.connections.add_connection(unreachable_connection(connection_id, tenant))


def _link(uow: UnitOfWork, record_id: int) -> LinkRow:
    return link_with_posting(uow, record_id)


def _outbox(link: LinkRow, state: str) -> OutboxRow:
    return OutboxRow(
        tenant_id="t1",
        connection_id="c1",
        link_id=link.id or 0,
        posting_id=link.posting_id,
        operations=b"",
        state=state,
        available_us=0,
        create_us=now_us(),
    )


def test_every_state_change_goes_through_the_table_and_appends_its_audit_row(database: Database) -> None:
    def accept(uow: UnitOfWork) -> int:
        _connection(uow)
        link = _link(uow, 1)
        uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us(), "posting p1")
        uow.links.change_state(link, Event.POSTED, "dispatcher:a", now_us())
        return link.id or 0

    link_id = run_in_transaction(database, accept)

    def illegal(uow: UnitOfWork) -> None:
        link = uow.links.get_link_by_id(link_id)
        assert link is not None
        uow.links.change_state(link, Event.UNLINKED, "operator:x", now_us())
        uow.links.change_state(link, Event.POSTED, "dispatcher:a", now_us())  # unlinked -> posted: refused

    with pytest.raises(XerolinkError) as refused:
        run_in_transaction(database, illegal)
    assert refused.value.reason == "ILLEGAL_LINK_TRANSITION"
    with UnitOfWork(database, write=False) as uow:
        link = uow.links.get_link("c1", RecordRef(1, 1))
        assert link is not None and link.state == "linked"  # the refused transaction left nothing behind
        audit = [(a.actor, a.event, a.from_state, a.to_state) for a in uow.links.audit(link_id)]
        posting = uow.links.get_posting("p1")
    assert audit == [
        ("caller:test", "accepted", "", "pending"),
        ("dispatcher:a", "posted", "pending", "linked"),
    ]
    assert posting is not None and posting.state == "linked"


def test_concurrent_claimers_take_every_outbox_entry_exactly_once(database: Database) -> None:
    total = 120

    def fill(uow: UnitOfWork) -> None:
        _connection(uow)
        for i in range(total):
            link = _link(uow, i + 1)
            uow.outbox.add_outbox(
                False,
                _outbox(link, OutboxState.READY),
            )

    run_in_transaction(database, fill)
    claimed: Counter[int] = Counter()
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            rows = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", name, 7, now_us(), 600 * US))
            if not rows:
                return
            with lock:
                claimed.update(r.id or 0 for r in rows)

    threads = [threading.Thread(target=claimer, args=(f"poster-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == total
    assert set(claimed.values()) == {1}


def test_one_holder_per_tenant_until_its_lease_expires_and_calls_are_logged_for_the_next(
    database: Database,
) -> None:
    now = now_us()
    first = run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t1", "a", now, 5 * US))
    second = run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t1", "b", now + 1, 5 * US))
    assert first is not None and first.holder == "a"
    assert second is None
    assert run_in_transaction(
        database, lambda uow: record_call(uow.leases, "t1", "a", now + 2, 5 * US, 60 * US, 86400 * US)
    )
    assert not run_in_transaction(
        database, lambda uow: record_call(uow.leases, "t1", "b", now + 3, 5 * US, 60 * US, 86400 * US)
    )
    later = now + 10 * US  # a's lease (renewed by its call) has expired
    taken = run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t1", "b", later, 5 * US))
    assert taken is not None and taken.holder == "b"
    assert len(json.loads(taken.minute_log)) == 1  # b knows about a's call
    assert taken.day_calls == 1
    assert not run_in_transaction(
        database, lambda uow: record_call(uow.leases, "t1", "a", later + 1, 5 * US, 60 * US, 86400 * US)
    )


def test_the_sweep_finds_waiting_entries_whose_dependencies_all_linked(database: Database) -> None:
    def setup(uow: UnitOfWork) -> tuple[int, int]:
        _connection(uow)
        bill = _link(uow, 1)
        uow.links.change_state(bill, Event.ACCEPTED, "caller:test", now_us())
        entries = []
        for record_id, waits_for in ((2, [RecordRef(1, 1)]), (3, [RecordRef(1, 1), RecordRef(1, 99)])):
            link = _link(uow, record_id)
            box = uow.outbox.add_outbox(
                True,
                _outbox(link, "waiting"),
            )
            uow.outbox.add_waits(box.id or 0, "c1", waits_for)
            entries.append(box.id or 0)
        return entries[0], entries[1]

    only_bill, bill_and_missing = run_in_transaction(database, setup)
    with UnitOfWork(database, write=False) as uow:
        assert uow.outbox.satisfied_waiting_entries() == []  # the bill is still pending

    def link_bill(uow: UnitOfWork) -> None:
        bill = uow.links.get_link("c1", RecordRef(1, 1))
        assert bill is not None
        uow.links.change_state(bill, Event.POSTED, "dispatcher:a", now_us())

    run_in_transaction(database, link_bill)
    with UnitOfWork(database, write=False) as uow:
        assert uow.outbox.satisfied_waiting_entries() == [only_bill]
    assert bill_and_missing != only_bill


def test_a_sqlite_registry_syncs_every_commit_to_disk(tmp_path: Path) -> None:
    # An accepted Post must survive power loss, not only a killed process: WAL with synchronous
    # FULL (2), on the write and the read engines alike.
    db = open_database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        for engine in (db.write, db.read):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        db.dispose()


def test_two_counters_of_the_app_minute_in_different_buckets_never_both_pass(database: Database) -> None:
    """A call counted in one transaction is seen by a counter in another before either calls:
    counters queue, so two posters can never both take the last call of the app's minute.
    (On PostgreSQL two counters in different buckets used to touch different rows, and each
    counted without the other's uncommitted call.)"""
    minute_us = 60_000_000
    now = now_us()
    first = UnitOfWork(database).__enter__()
    assert first.leases.count_app_call(now, minute_us) == 1
    seen: list[int] = []

    def second() -> None:
        # Another bucket of the same minute: a different row from the first counter's.
        seen.append(run_in_transaction(database, lambda uow: uow.leases.count_app_call(now + 5_000_000, minute_us)))

    other = threading.Thread(target=second)
    other.start()
    other.join(timeout=1.0)
    assert seen == [], "the second counter did not wait for the first"
    first.commit()
    first.__exit__(None, None, None)
    other.join(timeout=10.0)
    assert seen == [2]


def _queue(database: Database, entries: list[tuple[str, str, int]]) -> list[int]:
    """Outbox entries (tenant, state, available_us), each on a link of its own; their ids."""

    def fill(uow: UnitOfWork) -> list[int]:
        _connection(uow)
        ids = []
        for n, (tenant, state, available) in enumerate(entries):
            row = _outbox(_link(uow, n + 1), state)
            row.tenant_id, row.available_us = tenant, available
            ids.append(uow.outbox.add_outbox(True, row).id or 0)
        return ids

    return run_in_transaction(database, fill)


def test_the_tenants_with_ready_work_come_longest_waiting_first(database: Database) -> None:
    now = now_us()
    _queue(
        database,
        [
            ("t-a", OutboxState.READY, now - 5 * US),
            ("t-b", OutboxState.READY, now - 9 * US),  # waited longest
            ("t-b", OutboxState.READY, now - 1 * US),
            ("t-c", OutboxState.READY, now + 60 * US),  # backing off: not yet
            ("t-d", OutboxState.WAITING, now - 99 * US),  # waits for a dependency
            ("t-e", OutboxState.DONE, now - 99 * US),
            ("t-f", OutboxState.READY, now - 7 * US),
            ("t-f", OutboxState.DONE, now - 99 * US),
        ],
    )
    with UnitOfWork(database, write=False) as uow:
        assert uow.outbox.tenants_with_ready_work(now) == ["t-b", "t-f", "t-a"]
        assert uow.outbox.tenants_with_ready_work(now + 61 * US) == ["t-b", "t-f", "t-a", "t-c"]


def test_a_claim_takes_the_longest_available_entries_of_its_tenant_and_skips_claimed_ones(
    database: Database,
) -> None:
    now = now_us()
    ids = _queue(
        database,
        [
            ("t1", OutboxState.READY, now - 1 * US),
            ("t1", OutboxState.READY, now - 8 * US),  # accepted later, but back-off ended earlier
            ("t1", OutboxState.READY, now + 30 * US),  # backing off
            ("t2", OutboxState.READY, now - 9 * US),  # another tenant's
            ("t1", OutboxState.READY, now - 3 * US),
        ],
    )
    first = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 2, now, 600 * US))
    assert [r.id for r in first] == sorted([ids[1], ids[4]])
    rest = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 2, now, 600 * US))
    assert [r.id for r in rest] == [ids[0]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_claims_and_the_tenant_poll_read_an_index_in_order_on_sqlite(database: Database) -> None:
    """SQLite plans without statistics, so its plan is fixed by the schema: both queries must
    read `ix_outbox_ready` in order, with no sort of a tenant's queue and no read of every entry
    (each would grow with the backlog). PostgreSQL's plan depends on its statistics; the many-
    tenant bench measures both registries at 1,000 and 100,000 queued entries."""
    with statements_sent(database.write, database.read) as statements:
        run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 50, now_us(), 600 * US))
        with UnitOfWork(database, write=False) as uow:
            uow.outbox.tenants_with_ready_work(now_us())
    claim = next(s for s in statements if s[0].startswith("UPDATE outbox"))
    poll = next(s for s in statements if "WITH RECURSIVE" in s[0])
    with database.read.connect() as conn:
        for sql, parameters in (claim, poll):
            plan = query_plan(conn, sql, parameters)
            assert not any("TEMP B-TREE" in step for step in plan), plan
            reads = [step for step in plan if step.startswith(("SEARCH", "SCAN")) and " o " in f" {step} "]
            reads += [step for step in plan if step.startswith(("SEARCH outbox", "SCAN outbox"))]
            assert reads and all("ix_outbox_ready" in step or "PRIMARY KEY" in step for step in reads), plan


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_entries_named_by_id_are_read_by_primary_key_on_sqlite(database: Database) -> None:
    """Marking a call's entries uncertain, letting them go and reading them to apply the answers
    name them by id, and also test their state. Without statistics SQLite took the state test to
    an index of its own (`ix_outbox_done`, state first) and read every ready entry of every
    tenant to find the 50 of one call, in the transaction before each Xero call: a cost that grew
    with the whole backlog. Each must read only the entries it names, by primary key."""
    now = now_us()
    _queue(database, [(f"t{n % 3}", OutboxState.READY, now - US) for n in range(30)])
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 5, now, 600 * US))
    mine = [r.id for r in claimed]
    with statements_sent(database.write) as statements, UnitOfWork(database) as uow:
        # Left uncommitted: only the statements matter.
        assert uow.outbox.mark_uncertain({i: "hint" for i in mine}, now + 600 * US, "p", now) == len(mine)
        uow.outbox.stored_entries(mine)
        assert uow.outbox.unclaim(mine, "p") == len(mine)
    named = [(sql, parameters) for sql, parameters in statements if "outbox.id IN" in sql]
    assert len(named) == 3, [sql for sql, _ in statements]
    with database.read.connect() as conn:
        for sql, parameters in named:
            plan = query_plan(conn, sql, parameters)
            reads = [step for step in plan if step.startswith(("SEARCH outbox", "SCAN outbox"))]
            assert reads and all("INTEGER PRIMARY KEY" in step for step in reads), (sql, plan)


def _done_entries_created_at(database: Database, created: list[int]) -> list[int]:
    """Done entries, the n-th created at created[n] (in an order other than their ids')."""
    ids = _queue(database, [("t1", OutboxState.DONE, 0) for _ in created])
    table = OutboxRow.__table__  # type: ignore[attr-defined]
    with database.write.begin() as conn:
        for outbox_id, at in zip(ids, created, strict=True):
            conn.execute(table.update().where(table.c.id == outbox_id).values(create_us=at))
    return ids


def test_a_purge_deletes_the_oldest_done_entries_first_and_none_younger_than_the_cut(database: Database) -> None:
    ids = _done_entries_created_at(database, [40 * US, 10 * US, 30 * US, 20 * US, 99 * US])
    purge = partial(run_in_transaction, database)

    assert purge(lambda uow: uow.outbox.purge_done_outbox(50 * US, 2)) == 2
    with UnitOfWork(database, write=False) as uow:
        assert sorted(uow.outbox.outbox_by_ids(ids)) == sorted([ids[0], ids[2], ids[4]])
    assert purge(lambda uow: uow.outbox.purge_done_outbox(50 * US, 10)) == 2
    with UnitOfWork(database, write=False) as uow:
        assert sorted(uow.outbox.outbox_by_ids(ids)) == [ids[4]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_purge_reads_the_done_entries_in_index_order_on_sqlite(database: Database) -> None:
    """A batch of the purge must stop after its `limit` entries: ordered by id, SQLite read every
    expired done entry and sorted them for each batch, holding the writer (129 ms a batch with
    200,000 expired), so a large purge cost the square of its size."""
    _done_entries_created_at(database, [10 * US, 20 * US])
    with statements_sent(database.write) as statements:
        run_in_transaction(database, lambda uow: uow.outbox.purge_done_outbox(50 * US, 500))
    sql, parameters = next(s for s in statements if s[0].startswith("SELECT outbox.id"))
    with database.read.connect() as conn:
        plan = query_plan(conn, sql, parameters)
    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert any("ix_outbox_done" in step for step in plan), plan


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_records_asked_for_waiters_are_each_sought_in_the_wait_index_on_sqlite(database: Database) -> None:
    """Every transaction that applies answers asks which of the records it linked something
    waits for. Asked as a row-value IN, SQLite sought `ix_wait_record` by connection alone and
    read every wait of the connection (36 ms a call with 100,000 waiting, 1 ms with 100): each
    record must be sought by connection, kind and id."""
    waited = [("c1", RecordRef(1, n)) for n in range(3)] + [("c1", RecordRef(2, 7)), ("c2", RecordRef(1, 5))]
    with statements_sent(database.read) as statements, UnitOfWork(database, write=False) as uow:
        uow.outbox.records_with_waiters(waited)
    ((sql, parameters),) = [s for s in statements if "dependency_wait" in s[0]]
    with database.read.connect() as conn:
        plan = query_plan(conn, sql, parameters)
    reads = [step for step in plan if step.startswith(("SEARCH dependency_wait", "SCAN dependency_wait"))]
    assert reads and all("(connection_id=? AND kind=? AND record_id=?)" in step for step in reads), plan


def test_records_with_waiters_are_told_apart_by_connection_kind_and_id(database: Database) -> None:
    def wait(uow: UnitOfWork) -> None:
        _connection(uow)
        row = _outbox(_link(uow, 1), OutboxState.WAITING)
        uow.outbox.add_outbox(True, row)
        waits = [RecordRef(1, 10), RecordRef(2, 10), RecordRef(1, 11)]
        uow.outbox.add_waits(row.id or 0, "c1", waits)
        uow.outbox.add_waits(row.id or 0, "c2", [RecordRef(1, 12)])

    run_in_transaction(database, wait)
    asked = [("c1", RecordRef(k, i)) for k in (1, 2, 3) for i in (10, 11, 12)] + [("c2", RecordRef(1, 10))]
    asked += [("c2", RecordRef(1, 12)), ("c3", RecordRef(1, 10))]
    with UnitOfWork(database, write=False) as uow:
        assert uow.outbox.records_with_waiters(asked) == [
            ("c1", RecordRef(1, 10)),
            ("c1", RecordRef(1, 11)),
            ("c1", RecordRef(2, 10)),
            ("c2", RecordRef(1, 12)),
        ]
        assert uow.outbox.records_with_waiters([]) == []


def test_a_worker_ending_after_its_replacement_started_leaves_the_replacement_its_lease(
    database: Database,
) -> None:
    """A worker that hands its tenant back may still be finishing calls when a correction starts a
    replacement under the same holder name; its closing release must not void the replacement's
    lease, or the replacement's next call finds the lease gone (TENANT_BUSY)."""
    dispatcher = Dispatcher(database, cast(XeroClient, None), DispatcherSettings(), "poster-a")
    now = now_us()
    assert run_in_transaction(database, lambda uow: uow.leases.acquire_lease("t1", "poster-a", now, 30 * US))
    ending, replacement = object(), object()
    dispatcher._workers["t1"] = replacement  # type: ignore[assignment]

    dispatcher.hand_back("t1", ending)
    with UnitOfWork(database, write=False) as uow:
        lease = uow.leases.get_lease("t1")
        assert lease is not None and lease.expires_us > now_us()

    dispatcher.hand_back("t1", replacement)
    with UnitOfWork(database, write=False) as uow:
        lease = uow.leases.get_lease("t1")
        assert lease is not None and lease.expires_us == 0


def test_rows_preloaded_for_a_batch_are_read_again_without_sql(database: Database) -> None:
    """The session holds rows weakly: a preload whose rows were dropped at once made every later
    get run its own SELECT, about a hundred statements per Xero call."""
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 5)
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
        link_ids = [row.link_id for row in rows.values()]
        posting_ids = [row.posting_id for row in rows.values()]
        del rows
        uow.outbox.preload_outbox(ids)
        uow.links.preload_links(link_ids)
        uow.links.preload_postings(posting_ids)
        with statements_sent(database.read) as statements:
            assert all(uow.outbox.get_outbox(i) is not None for i in ids)
            assert all(uow.links.get_link_by_id(i) is not None for i in link_ids)
            assert all(uow.links.get_posting(p) is not None for p in posting_ids)
    assert statements == []


def test_a_bulk_update_sets_each_rows_columns_and_the_sessions_copies_show_them(database: Database) -> None:
    """Entries updated by primary key in one statement per set of columns; a row the session
    already held reads the new values (a stale copy would answer a later check wrongly)."""
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 3)

    run_in_transaction(
        database,
        lambda uow: uow.outbox.update_outbox(
            [
                {"id": ids[0], "state": OutboxState.DONE, "claimed_by": "p"},
                {"id": ids[1], "attempts": 4},
                {"id": ids[2], "claimed_by": "q", "state": OutboxState.DONE},
            ]
        ),
    )
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    assert [(rows[i].state, rows[i].claimed_by, rows[i].attempts) for i in ids] == [
        (OutboxState.DONE, "p", 0),
        (OutboxState.READY, "", 4),
        (OutboxState.DONE, "q", 0),
    ]

    def stale(uow: UnitOfWork) -> str:
        held = uow.outbox.outbox_by_ids(ids)[ids[1]]
        uow.outbox.update_outbox([{"id": ids[1], "claimed_by": "r"}])
        return held.claimed_by

    assert run_in_transaction(database, stale) == "r"


def test_a_bulk_update_keeps_a_change_the_session_had_pending_on_the_same_row(database: Database) -> None:
    """A transaction that changed an entry through the ORM and then updates other columns of it in
    bulk commits both: the bulk statement goes after the pending change (flushed first), and the
    session's copy it expires no longer holds that change unwritten."""
    ids = _queue(database, [("t1", OutboxState.READY, now_us())])

    def both(uow: UnitOfWork) -> None:
        row = uow.outbox.outbox_by_ids(ids)[ids[0]]
        row.attempts = 9
        row.claimed_by = "orm"
        uow.outbox.save(row)
        uow.outbox.update_outbox([{"id": ids[0], "claimed_by": "bulk"}])

    run_in_transaction(database, both)
    with UnitOfWork(database, write=False) as uow:
        row = uow.outbox.outbox_by_ids(ids)[ids[0]]
    assert (row.attempts, row.claimed_by) == (9, "bulk")


def test_a_bulk_update_of_many_rows_sets_nulls_booleans_numbers_and_text_by_key(database: Database) -> None:
    """On PostgreSQL a group of rows is one UPDATE from a VALUES list, whose columns must come out
    as the table's types whatever the values (all NULL, all booleans, text that looks like a
    number); rows not named keep theirs."""
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 4)
    run_in_transaction(
        database,
        lambda uow: uow.outbox.update_outbox([{"id": i, "uncertain": True, "lookup_hint": "x"} for i in ids]),
    )
    run_in_transaction(
        database,
        lambda uow: uow.outbox.update_outbox(
            [
                {"id": ids[0], "uncertain": False, "lookup_hint": "", "attempts": 2, "available_us": now + 5},
                {"id": ids[2], "uncertain": False, "lookup_hint": "12", "attempts": 7, "available_us": now + 9},
                {"id": ids[3], "uncertain": True, "lookup_hint": '["a"]', "attempts": 0, "available_us": 0},
            ]
        ),
    )
    links: dict[int, int] = {}
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
        links = {i: rows[i].link_id for i in ids}
    assert [(rows[i].uncertain, rows[i].lookup_hint, rows[i].attempts, rows[i].available_us) for i in ids] == [
        (False, "", 2, now + 5),
        (True, "x", 0, now),
        (False, "12", 7, now + 9),
        (True, '["a"]', 0, 0),
    ]
    run_in_transaction(
        database,
        lambda uow: uow.links.update_links([{"id": links[i], "last_error": None, "attempts": 3} for i in ids[:2]]),
    )
    with UnitOfWork(database, write=False) as uow:
        held = [uow.links.get_link_by_id(links[i]) for i in ids]
    assert [(link.last_error, link.attempts) for link in held if link is not None] == [
        (None, 3),
        (None, 3),
        (None, 0),
        (None, 0),
    ]


def test_a_bulk_update_of_a_group_refuses_what_one_row_would_and_lets_the_last_of_a_key_win(
    database: Database,
) -> None:
    """A group takes PostgreSQL's UPDATE from arrays, one row the plain UPDATE: both must treat
    the values alike. A value longer than its column is refused (an explicit cast to varchar(n)
    would cut it silently), 1 sets a boolean (SQLAlchemy's Boolean binds it; a text statement
    does not), and of two rows for one key the last wins, as in order."""
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 400)

    def update(rows: Sequence[Mapping[str, object]]) -> None:
        run_in_transaction(database, lambda uow: uow.outbox.update_outbox([dict(r) for r in rows]))

    if not database.is_sqlite:  # SQLite does not enforce VARCHAR lengths
        for group in (ids[:1], ids[:2]):
            with pytest.raises(DatabaseError):
                update([{"id": i, "claimed_by": "x" * 200} for i in group])
    update(
        [{"id": i, "attempts": 1, "uncertain": 1} for i in ids]
        + [{"id": i, "attempts": 2, "uncertain": 1} for i in ids]
    )
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    assert Counter((row.attempts, row.uncertain, row.claimed_by) for row in rows.values()) == {(2, True, ""): 400}


def test_a_batch_of_state_changes_reads_no_link_again_and_moves_links_postings_and_audit(database: Database) -> None:
    """Many links' transitions in a few statements: none of them a read of one link (a link
    expired by the first UPDATE and read again cost a SELECT per link, 14 per Xero call)."""
    ids = _queue(database, [("t1", OutboxState.READY, 0)] * 6)
    statements: list[Statement] = []

    def change(uow: UnitOfWork) -> list[int]:
        links = uow.links.links_by_ids([row.link_id for row in uow.outbox.outbox_by_ids(ids).values()])
        with statements_sent(database.write) as sent:
            uow.links.apply_transitions(
                [StateChange(link, Event.ACCEPTED, f"posting {link.posting_id}") for link in links.values()],
                "caller:test",
                now_us(),
            )
        statements.extend(sent)
        return sorted(links)

    link_ids = run_in_transaction(database, change)
    assert [sql.split()[0] for sql, _ in statements] == ["UPDATE", "UPDATE", "INSERT"]
    with UnitOfWork(database, write=False) as uow:
        links = uow.links.links_by_ids(link_ids)
        assert {link.state for link in links.values()} == {"pending"}
        assert {p.state for link in links.values() if (p := uow.links.get_posting(link.posting_id))} == {"pending"}
        assert [(a.event, a.to_state) for i in link_ids for a in uow.links.audit(i)] == [("accepted", "pending")] * 6


def test_entries_are_marked_uncertain_with_their_hints_and_their_claims_extended(database: Database) -> None:
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 3)
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 3, now, 60 * US))
    assert [c.id for c in claimed] == ids

    def mark(uow: UnitOfWork) -> int:
        return uow.outbox.mark_uncertain({ids[0]: "", ids[1]: '["a"]'}, now + 300 * US, "p", now + 1)

    assert run_in_transaction(database, mark) == 2
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    assert [(rows[i].uncertain, rows[i].lookup_hint, rows[i].lease_until_us) for i in ids] == [
        (True, "", now + 300 * US),
        (True, '["a"]', now + 300 * US),
        (False, "", now + 60 * US),
    ]


def test_only_entries_the_holders_live_claim_holds_are_marked_uncertain(database: Database) -> None:
    """Before a create call: an entry another poster claimed, one already done, and one whose
    claim ran out are not this poster's to send, and are left as they are."""
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 4)
    run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 4, now, 60 * US))
    run_in_transaction(
        database,
        lambda uow: uow.outbox.update_outbox(
            [
                {"id": ids[1], "claimed_by": "other"},
                {"id": ids[2], "state": OutboxState.DONE},
                {"id": ids[3], "lease_until_us": now - 1},
            ]
        ),
    )
    hints = dict.fromkeys(ids, "")
    marked = run_in_transaction(database, lambda uow: uow.outbox.mark_uncertain(hints, now + 300 * US, "p", now))
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    assert marked == 1
    assert [rows[i].uncertain for i in ids] == [True, False, False, False]


def test_a_lost_leases_claims_are_let_go_in_one_statement_and_only_the_holders(database: Database) -> None:
    """After a lost lease the worker lets its batch go: entries it still claims are claimable at
    once; one another poster claimed since, and entries it did not name, keep their claims."""
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 4)
    run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 4, now, 60 * US))
    run_in_transaction(database, lambda uow: uow.outbox.update_outbox([{"id": ids[1], "claimed_by": "other"}]))
    with statements_sent(database.write) as statements:
        let_go = run_in_transaction(database, lambda uow: uow.outbox.unclaim(ids[:3], "p"))
    assert let_go == 2
    verbs = [sql.split(maxsplit=1)[0] for sql, _ in statements]
    assert [verb for verb in verbs if verb != "BEGIN"] == ["UPDATE"]  # SQLite's BEGIN IMMEDIATE aside
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    assert [(rows[i].claimed_by, rows[i].lease_until_us) for i in ids] == [
        ("", 0),
        ("other", now + 60 * US),
        ("", 0),
        ("p", now + 60 * US),
    ]
    assert run_in_transaction(database, lambda uow: uow.outbox.unclaim([], "p")) == 0


def test_an_unclaim_under_a_jobs_claims_lets_go_under_any_end_the_job_may_hold(database: Database) -> None:
    """A job knows each entry's claim by its ends: the claim's, and the one a mark whose commit
    failed may have set. The unclaim lets go under either, and keeps an entry another job of the
    same poster claimed since (another end)."""
    now = now_us()
    ids = _queue(database, [("t1", OutboxState.READY, now)] * 3)
    run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 3, now, 60 * US))
    marked_end, other_job = now + 120 * US, now + 90 * US
    run_in_transaction(
        database,
        lambda uow: uow.outbox.update_outbox(
            [{"id": ids[0], "lease_until_us": marked_end}, {"id": ids[2], "lease_until_us": other_job}]
        ),
    )
    claims: dict[int, tuple[int, ...]] = {i: (now + 60 * US, marked_end) for i in ids}
    let_go = run_in_transaction(database, lambda uow: uow.outbox.unclaim(ids, "p", claims))
    with UnitOfWork(database, write=False) as uow:
        rows = uow.outbox.outbox_by_ids(ids)
    assert let_go == 2
    assert [(rows[i].claimed_by, rows[i].lease_until_us) for i in ids] == [("", 0), ("", 0), ("p", other_job)]
    # No end known (a work read without its claim): any of the holder's claims goes.
    assert run_in_transaction(database, lambda uow: uow.outbox.unclaim([ids[2]], "p", {ids[2]: ()})) == 1


def test_contacts_are_linked_once_each_and_an_existing_link_is_kept(database: Database) -> None:
    def row(connection_id: str, participant: int, contact: str, origin: str = "created") -> ContactLinkRow:
        number = f"AS-{participant}"
        return ContactLinkRow(
            connection_id=connection_id,
            participant_id=participant,
            contact_id=contact,
            contact_number=number,
            create_us=now_us(),
            origin=origin,
        )

    run_in_transaction(database, lambda uow: uow.contacts.add_contacts([row("c1", 7, "x-7")]))
    linked = run_in_transaction(
        database,
        lambda uow: uow.contacts.add_contacts(
            [row("c1", 7, "other"), row("c1", 8, "x-8", "contact_number"), row("c1", 8, "again"), row("c2", 7, "y-7")]
        ),
    )

    # Each participant's contact as linked: the link already there, else the first row's.
    assert linked == {("c1", 7): "x-7", ("c1", 8): "x-8", ("c2", 7): "y-7"}

    with UnitOfWork(database, write=False) as uow:
        assert uow.contacts.contacts_of("c1", [7, 8, 9]) == {7: "x-7", 8: "x-8"}
        assert uow.contacts.contacts_of("c2", [7]) == {7: "y-7"}
        row_8 = uow.contacts.get_contact("c1", 8)
        assert row_8 is not None and (row_8.contact_number, row_8.origin) == ("AS-8", "contact_number")
        assert uow.contacts.participant_of_contact("c1", "x-8") == 8


def test_a_batchs_contacts_are_read_in_one_query_by_connection_and_participant(database: Database) -> None:
    def fill(uow: UnitOfWork) -> None:
        uow.contacts.add_contacts(
            [
                ContactLinkRow(
                    connection_id=connection_id,
                    participant_id=participant,
                    contact_id=contact,
                    contact_number=f"AS-{participant}",
                    create_us=now_us(),
                )
                for connection_id, participant, contact in (("c1", 7, "x-7"), ("c1", 8, "x-8"), ("c2", 7, "y-7"))
            ]
        )

    run_in_transaction(database, fill)
    with statements_sent(database.read) as statements, UnitOfWork(database, write=False) as uow:
        found = uow.contacts.contacts_of("c1", [7, 8, 9])
    assert found == {7: "x-7", 8: "x-8"}  # c2's participant 7 is another firm's contact
    assert len([s for s, _ in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_a_read_tells_whether_a_claim_would_take_anything(database: Database) -> None:
    now = now_us()
    _queue(database, [("t1", OutboxState.READY, now + 30 * US), ("t2", OutboxState.WAITING, now - US)])
    with UnitOfWork(database, write=False) as uow:
        assert not uow.outbox.has_claimable("t1", now)  # backing off
        assert not uow.outbox.has_claimable("t2", now)  # waiting for a dependency
        assert uow.outbox.has_claimable("t1", now + 31 * US)
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim("t1", "p", 50, now + 31 * US, 600 * US))
    assert len(claimed) == 1
    with UnitOfWork(database, write=False) as uow:
        assert not uow.outbox.has_claimable("t1", now + 32 * US)  # claimed by a live claim


def test_a_write_unit_that_fails_to_open_leaves_the_sqlite_writer_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit whose session could not be made never reaches __exit__: it must give the process's
    one writer back itself, or every later write would wait for good."""
    database = open_database(f"sqlite:///{tmp_path / 'writer.db'}")
    try:
        real = Database.session

        def broken(self: Database, write: bool) -> Any:
            raise RuntimeError("no session")

        monkeypatch.setattr(Database, "session", broken)
        with pytest.raises(RuntimeError):
            UnitOfWork(database).__enter__()
        monkeypatch.setattr(Database, "session", real)
        assert database.write_turns is not None
        assert database.write_turns.acquire(timeout=1)
        database.write_turns.release()
    finally:
        database.dispose()


def _answered(database: Database, first: int, count: int) -> list[ElementResult]:
    """`count` pending links with claimed entries, and Xero's answer creating an invoice for each."""

    def fill(uow: UnitOfWork) -> list[ElementResult]:
        if uow.connections.get_connection("c1") is None:
            _connection(uow)
        results = []
        for record_id in range(first, first + count):
            link = _link(uow, record_id)
            uow.links.change_state(link, Event.ACCEPTED, "caller:test", now_us())
            row = _outbox(link, OutboxState.READY)
            row.claimed_by, row.lease_until_us = "p", now_us() + 600 * US
            entry = uow.outbox.add_outbox(True, row)
            invoice = f"00000000-0000-0000-0000-{record_id:012d}"
            element = {"InvoiceID": invoice, "Type": "ACCREC", "Status": "AUTHORISED", "Total": "11.00"}
            created = XeroObjectRef(ObjectType.INVOICE, invoice, "inv")
            documents = drift_snapshots.documents_of([created], element)
            results.append(ElementResult(entry.id or 0, created=created, documents=documents))
        return results

    return run_in_transaction(database, fill)


def test_applying_a_calls_answers_builds_no_orm_objects_of_its_entries_or_links(database: Database) -> None:
    """A call's answers are applied while SQLite's one writer is held. Loading each entry and
    link as an ORM object, and expiring it after the bulk UPDATEs, cost more than the SQL."""
    results = _answered(database, 300, 5)
    loaded: list[str] = []

    def count(target: Any, _context: Any) -> None:
        loaded.append(type(target).__name__)

    event.listen(LinkRow, "load", count)
    event.listen(OutboxRow, "load", count)
    try:
        run_in_transaction(database, lambda uow: apply_batch(uow, results, "p", "dispatcher:p", now_us()))
    finally:
        event.remove(LinkRow, "load", count)
        event.remove(OutboxRow, "load", count)
    assert loaded == []
    with UnitOfWork(database, write=False) as uow:
        links = [uow.links.get_link("c1", RecordRef(1, n)) for n in range(300, 305)]
        assert [(link.state, link.attempts) for link in links if link is not None] == [("linked", 1)] * 5
        entries = uow.outbox.outbox_by_ids([r.outbox_id for r in results])
        assert {(e.state, e.claimed_by) for e in entries.values()} == {(OutboxState.DONE, "")}
        assert len(uow.drift.snapshots_by_xero_ids("c1", [r.created.xero_id for r in results if r.created])) == 5


def test_applying_a_calls_answers_costs_the_same_statements_for_two_elements_as_for_ten(database: Database) -> None:
    """The links' bulk UPDATE expires the session's copies of them; anything that read a link after
    it (the drift snapshots did) reloaded each one with a SELECT of its own."""
    counts = []
    for first, size in ((100, 2), (200, 10)):
        results = _answered(database, first, size)

        def apply(uow: UnitOfWork, answered: list[ElementResult] = results) -> None:
            apply_batch(uow, answered, "p", "dispatcher:p", now_us())

        with statements_sent(database.write) as statements:
            run_in_transaction(database, apply)
        counts.append(len(statements))
        with UnitOfWork(database, write=False) as uow:
            linked = [uow.links.get_link("c1", RecordRef(1, n)) for n in range(first, first + size)]
            assert {link.state for link in linked if link is not None} == {"linked"} and None not in linked
            assert len(uow.drift.snapshots_by_xero_ids("c1", [r.created.xero_id for r in results if r.created])) == size
    assert counts[0] == counts[1], counts


def test_the_sagas_of_many_links_are_read_together_each_by_its_connection_record_and_generation(
    database: Database,
) -> None:
    """An unlink plan reads whether each link's generation is under correction in one read.
    Only the saga of the exact generation of the exact record under the connection is that
    link's: not another generation's, not another kind's record of the same number, not
    another connection's; and each comes with its own steps."""
    bill, payment = RecordRef(1, 70), RecordRef(2, 70)

    def saga(correction_id: str, connection_id: str, record: RecordRef, generation: int) -> None:
        row = CorrectionRow(
            correction_id=correction_id,
            connection_id=connection_id,
            kind=record.kind,
            record_id=record.id,
            generation=generation,
            intent=1,
            state=SagaState.FAILED.value,
            create_us=now_us(),
            update_us=now_us(),
        )
        step = Step(Action.UNLINK, Actor.XEROLINK, f"unlink {correction_id}", record, state=StepState.PENDING)
        with UnitOfWork(database) as uow:
            uow.corrections.add_saga(row, [step])
            uow.commit()

    saga("bill-g1", "c1", bill, 1)
    saga("bill-g2", "c1", bill, 2)
    saga("other-connection", "c2", payment, 1)
    with UnitOfWork(database, write=False) as uow:
        found = uow.corrections.sagas_of("c1", [(bill, 2), (payment, 1), (RecordRef(1, 71), 1)])
        none = uow.corrections.sagas_of("c1", [])

    assert {key: s.row.correction_id for key, s in found.items()} == {(bill, 2): "bill-g2"}
    assert [s.description for s in found[(bill, 2)].steps] == ["unlink bill-g2"]
    assert none == {}


def test_a_request_ids_claim_is_held_by_each_start_of_its_request_and_goes_with_the_last_hold(
    database: Database,
) -> None:
    """Starts of one request each hold the claim (the claim answers their own fingerprint);
    another request's start holds nothing (it is answered the holder's). A hold
    dropped leaves the claim to the others, the last one dropped frees the request_id, and a
    recorded backfill frees it whoever else holds it. Another request's fingerprint changes
    nothing of a claim it does not hold."""
    key = ("c1", "nightly")

    def claim(fingerprint: str) -> str:
        return run_in_transaction(database, lambda uow: uow.backfills.claim_request(*key, fingerprint, now_us()))

    def drop(fingerprint: str) -> None:
        run_in_transaction(database, lambda uow: uow.backfills.drop_hold(*key, fingerprint))

    def holders() -> list[tuple[str, int]]:
        with database.read.connect() as conn:
            rows = conn.execute(text("SELECT fingerprint, holders FROM backfill_claim")).all()
        return [(str(f), int(n)) for f, n in rows]

    assert claim("a") == "a" and claim("a") == "a"
    assert claim("b") == "a"
    assert holders() == [("a", 2)]
    drop("b")
    assert holders() == [("a", 2)]
    drop("a")
    assert holders() == [("a", 1)] and claim("b") == "a"
    drop("a")
    assert holders() == []
    drop("a")  # nothing held: nothing to drop
    assert claim("b") == "b" and holders() == [("b", 1)]

    assert claim("b") == "b"
    run_in_transaction(database, lambda uow: uow.backfills.release_request(*key, "a"))
    assert holders() == [("b", 2)]
    run_in_transaction(database, lambda uow: uow.backfills.release_request(*key, "b"))
    assert holders() == []
