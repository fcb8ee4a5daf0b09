"""Attacks on SQLite's writer handed between processes through `<registry>-writer`
(adapters/writer_file.py, wired in adapters/database.py and service_layer/unit_of_work.py): a
Database disposed and used again, a paused holder against a burst of writes, the file deleted or
named through a symlink, made by another user, inherited by a forked child, left open by a
Database dropped without dispose; and, as guards, the file held from BEGIN to the connection's
return, an interrupt the moment it is taken, nested units, odd URLs, real processes stopped and
killed among writers that know nothing of the file, many open/dispose cycles and PostgreSQL.

As in tests/integration/test_sqlite_writer_file.py, a descriptor of the file opened by the test
(or a second Database) is what another process looks like to the kernel: flock locks of two open
file descriptions conflict whatever process holds them."""

from __future__ import annotations

import fcntl
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from xerolink_poster.adapters import writer_file as writer_file_module
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import wait_for
from tests.fixtures.processes import child_env
from tests.fixtures.threads import Call
from tests.fixtures.writer_file import (
    ROWS,
    a_write,
    free_elsewhere,
    insert_row,
    registry_at,
    rows_of,
    sqlite_registry,  # noqa: F401  (the `registry` fixture)
    waits_behind,
    without_dac_override,
    writer_path,
)


def fds_under(directory: Path) -> list[str]:
    """The files under `directory` this process has descriptors open on."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(f"{directory}/"):
            found.append(target)
    return found


class Interrupted(Exception):
    """What a signal handler raises in the main thread (as Ctrl-C's KeyboardInterrupt would)."""


# A poster process inside a write unit that has run no statement yet: it holds the writer file,
# not SQLite's lock (between its turn and BEGIN IMMEDIATE, or a unit's Python before its first
# query).
HOLDER_BEFORE_BEGIN = """
import sys, time
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
db = open_database(sys.argv[1])
with UnitOfWork(db):
    print("holding", flush=True)
    time.sleep(120)
"""

# A poster process writing rows one transaction each, printing each once committed.
POSTER_WRITER = """
import sys
from sqlalchemy import text
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import run_in_transaction
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = open_database(url)
for n in range(count):
    def work(uow, n=n):
        uow._session.execute(text("INSERT INTO attack_rows (writer, n) VALUES (:w, :n)"), {"w": name, "n": n})
    run_in_transaction(db, work)
    print(n, flush=True)
db.dispose()
"""

# A program that knows nothing of the writer file (the sqlite3 shell, a backup, an older poster).
PLAIN_WRITER = """
import sqlite3, sys
path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(path, timeout=30, isolation_level=None)
for n in range(count):
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO attack_rows (writer, n) VALUES (?, ?)", (name, n))
    conn.execute("COMMIT")
    print(n, flush=True)
"""


def python(script: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
        **popen,
    )


def ended(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
    proc.wait(10)


# -- defects -------------------------------------------------------------------------------------


def test_a_database_disposed_with_a_write_in_flight_takes_writes_again(registry: Database) -> None:
    """PosterApp.stop disposes the registry once dispatcher.stop's joins (10 s a worker) return,
    whether or not a worker is still in its Xero call; SQLAlchemy's Engine.dispose leaves the
    engine usable (a new pool), so before the writer file the worker then wrote Xero's answer.
    Now dispose closes the writer file for good and every later write unit raises RuntimeError
    ("the writer file ... was closed"), which run_in_transaction does not retry: the answer is
    lost, where it used to be written."""
    holding, let_go = threading.Event(), threading.Event()

    def in_flight(uow: UnitOfWork) -> str:
        uow._session.execute(text("INSERT INTO attack_rows (writer, n) VALUES ('in-flight', 0)"))
        holding.set()
        let_go.wait(10)
        return "written"

    first = Call(lambda: run_in_transaction(registry, in_flight))
    assert holding.wait(5)
    registry.dispose()
    let_go.set()
    assert first.result(10) == "written"
    assert rows_of(registry.url.removeprefix("sqlite:///"), "in-flight") == [0]
    later = Call(lambda: insert_row(registry, "after-dispose", 0))
    assert later.result(10) == "written", "a write after dispose failed where the engines still take it"


def test_a_paused_holder_delays_a_burst_of_writes_by_the_bound_once_not_once_each(registry: Database) -> None:
    """A poster paused (SIGSTOP, a frozen VM) holding the writer file but not yet SQLite's lock.
    Before the file, the other poster's writes went straight in: SQLite's lock is free. Now each
    waits `wait_s` for the file while holding its process's turn, so ten writes queued together
    take ten bounds one after another (30 s each by default: the tenth Post of a burst waits five
    minutes). The docstring promises a delay of `wait_s` at most."""
    assert registry.writer_file is not None
    registry.writer_file.wait_s = 0.4
    holder = python(HOLDER_BEFORE_BEGIN, registry.url)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        holder.send_signal(signal.SIGSTOP)
        assert not free_elsewhere(writer_path(registry))
        writes = [a_write(registry, f"tenant-{i}") for i in range(10)]
        for write in writes:
            assert write.result(20) == "written"
        slowest = max(write.took or 0.0 for write in writes)
        assert slowest < 2.0, f"the last of ten writes waited {slowest:.1f} s: the 0.4 s bound once per write"
    finally:
        ended(holder)


def test_the_writer_file_takes_the_registrys_owner_and_mode_as_sqlites_own_files_do(tmp_path: Path) -> None:
    """SQLite makes `-wal` and `-shm` with the database file's mode (and, running as root, its
    owner), so a registry shared by a group, or opened once by root for an operator's command,
    stays usable by the poster's own user. The writer file is made 0600 for whoever opened the
    registry first: the next process of another user cannot open it (see the next test)."""
    path = tmp_path / "registry.db"
    sqlite3.connect(path).close()
    os.chmod(path, 0o660)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    db = open_database(f"sqlite:///{path}")
    try:
        with UnitOfWork(db) as uow:
            uow._session.execute(text(ROWS))
            wal = os.stat(f"{path}-wal")
            writer = os.stat(f"{path}-writer")
            uow.commit()
    finally:
        db.dispose()
    assert wal.st_mode & 0o777 == 0o660, "SQLite itself no longer follows the registry's mode"
    assert (writer.st_mode & 0o777, writer.st_uid, writer.st_gid) == (
        wal.st_mode & 0o777,
        wal.st_uid,
        wal.st_gid,
    ), "the writer file's mode and owner differ from the registry's -wal"


def test_a_writer_file_another_user_made_does_not_stop_a_poster_opening_the_registry(tmp_path: Path) -> None:
    """The registry is the poster's; `registry.db-writer` was left, 0600, by a process of another
    user. The poster (as root, uid 0 without CAP_DAC_OVERRIDE, so that owner bits apply to it as
    to any user; as any other user, its own file with no permission bits, which it cannot open
    either) opened and wrote the registry before the file existed; now open_database raises
    PermissionError and the poster does not start, though the file only shortens waits."""
    db = registry_at(tmp_path / "registry.db")
    db.dispose()
    writer = writer_path(db)
    prefix = without_dac_override()
    if os.geteuid() == 0:
        os.chown(writer, 65534, 65534)  # as if a process of `nobody` had made it
        os.chmod(writer, 0o600)
    else:
        os.chmod(writer, 0o000)
    script = textwrap.dedent(POSTER_WRITER)
    done = subprocess.run(
        [*prefix, sys.executable, "-c", script, db.url, "p", "1"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-600:]
    assert rows_of(tmp_path / "registry.db", "p") == [0]


def test_a_poster_started_after_the_writer_file_was_deleted_still_waits_for_one_running(tmp_path: Path) -> None:
    """An operator removes `registry.db-writer` as a stale lock file. The running poster keeps
    its descriptor of the deleted file; a poster started later makes a new one, and the two lock
    different files: the later one's writes go to SQLite's busy handler again, for good, and no
    log says so. (SQLite's lock still decides: what is lost is the file's whole purpose.)"""
    running = registry_at(tmp_path / "registry.db")
    later: Database | None = None
    try:
        os.unlink(writer_path(running))
        later = open_database(running.url)
        waits_behind(running, later, "the later poster's write waiting for the running poster's writer file")
    finally:
        running.dispose()
        if later is not None:
            later.dispose()


def test_a_registry_named_through_a_symlink_shares_the_writer_file_of_its_real_name(tmp_path: Path) -> None:
    """SQLite follows the symlink (its -wal and -shm lie beside the real file); the writer file is
    named from the URL, so a poster configured with the link and one with the real path (or the
    CLI) never wait for each other's file."""
    (tmp_path / "data").mkdir()
    real = tmp_path / "data" / "registry.db"
    link = tmp_path / "registry.db"
    link.symlink_to(real)
    through_link = registry_at(link)
    by_real_name = open_database(f"sqlite:///{real}")
    try:

        def wal_beside_the_real_file() -> None:
            assert Path(f"{real}-wal").exists() and not Path(f"{link}-wal").exists()

        waits_behind(
            through_link,
            by_real_name,
            "a write by the real name waiting for the writer file held through the link",
            wal_beside_the_real_file,
        )
    finally:
        through_link.dispose()
        by_real_name.dispose()


def test_a_forked_child_does_not_share_its_parents_hold_on_the_writer_file(registry: Database) -> None:
    """A child forked from a poster (multiprocessing's default start method on Linux) inherits
    the writer file's open file description, and flock locks belong to the description: the
    child takes the file its parent holds at once, and its let-go frees the parent's hold in the
    middle of the parent's transaction."""
    writer = registry.writer_file
    assert writer is not None
    with UnitOfWork(registry) as uow:
        uow.leases.get_lease("tenant-1")
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: no pytest, no cleanup
            code = 3
            try:
                os.close(read)
                writer.wait_s = 0.2
                took = writer.take()
                if took:
                    writer.let_go()
                code = 1 if took else 0
            finally:
                os._exit(code)
        os.close(write)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        still_held = not free_elsewhere(writer_path(registry))
    took_it = os.waitstatus_to_exitcode(status) == 1
    assert (took_it, still_held) == (False, True), (
        f"the child took the writer file its parent was holding: {took_it}; "
        f"the parent still held it after the child let go: {still_held}"
    )


def test_a_database_dropped_without_dispose_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """bootstrap.start opens the registry and then migrates, reseals and binds the port; if one of
    those raises, nothing disposes the Database. Its engines' SQLite connections close as they
    are collected; the writer file's descriptor stays open for the life of the process."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_at(tmp_path / "registry.db").dispose()
    # Two, each collected: one descriptor left is a leak already, and late in a full run each
    # collection of the test process's heap takes seconds (ten took 26 s of CI).
    for _ in range(2):
        db = open_database(url)
        run_in_transaction(db, lambda uow: uow.leases.get_lease("tenant-1"))
        del db
        gc.collect()
    assert fds_under(tmp_path) == [], "descriptors left open by two Databases dropped"


# -- guards (these hold) -------------------------------------------------------------------------


def test_the_writer_file_is_held_from_begin_to_the_connections_return(registry: Database) -> None:
    """At BEGIN IMMEDIATE, at COMMIT or ROLLBACK, and as the connection goes back to the pool
    (after its reset), the file is held; once the unit has ended, it is free, whether the unit
    committed, raised, or was refused a unique key and run again."""
    path = writer_path(registry)
    seen: list[tuple[str, bool]] = []

    def look(name: str) -> Any:
        return lambda *args: seen.append((name, not free_elsewhere(path)))

    listeners = [
        (registry.write, "begin", look("begin")),
        (registry.write, "commit", look("commit")),
        (registry.write, "rollback", look("rollback")),
        (registry.write.pool, "checkin", look("checkin")),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        assert insert_row(registry, "held", 0) == "written"
        with pytest.raises(RuntimeError, match="boom"), UnitOfWork(registry) as uow:
            uow._session.execute(text("INSERT INTO attack_rows (writer, n) VALUES ('held', 1)"))
            raise RuntimeError("boom")
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
    names = [name for name, _ in seen]
    assert {"begin", "commit", "rollback", "checkin"} <= set(names), names
    assert all(held for _, held in seen), f"the file was free at {[n for n, held in seen if not held]}"
    assert free_elsewhere(path)
    assert rows_of(path.with_name("registry.db"), "held") == [0]


def test_an_interrupt_the_moment_the_writer_file_is_taken_leaves_turn_and_file_free(
    registry: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal handler raising right after flock returned (Python runs handlers between
    bytecodes): the unit's __enter__ fails after taking both, and must give both back."""

    def flock_then_interrupt(fd: int, operation: int) -> None:
        fcntl.flock(fd, operation)
        if operation & fcntl.LOCK_EX:
            raise Interrupted

    fake: Any = types.SimpleNamespace(
        LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, LOCK_UN=fcntl.LOCK_UN, flock=flock_then_interrupt
    )
    monkeypatch.setattr(writer_file_module, "fcntl", fake)
    with pytest.raises(Interrupted):
        run_in_transaction(registry, lambda uow: uow.leases.get_lease("tenant-1"))
    monkeypatch.undo()
    assert free_elsewhere(writer_path(registry)), "the interrupted unit kept the writer file"
    assert registry.write_turns is not None and not registry.write_turns.held_here()
    assert a_write(registry).result(5) == "written"


def test_a_nested_write_unit_refused_leaves_the_outer_holding_the_writer_file(registry: Database) -> None:
    path = writer_path(registry)
    with UnitOfWork(registry) as outer:
        with pytest.raises(RuntimeError, match="inside another"), UnitOfWork(registry):
            pass
        assert not free_elsewhere(path), "the refused inner unit let go of the outer's writer file"
        outer._session.execute(text("INSERT INTO attack_rows (writer, n) VALUES ('outer', 0)"))
        outer.commit()
    assert free_elsewhere(path)
    assert rows_of(path.with_name("registry.db"), "outer") == [0]


@pytest.mark.parametrize("form", ["relative", "spaces", "percent-encoded", "query"])
def test_the_writer_file_lies_beside_the_file_sqlite_writes(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However the URL names the registry, the file held is `<the file SQLite writes>-writer`,
    the one another process opening it by its plain absolute path would take."""
    spaced = tmp_path / "a dir with spaces"
    spaced.mkdir()
    actual, url = {
        "relative": (tmp_path / "registry.db", "sqlite:///registry.db"),
        "spaces": (spaced / "registry.db", f"sqlite:///{spaced}/registry.db"),
        "percent-encoded": (spaced / "registry.db", f"sqlite:///{tmp_path}/a%20dir%20with%20spaces/registry.db"),
        "query": (tmp_path / "registry.db", f"sqlite:///{tmp_path}/registry.db?timeout=5"),
    }[form]
    monkeypatch.chdir(tmp_path)
    db = open_database(url)
    try:
        migrate(db)
        with UnitOfWork(db) as uow:
            uow.leases.get_lease("tenant-1")
            assert Path(f"{actual}-wal").exists()
            assert not free_elsewhere(f"{actual}-writer"), "the file beside the registry was not held"
        assert free_elsewhere(f"{actual}-writer")
    finally:
        db.dispose()


def test_poster_processes_stopped_and_killed_among_plain_writers_lose_and_double_no_row(
    registry: Database,
) -> None:
    """Three poster processes and one program that knows nothing of the file write at once; one
    poster is paused (SIGSTOP) and resumed, one killed mid-stream. Every row the others wrote is
    there once, every row the killed one reported is there once (and at most its one unreported
    transaction besides), nobody fails, and the file is free at the end."""
    path = Path(registry.url.removeprefix("sqlite:///"))
    count = 120
    procs = {
        "steady": python(POSTER_WRITER, registry.url, "steady", str(count)),
        "paused": python(POSTER_WRITER, registry.url, "paused", str(count)),
        "killed": python(POSTER_WRITER, registry.url, "killed", "100000"),
        "plain": python(PLAIN_WRITER, str(path), "plain", str(count)),
    }
    reported: dict[str, list[int]] = {name: [] for name in procs}

    def read(name: str) -> None:
        out = procs[name].stdout
        assert out is not None
        for line in out:
            reported[name].append(int(line))

    readers = [threading.Thread(target=read, args=(name,), daemon=True) for name in procs]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: len(reported["paused"]) >= 10, timeout=20, what="the paused poster's first rows")
        procs["paused"].send_signal(signal.SIGSTOP)
        time.sleep(0.5)  # paused while the others write
        procs["paused"].send_signal(signal.SIGCONT)
        wait_for(lambda: len(reported["killed"]) >= 30, timeout=20, what="the killed poster's first rows")
        procs["killed"].send_signal(signal.SIGKILL)
        for name in ("steady", "paused", "plain"):
            assert procs[name].wait(30) == 0, f"{name} failed"
        procs["killed"].wait(10)
        for reader in readers:
            reader.join(10)
    finally:
        for proc in procs.values():
            ended(proc)
    for name in ("steady", "paused", "plain"):
        assert rows_of(path, name) == list(range(count)), f"{name}'s rows lost or written twice"
    killed = rows_of(path, "killed")
    assert len(killed) == len(set(killed)), "a row of the killed poster was written twice"
    assert set(reported["killed"]) <= set(killed), "a row the killed poster reported committed is gone"
    assert len(set(killed) - set(reported["killed"])) <= 1
    assert free_elsewhere(writer_path(registry))


def test_open_write_and_dispose_many_times_leaves_no_descriptor_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_at(tmp_path / "registry.db").dispose()
    for _ in range(100):
        db = open_database(url)
        run_in_transaction(db, lambda uow: uow.leases.get_lease("tenant-1"))
        db.dispose()
    assert fds_under(tmp_path) == []


@pytest.mark.postgres
def test_postgresql_writes_take_no_writer_file_and_go_on_after_dispose(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PostgreSQL takes concurrent writers: no flock at all (any would fail here), no file made,
    and a Database disposed still writes, as it always did."""
    calls: list[int] = []

    def refuse(fd: int, operation: int) -> None:
        calls.append(operation)
        raise AssertionError("flock on PostgreSQL")

    fake: Any = types.SimpleNamespace(LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB, LOCK_UN=fcntl.LOCK_UN, flock=refuse)
    monkeypatch.setattr(writer_file_module, "fcntl", fake)
    monkeypatch.chdir(tmp_path)
    db = open_database(postgres_url)
    try:
        migrate(db)
        assert db.writer_file is None
        assert a_write(db).result(10) == "written"
        db.dispose()
        assert a_write(db).result(10) == "written"
    finally:
        db.dispose()
    assert calls == []
    assert not list(tmp_path.iterdir()), "a file was made beside the process on PostgreSQL"
