"""bulk.insert_rows, the multi-row INSERT of audit rows, drift snapshots, postings and waits. On
SQLite, rows that name every column go to the driver's executemany of a hand-written statement;
on both registries, what is stored, refused or flushed must be what SQLAlchemy's Core INSERT of
the same rows does. The oracle in each test is that Core statement, run on twin rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session
from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.drift_tables import XeroSnapshotRow
from xerolink_poster.adapters.tables import AuditRow, LinkRow
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

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


def _without(row: dict[str, Any], column: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != column}


def _stored(session: Session, table: Table, where: Any) -> list[tuple[Any, ...]]:
    """The rows as stored, without the numbered id, in insertion order."""
    columns = [c for c in table.columns if c is not table.autoincrement_column]
    order = table.autoincrement_column if table.autoincrement_column is not None else table.c.xero_id
    return [tuple(r) for r in session.execute(select(*columns).where(where).order_by(order))]


def _outcome(database: Database, insert: Insert, model: type[Any], rows: Rows) -> str:
    """What inserting `rows` did: stored, or the class of the error it raised (and nothing kept)."""
    try:
        in_transaction(database, lambda session: insert(session, model, rows))
    except StatementError as exc:
        return f"refused: {type(exc).__name__}"
    return "stored"


def test_rows_naming_every_column_are_stored_as_a_core_insert_stores_them(database: Database) -> None:
    in_transaction(database, lambda session: by_bulk(session, AuditRow, [audit_row(1), audit_row(2, detail="")]))
    in_transaction(database, lambda session: by_core(session, AuditRow, [audit_row(101), audit_row(102, detail="")]))
    in_transaction(
        database,
        lambda session: by_bulk(session, XeroSnapshotRow, [snapshot_row("a"), snapshot_row("b", active=False)]),
    )
    in_transaction(
        database,
        lambda session: by_core(session, XeroSnapshotRow, [snapshot_row("x"), snapshot_row("y", active=False)]),
    )

    def read(session: Session) -> tuple[Sequence[Any], ...]:
        return (
            _stored(session, AUDIT, AUDIT.c.link_id < 100),
            _stored(session, AUDIT, AUDIT.c.link_id > 100),
            _stored(session, SNAPSHOTS, SNAPSHOTS.c.xero_id.in_(["a", "b"])),
            _stored(session, SNAPSHOTS, SNAPSHOTS.c.xero_id.in_(["x", "y"])),
        )

    ours, core, our_snapshots, core_snapshots = in_transaction(database, read)
    assert [r[1:] for r in ours] == [r[1:] for r in core]  # all but link_id, which differs by 100
    assert [r[0] + 100 for r in ours] == [r[0] for r in core]
    assert len(ours) == 2 and ours[0][5] == "linked" and ours[1][6] == ""
    assert [r[2:] for r in our_snapshots] == [r[2:] for r in core_snapshots]
    assert [r[-3] for r in our_snapshots] == [True, False]


def test_rows_that_leave_a_column_to_its_default_get_it(database: Database) -> None:
    partial = _without(audit_row(5), "from_state")
    in_transaction(database, lambda session: by_bulk(session, AuditRow, [partial]))
    (stored,) = in_transaction(database, lambda session: _stored(session, AUDIT, AUDIT.c.link_id == 5))
    assert stored[4] == ""  # from_state: its default


# Each case's rows, on keys moved by `at` so our insert and Core's do not meet.
ODD_ROWS: dict[str, tuple[type[Any], Callable[[int], Rows]]] = {
    # A Boolean given the text "false" (true as Python sees it).
    "text-for-boolean": (XeroSnapshotRow, lambda at: [snapshot_row(f"s{at}", active="false")]),
    # The same in a row of several (PostgreSQL takes several rows as one array a column).
    "text-for-boolean-among-rows": (
        XeroSnapshotRow,
        lambda at: [snapshot_row(f"v{at}"), snapshot_row(f"w{at}", active="false")],
    ),
    # A Boolean given 1 and 0, as a driver might hand them back.
    "numbers-for-boolean": (
        XeroSnapshotRow,
        lambda at: [snapshot_row(f"t{at}", active=1), snapshot_row(f"u{at}", active=0)],
    ),
    # A later row that leaves out a column the first one names.
    "row-missing-a-column": (AuditRow, lambda at: [audit_row(at + 1), _without(audit_row(at + 2), "detail")]),
    # A later row that names a column the first one leaves out.
    "row-with-an-extra-column": (AuditRow, lambda at: [_without(audit_row(at + 3), "detail"), audit_row(at + 4)]),
    # A column the table does not have.
    "unknown-column": (AuditRow, lambda at: [audit_row(at + 5, colour="red")]),
    # The numbered id given by the caller.
    "id-given": (AuditRow, lambda at: [audit_row(at + 6, id=at + 6)]),
}


@pytest.mark.parametrize("case", sorted(ODD_ROWS))
def test_odd_rows_end_as_a_core_insert_of_them_ends(database: Database, case: str) -> None:
    model, rows = ODD_ROWS[case]
    table: Table = model.__table__
    ours, core = _outcome(database, by_bulk, model, rows(0)), _outcome(database, by_core, model, rows(1000))
    assert ours == core
    stored = in_transaction(
        database,
        lambda session: [
            _stored(session, table, table.c.link_id < 1000 if model is AuditRow else ~table.c.xero_id.like("%1000")),
            _stored(session, table, table.c.link_id >= 1000 if model is AuditRow else table.c.xero_id.like("%1000")),
        ],
    )
    assert len(stored[0]) == len(stored[1]) == (len(rows(0)) if ours == "stored" else 0)


def test_a_row_whose_key_is_taken_raises_the_registrys_integrity_error(database: Database) -> None:
    in_transaction(database, lambda session: by_bulk(session, XeroSnapshotRow, [snapshot_row("dup")]))
    with pytest.raises(IntegrityError):
        in_transaction(
            database, lambda session: by_bulk(session, XeroSnapshotRow, [snapshot_row("ok"), snapshot_row("dup")])
        )
    kept = in_transaction(database, lambda session: _stored(session, SNAPSHOTS, SNAPSHOTS.c.connection_id == "c1"))
    assert [r[1] for r in kept] == ["dup"]  # the transaction's other row went with it


def test_the_sessions_pending_changes_are_written_before_the_rows(database: Database) -> None:
    def seed(uow: UnitOfWork) -> int:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        return link_with_posting(uow, 1).id or 0

    link_id = run_in_transaction(database, seed)

    def change_then_insert(insert: Insert, state: str) -> Callable[[Session], str]:
        def work(session: Session) -> str:
            link = session.get(LinkRow, link_id)
            assert link is not None
            link.state = state  # pending in the session, not yet written
            insert(session, AuditRow, [audit_row(link_id)])
            # What the registry holds now, in this transaction, asked by SQL past the session.
            sql = f"SELECT state FROM link WHERE id = {link_id}"
            return str(session.connection().exec_driver_sql(sql).scalar())

        return work

    core_sees = in_transaction(database, change_then_insert(by_core, "core"))
    ours_sees = in_transaction(database, change_then_insert(by_bulk, "ours"))
    # Whatever Core does about the pending change, the bulk insert does the same.
    assert (ours_sees == "ours") == (core_sees == "core")


def test_rows_are_numbered_in_the_order_given(database: Database) -> None:
    """An audit trail is read in id order: one INSERT of many rows numbers them as given."""
    details = [f"step {n}" for n in (5, 3, 9, 1, 7, 2, 8, 0, 6, 4)]
    in_transaction(database, lambda session: by_bulk(session, AuditRow, [audit_row(1, detail=d) for d in details]))
    stored = in_transaction(database, lambda session: _stored(session, AUDIT, AUDIT.c.link_id == 1))
    assert [row[-1] for row in stored] == details
