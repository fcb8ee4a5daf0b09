"""Several poster processes on one PostgreSQL registry, draining one backlog together: what each
extra poster adds, how the organisations (tenants) split between them, and that no element is
posted twice. The emulator runs in this process; the mapper and the posters run as their console
scripts on loopback; PostgreSQL is started as bench/many_tenants.py starts it.

    python bench/poster_fleet.py                       # 200 organisations, 1, 2 and 4 posters
    python bench/poster_fleet.py --quick               # 20 organisations, 1 and 2 posters (smoke)
    python bench/poster_fleet.py --quick --app-limit 40 --posters 1,2   # the app-wide limit binding

The backlog (--tenants organisations x --per-tenant client bills, one Xero app) is accepted once
by a poster whose dispatcher is off, into a template database. For each N of --posters: a copy of
that database (CREATE DATABASE ... TEMPLATE), its connections moved to fresh emulator
organisations (every column named *tenant_id rewritten), so each N posts the same bills into
empty organisations; then N posters with their dispatcher on (XEROLINK_POSTER_INSTANCE fleet-<i>)
drain it at once. Printed for each N:

- elements posted per second, from the first Xero call to the last element (and from the start
  of the processes), and the ratio to N = 1;
- poster CPU per element: user + system from /proc, summed over the N processes, from when each
  listened to the end; PostgreSQL's CPU (the postmaster, its live children and those it reaped)
  per Xero call; this process's CPU (the emulator and the polling) for the record;
- Xero calls and calls refused for rate (must be 0), from the emulator's request log;
- the split: per poster, the organisations and elements it posted (link audit rows that reached
  `linked`, actor `dispatcher:<instance>`), and how many organisations more than one poster
  posted for (hand-overs between turns);
- duplicates: each organisation's invoices counted by InvoiceNumber. A number twice is an element
  posted twice: printed loudly, and the exit code is 1;
- the load average (1 minute) before and after.

Xero's minute is scaled (--minute-seconds) so the per-tenant limits do not bind, and the app limit
is raised in the emulator and the posters, unless --app-limit sets it: then the calls of every
poster together per scaled minute (fixed minutes from the first call, and the most in any sliding
minute) are printed and must stay at or under it. --json prints every figure as one JSON object
on the last line (load averages under "load_average", which bench/compare.py skips).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` and `tests` are packages of the repository root
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import create_engine, make_url, text  # noqa: E402
from xero_emulator import EmulatorConfig, EmulatorServer  # noqa: E402
from xero_emulator.domain.organisation import Organisation  # noqa: E402
from xero_emulator.request_log import ReceivedRequest  # noqa: E402

from bench.many_tenants import (  # noqa: E402
    APP_MINUTE_LIMIT,
    Bench,
    EmulatorTap,
    Loads,
    cpu_seconds,
    load_average,
    postgres_server,
    ratio,
)
from tests.fixtures.postgres import PostgresServer, create_database  # noqa: E402
from tests.fixtures.processes import console_script, free_port, wait_for_port  # noqa: E402

ACTOR_PREFIX = "dispatcher:"


# -- pure helpers (tests/unit/test_bench_poster_fleet.py) --------------------------------------
def poster_counts(text_: str) -> list[int]:
    """--posters: "1,2,4" -> [1, 2, 4]; each a positive whole number, none twice."""
    counts = [int(part) for part in text_.split(",") if part.strip()]
    if not counts or any(n < 1 for n in counts) or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text_!r}: positive numbers of posters, each once, e.g. 1,2,4")
    return counts


def duplicates(numbers: Iterable[str]) -> dict[str, int]:
    """The numbers seen more than once, with how often."""
    return {number: n for number, n in Counter(numbers).items() if n > 1}


def calls_per_minute(times: Sequence[float], minute: float) -> list[int]:
    """Calls in each fixed minute from the first call (the last minute may be partial)."""
    if not times:
        return []
    start = min(times)
    counts = [0] * (int((max(times) - start) // minute) + 1)
    for at in times:
        counts[int((at - start) // minute)] += 1
    return counts


def busiest_window(times: Sequence[float], window: float) -> int:
    """The most calls in any window of `window` seconds, a call at t counting in (t - window, t]
    as the emulator's sliding minute counts it."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - window:
            first += 1
        most = max(most, last - first + 1)
    return most


@dataclass(frozen=True)
class Split:
    tenants: dict[str, int]  # poster -> organisations it posted for
    elements: dict[str, int]  # poster -> elements (links) it posted
    shared: int  # organisations more than one poster posted for


def split(rows: Iterable[tuple[str, str, int]]) -> Split:
    """From (actor, tenant, links posted) rows: who posted for which organisations. Actors are
    `dispatcher:<instance>`; the instance names the poster."""
    tenants: dict[str, set[str]] = defaultdict(set)
    posted: Counter[str] = Counter()
    posters_of: dict[str, set[str]] = defaultdict(set)
    for actor, tenant, links in rows:
        poster = actor.removeprefix(ACTOR_PREFIX)
        tenants[poster].add(tenant)
        posted[poster] += links
        posters_of[tenant].add(poster)
    return Split(
        {p: len(t) for p, t in sorted(tenants.items())},
        dict(sorted(posted.items())),
        sum(1 for posters in posters_of.values() if len(posters) > 1),
    )


# -- measuring ---------------------------------------------------------------------------------
def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds of the PostgreSQL server so far: the postmaster, the children it reaped
    (cutime, cstime: every backend of a poster that has gone) and its live children."""
    tick = os.sysconf("SC_CLK_TCK")
    own = _stat(postmaster)
    total = sum(int(own[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def postmaster_pid(pg: PostgresServer) -> int:
    """The server's postmaster: the parent of a backend."""
    with psycopg.connect(f"host={pg.host} port={pg.port} user={pg.user} dbname=postgres") as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(_stat(int(row[0]))[1])


class CallTimes:
    """When each Accounting API call was answered, per organisation (the emulator's request log)."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.lock = threading.Lock()
        self.times: list[tuple[float, str]] = []
        log = emulator.state.requests
        inner = log.record

        def record(entry: ReceivedRequest) -> None:
            inner(entry)
            with self.lock:
                self.times.append((time.monotonic(), entry.tenant_id))

        log.record = record  # type: ignore[method-assign]

    def of(self, tenants: set[str]) -> list[float]:
        with self.lock:
            return [at for at, tenant in self.times if tenant in tenants]


def invoice_numbers(org: Organisation) -> list[str]:
    with org.lock:
        return [str(doc.get("InvoiceNumber", "")) for doc in org.objects["Invoices"].values()]


# -- the backlog and its copies ----------------------------------------------------------------
def admin(pg: PostgresServer, database: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(f"host={pg.host} port={pg.port} user={pg.user} dbname={database}", autocommit=True)


def copy_database(pg: PostgresServer, template_url: str, name: str) -> str:
    """A copy of the template's database (nobody may be connected to the template)."""
    template = make_url(template_url).database
    with admin(pg) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return pg.url(name)


def move_tenants(pg: PostgresServer, url: str, moves: dict[str, str]) -> None:
    """Rewrites every *tenant_id column of the registry: old organisation -> fresh one."""
    with admin(pg, str(make_url(url).database)) as conn, conn.transaction():
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name LIKE '%tenant_id'"
        ).fetchall()
        conn.execute("CREATE TEMP TABLE fleet_move (old text PRIMARY KEY, new text NOT NULL)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO fleet_move VALUES (%s, %s)", list(moves.items()))
        for table, column in columns:
            conn.execute(
                f'UPDATE "{table}" SET "{column}" = m.new FROM fleet_move m WHERE "{table}"."{column}" = m.old'
            )


def posted_by(url: str) -> Split:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.actor, c.xero_tenant_id, count(*) FROM link_audit a "
                    "JOIN link l ON l.id = a.link_id JOIN connection c ON c.connection_id = l.connection_id "
                    "WHERE a.actor LIKE :actor AND a.to_state = 'linked' GROUP BY a.actor, c.xero_tenant_id"
                ),
                {"actor": ACTOR_PREFIX + "%"},
            ).all()
    finally:
        engine.dispose()
    return split((str(a), str(t), int(n)) for a, t, n in rows)


@contextmanager
def posters(bench: Bench, url: str, n: int, extra: dict[str, str], tag: str) -> Iterator[list[tuple[str, Any, float]]]:
    """N posters started together (each listening within a minute); yields (instance, process,
    CPU seconds when it listened) and stops them all at the end."""
    procs: list[tuple[str, subprocess.Popen[bytes], int]] = []
    logs = []
    try:
        for i in range(n):
            port, instance = free_port(), f"fleet-{i + 1}"
            env = {**bench.poster_env(url, port, dispatcher=True), "XEROLINK_POSTER_INSTANCE": instance, **extra}
            log = open(bench.workdir / f"{tag}-{instance}.log", "wb")  # noqa: SIM115 - closed below
            logs.append(log)
            procs.append(
                (instance, subprocess.Popen(console_script("xerolink-poster"), env=env, stdout=log, stderr=log), port)
            )
        ready = []
        for instance, proc, port in procs:
            wait_for_port(port, timeout=60, proc=proc)
            ready.append((instance, proc, cpu_seconds(proc.pid)))
        yield ready
    finally:
        for _, proc, _ in procs:
            proc.terminate()
        for _, proc, _ in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


# -- one fleet ---------------------------------------------------------------------------------
@dataclass
class Fleet:
    bench: Bench
    pg: PostgresServer
    postmaster: int
    template_url: str
    template_tenants: list[str]  # in the order of the template's connections
    calls: CallTimes
    failures: list[str]

    def run(self, n: int) -> dict[str, Any]:
        bench, args = self.bench, self.bench.args
        url = copy_database(self.pg, self.template_url, f"fleet_{n}_{os.getpid()}")
        fresh = [str(bench.organisation(f"fleet-{n}-{k}")["tenant_id"]) for k in range(len(self.template_tenants))]
        move_tenants(self.pg, url, dict(zip(self.template_tenants, fresh, strict=True)))
        orgs = [bench.emulator.state.organisation(t) for t in fresh]
        total = len(fresh) * args.per_tenant
        extra = {"XEROLINK_XERO_APP_MINUTE_LIMIT": str(args.app_limit or APP_MINUTE_LIMIT)}
        if args.max_tenants:
            extra["XEROLINK_DISPATCHER_MAX_TENANTS"] = str(args.max_tenants)
        with bench.loads.around(f"posters_{n}") as loads:
            pg_before, own_before = postgres_cpu(self.postmaster), time.process_time()
            spawned = time.monotonic()
            with posters(bench, url, n, extra, f"n{n}") as fleet:
                gone = lambda: any(p.poll() is not None for _, p, _ in fleet)  # noqa: E731
                ended, done = bench.wait_for_elements(orgs, total, args.drain_timeout, lambda _now, _c: None, gone)
                cpu = sum(cpu_seconds(p.pid) - before for _, p, before in fleet)
            time.sleep(0.5)  # the posters' backends exit and are reaped: their CPU moves to cutime
            pg_cpu, own_cpu = postgres_cpu(self.postmaster) - pg_before, time.process_time() - own_before
        times = self.calls.of(set(fresh))
        calls = len(times)
        refused = bench.tap.total(bench.tap.refused, fresh)
        first = min(times) if times else spawned
        seconds = ended - first
        by_poster = posted_by(url)
        numbers = [invoice_numbers(o) for o in orgs]
        doubled = {t: d for t, nums in zip(fresh, numbers, strict=True) if (d := duplicates(nums))}
        missing = total - sum(len(set(nums)) for nums in numbers)
        figures: dict[str, Any] = {
            "posters": n,
            "elements_posted": done,
            "backlog": total,
            "drained": done >= total,
            "seconds_from_first_call": round(seconds, 1),
            "seconds_from_start": round(ended - spawned, 1),
            "elements_per_s": round(done / seconds) if seconds > 0 else None,
            "poster_cpu_s": round(cpu, 2),
            "poster_cpu_ms_per_element": round(cpu * 1000 / done, 3) if done else None,
            "postgres_cpu_s": round(pg_cpu, 2),
            "postgres_cpu_ms_per_call": round(pg_cpu * 1000 / calls, 2) if calls else None,
            "bench_and_emulator_cpu_s": round(own_cpu, 2),
            "xero_calls": calls,
            "elements_per_call": ratio(done, calls),
            "calls_refused_for_rate": refused,
            "tenants_per_poster": by_poster.tenants,
            "elements_per_poster": by_poster.elements,
            "tenants_posted_by_several": by_poster.shared,
            "duplicate_invoices": sum(n - 1 for d in doubled.values() for n in d.values()),
            "organisations_with_duplicates": len(doubled),
            "invoices_missing": missing,
        }
        cut = "" if done >= total else f" (cut at {args.drain_timeout:.0f} s: {done} of {total})"
        print(
            f"[{n} poster{'s' if n > 1 else ''}] {done} elements in {seconds:.1f} s from the first Xero call{cut} "
            f"({ended - spawned:.1f} s from starting the processes): {figures['elements_per_s']} elements/s; "
            f"poster CPU {figures['poster_cpu_ms_per_element']} ms per element ({cpu:.1f} s over {n}); "
            f"PostgreSQL CPU {pg_cpu:.1f} s = {figures['postgres_cpu_ms_per_call']} ms per Xero call; "
            f"emulator and bench CPU {own_cpu:.1f} s; {calls} Xero calls, {figures['elements_per_call']} "
            f"elements per call, {refused} refused for rate {Loads.text(loads)}"
        )
        shares = ", ".join(
            f"{p}: {tenants} organisations, {by_poster.elements.get(p, 0)} elements"
            for p, tenants in by_poster.tenants.items()
        )
        print(f"    split: {shares}; {by_poster.shared} organisations posted for by more than one poster")
        if args.app_limit:
            minutes, busiest = calls_per_minute(times, args.minute_seconds), busiest_window(times, args.minute_seconds)
            most = max(minutes, default=0)
            figures.update(app_limit=args.app_limit, calls_per_scaled_minute_max=most, busiest_sliding_minute=busiest)
            print(
                f"    app limit {args.app_limit} calls per scaled minute ({args.minute_seconds} s), every poster "
                f"together: per minute from the first call {minutes}, busiest sliding minute {busiest}"
            )
            if most > args.app_limit:
                self.fail(f"{n} posters: {most} calls in one scaled minute, over the app limit {args.app_limit}")
        if refused:
            self.fail(f"{n} posters: {refused} calls refused for rate")
        if doubled:
            worst = sorted(doubled.items())[:3]
            self.fail(f"{n} posters: DUPLICATE INVOICES in {len(doubled)} organisations, e.g. {worst}")
        else:
            print(f"    no element posted twice ({sum(len(x) for x in numbers)} invoices, each InvoiceNumber once)")
        if missing and done >= total:
            self.fail(f"{n} posters: {missing} bills missing though the element count was reached")
        return figures

    def fail(self, message: str) -> None:
        self.failures.append(message)
        print(f"!!! FAILURE: {message}", flush=True)


def template(bench: Bench, pg: PostgresServer) -> tuple[str, list[str]]:
    """The backlog, accepted once; the tenant ids of its connections, in order."""
    url = create_database(pg)
    connected = bench.load(url, "fleet-template", bench.args.tenants, bench.args.per_tenant)
    return url, list(connected.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (smoke): 20 organisations, posters 1,2")
    parser.add_argument("--posters", type=poster_counts, help="numbers of posters to run, in turn (default 1,2,4)")
    parser.add_argument("--tenants", type=int, default=200, help="emulated organisations")
    parser.add_argument("--per-tenant", type=int, default=150, help="bills each organisation has to post")
    parser.add_argument("--batch-size", type=int, default=50, help="the posters' XEROLINK_BATCH_SIZE")
    parser.add_argument("--minute-seconds", type=float, default=1.0, help="length of a scaled Xero minute")
    parser.add_argument(
        "--app-limit", type=int, help="keep an app-wide limit of this many calls per scaled minute (default: raised)"
    )
    parser.add_argument("--max-tenants", type=int, help="XEROLINK_DISPATCHER_MAX_TENANTS (default: the poster's)")
    parser.add_argument("--drain-timeout", type=float, default=150.0, help="seconds each drain may take at most")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.per_tenant, args.drain_timeout = 20, 100, 60.0
        args.posters = args.posters or [1, 2]
    args.posters = args.posters or [1, 2, 4]
    workdir = Path(tempfile.mkdtemp(prefix="poster-fleet-bench-"))
    emulator = EmulatorServer(
        EmulatorConfig(
            minute_seconds=args.minute_seconds,
            access_token_minutes=100_000.0,
            app_minute_limit=args.app_limit or APP_MINUTE_LIMIT,
        )
    ).start()
    loads = Loads()
    bench = Bench(args, emulator, EmulatorTap(emulator), workdir, free_port(), loads)
    calls = CallTimes(emulator)
    limit = f"app limit {args.app_limit:,}" if args.app_limit else f"app limit raised to {APP_MINUTE_LIMIT:,}"
    print(
        f"{args.tenants} organisations x {args.per_tenant} bills, posters {args.posters}; Xero minute = "
        f"{args.minute_seconds} s; {limit}; {os.cpu_count()} cores shared by PostgreSQL, the emulator and the "
        f"posters, load average {load_average()}"
    )
    runs: dict[str, Any] = {}
    failures: list[str] = []
    try:
        with (
            bench.mapper(),
            postgres_server(True) as pg,
        ):
            if not isinstance(pg, PostgresServer):
                raise SystemExit(f"PostgreSQL: {pg}")
            bench.pg = pg
            url, tenants = template(bench, pg)
            fleet = Fleet(bench, pg, postmaster_pid(pg), url, tenants, calls, failures)
            for n in args.posters:
                runs[str(n)] = fleet.run(n)
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    one = runs.get("1", {}).get("elements_per_s")
    for figures in runs.values():
        figures["throughput_over_one"] = ratio(figures["elements_per_s"], one)
    print("throughput over 1 poster: " + ", ".join(f"{n} x{f['throughput_over_one']}" for n, f in runs.items()))
    if failures:
        print(f"!!! {len(failures)} FAILURE(S):\n" + "\n".join(f"!!!   {f}" for f in failures))
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "poster_fleet",
                    "tenants": args.tenants,
                    "per_tenant": args.per_tenant,
                    "minute_seconds": args.minute_seconds,
                    "app_limit": args.app_limit,
                    "runs": runs,
                    "failures": failures,
                    "load_average": loads.seen,
                    "load_average_end": load_average(),
                }
            )
        )
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
