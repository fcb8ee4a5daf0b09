"""Callers of a group commit stage (service_layer/group_commit.py) waiting behind a group being
handled: each is woken for its own sake (its jobs taken, or its turn to lead), not by every caller
that arrives after it. The dispatcher's answer groups have dozens of callers waiting at once in a
deep drain, and each wake-up costs the interpreter lock and a system call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import pytest
from xerolink_poster.service_layer.group_commit import GroupQueue, Job

FOLLOWERS = 24


def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the queue did not reach the state waited for")
        time.sleep(0.001)


@pytest.mark.parametrize("max_size", [1, 4, 64])
def test_callers_waiting_behind_a_group_are_woken_once_each_not_by_every_later_arrival(max_size: int) -> None:
    entered, release = threading.Event(), threading.Event()
    handled: list[list[int]] = []

    def handle(group: list[Job[int, int]]) -> list[None]:
        if not entered.is_set():
            entered.set()
            assert release.wait(10)
        handled.append([job.payload for job in group])
        for job in group:
            job.settle(job.payload * 10)
        return []

    queue: GroupQueue[int, int, None] = GroupQueue("test", handle, lambda exc: exc, 0.0, max_size)
    jobs = [Job(n, Future[int]()) for n in range(FOLLOWERS + 1)]
    threads = [threading.Thread(target=queue.run, args=([job],)) for job in jobs]
    threads[0].start()  # leads, and holds the stage until released
    _until(entered.is_set)
    for n, thread in enumerate(threads[1:], start=1):
        thread.start()
        _until(lambda: queue.waiting == n)  # noqa: B023 - called before n changes
    time.sleep(0.05)  # let any caller woken by the arrivals run
    woken_by_arrivals = queue.wakeups
    release.set()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert [job.future.result(0) for job in jobs] == [n * 10 for n in range(FOLLOWERS + 1)]
    assert sorted(n for group in handled for n in group) == list(range(FOLLOWERS + 1))
    assert all(len(group) <= max_size for group in handled)
    # Nobody waits for an arrival: no leader waits out a window here.
    assert woken_by_arrivals == 0
    # Each follower is woken when its job is taken, or to lead and then when its job is taken.
    assert queue.wakeups <= 2 * FOLLOWERS, queue.wakeups


def test_a_leader_waiting_out_its_window_is_woken_by_arrivals_and_closes_the_group_when_full() -> None:
    groups: list[list[int]] = []

    def handle(group: list[Job[int, int]]) -> list[None]:
        groups.append([job.payload for job in group])
        for job in group:
            job.settle(job.payload)
        return []

    # A window far longer than the test: the group closes because it is full, not on time.
    queue: GroupQueue[int, int, None] = GroupQueue("test", handle, lambda exc: exc, 30.0, 3)
    jobs = [Job(n, Future[int]()) for n in range(3)]
    threads = [threading.Thread(target=queue.run, args=([job],)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert len(groups) == 1 and sorted(groups[0]) == [0, 1, 2]
