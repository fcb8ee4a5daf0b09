"""Attacks on `plan_hints.tested_only`, the construct that writes a WHERE term's column as
`+column` on SQLite (its documented way to keep a term off any index) and as the bare column
elsewhere, and on its one use: the state test of `SqlOutboxRepository.mark_uncertain`, the UPDATE
run before every create call, so SQLite finds the call's entries by primary key instead of
reading `ix_outbox_done (state=?)`, every ready entry of every tenant.

From outside, on both registries: the mark must take exactly the rows the plain state test would
(every kind of entry a batch may name, and states stored as SQLite lets them be stored); its
parameters must reach the sqlite3 and psycopg drivers as the column's type binds them; the
construct must compile per dialect and key the statement cache by its column; and, on a
registry with a backlog, every outbox statement that names entries by id must read them by
INTEGER PRIMARY KEY (also once ANALYZE has run). Then, as a careless caller of a helper meant
for reuse: an expression or a column that is not text is refused, and a number compared with the
text column matches what the unhinted test matches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import ColumnClause, ColumnElement, Table, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import default
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories import outbox as outbox_repository
from xerolink_poster.adapters.repositories.plan_hints import tested_only
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.outbox import ready_row
from tests.fixtures.statements import Statement, query_plan, statements_sent

US = 1_000_000
TENANT = "t1"
HOLDER = "poster-a"
OTHER = "poster-b"
OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
LINKS: Table = LinkRow.__table__  # type: ignore[attr-defined]


# -- the registry as the statements find it ----------------------------------------------------------


def _entry(n: int, now: int, **columns: Any) -> dict[str, Any]:
    return {**ready_row(TENANT, "c1", n, 0, now), "state": OutboxState.READY.value, **columns}


def _insert(database: Database, rows: list[dict[str, Any]]) -> list[int]:
    ids: list[int] = run_in_transaction(database, lambda uow: uow.outbox.insert_outbox(rows, returning_ids=True))
    return ids


def _columns(database: Database, ids: list[int]) -> dict[int, tuple[Any, ...]]:
    """Every column of the entries, as stored (a state stored as a blob stays bytes)."""
    with database.read.connect() as conn:
        rows = conn.execute(select(OUTBOX).where(OUTBOX.c.id.in_(ids)))
        return {int(row.id): tuple(row) for row in rows}


def _mark(database: Database, hints: dict[int, str], until: int, now: int, holder: str = HOLDER) -> int:
    marked: int = run_in_transaction(database, lambda uow: uow.outbox.mark_uncertain(hints, until, holder, now))
    return marked


def _marks(statements: list[Statement]) -> list[Statement]:
    return [(sql, p) for sql, p in statements if sql.startswith("UPDATE outbox SET") and "uncertain" in sql]


def _named_ids(parameters: Any) -> list[int]:
    """The ids a mark's expanded IN binds: psycopg's ids_1.., or sqlite3's positions between the
    three SET values and the holder, state and time."""
    if isinstance(parameters, dict):
        return [v for k, v in parameters.items() if k.startswith("ids_")]
    return list(parameters[3:-3])


def _bound_values(parameters: Any) -> list[Any]:
    return list(parameters.values()) if isinstance(parameters, dict) else list(parameters)


# Every kind of entry a batch's ids may name, as stored at `now`, each with the states SQLite and
# PostgreSQL both store; the names of those the mark must take.
def _kinds(now: int) -> dict[str, dict[str, Any]]:
    live = now + 60 * US
    mine = {"claimed_by": HOLDER, "lease_until_us": live}
    return {
        "mine": mine,
        "mine, last microsecond": {"claimed_by": HOLDER, "lease_until_us": now},
        "mine, run out": {"claimed_by": HOLDER, "lease_until_us": now - 1},
        "another poster's": {"claimed_by": OTHER, "lease_until_us": live},
        "a holder named like mine": {"claimed_by": HOLDER + " ", "lease_until_us": live},
        "voided": {"claimed_by": "", "lease_until_us": 0},
        "done, mine": {**mine, "state": OutboxState.DONE.value},
        "waiting, mine": {**mine, "state": OutboxState.WAITING.value},
        "upper case state, mine": {**mine, "state": "READY"},
        "state with a trailing space, mine": {**mine, "state": "ready "},
        "empty state, mine": {**mine, "state": ""},
        "mine, another tenant's": {**mine, "tenant_id": "t2"},
        "mine, uncertain already": {**mine, "uncertain": True, "lookup_hint": "old"},
    }


MARKED = {"mine", "mine, last microsecond", "mine, another tenant's", "mine, uncertain already"}


def _plain_mark_would_take(database: Database, ids: list[int], holder: str, now: int) -> set[int]:
    """The oracle: the rows the statement's WHERE selects with the state tested as the column
    itself (the statement before the change), read without writing."""
    query = select(OUTBOX.c.id).where(
        OUTBOX.c.id.in_(ids),
        OUTBOX.c.claimed_by == holder,
        OUTBOX.c.state == OutboxState.READY,
        OUTBOX.c.lease_until_us >= now,
    )
    with database.read.connect() as conn:
        return {int(i) for i in conn.execute(query).scalars()}


# -- 1. what the mark takes ----------------------------------------------------------------------------


def test_a_mark_takes_exactly_the_rows_the_plain_state_test_takes(database: Database) -> None:
    """A batch naming every kind of entry (states other than ready, including 'READY', 'ready '
    and '', other holders, a claim run out, another tenant's, one already uncertain) and a missing
    id, each with a hint of its own: the rows marked must be the rows the unhinted WHERE selects,
    which are the live claims of this holder; the count must say how many; every other row must
    keep every column. On SQLite a state stored as a blob 'ready' (no text affinity keeps it from
    being stored so) is no more ready with the '+' than without it."""
    now = now_us()
    kinds = _kinds(now)
    ids = _insert(database, [_entry(n, now, **cols) for n, cols in enumerate(kinds.values())])
    by_name = dict(zip(kinds, ids, strict=True))
    if database.is_sqlite:
        (blob,) = _insert(database, [_entry(99, now, claimed_by=HOLDER, lease_until_us=now + 60 * US)])
        with database.write.begin() as conn:
            conn.execute(text("UPDATE outbox SET state = CAST('ready' AS BLOB) WHERE id = :i"), {"i": blob})
        by_name["state stored as a blob, mine"] = blob
    named = list(by_name.values())
    missing = max(named) + 1000
    hints = {i: f"hint {n}" for n, i in enumerate(named)} | {missing: "gone"}
    expected = _plain_mark_would_take(database, named, HOLDER, now)
    assert expected == {by_name[n] for n in MARKED}
    before = _columns(database, named)
    until = now + 300 * US

    assert _mark(database, hints, until, now) == len(expected)

    after = _columns(database, named)
    for name, i in by_name.items():
        if i in expected:
            changed = {k: new for k, old, new in zip(OUTBOX.c.keys(), before[i], after[i], strict=True) if new != old}
            wanted: dict[str, object] = {"lease_until_us": until, "uncertain": True, "lookup_hint": hints[i]}
            if before[i][_column_index("uncertain")]:
                del wanted["uncertain"]
            assert changed == wanted, name
        else:
            assert after[i] == before[i], name


def _column_index(key: str) -> int:
    return list(OUTBOX.c.keys()).index(key)


def test_an_empty_mark_sends_nothing_and_counts_none(database: Database) -> None:
    now = now_us()
    _insert(database, [_entry(0, now, claimed_by=HOLDER, lease_until_us=now + 60 * US)])
    with statements_sent(database.write) as statements:
        assert _mark(database, {}, now + 300 * US, now) == 0
    assert _marks(statements) == []


def test_each_distinct_hint_is_one_update_whose_state_binds_as_text(database: Database) -> None:
    """Forty entries with four hints: four UPDATEs, each naming exactly its hint's entries and
    binding the state literal as the text 'ready'. On SQLite that matters: '+state' has no
    affinity, so a state bound as anything but text (an int, a blob) would match nothing; it
    must reach sqlite3 (and psycopg) as a str the driver stores as text."""
    now = now_us()
    ids = _insert(database, [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(40)])
    hints = {i: f"h{k % 4}" for k, i in enumerate(ids)}
    with statements_sent(database.write) as statements:
        assert _mark(database, hints, now + 300 * US, now) == 40
    marks = _marks(statements)
    assert len(marks) == 4, [sql for sql, _ in statements]
    for sql, parameters in marks:
        values = _bound_values(parameters)
        assert ("+outbox.state = ?" in sql) is database.is_sqlite, sql
        assert "outbox.state = " in sql, sql
        states = [v for v in values if isinstance(v, str) and v == OutboxState.READY.value]
        assert len(states) == 1, values
        hint = next(v for v in values if isinstance(v, str) and v.startswith("h"))
        assert sorted(_named_ids(parameters)) == sorted(i for i, h in hints.items() if h == hint)
        if database.is_sqlite:
            with database.read.connect() as conn:
                assert conn.exec_driver_sql("SELECT typeof(?)", (states[0],)).scalar() == "text"
    stored = _columns(database, ids)
    assert {i: stored[i][_column_index("lookup_hint")] for i in ids} == hints


def test_a_unit_that_fails_after_its_marks_leaves_every_entry_as_it_was(database: Database) -> None:
    """Two hints, two UPDATEs, then the unit fails before it commits (the process dies before
    the call, as far as the registry knows): neither mark may survive, whatever plan found the rows."""
    now = now_us()
    ids = _insert(database, [_entry(n, now, claimed_by=HOLDER, lease_until_us=now + 60 * US) for n in range(4)])
    before = _columns(database, ids)

    def mark_then_fail(uow: UnitOfWork) -> None:
        assert uow.outbox.mark_uncertain({i: f"h{i % 2}" for i in ids}, now + 300 * US, HOLDER, now) == 4
        raise RuntimeError("killed before the call")

    with pytest.raises(RuntimeError):
        run_in_transaction(database, mark_then_fail)
    assert _columns(database, ids) == before


# -- 2. the construct: SQL per dialect, cache keys, drivers -------------------------------------------


def test_the_mark_compiles_with_the_plus_on_sqlite_only() -> None:
    on_sqlite = str(outbox_repository._MARK_UNCERTAIN.compile(dialect=sqlite.dialect()))
    pg_dialect = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
    on_postgres = str(outbox_repository._MARK_UNCERTAIN.compile(dialect=pg_dialect))
    assert "AND +outbox.state = ? AND" in on_sqlite, on_sqlite
    assert "+" not in on_postgres and "AND outbox.state = %(" in on_postgres, on_postgres
    # The column's type is the hint's: the literal binds as VARCHAR, as it did against the column.
    assert "outbox.state = %(param_1)s::VARCHAR" in on_postgres, on_postgres


def test_cache_keys_tell_columns_and_tables_apart_and_carry_the_literal_as_a_parameter() -> None:
    def key(column: ColumnClause[Any], value: object) -> Any:
        cache_key = select(OUTBOX.c.id).where(tested_only(column) == value)._generate_cache_key()
        assert cache_key is not None
        return cache_key

    ready = key(OUTBOX.c.state, "ready")
    assert ready.key == key(OUTBOX.c.state, "done").key  # one compiled statement for any literal
    assert [b.value for b in key(OUTBOX.c.state, "done").bindparams] == ["done"]
    assert ready.key != key(LINKS.c.state, "ready").key  # another table's column
    assert ready.key != key(OUTBOX.c.claimed_by, "ready").key  # another column of the table
    plain = select(OUTBOX.c.id).where(OUTBOX.c.state == "ready")._generate_cache_key()
    assert plain is not None and ready.key != plain.key  # never the unhinted statement's SQL
    assert tested_only(OUTBOX.c.state).type._type_affinity is OUTBOX.c.state.type._type_affinity  # text


def test_one_construct_on_two_tables_and_many_literals_reads_what_the_plain_test_reads(database: Database) -> None:
    """The same hint on outbox.state and link.state, with every literal in turn and again, on one
    engine (its compiled cache shared): each count must be the plain column's, and the second
    use of a shape must come from the cache with the new literal bound."""
    now = now_us()
    states = [OutboxState.READY, OutboxState.READY, OutboxState.DONE, OutboxState.WAITING, OutboxState.READY]
    _insert(database, [_entry(n, now, state=s.value) for n, s in enumerate(states)])

    def fill_links(uow: UnitOfWork) -> None:
        uow.links.insert_links(
            [
                {
                    "connection_id": "c1",
                    "kind": 1,
                    "record_id": n,
                    "link_group": 1,
                    "state": s,
                    "fingerprint": "f",
                    "generation": 1,
                    "attempts": 0,
                    "last_error": None,
                    "xero_objects": "[]",
                    "waiting_on": "[]",
                    "outcome_unknown": False,
                    "posting_id": f"p{n}",
                    "create_us": now,
                    "update_us": now,
                }
                for n, s in enumerate(["pending", "ready", "ready", "linked"])
            ]
        )

    run_in_transaction(database, fill_links)
    hits: list[object] = []
    with database.write.connect() as conn:
        for table in (OUTBOX, LINKS, OUTBOX, LINKS):
            for value in ("ready", "done", "waiting", "pending", "linked", "ready"):
                hinted = conn.execute(
                    select(func.count()).select_from(table).where(tested_only(table.c.state) == value)
                )
                hits.append(hinted.context.cache_hit)
                plain = conn.execute(select(func.count()).select_from(table).where(table.c.state == value)).scalar()
                assert hinted.scalar() == plain, (table.name, value)
    assert hits[0] is default.CACHE_MISS and hits[6] is default.CACHE_MISS  # one per table
    assert all(hit is default.CACHE_HIT for n, hit in enumerate(hits) if n not in (0, 6)), hits


# -- 3. plans on a registry with a backlog (SQLite plans from the schema alone) -----------------------


def _backlog(database: Database, now: int) -> list[int]:
    """6,000 entries over 200 tenants (a tenth done, one in fifty waiting), then one call's
    claim of 50 of tenant t001: its ids."""
    rows = []
    for n in range(6000):
        state = OutboxState.DONE if n % 10 == 7 else OutboxState.WAITING if n % 50 == 9 else OutboxState.READY
        rows.append({**ready_row(f"t{n % 200:03d}", f"c{n % 200}", n, now - US, now), "state": state.value})
    run_in_transaction(database, lambda uow: uow.outbox.insert_outbox(rows))
    more = [{**ready_row("t001", "c1", 6000 + n, now - US, now), "state": "ready"} for n in range(40)]
    run_in_transaction(database, lambda uow: uow.outbox.insert_outbox(more))
    claimed = run_in_transaction(database, lambda uow: uow.outbox.claim("t001", HOLDER, 50, now, 600 * US))
    assert len(claimed) == 50
    return [c.id for c in claimed]


def _plans(database: Database, statements: list[Statement]) -> list[tuple[str, list[str]]]:
    with database.read.connect() as conn:
        return [(sql, query_plan(conn, sql, parameters)) for sql, parameters in statements]


def _every_statement_naming_entries(database: Database, mine: list[int], now: int) -> list[Statement]:
    """What the dispatcher's job sends around one call that names its entries by id: the mark
    (one hint, then a hint per entry), reading them to apply answers, preloading them, the
    answers' bulk update by key, letting them go, and closing a link's work."""
    calls: list[Callable[[UnitOfWork], object]] = [
        lambda uow: uow.outbox.mark_uncertain({i: "h" for i in mine}, now + 600 * US, HOLDER, now),
        lambda uow: uow.outbox.mark_uncertain({i: f"h{i}" for i in mine[:3]}, now + 600 * US, HOLDER, now),
        lambda uow: uow.outbox.stored_entries(mine),
        lambda uow: uow.outbox.preload_outbox(mine),
        lambda uow: uow.outbox.outbox_by_ids(mine),
        lambda uow: uow.outbox.update_outbox([{"id": i, "state": "done", "attempts": 1} for i in mine]),
        lambda uow: uow.outbox.update_outbox([{"id": mine[0], "claimed_by": ""}]),
        lambda uow: uow.outbox.unclaim(mine, HOLDER),
        lambda uow: uow.outbox.close_work_of_links([mine[0], mine[1]]),
    ]
    with statements_sent(database.write) as statements, UnitOfWork(database) as uow:  # never committed
        for call in calls:
            call(uow)
    by_id = [
        (sql, p)
        for sql, p in statements
        if ("outbox.id IN" in sql or 'WHERE "id" = ?' in sql)
        and ("FROM outbox" in sql or "outbox SET" in sql or 'UPDATE "outbox" SET' in sql)
    ]
    assert len(by_id) >= len(calls), [sql for sql, _ in statements]
    return by_id


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_statement_naming_entries_by_id_reads_them_by_primary_key_on_a_backlog(database: Database) -> None:
    now = now_us()
    mine = _backlog(database, now)
    for sql, plan in _plans(database, _every_statement_naming_entries(database, mine, now)):
        reads = [step for step in plan if step.startswith(("SEARCH outbox", "SCAN outbox"))]
        assert reads and all("INTEGER PRIMARY KEY" in step for step in reads), (sql, plan)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_mark_still_reads_by_primary_key_once_analyze_has_run(database: Database) -> None:
    """An operator's ANALYZE (or PRAGMA optimize) gives SQLite statistics the registry never
    writes itself: the mark must still find its entries by id, not by state."""
    now = now_us()
    mine = _backlog(database, now)
    with database.write.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    for sql, plan in _plans(database, _every_statement_naming_entries(database, mine, now)):
        reads = [step for step in plan if step.startswith(("SEARCH outbox", "SCAN outbox"))]
        assert reads and all("INTEGER PRIMARY KEY" in step for step in reads), (sql, plan)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_unhinted_mark_would_read_along_the_state_index(database: Database) -> None:
    """The reason for the hint, kept true: without the '+', SQLite plans the same statement on
    `ix_outbox_done (state=?)`. Should a schema change make the hint pointless, this says so."""
    now = now_us()
    mine = _backlog(database, now)
    with statements_sent(database.write) as statements, UnitOfWork(database) as uow:
        uow.outbox.mark_uncertain({i: "h" for i in mine}, now + 600 * US, HOLDER, now)
    ((sql, parameters),) = _marks(statements)
    unhinted = sql.replace("+outbox.state", "outbox.state")
    ((_, plan),) = _plans(database, [(unhinted, parameters)])
    assert any("ix_outbox_done (state=?)" in step for step in plan), plan


# -- a careless caller of the helper ------------------------------------------------------------------


def _count(database: Database, where: ColumnElement[bool]) -> int:
    with database.read.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(OUTBOX).where(where)).scalar_one())


def _six_entries(database: Database) -> None:
    now = now_us()
    _insert(database, [_entry(n, now, attempts=3, link_id=n + 1, uncertain=n % 2 == 0) for n in range(6)])


@pytest.mark.parametrize(
    "careless",
    [
        pytest.param(lambda: OUTBOX.c.attempts + OUTBOX.c.link_id, id="an arithmetic expression"),
        pytest.param(lambda: or_(OUTBOX.c.uncertain, OUTBOX.c.alone), id="a boolean expression"),
        pytest.param(lambda: OUTBOX.c.attempts, id="an integer column"),
        pytest.param(lambda: OUTBOX.c.uncertain, id="a boolean column"),
        pytest.param(lambda: func.lower(OUTBOX.c.state), id="a function of a text column"),
    ],
)
def test_anything_but_a_text_column_is_refused(careless: Callable[[], ColumnElement[Any]]) -> None:
    """Found here first: given an expression, the "+" (and the bare default form) dropped its
    grouping, so `tested_only(a + b) * 2` became `+a + b * 2` and `tested_only(a OR b) = false`
    bound to b alone; given a number column, "+attempts" lost the column's INTEGER affinity and
    the text '3' never matched where `attempts = '3'` did. The construct now takes a text column
    only, and says so."""
    with pytest.raises(TypeError, match="text column"):
        tested_only(careless())  # type: ignore[arg-type]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_number_compared_with_the_text_column_matches_as_against_the_column(database: Database) -> None:
    """SQLite applies the column's TEXT affinity to a number compared with it (3 = '3'); with
    "+state" that affinity is gone, so the construct binds the value as text itself."""
    now = now_us()
    _insert(database, [_entry(n, now, state="3") for n in range(2)] + [_entry(9, now, state="ready")])
    assert _count(database, tested_only(OUTBOX.c.state) == 3) == _count(database, OUTBOX.c.state == 3) == 2


def test_the_hint_in_a_select_list_reads_the_column_value(database: Database) -> None:
    """Selected rather than tested, it reads the column's value as text."""
    _six_entries(database)
    with database.read.connect() as conn:
        got = conn.execute(select(tested_only(OUTBOX.c.state), tested_only(OUTBOX.c.tenant_id))).all()
    assert {(s, t) for s, t in got} == {("ready", TENANT)}
