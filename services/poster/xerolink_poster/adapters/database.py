"""Engines for the registry. SQLite (the default, one file) runs in WAL mode; write transactions
start with BEGIN IMMEDIATE so two writers never deadlock upgrading a read lock, and reads use a
second engine with ordinary deferred transactions so they never wait for the write lock; each sees
the file as of its first read. PostgreSQL shares one pool; its reads run at REPEATABLE READ so the
statements of one read see one moment, as SQLite's do. Threads that answer callers go first
(adapters/write_turns.py): SQLite's one writer is theirs before the dispatcher's; on PostgreSQL
the dispatcher's write transactions take turns among themselves while callers' take none, on a
pool of their own."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session

from xerolink_poster.adapters.write_turns import WriteTurns, serving_callers

# The database's errors as the service layer names them, so it needs no import of SQLAlchemy.
# Any error of the database (the transaction rolled back).
DatabaseError = SQLAlchemyError
# A unique key another transaction took first.
DuplicateKey = IntegrityError
# What a lost race leaves (a unique key taken meanwhile, a serialisation failure, a deadlock):
# the transaction rolled back, and running it again on a fresh one is safe.
CONFLICTS: tuple[type[Exception], ...] = (IntegrityError, OperationalError)


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class PostgresTimeouts:
    """How long a poster's PostgreSQL sessions wait (0: as the role or server says, by default
    without a limit; PostgreSQL's documentation, "Client Connection Defaults",
    idle_in_transaction_session_timeout and lock_timeout).

    Every poster counts each Xero call in the app's minute under one advisory lock. A poster
    frozen inside that transaction (a paused VM, a network lost with the socket still open) kept
    the lock, and the whole fleet's calls waited, until TCP gave up on it: hours by default. A
    poster's transactions last milliseconds; PostgreSQL ends a session left idle inside one for
    longer than `idle_in_transaction_ms`, and with it the transaction and its locks.

    A dispatcher write that waits for a lock holds the dispatcher's turn (write_turns.py), so
    its other writes, lease renewals among them, waited with it. After `dispatcher_lock_ms` it
    rolls back and `run_in_transaction` tries it again, the others having passed in between.
    Callers' writes wait without a limit: a Post is never refused for a lock held a while."""

    idle_in_transaction_ms: int = 60_000
    dispatcher_lock_ms: int = 2_000

    def connect_args(self, url: str, dispatcher: bool) -> dict[str, str]:
        """The libpq `options` that set them for every session of a pool, after any the URL
        gives. A timeout of 0 is not sent: the role's or the server's setting applies (a pooler
        such as PgBouncer refuses startup options it does not know)."""
        given = make_url(url).query.get("options")
        settings = [given] if isinstance(given, str) else list(given or ())
        if self.idle_in_transaction_ms:
            settings.append(f"-c idle_in_transaction_session_timeout={self.idle_in_transaction_ms}")
        if dispatcher and self.dispatcher_lock_ms:
            settings.append(f"-c lock_timeout={self.dispatcher_lock_ms}")
        return {"options": " ".join(settings)} if settings else {}


def lock_wait_ended(exc: BaseException) -> bool:
    """Whether a transaction rolled back because it waited for a lock longer than lock_timeout
    (SQLSTATE 55P03, lock_not_available: PostgreSQL's documentation, "PostgreSQL Error Codes")."""
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) == "55P03"


@dataclass
class Database:
    url: str
    write: Engine
    read: Engine
    # The turns this process's write transactions take (adapters/write_turns.py): all of them,
    # callers' first, on SQLite; only the dispatcher's on PostgreSQL.
    write_turns: WriteTurns | None = None
    # PostgreSQL: the engines of threads that answer callers, on a pool of their own.
    callers_write: Engine | None = None
    callers_read: Engine | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.write.dialect.name == "sqlite"

    def session(self, write: bool) -> Session:
        """A session on the write or the read engine (the callers' pool on a thread that answers
        callers, where there is one); its rows stay readable after commit."""
        if serving_callers() and self.callers_write is not None and self.callers_read is not None:
            return Session(self.callers_write if write else self.callers_read, expire_on_commit=False)
        return Session(self.write if write else self.read, expire_on_commit=False)

    def dispose(self) -> None:
        for engine in {id(e): e for e in (self.write, self.read, self.callers_write, self.callers_read) if e}.values():
            engine.dispose()


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8, max_overflow=32)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event issue BEGIN itself (pysqlite's own BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit (an accepted Post) survives power loss and OS crashes, not only a killed
        # process; in WAL mode NORMAL may lose the last commits. About 0.3 ms a commit, shared by
        # every Post of a group.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _switch_to_wal(url: str) -> None:
    """Switches the file to WAL once, before any pool opens it: connections racing to switch a new
    file's journal mode can get "database is locked" without the busy handler being consulted."""
    path = make_url(url).database
    if not path or path == ":memory:":
        return
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def open_database(url: str, timeouts: PostgresTimeouts | None = None) -> Database:
    """The registry at `url`; on PostgreSQL its sessions wait as `timeouts` says (the defaults
    when None)."""
    if url.startswith("sqlite"):
        _switch_to_wal(url)
        return Database(url, _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False), WriteTurns())
    timeouts = timeouts or PostgresTimeouts()
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args=timeouts.connect_args(url, dispatcher=True),
    )
    # While the dispatcher drains, its threads hold every connection of the shared pool: a Post
    # waited behind them for one (seconds). Callers' threads (at most the servers' workers) have
    # a pool of their own.
    callers = create_engine(
        url,
        pool_size=2,
        max_overflow=8,
        pool_pre_ping=True,
        connect_args=timeouts.connect_args(url, dispatcher=False),
    )
    turns = WriteTurns(callers_wait=False)
    return Database(url, engine, _snapshot_reads(engine), turns, callers, _snapshot_reads(callers))


def _snapshot_reads(engine: Engine) -> Engine:
    """At READ COMMITTED each statement sees its own moment: a posting read before a commit and its
    link read after it make a view that never existed (pending posting, linked link). A read-only
    transaction at REPEATABLE READ takes one snapshot and never fails to serialise."""
    return engine.execution_options(isolation_level="REPEATABLE READ")
