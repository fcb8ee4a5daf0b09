"""SQLite's one writer between processes: every write unit holds an exclusive flock(2) on the file
`<registry>-writer` for its transaction (adapters/writer_file.py). Without it, a Post in a second
process on the registry (the roles split) found SQLite's lock taken by a draining poster whose
threads write one transaction after another, and slept in SQLite's busy handler (up to 100 ms a
try) while the lock went back and forth between them: p99 240-730 ms at 100 Posts a second.

Another process is what the tests' own descriptor of the file looks like to the kernel: flock
locks of two open file descriptions conflict whatever process holds them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path

import pytest
from sqlalchemy import text
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import wait_for
from tests.fixtures.processes import child_env
from tests.fixtures.threads import Call
from tests.fixtures.writer_file import (  # noqa: F401  (sqlite_registry: the `registry` fixture)
    a_write,
    free_elsewhere,
    held_elsewhere,
    sqlite_registry,
    writer_path,
)


def sqlite_writer_free(db: Database) -> bool:
    """Whether SQLite's own write lock is free (a writer of another program would get it now)."""
    conn = sqlite3.connect(str(writer_path(db))[: -len("-writer")], timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        conn.close()


def test_a_write_unit_holds_the_writer_file_for_its_transaction_and_a_read_unit_never_does(
    registry: Database,
) -> None:
    path = writer_path(registry)
    with UnitOfWork(registry, write=False):
        assert free_elsewhere(path), "a read took the writer file"
    with UnitOfWork(registry):
        assert not free_elsewhere(path), "a write transaction ran without the writer file"
    assert free_elsewhere(path), "the writer file stayed taken after the transaction ended"
    with pytest.raises(RuntimeError, match="boom"), UnitOfWork(registry):
        raise RuntimeError("boom")
    assert free_elsewhere(path), "a transaction that rolled back kept the writer file"


def test_a_write_waits_for_another_process_holding_the_writer_file_and_goes_in_when_it_lets_go(
    registry: Database,
) -> None:
    """The waiting write holds only its own process's turn meanwhile, not SQLite's lock: a program
    that knows nothing of the file still writes."""
    assert registry.writer_file is not None
    with held_elsewhere(writer_path(registry)):
        write = a_write(registry)
        wait_for(lambda: registry.writer_file is not None and registry.writer_file.waiting == 1, timeout=5)
        assert not write.answered_within(0.2), "the write went in while another process held the writer file"
        assert sqlite_writer_free(registry), "the waiting write took SQLite's lock before the writer file"
    assert write.result(5) == "written"
    assert registry.writer_file.waiting == 0


def test_two_posters_in_one_process_take_the_writer_file_in_turn(tmp_path: Path) -> None:
    """Each Database has turns of its own (two posters in one process, as the tests run them), so
    between them the file is what hands SQLite's writer over."""
    url = f"sqlite:///{tmp_path}/registry.db"
    first, second = open_database(url), open_database(url)
    try:
        migrate(first)
        with UnitOfWork(first):
            write = a_write(second)
            wait_for(lambda: second.writer_file is not None and second.writer_file.waiting == 1, timeout=5)
            assert not write.answered_within(0.2)
        assert write.result(5) == "written"
    finally:
        first.dispose()
        second.dispose()


HOLDER = """
import sys, time
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
db = open_database(sys.argv[1])
with UnitOfWork(db) as uow:
    uow.leases.get_lease("tenant-1")
    print("holding", flush=True)
    time.sleep(120)
"""


def test_a_poster_killed_inside_a_write_leaves_the_writer_file_to_the_next(registry: Database) -> None:
    """The kernel drops a dead process's flock: no lock file left behind to clean up, and the
    next write waits for nothing (the file's bound is set far past the test's patience)."""
    assert registry.writer_file is not None
    registry.writer_file.wait_s = 600.0
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), registry.url],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        assert not free_elsewhere(writer_path(registry)), "the other poster's write did not take the writer file"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert a_write(registry).result(10) == "written"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_holder_that_never_lets_go_delays_a_write_only_for_the_bound(registry: Database) -> None:
    """A paused process (SIGSTOP, a frozen VM) holding the file: the write goes on to SQLite's
    own lock after `wait_s`, as it did before the file, and is not left waiting for good."""
    assert registry.writer_file is not None
    registry.writer_file.wait_s = 0.3
    with held_elsewhere(writer_path(registry)):
        write = a_write(registry)
        assert write.result(10) == "written"
        assert write.took is not None and write.took >= 0.3


def busy_timeout_ms(uow: UnitOfWork) -> int:
    return int(uow._session.execute(text("PRAGMA busy_timeout")).scalar_one())


def test_the_time_a_write_waited_for_the_file_is_taken_off_its_busy_timeout_for_that_write_only(
    registry: Database,
) -> None:
    """One wait for the writer in all: a write that waited for the file waits that much less for
    SQLite's lock (else a holder stuck in SQLite's busy handler made the next write wait twice
    the busy timeout); the connection's own timeout comes back as it returns to the pool."""
    assert registry.writer_file is not None
    registry.writer_file.wait_s = 0.5
    with held_elsewhere(writer_path(registry)):
        waited = Call(lambda: run_in_transaction(registry, busy_timeout_ms))
        shortened = waited.result(10)
    assert shortened <= 30_000 - 500, shortened
    later = [run_in_transaction(registry, busy_timeout_ms) for _ in range(12)]
    assert later == [30_000] * 12, "a connection kept the shortened busy timeout"


class Interrupted(Exception):
    """What a signal handler raises in the main thread (as Ctrl-C's KeyboardInterrupt would)."""


def test_a_write_interrupted_while_it_waits_for_the_writer_file_leaves_turn_and_file_free(
    registry: Database,
) -> None:
    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGUSR1, handler)  # pytest-timeout keeps SIGALRM
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
    try:
        with held_elsewhere(writer_path(registry)):
            timer.start()
            with pytest.raises(Interrupted):
                run_in_transaction(registry, lambda uow: uow.leases.get_lease("tenant-1"))
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGUSR1, previous)
    assert registry.writer_file is not None and registry.writer_file.waiting == 0
    assert a_write(registry).result(5) == "written", "the interrupted write kept its process's turn"
    assert free_elsewhere(writer_path(registry)), "the interrupted write kept the writer file"


@pytest.mark.postgres
def test_postgresql_has_no_writer_file(postgres_url: str) -> None:
    """PostgreSQL takes concurrent writers and waits in the server, not by polling."""
    db = open_database(postgres_url)
    try:
        assert db.writer_file is None
    finally:
        db.dispose()
