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
22 a second, p99 17 s, of the 100 a second offered. Its write transactions take the same turns
(docs/benchmarks.md, "Callers first on PostgreSQL too": p99 about 0.2 s, and the drain as fast).
Callers' threads also take their connections from a pool of their own (adapters/database.py).
A transaction waiting for a row another process locked keeps its turn meanwhile, as a SQLite
writer would keep the file.

A thread says it answers callers with `serve_callers_on_this_thread` (the gRPC server's and the
webhook endpoint's threads do, as they start)."""

from __future__ import annotations

import threading
from collections import deque

_thread = threading.local()


def serve_callers_on_this_thread() -> None:
    _thread.serves_callers = True


def serving_callers() -> bool:
    return bool(getattr(_thread, "serves_callers", False))


class WriteTurns:
    """A lock handed straight to the next waiter (no waiter can barge in ahead of those queued),
    callers' waiters first. Not reentrant."""

    def __init__(self, urgent_run: int = 4) -> None:
        self.urgent_run = urgent_run
        self._mutex = threading.Lock()
        self._held = False
        self._urgent: deque[threading.Lock] = deque()
        self._background: deque[threading.Lock] = deque()
        self._urgent_in_a_row = 0

    def acquire(self, urgent: bool | None = None, timeout: float | None = None) -> bool:
        """Takes the writer (for a caller's transaction when `urgent`; by default when this thread
        serves callers); False when `timeout` seconds passed first."""
        urgent = serving_callers() if urgent is None else urgent
        with self._mutex:
            if not self._held and not self._urgent and not self._background:
                self._held = True
                self._count(urgent)
                return True
            baton = threading.Lock()
            baton.acquire()
            (self._urgent if urgent else self._background).append(baton)
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
            if baton in queue:
                queue.remove(baton)
                return True
            return False

    def release(self) -> None:
        with self._mutex:
            if not self._held:
                raise RuntimeError("release of a writer not taken")
            baton = self._next()
            if baton is None:
                self._held = False
                return
        baton.release()

    def _next(self) -> threading.Lock | None:
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
