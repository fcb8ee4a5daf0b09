"""Writes docs/benchmarks.md from fresh runs of the bench scripts: each runs as a subprocess with
--json (its figures as one JSON object on its last line), and the page records the machine
(CPU, cores, memory, Python, load average before and after each run) and the exact command of
every figure.

    python bench/report.py                      # every bench at full size (about 10-15 minutes)
    python bench/report.py --quick              # small runs: checks the page can be made, figures mean little
    python bench/report.py --only poster_memory,mapper_throughput --output /tmp/b.md
    python bench/report.py --with-crash         # also the crash suite at 10,000 transactions (long)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the bench package is found from the root
    sys.path.insert(0, str(ROOT))

from bench.report_page import OldPage, Section  # noqa: E402

DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
Figures = dict[str, Any]


@dataclass(frozen=True)
class Bench:
    name: str  # the script is bench/<name>.py
    title: str
    measures: str  # one paragraph: what is measured and how
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ("--quick",)
    optional: bool = False  # run only when asked for

    def command(self, quick: bool) -> list[str]:
        script = f"bench/{self.name}.py"
        # A script without --json still reports: its printed lines go on the page as they are.
        json_flag = ["--json"] if "--json" in _help(script) else []
        return ["python", script, *(self.quick_args if quick else self.args), *json_flag]


def _help(script: str) -> str:
    done = subprocess.run(
        [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    return done.stdout


def _number(value: Any, digits: int = 0) -> str:
    return f"{value:,.{digits}f}" if isinstance(value, int | float) else str(value)


def _no_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    return []


def _mapper_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    rows = []
    for key, label in (
        ("mixed_stream_500_per_message_processes_0_per_second", "Mapper, stream, 500 per message, mixed kinds"),
        ("mixed_stream_500_per_message_processes_2_per_second", "Mapper, stream, 500 per message, 2 stream processes"),
        ("bills_stream_500_per_message_processes_0_per_second", "Mapper, stream, 500 per message, 4-line bills"),
        ("mixed_unary_32_in_flight_per_second", "Mapper, unary calls, 32 in flight"),
    ):
        if key in figures:
            rows.append((label, f"{_number(figures[key])} transactions/s"))
    return rows


def _poster_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    """From the JSON figures when the script gives them, else from its printed lines."""
    rows = []
    throughput = figures.get("throughput") or {}
    if throughput:
        ceiling = throughput["ceiling_per_minute"]
        for connection, minutes in throughput["elements_per_minute"].items():
            shares = ", ".join(f"{n} ({n / ceiling:.1%})" for n in minutes)
            rows.append(
                (f"Posting throughput per scaled minute ({connection})", f"{shares} of {ceiling} (Xero's ceiling)")
            )
        posted = throughput["transactions_posted"]
        rows.append(
            (
                "Xero calls against one call per transaction",
                f"{throughput['xero_calls']} calls for {posted} transactions (baseline {posted}); "
                f"{throughput['calls_refused']} refused for rate",
            )
        )
    else:
        minute = re.search(r"first minute (\d+) elements = ([\d.]+)% of the ceiling \((\d+) = ", text)
        every = re.search(r"every minute: (.+)", text)
        if minute and every:
            rows.append(("Posting throughput per scaled minute", f"{every[1]} of {minute[3]} (Xero's ceiling)"))
        calls = re.search(r"Xero calls: (\d+) for (\d+) transactions posted .*?calls refused for rate: (\d+)", text)
        if calls:
            rows.append(
                (
                    "Xero calls against one call per transaction",
                    f"{calls[1]} calls for {calls[2]} transactions (baseline {calls[2]}); {calls[3]} refused for rate",
                )
            )
    closed = figures.get("closed_loop")
    if closed:
        rows.append(
            (
                f"Post latency, {closed['callers']} callers, closed loop",
                f"p50 {closed['p50_ms']} ms, p99 {closed['p99_ms']} ms ({closed['posts_per_s']} posts/s)",
            )
        )
    else:
        latency = r"Post acknowledgement, (\d+) concurrent callers \(([^)]*)\).*?p50 ([\d.]+) ms, p99 ([\d.]+) ms"
        for match in re.finditer(latency, text):
            rows.append((f"Post latency, {match[1]} callers ({match[2]})", f"p50 {match[3]} ms, p99 {match[4]} ms"))
    for run in figures.get("open_loop") or []:
        rows.append(
            (
                f"Post latency, open loop, {_number(run['offered_per_s'])} posts/s offered",
                f"p50 {run['p50_ms']} ms, p99 {run['p99_ms']} ms, p99.9 {run['p999_ms']} ms",
            )
        )
    return rows


def _memory_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    if "rss_queued_mb" not in figures:
        return []
    n = _number(figures["transactions"])
    return [
        (f"Poster RSS with {n} transactions queued", f"{figures['rss_queued_mb']:.1f} MB"),
        (f"Poster RSS, fresh process on {n} queued", f"{figures['rss_restarted_on_backlog_mb']:.1f} MB"),
        ("Poster peak RSS while accepting them", f"{figures['rss_peak_accepting_mb']:.1f} MB"),
        (f"Registry on disk (SQLite, {n} queued)", f"{figures['registry_bytes_on_disk_mb']:.1f} MB"),
    ]


def _tenants_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    rows = []
    tenants = figures.get("tenants")
    for kind, name in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        registry = figures.get(kind)
        if not registry:
            continue
        cost, fair = registry.get("cost", {}), registry.get("fairness", {})
        statements, flat = registry.get("statements", {}), registry.get("flat", {})
        if cost:
            rows.append(
                (
                    f"{tenants} organisations draining, {name}: poster CPU per element",
                    f"{cost['poster_cpu_ms_per_element']} ms ({cost['elements_per_call']} elements per Xero call, "
                    f"{cost['elements_posted']} posted in {cost['drain_seconds']} s)",
                )
            )
        if statements:
            rows.append((f"SQL statements per Xero call, {name}", f"{statements['statements_per_call']}"))
        phases = registry.get("cpu_phases", {}).get("phases", {})
        if phases:
            ms = {phase: figures_["ms_per_element"] for phase, figures_ in phases.items()}
            rows.append(
                (
                    f"Dispatcher thread CPU per element by phase, {name}",
                    f"{registry['cpu_phases']['cpu_ms_per_element']} ms: Xero calls {ms['Xero calls']} (the "
                    f"transaction before each {ms['the transaction before the call']}), applying answers "
                    f"{ms['applying answers']}, contacts {ms['contacts']}, claims {ms['claims']}",
                )
            )
        if flat:
            sizes = sorted(int(k.removeprefix("rows_")) for k in flat if k.startswith("rows_"))
            parts = [("Claim", "claim_ratio"), ("marking uncertain", "mark_uncertain_ratio")]
            parts += [("taking a lease handed back", "lease_taken_ratio")]
            parts += [("tenants_with_ready_work", "tenants_with_ready_work_ratio")]
            # Older runs measured neither marking nor leases: a row shows what its run measured.
            measured = [(label, flat[key]) for label, key in parts if key in flat]
            rows.append(
                (
                    f"{' / '.join(label for label, _ in measured)} at {sizes[-1]:,} ready rows over "
                    f"{sizes[0]:,}, {name}",
                    f"{' / '.join(f'x{value}' for _, value in measured)} (1 is flat)",
                )
            )
        if "first_element_worst_s" in fair:
            rows.append(
                (
                    f"First element per organisation, median / worst, {name}",
                    f"{fair['first_element_median_s']} s / {fair['first_element_worst_s']} s "
                    f"(fair share {fair['fair_share_first_element_s']} s)",
                )
            )
        shares = registry.get("shares", {})
        if "window_worst_deviation_pct" in shares:
            rows.append(
                (
                    f"Shares of a drain at 5 a call, from 25 % to 75 %, {name}",
                    f"{shares['window_organisations_over_20pct_off']} of {tenants} organisations more than 20 % "
                    f"from the median (worst {shares['window_worst_deviation_pct']} %); worst first element "
                    f"x{shares['worst_over_fair_share']} of the fair share",
                )
            )
        for key, when in (
            ("acknowledgement_idle", "nothing draining"),
            ("acknowledgement", "while draining"),
            ("acknowledgement_split", "while draining, roles split"),
        ):
            ack = registry.get(key)
            if ack:
                detail = {
                    "acknowledgement_idle": f"the Post path's own floor, poster CPU {ack['poster_cpu_ms_per_post']} "
                    "ms per Post",
                    "acknowledgement": f"the dispatcher posted {ack['drain_elements_per_s']} elements/s meanwhile",
                    "acknowledgement_split": "the draining poster at nice 19 posted "
                    f"{ack['drain_elements_per_s']} elements/s meanwhile",
                }[key]
                rows.append(
                    (
                        f"Post p99 at {_number(ack['offered_per_s'])}/s, open loop, {when}, {name}",
                        f"{ack['p99_ms']} ms (p50 {ack['p50_ms']} ms, {ack['errors']} errors; {detail})",
                    )
                )
    return rows


def _fleet_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    rows = []
    for n, run in (figures.get("runs") or {}).items():
        rows.append(
            (
                f"{figures['tenants']} organisations drained by {n} poster(s), one PostgreSQL",
                f"{_number(run['elements_per_s'])} elements/s (x{run['throughput_over_one']} of 1 poster), "
                f"poster CPU {run['poster_cpu_ms_per_element']} ms per element, "
                f"PostgreSQL CPU {run['postgres_cpu_ms_per_call']} ms per Xero call, "
                f"{run['duplicate_invoices']} duplicates, {run['calls_refused_for_rate']} refused for rate",
            )
        )
    return rows


def _month_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    if "transactions" not in figures:
        return []
    return [
        (
            f"A firm's month end to end ({_number(figures['transactions'])} transactions)",
            f"all settled in {figures['settled_seconds']:.1f} s, {figures['xero_calls']} Xero calls "
            f"({figures['transactions_per_call']:.1f} transactions a call)",
        )
    ]


def _crash_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    if "generated" not in figures:
        return []
    return [
        (
            f"Crash suite ({figures['generated']:,} transactions, {len(figures['kills'])} kills)",
            f"{figures['linked']} LINKED, {figures['failed']} FAILED, {len(figures['problems'])} problems, "
            f"settled in {figures['settle_seconds']:.0f} s",
        )
    ]


def _drift_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    if "poller_on" not in figures:
        return []
    ceiling = figures["ceiling_per_minute"]

    def shares(mode: str) -> str:
        return ", ".join(f"{n} ({n / ceiling:.1%})" for n in figures[mode]["elements_per_minute"])

    hook, poll = sorted(figures["webhook_seconds"]), sorted(figures["poll_seconds"])
    return [
        ("Posting throughput per scaled minute, poller on", f"{shares('poller_on')} of {ceiling} (Xero's ceiling)"),
        ("Posting throughput per scaled minute, poller off", f"{shares('poller_off')} of {ceiling}"),
        (
            "Hand edit in Xero to its drift record",
            f"by webhook {hook[len(hook) // 2]:.2f} s (median), by poll {poll[len(poll) // 2]:.2f} s "
            "(median; interval 10 s, share 0.1)",
        ),
    ]


def _lookups_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    rows = []
    for registry in ("sqlite", "postgres"):
        if registry not in figures:
            continue
        figure = figures[registry]
        name = "SQLite" if registry == "sqlite" else "PostgreSQL"
        rows.append(
            (
                f"A webhook event's object: its pending events / the link of an object no link holds, "
                f"100,000 rows over 1,000, {name}",
                f"x{figure['pending_events_of_ratio']} / x{figure['link_holding_foreign_ratio']} (1 is flat)",
            )
        )
        rows.append(
            (
                f"A page of 25 of a connection's links, 100,000 rows over 1,000, {name}",
                f"x{figure['list_links_page_ratio']} (1 is flat)",
            )
        )
    return rows


def _xero_call_headline(figures: Figures, text: str) -> list[tuple[str, str]]:
    return [
        (
            "One Xero call of 50 invoices with its answer, the poster thread's CPU",
            f"{figures['thread_cpu_ms_per_call']:.2f} ms",
        )
    ]


BENCHES = [
    Bench(
        "mapper_throughput",
        "Mapper throughput",
        "Transactions mapped per second by the `xerolink-mapper` console script on loopback, through the "
        "streaming RPC (several transactions per message) and unary calls, for a mix of every kind and for "
        "4-line client bills; the server in-thread and with stream worker processes.",
        args=("--profile", "0"),
        quick_args=("--quick", "--stream-processes", "0"),
    ),
    Bench(
        "poster_throughput",
        "Posting throughput and Post latency",
        "A backlog of client bills accepted by a `xerolink-poster` process, then posted to the emulator with "
        "Xero's minute scaled down: elements posted per scaled minute against the ceiling (60 calls a minute x "
        "batch size), Xero calls against one call per transaction, calls refused for rate; then Post "
        "acknowledgement latency under 100 concurrent callers, closed loop (each posts again when answered) "
        "and open loop at fixed offered rates, from callers in a process of their own (SQLite registry).",
        args=("--rates", "100,200,400"),
    ),
    Bench(
        "poster_memory",
        "Poster memory with a large backlog",
        "A `xerolink-poster` process with 100,000 accepted client bills queued while its dispatcher runs but "
        "cannot drain them (the tenant is blocked, as after a day-long Retry-After): resident set from "
        "/proc/<pid>/status, and the registry's files on disk.",
    ),
    Bench(
        "many_tenants",
        "Many organisations at once",
        "200 emulated organisations, each with 150 client bills accepted by a `xerolink-poster` whose "
        "dispatcher is off, drained by one poster with Xero's minute at 3 s and the app limit raised so it never "
        "binds: poster CPU per element posted (from /proc), Xero calls and elements per call, drain time; each "
        "organisation's time to its first element against a round-robin fair share, and its share of the "
        "elements posted while the drain went from 25 % to 75 %. Then SQL statements per Xero call, counted "
        "with a SQLAlchemy listener on an in-process Dispatcher draining a second backlog, and the thread CPU "
        "per element of the dispatcher's parts (claims, contacts, the transaction before each Xero call, the "
        "call, applying its answers, ...) draining a backlog of its own the same way; and the median time "
        "of a claim of 50 and of tenants_with_ready_work at 1,000 and at 100,000 ready outbox rows; Post "
        "acknowledgement at 100 Posts a second, open loop from callers in a process of their own, to a poster "
        "with a backlog and nothing draining (the floor), then while that poster drains a third backlog, then "
        "with the roles split (the Posts to a poster whose dispatcher is off, a second poster draining a fourth "
        "backlog under nice 19); and each "
        "organisation's share again in a drain of 100 bills each at 5 a call (about 10 calls each in the "
        "window, where 150 bills at 50 a call leave 1.5). SQLite and PostgreSQL (when a server can be started).",
    ),
    Bench(
        "poster_fleet",
        "Several posters on one PostgreSQL",
        "200 emulated organisations with 150 client bills each, accepted once into a PostgreSQL template "
        "database; for 1, 2 and 4 `xerolink-poster` processes, a copy of it (connections moved to fresh "
        "organisations) drained by that many posters at once, with Xero's minute at 1 s and the app limit raised: "
        "elements posted per second and the ratio to one poster, poster CPU per element (summed over the "
        "processes, from /proc), PostgreSQL's CPU per Xero call, Xero calls, calls refused for rate, how the "
        "organisations split between the posters (link audit actors) and each organisation's invoices counted "
        "by InvoiceNumber (no element posted twice). See docs/scaling.md.",
    ),
    Bench(
        "firm_month",
        "A firm's month end to end",
        "A generated month of a law firm (300 matters) posted through an in-process poster and mapper to the "
        "emulator with Xero's minute at 0.5 s: acceptance, time until every link settled, Xero calls.",
    ),
    Bench(
        "drift_watch",
        "Drift detection: the poller's cost and the time to a drift record",
        "In-process poster, mapper and emulator (SQLite): a backlog of client bills drained with Xero's minute at "
        "20 s, with the If-Modified-Since poller off and on (share 0.1, polling as often as allowed): elements "
        "posted per scaled minute against the ceiling, and the poller's reads while measured and by the "
        "backlog's end; then the time from a hand edit in the emulator (an invoice voided) to its drift record in "
        "the registry, through a signed webhook and through the poller (Xero's real minute, interval 10 s; each "
        "edit 3 s after the previous record, so a poll's time is mostly what is left of its interval).",
    ),
    Bench(
        "registry_reads",
        "Reads that must not grow with the registry",
        "Reads a poster makes over and over, timed alone against the size of the registry: for every Xero "
        "webhook event, one object's pending events and the link holding a Xero object (one no link holds, as for "
        "the events of objects made in Xero by someone else, and one a link holds); and a page of 25 of a "
        "connection's links (ListLinks); at 1,000 and 100,000 pending events and links inserted directly. SQLite "
        "and PostgreSQL (when a server can be started).",
    ),
    Bench(
        "xero_call",
        "One Xero call's CPU in the poster",
        "XeroClient.call of a PUT of 50 sales invoices against a loopback server answering what the emulator "
        "answered to the same PUT, timed by the calling thread's CPU alone.",
    ),
    Bench(
        "emulator_throughput",
        "Emulator speed",
        "How fast the local Xero emulator answers (sizes the tests and benches that run against it).",
    ),
    Bench(
        "crash_suite",
        "Crash suite at full size",
        "The poster killed with SIGKILL ten times while a 10,000-transaction month is posted under 5xx, "
        "latency, dropped answers and 429 storms; see docs/evidence.md.",
        args=("--transactions", "10000", "--kills", "10", "--faults", "all", "--storms", "6"),
        optional=True,
    ),
]
HEADLINES: dict[str, Callable[[Figures, str], list[tuple[str, str]]]] = {
    "mapper_throughput": _mapper_headline,
    "poster_throughput": _poster_headline,
    "poster_memory": _memory_headline,
    "many_tenants": _tenants_headline,
    "poster_fleet": _fleet_headline,
    "firm_month": _month_headline,
    "drift_watch": _drift_headline,
    "registry_reads": _lookups_headline,
    "xero_call": _xero_call_headline,
    "crash_suite": _crash_headline,
}


@dataclass
class Run:
    bench: Bench
    command: list[str]
    returncode: int
    seconds: float
    output: str
    figures: Figures
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def machine() -> dict[str, str]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = found[1].strip() if found else platform.processor() or "unknown"
    memory = "unknown"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        memory = f"{int(found[1]) / 1024 / 1024:.1f} GiB" if found else memory
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "CPU": cpu,
        "Cores": str(os.cpu_count()),
        "Memory": memory,
        "Python": sys.version.split()[0],
        "System": platform.platform(),
        "Commit": commit or "unknown",
        "Load average at start (1, 5, 15 min)": "{:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg()),
    }


def last_json(output: str) -> Figures:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("{"):
        return {}
    try:
        parsed = json.loads(lines[-1])
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def run_bench(bench: Bench, quick: bool) -> Run:
    command = bench.command(quick)
    print(f"running {shlex.join(command)}", flush=True)
    load_before = os.getloadavg()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, *command[1:]],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    output = done.stdout + (f"\n{done.stderr.strip()[-2000:]}" if done.returncode else "")
    return Run(bench, command, done.returncode, seconds, output, last_json(done.stdout), load_before, os.getloadavg())


def _printed(output: str) -> str:
    """The script's own lines, without the JSON line (it is in the table)."""
    lines = output.rstrip().splitlines()
    if lines and lines[-1].lstrip().startswith("{"):
        lines = lines[:-1]
    return "\n".join(lines).strip()


def _flat(figures: Figures, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in figures.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flat(value, f"{name}.")
        elif isinstance(value, float):
            rows.append((name, f"{value:,.2f}"))
        elif isinstance(value, list):
            rows.append((name, "; ".join(str(v) for v in value) or "none"))
        else:
            rows.append((name, _number(value)))
    return rows


def render(runs: list[Run], host: dict[str, str], quick: bool, invocation: str, old: OldPage | None = None) -> str:
    """The page: what the report generates for the benches in `runs`, and from `old` (the page as
    it was, bench/report_page.py) everything else."""
    old = old or OldPage()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    ran = {run.bench.name: run for run in runs}
    blocks = [
        "# Benchmarks",
        f"Last generated by `{invocation}` on {stamp}. Every figure comes from the command shown beside it, run "
        "from the repository root in the project's virtual environment. Running it again rewrites the sections "
        "of the benches it runs; it keeps the others as they were, and whatever was written by hand: put notes "
        "after a section's printed output (comparisons side by side, what was tried). The machine is shared: "
        "the load average before and after each run says how busy it was.",
    ]
    if quick:
        blocks.append("**Quick mode**: small runs that check the benches work; the figures mean little.")
    blocks += old.opening
    blocks += ["## Machine", "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in host.items())])]
    blocks.append(old.machine_notes)
    benches, others = _arranged(old)
    blocks += ["## Headline figures", "\n".join(_headline_rows(ran, old)), old.headline_notes]
    blocks += [s.whole() for a, s in others if a is None]
    for bench in BENCHES:
        kept = benches.get(bench.title)
        if bench.name in ran:
            blocks += [*_section(ran[bench.name], stamp), kept.notes if kept else ""]
        elif kept is not None:
            blocks += [kept.whole()]
        blocks += [s.whole() for a, s in others if a == bench.title]
    # Each block as written (a note's fenced code keeps its blank lines), one blank line between.
    return "\n\n".join(b.strip("\n") for b in blocks if b.strip()) + "\n"


def _arranged(old: OldPage) -> tuple[dict[str, Section], list[tuple[str | None, Section]]]:
    """The old page's section of each bench (the first with its title), and every other section
    with the title of the bench section it followed (None: it came before all of them)."""
    titles = {b.title for b in BENCHES}
    benches: dict[str, Section] = {}
    others: list[tuple[str | None, Section]] = []
    after: str | None = None
    for section in old.sections:
        if section.title in titles and section.title not in benches:
            after = section.title
            benches[after] = section
        else:
            others.append((after, section))
    return benches, others


def _headline_rows(ran: dict[str, Run], old: OldPage) -> list[str]:
    """Fresh rows of the benches run, the old ones of the others, then the rows naming no bench."""
    rows = ["| Figure | Value | Command |", "|---|---|---|"]
    for bench in BENCHES:
        if bench.name in ran:
            run = ran[bench.name]
            for label, value in HEADLINES.get(bench.name, _no_headline)(run.figures, run.output):
                rows.append(f"| {label} | {value} | `{shlex.join(run.command)}` |")
        else:
            rows += old.rows_of(bench.name)
    names = {b.name for b in BENCHES}
    return rows + [row for name, row in old.headline_rows if name not in names]


def _section(run: Run, stamp: str) -> list[str]:
    blocks = [
        f"## {run.bench.title}",
        run.bench.measures,
        f"Command: `{shlex.join(run.command)}` — run {stamp}, {run.seconds:.0f} s, exit code {run.returncode}; "
        f"load average before {run.load_before[0]:.2f}, after {run.load_after[0]:.2f}.",
    ]
    if run.figures:
        table = ["| Figure | Value |", "|---|---|", *(f"| {name} | {value} |" for name, value in _flat(run.figures))]
        blocks.append("\n".join(table))
    printed = _printed(run.output)
    if printed:
        # A fence longer than any the output holds, so the output cannot close it.
        runs = re.findall(r"^ {0,3}(`{3,})", printed, flags=re.MULTILINE)
        fence = "`" * max([3, *(len(r) + 1 for r in runs)])
        blocks += ["What it printed:", f"{fence}\n{printed}\n{fence}"]
    return blocks


def old_page(path: Path) -> OldPage:
    """The page at `path` as bench/report_page.py reads it (empty when there is none)."""
    return OldPage.parse(path.read_text()) if path.exists() else OldPage()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small runs: checks the page can be made")
    parser.add_argument("--only", help="comma-separated bench names (default: all but the optional ones)")
    parser.add_argument("--with-crash", action="store_true", help="also run the crash suite at full size")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args, _ = parser.parse_known_args(argv)  # `./dev bench` passes its arguments along
    known = {b.name: b for b in BENCHES}
    if args.only:
        unknown = set(args.only.split(",")) - set(known)
        if unknown:
            parser.error(f"unknown benches {sorted(unknown)}; choose from {sorted(known)}")
        selected = [known[name] for name in dict.fromkeys(args.only.split(","))]
    else:
        selected = [b for b in BENCHES if not b.optional or (b.name == "crash_suite" and args.with_crash)]
    host = machine()
    runs = []
    for bench in selected:
        run = run_bench(bench, args.quick)
        print(f"  {run.seconds:.0f} s, exit code {run.returncode}, {len(run.figures)} figures", flush=True)
        runs.append(run)
    invocation = shlex.join(["python", "bench/report.py", *(argv if argv is not None else sys.argv[1:])])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(runs, host, args.quick, invocation, old_page(args.output)))
    print(f"wrote {args.output}")
    return 1 if any(run.returncode for run in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
