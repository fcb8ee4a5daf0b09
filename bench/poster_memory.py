"""Memory of a `xerolink-poster` process holding a large backlog: 100,000 accepted client bills
queued in its outbox while its dispatcher runs but cannot drain them, because the Xero tenant is
blocked (as after a 429 whose Retry-After runs to the next day). Measured from /proc: the
process's resident set (VmRSS) and its peak (VmHWM), and the registry's files on disk.

    python bench/poster_memory.py                       # 100,000 queued, SQLite registry
    python bench/poster_memory.py --transactions 20000  # another size
    python bench/poster_memory.py --quick --json        # 5,000 (smoke); one JSON object last

Figures: RSS idle after start; RSS and peak while accepting; RSS with the backlog queued; RSS of
a fresh poster started on the same backlog (the dispatcher facing it from its first second);
registry size on disk (database file plus write-ahead log).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the process helpers live with the tests
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2  # noqa: E402
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc  # noqa: E402
from xerolink_mapper import samples  # noqa: E402
from xerolink_poster.adapters.database import now_us, open_database  # noqa: E402
from xerolink_poster.adapters.migrations import migrate  # noqa: E402
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction  # noqa: E402

from tests.fixtures.processes import child_env, console_script, free_port, wait_for_port  # noqa: E402

CONNECTION = "memory-bench"
TENANT = "00000000-0000-4000-8000-00000000beef"
REQUEST_SIZE = 500
MB = 1024 * 1024


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


def files_size(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def block_tenant(url: str) -> None:
    """The tenant's lease row, expired, with calls blocked for ten days: whichever poster takes
    the lease keeps the block, so its dispatcher holds the tenant and makes no call."""
    db = open_database(url)
    migrate(db)

    def work(uow: UnitOfWork) -> None:
        uow.leases.acquire_lease(TENANT, "memory-bench", now_us(), 1)
        uow.leases.block_tenant(TENANT, now_us() + 10 * 86_400 * 1_000_000)

    run_in_transaction(db, work)
    db.dispose()


class Poster:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(console_script("xerolink-poster"), env=env, stdout=out, stderr=out)
        wait_for_port(port, timeout=60, proc=self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def run(count: int, workdir: Path, pause: float = 5.0) -> dict[str, Any]:
    db_path = workdir / "registry.db"
    url = f"sqlite:///{db_path}"
    block_tenant(url)
    mapper_port, poster_port = free_port(), free_port()
    env = child_env(
        XEROLINK_MAPPER_ADDRESS=f"127.0.0.1:{mapper_port}",
        XEROLINK_POSTER_ADDRESS=f"127.0.0.1:{poster_port}",
        XEROLINK_DATABASE_URL=url,
        XEROLINK_MAPPER_TARGET=f"127.0.0.1:{mapper_port}",
        XEROLINK_LOG_LEVEL="WARNING",
    )
    figures: dict[str, Any] = {"transactions": count, "registry": "SQLite"}
    with open(workdir / "mapper.log", "wb") as log:
        mapper = subprocess.Popen(console_script("xerolink-mapper"), env=env, stdout=log, stderr=log)
    try:
        wait_for_port(mapper_port, timeout=60, proc=mapper)
        poster = Poster(env, poster_port, workdir / "poster.log")
        with grpc.insecure_channel(f"127.0.0.1:{poster_port}") as channel:
            stub = poster_grpc.PosterServiceStub(channel)
            stub.CreateConnection(
                poster_pb2.CreateConnectionRequest(
                    connection=poster_pb2.Connection(
                        connection_id=CONNECTION,
                        xero_base_url="http://127.0.0.1:9",  # never called: the tenant is blocked
                        xero_tenant_id=TENANT,
                        access_token="memory-bench",
                        refresh_token="memory-bench",
                        mapping_context=samples.demo_context(),
                    )
                ),
                timeout=30,
            )
            time.sleep(pause / 2)
            figures["rss_idle_mb"] = proc_status(poster.proc.pid)["VmRSS"] / MB
            started = time.monotonic()
            for start in range(0, count, REQUEST_SIZE):
                bills = [samples.client_bill(1_000_000 + i) for i in range(start, min(start + REQUEST_SIZE, count))]
                stub.BatchPostTransactions(
                    poster_pb2.BatchPostTransactionsRequest(connection_id=CONNECTION, transactions=bills), timeout=300
                )
            figures["accept_seconds"] = time.monotonic() - started
            figures["accepted_per_second"] = count / figures["accept_seconds"]
            time.sleep(pause)  # the dispatcher has seen the backlog and holds the blocked tenant
            status = proc_status(poster.proc.pid)
            figures["rss_queued_mb"] = status["VmRSS"] / MB
            figures["rss_peak_accepting_mb"] = status["VmHWM"] / MB
            pending = stub.ListLinks(
                poster_pb2.ListLinksRequest(connection_id=CONNECTION, page_size=1, state=poster_pb2.LINK_STATE_LINKED),
                timeout=30,
            )
            figures["linked_while_blocked"] = len(pending.links)
        poster.stop()
        fresh = Poster(env, poster_port, workdir / "poster.log")
        time.sleep(pause * 2)
        status = proc_status(fresh.proc.pid)
        figures["rss_restarted_on_backlog_mb"] = status["VmRSS"] / MB
        figures["rss_peak_restarted_mb"] = status["VmHWM"] / MB
        fresh.stop()
        figures["registry_bytes_on_disk_mb"] = files_size(db_path) / MB
    finally:
        mapper.terminate()
        mapper.wait(30)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transactions", type=int, default=100_000, help="client bills queued")
    parser.add_argument("--quick", action="store_true", help="5,000 queued: only checks the bench works")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args, _ = parser.parse_known_args(argv)
    count = 5_000 if args.quick else args.transactions
    with tempfile.TemporaryDirectory(prefix="poster-memory-") as workdir:
        figures = run(count, Path(workdir), 1.5 if args.quick else 5.0)
    print(f"poster memory with {count:,} transactions queued and the tenant blocked (SQLite registry)")
    print(f"  RSS idle after start:           {figures['rss_idle_mb']:8.1f} MB")
    print(
        f"  accepting:                      {figures['accept_seconds']:8.1f} s "
        f"({figures['accepted_per_second']:.0f} transactions/s), peak RSS {figures['rss_peak_accepting_mb']:.1f} MB"
    )
    print(f"  RSS with the backlog queued:    {figures['rss_queued_mb']:8.1f} MB")
    print(
        f"  RSS of a fresh poster on it:    {figures['rss_restarted_on_backlog_mb']:8.1f} MB "
        f"(peak {figures['rss_peak_restarted_mb']:.1f} MB)"
    )
    print(f"  registry on disk:               {figures['registry_bytes_on_disk_mb']:8.1f} MB")
    print(f"  links LINKED while blocked:     {figures['linked_while_blocked']:8d}")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
