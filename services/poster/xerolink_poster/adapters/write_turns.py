"""Which of the process's transactions waits least: callers' before the dispatcher's.

SQLite has one writer at a time. While the dispatcher drains a backlog, tens of its threads queue
for it; a Post queued behind them all waited seconds to be acknowledged. `WriteTurns` hands the
writer over in turns, first come first served within two classes: a transaction a caller waits
for (a Post, any RPC, a webhook delivery) goes before the dispatcher's, and after `urgent_run`
callers' turns in a row one waiting dispatcher transaction goes, so the backlog still drains
under any load of Posts.

PostgreSQL takes concurrent writers, but the process has one interpreter lock, and a
transaction's Python runs under it. With the dispatcher's tens of threads all in transactions, a
Post's write got a small share of it: one poster draining 200 organisations answered Posts at
22 a second, p99 17 s, of the 100 a second offered. There the dispatcher's write transactions
take turns among themselves, one at a time, and a caller's takes none (`callers_wait=False`): it
runs beside the one dispatcher transaction, and never waits for one that is itself waiting, for
a row or the app-minute lock another poster holds, or for a connection of the dispatcher's pool
(callers' threads have a pool of their own, adapters/database.py). See docs/benchmarks.md,
"Callers first on PostgreSQL too".

A thread says it answers callers with `serve_callers_on_this_thread` (the gRPC server's and the
webhook endpoint's threads do, as they start)."""

from __future__ import annotations

import threading
from collections import deque
from threading import get_ident

_thread = threading.local()


def serve_callers_on_this_thread() -> None:
    _thread.serves_callers = True


def serving_callers() -> bool:
    return bool(getattr(_thread, "serves_callers", False))


class WriteTurns:
    """A lock handed straight to the next waiter (no waiter can barge in ahead of those queued),
    callers' waiters first. Not reentrant. `callers_wait=False`: callers' transactions take no
    turn (`needed`), and only the dispatcher's queue."""

    def __init__(self, urgent_run: int = 4, callers_wait: bool = True) -> None:
        self.urgent_run = urgent_run
        self.callers_wait = callers_wait
        self._mutex = threading.Lock()
        # The thread holding the writer: set under the mutex as it is taken or handed over, so a
        # thread interrupted right after taking it can still tell that it must give it back.
        self._owner: int | None = None
        # Waiters: each one's baton, released to hand it the writer, and its thread.
        self._urgent: deque[tuple[threading.Lock, int]] = deque()
        self._background: deque[tuple[threading.Lock, int]] = deque()
        self._urgent_in_a_row = 0

    def needed(self, urgent: bool | None = None) -> bool:
        """Whether a write transaction takes a turn (for a caller's when `urgent`; by default
        when this thread serves callers)."""
        urgent = serving_callers() if urgent is None else urgent
        return self.callers_wait or not urgent

    def acquire(self, urgent: bool | None = None, timeout: float | None = None) -> bool:
        """Takes the writer (for a caller's transaction when `urgent`; by default when this thread
        serves callers); False when `timeout` seconds passed first."""
        urgent = serving_callers() if urgent is None else urgent
        with self._mutex:
            if self._owner is None and not self._urgent and not self._background:
                self._owner = get_ident()
                self._count(urgent)
                return True
            baton = threading.Lock()
            baton.acquire()
            (self._urgent if urgent else self._background).append((baton, get_ident()))
        try:
            if baton.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
                return True
        except BaseException:
            # Interrupted while queued (a signal's handler raised): the writer must not go to a
            # waiter that is gone, or no transaction of the process would ever get it again.
            if not self._leave_queue(baton, urgent):
                self.release()  # handed over meanwhile: pass it on
            raise
        if self._leave_queue(baton, urgent):
            return False
        # Handed over between the timeout and the mutex: the writer is this thread's now.
        baton.acquire()
        return True

    def _leave_queue(self, baton: threading.Lock, urgent: bool) -> bool:
        """Takes a waiter out of its queue; False when it had been handed the writer already."""
        with self._mutex:
            queue = self._urgent if urgent else self._background
            for waiter in queue:
                if waiter[0] is baton:
                    queue.remove(waiter)
                    return True
            return False

    def held_here(self) -> bool:
        """Whether this thread holds the writer."""
        with self._mutex:
            return self._owner == get_ident()

    def release(self) -> None:
        with self._mutex:
            if self._owner is None:
                raise RuntimeError("release of a writer not taken")
            waiter = self._next()
            if waiter is None:
                self._owner = None
                return
            baton, self._owner = waiter
        baton.release()

    def _next(self) -> tuple[threading.Lock, int] | None:
        if self._urgent and (not self._background or self._urgent_in_a_row < self.urgent_run):
            self._urgent_in_a_row += 1
            return self._urgent.popleft()
        if self._background:
            self._urgent_in_a_row = 0
            return self._background.popleft()
        return None

    def _count(self, urgent: bool) -> None:
        self._urgent_in_a_row = self._urgent_in_a_row + 1 if urgent else 0

    @property
    def waiting(self) -> tuple[int, int]:
        """(callers', dispatcher's) transactions waiting now."""
        with self._mutex:
            return len(self._urgent), len(self._background)
