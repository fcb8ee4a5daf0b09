"""Mapper throughput on loopback: transactions mapped per second through the streaming RPC and
through the unary RPC, against the real `xerolink-mapper` console script, plus where the time goes
inside the server (per-stage timings and a cProfile of the mapping path).

    python bench/mapper_throughput.py                  # start a mapper, measure, print figures
    python bench/mapper_throughput.py --quick          # smaller run (smoke)
    python bench/mapper_throughput.py --address host:port   # measure a running mapper

Workloads: "mixed" cycles through one sample of every transaction kind (extended profile: 22 of
32 kinds map to operations, the rest are decided unsupported); "bills" are 4-line client bills,
the heaviest common kind. Stream requests are serialized before the clock starts (a producer
that already holds wire bytes); responses are parsed and checked inside the timing.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink_mapper import samples
from xerolink_mapper.adapters.mapping_calls import ContextCache, map_many
from xerolink_mapper.adapters.proto_in import transaction_from_proto
from xerolink_mapper.adapters.proto_out import outcome_to_proto
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.problems import Problems

STREAM_METHOD = "/xerolink.mapper.v1.MapperService/StreamMapTransactions"
PROFILE = mapper_pb2.POLICY_PROFILE_EXTENDED
# Every figure printed, by name, for --json.
FIGURES: dict[str, float] = {}


def workload(name: str, count: int) -> list[mapper_pb2.MapTransactionRequest]:
    if name == "bills":
        return [mapper_pb2.MapTransactionRequest(transaction=samples.client_bill(i + 1)) for i in range(count)]
    kinds = list(samples.sample_transactions().values())
    return [mapper_pb2.MapTransactionRequest(transaction=kinds[i % len(kinds)]) for i in range(count)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mapper_server(address: str | None, stream_processes: int) -> Iterator[str]:
    """A running mapper: the given address, or the console script started on a free port."""
    if address:
        yield address
        return
    script = Path(sys.executable).parent / "xerolink-mapper"
    command = [str(script)] if script.exists() else [shutil.which("xerolink-mapper") or "xerolink-mapper"]
    port = _free_port()
    env = dict(os.environ, XEROLINK_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(
        [*command, "--address", f"127.0.0.1:{port}", "--stream-processes", str(stream_processes)], env=env
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _check(response: mapper_pb2.StreamMapTransactionsResponse | mapper_pb2.BatchMapTransactionsResponse) -> int:
    for result in response.results:
        if result.WhichOneof("outcome") != "response":
            raise SystemExit(f"benchmark transaction failed: {result.error}")
    return len(response.results)


def bench_stream(channel: grpc.Channel, requests: list[mapper_pb2.MapTransactionRequest], batch: int) -> float:
    context = samples.demo_context(PROFILE)
    messages = [
        mapper_pb2.StreamMapTransactionsRequest(requests=requests[i : i + batch], context=context).SerializeToString()
        for i in range(0, len(requests), batch)
    ]
    call = channel.stream_stream(STREAM_METHOD, request_serializer=None, response_deserializer=None)
    started = time.perf_counter()
    mapped = 0
    for raw in call(iter(messages)):
        mapped += _check(mapper_pb2.StreamMapTransactionsResponse.FromString(raw))
    elapsed = time.perf_counter() - started
    assert mapped == len(requests), (mapped, len(requests))
    return mapped / elapsed


def bench_unary(
    stub: mapper_grpc.MapperServiceStub, requests: list[mapper_pb2.MapTransactionRequest], in_flight: int
) -> float:
    context = samples.demo_context(PROFILE)
    full = [mapper_pb2.MapTransactionRequest(transaction=r.transaction, context=context) for r in requests]

    def call(request: mapper_pb2.MapTransactionRequest) -> None:
        response = stub.MapTransaction(request, timeout=30)
        assert response.decision.profile == PROFILE

    started = time.perf_counter()
    if in_flight == 1:
        for request in full:
            call(request)
    else:
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            list(pool.map(call, full))
    return len(full) / (time.perf_counter() - started)


def stage_timings(requests: list[mapper_pb2.MapTransactionRequest]) -> dict[str, float]:
    """CPU microseconds per transaction in each stage of the server's mapping path, in process
    (CPU time rather than wall time, so other load on the machine disturbs it less)."""
    context = samples.demo_context(PROFILE)
    wire = mapper_pb2.StreamMapTransactionsRequest(requests=requests, context=context).SerializeToString()
    n = len(requests)
    out: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], object]) -> object:
        started = time.process_time()
        value = fn()
        out[name] = (time.process_time() - started) / n * 1e6
        return value

    message = timed("parse request (upb)", lambda: mapper_pb2.StreamMapTransactionsRequest.FromString(wire))
    assert isinstance(message, mapper_pb2.StreamMapTransactionsRequest)
    problems = Problems()
    ctx = ContextCache().get(message.context)
    txs = timed("proto -> domain", lambda: [transaction_from_proto(r.transaction, problems) for r in message.requests])
    outcomes = timed("decide + map (domain)", lambda: [map_transaction(tx, ctx) for tx in txs])  # type: ignore[attr-defined]
    timed("domain -> proto", lambda: [outcome_to_proto(o, ctx.profile) for o in outcomes])  # type: ignore[attr-defined]
    response = mapper_pb2.StreamMapTransactionsResponse()
    timed("whole map_many", lambda: map_many(message.requests, message.context, response.results))
    timed("serialize response (upb)", response.SerializeToString)
    return out


def profile_top(requests: list[mapper_pb2.MapTransactionRequest], limit: int) -> str:
    message = mapper_pb2.StreamMapTransactionsRequest(requests=requests, context=samples.demo_context(PROFILE))
    response = mapper_pb2.StreamMapTransactionsResponse()
    profiler = cProfile.Profile()
    profiler.enable()
    map_many(message.requests, message.context, response.results)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(limit)
    return text.getvalue()


def run_server_benchmarks(args: argparse.Namespace, processes: int) -> None:
    batches = [int(b) for b in args.batches.split(",")]
    in_flight = [int(n) for n in args.in_flight.split(",")]
    with mapper_server(args.address, processes) as address, grpc.insecure_channel(address) as channel:
        stub = mapper_grpc.MapperServiceStub(channel)
        for name in args.workloads.split(","):
            requests = workload(name, args.transactions)
            print(f"\n== workload {name}, server with --stream-processes {processes}")
            bench_stream(channel, requests[: min(len(requests), 4_000)], batches[0])  # warm up
            for batch in batches:
                rate = bench_stream(channel, requests, batch)
                FIGURES[f"{name}_stream_{batch}_per_message_processes_{processes}_per_second"] = rate
                print(f"stream  {batch:>5} tx/message: {rate:>9,.0f} transactions/s")
            if processes == 0:  # unary calls never use the stream workers
                for n in in_flight:
                    rate = bench_unary(stub, requests[: args.unary], n)
                    FIGURES[f"{name}_unary_{n}_in_flight_per_second"] = rate
                    print(f"unary   {n:>5} in flight:  {rate:>9,.0f} transactions/s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", help="measure a running mapper instead of starting one")
    parser.add_argument("--transactions", type=int, default=60_000, help="per streaming run")
    parser.add_argument("--unary", type=int, default=6_000, help="calls per unary run")
    parser.add_argument("--batches", default="100,500,2000", help="transactions per stream message")
    parser.add_argument("--in-flight", default="1,8,32", help="concurrent unary calls")
    parser.add_argument("--workloads", default="mixed,bills")
    parser.add_argument(
        "--stream-processes", default="0,2", help="server configurations to measure (mapper --stream-processes)"
    )
    parser.add_argument("--profile", type=int, default=18, help="cProfile lines to print (0: none)")
    parser.add_argument("--quick", action="store_true", help="a small run that only checks the bench works")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last")
    args = parser.parse_args(argv)
    if args.quick:
        args.transactions, args.unary, args.profile = 2_000, 300, 0
    print(f"mapper throughput on loopback, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    # Other work on the machine shares the same cores: show how busy it was.
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for processes in [int(p) for p in args.stream_processes.split(",")]:
        run_server_benchmarks(args, processes)
    for name in args.workloads.split(","):
        requests = workload(name, min(args.transactions, 10_000))
        print(f"\n== where the time goes, workload {name} (in process, CPU microseconds per transaction)")
        for stage, micros in stage_timings(requests).items():
            print(f"  {stage:<26} {micros:7.1f}")
        if args.profile:
            print(f"cProfile of map_many, top {args.profile} by own time:")
            print(profile_top(requests, args.profile))
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.json:
        print(json.dumps(FIGURES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
