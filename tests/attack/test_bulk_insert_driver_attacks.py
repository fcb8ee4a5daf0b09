"""Attacks on bulk.insert_rows since, on SQLite, rows that name every column go to the driver's
executemany of a hand-written INSERT (after a flush of the session), with the columns' bind
processors found once per table and columns; on bulk.expire_loaded's early return; and on the
statement counter of bench/answer_apply.py.

From outside, on both registries, with SQLAlchemy's Core INSERT of the same rows as the oracle:
values of every type the tables use (stored alike, or refused with the same exception class and
nothing kept), key order, a column named twice in differently-cased keys, an explicit id, the
composite key of xero_snapshot, the session's pending objects (flushed, or not, as Core's
statement would), a session without autoflush, a session bound per model, a rolled-back
SAVEPOINT, and the caches' first use by many threads at once. Each test states what must hold."""

from __future__ import annotations

import decimal
import enum
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import StatementError
from sqlmodel import Session
from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.drift_tables import XeroSnapshotRow
from xerolink_poster.adapters.repositories import bulk
from xerolink_poster.adapters.tables import AuditRow, LinkRow
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from bench import answer_apply, many_tenants
from tests.fixtures.bulk_rows import (
    AUDIT,
    SNAPSHOTS,
    Insert,
    Rows,
    audit_row,
    by_bulk,
    by_core,
    in_transaction,
    snapshot_row,
)
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection


class Step(enum.StrEnum):
    LINKED = "linked"


class Number(enum.IntEnum):
    SEVEN = 7


def _outcome(database: Database, insert: Insert, model: type[Any], rows: Rows) -> str:
    """Stored, or the class of what was raised (the transaction then rolled back)."""
    try:
        in_transaction(database, lambda session: insert(session, model, rows))
    except Exception as exc:
        return f"refused: {type(exc).__name__}"
    return "stored"


def _audit_stored(database: Database, link_id: int) -> list[tuple[Any, ...]]:
    """Each row of the link as stored, with each value's SQL type where the registry has one."""

    def read(session: Session) -> list[tuple[Any, ...]]:
        columns = [c for c in AUDIT.columns if c.name != "id"]
        return [
            tuple(r) for r in session.execute(select(*columns).where(AUDIT.c.link_id == link_id).order_by(AUDIT.c.id))
        ]

    stored = in_transaction(database, read)
    return [(r[1:], tuple(type(v).__name__ for v in r[1:])) for r in stored]


def _snapshots_stored(database: Database, prefix: str) -> list[tuple[Any, ...]]:
    def read(session: Session) -> list[tuple[Any, ...]]:
        where = SNAPSHOTS.c.xero_id.like(f"{prefix}%")
        rows = session.execute(select(*SNAPSHOTS.columns).where(where).order_by(SNAPSHOTS.c.xero_id))
        return [tuple(r)[2:] for r in rows]

    result: list[tuple[Any, ...]] = in_transaction(database, read)
    return result


# --- values of every type, against Core's INSERT of the same rows --------------------------------

AUDIT_VALUES: dict[str, dict[str, Any]] = {
    "bigint-beyond-2^63": {"time_us": 2**63},
    "bigint-below--2^63": {"time_us": -(2**63) - 1},
    "bigint-at-limit": {"time_us": 2**63 - 1},
    "decimal-for-bigint": {"time_us": decimal.Decimal("12")},
    "float-for-bigint": {"time_us": 1.5},
    "str-for-bigint": {"time_us": "12"},
    "word-for-bigint": {"time_us": "twelve"},
    "bool-for-bigint": {"time_us": True},
    "int-enum": {"time_us": Number.SEVEN},
    "str-enum": {"to_state": Step.LINKED},
    "none-for-not-null-text": {"detail": None},
    "none-for-not-null-bigint": {"time_us": None},
    "nul-characters": {"detail": "a\x00b\x00"},
    "unicode": {"detail": "€ 漢字 🧾 \u200f"},
    "lone-surrogate": {"detail": "a\ud800b"},
    "huge-text": {"detail": "x" * 3_000_000},
    "bytes-for-text": {"detail": b"\x00\xff"},
    "dict-for-text": {"detail": {"a": 1}},
    "too-long-for-varchar": {"to_state": "s" * 200},
    "explicit-id-none": {"id": None},
    "explicit-id": {"id": 900_001},
    "explicit-id-as-text": {"id": "900002"},
    "explicit-id-fractional": {"id": 900_003.5},
}


@pytest.mark.parametrize("case", sorted(AUDIT_VALUES))
def test_an_audit_value_of_any_type_ends_as_a_core_insert_of_it_ends(database: Database, case: str) -> None:
    """Stored alike (value and Python type read back), or refused with the same class and nothing kept."""
    fields = dict(AUDIT_VALUES[case])
    core_fields = dict(fields)
    if isinstance(fields.get("id"), int | float | str):  # the twin row needs an id of its own
        core_fields["id"] = int(float(fields["id"])) + 1000 if case != "explicit-id-fractional" else 901_003.5
    ours = _outcome(database, by_bulk, AuditRow, [audit_row(1), audit_row(1, **fields)])
    core = _outcome(database, by_core, AuditRow, [audit_row(2), audit_row(2, **core_fields)])
    assert ours == core
    assert _audit_stored(database, 1) == _audit_stored(database, 2)


SNAPSHOT_VALUES: dict[str, dict[str, Any]] = {
    "bool-true": {"active": True},
    "bool-false": {"active": False},
    "int-1-for-bool": {"active": 1},
    "int-2-for-bool": {"active": 2},
    "text-for-bool": {"active": "false"},
    "float-for-bool": {"active": 0.0},
    "int-enum-for-bool": {"active": Number.SEVEN},
    "none-for-bool": {"active": None},
    "none-for-key": {"xero_id": None},
    "bytes-for-text": {"document": b"{}"},
    "memoryview-for-text": {"document": memoryview(b"{}")},
}


@pytest.mark.parametrize("case", sorted(SNAPSHOT_VALUES))
def test_a_snapshot_value_of_any_type_ends_as_a_core_insert_of_it_ends(database: Database, case: str) -> None:
    """xero_snapshot (composite key, a Boolean): stored alike, or refused alike with nothing kept."""
    fields = SNAPSHOT_VALUES[case]
    ours = _outcome(database, by_bulk, XeroSnapshotRow, [snapshot_row("a-1"), {**snapshot_row("a-2"), **fields}])
    core = _outcome(database, by_core, XeroSnapshotRow, [snapshot_row("b-1"), {**snapshot_row("b-2"), **fields}])
    assert ours == core
    assert _snapshots_stored(database, "a-") == _snapshots_stored(database, "b-")


def test_rows_whose_keys_come_in_another_order_store_each_value_in_its_column(database: Database) -> None:
    """A row's dict order is not its columns' order: every value lands in the column it names."""
    first = audit_row(1, actor="first", detail="one")
    second = dict(reversed(list(audit_row(1, actor="second", detail="two").items())))
    in_transaction(database, lambda session: by_bulk(session, AuditRow, [first, second]))
    in_transaction(
        database, lambda session: by_core(session, AuditRow, [{**first, "link_id": 2}, {**second, "link_id": 2}])
    )
    ours, core = _audit_stored(database, 1), _audit_stored(database, 2)
    assert ours == core
    assert [r[0][1] for r in ours] == ["first", "second"]


def test_a_column_named_twice_in_differently_cased_keys_ends_as_core_ends(database: Database) -> None:
    """{"detail", "Detail"}: whatever Core does with the second key, insert_rows does the same."""
    ours = _outcome(database, by_bulk, AuditRow, [{**audit_row(1), "Detail": "shadow"}])
    core = _outcome(database, by_core, AuditRow, [{**audit_row(2), "Detail": "shadow"}])
    assert ours == core
    assert _audit_stored(database, 1) == _audit_stored(database, 2)


def test_a_row_whose_key_is_taken_leaves_none_of_the_rows(database: Database) -> None:
    """A duplicate key in the middle of the rows: IntegrityError, and the rows before it went too."""
    rows = [snapshot_row("k-1"), snapshot_row("k-2"), snapshot_row("k-1"), snapshot_row("k-3")]
    assert _outcome(database, by_bulk, XeroSnapshotRow, rows) == "refused: IntegrityError"
    assert _snapshots_stored(database, "k-") == []


# --- the session around the rows ----------------------------------------------------------------


def _pending_then_rows(database: Database, insert: Insert, link_id: int, autoflush: bool) -> list[str]:
    """An audit object added to the session, then rows inserted (with or without autoflush):
    the link's audit details in id order after commit."""

    def work(session: Session) -> None:
        session.add(AuditRow(**audit_row(link_id, detail="object")))
        if autoflush:
            insert(session, AuditRow, [audit_row(link_id, detail="row")])
        else:
            with session.no_autoflush:
                insert(session, AuditRow, [audit_row(link_id, detail="row")])

    in_transaction(database, work)
    return [str(r[0][-1]) for r in _audit_stored(database, link_id)]


@pytest.mark.parametrize("autoflush", [True, False], ids=["autoflush", "no_autoflush"])
def test_a_pending_object_of_the_same_table_is_numbered_as_with_core(database: Database, autoflush: bool) -> None:
    """The session's pending object and the rows are numbered in the order Core's INSERT gives
    them: flushed first where Core's statement would flush it, after the rows where it would not
    (inside session.no_autoflush Core's session.execute flushes nothing)."""
    ours = _pending_then_rows(database, by_bulk, 1, autoflush)
    core = _pending_then_rows(database, by_core, 2, autoflush)
    assert ours == core


def test_a_pending_object_that_cannot_be_written_is_no_concern_of_rows_inserted_without_autoflush(
    database: Database,
) -> None:
    """Inside no_autoflush, Core's INSERT leaves the session's pending objects alone: one the
    caller removes before commit (here, invalid: NOT NULL detail is None) never reaches the
    registry, and the rows are stored. insert_rows must not write it behind the caller's back."""

    def work(insert: Insert, link_id: int) -> Callable[[Session], None]:
        def run(session: Session) -> None:
            bad = AuditRow(**audit_row(link_id, detail=None))
            session.add(bad)
            with session.no_autoflush:
                insert(session, AuditRow, [audit_row(link_id, detail="row")])
            session.expunge(bad)

        return run

    core = _outcome(database, lambda s, _m, _r: work(by_core, 2)(s), AuditRow, [])
    ours = _outcome(database, lambda s, _m, _r: work(by_bulk, 1)(s), AuditRow, [])
    assert core == "stored"
    assert ours == core
    assert [r[0][-1] for r in _audit_stored(database, 1)] == ["row"]


def test_a_session_bound_per_model_inserts_as_core_does(database: Database) -> None:
    """A Session(binds={AuditRow: engine}) with no engine of its own: Core's INSERT finds the
    engine through the table; insert_rows must too, not fail to find a bind."""

    def insert(how: Insert, link_id: int) -> str:
        session = Session(binds={AuditRow: database.write})
        try:
            how(session, AuditRow, [audit_row(link_id)])
            session.commit()
        except Exception as exc:
            session.rollback()
            return f"refused: {type(exc).__name__}"
        finally:
            session.close()
        return "stored"

    assert insert(by_core, 2) == "stored"
    assert insert(by_bulk, 1) == "stored"
    assert len(_audit_stored(database, 1)) == 1


def test_rows_inserted_in_a_savepoint_rolled_back_are_gone_and_the_rest_stays(database: Database) -> None:
    """Rows inserted inside begin_nested and rolled back with it leave nothing; the rows of the
    outer transaction before and after it are kept, in their order."""

    def work(session: Session) -> None:
        bulk.insert_rows(session, AuditRow, [audit_row(1, detail="before")])
        savepoint = session.begin_nested()
        bulk.insert_rows(session, AuditRow, [audit_row(1, detail="inside"), audit_row(1, detail="inside too")])
        savepoint.rollback()
        bulk.insert_rows(session, AuditRow, [audit_row(1, detail="after")])

    in_transaction(database, work)
    assert [r[0][-1] for r in _audit_stored(database, 1)] == ["before", "after"]


def test_rows_refused_in_a_savepoint_leave_the_outer_transaction_usable(database: Database) -> None:
    """A refused row inside begin_nested: the error is the statement's, the savepoint rolls back,
    and the outer transaction's rows are committed, none of the refused batch's."""

    def work(session: Session) -> None:
        bulk.insert_rows(session, AuditRow, [audit_row(1, detail="outer")])
        with pytest.raises(StatementError), session.begin_nested():
            bulk.insert_rows(session, AuditRow, [audit_row(1, detail="ok"), audit_row(1, detail=None)])

    in_transaction(database, work)
    assert [r[0][-1] for r in _audit_stored(database, 1)] == ["outer"]


def test_bulk_update_with_only_another_models_objects_loaded_updates_and_expires_nothing_else(
    database: Database,
) -> None:
    """expire_loaded with an identity map of another model only: the update is stored, the other
    model's object is not expired, and a link loaded and changed is expired and shows the update."""
    with database.session(True) as session:

        def seed(uow: UnitOfWork) -> int:
            uow.connections.add_connection(unreachable_connection("c1", "t1"))
            return link_with_posting(uow, 1).id or 0

        link_id = run_in_transaction(database, seed)
        bulk.insert_rows(session, AuditRow, [audit_row(link_id)])
        audit = session.execute(select(AuditRow)).scalars().one()
        bulk.bulk_update(session, LinkRow, [{"id": link_id, "attempts": 9}])
        assert "detail" in audit.__dict__  # not expired: another model
        link = session.get(LinkRow, link_id)
        assert link is not None and link.attempts == 9
        link.state = "changed"  # pending change, then an update of another column
        bulk.bulk_update(session, LinkRow, [{"id": link_id, "attempts": 10}])
        assert (link.state, link.attempts) == ("changed", 10)
        session.commit()
    with database.session(False) as session:
        assert session.execute(text(f"SELECT state, attempts FROM link WHERE id = {link_id}")).one() == ("changed", 10)


# --- the caches' first use by many threads ------------------------------------------------------


def test_many_threads_first_using_a_fresh_column_set_each_store_their_rows(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caches emptied, twelve threads insert at once through the same table and columns (with an
    explicit-id-less full row, and with a Boolean): every thread's rows are stored, in its order."""
    monkeypatch.setattr(bulk, "_INSERTS", {})
    monkeypatch.setattr(bulk, "_BINDINGS", {})
    start = threading.Barrier(12)
    errors: list[BaseException] = []

    def insert(n: int) -> None:
        try:
            start.wait()
            rows = [audit_row(100 + n, detail=f"{n}-{i}") for i in range(20)]
            snapshots = [snapshot_row(f"t{n:02d}-{i:02d}", active=i % 2 == 0) for i in range(20)]

            def work(session: Session) -> None:
                bulk.insert_rows(session, AuditRow, rows)
                bulk.insert_rows(session, XeroSnapshotRow, snapshots)

            in_transaction(database, work)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for n in range(12):
        assert [r[0][-1] for r in _audit_stored(database, 100 + n)] == [f"{n}-{i}" for i in range(20)]
        assert [r[-3] for r in _snapshots_stored(database, f"t{n:02d}-")] == [i % 2 == 0 for i in range(20)]


# --- the bench's statement counter --------------------------------------------------------------


def test_the_bench_counts_a_statement_on_the_read_engine_once(database: Database) -> None:
    """statements_per_call counts each statement the registry runs once, whichever engine runs it
    (on PostgreSQL the read engine is an option engine of the write engine's pool)."""
    with answer_apply.counting_statements(database) as counted, database.session(False) as session:
        session.execute(text("SELECT 1")).all()
        session.commit()
    reads = counted[0]
    with answer_apply.counting_statements(database) as counted, database.session(True) as session:
        session.execute(text("SELECT 1")).all()
        session.commit()
    writes = counted[0]
    # The write session runs BEGIN IMMEDIATE through the cursor on SQLite; the read one BEGIN.
    assert reads == writes


def test_the_many_tenant_bench_counts_a_statement_on_the_read_engine_once(database: Database) -> None:
    """The drain's statements per Xero call count each statement once, reads included (the
    dispatcher's look-ups run on the read engine)."""
    counter = many_tenants.StatementCounter()
    counter.attach(database)
    totals = []
    for write in (False, True):
        counter.kinds.clear()
        with counter.counting(), database.session(write) as session:
            session.execute(text("SELECT 1")).all()
            session.commit()
        totals.append(sum(counter.kinds.values()))
    assert totals[0] == totals[1]
