"""Hints that keep SQLite's planner on the index a statement is written for.

SQLite plans without statistics unless ANALYZE has run, which the registry never does, so its
choice between indexes comes from the schema and the shape of the WHERE clause alone. A
statement that names its rows by primary key and also tests a column that leads another index
(`outbox.state`, first in `ix_outbox_done`) may be planned on that index: it then reads every
row with that value (every ready entry of every tenant) to find the few it names.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class tested_only(FunctionElement[Any]):  # noqa: N801 (an SQL construct, named as it reads)
    """A column that the WHERE clause only tests: no index is chosen for it. On SQLite the column
    is written with a unary "+", which the query planner documents as the way to disqualify a
    term from index use ("The SQLite Query Optimizer Overview", section "Disqualifying WHERE
    Clause Terms using Unary-'+'"); the value compared is unchanged. Elsewhere it is the column
    itself (PostgreSQL plans from its statistics)."""

    name = "tested_only"
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        super().__init__(column)
        self.type = column.type


@compiles(tested_only)
def _column(element: tested_only, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(tested_only, "sqlite")
def _tested_only_on_sqlite(element: tested_only, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return "+" + compiler.process(column, **kw)
