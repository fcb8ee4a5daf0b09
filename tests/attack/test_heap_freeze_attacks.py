"""Attacks on freezing a service's start-up heap (commit b2694a3, xerolink_common/heap.py and
serve_until_signalled): a SIGTERM that arrives while the start-up collection runs, a poster that
posts and drains many bills after the freeze, and a mapper whose stream worker pool is replaced
(the first pool was built, and frozen, at start-up).

What was alive at start-up is out of the collector's reach afterwards: if any of it later became
cyclic garbage it would never be freed. The services are real console scripts; a probe
(sitecustomize.py, written by the test into a folder first on the child's PYTHONPATH) answers on
request from a thread of the service: it collects as the service would, then unfreezes and
collects again, counting what the frozen generation hid. No product code is patched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from xero_emulator import EmulatorServer
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples

from tests.fixtures.poster import connect, wait_for
from tests.fixtures.probes import ANSWER_WHEN_ASKED
from tests.fixtures.processes import child_env, console_script, free_port, running

_PROBE = (
    """
import collections, gc, json, os, sys, threading, time

OUT = os.environ.get("HEAPPROBE_OUT")


def _report():
    found = {"frozen": gc.get_freeze_count(), "collected": gc.collect()}
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.unfreeze()
    found["hidden_by_freeze"] = gc.collect()
    found["hidden_types"] = collections.Counter(type(o).__qualname__ for o in gc.garbage).most_common(10)
    gc.garbage.clear()
    gc.set_debug(0)
    return found


"""
    + ANSWER_WHEN_ASKED
    + """

if OUT:
    threading.Thread(target=_loop, name="heap-probe", daemon=True).start()
"""
)


def _probe_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(_PROBE)
    return folder


def _probed_env(probe: Path, out: Path, **extra: str) -> dict[str, str]:
    env = child_env(HEAPPROBE_OUT=str(out), **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(probe), env["PYTHONPATH"]])
    return env


def _ask(out: Path, pid: int, timeout: float = 20.0) -> dict[str, Any]:
    """The probe's answer from the process `pid` (written whole, then renamed into place)."""
    Path(f"{out}.tmp-ask").write_text(str(pid))
    Path(f"{out}.tmp-ask").replace(f"{out}.ask")
    answer = Path(f"{out}.json")
    wait_for(answer.exists, timeout=timeout, what="the heap probe's answer")
    found: dict[str, Any] = json.loads(answer.read_text())
    return found


_SERVE = """
import gc, logging, signal, sys, time
from xerolink_common.grpc_server import create_server, serve_until_signalled

logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
marker = sys.argv[1]


class Node:
    pass


def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


def on_collect(phase, info):
    # The start-up collection of serve_until_signalled: the first full pass once its handlers
    # are in place. Hold it open (the lock is released while sleeping) so the signal lands inside.
    if phase == "start" and info["generation"] == 2 and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        gc.callbacks.remove(on_collect)
        open(marker, "w").close()
        time.sleep(1.0)


kept = [cycle() for _ in range(200_000)]  # a large start-up heap, alive for the process
running = create_server("127.0.0.1:0", [], ["attack.Service"])
print("port", running.port, flush=True)
gc.callbacks.append(on_collect)
serve_until_signalled(running, grace=2.0, on_stop=lambda: print("on_stop ran", flush=True))
print("returned", flush=True)
"""


def test_sigterm_during_the_start_up_collection_still_drains_and_exits_0(tmp_path: Path) -> None:
    marker = tmp_path / "collecting"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(marker)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(marker.exists, timeout=20, what="the start-up collection to begin")
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, _ = proc.communicate(timeout=20)
        stopped_after = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "received SIGTERM, shutting down" in out
    assert "froze" in out and "on_stop ran" in out and "stopped" in out and "returned" in out
    # The handler may run inside the collection (a callback is Python code); either way the
    # freeze completes, the wait returns at once and the server drains within its grace.
    assert stopped_after < 2.0 + 1.0 + 3.0, out
    assert time.monotonic() - started < 25


def test_a_poster_draining_bills_after_the_freeze_hides_no_cyclic_garbage_in_the_frozen_generation(
    tmp_path: Path, emulator: EmulatorServer
) -> None:
    probe = _probe_dir(tmp_path)
    out = tmp_path / "poster-heap"
    mapper_port, poster_port = free_port(), free_port()
    env = _probed_env(
        probe,
        out,
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{poster_port}",
        XEROLINK_DATABASE_URL=f"sqlite:///{tmp_path / 'poster.db'}",
        XEROLINK_MAPPER_TARGET=f"127.0.0.1:{mapper_port}",
        XEROLINK_LOG_LEVEL="WARNING",
    )
    bills_per_firm, firms = 150, 2
    with (
        running([*console_script("xerolink-mapper"), "--port", str(mapper_port)], mapper_port),
        running(console_script("xerolink-poster"), poster_port, env=env) as poster,
        grpc.insecure_channel(f"127.0.0.1:{poster_port}") as channel,
    ):
        stub = poster_grpc.PosterServiceStub(channel)
        orgs = [connect(stub, emulator, f"firm-{n}")[1] for n in range(firms)]
        for n in range(firms):
            bills = [samples.client_bill(700_000 + n * 1000 + i) for i in range(bills_per_firm)]
            stub.BatchPostTransactions(
                poster_pb2.BatchPostTransactionsRequest(connection_id=f"firm-{n}", transactions=bills), timeout=60
            )

        def invoices() -> int:
            total = 0
            for org in orgs:
                state = emulator.state.organisation(org["tenant_id"])
                with state.lock:
                    total += len(state.objects["Invoices"])
            return total

        wait_for(lambda: invoices() == firms * bills_per_firm, timeout=25, what="the poster to drain")
        found = _ask(out, poster.pid)
        poster.send_signal(signal.SIGTERM)
        assert poster.wait(timeout=15) == 0
    assert found["frozen"] > 10_000, found  # the freeze happened in this process
    assert found["hidden_by_freeze"] == 0, found


def test_a_mapper_whose_frozen_stream_pool_is_replaced_frees_it_and_keeps_no_fds_or_processes(
    tmp_path: Path,
) -> None:
    probe = _probe_dir(tmp_path)
    out = tmp_path / "mapper-heap"
    port = free_port()
    env = _probed_env(probe, out, XEROLINK_MAPPER_ADDRESS=f"127.0.0.1:{port}", XEROLINK_MAPPER_STREAM_PROCESSES="2")
    message = mapper_pb2.StreamMapTransactionsRequest(
        requests=[mapper_pb2.MapTransactionRequest(transaction=samples.client_bill(9000))],
        context=samples.demo_context(),
    )
    with (
        running(console_script("xerolink-mapper"), port, env=env) as proc,
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = mapper_grpc.MapperServiceStub(channel)

        def stream() -> str:
            try:
                assert len(list(stub.StreamMapTransactions(iter([message] * 3), timeout=30))) == 3
                return "ok"
            except grpc.RpcError as exc:
                return str(exc.code().name)

        def children() -> list[int]:
            found: list[int] = []
            for task in os.listdir(f"/proc/{proc.pid}/task"):
                found += [int(c) for c in Path(f"/proc/{proc.pid}/task/{task}/children").read_text().split()]
            return found

        def workers() -> list[int]:
            return [c for c in children() if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]

        def fds() -> int:
            return len(os.listdir(f"/proc/{proc.pid}/fd"))

        assert stream() == "ok"
        before = (fds(), len(children()))
        for _ in range(3):  # each death breaks the pool; the next stream gets a fresh one
            os.kill(workers()[0], signal.SIGKILL)
            time.sleep(0.3)
            assert [stream(), stream()] == ["UNAVAILABLE", "ok"]
        wait_for(lambda: (fds(), len(children())) == before, timeout=10, what="the old pools' fds and processes")
        found = _ask(out, proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert found["frozen"] > 10_000, found
    assert found["hidden_by_freeze"] == 0, found
