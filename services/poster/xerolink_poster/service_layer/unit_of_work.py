"""Unit of work: one short database transaction, with a repository per aggregate on it (links,
outbox, contacts, connections, corrections, backfills, leases, matters, drift; their interfaces are in
service_layer/ports.py). It rolls back unless committed; write units on SQLite begin with BEGIN
IMMEDIATE (see adapters/database.py). A write that loses a race on a unique key (two posts of a new
record at once) is retried by `run_in_transaction`, which re-runs the whole function on a fresh
transaction."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, Database, commit_refused, retryable
from xerolink_poster.adapters.repositories.sql import SqlRepositories
from xerolink_poster.service_layer.ports import (
    BackfillRepository,
    ConnectionRepository,
    ContactRepository,
    CorrectionRepository,
    DriftRepository,
    LeaseRepository,
    LinkRepository,
    MatterRepository,
    OutboxRepository,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
# The databases this thread has a write unit open on.
_writing = threading.local()


def _open_here() -> set[int]:
    if not hasattr(_writing, "databases"):
        _writing.databases = set()
    databases: set[int] = _writing.databases
    return databases


def writing_here(db: Database) -> bool:
    """Whether this thread has a write unit of work open on `db`."""
    return id(db) in _open_here()


class UnitOfWork:
    links: LinkRepository
    outbox: OutboxRepository
    contacts: ContactRepository
    connections: ConnectionRepository
    corrections: CorrectionRepository
    backfills: BackfillRepository
    leases: LeaseRepository
    matters: MatterRepository
    drift: DriftRepository

    def __init__(self, db: Database, write: bool = True) -> None:
        self.db = db
        self.write = write
        self._committed = False

    def __enter__(self) -> UnitOfWork:
        if self.write and id(self.db) in _open_here():
            # It would wait for good for the turn its own thread holds (not reentrant).
            raise RuntimeError("a write unit of work opened inside another on the same thread")
        try:
            if self.write:
                _open_here().add(id(self.db))
                turns = self.db.write_turns
                if turns is not None and turns.needed():
                    # Callers' first (adapters/write_turns.py): SQLite's one writer, handed over
                    # where its busy handler would sleep and poll; on PostgreSQL, the dispatcher's
                    # writes one at a time, which otherwise crowd a caller's out of the interpreter.
                    turns.acquire()
                    if self.db.writer_file is not None:
                        # Then between processes (adapters/writer_file.py): a wait that SQLite's
                        # busy handler would sleep through.
                        self.db.writer_file.take()
            self._session = self.db.session(self.write)
            repositories = SqlRepositories.on(self._session, self.db.is_sqlite)
        except BaseException:
            # __exit__ never runs for a failed __enter__ (an interrupt included, even right
            # after the turn was taken): the writer would stay taken for good.
            self._unlock()
            raise
        self._repositories = repositories
        self.links = repositories.links
        self.outbox = repositories.outbox
        self.contacts = repositories.contacts
        self.connections = repositories.connections
        self.corrections = repositories.corrections
        self.backfills = repositories.backfills
        self.leases = repositories.leases
        self.matters = repositories.matters
        self.drift = repositories.drift
        return self

    def commit(self) -> None:
        self._session.commit()
        self._committed = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            # A read unit only closes: rollback would expire the rows it hands back.
            if self.write and not self._committed:
                self._session.rollback()
        finally:
            try:
                self._session.close()
            finally:
                # Even when closing raised (the pool re-raises an interrupt during its reset):
                # a turn kept would stop every later write of the process.
                self._unlock()

    def _unlock(self) -> None:
        if not self.write:
            return
        _open_here().discard(id(self.db))
        turns = self.db.write_turns
        if turns is not None and turns.held_here():
            try:
                if self.db.writer_file is not None:
                    self.db.writer_file.let_go()
            finally:
                turns.release()


def run_in_transaction(db: Database, work: Callable[[UnitOfWork], T], attempts: int = 5) -> T:
    """Runs `work` in a write unit and commits; retries on a lost unique-key race, a
    serialisation failure or a session PostgreSQL ended as it idled in the transaction, which
    leave nothing behind (the transaction rolled back). A COMMIT that fails without a refusal
    raises CommitMayHaveGoneThrough and is not run again."""
    for attempt in range(1, attempts + 1):
        try:
            with UnitOfWork(db) as uow:
                result = work(uow)
                try:
                    uow.commit()
                except Exception as exc:
                    if not commit_refused(exc):
                        raise CommitMayHaveGoneThrough.of(exc) from exc
                    raise
                return result
        except Exception as exc:
            if attempt == attempts or not retryable(exc):
                raise
            log.debug("transaction conflict (%s), retrying", type(exc).__name__)
            time.sleep(random.uniform(0.001, 0.01) * attempt)
    raise AssertionError("unreachable")


# Runs of a self-recognising write while its COMMIT goes unconfirmed (a registry failing over).
CONFIRMING_RUNS = 5


def run_until_confirmed(db: Database, work: Callable[[UnitOfWork], T]) -> T:
    """Runs `work`, and again while its COMMIT goes unconfirmed, at most CONFIRMING_RUNS times.
    Only for a `work` that recognises its own earlier write by something no other write carries
    (a claim's runner, sealed tokens) and then writes nothing: running it again answers whether
    the earlier one went through. The last run's CommitMayHaveGoneThrough is raised."""
    for _ in range(CONFIRMING_RUNS - 1):
        try:
            return run_in_transaction(db, work)
        except CommitMayHaveGoneThrough:
            log.warning("a commit went unconfirmed; running the write again to learn whether it went through")
    return run_in_transaction(db, work)
