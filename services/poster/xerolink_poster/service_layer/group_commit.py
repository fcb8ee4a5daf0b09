"""Group commit: Posts that arrive while another group is being handled wait and are then handled
together, so concurrent callers share one mapper call and one database transaction instead of
queueing for one each.

There is no worker thread: the first caller to find the stage idle leads it, handling what is
queued (its own request included) in its own thread, so a lone Post pays no hand-off between
threads. Callers arriving meanwhile queue; when the leader is done, one of them leads the next
group with everything queued by then. Each request carries its caller's future; the handler
settles every future of its group, and a caller learns its outcome only when its group's work is
done (for a write: after the commit that holds its rows), so grouping never weakens durability."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")
F = TypeVar("F")


@dataclass(eq=False)
class Job(Generic[P, R]):
    payload: P
    future: Future[R]
    taken: bool = field(default=False, repr=False)
    # What its caller waits on while another leads (GroupQueue.run): woken when the job is taken.
    waiter: threading.Condition | None = field(default=None, repr=False)

    def settle(self, result: R | BaseException) -> None:
        """Sets the result or the error once; a job settled already keeps its first outcome."""
        if self.future.done():
            return
        if isinstance(result, BaseException):
            self.future.set_exception(result)
        else:
            self.future.set_result(result)


class GroupQueue(Generic[P, R, F]):
    """One stage handled a group at a time by whichever caller leads it. `handle` settles the
    jobs of a group (or some of them) and returns follow-up work for the leader to carry on with
    outside the stage; if it raises, `failed` turns the exception into each unsettled job's
    error."""

    def __init__(
        self,
        name: str,
        handle: Callable[[list[Job[P, R]]], list[F]],
        failed: Callable[[BaseException], BaseException],
        window: float = 0.0,
        max_size: int = 256,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"{name}: a group holds at least one job, not {max_size}")
        self.name = name
        self._handle = handle
        self._failed = failed
        self.window = window
        self.max_size = max_size
        self._queue: deque[Job[P, R]] = deque()
        self._lock = threading.Lock()
        # Each caller waiting behind the leader waits on a condition of its own, woken when its
        # jobs are taken or when it is its turn to lead: one shared condition woke every caller
        # for each arrival, and dozens wait at once behind the dispatcher's answer groups.
        self._followers: deque[tuple[list[Job[P, R]], threading.Condition]] = deque()
        # The leader waiting out its window, woken by arrivals.
        self._arrivals = threading.Condition(self._lock)
        self._busy = False
        # Handled groups and jobs, and how often a waiting caller woke, for the figures of the
        # benchmark and the tests.
        self.groups = 0
        self.jobs = 0
        self.largest = 0
        self.wakeups = 0

    @property
    def waiting(self) -> int:
        """Jobs queued for the next group."""
        with self._lock:
            return len(self._queue)

    def run(self, jobs: list[Job[P, R]]) -> list[F]:
        """Queues the jobs and returns once they are taken into a group: at once, with the
        follow-up work of the groups this thread led, or empty when another thread took them."""
        with self._lock:
            self._queue.extend(jobs)
            if self._busy:
                self._arrivals.notify()  # a leader waiting out its window counts these
                self._follow(jobs)
            if all(j.taken for j in jobs):
                return []
            self._busy = True
        follow_ups: list[F] = []
        try:
            while not all(j.taken for j in jobs):
                follow_ups += self._handle_group(self._next_group())
        finally:
            with self._lock:
                self._busy = False
                self._hand_on()
        return follow_ups

    def _hand_on(self) -> None:
        """Wakes the first caller still waiting for a job, to lead next (the lock held)."""
        for waiting, waiter in self._followers:
            if not all(j.taken for j in waiting):
                waiter.notify()
                return

    def _follow(self, jobs: list[Job[P, R]]) -> None:
        """Waits, holding the lock between wake-ups, until the jobs are taken or nobody leads."""
        waiter = threading.Condition(self._lock)
        for job in jobs:
            job.waiter = waiter
        following = (jobs, waiter)
        self._followers.append(following)
        try:
            while self._busy and not all(j.taken for j in jobs):
                waiter.wait()  # holds the lock again when it returns or raises
                self.wakeups += 1
        except BaseException:
            # Interrupted (a signal's handler raised) perhaps just after it was chosen to lead:
            # the next caller leads instead, or nobody would until another arrived.
            self._followers.remove(following)
            if not self._busy:
                self._hand_on()
            raise
        self._followers.remove(following)

    def _next_group(self) -> list[Job[P, R]]:
        with self._lock:
            if self.window > 0:
                deadline = time.monotonic() + self.window
                while len(self._queue) < self.max_size and (left := deadline - time.monotonic()) > 0:
                    self._arrivals.wait(left)
            group = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_size))]
            for job in group:
                job.taken = True
            # Callers whose jobs are in this group stop waiting to lead.
            for waiter in {id(job.waiter): job.waiter for job in group if job.waiter is not None}.values():
                waiter.notify()
        self.groups += 1
        self.jobs += len(group)
        self.largest = max(self.largest, len(group))
        return group

    def _handle_group(self, group: list[Job[P, R]]) -> list[F]:
        try:
            return self._handle(group)
        except BaseException as exc:  # every caller of the group must hear of it
            log.exception("%s: a group of %d failed", self.name, len(group))
            for job in group:
                job.settle(self._failed(exc))
            return []
