"""Attacks on the benches' open loop (bench/poster_throughput.open_loop, commit ecd8523), whose
callers run in a process of their own started with multiprocessing's "spawn" context (a Pool of
one, pool.apply). A hostile environment: a poster that cannot be reached, and the callers'
process killed in the middle of a run (the OOM killer, an operator). What must hold: the run
ends, and the error it ends with says what went wrong, as it did with the callers in the
bench's own process."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

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
