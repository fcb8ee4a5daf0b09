"""Attacks on the trigger of revision 0007 that keeps `link_object` in step with each link's
`xero_objects`, on the readers built on it (`link_holding`, `held_xero_ids`, ListLinks by Xero
id), and on the listing indexes of revision 0008: every way the column is written, values an
operator may leave in it, the same input on SQLite and on PostgreSQL, pages read while rows are
added, and a downgrade and upgrade again.

The documented contract (r0007, docs/poster.md): the trigger indexes, on both registries and
whoever writes the column, each object of a JSON array whose `xero_id` is text of 1 to 64
characters, in lower case, as the fill does; anything else names no object; the readers find
the candidates by key and let the link's own list decide."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, text, update
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.migrations import alembic_config, current_revision, head_revision, migrate
from xerolink_poster.adapters.repositories.bulk import bulk_update, insert_rows
from xerolink_poster.adapters.tables import LinkRow, OrphanRow, PostingRow
from xerolink_poster.domain.link_filter import LinkFilter
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.service_layer import queries
from xerolink_poster.service_layer.drift_views import DriftFilter, list_drifts
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.registry_rows import link_values, unreachable_connection
from tests.integration.test_link_objects import _held_in_json, _indexed

_LINK: Any = LinkRow.__table__  # type: ignore[attr-defined]


def _insert_links(db: Database, links: list[dict[str, Any]]) -> None:
    columns = ", ".join(links[0])
    values = ", ".join(f":{name}" for name in links[0])
    with db.write.begin() as conn:
        conn.execute(text(f"INSERT INTO link ({columns}) VALUES ({values})"), links)


def _hand_edit(db: Database, link_id: int, value: str) -> None:
    with db.write.begin() as conn:
        conn.execute(text("UPDATE link SET xero_objects = :v WHERE id = :i"), {"v": value, "i": link_id})


def _objects(*ids: str, compact: bool = False) -> str:
    items = [{"type": 1, "xero_id": x, "local_ref": f"r{n}", "number": ""} for n, x in enumerate(ids)]
    return json.dumps(items, separators=(",", ":") if compact else None)


def _registry(url: str) -> Database:
    db = open_database(url)
    migrate(db)
    return db


# --- 1. every way the poster writes the column ----------------------------------------------


def test_every_way_the_poster_writes_xero_objects_is_indexed(database: Database) -> None:
    """The poster writes `xero_objects` through the ORM (insert and update), a Core UPDATE,
    bulk_update (SQLite: the driver's executemany; PostgreSQL: UPDATE ... FROM unnest for many
    rows, a plain UPDATE for one), insert_links (INSERT ... RETURNING) and insert_rows (SQLite:
    the driver's executemany). Each must leave every object of every link findable by its id in
    either case, including objects added to a link that already had some, one named in mixed
    case, and a link holding 3,000 objects; otherwise webhook events and the look-up's guard
    miss them."""
    ids = {n: str(uuid.uuid4()) for n in range(110)}

    def write(uow: UnitOfWork) -> None:
        session = uow.links._session  # type: ignore[attr-defined]
        # ORM insert with objects, then ORM update adding one in upper case.
        orm = LinkRow(**{k: v for k, v in link_values(1, "firm-1", _objects(ids[0])).items() if k != "id"})
        uow.links.add_link(orm)
        uow.links.set_xero_objects(orm, [*uow.links.xero_objects(orm), XeroObjectRef(1, ids[1].upper(), "b")])
        uow.links.save(orm)
        session.flush()
        # insert_links (RETURNING ids, in order) and insert_rows (every column named).
        fresh = uow.links.insert_links(
            [{k: v for k, v in link_values(n, "firm-1", _objects(ids[n])).items() if k != "id"} for n in range(2, 6)]
        )
        insert_rows(session, LinkRow, [link_values(n, "firm-1", _objects(ids[n])) for n in range(100, 103)])
        # bulk_update of many rows and of one row, each adding to objects already held.
        bulk_update(
            session,
            LinkRow,
            [
                {"id": i, "xero_objects": _objects(ids[n], ids[n + 10].upper())}
                for i, n in zip(fresh, range(2, 6), strict=True)
            ],
        )
        bulk_update(session, LinkRow, [{"id": 100, "xero_objects": _objects(ids[0], ids[6])}])
        # A Core UPDATE, and a link with a very long list.
        long = [f"{n:08d}-aaaa-4bbb-8ccc-{n:012d}" for n in range(3000)]
        session.execute(update(_LINK).where(_LINK.c.id == 101).values(xero_objects=_objects(ids[7], *long)))

    run_in_transaction(database, write)
    held = _held_in_json(database)
    assert len(held) == 2 + 4 * 2 + 2 + 1 + 3001
    assert _indexed(database) >= held
    with UnitOfWork(database, write=False) as uow:
        for _, xero_id, link_id in sorted(held)[:40]:
            holding = uow.links.link_holding("firm-1", xero_id.upper())
            assert holding is not None and xero_id in holding.xero_objects.lower(), (xero_id, link_id)


# --- 2. values the trigger must survive or refuse, alike on both registries -----------------

_GUID = "5D8E1E6C-0001-4A8B-9C1D-AAAAAAAAAAAA"
_VALUES = {
    # A hand edit that keeps the invoice but as a JSON object keyed by local ref.
    "object_of_objects": [f'{{"inv": {{"type": 1, "xero_id": "{_GUID}", "local_ref": "inv"}}}}'],
    # Values both registries tolerate alike (these hold the contract; they pass now).
    "tolerated": [
        "null",
        '{"xero_id": "x"}',
        '"text"',
        '[null, 1, "x", [], {"xero_id": 5}, {"xero_id": ""}, {"xero_id": "MiXeD"}, {"xero_id": "mixed"}]',
        json.dumps([{"xero_id": "a" * 64}, {"xero_id": "b" * 65}, {"xero_id": "ÿ" * 64}]),
    ],
}


def _trigger_outcome(db: Database, values: list[str]) -> list[object]:
    """For each value written to a fresh link by a plain INSERT: the rows the trigger wrote for
    it, or the refusal."""
    found: list[object] = []
    for n, value in enumerate(values, start=1):
        try:
            _insert_links(db, [link_values(n, "firm-1", value)])
        except Exception as exc:
            found.append(f"refused: {type(exc.__cause__ or exc).__name__}")
            continue
        found.append(sorted(x for _, x, i in _indexed(db) if i == n))
    return found


@pytest.mark.parametrize("case", sorted(_VALUES))
def test_the_trigger_indexes_the_same_value_alike_on_sqlite_and_postgres(
    case: str, tmp_path: Path, postgres_url: str
) -> None:
    """The same `xero_objects` written to a link must give the same `link_object` rows on
    SQLite and on PostgreSQL (or be refused by both). SQLite's trigger iterated a JSON object's
    members as if they were the elements of a list (json_each); PostgreSQL's takes arrays only,
    as the fill does. The user would see a webhook event or ListLinks by the id answered on one
    registry and not on the other. (Two values still differ, hand edits both, and are left: a
    key written twice, of which SQLite takes the first and PostgreSQL the last; and a NUL in an
    id, which SQLite skips and PostgreSQL refuses.)"""
    lite, pg = _registry(f"sqlite:///{tmp_path / 'registry.db'}"), _registry(postgres_url)
    try:
        outcomes = {"sqlite": _trigger_outcome(lite, _VALUES[case]), "postgres": _trigger_outcome(pg, _VALUES[case])}
    finally:
        lite.dispose()
        pg.dispose()
    assert outcomes["sqlite"] == outcomes["postgres"], outcomes


def test_a_link_holding_an_id_with_a_non_ascii_capital_is_found_by_that_id(database: Database) -> None:
    """The index folds case in ASCII only, as SQLite's lower() does (Xero's ids are GUIDs): the
    readers, the fill and both triggers key an id alike. Before, the readers used Python's
    lower() and SQLite's trigger its own: an object the poster gave a link with id "ÄBC-..." was
    indexed as "Äbc-..." on SQLite and never found by link_holding (a webhook event for it
    ignored) nor by held_xero_ids (the look-up free to adopt it for another record)."""
    xero_id = "ÄBC-" + str(uuid.uuid4())[:20]

    def give(uow: UnitOfWork) -> None:
        link = LinkRow(**{k: v for k, v in link_values(1, "firm-1").items() if k != "id"})
        uow.links.add_link(link)
        uow.links.set_xero_objects(link, [XeroObjectRef(1, xero_id, "inv")])
        uow.links.save(link)

    run_in_transaction(database, give)
    with UnitOfWork(database, write=False) as uow:
        asked = (xero_id, "Äbc" + xero_id[3:])  # as given, and in ASCII lower case
        found = {x: uow.links.link_holding("firm-1", x) is not None for x in asked}
        held = uow.links.held_xero_ids("firm-1", [xero_id], except_link_id=0)
    assert (found, held) == (dict.fromkeys(asked, True), {xero_id}), _indexed(database)


@pytest.mark.empty_registry
def test_revision_0007_upgrades_a_registry_whose_id_grows_when_lowered(database_url: str) -> None:
    """The fill checks an id's length (1 to 64) before lowering it with Python, whose lower()
    of "İ" is two characters: a link naming such an id of 40 characters gives a row of 80 for a
    VARCHAR(64) column. On PostgreSQL the whole upgrade fails (StringDataRightTruncation) and
    rolls back, so every poster replica fails at start-up, the failure the previous review fixed
    for ids typed longer than 64. SQLite does not enforce the length."""
    db = open_database(database_url)
    try:
        migrate(db, "0006")
        good = str(uuid.uuid4())
        _insert_links(db, [link_values(1, "firm-1", _objects(good)), link_values(2, "firm-1", _objects("İ" * 40))])
        migrate(db)
        assert current_revision(db) == head_revision()
        with UnitOfWork(db, write=False) as uow:
            holding = uow.links.link_holding("firm-1", good)
        assert holding is not None and holding.id == 1
    finally:
        db.dispose()


def test_an_operator_upsert_of_a_link_that_already_holds_objects_is_not_refused(database: Database) -> None:
    """An operator restores a link's objects with an upsert (INSERT ... ON CONFLICT (id) DO UPDATE),
    as from a backup. SQLite runs a trigger's statements under the conflict policy of the
    statement that fired it: the trigger's INSERT OR IGNORE becomes ABORT, and the row of the
    object the link already holds fails the statement with "UNIQUE constraint failed:
    link_object..."; PostgreSQL (ON CONFLICT DO NOTHING in the function) takes it."""
    held, added = str(uuid.uuid4()), str(uuid.uuid4())
    _insert_links(database, [link_values(1, "firm-1", _objects(held))])
    row = link_values(1, "firm-1", _objects(held, added))
    with database.write.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO link ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)}) "
                "ON CONFLICT (id) DO UPDATE SET xero_objects = excluded.xero_objects"
            ),
            row,
        )
    assert _indexed(database) == {("firm-1", held, 1), ("firm-1", added, 1)}


# --- the readers, on what the index leaves behind -------------------------------------------


def test_the_readers_survive_a_link_whose_objects_an_operator_set_to_null(database: Database) -> None:
    """Index rows are never removed. A link held the invoice; an operator clears its objects by
    hand with the JSON value `null` (a value r0007 says names no object). The row still points at
    the link, and link_holding and held_xero_ids iterate json.loads("null"): TypeError for every
    webhook event, drift check and look-up of that invoice, where they should find nothing."""
    invoice = str(uuid.uuid4())
    _insert_links(database, [link_values(1, "firm-1", _objects(invoice))])
    _hand_edit(database, 1, "null")
    with UnitOfWork(database, write=False) as uow:
        assert uow.links.link_holding("firm-1", invoice) is None
        assert uow.links.held_xero_ids("firm-1", [invoice], except_link_id=0) == set()


def test_list_links_by_xero_id_finds_a_link_whose_objects_were_written_compactly(database: Database) -> None:
    """The trigger indexes a hand-written (or any other writer's) list however it is spaced, and
    link_holding finds the link, but ListLinks by Xero id also requires the text
    `"xero_id": "<id>"` with json.dumps' spacing in the column: a link written as
    `[{"xero_id":"..."}]` is missing from ListLinks by its invoice's id."""
    invoice = str(uuid.uuid4())
    _insert_links(database, [link_values(1, "firm-1", _objects(invoice, compact=True))])
    with UnitOfWork(database, write=False) as uow:
        holding = uow.links.link_holding("firm-1", invoice)
        listed = [link.id for link in uow.links.list_links("firm-1", LinkFilter(xero_id=invoice), 0, 10)]
    assert holding is not None and holding.id == 1
    assert listed == [1]


# --- 3. pages read while rows are added (revision 0008) -------------------------------------


def _pages(fetch: Callable[[str], tuple[list[Any], str]], between: Callable[[], None]) -> list[Any]:
    """Every page; rows are added after each of the first five."""
    items: list[Any] = []
    token = ""
    for n in range(1000):
        page, token = fetch(token)
        items += page
        if not token:
            return items
        if n < 5:
            between()
    raise AssertionError("the pages never end")


def test_every_listing_pages_without_repeats_or_gaps_while_rows_are_added(database: Database) -> None:
    """ListLinks (each filter), ListPostings (newest first, ties by posting id), ListDrift (newest
    first, with and without a state) and ListOrphans, in pages of 3 while new rows arrive
    between pages: every row there at the start is listed once, in the documented order."""
    db = database
    with UnitOfWork(db) as uow:
        uow.connections.add_connection(unreachable_connection("firm-1"))
        uow.commit()
    xero = str(uuid.uuid4())
    _insert_links(
        db,
        [
            link_values(n, "firm-1", _objects(xero) if n % 3 == 0 else "[]", state="linked" if n % 2 else "failed")
            for n in range(1, 21)
        ],
    )
    stamp = now_us()
    with db.write.begin() as conn:
        postings = [
            {
                "posting_id": f"p-{n:03d}",
                "connection_id": "firm-1",
                "kind": 1,
                "record_id": 1000 + n,
                "link_id": n,
                "fingerprint": "f",
                "decision": b"",
                "state": "linked" if n % 2 else "failed",
                "duplicate": False,
                "request_id": "",
                "create_us": stamp + n // 4,  # ties of four
            }
            for n in range(1, 21)
        ]
        conn.execute(PostingRow.__table__.insert(), postings)  # type: ignore[attr-defined]
        conn.execute(
            DriftRow.__table__.insert(),  # type: ignore[attr-defined]
            [
                dict(
                    connection_id="firm-1",
                    link_id=n,
                    xero_id=f"x{n}",
                    object_type=1,
                    kind="PAID_IN_XERO",
                    state="open" if n % 2 else "resolved",
                    source="poll",
                    detected_us=stamp,
                    differences="[]",
                    description="",
                    xero_updated="",
                    resolved_us=0,
                    resolution="",
                    resolved_by="",
                    resolve_note="",
                )
                for n in range(1, 21)
            ],
        )
        conn.execute(
            OrphanRow.__table__.insert(),  # type: ignore[attr-defined]
            [
                dict(
                    connection_id="firm-1",
                    link_id=n,
                    kind=1,
                    record_id=1000 + n,
                    generation=1,
                    object_type=1,
                    xero_id=f"o{n}",
                    local_ref="",
                    number="",
                    orphaned_us=stamp,
                    actor="t",
                    reason="",
                )
                for n in range(1, 21)
            ],
        )
    added = iter(range(100, 1000))

    def add_rows() -> None:
        n = next(added)
        _insert_links(db, [link_values(n, "firm-1", _objects(xero), state="linked")])
        with db.write.begin() as conn:
            conn.execute(
                PostingRow.__table__.insert(),  # type: ignore[attr-defined]
                [dict(postings[0], posting_id=f"p-new-{n}", record_id=1000 + n, link_id=n, create_us=stamp + 99)],
            )
            conn.execute(
                text(
                    "INSERT INTO drift (connection_id, link_id, xero_id, object_type, kind, state, differences, "
                    "description, source, detected_us, xero_updated, resolved_us, resolution, resolved_by, "
                    "resolve_note) VALUES ('firm-1', :n, 'y', 1, 'PAID_IN_XERO', 'open', '[]', '', 'poll', 1, '', 0, "
                    "'', '', '')"
                ),
                {"n": n},
            )
            conn.execute(
                text(
                    "INSERT INTO orphaned_xero_object (connection_id, link_id, kind, record_id, generation, "
                    "object_type, xero_id, local_ref, number, orphaned_us, actor, reason) VALUES ('firm-1', :n, 1, "
                    ":r, 1, 1, 'z', '', '', 1, 't', '')"
                ),
                {"n": n, "r": 1000 + n},
            )

    for wanted, expected in (
        (LinkFilter(), list(range(1, 21))),
        (LinkFilter(state="linked"), [n for n in range(1, 21) if n % 2]),
        (LinkFilter(xero_id=xero.upper()), [n for n in range(1, 21) if n % 3 == 0]),
    ):
        got = _pages(functools.partial(_links_page, db, wanted), add_rows)
        ids = [link.id for link in got]
        assert ids == sorted(set(ids)), f"repeated or out of order: {ids}"
        assert [i for i in ids if i < 100] == expected, wanted
    for state in ("", "linked"):
        got = _pages(functools.partial(queries.list_postings, db, "firm-1", state, 3), add_rows)
        names = [v.posting.posting_id for v in got if not v.posting.posting_id.startswith("p-new")]
        want = sorted(
            (p for p in postings if not state or p["state"] == state),
            key=lambda p: (p["create_us"], p["posting_id"]),
            reverse=True,
        )
        assert names == [p["posting_id"] for p in want], state
    for state in ("", "open"):
        got = _pages(functools.partial(list_drifts, db, "firm-1", DriftFilter(state=state), 3), add_rows)
        ids = [row.id for row, _ in got if row.xero_id != "y"]
        assert ids == sorted(ids, reverse=True) and len(ids) == len(set(ids))
        assert len(ids) == (20 if not state else 10), state
    with UnitOfWork(db, write=False) as uow:
        first = [o.id for o in uow.links.list_orphans("firm-1", None, 0, 0, 1000)]
    got = []
    after = 0
    while True:
        with UnitOfWork(db, write=False) as uow:
            page = [o.id for o in uow.links.list_orphans("firm-1", None, 0, after, 3)]
        if not page:
            break
        got += page
        after = page[-1] or 0
        if len(got) < 15:
            add_rows()
    assert [i for i in got if i in first] == first and len(got) == len(set(got))


def _links_page(db: Database, wanted: LinkFilter, token: str) -> tuple[list[Any], str]:
    rows, next_token = queries.list_links(db, "firm-1", wanted, 3, token)
    return list(rows), next_token


# --- 4. downgrade and upgrade again ---------------------------------------------------------


def test_downgrading_0008_and_0007_and_upgrading_again_leaves_a_working_registry(database: Database) -> None:
    """An operator rolls the release back (alembic downgrade to 0006) while links keep being
    written by the previous release, then rolls forward: the indexes of 0008 are back, every
    object is indexed (those written while downgraded too), and the trigger indexes new writes
    on both registries."""
    db = database
    before, during, after = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    _insert_links(db, [link_values(1, "firm-1", _objects(before))])
    with db.write.begin() as conn:
        command.downgrade(alembic_config(conn), "0007")
        command.downgrade(alembic_config(conn), "0006")
    assert current_revision(db) == "0006"
    with db.read.connect() as conn:
        assert "link_object" not in inspect(conn).get_table_names()
    _insert_links(db, [link_values(2, "firm-1", _objects(during))])
    _hand_edit(db, 1, _objects(before, during.upper()))
    migrate(db)
    assert current_revision(db) == head_revision()
    _hand_edit(db, 2, _objects(during, after))
    with db.read.connect() as conn:
        names = {i["name"] for table in ("link", "drift", "posting") for i in inspect(conn).get_indexes(table)}
        posting = {i["name"]: i["column_names"] for i in inspect(conn).get_indexes("posting")}
    assert {"ix_link_page", "ix_drift_page", "ix_posting_list"} <= names
    assert posting["ix_posting_list"] == ["connection_id", "create_us", "posting_id"]
    assert (
        _indexed(db)
        == _held_in_json(db)
        == {
            ("firm-1", before, 1),
            ("firm-1", during, 1),
            ("firm-1", during, 2),
            ("firm-1", after, 2),
        }
    )
    with UnitOfWork(db, write=False) as uow:
        holding = uow.links.link_holding("firm-1", after.upper())
    assert holding is not None and holding.id == 2
