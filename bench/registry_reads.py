"""Reads a poster makes over and over, against the size of the registry: what it asks for every
Xero webhook event, and a page of a connection's links, each timed alone at each of --sizes.

Each size holds that many pending webhook events (spread over --tenants organisations, each of
another object) and that many links, each holding one Xero object (spread over as many
connections), inserted directly. At each size the median time of:

- `pending_events_of`: the pending events of one object (two of them), which a read of the object
  closes together;
- `link_holding` of an object no link holds: the question every event of an object someone made
  in Xero asks, most events of a firm's organisation;
- `link_holding` of an object a link holds (its JSON checked after the look-up);
- `list_links`: a page of 25 of one connection's links, from a quarter of its id range (what
  ListLinks reads for each page);

each in a read unit of work, and the ratio largest/smallest size (1 is flat).

    python bench/registry_reads.py                               # SQLite, and PostgreSQL if it starts
    python bench/registry_reads.py --registry sqlite --json

The reads are those of the poster at hand: run with PYTHONPATH set to another revision's source
roots (bench/compare.py lists them) to measure that revision's reads on the same rows (from
revision 0007 on, the registry's trigger indexes the links' objects as they are inserted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the PostgreSQL helpers live with the tests
    sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402
from xerolink_poster.adapters.database import Database, now_us, open_database  # noqa: E402
from xerolink_poster.adapters.migrations import migrate  # noqa: E402
from xerolink_poster.domain.link_filter import LinkFilter  # noqa: E402
from xerolink_poster.service_layer.unit_of_work import UnitOfWork  # noqa: E402

from bench.many_tenants import load_average, postgres_server  # noqa: E402
from tests.fixtures.postgres import create_database  # noqa: E402
from tests.fixtures.registry_rows import link_values  # noqa: E402

CATEGORY = "INVOICE"
PAGE = 25
BATCH = 5000


def xero_id(n: int) -> str:
    """A GUID-shaped Xero id of its own for each n."""
    return str(uuid.UUID(int=n + 1))


def insert_rows(db: Database, first: int, count: int, tenants: int) -> None:
    """`count` pending events and `count` links, numbered from `first`."""
    tables = SQLModel.metadata.tables
    now = now_us()
    for start in range(first, first + count, BATCH):
        numbers = range(start, min(start + BATCH, first + count))
        events = [
            {
                "event_key": f"{n:064d}",
                "tenant_id": f"tenant-{n % tenants}",
                "category": CATEGORY,
                "event_type": "UPDATE",
                "resource_id": xero_id(n),
                "event_date": "2026-07-01T10:00:00.000",
                "received_us": now,
                "state": "pending",
                "attempts": 0,
                "last_error": "",
                "done_us": 0,
            }
            for n in numbers
        ]
        links = [
            link_values(
                n + 1,
                f"firm-{n % tenants}",
                json.dumps([{"type": 1, "xero_id": xero_id(n), "local_ref": "invoice", "number": f"INV-{n}"}]),
                create_us=now,
                update_us=now,
            )
            for n in numbers
        ]
        with db.write.begin() as conn:
            conn.execute(insert(tables["webhook_event"]), events)
            conn.execute(insert(tables["link"]), links)
    if not db.is_sqlite:
        with db.write.begin() as conn:
            conn.execute(text("ANALYZE"))


def median_ms(run: Callable[[int], object], repeats: int) -> float:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(url: str, sizes: list[int], tenants: int, repeats: int) -> dict[str, Any]:
    db = open_database(url)
    migrate(db)
    by_size: dict[str, dict[str, float]] = {}
    present = 0
    # One object with two events of its own, beside every other organisation's.
    target = xero_id(10**9)
    with db.write.begin() as conn:
        conn.execute(
            insert(SQLModel.metadata.tables["webhook_event"]),
            [
                {
                    "event_key": f"target-{i}",
                    "tenant_id": "tenant-0",
                    "category": CATEGORY,
                    "event_type": "UPDATE",
                    "resource_id": target,
                    "event_date": f"2026-07-01T10:0{i}:00.000",
                    "received_us": 1,
                    "state": "pending",
                    "attempts": 0,
                    "last_error": "",
                    "done_us": 0,
                }
                for i in range(2)
            ],
        )
    try:
        for size in sizes:
            insert_rows(db, present, size - present, tenants)
            present = size
            held = size // 2

            def events(_i: int) -> None:
                with UnitOfWork(db, write=False) as uow:
                    found = uow.drift.pending_events_of("tenant-0", CATEGORY, target, now_us())
                if len(found) != 2:
                    raise SystemExit(f"found {len(found)} of the object's 2 events")

            def foreign(i: int) -> None:
                with UnitOfWork(db, write=False) as uow:
                    if uow.links.link_holding(f"firm-{i % tenants}", xero_id(10**8 + i)) is not None:
                        raise SystemExit("a link holds an object no link was given")

            def ours(_i: int, held: int = held) -> None:
                with UnitOfWork(db, write=False) as uow:
                    link = uow.links.link_holding(f"firm-{held % tenants}", xero_id(held))
                if link is None or link.id != held + 1:
                    raise SystemExit(f"the link holding object {held} was not found")

            def page(_i: int, size: int = size) -> None:
                # Link n + 1 is of connection firm-(n % tenants): firm-0's, from a quarter of the ids on.
                with UnitOfWork(db, write=False) as uow:
                    links = uow.links.list_links("firm-0", LinkFilter(), size // 4, PAGE)
                if len(links) != PAGE or any(link.connection_id != "firm-0" for link in links):
                    raise SystemExit(f"a page of {len(links)} links, not {PAGE} of firm-0's")

            before = load_average()
            by_size[str(size)] = {
                "pending_events_of_ms": round(median_ms(events, repeats), 3),
                "link_holding_foreign_ms": round(median_ms(foreign, repeats), 3),
                "link_holding_ours_ms": round(median_ms(ours, repeats), 3),
                "list_links_page_ms": round(median_ms(page, repeats), 3),
                "load_average_before": before,
                "load_average_after": load_average(),
            }
    finally:
        db.dispose()
    small, large = by_size[str(sizes[0])], by_size[str(sizes[-1])]
    ratios = {
        f"{name[:-3]}_ratio": round(large[name] / small[name], 2) if small[name] else None
        for name in ("pending_events_of_ms", "link_holding_foreign_ms", "link_holding_ours_ms", "list_links_page_ms")
    }
    return {**{f"rows_{size}": figures for size, figures in by_size.items()}, **ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--sizes", type=lambda s: sorted(int(x) for x in s.split(",")), default=[1000, 100_000], help="rows of each"
    )
    parser.add_argument("--tenants", type=int, default=20, help="organisations (and connections) the rows spread over")
    parser.add_argument("--repeats", type=int, default=200, help="timed reads of each kind at each size")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line last")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xerolink-registry-reads-") as tmp:
        if args.registry in ("sqlite", "both"):
            url = f"sqlite:///{os.path.join(tmp, 'registry.db')}"
            figures["sqlite"] = measure(url, args.sizes, args.tenants, args.repeats)
        if args.registry in ("postgres", "both"):
            with postgres_server(True) as pg:
                if isinstance(pg, str):
                    if args.registry == "postgres":
                        raise SystemExit(f"PostgreSQL: {pg}")
                    print(f"PostgreSQL left out: {pg}", file=sys.stderr)
                else:
                    figures["postgres"] = measure(create_database(pg), args.sizes, args.tenants, args.repeats)
    for registry, figure in figures.items():
        for size in args.sizes:
            row = figure[f"rows_{size}"]
            print(
                f"[{registry}] {size:,} pending events and {size:,} links: one object's events "
                f"{row['pending_events_of_ms']:.3f} ms, the link of an object no link holds "
                f"{row['link_holding_foreign_ms']:.3f} ms, of one a link holds {row['link_holding_ours_ms']:.3f} ms, "
                f"a page of {PAGE} links {row['list_links_page_ms']:.3f} ms "
                f"(medians of {args.repeats}; load average {row['load_average_before']:.2f} before, "
                f"{row['load_average_after']:.2f} after)"
            )
        print(
            f"[{registry}] {args.sizes[-1]:,} rows / {args.sizes[0]:,}: events x{figure['pending_events_of_ratio']}, "
            f"no link x{figure['link_holding_foreign_ratio']}, a link x{figure['link_holding_ours_ratio']}, "
            f"a page of links x{figure['list_links_page_ratio']} (1 is flat)"
        )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
