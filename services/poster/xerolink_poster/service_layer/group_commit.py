"""Group commit: one thread takes every request queued while it was busy (and, with a window, the
ones arriving shortly after the first) and handles them together, so concurrent callers share
one mapper call and one database transaction instead of queueing for one each.

Each request carries its caller's future. The handler settles every future of its group; a
caller waiting on one learns its outcome only when the group's work is done (for a write: after
the commit that holds its rows), so grouping never weakens durability."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


@dataclass
class Job(Generic[P, R]):
    payload: P
    future: Future[R]

    def settle(self, result: R | BaseException) -> None:
        """Sets the result or the error once; a job settled already keeps its first outcome."""
        if self.future.done():
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)


class GroupQueue(Generic[P, R]):
    """A queue drained by one thread, a group at a time. `handle` settles each job of a group;
    if it raises, `failed` turns the exception into each unsettled job's error."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[Job[P, R]]], None],
        failed: Callable[[BaseException], BaseException],
        window: float = 0.0,
        max_size: int = 256,
    ) -> None:
        self.name = name
        self._handle = handle
        self._failed = failed
        self.window = window
        self.max_size = max_size
        self._queue: deque[Job[P, R]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        # Handled groups and jobs, for the figures of the benchmark and the tests.
        self.groups = 0
        self.jobs = 0
        self.largest = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job[P, R]) -> None:
        self.submit_many([job])

    def submit_many(self, jobs: list[Job[P, R]]) -> None:
        """Queues jobs together, so the thread takes them into one group when it is free."""
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.name} is closed")
            self._queue.extend(jobs)
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Handles what is queued, then stops the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _next_group(self) -> list[Job[P, R]] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if not self._queue:
                return None
            if self.window > 0:
                deadline = time.monotonic() + self.window
                while len(self._queue) < self.max_size and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            return [self._queue.popleft() for _ in range(min(len(self._queue), self.max_size))]

    def _run(self) -> None:
        while (group := self._next_group()) is not None:
            self.groups += 1
            self.jobs += len(group)
            self.largest = max(self.largest, len(group))
            try:
                self._handle(group)
            except BaseException as exc:  # every caller must hear of it, and the thread must live on
                log.exception("%s: a group of %d failed", self.name, len(group))
                for job in group:
                    job.settle(self._failed(exc))
