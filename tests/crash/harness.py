"""The crash run: a generated firm's transactions posted to a real `xerolink-poster` process
(mapper process, emulator in this process, registry on a SQLite file or PostgreSQL) while a
killer SIGKILLs the poster at seeded random moments and starts it again; then, once every link
has settled, the checks an accountant and an SRE need after a crash:

- every transaction was accepted (got a posting), and every accepted one has a link;
- every link is LINKED, or FAILED with a reason (none left pending or waiting);
- the emulator holds exactly one object per Actionstep record and generation, and nothing the
  registry does not know (tests/crash/xero_trace.py);
- where everything linked, every account balance equals the ledger model's, to the cent.

Kills come in two kinds, alternating: at a random moment (acceptance, dispatch or idle), and at
the commit of a Xero write, after the emulator has created the objects and before the answer
leaves (the moment that duplicates objects in a poster that trusts its own memory).

Used by tests/crash (CI sizes) and bench/crash_suite.py (the full size)."""

from __future__ import annotations

import dataclasses
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.connections import register_emulated_connection
from xerolink_cli.firm_generator import generate_month
from xerolink_cli.firm_month.records import FirmMonth
from xerolink_common.money import decimal_to_cents
from xerolink_mapper import samples

from tests.crash import xero_trace
from tests.fidelity.ledger_model import Books, Controls
from tests.fixtures.processes import child_env, console_script, wait_for_port

CONNECTION = "crash-firm"
REQUEST_SIZE = 100
DAY_LIMIT = 1_000_000
# Transactions per matter in a generated month (about 3.9): sizes the month for a target count.
PER_MATTER = 3.9
# Errors a caller sees while the poster is dead or restarting: post the same content again.
RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN}
)
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]
FAULT_SETS: dict[str, Callable[[], list[FaultRule]]] = {
    "none": list,
    "5xx": lambda: [FaultRule("error", rate=0.1, status=503)],
    "latency": lambda: [FaultRule("latency", rate=0.2, seconds=0.2), FaultRule("latency", rate=0.02, seconds=1.2)],
    "drop": lambda: [FaultRule("drop_after_commit", rate=0.1)],
    # Committed, answered 200 with every element mangled: an answer that proves nothing.
    "garble": lambda: [FaultRule("garble_after_commit", rate=0.1)],
    "all": lambda: [
        FaultRule("error", rate=0.08, status=503),
        FaultRule("latency", rate=0.1, seconds=0.2),
        FaultRule("latency", rate=0.02, seconds=1.2),  # beyond the poster's timeout: an uncertain write
        FaultRule("drop_after_commit", rate=0.08),
        FaultRule("garble_after_commit", rate=0.05),
    ],
}


@dataclass(frozen=True)
class CrashPlan:
    transactions: int = 400
    seed: int = 20261122
    kills: int = 3
    faults: str = "none"  # a key of FAULT_SETS
    storms: int = 0  # 429 storms: every call refused for `storm_seconds`
    storm_seconds: float = 1.5
    database_url: str = ""
    workdir: Path = Path(".")
    minute_seconds: float = 0.5
    batch_size: int = 50
    settle_timeout: float = 0.0  # 0: scaled with the size
    kill_gap: float = 2.5  # at most this many seconds between a restart and the next kill
    # Xero's Idempotency-Key window (minutes there) has passed: the emulator keeps no key, so
    # only the look-up by the record's tag stands between a retry and a duplicate.
    forget_keys: bool = False

    @property
    def matters(self) -> int:
        return max(10, round(self.transactions / PER_MATTER))


@dataclass
class KillEvent:
    at: float  # seconds since the run started
    mode: str  # "random" or "at_commit"
    phase: str  # "accepting" or "dispatching"
    pid: int


@dataclass
class CrashResult:
    plan: CrashPlan
    generated: int = 0
    accepted: int = 0
    post_retries: int = 0
    kills: list[KillEvent] = field(default_factory=list)
    storms: int = 0
    fault_hits: int = 0
    linked: int = 0
    failed: int = 0
    accept_seconds: float = 0.0
    settle_seconds: float = 0.0
    xero_objects: int = 0
    allocations: int = 0
    accounts_checked: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["plan"] = {k: str(v) for k, v in dataclasses.asdict(self.plan).items()}
        data["kills"] = [f"{k.at:.1f}s {k.mode} while {k.phase}" for k in self.kills]
        return data


class PosterProcess:
    """One `xerolink-poster` on a fixed port, started again after each kill under a new name
    (odd restarts) or the same name (even restarts: a container restarted in place)."""

    def __init__(self, port: int, env: dict[str, str], logs: Path) -> None:
        self.port = port
        self.env = env
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.lock = threading.Lock()

    def start(self) -> None:
        name = f"crash-poster-{self.incarnation - self.incarnation % 2}"
        log = open(self.logs / f"poster-{self.incarnation}.log", "wb")  # noqa: SIM115 - the child owns it
        env = {**self.env, "XEROLINK_POSTER_INSTANCE": name}
        self.proc = subprocess.Popen(console_script("xerolink-poster"), env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.incarnation += 1
        wait_for_port(self.port, timeout=30, proc=self.proc)

    def kill(self) -> int:
        """SIGKILL: no handler runs, no lease is handed back, nothing is flushed."""
        with self.lock:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)  # a no-op when it is already dead and reaped
            self.proc.wait()
            return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class CommitTrap:
    """Wraps the emulator's gateway: when armed, the next Accounting API write is handled (its
    objects are committed) and the poster is killed before the answer is sent."""

    def __init__(self, emulator: EmulatorServer, poster: PosterProcess) -> None:
        self.poster = poster
        self.pid = 0
        self.armed = threading.Event()
        self.sprung = threading.Event()
        inner = emulator.gateway.handle

        def handle(request: Request) -> Response:
            response = inner(request)
            is_write = request.method in ("PUT", "POST") and request.path.startswith("/api.xro/")
            if is_write and response.status == 200 and self.armed.is_set():
                self.armed.clear()
                self.pid = self.poster.kill()
                self.sprung.set()
            return response

        emulator.gateway.handle = handle  # type: ignore[method-assign]


class Killer(threading.Thread):
    """Kills the poster `plan.kills` times at seeded random moments and starts it again."""

    def __init__(
        self,
        plan: CrashPlan,
        poster: PosterProcess,
        trap: CommitTrap,
        started: float,
        settled: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(name="killer", daemon=True)
        self.plan = plan
        self.poster = poster
        self.trap = trap
        self.started = started
        # Whether every accepted transaction has settled (asked once the month is accepted):
        # then no Xero write is left to come, and a kill waiting for one need not wait.
        self.settled = settled
        self.rng = random.Random(plan.seed)
        self.events: list[KillEvent] = []
        self.accepting = True
        self.error: BaseException | None = None

    def _await_write(self) -> bool:
        """Waits (up to 10 s) for the armed trap to kill the poster at a write; gives up early
        once nothing is left to write (the month accepted and every link settled)."""
        deadline = time.monotonic() + 10
        while not self.trap.sprung.wait(0.25):
            if time.monotonic() > deadline or (not self.accepting and self.settled()):
                return False
        return True

    def run(self) -> None:
        try:
            for index in range(self.plan.kills):
                # The first kill comes at the first Xero write, while the month is still being
                # accepted; then random moments and writes alternate.
                time.sleep(self.rng.uniform(0.1, 0.5) if index == 0 else self.rng.uniform(0.5, self.plan.kill_gap))
                mode = "random" if index % 2 else "at_commit"
                phase = "accepting" if self.accepting else "dispatching"
                if mode == "at_commit":
                    self.trap.sprung.clear()
                    self.trap.armed.set()
                    sprung = self._await_write()
                    self.trap.armed.clear()
                    if sprung or self.trap.sprung.is_set():
                        pid = self.trap.pid
                    else:  # no write came: kill anyway
                        mode = "random (no write came)"
                        pid = self.poster.kill()
                else:
                    pid = self.poster.kill()
                self.events.append(KillEvent(time.monotonic() - self.started, mode, phase, pid))
                time.sleep(self.rng.uniform(0.0, 0.5))  # down for a moment, as a pod is
                self.poster.start()
        except BaseException as exc:
            self.error = exc


class Storms(threading.Thread):
    """429 storms: every Accounting API call refused with Retry-After for a while, then calm."""

    def __init__(self, plan: CrashPlan, emulator: EmulatorServer, stop: threading.Event) -> None:
        super().__init__(name="storms", daemon=True)
        self.plan = plan
        self.emulator = emulator
        self.stop = stop
        self.rng = random.Random(plan.seed + 1)
        self.count = 0

    def run(self) -> None:
        for _ in range(self.plan.storms):
            if self.stop.wait(self.rng.uniform(1.0, max(3.0, self.plan.kill_gap))):
                return
            storm = self.emulator.faults.add(
                FaultRule("rate_limit", rate=1.0, retry_after=1, path_contains="/api.xro/")
            )
            self.count += 1
            self.stop.wait(self.plan.storm_seconds)
            self.emulator.faults.set([r for r in self.emulator.faults.rules() if r is not storm])


def _call(fn: Callable[[], Any], deadline: float) -> tuple[Any, int]:
    """Calls fn until it answers, through the poster's deaths; returns (answer, retries)."""
    retries = 0
    while True:
        try:
            return fn(), retries
        except grpc.RpcError as err:
            if err.code() not in RETRYABLE or time.monotonic() > deadline:
                raise
            retries += 1
            time.sleep(0.1)


def record_key(tx: Any) -> tuple[int, int]:
    name = f"TRANSACTION_KIND_{str(tx.WhichOneof('kind')).upper()}"
    return common_pb2.TransactionKind.Value(name), int(tx.header.id)


def list_links(stub: poster_grpc.PosterServiceStub, connection_id: str) -> list[poster_pb2.Link]:
    links: list[poster_pb2.Link] = []
    token = ""
    while True:
        request = poster_pb2.ListLinksRequest(connection_id=connection_id, page_size=500, page_token=token)
        page, _ = _call(lambda r=request: stub.ListLinks(r, timeout=30), time.monotonic() + 60)  # type: ignore[misc]
        links.extend(page.links)
        token = page.next_page_token
        if not token:
            return links


def _all_settled(stub: poster_grpc.PosterServiceStub, expected: int) -> bool:
    """Whether the connection has `expected` links, each LINKED or FAILED: one try, no retry (a
    poster that is dead or dying under the read has not been seen to settle)."""
    final = (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED)
    count = 0
    token = ""
    try:
        while True:
            request = poster_pb2.ListLinksRequest(connection_id=CONNECTION, page_size=500, page_token=token)
            page = stub.ListLinks(request, timeout=5)
            if any(link.state not in final for link in page.links):
                return False
            count += len(page.links)
            token = page.next_page_token
            if not token:
                return count >= expected > 0
    except grpc.RpcError:
        return False


def controls_of(emulator: EmulatorServer, tenant_id: str) -> Controls:
    accounts = emulator.state.organisation(tenant_id).accounts.values()
    system = {a["SystemAccount"]: a["Code"] for a in accounts if a.get("SystemAccount")}
    return Controls(receivables=system["DEBTORS"], payables=system["CREDITORS"], gst=system["GST"])


def balance_differences(month: FirmMonth, emulator: EmulatorServer, tenant_id: str) -> tuple[int, list[str]]:
    """(accounts compared, differences) between the emulator's ledger and the ledger model."""
    books = Books(samples.demo_context().account_allocation, controls_of(emulator, tenant_id))
    for tx in month.transactions:
        books.record(tx)
    expected = books.nonzero()
    ledger = emulator.ledger(tenant_id)
    in_xero = {r["Code"]: decimal_to_cents(r["Balance"]) for r in ledger["accounts"] if decimal_to_cents(r["Balance"])}
    problems = [
        f"account {code}: the model expects {expected.get(code, 0)} cents, Xero holds {in_xero.get(code, 0)}"
        for code in sorted(set(expected) | set(in_xero))
        if expected.get(code, 0) != in_xero.get(code, 0)
    ]
    if not ledger["balanced"]:
        problems.append("the organisation's debits do not equal its credits")
    return len(expected), problems


@contextmanager
def _emulator(plan: CrashPlan) -> Iterator[EmulatorServer]:
    # The scaled day lasts 1,440 scaled minutes (12 minutes of 0.5 s): its limit is not under test.
    config = EmulatorConfig(
        minute_seconds=plan.minute_seconds,
        access_token_minutes=100_000.0,
        day_limit=DAY_LIMIT,
        seed=plan.seed,
    )
    if plan.forget_keys:
        config = dataclasses.replace(config, idempotency_minutes=0.0)
    server = EmulatorServer(config).start()
    try:
        yield server
    finally:
        server.stop()


def poster_env(plan: CrashPlan, port: int, mapper_target: str) -> dict[str, str]:
    return child_env(
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{port}",
        XEROLINK_DATABASE_URL=plan.database_url,
        XEROLINK_MAPPER_TARGET=mapper_target,
        XEROLINK_XERO_MINUTE_SECONDS=str(plan.minute_seconds),
        XEROLINK_BATCH_SIZE=str(plan.batch_size),
        XEROLINK_XERO_DAY_LIMIT=str(DAY_LIMIT),
        XEROLINK_TENANT_LEASE_SECONDS="2",
        XEROLINK_XERO_TIMEOUT_SECONDS="0.9",
        XEROLINK_TENANT_IDLE_RELEASE_SECONDS="0.5",
        XEROLINK_BACKOFF_BASE_SECONDS="0.05",
        XEROLINK_BACKOFF_CAP_SECONDS="0.5",
        XEROLINK_POSTER_WORKERS="16",
        XEROLINK_LOG_LEVEL="WARNING",
    )


def run(plan: CrashPlan, mapper_target: str, port: int) -> CrashResult:
    """Runs the plan and returns its figures and every problem found (empty when all holds)."""
    result = CrashResult(plan)
    month = generate_month(plan.seed, plan.matters)
    result.generated = len(month.transactions)
    poster = PosterProcess(port, poster_env(plan, port, mapper_target), plan.workdir)
    stop_storms = threading.Event()
    with _emulator(plan) as emulator, grpc.insecure_channel(f"127.0.0.1:{port}", CHANNEL_OPTIONS) as channel:
        for rule in FAULT_SETS[plan.faults]():
            emulator.faults.add(rule)
        trap = CommitTrap(emulator, poster)
        poster.start()
        stub = poster_grpc.PosterServiceStub(channel)
        org = emulator.create_organisation("Crash Law Firm")
        _call(
            lambda: register_emulated_connection(stub, CONNECTION, emulator.base_url, org, samples.demo_context()),
            time.monotonic() + 60,
        )
        started = time.monotonic()
        killer = Killer(plan, poster, trap, started, lambda: _all_settled(stub, result.accepted))
        storms = Storms(plan, emulator, stop_storms)
        killer.start()
        storms.start()
        try:
            accepted = _post_everything(stub, month, result)
            result.accept_seconds = time.monotonic() - started
            killer.accepting = False
            killer.join()
            if killer.error is not None:
                raise killer.error
            storms.join()  # every planned storm blows before the run may settle
            links = _settle(stub, len(accepted), plan, result)
            result.settle_seconds = time.monotonic() - started
            result.storms = storms.count
            result.kills = killer.events
            result.fault_hits = sum(r.hits for r in emulator.faults.rules())
            _check(result, month, accepted, links, emulator, str(org["tenant_id"]))
        finally:
            stop_storms.set()
            poster.stop()
    return result


def _post_everything(
    stub: poster_grpc.PosterServiceStub, month: FirmMonth, result: CrashResult
) -> set[tuple[int, int]]:
    """Posts the month in requests of REQUEST_SIZE, repeating a request the poster died during
    (posting the same content again is idempotent). Returns the records that got a posting."""
    accepted: set[tuple[int, int]] = set()
    for start in range(0, len(month.transactions), REQUEST_SIZE):
        chunk = month.transactions[start : start + REQUEST_SIZE]
        request = poster_pb2.BatchPostTransactionsRequest(connection_id=CONNECTION, transactions=chunk)
        answer, retries = _call(
            lambda request=request: stub.BatchPostTransactions(request, timeout=60, wait_for_ready=True),  # type: ignore[misc]
            time.monotonic() + 120,
        )
        result.post_retries += retries
        for tx, item in zip(chunk, answer.results, strict=True):
            if item.WhichOneof("outcome") == "posting" and item.posting.decision.supported:
                accepted.add(record_key(tx))
            else:
                result.problems.append(f"transaction {record_key(tx)} was not accepted: {item}")
    result.accepted = len(accepted)
    return accepted


def _settle(
    stub: poster_grpc.PosterServiceStub, expected: int, plan: CrashPlan, result: CrashResult
) -> list[poster_pb2.Link]:
    timeout = plan.settle_timeout or max(90.0, expected * 0.15)
    deadline = time.monotonic() + timeout
    final = (poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED)
    while True:
        links = list_links(stub, CONNECTION)
        if len(links) >= expected and all(link.state in final for link in links):
            return links
        if time.monotonic() > deadline:
            open_links = [link for link in links if link.state not in final]
            result.problems.append(
                f"not settled after {timeout:.0f}s: {len(links)} links, {len(open_links)} open, e.g. "
                + "; ".join(f"{link.name} {poster_pb2.LinkState.Name(link.state)}" for link in open_links[:3])
            )
            return links
        time.sleep(0.2)


def _check(
    result: CrashResult,
    month: FirmMonth,
    accepted: set[tuple[int, int]],
    links: list[poster_pb2.Link],
    emulator: EmulatorServer,
    tenant_id: str,
) -> None:
    generated = {record_key(tx) for tx in month.transactions}
    held = {(int(link.record.kind), int(link.record.id)) for link in links}
    missing, extra = accepted - held, held - generated
    if missing:
        result.problems.append(f"{len(missing)} accepted transactions have no link, e.g. {sorted(missing)[:5]}")
    if extra:
        result.problems.append(f"{len(extra)} links of records never posted, e.g. {sorted(extra)[:5]}")
    for link in links:
        if link.state == poster_pb2.LINK_STATE_LINKED:
            result.linked += 1
        elif link.state == poster_pb2.LINK_STATE_FAILED:
            result.failed += 1
            if not (link.last_error.reason and link.last_error.message):
                result.problems.append(f"{link.name} FAILED with no reason")
    trace = xero_trace.check(xero_trace.snapshot(emulator, tenant_id), xero_trace.expected_from_links(links))
    result.problems.extend(trace.problems)
    result.xero_objects, result.allocations = trace.objects, trace.allocations
    if result.linked == len(generated):
        result.accounts_checked, differences = balance_differences(month, emulator, tenant_id)
        result.problems.extend(differences)
