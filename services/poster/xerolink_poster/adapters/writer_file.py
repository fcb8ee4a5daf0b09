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
knows nothing of it writes as before. So nothing about the file ever stops a write or makes it
wait longer than SQLite's busy timeout would: a file that cannot be opened or locked is done
without (said in the log), the time a write waited for the file is taken off its busy timeout
(adapters/database.py), and a holder that never lets go (a paused process) delays the writes
queued meanwhile by `wait_s` once, not each: after that they try the file only briefly until it
is seen free. The kernel lets go of the lock of a process that dies."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import threading
import time
import weakref

log = logging.getLogger(__name__)

# How often a waiting process tries the file: short beside a Post's 10 ms, and one thread a
# process polls (the one holding its turn).
POLL_S = 0.0005
# How long a write tries the file once a wait for it has run out, until it is seen free: a gap
# between two transactions of a holder that came back, not another `wait_s` for a stuck one.
STUCK_POLL_S = 0.01
# Opened without following a symlink or waiting for a FIFO's writer; anything but a regular
# file is refused after.
_FLAGS = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC

# Every WriterFile of the process, for a forked child to drop (below).
_ALL: weakref.WeakSet[WriterFile] = weakref.WeakSet()


class WriterFile:
    """The lock file of one registry, for one Database (two Databases on one file in a process,
    as tests run two posters, conflict as two processes do: each opens its own description).
    Only the thread holding the Database's write turn takes or lets go of it; `close` may run on
    any thread (the descriptor is read and used under a mutex).

    `registry`: the registry's own file. The lock file is named from its real path (SQLite
    follows a symlink and writes its `-wal` beside the file it points to, so every name of the
    registry must find the same lock) and made with its owner and mode, as SQLite makes `-wal`
    and `-shm` (its unix VFS, `findCreateFileMode` and `robustFchown`), so whoever may write the
    registry may open the lock."""

    def __init__(self, registry: str, wait_s: float) -> None:
        self.registry = os.path.realpath(registry)
        self.path = f"{self.registry}-writer"
        self.wait_s = wait_s
        # How long the last take waited: SQLite's busy timeout for the transaction is that much
        # shorter (adapters/database.py), so the two waits together stay within it.
        self.waited_s = 0.0
        # The descriptor, in a list the finaliser shares: a Database dropped without dispose
        # leaves none open, whichever the file was reopened to.
        self._fd: list[int | None] = [None]
        weakref.finalize(self, _close, self._fd)
        self._mutex = threading.Lock()
        self._unusable = False  # it could not be opened or locked, said in the log
        self._stuck = False  # a wait ran out, and the file was not seen free since
        self._waiting = 0  # written only by the thread holding the turn: no lock
        _ALL.add(self)
        with self._mutex:
            self._open()

    @property
    def waiting(self) -> int:
        """Threads waiting for another process to let go of the file now (0 or 1)."""
        return self._waiting

    def take(self) -> bool:
        """Holds the file once no other process does; False when it could not be had, and the
        write goes on without it: the file cannot be opened or locked, `wait_s` passed, or an
        earlier wait ran out and the file has not been free since (its holder is stuck; the
        writes queued behind it each waiting `wait_s` again would add up)."""
        began = time.monotonic()
        try:
            return self._take()
        finally:
            self.waited_s = time.monotonic() - began

    def let_go(self) -> None:
        """Lets go of the file (nothing when it was not held: it was not had, or the wait was
        interrupted)."""
        self.waited_s = 0.0
        with self._mutex:
            fd = self._fd[0]
            if fd is None:
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                _close(self._fd)  # closing the description lets go of its lock as well

    def close(self) -> None:
        """Closes the descriptor; a write after it opens the file again (SQLAlchemy's engines
        take writes after dispose too: a worker's answer that comes back as the poster stops)."""
        with self._mutex:
            _close(self._fd)

    def _take(self) -> bool:
        if self._try():
            self._stuck = False
            return True
        if self._unusable:
            return False
        deadline = time.monotonic() + (STUCK_POLL_S if self._stuck else self.wait_s)
        self._waiting = 1
        try:
            while True:
                time.sleep(POLL_S)
                if self._try():
                    self._stuck = False
                    return True
                if self._unusable:
                    return False
                if time.monotonic() >= deadline:
                    if not self._stuck:
                        self._stuck = True
                        log.warning(
                            "another process has held the registry's writer file %s for %.0f s; writing without "
                            "waiting for it until it is free",
                            self.path,
                            self.wait_s,
                        )
                    return False
        finally:
            self._waiting = 0

    def _try(self) -> bool:
        """One try, without waiting (under the mutex)."""
        with self._mutex:
            for _ in range(3):  # the file replaced meanwhile: the lock is on the new one
                fd = self._fd[0] if self._fd[0] is not None else self._open()
                if fd is None:
                    return False
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
                except OSError as exc:
                    self._unusable_now(exc)
                    return False
                if _still_named(fd, self.path):
                    self._unusable = False
                    return True
                # Deleted, replaced (an operator took it for a stale lock file), or its directory
                # can no longer be searched: a process that opens the registry now locks the
                # file under the name, so this one must too, or go without.
                _close(self._fd)
            return False

    def _open(self) -> int | None:
        try:
            self._fd[0] = _open_like(self.path, self.registry)
        except OSError as exc:
            self._unusable_now(exc)
            return None
        return self._fd[0]

    def _unusable_now(self, exc: OSError) -> None:
        _close(self._fd)
        if not self._unusable:
            log.warning(
                "cannot open the registry's writer file %s (%s); its writes wait for SQLite's lock alone until it "
                "can be",
                self.path,
                exc,
            )
        self._unusable = True


def _open_like(path: str, registry: str) -> int:
    """The lock file, made with the registry's mode and, for root, its owner."""
    try:
        like: os.stat_result | None = os.stat(registry)
    except OSError:
        like = None
    mode = like.st_mode & 0o666 if like is not None else 0o600
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _FLAGS, mode)
    except FileExistsError:
        try:
            fd = os.open(path, os.O_RDWR | _FLAGS)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY | _FLAGS)  # flock needs no write access
        return _regular(fd, path)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        if like is not None and os.geteuid() == 0:
            os.fchown(fd, like.st_uid, like.st_gid)
    except OSError:
        log.warning("could not give %s the registry's mode and owner", path, exc_info=True)
    return fd


def _regular(fd: int, path: str) -> int:
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return fd
    os.close(fd)
    raise OSError(errno.EINVAL, "not a regular file", path)


def _still_named(fd: int, path: str) -> bool:
    try:
        named = os.stat(path)
        held = os.fstat(fd)
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _close(box: list[int | None]) -> None:
    # Forgotten before it is closed: nothing may lock a number the process may have given to
    # another file meanwhile.
    fd, box[0] = box[0], None
    if fd is not None:
        os.close(fd)


def _forget_in_child() -> None:
    """A forked child shares its parent's open file descriptions, and a flock belongs to the
    description: the child would take the file its parent holds, and its let-go would free the
    parent's hold mid-transaction. The child opens its own on its first write (and has a mutex
    of its own: another thread of the parent may have held it at the fork)."""
    for writer in list(_ALL):
        writer._mutex = threading.Lock()
        _close(writer._fd)


os.register_at_fork(after_in_child=_forget_in_child)
