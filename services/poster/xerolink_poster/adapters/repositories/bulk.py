"""Bulk statements the repositories share: multi-row INSERTs and UPDATEs by primary key as Core
statements (the ORM's bulk paths cost more than the SQL on the Post path)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Dialect, String, Table, TextClause, and_, bindparam, or_, text, update
from sqlalchemy.exc import CompileError, StatementError
from sqlalchemy.orm.util import identity_key
from sqlalchemy.types import TypeEngine
from sqlmodel import Session


def insert_rows(
    session: Session, model: type[Any], rows: Sequence[dict[str, Any]], returning_ids: bool = False
) -> list[int]:
    """One multi-row INSERT (no ORM objects); with returning_ids, the new rows' ids in the order
    of `rows`. On SQLite, rows that name every column go to the driver's executemany."""
    if not rows:
        return []
    table = model.__table__
    if not returning_ids:
        dialect = session.get_bind(clause=table).dialect
        if dialect.name == "sqlite" and _names_every_column(table, rows):
            _insert_by_driver(session, table, rows, dialect)
        else:
            session.execute(table.insert(), list(rows))
        return []
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [int(i) for i in session.execute(statement, list(rows)).scalars()]


def _names_every_column(table: Table, rows: Sequence[dict[str, Any]]) -> bool:
    """Every row gives a value for every column but the one the database numbers: nothing is
    left to a default SQLAlchemy would fill in, and the rows share one statement."""
    columns = set(rows[0])
    numbered = table.autoincrement_column
    wanted = {c.name for c in table.columns if c is not numbered}
    return (columns == wanted or (numbered is not None and columns == wanted | {numbered.name})) and all(
        row.keys() == columns for row in rows
    )


def _insert_by_driver(session: Session, table: Table, rows: Sequence[dict[str, Any]], dialect: Dialect) -> None:
    """SQLite: the driver's executemany of one INSERT, its text and the columns' bind
    processors found once (as _update_by_key): SQLAlchemy built each row's parameters through
    the compiled statement, which was most of the Python an audit row or snapshot cost."""
    columns = sorted(rows[0])
    sql = _INSERTS.get((table.name, tuple(columns)))
    if sql is None:
        names = ", ".join(f'"{c}"' for c in columns)
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})'
        _INSERTS[(table.name, tuple(columns))] = sql
    # The session's pending changes first when it flushes by itself, as session.execute does
    # before a Core INSERT: a statement past the session would otherwise see the rows as they
    # were. Not under no_autoflush, where Core leaves them pending (and numbers them after).
    if session.autoflush:
        session.flush()
    try:
        bound = _bound_rows(table, columns, rows, dialect)
    except (TypeError, ValueError) as exc:
        raise StatementError(str(exc), f"INSERT INTO {table.name}", None, exc) from exc
    session.connection(bind_arguments={"clause": table}).exec_driver_sql(sql, bound)


def in_by_connection(connection: Any, value: Any, keys: Iterable[tuple[str, Any]]) -> ColumnElement[bool]:
    """(connection, value) in `keys`, as a plain IN of values for each connection (`value` a
    column or a tuple_ of columns): a row-value IN of every pair took PostgreSQL several times
    as long to plan, and past about 7,700 pairs exceeded its stack depth."""
    values: dict[str, set[Any]] = {}
    for connection_id, v in keys:
        values.setdefault(connection_id, set()).add(v)
    return or_(*(and_(connection == c, value.in_(sorted(vs))) for c, vs in sorted(values.items())))


def bulk_update(session: Session, model: type[Any], rows: Sequence[dict[str, object]]) -> None:
    """UPDATE by primary key, one statement for all rows with the same columns (an executemany on
    SQLite, an UPDATE from arrays on PostgreSQL); rows of one key end as they would one after
    another. A value its column refuses raises the registry's error. Not the ORM's: its bulk
    UPDATE by primary key collected each row's parameters through the mapper (13 % of the
    dispatcher's busy samples in a profile; about 8 % less CPU per element on SQLite side by
    side). Like it, the session's copies of the rows show the new values after it
    (they are expired, and reload if read again)."""
    table = model.__table__
    (key,) = table.primary_key.columns
    # One row a key, its rows merged in order: the end the rows would reach one after another,
    # whichever statement (one per set of columns) each falls in.
    merged: dict[object, dict[str, object]] = {}
    for row in rows:
        merged.setdefault(row[key.name], {}).update(row)
    unknown = {c for row in merged.values() for c in row} - set(table.c.keys())
    if unknown:
        raise CompileError(f"Unconsumed column names: {', '.join(sorted(unknown))}")
    # The session's pending changes first, as session.execute's autoflush would: its copies are
    # expired below, and a change left unwritten would be lost with them.
    session.flush()
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in merged.values():
        groups.setdefault(tuple(sorted(row)), []).append(row)
    dialect = session.get_bind().dialect
    for columns, group in groups.items():
        names = [c for c in columns if c != key.name]
        if not names:
            continue  # only the key: nothing to set
        try:
            if dialect.name == "postgresql" and len(group) > 1:
                _update_from_arrays(session, table, key.name, names, group, dialect)
            elif dialect.name == "sqlite":
                _update_by_key(session, table, key.name, names, group, dialect)
            else:
                # The key's bound parameter needs a name of its own: a column's name sets that column.
                statement = update(table).where(key == bindparam("_key"))
                session.execute(statement, [{"_key": row[key.name], **{c: row[c] for c in names}} for row in group])
        except (TypeError, ValueError) as exc:
            # A value its column's type refuses, found as the parameters are bound here: the
            # registry's error, as SQLAlchemy raises it for a statement it binds itself.
            raise StatementError(str(exc), f"UPDATE {table.name}", None, exc) from exc
    expire_loaded(session, model, [row[key.name] for row in rows])


def expire_loaded(session: Session, model: type[Any], keys: Iterable[object]) -> None:
    """The session's copies of `model`'s rows with these primary keys, if the unit read any, are
    stale after a Core statement changed the rows: expired, they load again when next read."""
    identities = session.identity_map
    if not identities:
        return  # nothing loaded: building each key's identity cost more than the UPDATE's rows
    for key in keys:
        held = identities.get(identity_key(model, key))
        if held is not None:
            session.expire(held)


# The UPDATE of each table and set of columns, written once: its text does not depend on the rows.
_BY_KEY: dict[tuple[str, tuple[str, ...]], str] = {}
_FROM_ARRAYS: dict[tuple[str, tuple[str, ...]], TextClause] = {}
_INSERTS: dict[tuple[str, tuple[str, ...]], str] = {}


class _Binding(NamedTuple):
    """How a dialect binds a table's columns, found once: their values in order, and the
    columns whose type has a bind processor (its index in the row, the processor)."""

    values: Callable[[dict[str, object]], Any]
    processed: list[tuple[int, Callable[[Any], Any]]]
    width: int


_BINDINGS: dict[tuple[str, str, str, tuple[str, ...]], _Binding] = {}


def _array_type(column_type: TypeEngine[Any], dialect: Dialect) -> str:
    # Without the length: an explicit cast to varchar(n) cuts a longer value silently, where the
    # assignment to the column refuses it, as the one-row path does.
    if getattr(column_type, "length", None) is not None:  # String, or SQLModel's AutoString over it
        column_type = String()
    return f"{column_type.compile(dialect=dialect)}[]"


def _bound_rows(
    table: Table, columns: Sequence[str], group: Sequence[dict[str, object]], dialect: Dialect
) -> list[tuple[object, ...]]:
    """Each row's values of `columns` as their types bind them: the driver's executemany and a
    text() statement skip SQLAlchemy's types. Its Boolean takes True, False, 1 or 0 only (never
    the truth of any value: bool("false") is True) and raises for the rest."""
    cache_key = (dialect.name, dialect.driver, table.name, tuple(columns))
    binding = _BINDINGS.get(cache_key)
    if binding is None:
        processors = [(i, table.c[c].type.bind_processor(dialect)) for i, c in enumerate(columns)]
        binding = _Binding(itemgetter(*columns), [(i, p) for i, p in processors if p is not None], len(columns))
        _BINDINGS[cache_key] = binding
    values, processed = binding.values, binding.processed
    if binding.width == 1:  # itemgetter of one key gives the value, not a tuple of it
        rows: list[tuple[object, ...]] = [(values(row),) for row in group]
    else:
        rows = [values(row) for row in group]
    if not processed:  # most columns bind as they are (a str, an int): no Python per value
        return rows
    bound = []
    for row_values in rows:
        row = list(row_values)
        for i, process in processed:
            if row[i] is not None:
                row[i] = process(row[i])
        bound.append(tuple(row))
    return bound


def _update_by_key(
    session: Session, table: Table, key: str, names: list[str], group: Sequence[dict[str, object]], dialect: Dialect
) -> None:
    """SQLite: the driver's executemany of one UPDATE by key, its text and the columns' bind
    processors found once. SQLAlchemy's executemany built each row's parameters through the
    compiled statement: applying a call's fifty answers took twice as long with it."""
    sql = _BY_KEY.get((table.name, tuple(names)))
    if sql is None:
        sets = ", ".join(f'"{c}" = ?' for c in names)
        sql = f'UPDATE "{table.name}" SET {sets} WHERE "{key}" = ?'
        _BY_KEY[(table.name, tuple(names))] = sql
    session.connection().exec_driver_sql(sql, _bound_rows(table, [*names, key], group, dialect))


def _update_from_arrays(
    session: Session, table: Table, key: str, names: list[str], group: Sequence[dict[str, object]], dialect: Dialect
) -> None:
    """One UPDATE ... FROM unnest(arrays) for the group: psycopg runs an executemany as a
    statement a row, a round trip each, and a VALUES list would be compiled again for every
    group (its rows are part of the statement). One array a column, cast to the column's type so
    NULLs and strings are not taken as text."""
    columns = [key, *names]
    statement = _FROM_ARRAYS.get((table.name, tuple(names)))
    if statement is None:
        arrays = ", ".join(f"CAST(:c{i} AS {_array_type(table.c[c].type, dialect)})" for i, c in enumerate(columns))
        sets = ", ".join(f'"{c}" = v."{c}"' for c in names)
        named = ", ".join(f'"{c}"' for c in columns)
        statement = text(
            f'UPDATE "{table.name}" SET {sets} FROM unnest({arrays}) AS v({named}) '
            f'WHERE "{table.name}"."{key}" = v."{key}"'
        )
        _FROM_ARRAYS[(table.name, tuple(names))] = statement
    # Each key once (bulk_update merged a key's rows): an UPDATE ... FROM would take whichever
    # array row of a key its plan meets first.
    by_column = zip(*_bound_rows(table, columns, group, dialect), strict=True)
    session.execute(statement, {f"c{i}": list(values) for i, values in enumerate(by_column)})
