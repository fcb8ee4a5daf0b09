"""Hints that keep SQLite's planner on the index a statement is written for.

SQLite plans without statistics unless ANALYZE has run, which the registry never does, so its
choice between indexes comes from the schema and the shape of the WHERE clause alone. A
statement that names its rows by primary key and also tests a column that leads another index
(`outbox.state`, first in `ix_outbox_done`) may be planned on that index: it then reads every
row with that value (every ready entry of every tenant) to find the few it names.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator


class _Text(TypeDecorator[str]):
    """A text column's values bound as text. SQLite applies a column's TEXT affinity to a value
    compared with it (an integer 3 is compared as '3'); "+column" has no affinity, so the value
    is turned into text here instead, and the comparison matches what the plain one matches."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return value if value is None or isinstance(value, str) else str(value)


class tested_only(FunctionElement[str]):
    """A text column that the WHERE clause only tests: no index is chosen for it. On SQLite the
    column is written with a unary "+", which its query planner documents as the way to keep a
    term off any index ("The SQLite Query Optimizer Overview", "Disqualifying WHERE Clause Terms
    using Unary-'+'"); elsewhere it is the column itself (PostgreSQL plans from its statistics).
    Only a text column: "+" also drops the column's affinity, and a value compared with it is
    bound as text to make up for that (`_Text`), which would be wrong for a number; and only a
    column, not an expression, which the "+" would split."""

    name = "tested_only"
    inherit_cache = True

    def __init__(self, column: ColumnClause[Any]) -> None:
        if not isinstance(column, ColumnClause) or not _holds_text(column):
            raise TypeError(f"tested_only takes a text column, not {column!r}")
        super().__init__(column)
        self.type = _Text()


def _holds_text(column: ColumnClause[Any]) -> bool:
    # sqlmodel's AutoString is a TypeDecorator of String: the type it decorates says.
    return isinstance(getattr(column.type, "impl", column.type), String)


@compiles(tested_only)
def _column(element: tested_only, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return compiler.process(column, **kw)


@compiles(tested_only, "sqlite")
def _tested_only_on_sqlite(element: tested_only, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses
    return "+" + compiler.process(column, **kw)
