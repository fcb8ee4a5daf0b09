"""Attacks on "callers' transactions go before the dispatcher's" (adapters/write_turns.py and the
callers' pool of adapters/database.py): a waiter interrupted in its queue, a waiter timing out as
it is handed the writer, a steady stream of callers against one background writer, and the
callers' PostgreSQL pool after dispose."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from xerolink_mapper import samples
from xerolink_poster.adapters import write_turns as write_turns_module
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.write_turns import WriteTurns
from xerolink_poster.service_layer.posting import GroupSettings
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import accepting_poster, wait_for
from tests.fixtures.threads import started


class Interrupted(Exception):
    """What a signal handler raises in the main thread (as Ctrl-C's KeyboardInterrupt would)."""


@contextmanager
def interrupt_main_thread_after(seconds: float) -> Iterator[None]:
    """Raises Interrupted in the main thread `seconds` from now, wherever it is waiting."""

    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise Interrupted

    # SIGUSR1 from a timer thread, not SIGALRM: pytest-timeout keeps the alarm for itself.
    previous = signal.signal(signal.SIGUSR1, handler)
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, previous)


# -- defects -------------------------------------------------------------------------------------


def test_a_waiter_interrupted_in_its_queue_leaves_the_writer_free() -> None:
    """A thread interrupted while it waits for the writer (KeyboardInterrupt, a signal handler's
    exception) must leave no place in the queue: with the threading.Lock this replaced, the lock
    is simply free once its holder releases it. WriteTurns leaves the interrupted waiter's baton
    queued, hands the writer to it on the next release, and nobody ever gives it back."""
    turns = WriteTurns()
    assert turns.acquire(urgent=False)
    with interrupt_main_thread_after(0.2), pytest.raises(Interrupted):
        turns.acquire(urgent=True)
    turns.release()
    assert turns.waiting == (0, 0), "the interrupted waiter is still queued"
    assert turns.acquire(urgent=False, timeout=2.0), "the writer went to a waiter that had gone"
    turns.release()


def test_an_interrupted_write_on_sqlite_does_not_stop_every_later_write(tmp_path: Path) -> None:
    """The same through UnitOfWork: a write unit interrupted while it queues for SQLite's writer
    (e.g. a CLI command's main thread on Ctrl-C, a signal handler raising) leaves the process with
    no writer at all once the holder finishes: every later write transaction waits forever."""
    db = open_database(f"sqlite:///{tmp_path}/registry.db")
    try:
        migrate(db)
        let_go = threading.Event()
        holding = threading.Event()

        def holder() -> None:
            with UnitOfWork(db):
                holding.set()
                let_go.wait(10)

        first = started(holder)
        assert holding.wait(5)
        with interrupt_main_thread_after(0.2), pytest.raises(Interrupted):
            UnitOfWork(db).__enter__()
        let_go.set()
        first.join(5)
        written: list[str] = []
        later = started(lambda: written.append(run_in_transaction(db, lambda uow: "written")))
        later.join(3)
        assert written == ["written"], "a write after the interrupted one never got SQLite's writer"
    finally:
        db.dispose()


# -- guards (these hold) -------------------------------------------------------------------------


class _HandedOverAsItTimesOut:
    """A baton whose timed wait lets the holder hand it over and then reports a timeout: the
    narrowest race of acquire(timeout=...)."""

    def __init__(self, turns: WriteTurns) -> None:
        self._lock = threading.Lock()
        self._turns = turns

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout == -1:
            return self._lock.acquire(blocking)
        releaser = threading.Thread(target=self._turns.release)
        releaser.start()
        releaser.join(5)
        return False  # "timed out", though the writer is this waiter's now

    def release(self) -> None:
        self._lock.release()


def test_a_waiter_timing_out_as_it_is_handed_the_writer_keeps_it(monkeypatch: pytest.MonkeyPatch) -> None:
    turns = WriteTurns()
    assert turns.acquire(urgent=False)
    fake_threading: Any = types.SimpleNamespace(Lock=lambda: _HandedOverAsItTimesOut(turns))
    monkeypatch.setattr(write_turns_module, "threading", fake_threading)
    assert turns.acquire(urgent=True, timeout=0.5), "handed the writer, it must not report a timeout"
    monkeypatch.undo()
    # This thread holds the writer now: nobody else gets it until it gives it back.
    assert not turns.acquire(urgent=False, timeout=0.05)
    turns.release()
    assert turns.acquire(urgent=False, timeout=0.5)
    turns.release()
    assert turns.waiting == (0, 0)


def test_a_background_writer_is_not_starved_by_a_steady_stream_of_callers() -> None:
    """Eight callers' threads take the writer back to back for a second; a dispatcher's write
    still gets it within a few turns, and every caller waits at most one dispatcher's turn."""
    turns = WriteTurns()
    stop = threading.Event()
    order: list[str] = []

    def caller() -> None:
        while not stop.is_set():
            turns.acquire()
            order.append("caller")
            time.sleep(0.001)
            turns.release()

    callers = [started(caller, callers=True) for _ in range(8)]
    wait_for(lambda: len(order) > 50)
    background_got_it: list[float] = []

    def background() -> None:
        for _ in range(5):
            began = time.monotonic()
            turns.acquire()
            order.append("background")
            background_got_it.append(time.monotonic() - began)
            turns.release()

    dispatcher = started(background)
    dispatcher.join(10)
    stop.set()
    for thread in callers:
        thread.join(5)
    assert len(background_got_it) == 5
    assert max(background_got_it) < 1.0
    # Never two dispatcher turns while callers wait, and at most urgent_run callers in a row
    # while the dispatcher waits.
    tail = order[order.index("background") - turns.urgent_run :]
    assert "background,background" not in ",".join(tail)


@pytest.mark.postgres
def test_dispose_closes_the_callers_pool_too(postgres_url: str) -> None:
    """Database.dispose closes every connection it opened, the callers' pool's included: many
    Database objects alive in a test session must not run PostgreSQL out of connections."""
    db = open_database(postgres_url)
    try:
        migrate(db)
        barrier = threading.Barrier(10)

        def caller() -> None:
            with UnitOfWork(db, write=False) as uow:
                uow.connections.get_connection("nobody")
                barrier.wait(10)
            run_in_transaction(db, lambda uow: uow.connections.get_connection("nobody"))

        threads = [started(caller, callers=True) for _ in range(10)]
        for thread in threads:
            thread.join(20)
        run_in_transaction(db, lambda uow: uow.connections.get_connection("nobody"))
    finally:
        db.dispose()
    probe = create_engine(postgres_url, poolclass=NullPool)
    try:
        with probe.connect() as conn:
            others = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        probe.dispose()
    assert others == 0


@pytest.mark.postgres
def test_32_callers_posting_at_once_on_postgres_are_all_answered_while_the_shared_pool_is_held(
    postgres_url: str, mapper_target: str
) -> None:
    """The poster's default 32 gRPC workers share the callers' 2 + 8 connections: 32 batch Posts
    and reads at once, with every connection of the dispatcher's pool taken, all finish well
    inside the 30 s pool timeout (no RPC path holds one unit of work while it opens another)."""
    db = open_database(postgres_url)
    mapper = MapperClient(mapper_target)
    held = []
    try:
        migrate(db)
        poster = accepting_poster(db, mapper, GroupSettings(window=0.0, max_size=64))
        held = [db.write.connect() for _ in range(30)]
        barrier = threading.Barrier(32)
        answered: list[int] = []
        failures: list[BaseException] = []

        def caller(index: int) -> None:
            try:
                barrier.wait(10)
                results = poster.post_many("firm-1", [samples.client_bill(100 + index)], actor="caller:test")
                poster.post("firm-1", samples.client_bill(200 + index), actor="caller:test")
                with UnitOfWork(db, write=False) as uow:
                    uow.connections.get_connection("firm-1")
                answered.append(len(results))
            except BaseException as exc:  # reported below
                failures.append(exc)

        began = time.monotonic()
        threads = [started(functools.partial(caller, i), callers=True) for i in range(32)]
        for thread in threads:
            thread.join(40)
        assert failures == []
        assert answered == [1] * 32
        assert time.monotonic() - began < 15
    finally:
        for connection in held:
            connection.close()
        mapper.close()
        db.dispose()
