"""Alembic's environment for the registry. It never opens a database itself: the caller hands it
a connection inside a transaction it has locked (adapters/migrations.py at start-up,
tools/new_migration.py for autogenerate), so a migration commits or rolls back as one."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

# Imported for their tables: autogenerate compares the database with every table the poster maps.
from xerolink_poster.adapters import backfill_tables, correction_tables, drift_tables, tables  # noqa: F401
from xerolink_poster.adapters.schema_comparison import include_object


def render_item(type_: str, item: Any, _context: AutogenContext) -> str | Literal[False]:
    """Writes SQLModel's string type as SQLAlchemy's, so a revision does not import sqlmodel."""
    if type_ == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite's ALTER TABLE cannot change or drop most things: batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    include_object=include_object,
    render_item=render_item,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
