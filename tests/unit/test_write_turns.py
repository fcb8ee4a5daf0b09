"""SQLite's one writer, handed over in turns: callers' transactions before the dispatcher's,
first come first served within each, and the dispatcher's still served under any load of
callers. A plain lock let a Post wait behind every queued dispatcher write (seconds while
200 organisations drained). On PostgreSQL only the dispatcher's transactions take turns."""

from __future__ import annotations

import threading

import pytest
from xerolink_poster.adapters.write_turns import WriteTurns, serve_callers_on_this_thread, serving_callers

from tests.fixtures.poster import wait_for


class Writers:
    """Threads that queue for the writer one at a time (each queued before the next starts) and
    write down the order they got it in."""

    def __init__(self, turns: WriteTurns) -> None:
        self.turns = turns
        self.order: list[str] = []
        self.threads: list[threading.Thread] = []

    def queue(self, name: str, urgent: bool) -> None:
        before = sum(self.turns.waiting)

        def write() -> None:
            self.turns.acquire(urgent)
            self.order.append(name)
            self.turns.release()

        thread = threading.Thread(target=write, name=name)
        thread.start()
        self.threads.append(thread)
        wait_for(lambda: sum(self.turns.waiting) == before + 1)

    def finish(self) -> list[str]:
        for thread in self.threads:
            thread.join(5)
        return self.order


def test_a_callers_write_goes_before_the_dispatchers_queued_earlier() -> None:
    turns = WriteTurns()
    assert turns.acquire(urgent=False)
    writers = Writers(turns)
    for n in range(3):
        writers.queue(f"dispatcher-{n}", urgent=False)
    writers.queue("post-0", urgent=True)
    writers.queue("post-1", urgent=True)
    turns.release()
    assert writers.finish() == ["post-0", "post-1", "dispatcher-0", "dispatcher-1", "dispatcher-2"]


def test_the_dispatcher_gets_a_turn_after_a_run_of_callers() -> None:
    turns = WriteTurns(urgent_run=2)
    assert turns.acquire(urgent=True)
    writers = Writers(turns)
    writers.queue("dispatcher-0", urgent=False)
    for n in range(5):
        writers.queue(f"post-{n}", urgent=True)
    turns.release()
    # The holder's turn was a caller's: one more, then the dispatcher, then two more, ...
    assert writers.finish() == ["post-0", "dispatcher-0", "post-1", "post-2", "post-3", "post-4"]


def test_a_free_writer_is_taken_at_once_and_given_back() -> None:
    turns = WriteTurns()
    assert turns.acquire(urgent=False, timeout=0)
    assert not turns.acquire(urgent=True, timeout=0.01)
    turns.release()
    assert turns.acquire(urgent=True, timeout=0)
    turns.release()
    with pytest.raises(RuntimeError):
        turns.release()


def test_a_waiter_that_gives_up_leaves_no_place_in_the_queue() -> None:
    turns = WriteTurns()
    assert turns.acquire(urgent=False)
    assert not turns.acquire(urgent=True, timeout=0.02)
    assert turns.waiting == (0, 0)
    turns.release()
    # Nobody was handed the writer: it is free.
    assert turns.acquire(urgent=False, timeout=0)
    turns.release()


def test_no_waiter_barges_in_ahead_of_those_queued() -> None:
    """The writer goes straight to the next in the queue as it is released: a thread arriving
    then (before the next one has even run) waits its turn, so a queued Post is never passed."""
    turns = WriteTurns()
    assert turns.acquire(urgent=False)
    got_it, done = threading.Event(), threading.Event()

    def queued() -> None:
        turns.acquire(urgent=True)
        got_it.set()
        done.wait(5)
        turns.release()

    thread = threading.Thread(target=queued)
    thread.start()
    wait_for(lambda: turns.waiting == (1, 0))
    turns.release()
    assert not turns.acquire(urgent=True, timeout=0)
    assert got_it.wait(5)
    done.set()
    thread.join(5)
    assert turns.acquire(urgent=False, timeout=0)
    turns.release()


def test_threads_that_answer_callers_say_so() -> None:
    seen: list[bool] = []

    def answer() -> None:
        serve_callers_on_this_thread()
        seen.append(serving_callers())

    thread = threading.Thread(target=answer)
    thread.start()
    thread.join(5)
    assert seen == [True]
    assert not serving_callers()  # the mark is the thread's own


def test_where_callers_do_not_wait_only_the_dispatchers_transactions_take_turns() -> None:
    """PostgreSQL: a caller's write runs beside the dispatcher's one at a time, so a dispatcher
    write stuck on another process's lock keeps no caller waiting."""
    assert WriteTurns().needed(urgent=True) and WriteTurns().needed(urgent=False)
    turns = WriteTurns(callers_wait=False)
    assert not turns.needed(urgent=True)
    assert turns.needed(urgent=False)


def test_the_writer_handed_over_belongs_to_the_waiter_it_went_to() -> None:
    """A thread interrupted right after it was handed the writer can still tell that it holds
    it, and give it back (UnitOfWork does): the hand-over names the waiter's thread."""
    turns = WriteTurns()
    assert turns.acquire(urgent=False)
    assert turns.held_here()
    seen: list[bool] = []

    def waiter() -> None:
        turns.acquire(urgent=True)
        seen.append(turns.held_here())
        turns.release()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait_for(lambda: turns.waiting == (1, 0))
    turns.release()
    assert not turns.held_here()
    thread.join(5)
    assert seen == [True]
    assert not turns.held_here() and turns.waiting == (0, 0)
