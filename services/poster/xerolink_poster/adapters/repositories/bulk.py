"""Bulk statements the repositories share: multi-row INSERTs and UPDATEs by primary key as Core
statements (the ORM's bulk paths cost more than the SQL on the Post path)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import update
from sqlmodel import Session


def insert_rows(
    session: Session, model: type[Any], rows: Sequence[dict[str, Any]], returning_ids: bool = False
) -> list[int]:
    """One multi-row INSERT (no ORM objects); with returning_ids, the new rows' ids in the order
    of `rows`."""
    if not rows:
        return []
    table = model.__table__
    if not returning_ids:
        session.execute(table.insert(), list(rows))
        return []
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [int(i) for i in session.execute(statement, list(rows)).scalars()]


def bulk_update(session: Session, model: type[Any], rows: Sequence[dict[str, object]]) -> None:
    """UPDATE by primary key, one executemany for all rows with the same columns."""
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for group in groups.values():
        session.execute(update(model), group)
