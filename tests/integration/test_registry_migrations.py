"""The registry's Alembic history on SQLite and on the real PostgreSQL server: an empty registry
migrated to head matches the table classes, a registry made by the migration runner before
Alembic upgrades without losing a row, and posters starting together migrate it once."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from google.protobuf.message import DecodeError
from sqlalchemy import Connection, text
from sqlmodel import SQLModel
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_poster.adapters import backfill_tables, correction_tables, drift_tables, tables  # noqa: F401 - their tables
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.migrations import (
    BASELINE_REVISION,
    LegacyRegistryError,
    current_revision,
    head_revision,
    migrate,
)
from xerolink_poster.adapters.schema_comparison import include_object

from tests.fixtures.legacy_registry import create_legacy_registry, schema_sql
from tests.fixtures.legacy_registry.rows import ROWS

# Each test starts from an empty database: the migrations are what it tests.
pytestmark = pytest.mark.empty_registry


def _differences(db: Database) -> list[Any]:
    with db.read.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))


def _rows(conn: Connection, table: str) -> list[dict[str, object]]:
    key = ", ".join(c.name for c in SQLModel.metadata.tables[table].primary_key.columns)
    rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY {key}")).mappings().all()
    # PostgreSQL hands bytea back as memoryview, SQLite's BOOLEAN as 0/1: compare values, not types.
    return [{k: bytes(v) if isinstance(v, memoryview) else v for k, v in row.items()} for row in rows]


def _table_names(db: Database) -> set[str]:
    with db.read.connect() as conn:
        return set(db.read.dialect.get_table_names(conn))


def test_an_empty_registry_migrated_to_head_matches_the_table_classes(database_url: str) -> None:
    db = open_database(database_url)
    try:
        assert current_revision(db) is None
        assert migrate(db) == head_revision()
        assert current_revision(db) == head_revision()
        assert _differences(db) == []
        assert migrate(db) == head_revision()  # again: nothing to do, nothing changes
        assert _differences(db) == []
    finally:
        db.dispose()


def test_the_baseline_creates_the_schema_the_old_runner_left(tmp_path: Path) -> None:
    # Statement by statement on SQLite; PostgreSQL's is held to the same classes by the tests above
    # and below (both its empty and its old registry compare clean).
    db = open_database(f"sqlite:///{tmp_path / 'registry.db'}")
    try:
        migrate(db, BASELINE_REVISION)
        with db.read.connect() as conn:
            made = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL").scalars().all()
    finally:
        db.dispose()

    def normalised(statements: list[str]) -> set[str]:
        return {re.sub(r"\s+", " ", s.strip()) for s in statements if s.strip()}

    old = normalised(schema_sql("sqlite").split(";\n"))
    new = normalised([s for s in made if "alembic_version" not in s])
    assert new == old


def test_a_registry_of_the_old_runner_upgrades_to_head_losing_nothing(database_url: str) -> None:
    db = open_database(database_url)
    try:
        create_legacy_registry(db)
        assert current_revision(db) is None

        assert migrate(db) == head_revision()

        assert current_revision(db) == head_revision()
        assert _differences(db) == []
        with db.read.connect() as conn:
            # Stamped, not created again: the baseline's create_table would have failed on the old tables.
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
            for table, rows in ROWS.items():
                assert _rows(conn, table) == _after_0012(table, _after_0004(table, _after_0003(table, rows))), table
            # What main's migration 9 guaranteed (every link has a known outcome) still holds.
            assert conn.execute(text("SELECT id, outcome_unknown FROM link ORDER BY id")).all() == [
                (1, False),
                (2, True),
                (3, False),
            ]
        assert migrate(db) == head_revision()  # stamped once: a second start does nothing more
    finally:
        db.dispose()


def _after_0003(table: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Revision 0003 gives each well-formed context without them the tax types it always posted with."""
    if table != "connection":
        return rows
    changed = []
    for row in rows:
        context = mapper_pb2.MappingContext()
        try:
            context.ParseFromString(bytes(row["mapping_context"]))  # type: ignore[call-overload]
        except DecodeError:
            changed.append(row)  # left as it was
            continue
        context.untaxed_line_tax_types.CopyFrom(AU_UNTAXED)
        changed.append({**row, "mapping_context": row["mapping_context"] + AU_UNTAXED_FIELD})  # type: ignore[operator]
    return changed


def _after_0004(table: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Revision 0004 adds a connection's routing (NULL) and firm group (""): it routes nothing."""
    if table != "connection":
        return rows
    return [{**row, "routing": None, "firm_group": ""} for row in rows]


def _after_0012(table: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Revision 0012 gives each link subject no trust journal matters: it was posted before."""
    if table != "link_subject":
        return rows
    return [{**row, "paying_action_id": 0, "receiving_action_id": 0} for row in rows]


AU_UNTAXED = mapper_pb2.UntaxedLineTaxTypes(
    trust_money="BASEXCLUDED", interest_on_trust="EXEMPTOUTPUT", journal_without_tax_code="BASEXCLUDED"
)
AU_UNTAXED_FIELD = mapper_pb2.MappingContext(untaxed_line_tax_types=AU_UNTAXED).SerializeToString()


def _connection(db: Database, connection_id: str, context: bytes) -> None:
    # Through the table class, whose column defaults fill the rest of the row.
    table = SQLModel.metadata.tables["connection"]
    with db.write.begin() as conn:
        conn.execute(
            table.insert().values(
                connection_id=connection_id,
                xero_base_url="http://xero.invalid",
                xero_tenant_id=connection_id,
                access_token="",
                refresh_token="",
                mapping_context=context,
                create_us=1,
            )
        )


def _context(db: Database, connection_id: str) -> bytes:
    with db.read.connect() as conn:
        value = conn.execute(
            text("SELECT mapping_context FROM connection WHERE connection_id = :id"), {"id": connection_id}
        ).scalar_one()
    return bytes(value)


def test_revision_0003_gives_each_stored_context_the_tax_types_it_posted_untaxed_lines_with(
    database_url: str,
) -> None:
    db = open_database(database_url)
    try:
        migrate(db, "0002")
        old = mapper_pb2.MappingContext(base_currency_code="AUD", tax_code_map={"GST": "OUTPUT"})
        own = mapper_pb2.MappingContext(
            base_currency_code="NZD", untaxed_line_tax_types=mapper_pb2.UntaxedLineTaxTypes(trust_money="NONE")
        )
        _connection(db, "firm-old", old.SerializeToString())
        _connection(db, "firm-own", own.SerializeToString())
        _connection(db, "firm-garbled", b"\n\x05AUD\x00\x01\xff")

        assert migrate(db) == head_revision()

        upgraded = mapper_pb2.MappingContext()
        upgraded.ParseFromString(_context(db, "firm-old"))
        assert upgraded.untaxed_line_tax_types == AU_UNTAXED
        assert upgraded.tax_code_map == {"GST": "OUTPUT"} and upgraded.base_currency_code == "AUD"
        # A context that has its own is left alone, and so is one that does not parse.
        assert _context(db, "firm-own") == own.SerializeToString()
        assert _context(db, "firm-garbled") == b"\n\x05AUD\x00\x01\xff"
    finally:
        db.dispose()


def test_a_registry_the_old_runner_had_not_finished_is_refused_and_left_as_it_was(database_url: str) -> None:
    db = open_database(database_url)
    try:
        create_legacy_registry(db, version=8)
        before = _table_names(db)

        with pytest.raises(LegacyRegistryError, match="schema version 8"):
            migrate(db)

        assert _table_names(db) == before  # no alembic_version: the next start meets the same registry
        with db.read.connect() as conn:
            assert _rows(conn, "link") == ROWS["link"]
    finally:
        db.dispose()


def test_posters_starting_together_migrate_once(database_url: str) -> None:
    dbs = [open_database(database_url) for _ in range(3)]
    errors: list[BaseException] = []

    def run(db: Database) -> None:
        try:
            migrate(db)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert current_revision(dbs[0]) == head_revision()
        assert _differences(dbs[0]) == []
    finally:
        for db in dbs:
            db.dispose()
