"""Where a running poster's Python time goes, by layer: py-spy samples the thread that holds the
interpreter lock (`--gil`), so a thread waiting on a socket, a lock or SQLite counts nothing and
every sample is Python being run for someone. Each sample is put in the layer of its innermost
frame: SQLAlchemy, the database driver, JSON, the HTTP client, xerolink's own code, and the rest
(threading, the standard library, C code called from a frame no layer names). Used by
bench/many_tenants.py --sample-layers on the draining poster: it tells whether a goal is
reachable by taking out one layer, since removing a layer removes at most its share.

py-spy (a sampling profiler that reads another process's stacks without stopping it) is a dev
dependency; where it cannot attach (no ptrace permission) the figures are left out."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Layer of a frame, by the path of its file; the first that matches wins.
LAYERS = (
    ("sqlalchemy", ("/sqlalchemy/", "/sqlmodel/")),
    ("database_driver", ("/psycopg/", "/psycopg_pool/", "/sqlite3/")),
    ("json", ("/json/", "xerolink_poster/adapters/xero_json.py")),
    ("http_client", ("/httpx/", "/httpcore/", "/h11/", "/ssl.py", "/socket.py")),
    ("telemetry", ("/opentelemetry/",)),
    ("xerolink", ("xerolink_", "xerolink/")),
)
_FILE = re.compile(r"\(([^()]*?)(?::\d+)?\)$")


def layer_of(frame: str) -> str:
    """The layer of one frame as py-spy's raw format writes it: "function (path:line)"."""
    found = _FILE.search(frame)
    # py-spy names a file by its path below the import root ("sqlalchemy/orm/session.py").
    path = "/" + found.group(1) if found else ""
    for layer, marks in LAYERS:
        if any(mark in path for mark in marks):
            return layer
    return "other"


def shares(raw: str) -> dict[str, float]:
    """Each layer's share of the samples in py-spy's raw output (one "stack count" a line, frames
    joined by ";", the innermost last), with "samples" the total."""
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        counts[layer_of(stack.split(";")[-1])] += int(count)
    total = sum(counts.values())
    figures = {layer: round(n / total, 3) for layer, n in counts.most_common()} if total else {}
    return {"samples": float(total), **figures}


class Sampling:
    """The samples of one process, read once it has been sampled (`figures`)."""

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}
        self.problem = ""


@contextmanager
def sampled(pid: int, seconds: float, rate: int = 250) -> Iterator[Sampling]:
    """Samples `pid` for up to `seconds` while the block runs; the shares are in the yielded
    object's `figures` after the block (empty, with `problem` saying why, when py-spy could not)."""
    result = Sampling()
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        result.problem = "py-spy is not installed"
        yield result
        return
    with tempfile.TemporaryDirectory(prefix="xerolink-layers-") as folder:
        out = Path(folder) / "samples.raw"
        command = [py_spy, "record", "--pid", str(pid), "--gil", "--nonblocking", "--format", "raw"]
        command += ["--rate", str(rate), "--duration", str(max(1, int(seconds))), "--output", str(out)]
        sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            yield result
        finally:
            # Interrupted as the block ends: py-spy writes what it sampled so far.
            sampler.send_signal(signal.SIGINT)
            try:
                _, errors = sampler.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                _, errors = sampler.communicate()
            if out.exists():
                result.figures = shares(out.read_text())
            if not result.figures:
                result.problem = (errors or "no samples").strip().splitlines()[-1]


def line(figures: dict[str, float]) -> str:
    """The shares as one printed line."""
    parts = [f"{layer} {share:.0%}" for layer, share in figures.items() if layer != "samples"]
    return f"{', '.join(parts)} of {int(figures.get('samples', 0))} samples"
