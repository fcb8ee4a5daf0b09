"""Attacks on spacing the poster's young collections (commit 8dd120c: the console script calls
`space_young_collections`, xerolink_common/heap.py, which sets CPython's youngest threshold to
10,000 tracked allocations instead of 700 and keeps the older generations' 10 and 10).

The claim is that this saves CPU and does no harm. What a rarer young collection could worsen is
whatever waits for the cyclic collector to be freed: every Xero call's httpx `Response` (with its
`Request`) is a reference cycle (the response's stream refers back to the response), so the
request and answer bodies of each call stay in memory until a collection finds them; a socket,
a pooled database connection or a thread released only by a collection would stay as long.

The posters are real console scripts draining real bills through a real mapper into the Xero
emulator, on SQLite or PostgreSQL. A probe (sitecustomize.py, written by the test into a folder
first on the poster's PYTHONPATH) watches the collector from inside the poster and answers on
request; no product code is patched. To compare with the interpreter's default, the probe sets
`heap.YOUNG_THRESHOLD` to 700 before the poster starts, so the poster's own start-up call leaves
CPython's (700, 10, 10) in place of (10000, 10, 10); the run with the change leaves it alone.

What the probe measures, after the poster's start-up heap is frozen (before that the thresholds
are not the poster's yet):
- for each automatic collection, the objects it examined (every tracked object of the
  generations it collects) and the Xero answers (httpx Responses) it freed, with the bytes of
  their request and answer bodies: an answer dies only through the collector, so what a pass
  frees was dead and held in memory until that pass;
- when asked (the drain over), the same for one explicit collection, which frees what the
  poster still held dead at that moment; and what that collection released besides memory:
  file descriptors, pooled database connections checked out, and any open socket, database
  session, connection or cursor still in use, or running thread, among the garbage."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.heap import YOUNG_THRESHOLD
from xerolink_mapper import samples

from tests.fixtures.poster import connect, wait_for
from tests.fixtures.postgres import end_sessions
from tests.fixtures.probes import ANSWER_WHEN_ASKED
from tests.fixtures.processes import child_env, console_script, free_port, running

# Counts of what the collector frees: another test worker's load changes the poster's paths.
pytestmark = pytest.mark.serial

# CPython's default thresholds (gc.get_threshold() in a fresh interpreter).
DEFAULT_YOUNG = 700

_PROBE = (
    r"""
import gc, json, os, sys, threading, time, weakref

OUT = os.environ.get("YOUNGPROBE_OUT")
YOUNG = os.environ.get("YOUNGPROBE_YOUNG")

stats = {
    "passes": [0, 0, 0],
    "examined_max": [0, 0, 0],
    "examined_total": 0,
    "freed_answers_max": 0,
    "freed_answer_bytes_max": 0,
    "freed_answers_total": 0,
}
_watch = []
_explicit = [False]


def _bodies(response):
    total = 0
    content = response.__dict__.get("_content")
    if content is not None:
        total += len(content)
    request = response.__dict__.get("_request")
    if request is not None and request.__dict__.get("_content") is not None:
        total += len(request.__dict__["_content"])
    return total


def _on_collect(phase, info):
    # Start-up's collections (before the freeze, and the thresholds the poster sets) and the
    # probe's own are not counted.
    if _explicit[0] or not gc.get_freeze_count():
        return
    generation = info["generation"]
    if phase == "start":
        httpx = sys.modules.get("httpx")
        examined = 0
        _watch.clear()
        for g in range(generation + 1):
            objects = gc.get_objects(g)
            examined += len(objects)
            if httpx is not None:
                for o in objects:
                    if type(o) is httpx.Response:
                        _watch.append((weakref.ref(o), _bodies(o)))
            del objects
        stats["passes"][generation] += 1
        stats["examined_max"][generation] = max(stats["examined_max"][generation], examined)
        stats["examined_total"] += examined
        return
    freed = [size for ref, size in _watch if ref() is None]
    _watch.clear()
    stats["freed_answers_total"] += len(freed)
    stats["freed_answers_max"] = max(stats["freed_answers_max"], len(freed))
    stats["freed_answer_bytes_max"] = max(stats["freed_answer_bytes_max"], sum(freed))


def _fds():
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            found[fd] = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            pass
    return found


def _app():
    # The poster's app, a local of its console script's main(), on the main thread's stack.
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code.co_name == "main" and "app" in frame.f_locals:
            return frame.f_locals["app"]
        frame = frame.f_back
    return None


def _checked_out():
    # The fewest pooled connections checked out over half a second: the idle dispatcher still
    # reads the registry every few milliseconds, so one read may catch a connection in use; a
    # connection kept by garbage would be out in every read.
    app = _app()
    if app is None:
        return None
    db = app.db
    pools = {}
    for engine in (db.write, db.read, db.callers_write, db.callers_read):
        if engine is not None:
            pools[id(engine.pool)] = engine.pool
    fewest = None
    for _ in range(25):
        out = sum(pool.checkedout() for pool in pools.values())
        fewest = out if fewest is None else min(fewest, out)
        time.sleep(0.02)
    return fewest


def _kind(o):
    t = type(o)
    return t.__module__ + "." + t.__qualname__


_DATABASE_KINDS = (
    "sqlalchemy.orm.session.Session",
    "sqlmodel.orm.session.Session",
    "sqlalchemy.engine.base.Connection",
    "sqlalchemy.pool.base._ConnectionFairy",
    "sqlalchemy.engine.cursor.CursorResult",
    "sqlite3.Connection",
    "sqlite3.Cursor",
    "psycopg.Connection",
    "psycopg.Cursor",
    "psycopg.ServerCursor",
)


def _live(o):
    # Whether a database object found among the garbage still holds what it stands for.
    kind = _kind(o)
    if kind.endswith(".Session"):
        return o.in_transaction()
    if kind == "sqlalchemy.engine.base.Connection":
        return not o.closed
    if kind == "sqlalchemy.pool.base._ConnectionFairy":
        return o.dbapi_connection is not None
    if kind == "sqlalchemy.engine.cursor.CursorResult":
        return not (o.closed or o._soft_closed)
    if kind in ("psycopg.Connection", "psycopg.Cursor", "psycopg.ServerCursor"):
        return not o.closed
    if kind == "sqlite3.Connection":
        try:
            o.total_changes
        except Exception:
            return False
        return True
    return True


def _report():
    import socket
    found = dict(stats)
    found["thresholds"] = list(gc.get_threshold())
    found["checked_out_before"] = _checked_out()
    fds_before = _fds()
    _explicit[0] = True
    try:
        httpx = sys.modules.get("httpx")
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        garbage = list(gc.garbage)
        gc.garbage.clear()
        gc.set_debug(0)
        answers = [o for o in garbage if httpx is not None and type(o) is httpx.Response]
        found["held_answers"] = len(answers)
        found["held_answer_bytes"] = sum(_bodies(o) for o in answers)
        found["open_sockets_in_garbage"] = [
            repr(o) for o in garbage if isinstance(o, socket.socket) and o.fileno() != -1
        ]
        found["database_objects_in_garbage"] = sorted(
            {_kind(o) for o in garbage if _kind(o) in _DATABASE_KINDS}
        )
        found["database_objects_live_in_garbage"] = sorted(
            _kind(o) for o in garbage if _kind(o) in _DATABASE_KINDS and _live(o)
        )
        found["live_threads_in_garbage"] = [
            o.name for o in garbage if isinstance(o, threading.Thread) and o.is_alive()
        ]
        del answers, garbage
        gc.collect()  # frees what the first one kept, running its finalisers
    finally:
        _explicit[0] = False
    fds_after = _fds()
    found["fds"] = len(fds_before)
    found["fds_closed_by_collection"] = sorted(
        f"{fd} -> {target}" for fd, target in fds_before.items() if fds_after.get(fd) != target
    )
    found["checked_out_after"] = _checked_out()
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                name, value = line.split(":")
                status[name] = int(value.split()[0])
    found["rss_kb"] = status
    return found


"""
    + ANSWER_WHEN_ASKED
    + r"""

if OUT and os.path.basename(sys.argv[0]) == "xerolink-poster":
    if YOUNG:
        import xerolink_common.heap as _heap
        _heap.YOUNG_THRESHOLD = int(YOUNG)  # read by space_young_collections when main() calls it
    gc.callbacks.append(_on_collect)
    threading.Thread(target=_loop, name="young-probe", daemon=True).start()
"""
)


@dataclass(frozen=True)
class Drain:
    firms: int
    bills: int
    batch_size: int = 50  # the poster's default (XEROLINK_BATCH_SIZE)
    faults: bool = False


def _probe_dir(root: Path) -> Path:
    folder = root / "young-probe"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_PROBE)
    return folder


def _settled(stub: poster_grpc.PosterServiceStub, connection_id: str) -> bool:
    for state in (poster_pb2.LINK_STATE_PENDING, poster_pb2.LINK_STATE_WAITING):
        page = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id=connection_id, state=state, page_size=1))
        if page.links:
            return False
    return True


def _states(stub: poster_grpc.PosterServiceStub, connection_id: str) -> Counter[str]:
    """The connection's links by state and last error, for a drain that did not settle."""
    found: Counter[str] = Counter()
    token = ""
    while True:
        page = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id=connection_id, page_size=100, page_token=token))
        found.update(f"{poster_pb2.LinkState.Name(x.state)} {str(x.last_error)[:60]!r}" for x in page.links)
        token = page.next_page_token
        if not token:
            return found


def drain(
    workdir: Path,
    emulator: EmulatorServer,
    mapper_target: str,
    scenario: Drain,
    young: int | None,
    database_url: str | None = None,
    midway: Callable[[], object] | None = None,
) -> dict[str, Any]:
    """Runs a probed `xerolink-poster` (the youngest threshold `young` in place of heap.py's when
    given), posts `scenario`'s bills, runs `midway` once they are accepted, waits until every link
    has settled, then returns what the probe found. The poster is stopped with SIGTERM and must
    exit 0."""
    tag = f"young-{young or YOUNG_THRESHOLD}"
    out = workdir / tag
    port = free_port()
    env = child_env(
        YOUNGPROBE_OUT=str(out),
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
        XEROLINK_DATABASE_URL=database_url or f"sqlite:///{workdir / (tag + '.db')}",
        XEROLINK_MAPPER_TARGET=mapper_target,
        XEROLINK_LOG_LEVEL="WARNING",
        XEROLINK_BATCH_SIZE=str(scenario.batch_size),
        XEROLINK_BACKOFF_BASE_SECONDS="0.05",
        XEROLINK_BACKOFF_CAP_SECONDS="0.3",
        XEROLINK_XERO_TIMEOUT_SECONDS="1" if scenario.faults else "10",
        XEROLINK_XERO_MINUTE_SECONDS=str(emulator.config.minute_seconds),
    )
    if young is not None:
        env["YOUNGPROBE_YOUNG"] = str(young)
    env["PYTHONPATH"] = os.pathsep.join([str(_probe_dir(workdir)), env["PYTHONPATH"]])
    ids = [f"{tag}-firm-{n}" for n in range(scenario.firms)]
    with (
        running(console_script("xerolink-poster"), port, env=env, log=workdir / f"{tag}.log") as poster,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = poster_grpc.PosterServiceStub(channel)
        tenants = [connect(stub, emulator, cid)[1]["tenant_id"] for cid in ids]
        if scenario.faults:
            for tenant in tenants:
                # Refused, lost after the commit, and answered after the poster's 1 s timeout.
                emulator.faults.add(FaultRule(kind="error", rate=0.2, status=503, tenant_id=tenant))
                emulator.faults.add(FaultRule(kind="drop_after_commit", rate=0.2, tenant_id=tenant))
                emulator.faults.add(FaultRule(kind="latency", rate=0.05, seconds=1.5, tenant_id=tenant))
        for cid in ids:
            bills = [samples.client_bill(100_000 + i) for i in range(scenario.bills)]
            stub.BatchPostTransactions(
                poster_pb2.BatchPostTransactionsRequest(connection_id=cid, transactions=bills), timeout=60
            )
        if midway is not None:
            midway()
        try:
            wait_for(lambda: all(_settled(stub, c) for c in ids), timeout=45, interval=0.2, what=f"{tag} to drain")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {[_states(stub, c).most_common(5) for c in ids]}") from exc
        Path(f"{out}.tmp-ask").write_text(str(poster.pid))
        Path(f"{out}.tmp-ask").replace(f"{out}.ask")
        wait_for(Path(f"{out}.json").exists, timeout=30, what=f"{tag}'s probe")
        found: dict[str, Any] = json.loads(Path(f"{out}.json").read_text())
        poster.send_signal(signal.SIGTERM)
        assert poster.wait(timeout=20) == 0
    found["log_tail"] = (workdir / f"{tag}.log").read_text()[-1500:]
    return found


def _emulator(minute_seconds: float = 60.0) -> EmulatorServer:
    # As tests/fixtures/poster.py's factory: long-lived tokens.
    return EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0, minute_seconds=minute_seconds)).start()


# Long enough that the poster with the change collects its middle generation (every eleventh
# young pass of 10,000 allocations) after start-up: about 15 young passes and 1 middle one (26
# and 2 at 600 bills, which made this the suite's slowest setup).
LONG_DRAIN = Drain(firms=10, bills=450)


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory, mapper_process_target: str) -> Iterator[dict[str, Any]]:
    """The same drain (4,500 bills, 10 organisations, SQLite) through a poster with the change and
    through one with CPython's default thresholds."""
    workdir = tmp_path_factory.mktemp("young")
    emulator = _emulator()
    try:
        spaced = drain(workdir, emulator, mapper_process_target, LONG_DRAIN, None)
        default = drain(workdir, emulator, mapper_process_target, LONG_DRAIN, DEFAULT_YOUNG)
    finally:
        emulator.stop()
    assert spaced["thresholds"] == [YOUNG_THRESHOLD, 10, 10], spaced["log_tail"]
    assert default["thresholds"] == [DEFAULT_YOUNG, 10, 10], default["log_tail"]
    print(f"\nwith the change: {_figures(spaced)}\ndefault: {_figures(default)}")
    yield {"spaced": spaced, "default": default}


def _figures(found: dict[str, Any]) -> str:
    keys = (
        "thresholds",
        "passes",
        "examined_max",
        "examined_total",
        "freed_answers_total",
        "freed_answers_max",
        "freed_answer_bytes_max",
        "held_answers",
        "held_answer_bytes",
        "rss_kb",
    )
    return ", ".join(f"{k}={found.get(k)}" for k in keys)


def _both(side_by_side: dict[str, Any]) -> str:
    return f"with the change: {_figures(side_by_side['spaced'])}; default: {_figures(side_by_side['default'])}"


def _most_dead_answers(found: dict[str, Any]) -> tuple[int, int]:
    """(answers, bytes of their request and answer bodies): the most dead Xero answers one
    collection freed, an automatic one during the drain or the probe's once it was over."""
    return (
        max(found["freed_answers_max"], found["held_answers"]),
        max(found["freed_answer_bytes_max"], found["held_answer_bytes"]),
    )


def test_a_poster_holds_at_most_twenty_times_the_dead_xero_answer_bytes_the_default_collector_holds(
    side_by_side: dict[str, Any],
) -> None:
    """Every Xero call's request and answer bodies wait for the cyclic collector (httpx's Response
    refers to itself through its stream). With young passes every 10,000 allocations they wait
    longer, and the poster holds more of them at once, during the drain and once it is over (an
    idle poster reaches its next young pass slowly). The most it holds at once must stay within
    twenty times what the default collector held (2 to 6 times in six runs of each), and never
    reach half of the drain's answers: they are freed as it goes, not kept."""
    spaced, default = side_by_side["spaced"], side_by_side["default"]
    figures = _both(side_by_side)
    # The probe saw the answers die: at least one PUT of 50 bills for each 50 bills.
    assert spaced["freed_answers_total"] + spaced["held_answers"] >= LONG_DRAIN.firms * LONG_DRAIN.bills // 50, figures
    spaced_answers, spaced_bytes = _most_dead_answers(spaced)
    default_answers, default_bytes = _most_dead_answers(default)
    assert default_answers >= 1, figures
    assert spaced_answers <= 20 * default_answers, figures
    assert spaced_bytes <= 20 * default_bytes, figures
    assert spaced_answers * 2 < spaced["freed_answers_total"] + spaced["held_answers"], figures


def test_the_poster_s_largest_collector_pass_stays_within_half_again_the_default_s_largest(
    side_by_side: dict[str, Any],
) -> None:
    """A pass holds the interpreter lock while it examines its generations: the longest pause is
    the pass that examines the most objects. Full passes over the work in flight go, but the
    middle generation, collected every eleventh young pass, now gathers what ten passes of 10,000
    allocations left alive: its passes must not examine much more than the default's full ones."""
    spaced, default = side_by_side["spaced"], side_by_side["default"]
    figures = _both(side_by_side)
    assert spaced["passes"][1] >= 1, "the drain was too short to reach the middle generation: " + figures
    assert max(spaced["examined_max"]) <= 1.5 * max(default["examined_max"]), figures


def test_the_collector_examines_fewer_objects_over_the_drain_with_the_change(side_by_side: dict[str, Any]) -> None:
    """The CPU the claim is about, counted rather than timed: the objects the collector's passes
    examined over the same drain, and its full passes."""
    spaced, default = side_by_side["spaced"], side_by_side["default"]
    figures = _both(side_by_side)
    assert spaced["examined_total"] < default["examined_total"], figures
    assert spaced["passes"][2] <= default["passes"][2], figures


@pytest.mark.parametrize("registry", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_nothing_a_poster_holds_after_a_drain_through_faults_waits_for_the_collector(
    registry: str, tmp_path: Path, mapper_process_target: str, request: pytest.FixtureRequest
) -> None:
    """Xero calls refused, lost after the commit and timed out leave exceptions, tracebacks and
    broken httpx connections in cycles; on PostgreSQL every session of the poster is also ended
    once mid-drain (its pooled connections die under it). With young collections rarer, anything
    released only when such cycles are collected (a socket, a pooled database connection, a thread)
    would stay that much longer. Once the drain is over, a collection must release nothing but
    memory: no file descriptor, no checked-out connection, no live session, cursor or thread."""
    midway = None
    database_url = None
    ended: list[int] = []
    if registry == "postgres":
        database_url = request.getfixturevalue("postgres_url")
        outsider = request.getfixturevalue("outsider")

        def midway() -> None:
            time.sleep(1.0)  # the dispatcher has its connections open by then
            ended.append(end_sessions(outsider))

    emulator = _emulator(minute_seconds=3.0)  # Xero's per-minute limits do not pace the retries
    try:
        found = drain(
            tmp_path,
            emulator,
            mapper_process_target,
            Drain(firms=2, bills=100, batch_size=10, faults=True),
            None,
            database_url,
            midway,
        )
        hits: Counter[str] = Counter()
        for rule in emulator.faults.rules():
            hits[rule.kind] += rule.hits
    finally:
        emulator.stop()
    figures = {k: v for k, v in found.items() if k != "log_tail"}
    print(f"\n{registry}: faults hit {dict(hits)}, sessions ended {ended}: {figures}")
    assert found["thresholds"] == [YOUNG_THRESHOLD, 10, 10], found["log_tail"]
    assert registry == "sqlite" or ended[0] > 0, ended
    assert all(hits[kind] > 0 for kind in ("error", "drop_after_commit", "latency")), hits
    assert found["passes"][0] >= 1, figures  # the drain ran young passes with the poster's threshold
    assert found["checked_out_before"] == 0, figures
    assert found["checked_out_after"] == 0, figures
    assert found["open_sockets_in_garbage"] == [], figures
    assert found["database_objects_live_in_garbage"] == [], figures
    assert found["live_threads_in_garbage"] == [], figures
    assert found["fds_closed_by_collection"] == [], figures
