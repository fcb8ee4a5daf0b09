"""Second attacks on SQLite's writer handed between processes through `<registry>-writer`
(adapters/writer_file.py after ad4b10f): what its fixes added and what the first attacks
(tests/attack/test_writer_file_attacks.py) and the author's tests (tests/integration/
test_sqlite_writer_file.py) left out. The file replaced by a FIFO, a symlink or a directory, the
registry's directory made unsearchable, moved or read-only; the file made unusable while a write
waits for it; a wait for the file added to SQLite's busy timeout; Database.dispose racing with
writes on another thread; and, as guards, the "stuck" state ending once the file is seen free,
files replaced, deleted or made directories in a loop by another process, a fork while threads
hold and wait for the file, a descriptor number reused after dispose, many Databases, and the
share two poster processes writing continuously each get.

Real processes stand for other posters wherever they can; a descriptor the test opens stands for
one elsewhere (flock locks of two open file descriptions conflict whatever process holds them).
Which process holds the file is read from /proc/locks, as an operator would."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from xerolink_poster.adapters.database import Database, open_database
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from tests.fixtures.poster import wait_for
from tests.fixtures.processes import child_env
from tests.fixtures.threads import Call, started
from tests.fixtures.writer_file import (
    a_write,
    free_elsewhere,
    insert_row,
    registry_at,
    registry_file,
    rows_of,
    sqlite_registry,  # noqa: F401  (the `registry` fixture)
    without_dac_override,
    writer_path,
)


def flock_holders(path: Path | str) -> set[int]:
    """The processes holding a flock on the file now under `path` (proc(5), /proc/locks)."""
    try:
        named = os.stat(path)
    except OSError:
        return set()
    key = f"{os.major(named.st_dev):02x}:{os.minor(named.st_dev):02x}:{named.st_ino}"
    holders = set()
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if "->" in fields or "FLOCK" not in fields:
                continue
            at = fields.index("FLOCK")
            if len(fields) > at + 4 and fields[at + 4] == key:
                holders.add(int(fields[at + 3]))
    return holders


def busy_timeout(db: Database, ms: int) -> None:
    """SQLite's busy timeout of `db`'s write connections from now on: production's 30 s scaled
    down, as a test must be (the writer file's `wait_s` is scaled with it)."""

    @event.listens_for(db.write, "connect")
    def _shorter(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={ms}")

    db.write.dispose()  # the pooled connections were made with 30 s


def python(script: str, *args: str, prefix: list[str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*(prefix or []), sys.executable, "-c", textwrap.dedent(script), *args],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def say(proc: subprocess.Popen[str], line: str = "go") -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{line}\n")
    proc.stdin.flush()


def ended(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
    proc.wait(10)


class Lines:
    """A child's output, line by line as it comes (read on a thread of its own, so that a child
    stuck for good does not stop the test)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        out = proc.stdout
        assert out is not None

        def read() -> None:
            for line in out:
                self._queue.put(line.strip())

        started(read)

    def next(self, timeout: float) -> str | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


# A poster process that writes one row a line of its input, and the same row through a SQLite
# connection of its own that knows nothing of the writer file (the control: what the process
# wrote before the file), saying what became of each.
STEPPED_POSTER = """
import sqlite3, sys
from sqlalchemy import text
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import run_in_transaction
url, name = sys.argv[1], sys.argv[2]
db = open_database(url)
plain = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)

def plain_write(n):
    plain.execute("BEGIN IMMEDIATE")
    plain.execute("INSERT INTO attack_rows (writer, n) VALUES (?, ?)", (name + "-plain", n))
    plain.execute("COMMIT")

def poster_write(n):
    def work(uow):
        uow._session.execute(text("INSERT INTO attack_rows (writer, n) VALUES (:w, :n)"), {"w": name, "n": n})
    run_in_transaction(db, work)

print("ready", flush=True)
for n, _ in enumerate(sys.stdin):
    for label, write in (("plain", plain_write), ("poster", poster_write)):
        try:
            write(n)
            print(f"{label} {n} written", flush=True)
        except Exception as exc:
            print(f"{label} {n} failed: {exc!r}", flush=True)
"""


def step(proc: subprocess.Popen[str], lines: Lines, timeout: float) -> tuple[str | None, str | None]:
    """Has the stepped poster write its next row: what the plain connection and the poster said."""
    say(proc)
    return lines.next(timeout), lines.next(timeout)


# A poster process inside a write unit that has run no statement: it holds the writer file, not
# SQLite's lock.
HOLDER_BEFORE_BEGIN = """
import sys, time
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
db = open_database(sys.argv[1])
with UnitOfWork(db):
    print("holding", flush=True)
    time.sleep(120)
"""


# -- defects -------------------------------------------------------------------------------------


def test_a_writer_file_replaced_by_a_fifo_the_poster_cannot_write_does_not_hang_its_writes(
    registry: Database,
) -> None:
    """`registry.db-writer` replaced by a FIFO (a named pipe an operator's tool or a mistake
    left) that the poster may read but not write. _open_like falls back to O_RDONLY on EACCES,
    and open(2) of a FIFO for reading blocks until a writer opens it: the write blocks in open()
    for good, holding its process's turn, so no later write of the poster ever runs (and a
    poster started now hangs in open_database). The file must never stop a write."""
    proc = python(STEPPED_POSTER, registry.url, "p", prefix=without_dac_override())
    lines = Lines(proc)
    try:
        assert lines.next(20) == "ready"
        assert step(proc, lines, 20) == ("plain 0 written", "poster 0 written")
        path = writer_path(registry)
        os.unlink(path)
        os.mkfifo(path, 0o444)
        plain, poster = step(proc, lines, 10)
        assert plain == "plain 1 written", f"SQLite itself no longer writes here: {plain}"
        assert poster == "poster 1 written", f"the poster's write with a FIFO for writer file: {poster or 'hangs'}"
    finally:
        ended(proc)
    assert rows_of(registry_file(registry), "p") == [0, 1]


@pytest.mark.parametrize("target", ["itself", "a path through a file"])
def test_a_writer_file_replaced_by_a_symlink_that_leads_nowhere_does_not_fail_writes(
    target: str, registry: Database
) -> None:
    """The running poster holds a descriptor of the file; the name is replaced by a symlink that
    cannot be followed (to itself: ELOOP; through a regular file: ENOTDIR). _still_named catches
    only FileNotFoundError from os.stat, so OSError leaves take(), the unit's __enter__ and
    run_in_transaction (not retryable): every write of the poster raises, for as long as the
    link is there. A poster started now does without the file (its open fails) and writes."""
    assert insert_row(registry, "w", 0) == "written"  # the descriptor is open
    path = writer_path(registry)
    os.unlink(path)
    os.symlink(path.name if target == "itself" else f"{registry_file(registry)}/writer", path)
    outcomes = []
    for n in (1, 2):
        try:
            outcomes.append(insert_row(registry, "w", n))
        except OSError as exc:
            outcomes.append(repr(exc))
    assert outcomes == ["written", "written"], outcomes
    assert rows_of(registry_file(registry), "w") == [0, 1, 2]


def test_the_registrys_directory_made_unsearchable_while_running_does_not_fail_writes_sqlite_takes(
    tmp_path: Path,
) -> None:
    """An operator tightens the registry directory's permissions (no search for the poster's
    user) while the poster runs. SQLite writes on through the descriptors it has open (the
    child's plain connection shows it); the poster's writes all raise PermissionError from
    os.stat in _still_named, which takes only FileNotFoundError for "not there"."""
    data = tmp_path / "data"
    data.mkdir()
    db = registry_at(data / "registry.db")
    db.dispose()
    proc = python(STEPPED_POSTER, db.url, "p", prefix=without_dac_override())
    lines = Lines(proc)
    try:
        assert lines.next(20) == "ready"
        assert step(proc, lines, 20) == ("plain 0 written", "poster 0 written")
        os.chmod(data, 0o600)
        try:
            plain, poster = step(proc, lines, 10)
        finally:
            os.chmod(data, 0o755)
        assert plain == "plain 1 written", f"SQLite itself no longer writes here: {plain}"
        assert poster == "poster 1 written", f"the poster's write: {poster}"
    finally:
        ended(proc)


def test_a_write_waiting_for_the_file_goes_on_at_once_when_the_file_can_no_longer_be_opened(
    registry: Database,
) -> None:
    """A write waits for another poster's hold; meanwhile `registry.db-writer` is replaced by a
    directory, and the holder dies. Nothing holds anything now, and a poster started now writes
    at once (the file cannot be opened: done without). The waiting write's loop in take() never
    looks at `_unusable`: it retries an open that fails every half millisecond until `wait_s`
    runs out (30 s in production), then logs that "another process has held" the file."""
    assert registry.writer_file is not None
    registry.writer_file.wait_s = 8.0
    holder = python(HOLDER_BEFORE_BEGIN, registry.url)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        write = a_write(registry)
        waiting = registry.writer_file
        wait_for(lambda: waiting.waiting == 1, timeout=5, what="the write waiting for the holder's file")
        path = writer_path(registry)
        os.unlink(path)
        path.mkdir()
        holder.kill()
        holder.wait(10)
        died = time.monotonic()
        assert write.result(15) == "written"
        assert write.took is not None
        after = write.began + write.took - died
        assert after < 2.5, f"the write went on {after:.1f} s after the holder died, with nothing to wait for"
    finally:
        ended(holder)


# A program that knows nothing of the writer file holding SQLite's write lock (the sqlite3 shell
# in a maintenance transaction, a backup tool).
PLAIN_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(120)
"""

# A poster process making one write attempt when told, with SQLite's busy timeout scaled down.
ONE_WRITE = """
import sys
from sqlalchemy import event
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import run_in_transaction
db = open_database(sys.argv[1])

@event.listens_for(db.write, "connect")
def shorter(dbapi_connection, _record):
    dbapi_connection.execute(f"PRAGMA busy_timeout={int(sys.argv[2])}")

print("ready", flush=True)
sys.stdin.readline()
try:
    run_in_transaction(db, lambda uow: uow.leases.get_lease("tenant-1"), attempts=1)
    print("written", flush=True)
except Exception as exc:
    print(f"failed: {type(exc).__name__}", flush=True)
"""


def test_a_write_queued_behind_another_poster_waits_sqlites_busy_timeout_not_twice_it(registry: Database) -> None:
    """No poster paused: a program that knows nothing of the file holds SQLite's write lock for
    longer than the busy timeout (the sqlite3 shell, a backup). Poster B's write holds the
    writer file while it sleeps in SQLite's busy handler; poster A's write waits for the file
    until B gives up, then starts SQLite's busy timeout afresh: it reports "database is locked"
    after about twice the busy timeout (60 s in production, where it was 30 s before the file;
    the same with a paused holder: `wait_s` and then the busy timeout). Scaled down: busy
    timeout and `wait_s` both 2 s, as both are 30 s in production."""
    assert registry.writer_file is not None
    busy_s = 2.0
    registry.writer_file.wait_s = busy_s
    busy_timeout(registry, int(busy_s * 1000))
    plain = python(PLAIN_HOLDER, str(registry_file(registry)))
    other = python(ONE_WRITE, registry.url, str(int(busy_s * 1000)))
    try:
        assert plain.stdout is not None and other.stdout is not None
        assert plain.stdout.readline().strip() == "holding"
        assert other.stdout.readline().strip() == "ready"
        say(other)
        wait_for(lambda: flock_holders(writer_path(registry)) == {other.pid}, timeout=5, what="B holding the file")
        began = time.monotonic()
        try:
            with UnitOfWork(registry) as uow:
                uow.leases.get_lease("tenant-1")
            outcome = "written"
        except Exception as exc:
            outcome = type(exc).__name__
        took = time.monotonic() - began
        assert other.stdout.readline().strip() == "failed: OperationalError", "B's write was not refused either"
        assert outcome == "OperationalError", outcome
        assert took < 1.5 * busy_s, f"the write gave up after {took:.1f} s; the busy timeout is {busy_s:.0f} s"
    finally:
        ended(plain)
        ended(other)


def test_writes_on_one_thread_do_not_fail_while_the_registry_is_disposed_on_another(registry: Database) -> None:
    """PosterApp.stop disposes the registry while a worker may still be writing (the first
    attacks made writes after dispose work again). dispose closes the writer file's descriptor
    from the stopping thread while the writing thread is between reading it from the box and
    using it in take() (_try's flock, _still_named's fstat) or let_go: os.fstat/flock raise
    EBADF, an OSError run_in_transaction does not retry, and the write fails (a number the
    process reuses meanwhile is locked or unlocked instead: another Database's hold). Disposed
    in a loop to make the race show in seconds; each disposal is one stop."""
    errors: list[BaseException] = []
    written: list[int] = []
    until = time.monotonic() + 3.0

    def writes() -> None:
        n = 0
        while time.monotonic() < until:
            try:
                insert_row(registry, "w", n)
                written.append(n)
            except Exception as exc:
                errors.append(exc)
            n += 1

    writer = started(writes)
    disposals = 0
    while writer.is_alive():
        registry.dispose()
        disposals += 1
    writer.join()
    assert written, "no write went in at all"
    assert not errors, (
        f"{len(errors)} of {len(errors) + len(written)} writes failed across {disposals} disposals: "
        f"{sorted({repr(e) for e in errors})}"
    )
    assert rows_of(registry_file(registry), "w") == written


# -- guards (these hold) -------------------------------------------------------------------------


# A poster process that holds the file until told, then writes transactions of 20 ms one after
# another (the file free for a moment between them) for argv[2] seconds.
HOLDER_THEN_CYCLING = """
import sys, time
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
db = open_database(sys.argv[1])
with UnitOfWork(db):
    print("holding", flush=True)
    sys.stdin.readline()
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    with UnitOfWork(db):
        time.sleep(0.02)
    time.sleep(0.002)
"""


def test_a_poster_that_waited_out_a_holder_takes_the_file_again_once_it_lets_go_between_transactions(
    registry: Database,
) -> None:
    """After a wait ran out ("stuck"), writes try the file once each. The holder resumes and
    keeps taking the file, letting go between its transactions: the poster must not have given
    the file up for good, but hold it again for its own writes within seconds."""
    assert registry.writer_file is not None
    registry.writer_file.wait_s = 0.3
    path = writer_path(registry)
    holder = python(HOLDER_THEN_CYCLING, registry.url, "8")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        first = a_write(registry)
        assert first.result(10) == "written"
        assert first.took is not None and first.took >= 0.3, "the wait did not run out: nothing to test"
        quick = a_write(registry)
        assert quick.result(10) == "written"
        assert quick.took is not None and quick.took < 0.25, "a write after the wait ran out waited again"
        say(holder)
        mine: list[bool] = []
        until = time.monotonic() + 5.0
        while time.monotonic() < until and not any(mine):
            run_in_transaction(registry, lambda uow: mine.append(os.getpid() in flock_holders(path)))
        assert any(mine), f"none of {len(mine)} writes in 5 s held the file its holder let go of between transactions"
    finally:
        ended(holder)


# Another process replacing, deleting or making a directory of the writer file in a loop, some
# five thousand times a second (flat out, deleting alone is some 400 000 a second, and a write's
# open-lock-check loses the race to it most times: a write then takes 80 ms, p99 1 s).
FILE_VANDAL = """
import os, sys, time
path, how = sys.argv[1], sys.argv[2]
end = time.monotonic() + 60
i = 0
while time.monotonic() < end:
    i += 1
    time.sleep(0.0002)
    try:
        if how == "replaced":
            fresh = f"{path}.{i % 4}"
            os.close(os.open(fresh, os.O_CREAT | os.O_WRONLY, 0o644))
            os.replace(fresh, path)
        elif how == "deleted":
            os.unlink(path)
        else:
            os.unlink(path)
            os.mkdir(path)
            os.rmdir(path)
    except OSError:
        pass
    if i == 1:
        print("vandalising", flush=True)
"""

# A poster process writing rows one transaction each, printing the longest write at the end.
POSTER_WRITER = """
import sys, time
from sqlalchemy import text
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import run_in_transaction
url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = open_database(url)
longest = 0.0
for n in range(count):
    def work(uow, n=n):
        uow._session.execute(text("INSERT INTO attack_rows (writer, n) VALUES (:w, :n)"), {"w": name, "n": n})
    began = time.monotonic()
    run_in_transaction(db, work)
    longest = max(longest, time.monotonic() - began)
print(f"{longest:.3f}", flush=True)
db.dispose()
"""


@pytest.mark.parametrize("how", ["replaced", "deleted", "made a directory"])
def test_a_writer_file_vandalised_in_a_loop_by_another_process_stops_slows_and_loses_no_write(
    how: str, registry: Database
) -> None:
    """_still_named and the reopen racing with another process that replaces, deletes or puts a
    directory in place of the file as fast as it can, while two posters write: every write goes
    in once, none waits anywhere near `wait_s`, and the file is found again once left alone."""
    path = writer_path(registry)
    count = 1000
    vandal = python(FILE_VANDAL, str(path), how)
    assert vandal.stdout is not None
    assert vandal.stdout.readline().strip() == "vandalising"
    other = python(POSTER_WRITER, registry.url, "other", str(count))
    try:
        longest = 0.0
        for n in range(count):
            began = time.monotonic()
            insert_row(registry, "here", n)
            longest = max(longest, time.monotonic() - began)
        assert other.stdout is not None
        other_longest = float(other.stdout.readline())
        assert other.wait(20) == 0
    finally:
        ended(vandal)
        ended(other)
    assert rows_of(registry_file(registry), "here") == list(range(count))
    assert rows_of(registry_file(registry), "other") == list(range(count))
    assert max(longest, other_longest) < 5.0, f"a write waited {max(longest, other_longest):.1f} s"
    if path.is_dir():
        path.rmdir()
    with UnitOfWork(registry) as uow:
        uow.leases.get_lease("tenant-1")
        assert flock_holders(path) == {os.getpid()}, "the file was not found again under its name"


# Two poster processes writing continuously on two threads each, from when told, for argv[3]
# seconds: how many rows each wrote and its longest write.
CONTINUOUS_WRITER = """
import sys, threading, time
from sqlalchemy import text
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import run_in_transaction
url, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
db = open_database(url)
lock = threading.Lock()
done = [0]
longest = [0.0]

def loop():
    while time.monotonic() < end:
        with lock:
            n = done[0]
            done[0] += 1
        def work(uow):
            uow._session.execute(text("INSERT INTO attack_rows (writer, n) VALUES (:w, :n)"), {"w": name, "n": n})
        began = time.monotonic()
        run_in_transaction(db, work)
        with lock:
            longest[0] = max(longest[0], time.monotonic() - began)

print("ready", flush=True)
sys.stdin.readline()
end = time.monotonic() + seconds
threads = [threading.Thread(target=loop) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(done[0], f"{longest[0]:.3f}", flush=True)
"""


def test_two_poster_processes_writing_continuously_both_get_a_fair_share_and_neither_starves(
    registry: Database,
) -> None:
    """The file goes to whoever tries it first once free: a process re-taking it right after its
    own transaction could keep it from one that polls. Over 4 s of both writing as fast as they
    can, each must write at least a tenth of the rows, and no write may wait seconds."""
    procs = {name: python(CONTINUOUS_WRITER, registry.url, name, "4") for name in ("a", "b")}
    try:
        for proc in procs.values():
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs.values():
            say(proc)
        results: dict[str, tuple[int, float]] = {}
        for name, proc in procs.items():
            assert proc.stdout is not None
            said_count, said_longest = proc.stdout.readline().split()
            results[name] = (int(said_count), float(said_longest))
            assert proc.wait(20) == 0
    finally:
        for proc in procs.values():
            ended(proc)
    total = sum(count for count, _ in results.values())
    for name, (count, longest) in results.items():
        assert rows_of(registry_file(registry), name) == list(range(count)), f"{name}'s rows lost or doubled"
        assert count >= total / 10, f"{name} wrote {count} of {total} rows: {results}"
        assert longest < 3.0, f"a write of {name} waited {longest:.1f} s: {results}"


# A poster process: one thread holds the file (Database 1), another waits for it (Database 2,
# the file's second description), and the main thread forks a child that lives on and never
# writes. Prints the child's pid.
FORKING_POSTER = """
import os, sys, threading, time
from xerolink_poster.adapters.database import open_database
from xerolink_poster.service_layer.unit_of_work import UnitOfWork
holding_db, waiting_db = open_database(sys.argv[1]), open_database(sys.argv[1])
held = threading.Event()

def hold():
    with UnitOfWork(holding_db):
        held.set()
        time.sleep(120)

def wait():
    with UnitOfWork(waiting_db):
        pass

threading.Thread(target=hold, daemon=True).start()
held.wait()
threading.Thread(target=wait, daemon=True).start()
while waiting_db.writer_file.waiting != 1:
    time.sleep(0.001)
pid = os.fork()
if pid == 0:
    time.sleep(60)
    os._exit(0)
print(pid, flush=True)
time.sleep(120)
"""


def test_a_poster_killed_while_a_child_it_forked_lives_on_leaves_the_writer_file_free(
    registry: Database,
) -> None:
    """Forked while one thread held the file and another waited for it: the child inherits both
    open file descriptions, and a flock lives as long as any descriptor of its description. The
    fork handler closes the child's: once the poster dies, the file is free though its child
    lives on (a multiprocessing worker), and the next write waits for nothing."""
    assert registry.writer_file is not None
    registry.writer_file.wait_s = 600.0
    path = writer_path(registry)
    poster = python(FORKING_POSTER, registry.url)
    child = 0
    try:
        assert poster.stdout is not None
        child = int(poster.stdout.readline())
        assert flock_holders(path) == {poster.pid}
        poster.kill()
        poster.wait(10)
        os.kill(child, 0)  # alive
        assert free_elsewhere(path), "the forked child kept its dead parent's hold on the writer file"
        assert a_write(registry).result(5) == "written"
    finally:
        ended(poster)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def descriptors_of(path: Path) -> list[int]:
    """This process's descriptors open on `path`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                found.append(int(fd))
        except OSError:
            continue
    return found


def test_a_unit_ending_after_its_database_was_disposed_does_not_let_go_of_the_descriptor_number_reused(
    tmp_path: Path,
) -> None:
    """A unit holds the file; its Database is disposed meanwhile (the descriptor closed); a
    second Database on the registry reopens the file on the same descriptor number, and its
    write holds the file. The first unit's end must not unlock that number ("forgotten before
    it is closed")."""
    first = registry_at(tmp_path / "registry.db")
    second = open_database(first.url)
    path = writer_path(first)
    fillers: list[int] = []
    let_go = threading.Event()
    try:
        with UnitOfWork(first) as uow:
            uow.leases.get_lease("tenant-1")
            both = set(descriptors_of(path))
            first.dispose()
            (number,) = both - set(descriptors_of(path))
            second.dispose()
            while True:  # every lower number taken: the next open gets the one closed
                fd = os.open(os.devnull, os.O_RDONLY)
                if fd >= number:
                    os.close(fd)
                    break
                fillers.append(fd)
            holding = threading.Event()

            def hold(_uow: UnitOfWork) -> str:  # no statement: SQLite's lock is the first unit's
                holding.set()
                let_go.wait(10)
                return "written"

            held = Call(lambda: run_in_transaction(second, hold))
            assert holding.wait(5)
            assert descriptors_of(path) == [number], "the number was not reused: nothing to test"
            uow.commit()
        assert not free_elsewhere(path), "the first unit's end let go of the second Database's hold"
        let_go.set()
        assert held.result(5) == "written"
    finally:
        let_go.set()
        for fd in fillers:
            os.close(fd)
        first.dispose()
        second.dispose()


def test_many_databases_on_one_registry_write_every_row_once_and_leave_no_descriptor(tmp_path: Path) -> None:
    """Sixteen Databases in one process (each its own description, so they conflict as
    processes do), a thread writing on each: every row once, and nothing open once disposed."""
    registry_at(tmp_path / "registry.db").dispose()
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    dbs = [open_database(url) for _ in range(16)]
    try:

        def rows(db: Database, i: int) -> Call:
            return Call(lambda: [insert_row(db, f"db-{i}", n) for n in range(20)])

        calls = [rows(db, i) for i, db in enumerate(dbs)]
        for call in calls:
            assert call.result(20) == ["written"] * 20
    finally:
        for db in dbs:
            db.dispose()
    for i in range(16):
        assert rows_of(tmp_path / "registry.db", f"db-{i}") == list(range(20))
    assert descriptors_of(tmp_path / "registry.db-writer") == []


def test_a_poster_in_a_directory_it_cannot_write_starts_and_writes_without_the_file(tmp_path: Path) -> None:
    """The registry's directory read-only to the poster and no writer file yet (SQLite's -wal
    and -shm are there, kept by a connection open elsewhere): the file cannot be made, and is
    done without."""
    data = tmp_path / "data"
    data.mkdir()
    registry_at(data / "registry.db").dispose()
    os.unlink(data / "registry.db-writer")
    keep = sqlite3.connect(str(data / "registry.db"), timeout=30)
    try:
        keep.execute("SELECT count(*) FROM attack_rows").fetchall()
        os.chmod(data, 0o555)
        poster_args = [f"sqlite:///{data / 'registry.db'}", "p", "3"]
        try:
            done = subprocess.run(
                [*without_dac_override(), sys.executable, "-c", textwrap.dedent(POSTER_WRITER), *poster_args],
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        finally:
            os.chmod(data, 0o755)
        assert done.returncode == 0, done.stderr[-800:]
        assert "cannot open the registry's writer file" in done.stderr
        assert not (data / "registry.db-writer").exists()
        assert rows_of(data / "registry.db", "p") == [0, 1, 2]
    finally:
        keep.close()


def test_the_registrys_directory_moved_while_running_stops_no_write(tmp_path: Path) -> None:
    """The directory holding the registry renamed under a running poster: SQLite writes on to
    the file it has open; the writer file is no longer under its name, cannot be made there,
    and is done without."""
    data = tmp_path / "data"
    data.mkdir()
    db = registry_at(data / "registry.db")
    try:
        assert insert_row(db, "w", 0) == "written"
        data.rename(tmp_path / "moved")
        assert insert_row(db, "w", 1) == "written"
        assert insert_row(db, "w", 2) == "written"
    finally:
        db.dispose()
    assert rows_of(tmp_path / "moved" / "registry.db", "w") == [0, 1, 2]
