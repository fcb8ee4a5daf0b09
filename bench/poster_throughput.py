"""Poster throughput against the Xero emulator with a scaled minute, and Post acknowledgement
latency under concurrent callers, with the real `xerolink-poster` and `xerolink-mapper`
console scripts on loopback (the emulator runs in this process so its calls can be counted).

    python bench/poster_throughput.py            # full run
    python bench/poster_throughput.py --quick    # smaller run (smoke)
    python bench/poster_throughput.py --only latency --rates 200,400,800 --json

Figures printed:
  - elements posted per (scaled) minute per tenant as a fraction of the ceiling
    (calls allowed a minute x batch size), measured over whole minutes of steady work;
  - Xero calls made against a one-call-per-transaction baseline; calls refused for rate (429);
  - Post acknowledgement latency p50/p99 with N concurrent callers (SQLite registry), closed
    loop: each caller posts again as soon as it is answered, so this is the saturation figure
    (throughput, and the queueing it costs);
  - open loop (--rates): N callers, each on its own channel, post on a fixed schedule whatever
    the answers do; p50/p99/p99.9 per total offered rate, timed from each post's scheduled
    start (a late answer delays the caller's next post, and that delay counts), and the highest
    offered rate whose p99 stayed under 10 ms;
  - the poster process's CPU per Post (user + system time over the posts), which a busy shared
    machine disturbs far less than the latencies; the load average is printed with each figure.

--json prints every figure as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
from xero_emulator import EmulatorConfig, EmulatorServer
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_mapper import samples

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["gen/python", "services/common", "services/mapper", "services/poster", "services/xero_emulator"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def script(name: str) -> list[str]:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} is not installed: run ./dev setup")
    return [found]


@contextmanager
def process(cmd: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"{cmd[0]} did not start; see {log}") from None
                    time.sleep(0.05)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


class CallCounter:
    """Counts the emulator's rate decisions per tenant: calls let through and calls refused."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.allowed: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.lock = threading.Lock()
        limiter = emulator.state.limiter
        inner = limiter.acquire

        def acquire(app: str, tenant: str) -> Any:
            decision = inner(app, tenant)
            with self.lock:
                bucket = self.allowed if decision.allowed else self.refused
                bucket[tenant] = bucket.get(tenant, 0) + 1
            return decision

        limiter.acquire = acquire  # type: ignore[method-assign]


def connect(stub: poster_grpc.PosterServiceStub, emulator: EmulatorServer, connection_id: str) -> str:
    org = emulator.create_organisation(connection_id)
    register_emulated_connection(stub, connection_id, emulator.base_url, org, samples.demo_context())
    return str(org["tenant_id"])


def invoices(emulator: EmulatorServer, tenant: str) -> int:
    org = emulator.state.organisation(tenant)
    with org.lock:
        return len(org.objects["Invoices"])


def post_batches(stub: poster_grpc.PosterServiceStub, connection_id: str, first_id: int, count: int) -> None:
    chunk = 500
    for start in range(0, count, chunk):
        bills = [samples.client_bill(first_id + i) for i in range(start, min(start + chunk, count))]
        stub.BatchPostTransactions(
            poster_pb2.BatchPostTransactionsRequest(connection_id=connection_id, transactions=bills), timeout=120
        )


def load_backlog(
    stub: poster_grpc.PosterServiceStub, emulator: EmulatorServer, args: argparse.Namespace
) -> tuple[dict[str, str], int]:
    """Connections and their backlog of bills, accepted by a poster whose dispatcher is off, so
    the measured minutes see the dispatcher alone (acceptance competes for the same CPU)."""
    tenants = {f"bench-{i}": connect(stub, emulator, f"bench-{i}") for i in range(args.tenants)}
    per_tenant = int(60 * args.batch_size * (args.minutes + 1.5))  # more than the measured minutes can take
    started = time.monotonic()
    for n, connection_id in enumerate(tenants):
        post_batches(stub, connection_id, 1_000_000 * (n + 1), per_tenant)
    elapsed = time.monotonic() - started
    rate = per_tenant * len(tenants) / elapsed
    print(f"accepted {per_tenant * len(tenants)} bills in {elapsed:.1f}s ({rate:.0f}/s)")
    args.figures["acceptance_per_s"] = round(rate)
    return tenants, per_tenant


def throughput(
    emulator: EmulatorServer, counter: CallCounter, tenants: dict[str, str], per_tenant: int, args: argparse.Namespace
) -> dict[str, Any]:
    ceiling = 60 * args.batch_size  # elements per minute per tenant
    minute = args.minute_seconds
    # Minutes are counted from the first invoice created in Xero; the first one includes the
    # contact look-up and creation. The emulator's organisation grows by a ceiling's worth of
    # invoices a minute, and its own per-element cost grows with it (see docs/poster.md), so
    # later minutes also measure the emulator.
    while not any(invoices(emulator, t) for t in tenants.values()):
        time.sleep(0.01)
    counts = []
    for _ in range(args.minutes):
        before = {t: invoices(emulator, t) for t in tenants.values()}
        time.sleep(minute)
        counts.append({t: invoices(emulator, t) - before[t] for t in tenants.values()})
    for connection_id, tenant in tenants.items():
        per_minute = [c[tenant] for c in counts]
        print(
            f"{connection_id}: first minute {per_minute[0]} elements = {per_minute[0] / ceiling:.1%} of the ceiling "
            f"({ceiling} = 60 calls x {args.batch_size}); every minute: "
            + ", ".join(f"{n} ({n / ceiling:.0%})" for n in per_minute)
        )
    deadline = time.monotonic() + minute * (args.minutes + 4)
    total = per_tenant * len(tenants)
    while sum(invoices(emulator, t) for t in tenants.values()) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    done = sum(invoices(emulator, t) for t in tenants.values())
    calls = sum(counter.allowed.get(t, 0) for t in tenants.values())
    refused = sum(counter.refused.get(t, 0) for t in tenants.values())
    print(
        f"Xero calls: {calls} for {done} transactions posted (baseline one call per transaction: {done}; "
        f"{done / max(calls, 1):.1f} transactions per call); calls refused for rate: {refused}"
    )
    return {
        "ceiling_per_minute": ceiling,
        "elements_per_minute": {c: [m[t] for m in counts] for c, t in tenants.items()},
        "xero_calls": calls,
        "transactions_posted": done,
        "calls_refused": refused,
        "load_average": load_average(),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_callers(caller: Callable[[int], None], count: int, poster_pid: int) -> tuple[float, float]:
    """Runs caller(0..count-1) in as many threads to the end: wall seconds, poster CPU seconds."""
    threads = [threading.Thread(target=caller, args=(i,)) for i in range(count)]
    cpu_before = cpu_seconds(poster_pid)
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - started, cpu_seconds(poster_pid) - cpu_before


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction + 0.5) - 1))]


class Bills:
    """New bills for the latency runs, never the same record twice."""

    def __init__(self, first: int, connection_id: str = "latency") -> None:
        self.next = first
        self.connection_id = connection_id
        self.lock = threading.Lock()

    def reserve(self, count: int) -> int:
        """The first of `count` record numbers no later take returns."""
        with self.lock:
            first, self.next = self.next, self.next + count
        return first

    def take(self, count: int) -> list[poster_pb2.PostTransactionRequest]:
        first = self.reserve(count)
        return [
            poster_pb2.PostTransactionRequest(
                connection_id=self.connection_id, transaction=samples.client_bill(first + i)
            )
            for i in range(count)
        ]


def latency(
    stub: poster_grpc.PosterServiceStub, poster_pid: int, bills: Bills, args: argparse.Namespace
) -> dict[str, Any]:
    for warm in bills.take(args.callers):
        stub.PostTransaction(warm, timeout=30)
    requests = bills.take(args.callers * args.posts_per_caller)
    samples_ms: list[float] = []
    errors = 0
    lock = threading.Lock()
    barrier = threading.Barrier(args.callers)

    def caller(index: int) -> None:
        nonlocal errors
        mine = requests[index :: args.callers]
        times, failed = [], 0
        barrier.wait()
        for request in mine:
            started = time.perf_counter()
            try:
                stub.PostTransaction(request, timeout=30)
            except grpc.RpcError:
                failed += 1  # counted, never timed as an answer; the caller goes on
            else:
                times.append((time.perf_counter() - started) * 1000)
            if args.pause:
                time.sleep(args.pause)
        with lock:
            samples_ms.extend(times)
            errors += failed

    elapsed, cpu = run_callers(caller, args.callers, poster_pid)
    if not samples_ms:
        raise RuntimeError(f"none of the {errors} Posts was answered")
    samples_ms.sort()
    p50 = samples_ms[len(samples_ms) // 2]
    p99 = samples_ms[int(len(samples_ms) * 0.99) - 1]
    figures = {
        "callers": args.callers,
        "pause_ms": args.pause * 1000,
        "posts": len(samples_ms) + errors,
        "errors": errors,
        "p50_ms": round(p50, 1),
        "p99_ms": round(p99, 1),
        "posts_per_s": round(len(samples_ms) / elapsed),  # answered
        "poster_cpu_ms_per_post": round(cpu * 1000 / (len(samples_ms) + errors), 2),
        "load_average": load_average(),
    }
    print(
        f"Post acknowledgement, {args.callers} concurrent callers ({args.pause * 1000:.0f} ms pause between posts), "
        f"SQLite: p50 {p50:.1f} ms, p99 {p99:.1f} ms, {figures['posts_per_s']} posts/s answered, {errors} errors; "
        f"poster CPU {figures['poster_cpu_ms_per_post']} ms per post (load average {figures['load_average']})"
    )
    return figures


def open_loop(target: str, poster_pid: int, bills: Bills, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """`args.callers` callers, each on its own channel, together offering `rate` Posts a second
    for `args.open_seconds`; caller i posts at its scheduled times, staggered by i / rate.

    The callers run in a process of their own. In the bench's process they shared an interpreter
    with the emulator, which serves the dispatcher's Xero calls meanwhile, and a caller's clock
    then counted the emulator's turns as the poster's (docs/benchmarks.md, "Callers in a process
    of their own")."""
    settings = argparse.Namespace(callers=args.callers, open_seconds=args.open_seconds)
    first = bills.reserve(args.callers * (1 + _per_caller(rate, settings)))  # the child posts these
    # Spawned: a fork would copy the emulator's threads' locks. An executor, not a Pool: a Pool
    # replaces a worker that dies and never answers its task, so a killed child hung the bench.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        run = pool.submit(_open_loop_apart, target, poster_pid, first, bills.connection_id, rate, settings)
        figures: dict[str, Any] = run.result()
    return figures


def _open_loop_apart(
    target: str, poster_pid: int, first: int, connection_id: str, rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    try:
        return _open_loop_here(target, poster_pid, Bills(first, connection_id), rate, args)
    except grpc.RpcError as error:
        # grpc's errors hold a lock and cannot be pickled back: their status and details can.
        code, details = error.code(), error.details()
        raise RuntimeError(f"a Post to {target} failed: {code.name} {details}") from None


def _per_caller(rate: float, args: argparse.Namespace) -> int:
    interval: float = args.callers / rate
    seconds: float = args.open_seconds
    return max(1, round(seconds / interval))


def _open_loop_here(
    target: str, poster_pid: int, bills: Bills, rate: float, args: argparse.Namespace
) -> dict[str, Any]:
    interval = args.callers / rate
    per_caller = _per_caller(rate, args)
    channels = [grpc.insecure_channel(target) for _ in range(args.callers)]
    stubs = [poster_grpc.PosterServiceStub(c) for c in channels]
    for stub, warm in zip(stubs, bills.take(args.callers), strict=True):
        stub.PostTransaction(warm, timeout=30)  # connects the channel
    requests = bills.take(args.callers * per_caller)
    samples_ms: list[float] = []
    errors = 0
    lock = threading.Lock()
    start_at = time.perf_counter() + 0.2

    def caller(index: int) -> None:
        nonlocal errors
        times, failed = [], 0
        for n, request in enumerate(requests[index :: args.callers]):
            scheduled = start_at + index / rate + n * interval
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                stubs[index].PostTransaction(request, timeout=30)
            except grpc.RpcError:
                failed += 1  # a refusal acknowledges nothing: counted, never timed as an answer
                continue
            # From the scheduled start: a caller held up by a slow answer counts the wait.
            times.append((time.perf_counter() - scheduled) * 1000)
        with lock:
            samples_ms.extend(times)
            errors += failed

    _, cpu = run_callers(caller, args.callers, poster_pid)
    elapsed = time.perf_counter() - start_at
    for channel in channels:
        channel.close()
    if not samples_ms:
        raise RuntimeError(f"none of the {errors} Posts to {target} was answered")
    samples_ms.sort()
    figures = {
        "offered_per_s": rate,
        "achieved_per_s": round(len(samples_ms) / elapsed),  # answered
        "posts": len(samples_ms) + errors,
        "errors": errors,
        "p50_ms": round(percentile(samples_ms, 0.50), 2),
        "p99_ms": round(percentile(samples_ms, 0.99), 2),
        "p999_ms": round(percentile(samples_ms, 0.999), 2),
        "poster_cpu_ms_per_post": round(cpu * 1000 / (len(samples_ms) + errors), 2),
        "load_average": load_average(),
    }
    print(
        f"Post acknowledgement, open loop, {args.callers} callers offering {rate:.0f} posts/s in all "
        f"(achieved {figures['achieved_per_s']}/s, {figures['posts']} posts, {errors} errors; only answered "
        f"Posts timed): p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"p99.9 {figures['p999_ms']} ms; poster CPU "
        f"{figures['poster_cpu_ms_per_post']} ms per post (load average {figures['load_average']})"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--minute-seconds", type=float, default=20.0, help="length of a scaled Xero minute")
    parser.add_argument("--minutes", type=int, default=2, help="scaled minutes measured")
    parser.add_argument("--tenants", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--callers", type=int, default=100)
    parser.add_argument("--posts-per-caller", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds each caller waits between posts")
    parser.add_argument("--only", choices=["throughput", "latency"], help="run one of the two measurements")
    parser.add_argument(
        "--rates", default="", help="open loop: comma-separated total offered Post rates (per second) to measure"
    )
    parser.add_argument("--open-seconds", type=float, default=4.0, help="length of each open-loop rate")
    parser.add_argument(
        "--dispatch",
        choices=["on", "off"],
        default="on",
        help="latency runs: 'off' measures the Post path alone, without the dispatcher posting to Xero meanwhile",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    args = parser.parse_args()
    args.figures = {}
    if args.quick:
        args.minute_seconds, args.minutes, args.tenants, args.posts_per_caller = 4.0, 1, 1, 5
    tmp = Path(tempfile.mkdtemp(prefix="poster-bench-"))
    emulator = EmulatorServer(
        EmulatorConfig(minute_seconds=args.minute_seconds, access_token_minutes=100_000.0)
    ).start()
    counter = CallCounter(emulator)
    mapper_port, poster_port = free_port(), free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / s) for s in SOURCES)
    env.update(
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{poster_port}",
        XEROLINK_DATABASE_URL=f"sqlite:///{tmp / 'poster.db'}",
        XEROLINK_MAPPER_TARGET=f"127.0.0.1:{mapper_port}",
        XEROLINK_XERO_MINUTE_SECONDS=str(args.minute_seconds),
        XEROLINK_BATCH_SIZE=str(args.batch_size),
        XEROLINK_LOG_LEVEL="WARNING",
    )
    print(
        f"emulator minute = {args.minute_seconds}s; batch size {args.batch_size}; registry SQLite; "
        f"dispatcher during latency runs: {args.dispatch}"
    )
    args.figures["dispatcher_during_latency"] = args.dispatch
    with process([*script("xerolink-mapper"), "--port", str(mapper_port)], mapper_port, env, tmp / "mapper.log"):
        backlog: tuple[dict[str, str], int] | None = None
        if args.only != "latency":
            quiet = {**env, "XEROLINK_DISPATCHER": "off"}
            with (
                process(script("xerolink-poster"), poster_port, quiet, tmp / "accept.log"),
                grpc.insecure_channel(f"127.0.0.1:{poster_port}") as channel,
            ):
                backlog = load_backlog(poster_grpc.PosterServiceStub(channel), emulator, args)
        if args.only == "latency" and args.dispatch == "off":
            env["XEROLINK_DISPATCHER"] = "off"
        with (
            process(script("xerolink-poster"), poster_port, env, tmp / "poster.log") as poster,
            grpc.insecure_channel(f"127.0.0.1:{poster_port}") as channel,
        ):
            if backlog is not None:
                args.figures["throughput"] = throughput(emulator, counter, *backlog, args)
            if args.only != "throughput":
                stub = poster_grpc.PosterServiceStub(channel)
                connect(stub, emulator, "latency")
                bills = Bills(5_000_000)
                args.figures["closed_loop"] = latency(stub, poster.pid, bills, args)
                rates = [float(r) for r in args.rates.split(",") if r.strip()]
                runs = [open_loop(f"127.0.0.1:{poster_port}", poster.pid, bills, r, args) for r in rates]
                if runs:
                    under = [r["offered_per_s"] for r in runs if r["p99_ms"] < 10 and not r["errors"]]
                    best = max(under, default=None)
                    print(
                        "highest offered rate with p99 under 10 ms: "
                        + (f"{best:.0f} posts/s" if best is not None else "none of those measured")
                    )
                    args.figures["open_loop"] = runs
                    args.figures["open_loop_max_rate_p99_under_10ms"] = best
    emulator.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps({"benchmark": "poster", "load_average_end": load_average(), **args.figures}))


if __name__ == "__main__":
    main()
