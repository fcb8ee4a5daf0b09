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
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlmodel import Session
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.write_turns import WriteTurns, serving_callers
from xerolink_poster.adapters.writer_file import WriterFile

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


# How long a SQLite connection waits for the file's write lock before "database is locked", and
# a write for another process's writer file (writer_file.py) before going on without it.
SQLITE_BUSY_TIMEOUT_S = 30


# The largest value PostgreSQL takes for a timeout in milliseconds (an int4 setting).
MAX_TIMEOUT_MS = 2_147_483_647


@dataclass(frozen=True)
class PostgresTimeouts:
    """How long a poster's PostgreSQL sessions wait (PostgreSQL's documentation, "Client
    Connection Defaults": idle_in_transaction_session_timeout and lock_timeout; 0: the poster sets
    none, and the role's or server's setting applies, by default no limit).

    Every poster counts each Xero call in the app's minute under one advisory lock. A poster
    frozen inside that transaction (a paused VM, a network lost with the socket still open) kept
    the lock, and the whole fleet's calls waited, until TCP gave up on it: hours by default. A
    poster's transactions last milliseconds; PostgreSQL ends a session of it left idle inside one
    for longer than `idle_in_transaction_ms`, and with it the transaction and its locks.

    The transaction before each Xero call (the lease checked, the call counted) waits at most
    `call_lock_ms` for a lock, then rolls back and is tried again (Gate.call). It holds the
    dispatcher's turn (write_turns.py), so the dispatcher's other writes, lease renewals among
    them, waited with it until the frozen poster's session ended. Only that transaction: one
    that writes what Xero answered must wait, whatever holds the lock, or the answer is lost."""

    idle_in_transaction_ms: int = 60_000
    call_lock_ms: int = 2_000

    def __post_init__(self) -> None:
        for name in ("idle_in_transaction_ms", "call_lock_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= MAX_TIMEOUT_MS:
                raise ValueError(f"{name} must be a whole number of milliseconds from 0 to {MAX_TIMEOUT_MS}")


def _set_session_timeouts(engine: Engine, timeouts: PostgresTimeouts) -> None:
    """Sets the idle timeout on each new session with set_config, as a statement: startup
    options would replace those of PGOPTIONS or a service file, which libpq reads only when the
    connection gives none (and PgBouncer refuses startup options it does not know)."""
    if not timeouts.idle_in_transaction_ms:
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
                (str(timeouts.idle_in_transaction_ms),),
            )
        dbapi_connection.commit()  # psycopg opened a transaction for the statement; the setting stays


def lock_wait_ended(exc: BaseException) -> bool:
    """Whether a transaction rolled back because it waited for a lock longer than lock_timeout
    (SQLSTATE 55P03, lock_not_available: PostgreSQL's documentation, "PostgreSQL Error Codes")."""
    return isinstance(exc, OperationalError) and getattr(exc.orig, "sqlstate", None) == "55P03"


def registry_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be used (a connection refused or lost, a lock
    waited out): SQLAlchemy's OperationalError and InterfaceError, which it raises for the DBAPI's
    errors of those names, as against an error a statement's data caused."""
    return isinstance(exc, (OperationalError, InterfaceError))


class CommitMayHaveGoneThrough(OperationalError):
    """A COMMIT that failed without saying whether it went through: the connection dropped
    before PostgreSQL's acknowledgement, say. The work may be in the registry, so it is never run
    again as a lost race. An OperationalError still, as any registry that cannot be used."""

    def as_xerolink_error(self) -> XerolinkError:
        """What a caller whose request it ended is told (xerolink_common.grpc_errors)."""
        return XerolinkError(
            ErrorCode.UNAVAILABLE,
            Reason.REGISTRY_COMMIT_UNCONFIRMED,
            "the registry did not confirm the commit of this request's changes: they may be stored. Read them back "
            "before acting on them; a post or a batch of posts sent again is answered with what was stored",
            retry_after_seconds=1.0,
        )

    @classmethod
    def of(cls, exc: Exception) -> CommitMayHaveGoneThrough:
        if isinstance(exc, DBAPIError) and exc.orig is not None:
            return cls(exc.statement, exc.params, exc.orig)
        return cls("COMMIT", None, exc)


# SQLite's COMMIT answered SQLITE_BUSY or SQLITE_LOCKED (the primary code, in the low byte):
# the transaction is still open and uncommitted ("Result and Error Codes", sqlite.org/rescode.html).
_SQLITE_NOT_COMMITTED = {5, 6}


def commit_refused(exc: BaseException) -> bool:
    """Whether a COMMIT that raised `exc` surely did not go through. On PostgreSQL: an ERROR (the
    server refused the COMMIT and rolled back) of any class but 08, connection exceptions; or
    25P03, the session ended while it idled in the transaction, before the COMMIT reached it. Not a
    FATAL or PANIC otherwise: an error in the commit record's critical section is a PANIC, and a
    session ended by an administrator (57P01) may be ended once its commit is done
    (PostgreSQL's xact.c; "Error Message Reporting", severity levels). On SQLite: the file was busy
    or locked. Anything else (no answer at all, an error of the client) leaves it unknown."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        if sqlstate == "25P03":
            return True
        severity = getattr(getattr(exc.orig, "diag", None), "severity_nonlocalized", None)
        return severity == "ERROR" and not str(sqlstate).startswith("08")
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _SQLITE_NOT_COMMITTED


def retryable(exc: BaseException) -> bool:
    """Whether the transaction that raised `exc` rolled back, so that running it again on a fresh
    one is safe: a lost race (CONFLICTS), or a session PostgreSQL ended while it idled inside the
    transaction (SQLSTATE 25P03, idle_in_transaction_session_timeout), which never committed. Not
    a COMMIT that may have gone through: run again, its work would be written twice."""
    if isinstance(exc, CommitMayHaveGoneThrough):
        return False
    if isinstance(exc, CONFLICTS):
        return True
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) == "25P03"


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
    # PostgreSQL: how long the transaction before a Xero call waits for a lock (PostgresTimeouts).
    call_lock_ms: int = 0
    # SQLite in a file: the writer between processes (adapters/writer_file.py), held by every
    # write transaction after its process's turn.
    writer_file: WriterFile | None = None

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
        if self.writer_file is not None:
            self.writer_file.close()


def _sqlite_engine(url: str, immediate: bool, writer_file: WriterFile | None = None) -> Engine:
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S}, pool_size=8, max_overflow=32
    )

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
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        if writer_file is not None and writer_file.waited_s >= 0.001:
            _shorten_busy_timeout(conn, writer_file.waited_s)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if writer_file is not None:

        @event.listens_for(engine, "checkin")
        def _checkin(dbapi_connection: Any, record: Any) -> None:
            full = record.info.pop("busy_restore_ms", None)
            if full is not None and dbapi_connection is not None:
                dbapi_connection.execute(f"PRAGMA busy_timeout={full}")

    return engine


def _shorten_busy_timeout(conn: Any, waited_s: float) -> None:
    """SQLite's busy timeout for the transaction beginning, less the time it waited for the
    writer file (writer_file.py): one wait for the writer in all, never the file's and then
    SQLite's in full. The connection's own timeout (read here, whatever set it) comes back as it
    returns to the pool."""
    info = conn.connection.info
    dbapi = conn.connection.dbapi_connection
    full = info.get("busy_restore_ms")
    if full is None:
        full = int(dbapi.execute("PRAGMA busy_timeout").fetchone()[0])
    dbapi.execute(f"PRAGMA busy_timeout={max(full - int(waited_s * 1000), 0)}")
    info["busy_restore_ms"] = full


def _sqlite_path(url: str) -> str | None:
    """The registry's file, or None for a database in memory."""
    path = make_url(url).database
    return None if not path or path == ":memory:" else path


def _switch_to_wal(url: str) -> None:
    """Switches the file to WAL once, before any pool opens it: connections racing to switch a new
    file's journal mode can get "database is locked" without the busy handler being consulted."""
    path = _sqlite_path(url)
    if path is None:
        return
    with contextlib.closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def open_database(url: str, timeouts: PostgresTimeouts | None = None) -> Database:
    """The registry at `url`; on PostgreSQL its sessions wait as `timeouts` says (the defaults
    when None)."""
    if url.startswith("sqlite"):
        _switch_to_wal(url)
        path = _sqlite_path(url)
        writer_file = WriterFile(path, SQLITE_BUSY_TIMEOUT_S) if path is not None else None
        return Database(
            url,
            _sqlite_engine(url, immediate=True, writer_file=writer_file),
            _sqlite_engine(url, immediate=False),
            WriteTurns(),
            writer_file=writer_file,
        )
    timeouts = timeouts or PostgresTimeouts()
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    # While the dispatcher drains, its threads hold every connection of the shared pool: a Post
    # waited behind them for one (seconds). Callers' threads (at most the servers' workers) have
    # a pool of their own.
    callers = create_engine(url, pool_size=2, max_overflow=8, pool_pre_ping=True)
    for pool in (engine, callers):
        _set_session_timeouts(pool, timeouts)
    turns = WriteTurns(callers_wait=False)
    return Database(
        url, engine, _snapshot_reads(engine), turns, callers, _snapshot_reads(callers), timeouts.call_lock_ms
    )


def _snapshot_reads(engine: Engine) -> Engine:
    """At READ COMMITTED each statement sees its own moment: a posting read before a commit and its
    link read after it make a view that never existed (pending posting, linked link). A read-only
    transaction at REPEATABLE READ takes one snapshot and never fails to serialise."""
    return engine.execution_options(isolation_level="REPEATABLE READ")
