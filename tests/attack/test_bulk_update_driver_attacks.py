"""Attacks on bulk.bulk_update, the UPDATE by primary key that applies Xero's answers (the outbox's
entries, the links and their postings), since it runs on SQLite as the driver's executemany of a
hand-written statement with the columns' bind processors cached per table and set of columns.

From outside, on both registries: every row's columns land on that row and no other; values of
every type the tables use are stored as SQLAlchemy's Core UPDATE stores them (the oracle here is
that Core statement, run on a twin row) and read back alike; mixed column sets, a key named twice,
the session's copies and its pending changes, statement listeners, rollbacks, errors, and the
statement cache's first use by many threads at once. Each test states what must hold."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import Boolean, Integer, LargeBinary, Table, bindparam, event, update
from sqlmodel import Session
from xerolink_poster.adapters.database import Database, DatabaseError, now_us
from xerolink_poster.adapters.repositories import bulk
from xerolink_poster.adapters.tables import LinkRow, OutboxRow, PostingRow
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer.ports import StateChange
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.registry_rows import link_with_posting, unreachable_connection

OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
LINKS: Table = LinkRow.__table__  # type: ignore[attr-defined]
POSTINGS: Table = PostingRow.__table__  # type: ignore[attr-defined]
Rows = list[dict[str, object]]
Stored = dict[object, tuple[tuple[str, object], ...]]


# --- the registry the attacks run on ------------------------------------------------------------


def _seed(database: Database, count: int) -> tuple[list[int], list[int]]:
    """`count` links (record ids 1..count, state ""), each with its posting and one ready outbox
    entry; the entries' ids and the links' ids, in the same order."""

    def fill(uow: UnitOfWork) -> tuple[list[int], list[int]]:
        uow.connections.add_connection(unreachable_connection("c1", "t1"))
        outbox_ids, link_ids = [], []
        now = now_us()
        for n in range(1, count + 1):
            link = link_with_posting(uow, n, decision=b"d")
            entry = OutboxRow(
                tenant_id="t1",
                connection_id="c1",
                link_id=link.id or 0,
                posting_id=f"p{n}",
                operations=b"ops",
                state=OutboxState.READY,
                available_us=now,
                create_us=now,
            )
            outbox_ids.append(uow.outbox.add_outbox(True, entry).id or 0)
            link_ids.append(link.id or 0)
        return outbox_ids, link_ids

    return run_in_transaction(database, fill)


def _stored(database: Database, table: Table, columns: Sequence[str] | None = None) -> Stored:
    """The table's rows as the driver returns them (no SQLAlchemy type in between), by key: each
    value with its Python type, so 1 and True, 1 and 1.0, b"1" and "1" stay apart."""
    (key,) = table.primary_key.columns
    names = [c.name for c in table.columns] if columns is None else list(columns)
    listed = ", ".join(f'"{c}"' for c in names)
    with database.read.connect() as conn:
        rows = conn.exec_driver_sql(f'SELECT "{key.name}", {listed} FROM "{table.name}"').all()
    return {
        row[0]: tuple((type(v).__name__, bytes(v) if isinstance(v, memoryview) else v) for v in row[1:]) for row in rows
    }


def _core_update(database: Database, table: Table, rows: Rows) -> None:
    """The oracle: SQLAlchemy Core's UPDATE by key, as bulk_update ran it before the change."""
    (key,) = table.primary_key.columns
    groups: dict[tuple[str, ...], Rows] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    with database.write.begin() as conn:
        for group in groups.values():
            conn.execute(
                update(table).where(key == bindparam("_key")),
                [{"_key": r[key.name], **{c: v for c, v in r.items() if c != key.name}} for r in group],
            )


def _write(database: Database, work: Callable[[UnitOfWork], object]) -> None:
    """One write unit, committed, never retried (run_in_transaction would run a failing one 5 times)."""
    with UnitOfWork(database) as uow:
        work(uow)
        uow.commit()


@pytest.fixture
def fresh_statement_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever module-level caches bulk.py keeps, empty: the next use of each column set is its
    first. (Setup only; the tests assert what is stored.)"""
    for name in ("_BY_KEY", "_FROM_ARRAYS", "_PROCESSORS"):
        if isinstance(getattr(bulk, name, None), dict):
            monkeypatch.setattr(bulk, name, {})
    yield


# --- every row's columns on exactly that row ------------------------------------------------------


def test_each_rows_columns_land_on_that_row_and_no_other(database: Database) -> None:
    """Rows with different column sets (groups of one and of many) and a key that matches nothing:
    each named row gets exactly its values, every other row and column stays as it was. Lost: an
    answer applied to the wrong entry (a positional slip between SET values and the key sends one
    entry's state to another, or a column's value to its neighbour)."""
    outbox_ids, _ = _seed(database, 8)
    before = _stored(database, OUTBOX)
    a, b, c, d, e, f, _g, _h = outbox_ids
    rows: Rows = [
        {"id": a, "state": OutboxState.DONE, "claimed_by": "", "attempts": 11},
        {"id": b, "attempts": 22},
        {"id": c, "claimed_by": "poster-c", "state": OutboxState.WAITING, "attempts": 33},
        {"id": d, "lease_until_us": 44, "available_us": 4444},
        {"id": e, "attempts": 55},
        {"id": f, "lease_until_us": 66, "available_us": 6666},
        {"id": 10**9, "attempts": 99},  # no such entry
    ]
    _write(database, lambda uow: uow.outbox.update_outbox(rows))

    names = [col.name for col in OUTBOX.columns]
    expected = {k: list(v) for k, v in before.items()}
    for row in rows:
        if row["id"] in expected:
            for column, value in row.items():
                stored = str(value) if isinstance(value, str) else value  # a StrEnum is stored as its value
                expected[row["id"]][names.index(column)] = (type(stored).__name__, stored)
    assert _stored(database, OUTBOX) == {k: tuple(v) for k, v in expected.items()}


def test_the_same_column_set_on_two_tables_updates_each_its_own_table(database: Database) -> None:
    """One transaction sets `attempts` on an outbox entry and on a link with the same numeric key,
    then the same column set on the other table again. Lost: a statement reused across tables (a
    cache keyed by columns alone) would write the link's attempts into the outbox, or back."""
    outbox_ids, link_ids = _seed(database, 3)
    shared = sorted(set(outbox_ids) & set(link_ids))
    assert shared, "the seed gives entries and links overlapping ids"
    key = shared[0]

    def both(uow: UnitOfWork) -> None:
        uow.outbox.update_outbox([{"id": key, "attempts": 7}])
        uow.links.update_links([{"id": key, "attempts": 8}])
        uow.outbox.update_outbox([{"id": i, "attempts": 70 + i} for i in outbox_ids])
        uow.links.update_links([{"id": i, "attempts": 80 + i} for i in link_ids])

    _write(database, both)
    outbox = _stored(database, OUTBOX, ["attempts"])
    links = _stored(database, LINKS, ["attempts"])
    assert {i: outbox[i][0][1] for i in outbox_ids} == {i: 70 + i for i in outbox_ids}
    assert {i: links[i][0][1] for i in link_ids} == {i: 80 + i for i in link_ids}


# --- values of every type, stored as Core stores them ------------------------------------------

# Each case: the table, then one value per column (set on every row of the group).
VALUE_CASES: list[tuple[str, Table, dict[str, object]]] = [
    (
        "booleans-and-extreme-integers",
        OUTBOX,
        {
            "uncertain": True,
            "alone": False,
            "attempts": 2**31 - 1,
            "available_us": 2**63 - 1,
            "lease_until_us": -(2**63),
        },
    ),
    ("booleans-as-ints-and-negatives", OUTBOX, {"uncertain": 1, "alone": 0, "attempts": -1, "available_us": 0}),
    (
        "strenum-members",
        OUTBOX,
        {"state": OutboxState.DONE, "claimed_by": LinkState.LINKED, "trace_context": OutboxState.WAITING},
    ),
    (
        "quotes-placeholders-unicode",
        OUTBOX,
        {
            "lookup_hint": 'O\'Brien "q" ; DROP TABLE outbox; -- ? :x %s $1',
            "claimed_by": "ünïcødé ✓ 🚀",
            "trace_context": "",
        },
    ),
    ("bytes-with-nul-and-quotes", OUTBOX, {"operations": b"\x00\xff'\"\\\n", "lookup_hint": "12"}),
    ("empty-bytes-and-long-text", OUTBOX, {"operations": b"", "lookup_hint": "x" * 20000}),
    ("bytearray", OUTBOX, {"operations": bytearray(b"\x01\x02\x03"), "lookup_hint": "NULL"}),
    ("null-text", LINKS, {"last_error": None, "attempts": 0}),
    (
        "link-json-and-boolean",
        LINKS,
        {"last_error": '{"code": "x"}', "xero_objects": "[]", "outcome_unknown": True, "generation": 3},
    ),
    ("posting-bytes-and-boolean", POSTINGS, {"decision": b"\x00", "duplicate": True, "state": LinkState.PENDING}),
]


@pytest.mark.parametrize("group", [1, 3], ids=["one-row", "three-rows"])
def test_values_of_every_column_type_are_stored_as_a_core_update_stores_them(database: Database, group: int) -> None:
    """Each case is applied through the repositories to `group` rows and through SQLAlchemy Core's
    UPDATE by key to `group` twin rows; the driver must return the same stored value and type for
    both, and the ORM must read the bulk rows back as the values given. Lost: booleans stored as
    text, bytes as text or hex, a StrEnum as its name, a large integer cut, a NULL as '' or 'None':
    a later check (still_ours, the claim's uncertain flag, a link's last_error) reads a wrong value."""
    outbox_ids, link_ids = _seed(database, 2 * group)
    mine: dict[str, list[object]] = {
        "outbox": list(outbox_ids[:group]),
        "link": list(link_ids[:group]),
        "posting": [f"p{n}" for n in range(1, group + 1)],
    }
    twins: dict[str, list[object]] = {
        "outbox": list(outbox_ids[group:]),
        "link": list(link_ids[group:]),
        "posting": [f"p{n}" for n in range(group + 1, 2 * group + 1)],
    }
    update_of: dict[str, Callable[[Rows], None]] = {
        "outbox": lambda rows: _write(database, lambda uow: uow.outbox.update_outbox(rows)),
        "link": lambda rows: _write(database, lambda uow: uow.links.update_links(rows)),
        # Postings change in bulk only in apply_transitions, which sets `state` alone: the other
        # columns straight through bulk_update, on a session of the write engine.
        "posting": lambda rows: _direct(database, PostingRow, rows),
    }
    failures: list[tuple[object, ...]] = []
    for case, table, values in VALUE_CASES:
        (key,) = table.primary_key.columns
        update_of[table.name]([{key.name: k, **values} for k in mine[table.name]])
        _core_update(database, table, [{key.name: k, **values} for k in twins[table.name]])
        stored = _stored(database, table, list(values))
        got = [stored[k] for k in mine[table.name]]
        want = [stored[k] for k in twins[table.name]]
        if got != want:
            failures.append((case, "stored", got[0], want[0]))
        with UnitOfWork(database, write=False) as uow:
            read = [_orm_row(uow, table, k) for k in mine[table.name]]
        for row in read:
            for column, value in values.items():
                expected = None if value is None else _read_as(table, column)(value)
                held = getattr(row, column)
                if held != expected or type(held) is not type(expected):
                    failures.append((case, column, held, expected))
    assert failures == []


def _read_as(table: Table, column: str) -> Callable[[Any], object]:
    """The Python type the ORM reads the column back as (SQLModel's AutoString is a decorator)."""
    column_type = table.c[column].type
    for kind, python_type in ((Boolean, bool), (LargeBinary, bytes), (Integer, int)):
        if isinstance(column_type, kind):
            return python_type
    return str


def _direct(database: Database, model: type[Any], rows: Rows) -> None:
    with Session(database.write) as session:
        bulk.bulk_update(session, model, rows)
        session.commit()


def _orm_row(uow: UnitOfWork, table: Table, key: object) -> Any:
    if table is OUTBOX:
        return uow.outbox.get_outbox(int(str(key)))
    if table is LINKS:
        return uow.links.get_link_by_id(int(str(key)))
    return uow.links.get_posting(str(key))


# --- a key named twice ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", [1, 3], ids=["one-key", "three-keys"])
def test_a_key_named_twice_with_the_same_columns_takes_the_last_rows_values(database: Database, group: int) -> None:
    """Three rows per key with the same columns, interleaved across keys: the last row of each key
    wins. Lost: a retried answer in the same call applied out of order (attempts going back)."""
    outbox_ids, _ = _seed(database, group)
    rows: Rows = [{"id": i, "attempts": n, "claimed_by": f"c{n}"} for n in (1, 2, 3) for i in outbox_ids]
    _write(database, lambda uow: uow.outbox.update_outbox(rows))
    stored = _stored(database, OUTBOX, ["attempts", "claimed_by"])
    assert {i: (stored[i][0][1], stored[i][1][1]) for i in outbox_ids} == {i: (3, "c3") for i in outbox_ids}


def test_a_key_named_twice_with_different_columns_ends_as_the_rows_say_in_order(database: Database) -> None:
    """Rows for one key with different column sets, applied as a caller reads them: each column
    ends with the value of the last row that names it. Lost: a state set by an earlier row in the
    call overwrites the later row's state, because rows are grouped by column set and the groups
    run in the order their first row appeared."""
    outbox_ids, _ = _seed(database, 1)
    (key,) = outbox_ids
    rows: Rows = [
        {"id": key, "state": OutboxState.WAITING, "attempts": 2},
        {"id": key, "state": OutboxState.DONE},
        {"id": key, "state": OutboxState.READY, "attempts": 5},
    ]
    _write(database, lambda uow: uow.outbox.update_outbox(rows))
    stored = _stored(database, OUTBOX, ["state", "attempts"])
    assert (stored[key][0][1], stored[key][1][1]) == ("ready", 5)


# --- the session's copies and its pending changes ------------------------------------------------


def test_the_sessions_copies_show_the_new_values_with_their_types(database: Database) -> None:
    """Entries and links the session already holds read the values just written, booleans as
    bools and NULL as None. Lost: a stale copy answers a later check in the same transaction
    (the entry still looks claimed, the link still shows its old error)."""
    outbox_ids, link_ids = _seed(database, 3)

    def work(uow: UnitOfWork) -> list[tuple[object, ...]]:
        entries = uow.outbox.outbox_by_ids(outbox_ids)
        links = uow.links.links_by_ids(link_ids)
        uow.outbox.update_outbox(
            [
                {"id": outbox_ids[0], "uncertain": True, "claimed_by": "x", "operations": b"\x00new"},
                {"id": outbox_ids[1], "uncertain": True, "claimed_by": "y", "operations": b"\x00new"},
                {"id": outbox_ids[2], "state": OutboxState.DONE},
            ]
        )
        uow.links.update_links([{"id": i, "last_error": None, "outcome_unknown": True} for i in link_ids])
        return [
            *(
                (entries[i].uncertain, entries[i].claimed_by, entries[i].operations, entries[i].state)
                for i in outbox_ids
            ),
            *((links[i].last_error, links[i].outcome_unknown) for i in link_ids),
        ]

    seen = run_in_transaction(database, work)
    assert seen == [
        (True, "x", b"\x00new", "ready"),
        (True, "y", b"\x00new", "ready"),
        (False, "", b"ops", "done"),
        *[(None, True)] * 3,
    ]
    assert [type(v[0]) for v in seen[:3]] == [bool, bool, bool]


def test_pending_orm_changes_before_a_bulk_update_are_committed_with_it(database: Database) -> None:
    """Changes made through the ORM and not yet flushed: on a row the call updates (other columns,
    and one column both touch), and on a row it does not. All are committed; where both set a
    column the bulk value, given later, wins; the session's copy shows it. Lost: an entry's
    attempts or claim written through the ORM silently dropped when its copy is expired."""
    outbox_ids, _ = _seed(database, 3)
    a, b, c = outbox_ids

    def work(uow: UnitOfWork) -> tuple[object, ...]:
        rows = uow.outbox.outbox_by_ids(outbox_ids)
        rows[a].attempts = 9
        rows[a].claimed_by = "orm"
        rows[b].lookup_hint = "orm-b"
        rows[c].attempts = 4
        uow.outbox.update_outbox([{"id": a, "claimed_by": "bulk"}, {"id": b, "claimed_by": "bulk"}])
        return rows[a].attempts, rows[a].claimed_by, rows[b].lookup_hint, rows[c].attempts

    seen = run_in_transaction(database, work)
    stored = _stored(database, OUTBOX, ["attempts", "claimed_by", "lookup_hint"])
    assert seen == (9, "bulk", "orm-b", 4)
    assert [tuple(v for _, v in stored[i]) for i in outbox_ids] == [
        (9, "bulk", ""),
        (0, "bulk", "orm-b"),
        (4, "", ""),
    ]


def test_a_call_whose_rows_hold_only_the_key_keeps_the_pending_orm_change_of_that_row(database: Database) -> None:
    """A row holding only its key sets nothing; the ORM change made to that entry earlier in the
    transaction must still be committed. Reproduction: change `attempts` on a held entry, call
    update_outbox([{"id": it}]), commit. Lost: the change, because the entry's copy is expired
    (discarding unflushed changes) while no statement of the call flushed the session first."""
    outbox_ids, _ = _seed(database, 2)
    a, b = outbox_ids

    def work(uow: UnitOfWork) -> None:
        rows = uow.outbox.outbox_by_ids(outbox_ids)
        rows[a].attempts = 9
        rows[b].claimed_by = "orm"
        uow.outbox.update_outbox([{"id": a}, {"id": b}])

    run_in_transaction(database, work)
    stored = _stored(database, OUTBOX, ["attempts", "claimed_by"])
    assert [tuple(v for _, v in stored[i]) for i in outbox_ids] == [(9, ""), (0, "orm")]


def test_apply_transitions_moves_links_and_postings_with_their_own_values(database: Database) -> None:
    """The dispatcher's path: one batch of transitions whose links carry different column sets
    (posted with objects, rejected with an error, plain), a pending ORM change on one link. Every
    link and posting gets its state and values, the ORM copies show them, the pending change is
    kept. Lost: a link posted but shown pending, an error stored on the wrong link, a posting
    left behind its link."""
    _, link_ids = _seed(database, 4)
    error = '{"code": "FAILED_PRECONDITION", "message": "Don\'t \\"quote\\" ü"}'

    def work(uow: UnitOfWork) -> list[tuple[object, ...]]:
        links = uow.links.links_by_ids(link_ids)
        links[link_ids[3]].fingerprint = "e" * 64  # pending, not flushed
        now = now_us()
        uow.links.apply_transitions(
            [
                StateChange(links[link_ids[0]], Event.ACCEPTED, "a", {"xero_objects": '[{"x": 1}]', "attempts": 1}),
                StateChange(links[link_ids[1]], Event.ACCEPTED, "b", {"attempts": 2, "last_error": error}),
                StateChange(links[link_ids[2]], Event.ACCEPTED, "c", {"outcome_unknown": True}),
                StateChange(links[link_ids[3]], Event.ACCEPTED, "d"),
            ],
            "dispatcher:test",
            now,
        )
        return [
            (links[i].state, links[i].attempts, links[i].last_error, links[i].xero_objects, links[i].outcome_unknown)
            for i in link_ids
        ]

    seen = run_in_transaction(database, work)
    expected = [
        ("pending", 1, None, '[{"x": 1}]', False),
        ("pending", 2, error, "[]", False),
        ("pending", 0, None, "[]", True),
        ("pending", 0, None, "[]", False),
    ]
    assert seen == expected
    with UnitOfWork(database, write=False) as uow:
        links = uow.links.links_by_ids(link_ids)
        stored = [
            (links[i].state, links[i].attempts, links[i].last_error, links[i].xero_objects, links[i].outcome_unknown)
            for i in link_ids
        ]
        postings = [p.state for n in range(1, 5) if (p := uow.links.get_posting(f"p{n}")) is not None]
        fingerprint = links[link_ids[3]].fingerprint
    assert stored == expected
    assert postings == ["pending"] * 4
    assert fingerprint == "e" * 64


# --- listeners, rollbacks, errors ---------------------------------------------------------------


def test_statement_listeners_see_every_update_with_its_values(database: Database) -> None:
    """A before_cursor_execute listener on the write engine (statement counting, tracing, audit)
    sees one UPDATE per column set, naming the table, with the values it binds. Lost: metrics and
    traces that no longer count or show the dispatcher's writes."""
    outbox_ids, _ = _seed(database, 6)
    seen: list[tuple[str, str]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, repr(parameters)))

    rows: Rows = [
        *({"id": i, "claimed_by": "marker-one"} for i in outbox_ids[:2]),
        *({"id": i, "attempts": 41, "lookup_hint": "marker-two"} for i in outbox_ids[2:4]),
        *({"id": i, "state": OutboxState.DONE, "uncertain": True} for i in outbox_ids[4:]),
    ]

    def work(uow: UnitOfWork) -> None:
        uow.outbox.outbox_by_ids(outbox_ids)  # the session flushes nothing else during the call
        event.listen(database.write, "before_cursor_execute", listen)
        try:
            uow.outbox.update_outbox(rows)
        finally:
            event.remove(database.write, "before_cursor_execute", listen)

    _write(database, work)
    updates = [(sql, params) for sql, params in seen if sql.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 3, seen
    assert all("outbox" in sql for sql, _ in updates)
    assert any("marker-one" in params for _, params in updates)
    assert any("marker-two" in params for _, params in updates)


def test_a_rolled_back_transaction_leaves_nothing_of_a_bulk_update(database: Database) -> None:
    """A unit of work that updated in bulk and then failed writes nothing, on any of the three
    tables. Lost: half an answer applied (an entry done, its link still pending) after a crash of
    the transaction, if the statement went out on a connection of its own."""
    outbox_ids, link_ids = _seed(database, 3)
    before = [_stored(database, t) for t in (OUTBOX, LINKS, POSTINGS)]

    def work(uow: UnitOfWork) -> None:
        uow.outbox.update_outbox([{"id": i, "state": OutboxState.DONE, "attempts": 5} for i in outbox_ids])
        links = uow.links.links_by_ids(link_ids)
        uow.links.apply_transitions(
            [StateChange(link, Event.ACCEPTED, "x", {"attempts": 1}) for link in links.values()], "t", now_us()
        )
        raise RuntimeError("the transaction fails after the bulk updates")

    with pytest.raises(RuntimeError):
        run_in_transaction(database, work)
    assert [_stored(database, t) for t in (OUTBOX, LINKS, POSTINGS)] == before


ERROR_CASES: list[tuple[str, str, Callable[[list[int], list[int], int], Rows]]] = [
    ("not-null", "outbox", lambda o, _l, g: [{"id": i, "operations": None} for i in o[1 : 1 + g]]),
    ("unique-key", "link", lambda _o, links, g: [{"id": i, "record_id": 1} for i in links[1 : 1 + g]]),
    ("unknown-column", "outbox", lambda o, _l, g: [{"id": i, "no_such_column": 1} for i in o[1 : 1 + g]]),
    ("integer-too-large", "outbox", lambda o, _l, g: [{"id": i, "available_us": 2**64} for i in o[1 : 1 + g]]),
    ("text-for-a-boolean", "outbox", lambda o, _l, g: [{"id": i, "uncertain": "false"} for i in o[1 : 1 + g]]),
    ("text-for-bytes", "outbox", lambda o, _l, g: [{"id": i, "operations": "not bytes"} for i in o[1 : 1 + g]]),
]


@pytest.mark.parametrize("group", [1, 3], ids=["one-row", "three-rows"])
@pytest.mark.parametrize(("case", "table", "bad"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_a_refused_row_raises_and_the_call_leaves_nothing(
    database: Database, case: str, table: str, bad: Callable[[list[int], list[int], int], Rows], group: int
) -> None:
    """A call whose first column set applies cleanly and whose second the database (or the table)
    refuses: it raises, and after the rollback nothing of the call is stored. Lost: a write that
    silently succeeds in part, or a refused value silently dropped or stored cut."""
    outbox_ids, link_ids = _seed(database, 4)
    before = [_stored(database, t) for t in (OUTBOX, LINKS)]
    rows: Rows = [
        {"id": (outbox_ids if table == "outbox" else link_ids)[0], "attempts": 77},
        *bad(outbox_ids, link_ids, group),
    ]

    def work(uow: UnitOfWork) -> None:
        (uow.outbox.update_outbox if table == "outbox" else uow.links.update_links)(rows)

    with pytest.raises(Exception):  # noqa: B017 - any error; its class is the next test's
        _write(database, work)
    assert [_stored(database, t) for t in (OUTBOX, LINKS)] == before, case


REFUSED_VALUES: list[tuple[str, str, object]] = [
    ("unknown-column", "no_such_column", 1),
    ("text-for-a-boolean", "uncertain", "false"),
]


@pytest.mark.parametrize("group", [1, 3], ids=["one-row", "three-rows"])
@pytest.mark.parametrize(("case", "column", "value"), REFUSED_VALUES, ids=[c[0] for c in REFUSED_VALUES])
def test_a_value_the_columns_type_refuses_raises_the_registrys_database_error(
    database: Database, case: str, column: str, value: object, group: int
) -> None:
    """A column the table lacks, "false" for a boolean: refused with the registry's DatabaseError
    (SQLAlchemyError), as SQLAlchemy's Core UPDATE refused them and as a single row on PostgreSQL
    still does, and nothing is stored. Lost: callers that handle the registry's errors (gate.py,
    posting.py catch DatabaseError) meet a bare KeyError/TypeError instead. (Text for bytes is
    left out: psycopg raises a bare TypeError for it even through Core.)"""
    outbox_ids, _ = _seed(database, group)
    before = _stored(database, OUTBOX)
    rows: Rows = [{"id": i, column: value} for i in outbox_ids]
    with pytest.raises(DatabaseError):
        _write(database, lambda uow: uow.outbox.update_outbox(rows))
    assert _stored(database, OUTBOX) == before, case


# --- the statement cache's first use by many threads ---------------------------------------------


@pytest.mark.usefixtures("fresh_statement_cache")
def test_many_threads_first_using_column_sets_at_once_each_store_their_own_values(database: Database) -> None:
    """Eight threads, released together, each apply its own rows on a session of its own with
    column sets none has used yet (several threads sharing each set, on two tables): every row
    ends with its thread's values. Lost: a statement or list of bind processors half-built by one thread and used by
    another, sending values to the wrong columns."""
    threads_count, per_thread = 8, 3
    outbox_ids, link_ids = _seed(database, threads_count * per_thread)
    column_sets: list[tuple[str, ...]] = [
        ("attempts", "lease_until_us"),
        ("claimed_by", "lookup_hint", "uncertain"),
        ("alone", "attempts", "trace_context"),
        ("available_us", "claimed_by"),
    ]
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def value(column: str, n: int) -> object:
        if column in {"uncertain", "alone"}:
            return n % 2 == 1
        if column in {"claimed_by", "lookup_hint", "trace_context"}:
            return f"{column}-{n}"
        return 1000 + n

    def plan(t: int) -> tuple[Rows, Rows]:
        columns = column_sets[t % len(column_sets)]
        mine = range(t * per_thread, (t + 1) * per_thread)
        entries: Rows = [{"id": outbox_ids[n], **{c: value(c, n) for c in columns}} for n in mine]
        links: Rows = [{"id": link_ids[n], "generation": 100 + n, "fingerprint": f"{t}:{n}"} for n in mine]
        return entries, links

    def run(t: int) -> None:
        entries, links = plan(t)
        try:
            barrier.wait(timeout=30)

            # Sessions of their own, not units of work: on SQLite those take the one writer's turn
            # in this process one at a time, and the statement would never be built concurrently.
            with Session(database.write) as session:
                bulk.bulk_update(session, OutboxRow, entries)
                bulk.bulk_update(session, LinkRow, links)
                session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    with UnitOfWork(database, write=False) as uow:
        entries_read = uow.outbox.outbox_by_ids(outbox_ids)
        links_read = uow.links.links_by_ids(link_ids)
        got = []
        want = []
        for t in range(threads_count):
            entries, links = plan(t)
            for row in entries:
                got.append({c: getattr(entries_read[int(str(row["id"]))], c) for c in row})
                want.append(row)
            for row in links:
                got.append({c: getattr(links_read[int(str(row["id"]))], c) for c in row})
                want.append(row)
    assert got == want
