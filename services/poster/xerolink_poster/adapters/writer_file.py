"""SQLite's one writer between processes: an exclusive lock on a file beside the registry's.

SQLite hands its write lock between processes by polling. A connection that finds it taken sleeps
in its busy handler and tries again, 1, 2, 5, 10 ... then 100 ms at a time (SQLite's default busy
callback, `sqliteDefaultBusyCallback` in its main.c). A draining poster's threads write one
transaction after another, handing the writer to each other in WriteTurns, and the lock is free
for microseconds between them. A Post in a second poster process on the same registry (the roles
split, docs/scaling.md) slept through hundreds of those: p99 240-730 ms at 100 Posts a second
(docs/benchmarks.md, "SQLite's writer handed between processes").

Each write unit of work holds an exclusive flock(2) on `<registry>-writer` from before its BEGIN
IMMEDIATE to after its COMMIT or ROLLBACK, taken after its own process's turn. A process waiting
for the file tries it every half millisecond, so it gets in between two transactions of another.
SQLite's lock still decides who writes; the file only shortens the wait, and a program that
knows nothing of it writes as before. The kernel lets go of the lock of a process that dies. A
holder that never lets go (a paused process) delays a write by `wait_s` at most; the write then
goes on to SQLite's lock and its busy timeout, as before the file."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

# How often a waiting process tries the file: short beside a Post's 10 ms, and one thread a
# process polls (the one holding its turn).
POLL_S = 0.0005


class WriterFile:
    """The lock file of one registry, for one Database (two Databases on one file in a process,
    as tests run two posters, conflict as two processes do: each opens its own description).
    Only the thread holding the Database's write turn takes or lets go of it."""

    def __init__(self, path: str, wait_s: float) -> None:
        self.path = path
        self.wait_s = wait_s
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._waiting = 0
        self._count = threading.Lock()

    @property
    def waiting(self) -> int:
        """Threads waiting for another process to let go of the file now (0 or 1)."""
        return self._waiting

    def take(self) -> bool:
        """Holds the file once no other process does; False when `wait_s` passed first, and the
        write goes on without it."""
        if self._try():
            return True
        deadline = time.monotonic() + self.wait_s
        with self._count:
            self._waiting += 1
        try:
            while True:
                time.sleep(POLL_S)
                if self._try():
                    return True
                if time.monotonic() >= deadline:
                    log.warning(
                        "another process has held the registry's writer file %s for %.0f s; writing without it",
                        self.path,
                        self.wait_s,
                    )
                    return False
        finally:
            with self._count:
                self._waiting -= 1

    def let_go(self) -> None:
        """Lets go of the file (nothing when it was not held: the wait ran out, or was interrupted)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _try(self) -> bool:
        if self._fd is None:
            raise RuntimeError(f"the writer file {self.path} was closed (the database was disposed)")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
