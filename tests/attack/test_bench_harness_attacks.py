"""Attacks on the benches' open loop (bench/poster_throughput.open_loop), whose callers run in a
spawned process of their own. A hostile environment: a poster that cannot be reached, one that
refuses half the Posts at once, and the callers' process killed in the middle of a run (the OOM
killer, an operator). What must hold: the run ends; the error it ends with says what went wrong,
as it did with the callers in the bench's own process; and only answered Posts are timed."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc

from bench import poster_throughput

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _chain(error: BaseException) -> str:
    seen, text = set(), []
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(text)


def test_an_unreachable_poster_surfaces_as_the_grpc_status_not_a_pickling_error() -> None:
    """The warm-up Post of a poster that is not listening raises grpc's _InactiveRpcError in the
    callers' process; it holds an RLock and cannot be pickled, so the parent got a
    MaybeEncodingError reading "Error sending result: '<ExceptionWithTraceback object>'. Reason:
    cannot pickle '_thread.RLock'": the status (UNAVAILABLE), the target and the traceback are
    all lost."""
    args = argparse.Namespace(callers=2, open_seconds=0.5)
    try:
        poster_throughput.open_loop(f"127.0.0.1:{_closed_port()}", os.getpid(), poster_throughput.Bills(1), 10.0, args)
    except Exception as error:  # what it says is the point
        said = _chain(error)
    else:
        raise AssertionError("a run against a poster that is not listening returned figures")
    assert "UNAVAILABLE" in said, f"the error does not say the poster was unavailable:\n{said}"


DRIVER = textwrap.dedent(
    """
    import argparse, multiprocessing, os, signal, socket, sys, threading, time
    sys.path.insert(0, {root!r})
    from bench import poster_throughput

    if __name__ == "__main__":
        # A poster that accepts connections and never answers: the warm-up Post waits (30 s).
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(100)
        target = f"127.0.0.1:{{listener.getsockname()[1]}}"

        def kill_the_callers() -> None:
            while not multiprocessing.active_children():
                time.sleep(0.05)
            time.sleep(1.0)
            for child in multiprocessing.active_children():
                os.kill(child.pid, signal.SIGKILL)
                print("killed", child.pid, flush=True)

        threading.Thread(target=kill_the_callers, daemon=True).start()
        args = argparse.Namespace(callers=2, open_seconds=0.5)
        try:
            poster_throughput.open_loop(target, os.getpid(), poster_throughput.Bills(1), 10.0, args)
            print("returned", flush=True)
        except BaseException as error:
            print("raised", type(error).__name__, flush=True)
    """
)


def test_a_run_whose_callers_process_is_killed_ends_instead_of_hanging(tmp_path: Path) -> None:
    """multiprocessing.Pool replaces a worker that dies and never answers the task it held:
    pool.apply waits for ever, and the bench (and bench/compare.py, which has no timeout) with
    it. Before the change a killed bench ended; now only its callers' process does."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(root=str(ROOT)))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=20)  # well under the warm-up Post's 30 s deadline
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"open_loop still waiting 20 s after its callers' process was killed:\n{out}") from None
    assert "killed" in out and "raised" in out, out


def _refusing_every_other_post(request: Any, context: grpc.ServicerContext) -> Any:
    """Answers a Post after 50 ms, and refuses at once every odd record after the 4 warm-up ones
    (records 100 to 103)."""
    record = request.transaction.header.id
    if record >= 104 and record % 2:
        context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded")
    time.sleep(0.05)
    return poster_pb2.PostTransactionResponse()


@pytest.fixture
def refusing_poster() -> Iterator[str]:
    """A stand-in poster serving only PostTransaction, on loopback."""
    server = grpc.server(futures.ThreadPoolExecutor(16))
    post = grpc.unary_unary_rpc_method_handler(
        _refusing_every_other_post,
        request_deserializer=poster_pb2.PostTransactionRequest.FromString,
        response_serializer=poster_pb2.PostTransactionResponse.SerializeToString,
    )
    service = poster_pb2.DESCRIPTOR.services_by_name["PosterService"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"PostTransaction": post}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_refused_posts_are_counted_as_errors_and_never_timed_as_fast_answers(refusing_poster: str) -> None:
    """Every answer takes at least 50 ms; half the Posts are refused at once. Timed from their
    scheduled start, the refusals made the p50 2 ms: a poster refusing work looked fast."""
    args = argparse.Namespace(callers=4, open_seconds=1.0)
    figures = poster_throughput.open_loop(refusing_poster, os.getpid(), poster_throughput.Bills(100), 40.0, args)
    assert figures["posts"] == 40 and figures["errors"] == 20, figures
    assert figures["p50_ms"] >= 50, figures


def test_the_closed_loop_counts_refused_posts_and_times_only_answers(refusing_poster: str) -> None:
    """The closed loop's callers had no handler: a refused Post ended its caller's thread, and the
    figures came from the callers never refused (here 20 of the 40 Posts, with no error said)."""
    args = argparse.Namespace(callers=4, posts_per_caller=10, pause=0.0)
    with grpc.insecure_channel(refusing_poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        figures = poster_throughput.latency(stub, os.getpid(), poster_throughput.Bills(100), args)
    assert figures["posts"] == 40 and figures["errors"] == 20, figures
    assert figures["p50_ms"] >= 50, figures
