"""The poster serving many Xero organisations at once: what each element costs, how many SQL
statements the dispatcher runs per Xero call, whether claiming stays flat as the outbox grows, and
whether the organisations are served fairly. The emulator runs in this process (its requests are
tapped per organisation); the mapper and the poster run as their console scripts on loopback.

    python bench/many_tenants.py                         # 200 organisations, SQLite and PostgreSQL
    python bench/many_tenants.py --quick                 # 20 organisations, SQLite (smoke)
    python bench/many_tenants.py --registry sqlite --tenants 50 --per-tenant 200 --json

For each registry (--registry sqlite|postgres|both; both by default when a PostgreSQL server can be
started with initdb/pg_ctl, as tests/fixtures/postgres.py does, else SQLite with a note):

1. Cost per element. --tenants emulated organisations (one Xero app, as in production) each get
   --per-tenant client bills, accepted by a poster whose dispatcher is off; then a poster with its
   dispatcher on drains them, and only the drain is measured: the poster's CPU (user + system, from
   /proc) per element posted, Xero calls made, elements per call, wall time from the poster's start
   to the last element. Elements are the objects other than contacts found in the emulator's
   organisations. Xero's minute is scaled (--minute-seconds) so the per-tenant limits are far
   above what one poster can use, and the app limit is raised in both the emulator and the poster
   (XEROLINK_XERO_APP_MINUTE_LIMIT) so the app ceiling cannot be what holds the drain back.
   Each organisation's bills go to --participants clients in turn (1 by default: all to one),
   each a Xero contact the drain finds or creates before its first bill. With --lost-answers N,
   the answers to the drain's first N create calls are lost after Xero made their elements, which
   the poster then looks up before it makes them again (Xero calls and CPU then count the look-ups).
   With --failed-calls N, Xero answers the first N create calls 503 having made nothing: their
   elements are looked up, then sent again after a back-off.
2. SQL statements per Xero call. A second registry holding a backlog of its own (the same number
   of organisations, --statement-per-tenant bills each, on organisations of their own: the drain
   of part 1 posted the first registry's bills to Xero, so draining a copy of it would post them
   twice) is drained in this process by the poster's own Database and Dispatcher, wired as
   entrypoints/bootstrap.py wires them (without metrics: the dispatcher only hands them numbers), with
   a `before_cursor_execute` listener on its engines. The statements the dispatcher runs until the
   backlog is drained or --statement-seconds have passed (idle polling included, as the poster
   pays for it), per Xero call made: in all, by first word (BEGIN is SQLite's BEGIN IMMEDIATE),
   commits, and the statement shapes that dominate (parameters and column lists folded).
2b. Where the dispatcher's CPU goes. Another registry with the same backlog as part 2 is drained
   the same way in this process, without the listener and with the collector set as a poster sets
   it (`collector_as_in_a_poster`), and the thread CPU (time.thread_time) spent
   in the dispatcher's parts is counted around the functions that hold them (bench/cpu_phases.py):
   the supervisor's rounds, the workers' turns (claims, hand-backs) and the jobs (prepare, contacts,
   building the elements, the Xero calls with their request and answer JSON, applying the answers
   with the drift snapshots), each per element posted and as a share of the whole; commits apart,
   wherever they run. A sampling profiler of the interpreter lock counts a thread that holds the
   lock while waiting for a core, and overstated Python's part on this busy machine.
3. Flat in the backlog. A registry of its own with ready outbox rows inserted directly (SQLAlchemy
   Core), spread over --flat-tenants organisations (20: a full batch each at 1,000 rows, so every
   size claims 50 rows), at each of --flat-sizes: the median time of
   `uow.outbox.claim` of a batch of 50 for one organisation (a different one each time; the unit
   of work is left without commit, so it rolls back and the queue stays the same size), of
   `uow.outbox.mark_uncertain` of those 50 as before their create call (timed alone, after the
   claim, in the same unit), of `leasing.take_lease` taking an organisation's lease that its
   last holder handed back, as at every turn (timed alone), of `uow.outbox.release_claims` voiding
   a claimed batch as a new holder does after a lease ran out (timed alone, after the claim; this
   one reads the organisation's queue), and of `uow.outbox.tenants_with_ready_work(now)` on a read
   unit; and the ratio largest/smallest size.
   PostgreSQL's statistics are refreshed (ANALYZE) after the inserts, as autovacuum would.
4. Fair across organisations, from the drain of part 1. Each organisation's time to its first
   element posted, from the first Xero call of the drain, against a fair share: a poster that makes
   C calls a second in all and serves T organisations round robin gives each C / T calls a second,
   so an organisation that needs k calls up to its first element (contact look-up and creation,
   then the first create; k is measured, the median over organisations) has it after about
   k x T / C seconds at the latest. Printed: median and worst first-element time, and worst over
   that prediction (about 1 for a fair poster, more for an unfair one). Then each organisation's
   elements posted while the drain went from 25 % to 75 % of the backlog, against the median
   organisation's (the mean's when the median is 0): the worst deviation in percent and how many
   organisations are more than 20 % off. Shares come in whole batches (an organisation's elements
   are posted 50 a call), so unless the window holds many batches per organisation even a fair
   poster is off by rounding: how many organisations are more than a batch off is printed too.
   The same figures come again from a drain of shares: another registry, --share-per-tenant bills
   for each of --tenants organisations of their own, drained at --share-batch-size elements a
   call (5: 100 bills are 20 calls, so the window holds about 10 batches per organisation and
   rounding alone puts a fair poster at most about 10 % off).
5. The acknowledgement while the dispatcher is busy. A registry of its own holding a backlog
   (--ack-per-tenant bills for each of --tenants organisations of their own) is drained by a
   poster process; once the drain is under way, --ack-callers callers on channels of their own
   post new bills to another connection at --ack-rate Posts a second in all (open loop, as
   bench/poster_throughput.py --rates measures, timed from each post's scheduled start) for
   --ack-seconds. Printed: p50/p99/p99.9, whether p99 stayed under 10 ms, and the elements the
   dispatcher posted meanwhile, with whether its backlog lasted the whole window. First the same
   Posts go to a poster of the same backlog with nothing draining (its dispatcher off): the Post
   path's own p99 on this machine, the floor under the figure measured while draining. Last, the
   roles split as docs/scaling.md describes: the Posts go to a poster whose dispatcher is off,
   while a second poster process drains the same registry at the lowest CPU priority (nice 19).
   The callers run in a process of their own, apart from the bench's emulator.
6. The load average (1 minute, /proc/loadavg) before and after each figure.

--only acknowledgement measures part 5 alone (its own backlogs are loaded, no other): the floor,
one poster, then the roles split. --only cost, --only statements, --only phases and --only flat
measure part 1's drain (its fairness figures included), part 2, part 2b and part 3 alone.
--sample-layers also samples part 1's draining poster with py-spy: its Python time by layer
(bench/layer_samples.py).

Nothing is asserted: a slow or unfair poster is measured as it is. Drains are bounded
(--drain-timeout); a drain cut short reports what it reached. --json prints every figure as one
JSON object on the last line (load averages under "load_average", which bench/compare.py skips).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the process and PostgreSQL helpers live with the tests
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from sqlalchemy import event, insert, text  # noqa: E402
from xero_emulator import EmulatorConfig, EmulatorServer  # noqa: E402
from xero_emulator.domain.organisation import RESOURCES, Organisation  # noqa: E402
from xero_emulator.faults import FaultRule  # noqa: E402
from xero_emulator.request_log import ReceivedRequest  # noqa: E402
from xerolink.actionstep.v1 import transaction_pb2  # noqa: E402
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2  # noqa: E402
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc  # noqa: E402
from xerolink_cli.connections import register_emulated_connection  # noqa: E402
from xerolink_common.heap import freeze_startup_heap, space_young_collections  # noqa: E402
from xerolink_mapper import samples  # noqa: E402
from xerolink_poster.adapters import token_vault, xero_payloads  # noqa: E402
from xerolink_poster.adapters.database import Database, now_us, open_database  # noqa: E402
from xerolink_poster.adapters.migrations import migrate  # noqa: E402
from xerolink_poster.adapters.repositories.leases import SqlLeaseRepository  # noqa: E402
from xerolink_poster.adapters.repositories.outbox import SqlOutboxRepository  # noqa: E402
from xerolink_poster.adapters.tables import OutboxRow  # noqa: E402
from xerolink_poster.adapters.xero_client import XeroClient  # noqa: E402
from xerolink_poster.adapters.xero_identity import XeroIdentity  # noqa: E402
from xerolink_poster.domain.states import OutboxState  # noqa: E402
from xerolink_poster.entrypoints import config as poster_config  # noqa: E402
from xerolink_poster.service_layer import drift_snapshots  # noqa: E402
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper  # noqa: E402
from xerolink_poster.service_layer.dispatch import gate as gate_module  # noqa: E402
from xerolink_poster.service_layer.dispatch import preparing  # noqa: E402
from xerolink_poster.service_layer.dispatch.contacts import Contacts  # noqa: E402
from xerolink_poster.service_layer.dispatch.gate import Gate  # noqa: E402
from xerolink_poster.service_layer.dispatch.leasing import take_lease  # noqa: E402
from xerolink_poster.service_layer.dispatch.results import Results  # noqa: E402
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges  # noqa: E402
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher  # noqa: E402
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker  # noqa: E402
from xerolink_poster.service_layer.unit_of_work import UnitOfWork  # noqa: E402

from bench import layer_samples, poster_throughput  # noqa: E402
from bench.cpu_phases import Phase, PhaseClock  # noqa: E402
from tests.fixtures.outbox import ready_row  # noqa: E402
from tests.fixtures.postgres import PostgresServer, create_database  # noqa: E402
from tests.fixtures.processes import child_env, console_script, free_port, wait_for_port  # noqa: E402

# High enough that neither the emulator nor the poster ever holds a call back for the app's minute.
APP_MINUTE_LIMIT = 10_000_000
# Only the bench's processes read the tokens it seals.
BENCH_TOKEN_KEY = "bench:" + base64.b64encode(b"many-tenants-bench-key-32-bytes!").decode()
CLAIM_BATCH = 50
LEASE_US = 30_000_000  # the dispatcher's default lease_ttl
# Per organisation, more than 20 % from the median share counts as unfair.
SHARE_TOLERANCE = 0.20


# -- pure helpers (tests/unit/test_bench_many_tenants.py) --------------------------------------
def statement_kind(sql: str) -> str:
    """SELECT, INSERT, UPDATE, DELETE, BEGIN or other, by the statement's first word (a WITH
    query counts as other: its first word does not say what it does)."""
    words = sql.lstrip(" \t\r\n(").split(None, 1)
    first = words[0].upper() if words else ""
    return first if first in ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN") else "other"


_PARAMETER = re.compile(r"%\(\w+\)s(?:::\w+)?|\$\d+(?:::\w+)?")
_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_SPACE = re.compile(r"\s+")
_COLUMNS = re.compile(r"^SELECT (DISTINCT )?[^()]*?, [^()]*? FROM ")


def normalise_sql(sql: str, width: int = 110) -> str:
    """One line per statement shape, the same on SQLite and PostgreSQL: whitespace collapsed,
    every parameter shown as ? (PostgreSQL's casts dropped), a SELECT's list of several columns
    as …, and a list of parameters, whatever its length, as (…), so an IN list of 3 ids and one
    of 50 count as the same statement."""
    one_line = _PARAMETER.sub("?", _SPACE.sub(" ", sql).strip())
    return _IN_LIST.sub("(…)", _COLUMNS.sub(lambda m: f"SELECT {m[1] or ''}… FROM ", one_line))[:width]


def fair_first_element_s(tenants: int, calls_per_s: float, calls_to_first: float) -> float | None:
    """When a round-robin poster making `calls_per_s` calls in all gives the last of `tenants`
    organisations its first element, if each needs `calls_to_first` calls up to it."""
    if calls_per_s <= 0 or tenants <= 0:
        return None
    return tenants * calls_to_first / calls_per_s


@dataclass(frozen=True)
class ShareSpread:
    median: float
    reference: float  # the median, or the mean when the median is 0
    worst_deviation_pct: float | None
    off: int  # organisations more than the tolerance away from the reference


def share_spread(shares: Sequence[int], tolerance: float = SHARE_TOLERANCE) -> ShareSpread:
    """How far the organisations' shares of a window's elements are from the median share."""
    if not shares:
        return ShareSpread(0.0, 0.0, None, 0)
    median = float(statistics.median(shares))
    reference = median if median > 0 else statistics.fmean(shares)
    if reference <= 0:
        return ShareSpread(median, reference, None, 0)
    deviations = [abs(s - reference) / reference for s in shares]
    return ShareSpread(
        median, reference, round(max(deviations) * 100, 1), sum(1 for d in deviations if d > tolerance + 1e-9)
    )


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


# -- measuring ---------------------------------------------------------------------------------
def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def elements(org: Organisation) -> int:
    """Objects other than contacts in an organisation. Read without its lock: len() of a dict is
    atomic, and taking the lock would queue the bench's polls behind the poster's calls."""
    return sum(len(org.objects[r]) for r in RESOURCES if r != "Contacts")


class Loads:
    """The load average before and after each figure, kept apart from the figures."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}

    @contextmanager
    def around(self, name: str) -> Iterator[list[float]]:
        pair = [load_average()]
        yield pair
        pair.append(load_average())
        self.seen[name] = pair

    @staticmethod
    def text(pair: list[float]) -> str:
        return f"(load average {pair[0]} before, {pair[-1]} after)"


class EmulatorTap:
    """Per organisation, from the emulator's log of Accounting API requests: calls received, calls
    refused for rate, when the first call came, and when (and after how many calls) the first
    element existed."""

    def __init__(self, emulator: EmulatorServer) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, int] = defaultdict(int)
        self.refused: dict[str, int] = defaultdict(int)
        self.first_call: dict[str, float] = {}
        self.first_element: dict[str, float] = {}
        self.calls_to_first: dict[str, int] = {}
        organisations = emulator.state.organisations
        log = emulator.state.requests
        inner = log.record

        def record(entry: ReceivedRequest) -> None:
            inner(entry)
            at = time.monotonic()
            tenant = entry.tenant_id
            with self.lock:
                self.calls[tenant] += 1
                if entry.status == 429:
                    self.refused[tenant] += 1
                self.first_call.setdefault(tenant, at)
                if tenant in self.first_element or entry.method not in ("PUT", "POST") or entry.status != 200:
                    return
                org = organisations.get(tenant)
                if org is not None and elements(org):
                    self.first_element[tenant] = at
                    self.calls_to_first[tenant] = self.calls[tenant]

        log.record = record  # type: ignore[method-assign]

    def total(self, counts: dict[str, int], tenants: Sequence[str]) -> int:
        with self.lock:
            return sum(counts.get(t, 0) for t in tenants)


def engines_of(db: Database) -> list[Any]:
    """The engines a listener must be on to see each of the database's statements once. A read
    engine made from the write engine with other options (PostgreSQL's snapshot reads) shares
    its pool and its events: listened on both, each read would be counted twice."""
    return [db.write] if db.read.pool is db.write.pool else [db.write, db.read]  # one engine: one pool


class StatementCounter:
    """Counts the SQL statements run on a Database's engines, and its commits."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kinds: Counter[str] = Counter()
        self.shapes: Counter[str] = Counter()
        self.commits = 0
        self.on = False

    def attach(self, db: Database) -> None:
        for engine in engines_of(db):
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._commit)

    @contextmanager
    def counting(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not self.on:
            return
        kind, shape = statement_kind(statement), normalise_sql(statement)
        with self.lock:
            self.kinds[kind] += 1
            self.shapes[shape] += 1

    def _commit(self, _conn: Any) -> None:
        if self.on:
            with self.lock:
                self.commits += 1


# -- processes ---------------------------------------------------------------------------------
def pg_bin(name: str) -> str | None:
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)


def as_server_user(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root: as root the server runs as Debian's `postgres` user.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_server(wanted: bool) -> Iterator[PostgresServer | str]:
    """A throwaway PostgreSQL server on loopback, as tests/fixtures/postgres.py starts one; or why
    there is none."""
    if not wanted:
        yield "not asked for"
        return
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        yield "initdb/pg_ctl not found (apt-get install postgresql)"
        return
    base = Path(tempfile.mkdtemp(prefix="xerolink-bench-pg-"))
    data = base / "data"
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    port = free_port()
    started = False
    try:
        if os.geteuid() == 0:
            shutil.chown(base, "postgres")
        subprocess.run(
            as_server_user([initdb, "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c max_connections=200"
        subprocess.run(
            as_server_user([pg_ctl, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        started = True
    except (OSError, LookupError, subprocess.SubprocessError) as exc:
        yield f"the server did not start ({type(exc).__name__}: {str(exc)[:200]})"
    if started:
        try:
            yield PostgresServer("127.0.0.1", port, user)
        finally:
            subprocess.run(
                as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True, check=False
            )
    shutil.rmtree(base, ignore_errors=True)


@contextmanager
def running(cmd: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Runs cmd until the block ends. A minute to start listening: a poster migrating its registry
    on a busy machine can take a while, and slow is measured, not refused."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout=60, proc=proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass
class Bench:
    args: argparse.Namespace
    emulator: EmulatorServer
    tap: EmulatorTap
    workdir: Path
    mapper_port: int
    loads: Loads
    pg: PostgresServer | None = None
    client_id: str | None = None  # the one Xero app every organisation is connected to
    figures: dict[str, Any] = field(default_factory=dict)

    def mapper(self) -> AbstractContextManager[subprocess.Popen[bytes]]:
        """The mapper's console script on `mapper_port`, for the posters to call."""
        return running(
            [*console_script("xerolink-mapper"), "--port", str(self.mapper_port)],
            self.mapper_port,
            child_env(XEROLINK_LOG_LEVEL="WARNING"),
            self.workdir / "mapper.log",
        )

    def url(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{name}.db'}"
        assert self.pg is not None
        return create_database(self.pg)

    def poster_env(self, url: str, port: int, dispatcher: bool, batch_size: int | None = None) -> dict[str, str]:
        return child_env(
            XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
            XEROLINK_DATABASE_URL=url,
            XEROLINK_MAPPER_TARGET=f"127.0.0.1:{self.mapper_port}",
            XEROLINK_XERO_MINUTE_SECONDS=str(self.args.minute_seconds),
            XEROLINK_BATCH_SIZE=str(batch_size or self.args.batch_size),
            XEROLINK_XERO_APP_MINUTE_LIMIT=str(APP_MINUTE_LIMIT),
            XEROLINK_TOKEN_ENCRYPTION_KEY=BENCH_TOKEN_KEY,
            XEROLINK_DISPATCHER="on" if dispatcher else "off",
            XEROLINK_LOG_LEVEL="WARNING",
        )

    def organisation(self, name: str) -> dict[str, Any]:
        org = self.emulator.create_organisation(name, client_id=self.client_id)
        self.client_id = str(org["client_id"])
        return org

    def bill(self, record_id: int, n: int) -> transaction_pb2.Transaction:
        """An organisation's n-th client bill, to one of --participants clients in turn (each its
        own Xero contact: its number and name)."""
        bill = samples.client_bill(record_id)
        if self.args.participants > 1:
            participant = bill.header.participant.participant_id + n % self.args.participants
            bill.header.participant.participant_id = participant
            bill.header.participant.display_name = f"Client {participant}"
        return bill

    def load(self, url: str, prefix: str, tenants: int, per_tenant: int) -> dict[str, str]:
        """Connections to new organisations and their bills, accepted by a poster whose
        dispatcher is off; connection id -> tenant id."""
        port = free_port()
        env = self.poster_env(url, port, dispatcher=False)
        with (
            running(console_script("xerolink-poster"), port, env, self.workdir / f"{prefix}-accept.log"),
            grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
        ):
            stub = poster_grpc.PosterServiceStub(channel)
            connected: dict[str, str] = {}
            for n in range(tenants):
                connection_id = f"{prefix}-{n}"
                org = self.organisation(connection_id)
                register_emulated_connection(stub, connection_id, self.emulator.base_url, org, samples.demo_context())
                connected[connection_id] = str(org["tenant_id"])
            started = time.monotonic()

            def post(n_connection: tuple[int, str]) -> None:
                n, connection_id = n_connection
                first = 1_000_000 * (n + 1)
                for start in range(0, per_tenant, 500):
                    bills = [self.bill(first + i, i) for i in range(start, min(start + 500, per_tenant))]
                    stub.BatchPostTransactions(
                        poster_pb2.BatchPostTransactionsRequest(connection_id=connection_id, transactions=bills),
                        timeout=300,
                    )

            # A few callers at once, as several firms' feeds would: acceptance groups their commits.
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(post, enumerate(connected)))
            elapsed = time.monotonic() - started
        print(
            f"  loaded {tenants} x {per_tenant} bills ({prefix}) in {elapsed:.1f} s "
            f"({tenants * per_tenant / elapsed:.0f}/s)"
        )
        return connected

    def wait_for_elements(
        self,
        orgs: list[Organisation],
        total: int,
        timeout: float,
        each: Callable[[float, list[int]], None],
        gone: Callable[[], bool],
    ) -> tuple[float, int]:
        """Polls the organisations' elements until `total`, `timeout` or the poster is `gone`;
        `each(now, counts)` sees every poll. Returns when it stopped and the elements then."""
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            counts = [elements(o) for o in orgs]
            each(now, counts)
            done = sum(counts)
            if done >= total or now > deadline:
                return now, done
            if gone():
                print(f"  the poster stopped after {done} of {total} elements")
                return now, done
            time.sleep(0.05)


# -- 1 and 4: the drain ------------------------------------------------------------------------
def drain(
    bench: Bench, kind: str, url: str, tenants: dict[str, str], per_tenant: int, batch_size: int, label: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Drains the backlog with a poster process whose batches hold up to `batch_size` elements;
    the cost and fairness figures, printed under `label`."""
    args = bench.args
    ids = list(tenants.values())
    orgs = [bench.emulator.state.organisation(t) for t in ids]
    total = len(ids) * per_tenant
    low, high = total // 4, total * 3 // 4
    marks: dict[str, tuple[float, list[int]]] = {}

    def mark(now: float, counts: list[int]) -> None:
        done = sum(counts)
        if "low" not in marks and done >= low:
            marks["low"] = (now, counts)
        if "high" not in marks and done >= high:
            marks["high"] = (now, counts)

    port = free_port()
    env = bench.poster_env(url, port, dispatcher=True, batch_size=batch_size)
    # --lost-answers: the first create calls' answers lost after Xero made their elements, each
    # call's elements then looked up before they are made again. --failed-calls: the first create
    # calls answered 503, nothing made; their elements looked up and sent again after a back-off.
    lost = bench.emulator.faults.add(
        FaultRule("drop_after_commit", count=args.lost_answers, methods=("PUT",), path_contains="Invoices")
    )
    failed = bench.emulator.faults.add(
        FaultRule("error", status=503, count=args.failed_calls, methods=("PUT",), path_contains="Invoices")
    )
    with (
        lost_only_here(bench.emulator, lost, failed),
        bench.loads.around(f"{kind}.{label}") as loads,
        running(console_script("xerolink-poster"), port, env, bench.workdir / f"{kind}-{label}.log") as poster,
    ):
        sampling = (
            layer_samples.sampled(poster.pid, args.drain_timeout)
            if args.sample_layers
            else contextlib.nullcontext(layer_samples.Sampling())
        )
        started = time.monotonic()
        cpu_before = cpu_seconds(poster.pid)
        with sampling as layers:
            ended, done = bench.wait_for_elements(
                orgs, total, args.drain_timeout, mark, lambda: poster.poll() is not None
            )
        if lost.hits or failed.hits:
            # Xero holds the elements of a call whose answer was lost before the poster knows it.
            ended = wait_for_registry(url, started + args.drain_timeout)
        cpu = cpu_seconds(poster.pid) - cpu_before
    calls = bench.tap.total(bench.tap.calls, ids)
    refused = bench.tap.total(bench.tap.refused, ids)
    wall = ended - started
    figures = {
        "elements_posted": done,
        "backlog": total,
        "drained": done >= total,
        "poster_cpu_ms_per_element": round(cpu * 1000 / done, 3) if done else None,
        "poster_cpu_s": round(cpu, 2),
        "xero_calls": calls,
        "calls_refused_for_rate": refused,
        "elements_per_call": ratio(done, calls),
        "drain_seconds": round(wall, 1),
        "elements_per_s": round(done / wall) if wall > 0 else None,
        "answers_lost": lost.hits,
        "calls_failed": failed.hits,
    }
    if layers.figures:
        figures["python_time_by_layer"] = layers.figures
    cut = "" if done >= total else f" (cut at {args.drain_timeout:.0f} s: {done} of {total})"
    print(
        f"[{kind}] {label}: {len(ids)} organisations x {per_tenant} bills, {batch_size} a call at most, drained in "
        f"{wall:.1f} s{cut}; "
        f"poster CPU {figures['poster_cpu_ms_per_element']} ms per element ({cpu:.1f} s for {done}); "
        f"{calls} Xero calls ({refused} refused for rate), {figures['elements_per_call']} elements per call, "
        f"{figures['elements_per_s']} elements/s"
        f"{f'; {lost.hits} answers lost, their elements looked up' if lost.hits else ''}"
        f"{f'; {failed.hits} calls answered 503, their elements looked up and sent again' if failed.hits else ''}"
        f" {Loads.text(loads)}"
    )
    if args.sample_layers:
        where = layer_samples.line(layers.figures) if layers.figures else f"not sampled: {layers.problem}"
        print(f"[{kind}] {label}: the poster's Python time by layer (py-spy --gil): {where}")
    return figures, fairness(bench, kind, ids, ended, marks, loads, batch_size)


def wait_for_registry(url: str, deadline: float) -> float:
    """Polls the registry until none of its entries is open (or `deadline`); returns when."""
    db = open_database(url)
    try:
        while True:
            with db.read.connect() as connection:
                open_entries = connection.execute(
                    text("SELECT count(*) FROM outbox WHERE state <> :done"), {"done": OutboxState.DONE.value}
                ).scalar_one()
            now = time.monotonic()
            if not open_entries or now > deadline:
                return now
            time.sleep(0.05)
    finally:
        db.dispose()


@contextmanager
def lost_only_here(emulator: EmulatorServer, *rules: FaultRule) -> Iterator[None]:
    """The rules apply to this drain alone."""
    try:
        yield
    finally:
        emulator.faults.set([r for r in emulator.faults.rules() if all(r is not rule for rule in rules)])


def fairness(
    bench: Bench,
    kind: str,
    ids: list[str],
    ended: float,
    marks: dict[str, tuple[float, list[int]]],
    loads: list[float],
    batch: int,
) -> dict[str, Any]:
    tap = bench.tap
    with tap.lock:
        first_calls = [tap.first_call[t] for t in ids if t in tap.first_call]
        firsts = {t: tap.first_element[t] for t in ids if t in tap.first_element}
        to_first = [tap.calls_to_first[t] for t in firsts]
        calls = sum(tap.calls.get(t, 0) for t in ids)
    if not first_calls:
        print(f"[{kind}] fairness: no Xero call was made")
        return {"organisations_without_element": len(ids)}
    start = min(first_calls)
    times = sorted(at - start for at in firsts.values())
    missing = len(ids) - len(times)
    calls_per_s = calls / (ended - start) if ended > start else 0.0
    k = float(statistics.median(to_first)) if to_first else 0.0
    predicted = fair_first_element_s(len(ids), calls_per_s, k)
    # An organisation still without an element waited at least the whole drain.
    worst = max([*times, *([ended - start] * missing)]) if times or missing else None
    median = statistics.median([*times, *([ended - start] * missing)]) if times or missing else None
    figures: dict[str, Any] = {
        "first_element_median_s": round(median, 2) if median is not None else None,
        "first_element_worst_s": round(worst, 2) if worst is not None else None,
        "organisations_without_element": missing,
        "calls_to_first_element": k,
        "calls_per_s": round(calls_per_s, 1),
        "fair_share_first_element_s": round(predicted, 2) if predicted is not None else None,
        "worst_over_fair_share": ratio(worst, predicted),
    }
    without = f", {missing} organisations had none by the end (counted as the whole drain)" if missing else ""
    print(
        f"[{kind}] first element per organisation (from the drain's first Xero call): median {median:.2f} s, "
        f"worst {worst:.2f} s{without}; fair share: {len(ids)} organisations x {k:g} calls each / "
        f"{calls_per_s:.1f} calls/s = {figures['fair_share_first_element_s']} s; "
        f"worst / fair share = {figures['worst_over_fair_share']} {Loads.text(loads)}"
    )
    if "low" in marks and "high" in marks:
        (t_low, low), (t_high, high) = marks["low"], marks["high"]
        shares = [h - lo for h, lo in zip(high, low, strict=True)]
        spread = share_spread(shares)
        # Shares come in whole batches: a fair poster can still be a batch from the median.
        beyond_batch = sum(1 for s in shares if abs(s - spread.reference) > batch)
        figures.update(
            window_seconds=round(t_high - t_low, 2),
            window_median_share=spread.median,
            window_worst_deviation_pct=spread.worst_deviation_pct,
            window_organisations_over_20pct_off=spread.off,
            window_organisations_over_one_batch_off=beyond_batch,
        )
        basis = "median" if spread.median > 0 else "mean (the median organisation posted nothing)"
        print(
            f"[{kind}] shares while the drain went from 25 % to 75 % ({t_high - t_low:.1f} s): "
            f"{basis} {spread.reference:.1f} elements per organisation; worst deviation "
            f"{spread.worst_deviation_pct} %, {spread.off} of {len(ids)} organisations more than "
            f"{SHARE_TOLERANCE:.0%} off, {beyond_batch} more than a batch ({batch}) off; the window holds "
            f"{spread.reference / batch:.1f} batches per organisation, so rounding to batches alone can put a fair "
            f"poster {batch / spread.reference:.0%} off {Loads.text(loads)}"
        )
    else:
        print(f"[{kind}] shares: the drain did not reach 75 % of the backlog, no window measured")
    return figures


# -- 2: statements per call --------------------------------------------------------------------
@contextmanager
def in_process_dispatcher(bench: Bench, url: str, attach: Callable[[Database], None]) -> Iterator[Dispatcher]:
    """A Dispatcher in this process on the registry at `url`, configured as its poster process
    would be, the collector too (`collector_as_in_a_poster`), not started; `attach` sees its
    database first. Stopped and closed after the block."""
    config = poster_config.load(bench.poster_env(url, free_port(), dispatcher=True))
    assert config.token_vault is not None
    token_vault.install(config.token_vault)
    db = open_database(url)
    attach(db)
    xero = XeroClient(timeout=config.dispatcher.http_timeout)
    identity = XeroIdentity(config.dispatcher.http_timeout)
    keeper = ConnectionKeeper(db, config.token_vault, config.xero_apps, identity, config.instance_id)
    dispatcher = Dispatcher(db, xero, config.dispatcher, config.instance_id, StateChanges(), None, keeper)
    try:
        with collector_as_in_a_poster():
            yield dispatcher
    finally:
        dispatcher.stop()
        xero.close()
        identity.close()
        db.dispose()


@contextmanager
def collector_as_in_a_poster() -> Iterator[None]:
    """The collector as the poster's console script sets it once started (xerolink_common/heap.py:
    what is alive frozen, young collections spaced), then as it was. Left at this process's
    defaults, the dispatcher's full passes also examined the bench's own objects, the emulator's
    organisations among them, which a poster does not hold. Those the emulator makes during the
    drain are still examined."""
    thresholds = gc.get_threshold()
    freeze_startup_heap()
    space_young_collections()
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


class InProcessDrain(NamedTuple):
    started: float  # monotonic
    ended: float
    done: int  # elements posted
    total: int  # elements backlogged
    calls: int  # Xero calls made
    loads: list[float]  # load averages before and after
    # The transactions that applied calls' answers, the calls they applied, and most in one.
    answer_groups: tuple[int, int, int]


def drain_in_process(
    bench: Bench,
    label: str,
    url: str,
    tenants: dict[str, str],
    attach: Callable[[Database], None],
    measured: AbstractContextManager[Any],
    stop: bool = False,
) -> InProcessDrain:
    """The organisations' backlog (--statement-per-tenant bills each) drained by an in-process
    dispatcher until done or --statement-seconds have passed, `measured` entered around the drain
    (and around stopping the dispatcher, with `stop`)."""
    args = bench.args
    ids = list(tenants.values())
    orgs = [bench.emulator.state.organisation(t) for t in ids]
    total = len(ids) * args.statement_per_tenant
    with bench.loads.around(label) as loads, in_process_dispatcher(bench, url, attach) as dispatcher, measured:
        started = time.monotonic()
        dispatcher.start()
        ended, done = bench.wait_for_elements(
            orgs, total, args.statement_seconds, lambda _now, _counts: None, lambda: dispatcher.stopping
        )
        calls = dispatcher.calls_made
        if stop:
            dispatcher.stop()
    return InProcessDrain(started, ended, done, total, calls, loads, dispatcher.answers.figures)


def statements(bench: Bench, kind: str, url: str, tenants: dict[str, str]) -> dict[str, Any]:
    counter = StatementCounter()
    drained = drain_in_process(bench, f"{kind}.statements", url, tenants, counter.attach, counter.counting())
    started, ended, done, total, calls, loads, (groups, answered, largest) = drained
    with counter.lock:
        kinds, shapes, commits = dict(counter.kinds), counter.shapes.most_common(6), counter.commits
    every = sum(kinds.values())
    figures: dict[str, Any] = {
        "xero_calls": calls,
        "elements_posted": done,
        "seconds": round(ended - started, 1),
        "statements": every,
        "statements_per_call": ratio(every, calls, 1),
        "commits_per_call": ratio(commits, calls, 1),
        # dispatch/answer_groups.py: several calls' answers applied in one transaction.
        "calls_answered_per_transaction": ratio(answered, groups, 1),
        "most_calls_answered_in_one_transaction": largest,
        "per_call_by_kind": {
            k: ratio(kinds.get(k, 0), calls, 2) for k in ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "other")
        },
        "top_statements_per_call": {shape[:60]: ratio(n, calls, 2) for shape, n in shapes},
    }
    split = ", ".join(f"{k} {v}" for k, v in figures["per_call_by_kind"].items())
    part = f"all {total}" if done >= total else f"{done} of {total}"
    print(
        f"[{kind}] SQL statements per Xero call: {figures['statements_per_call']} ({every} statements, "
        f"{figures['commits_per_call']} commits per call, for {calls} calls posting {part} elements in "
        f"{ended - started:.1f} s; the answers of {answered} calls applied in {groups} transactions, "
        f"at most {largest} in one); "
        f"by first word: {split} {Loads.text(loads)}"
    )
    for shape, n in shapes:
        print(f"    {ratio(n, calls, 2)} per call: {shape}")
    return figures


# -- 2b: where the dispatcher's CPU goes ------------------------------------------------------
def dispatcher_phases() -> list[Phase]:
    """The dispatcher's parts, each a function looked up where its callers look it up. The top
    ones are the whole: the supervisor's thread, the tenants' workers' threads and their jobs
    (on the workers' pools)."""
    return [
        Phase("supervisor rounds", Dispatcher, "_run"),
        Phase("starting workers", Dispatcher, "_start_workers", parent="supervisor rounds"),
        Phase("worker turns", TenantWorker, "run"),
        Phase("claims", TenantWorker, "_claim", parent="worker turns"),
        Phase("hand-backs", Dispatcher, "hand_back", parent="worker turns"),
        Phase("jobs", TenantWorker, "_process"),
        Phase("prepare", preparing, "prepare", parent="jobs"),
        Phase("contacts", Contacts, "ensure", parent="jobs"),
        Phase("elements", xero_payloads, "element_of", parent="jobs"),
        Phase("Xero calls", Gate, "call", parent="jobs"),
        Phase("request JSON", gate_module, "dumps", parent="Xero calls"),
        Phase("HTTP and answer JSON", XeroClient, "call", parent="Xero calls"),
        Phase("the transaction before the call", gate_module, "run_in_transaction", parent="Xero calls"),
        Phase("lease", SqlLeaseRepository, "lease_for_call", parent="the transaction before the call"),
        Phase("call log", SqlLeaseRepository, "log_call", parent="the transaction before the call"),
        Phase("app minute", SqlLeaseRepository, "count_app_call", parent="the transaction before the call"),
        Phase("uncertain marks", SqlOutboxRepository, "mark_uncertain", parent="the transaction before the call"),
        Phase("applying answers", Results, "write", parent="jobs"),
        Phase("drift documents", drift_snapshots, "documents_of", parent="applying answers"),
        Phase("drift snapshots written", drift_snapshots, "record_posted", parent="applying answers"),
        Phase("commits", UnitOfWork, "commit", across=True),
    ]


def cpu_phases(bench: Bench, kind: str, url: str, tenants: dict[str, str]) -> dict[str, Any]:
    """Thread CPU per element posted by the dispatcher's parts, draining a backlog in this
    process."""
    clock = PhaseClock(dispatcher_phases())
    started, ended, done, total, _, loads, _ = drain_in_process(
        bench, f"{kind}.phases", url, tenants, lambda _db: None, clock, stop=True
    )
    figures, line = clock.report(done)
    figures["drain_seconds"] = round(ended - started, 1)
    part = f"all {total}" if done >= total else f"{done} of {total}"
    print(
        f"[{kind}] where the dispatcher's CPU goes (thread CPU in ms per element, in-process dispatcher posting "
        f"{part} elements in {ended - started:.1f} s): {figures['cpu_ms_per_element']} in all; {line} "
        f"{Loads.text(loads)}"
    )
    return figures


# -- 3: flat in the backlog --------------------------------------------------------------------
def insert_ready(db: Database, first: int, count: int, tenants: int) -> None:
    """`count` ready entries, numbered from `first`, spread round robin over the organisations."""
    now = now_us()
    table = OutboxRow.__table__  # type: ignore[attr-defined]
    for start in range(first, first + count, 5000):
        rows = [
            ready_row(f"flat-tenant-{n % tenants}", f"flat-{n % tenants}", n, now - 1_000_000, now)
            for n in range(start, min(start + 5000, first + count))
        ]
        with db.write.begin() as conn:
            conn.execute(insert(table), rows)
    if not db.is_sqlite:
        with db.write.begin() as conn:
            conn.execute(text("ANALYZE outbox"))


def timed_median_ms(run: Callable[[int], float | None], repeats: int, budget: float) -> tuple[float, int]:
    """Median milliseconds of run(i) over `repeats` runs (fewer when `budget` seconds run out): a
    run's own figure when it returns one (it timed a part of itself), else the whole run."""
    times: list[float] = []
    deadline = time.monotonic() + budget
    for i in range(repeats):
        started = time.perf_counter()
        timed = run(i)
        times.append((time.perf_counter() - started) * 1000 if timed is None else timed)
        if time.monotonic() > deadline and len(times) >= 5:
            break
    return statistics.median(times), len(times)


def flat(bench: Bench, kind: str) -> dict[str, Any]:
    args = bench.args
    db = open_database(bench.url(kind, "flat"))
    migrate(db)
    sizes = sorted(args.flat_sizes)
    by_size: dict[str, dict[str, float]] = {}
    present = 0
    try:
        for size in sizes:
            insert_ready(db, present, size - present, args.flat_tenants)
            present = size

            def claim(i: int) -> None:
                tenant = f"flat-tenant-{i * 7 % args.flat_tenants}"
                with UnitOfWork(db) as uow:  # left uncommitted: rolls back, the queue stays as it was
                    uow.outbox.claim(tenant, "bench", CLAIM_BATCH, now_us(), 300_000_000)

            def mark(i: int) -> float:
                tenant = f"flat-tenant-{i * 7 % args.flat_tenants}"
                with UnitOfWork(db) as uow:  # rolls back, as the claim's
                    now = now_us()
                    claimed = uow.outbox.claim(tenant, "bench", CLAIM_BATCH, now, 300_000_000)
                    started = time.perf_counter()
                    marked = uow.outbox.mark_uncertain({e.id: "" for e in claimed}, now + 1, "bench", now)
                    elapsed = (time.perf_counter() - started) * 1000
                if marked != CLAIM_BATCH:
                    raise SystemExit(f"marked {marked} of the {CLAIM_BATCH} entries claimed")
                return elapsed

            def lease_taken(i: int) -> float:
                tenant = f"flat-tenant-{i * 7 % args.flat_tenants}"
                with UnitOfWork(db) as uow:  # rolls back, as the claim's
                    now = now_us()
                    uow.leases.acquire_lease(tenant, "last", now, LEASE_US)
                    uow.leases.release_lease(tenant, "last")  # handed back at the end of its turn
                    started = time.perf_counter()
                    if take_lease(uow, tenant, "bench", now, LEASE_US) is None:
                        raise SystemExit(f"the lease of {tenant}, handed back, was not taken")
                    return (time.perf_counter() - started) * 1000

            def release(i: int) -> float:
                tenant = f"flat-tenant-{i * 7 % args.flat_tenants}"
                with UnitOfWork(db) as uow:  # rolls back, as the claim's
                    uow.outbox.claim(tenant, "dead", CLAIM_BATCH, now_us(), 300_000_000)
                    started = time.perf_counter()
                    uow.outbox.release_claims(tenant)  # a lease that ran out: its holder's batch voided
                    return (time.perf_counter() - started) * 1000

            def ready(_i: int) -> None:
                with UnitOfWork(db, write=False) as uow:
                    uow.outbox.tenants_with_ready_work(now_us())

            with bench.loads.around(f"{kind}.flat.{size}") as loads:
                claim_ms, claims = timed_median_ms(claim, args.repeats, args.repeat_budget)
                mark_ms, marks = timed_median_ms(mark, args.repeats, args.repeat_budget)
                taken_ms, takes = timed_median_ms(lease_taken, args.repeats, args.repeat_budget)
                release_ms, releases = timed_median_ms(release, args.repeats, args.repeat_budget)
                ready_ms, readies = timed_median_ms(ready, args.repeats, args.repeat_budget)
            by_size[str(size)] = {
                "claim_ms": round(claim_ms, 3),
                "mark_uncertain_ms": round(mark_ms, 3),
                "lease_taken_ms": round(taken_ms, 3),
                "release_claims_ms": round(release_ms, 3),
                "tenants_with_ready_work_ms": round(ready_ms, 3),
            }
            print(
                f"[{kind}] {size:,} ready outbox rows over {args.flat_tenants} organisations: claim of "
                f"{CLAIM_BATCH} for one organisation {claim_ms:.2f} ms (median of {claims}), "
                f"marking them uncertain {mark_ms:.2f} ms (median of {marks}), "
                f"taking a lease handed back {taken_ms:.2f} ms (median of {takes}), "
                f"voiding a batch's claims after a lease ran out {release_ms:.2f} ms (median of {releases}), "
                f"tenants_with_ready_work {ready_ms:.2f} ms (median of {readies}) {Loads.text(loads)}"
            )
    finally:
        db.dispose()
    small, large = by_size[str(sizes[0])], by_size[str(sizes[-1])]
    figures: dict[str, Any] = {
        **{f"rows_{size}": values for size, values in by_size.items()},
        "claim_ratio": ratio(large["claim_ms"], small["claim_ms"]),
        "mark_uncertain_ratio": ratio(large["mark_uncertain_ms"], small["mark_uncertain_ms"]),
        "lease_taken_ratio": ratio(large["lease_taken_ms"], small["lease_taken_ms"]),
        "release_claims_ratio": ratio(large["release_claims_ms"], small["release_claims_ms"]),
        "tenants_with_ready_work_ratio": ratio(
            large["tenants_with_ready_work_ms"], small["tenants_with_ready_work_ms"]
        ),
    }
    print(
        f"[{kind}] flat in the backlog, {sizes[-1]:,} rows / {sizes[0]:,}: claim x{figures['claim_ratio']}, "
        f"marking uncertain x{figures['mark_uncertain_ratio']}, "
        f"taking a lease handed back x{figures['lease_taken_ratio']}, "
        f"tenants_with_ready_work x{figures['tenants_with_ready_work_ratio']} (1 is flat); "
        f"voiding a batch's claims after a lease ran out x{figures['release_claims_ratio']} (reads the tenant's queue)"
    )
    return figures


# -- 6: the acknowledgement while the dispatcher drains ---------------------------------------
SHAPES = {
    "one": "while draining",
    "split": "while draining (roles split)",
    "idle": "with nothing draining (the Post path's own floor)",
}


def acknowledgement(bench: Bench, kind: str, url: str, tenants: dict[str, str], shape: str = "one") -> dict[str, Any]:
    """Open-loop Posts to a connection of their own (poster_throughput.open_loop: --ack-callers
    callers on channels of their own, --ack-rate a second in all, timed from each post's
    scheduled start) while the poster's dispatcher drains the other organisations' backlog.
    `shape` "split": the roles split as docs/scaling.md describes, the Posts going to a poster
    whose dispatcher is off while a second poster process on the same registry drains at the
    lowest CPU priority (`nice -n 19`); "idle": the
    same poster and backlog with nothing draining, so the Post path's own p99 is seen beside the
    contention's."""
    args = bench.args
    split, draining = shape == "split", shape != "idle"
    orgs = [bench.emulator.state.organisation(t) for t in tenants.values()]
    total = len(orgs) * args.ack_per_tenant
    port, drainer_port = free_port(), free_port()
    env = bench.poster_env(url, port, dispatcher=shape == "one")
    name = f"{kind}.acknowledgement{'' if shape == 'one' else '.' + shape}"
    with (
        bench.loads.around(name) as loads,
        running(console_script("xerolink-poster"), port, env, bench.workdir / f"{name}.log") as poster,
        (
            running(
                # docs/scaling.md: on one host the draining poster runs at the lowest CPU priority,
                # so the drain takes the CPU the Posts leave.
                ["nice", "-n", "19", *console_script("xerolink-poster")],
                drainer_port,
                bench.poster_env(url, drainer_port, dispatcher=True),
                bench.workdir / f"{name}.drainer.log",
            )
            if split
            else contextlib.nullcontext()
        ),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        org = bench.organisation(f"{kind}-ack")
        register_emulated_connection(
            poster_grpc.PosterServiceStub(channel), f"{kind}-ack", bench.emulator.base_url, org, samples.demo_context()
        )
        deadline = time.monotonic() + (30 if draining else 0)
        while sum(elements(o) for o in orgs) < args.batch_size and time.monotonic() < deadline:
            time.sleep(0.05)  # the drain is under way
        before = sum(elements(o) for o in orgs)
        started = time.monotonic()
        settings = argparse.Namespace(callers=args.ack_callers, open_seconds=args.ack_seconds)
        bills = poster_throughput.Bills(50_000_000, f"{kind}-ack")
        figures = poster_throughput.open_loop(f"127.0.0.1:{port}", poster.pid, bills, args.ack_rate, settings)
        window = time.monotonic() - started
        after = sum(elements(o) for o in orgs)
    busy = after < total
    figures.update(
        drain_elements_during=after - before,
        drain_elements_per_s=round((after - before) / window) if window > 0 else None,
        drain_still_running_at_end=busy,
    )
    under = "yes" if figures["p99_ms"] < 10 and not figures["errors"] else "no"
    meanwhile = (
        f"meanwhile the dispatcher posted {after - before} elements of the other organisations "
        f"({figures['drain_elements_per_s']}/s), "
        f"{'and still had' if busy else 'and had drained them all; it had no'} backlog at the end"
        if draining
        else f"the other organisations' {total} bills waited undrained ({after - before} posted meanwhile)"
    )
    print(
        f"[{kind}] acknowledgement {SHAPES[shape]}: p99 {figures['p99_ms']} ms at {args.ack_rate:.0f} posts/s "
        f"(under 10 ms: {under}); {meanwhile} (the poster CPU per post above includes "
        f"{'the dispatcher' if shape == 'one' else 'no dispatcher'}'s) {Loads.text(loads)}"
    )
    return figures


# -- the run -----------------------------------------------------------------------------------
def one_registry(bench: Bench, kind: str) -> dict[str, Any]:
    args = bench.args
    print(f"registry {kind}:")
    if args.only == "acknowledgement":
        figures = {}
        for shape, key in (("idle", "idle"), ("one", ""), ("split", "split")):
            url = bench.url(kind, f"acknowledgement-{shape}")
            busy = bench.load(url, f"{kind}-{shape[0]}", args.tenants, args.ack_per_tenant)
            figures["acknowledgement" + (f"_{key}" if key else "")] = acknowledgement(bench, kind, url, busy, shape)
        return figures
    if args.only == "cost":
        cost_url = bench.url(kind, "drain")
        backlog = bench.load(cost_url, f"{kind}-d", args.tenants, args.per_tenant)
        cost, fair = drain(bench, kind, cost_url, backlog, args.per_tenant, args.batch_size, "cost per element")
        return {"cost": cost, "fairness": fair}
    if args.only == "statements":
        statement_url = bench.url(kind, "statements")
        counted = bench.load(statement_url, f"{kind}-s", args.tenants, args.statement_per_tenant)
        return {"statements": statements(bench, kind, statement_url, counted)}
    if args.only == "flat":
        return {"flat": flat(bench, kind)}
    if args.only == "phases":
        phase_url = bench.url(kind, "phases")
        return {
            "cpu_phases": cpu_phases(
                bench, kind, phase_url, bench.load(phase_url, f"{kind}-c", args.tenants, args.statement_per_tenant)
            )
        }
    main_url, statement_url = bench.url(kind, "drain"), bench.url(kind, "statements")
    ack_url, share_url = bench.url(kind, "acknowledgement"), bench.url(kind, "shares")
    drained = bench.load(main_url, f"{kind}-d", args.tenants, args.per_tenant)
    counted = bench.load(statement_url, f"{kind}-s", args.tenants, args.statement_per_tenant)
    phase_url = bench.url(kind, "phases")
    phased = bench.load(phase_url, f"{kind}-c", args.tenants, args.statement_per_tenant)
    busy = bench.load(ack_url, f"{kind}-a", args.tenants, args.ack_per_tenant)
    idle_url = bench.url(kind, "acknowledgement-idle")
    waiting = bench.load(idle_url, f"{kind}-i", args.tenants, args.ack_per_tenant)
    split_url = bench.url(kind, "acknowledgement-split")
    split = bench.load(split_url, f"{kind}-p", args.tenants, args.ack_per_tenant)
    shared = bench.load(share_url, f"{kind}-f", args.tenants, args.share_per_tenant)
    cost, fair = drain(bench, kind, main_url, drained, args.per_tenant, args.batch_size, "cost per element")
    _, shares = drain(bench, kind, share_url, shared, args.share_per_tenant, args.share_batch_size, "shares")
    return {
        "cost": cost,
        "fairness": fair,
        "shares": shares,
        "statements": statements(bench, kind, statement_url, counted),
        "cpu_phases": cpu_phases(bench, kind, phase_url, phased),
        "acknowledgement_idle": acknowledgement(bench, kind, idle_url, waiting, "idle"),
        "acknowledgement": acknowledgement(bench, kind, ack_url, busy),
        "acknowledgement_split": acknowledgement(bench, kind, split_url, split, "split"),
        "flat": flat(bench, kind),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run (smoke): 20 organisations, SQLite only")
    parser.add_argument("--tenants", type=int, default=200, help="emulated organisations")
    parser.add_argument("--per-tenant", type=int, default=150, help="bills each organisation has to post")
    parser.add_argument(
        "--participants",
        type=int,
        default=1,
        help="clients each organisation's bills go to in turn, each a Xero contact to find or create (1: all to one)",
    )
    parser.add_argument(
        "--lost-answers",
        type=int,
        default=0,
        help="create calls of the drains whose answers are lost after Xero made their elements (the first ones)",
    )
    parser.add_argument(
        "--failed-calls",
        type=int,
        default=0,
        help="create calls of the drains Xero answers 503 having made nothing (the first ones)",
    )
    parser.add_argument(
        "--statement-per-tenant", type=int, default=100, help="bills each organisation has for the statement count"
    )
    parser.add_argument(
        "--statement-seconds", type=float, default=30.0, help="how long the statement count drains at most"
    )
    parser.add_argument("--batch-size", type=int, default=50, help="the poster's XEROLINK_BATCH_SIZE")
    parser.add_argument("--registry", choices=["sqlite", "postgres", "both"], help="default: both if PostgreSQL starts")
    parser.add_argument("--minute-seconds", type=float, default=3.0, help="length of a scaled Xero minute")
    parser.add_argument("--drain-timeout", type=float, default=150.0, help="seconds a drain may take at most")
    parser.add_argument(
        "--flat-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 100_000], help="outbox rows"
    )
    # 20: each organisation then holds a full batch (50) at the smallest size too, so both sizes
    # claim the same number of rows and only the queue's length differs.
    parser.add_argument("--flat-tenants", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200, help="repetitions of each flat measurement")
    parser.add_argument("--repeat-budget", type=float, default=15.0, help="seconds each flat measurement may take")
    parser.add_argument(
        "--share-per-tenant", type=int, default=100, help="bills each organisation has for the drain of shares"
    )
    parser.add_argument(
        "--share-batch-size", type=int, default=5, help="elements a call at most in the drain of shares"
    )
    parser.add_argument(
        "--ack-per-tenant", type=int, default=50, help="bills each organisation has for the drain beside the Posts"
    )
    parser.add_argument("--ack-rate", type=float, default=100.0, help="Posts a second offered while draining")
    parser.add_argument("--ack-seconds", type=float, default=5.0, help="how long the Posts are offered")
    parser.add_argument("--ack-callers", type=int, default=10, help="callers, each on a channel of its own")
    parser.add_argument(
        "--only",
        choices=["cost", "statements", "phases", "flat", "acknowledgement"],
        help="measure only this part (1's drain, 2, 2b, 3 or 5), with its own backlog and no other",
    )
    parser.add_argument(
        "--sample-layers",
        action="store_true",
        help="sample the draining poster with py-spy: its Python time by layer (bench/layer_samples.py)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")
    args = parser.parse_args()
    if args.quick:
        args.tenants, args.per_tenant, args.statement_per_tenant, args.statement_seconds = 20, 100, 50, 15.0
        args.ack_per_tenant, args.ack_seconds, args.share_per_tenant = 100, 3.0, 50
        args.flat_sizes, args.repeats, args.repeat_budget, args.drain_timeout = [1000, 10_000], 50, 5.0, 60.0
        args.registry = args.registry or "sqlite"
    workdir = Path(tempfile.mkdtemp(prefix="many-tenants-bench-"))
    emulator = EmulatorServer(
        EmulatorConfig(
            minute_seconds=args.minute_seconds, access_token_minutes=100_000.0, app_minute_limit=APP_MINUTE_LIMIT
        )
    ).start()
    loads = Loads()
    bench = Bench(args, emulator, EmulatorTap(emulator), workdir, free_port(), loads)
    print(
        f"{args.tenants} organisations x {args.per_tenant} bills (statement count: x {args.statement_per_tenant}); "
        f"Xero minute = {args.minute_seconds} s; app minute limit raised to {APP_MINUTE_LIMIT:,}; "
        f"{os.cpu_count()} cores, load average {load_average()}"
    )
    try:
        with (
            bench.mapper(),
            postgres_server(args.registry != "sqlite") as pg,
        ):
            kinds = ["sqlite", "postgres"] if args.registry in (None, "both") else [args.registry]
            if isinstance(pg, PostgresServer):
                bench.pg = pg
            elif "postgres" in kinds:
                if args.registry == "postgres":
                    raise SystemExit(f"PostgreSQL: {pg}")
                print(f"note: PostgreSQL not measured: {pg}; SQLite only")
                kinds = ["sqlite"]
            for kind in kinds:
                bench.figures[kind] = one_registry(bench, kind)
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": "many_tenants",
                    "tenants": args.tenants,
                    "per_tenant": args.per_tenant,
                    "minute_seconds": args.minute_seconds,
                    **bench.figures,
                    "load_average": loads.seen,
                    "load_average_end": load_average(),
                }
            )
        )


if __name__ == "__main__":
    main()
