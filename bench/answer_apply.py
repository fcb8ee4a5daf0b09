"""Applying one Xero call's answers, alone: the CPU per element of `outcomes.apply_batch` and its
transaction, with no other thread, Xero or dispatcher around it.

Applying answers is the largest part of the dispatcher's CPU in the many-tenant bench's drain
(part 2b), and a drain on this shared machine varies too much from run to run to show a change
of a few per cent in one part. Here the same work is done in a loop: --calls calls of
--elements sales invoices each, every entry claimed and marked uncertain as before its call,
each call's answers (created, with Xero's element trimmed to its drift document as the
dispatcher does before the transaction) applied in a transaction of its own.

    python bench/answer_apply.py                          # SQLite, and PostgreSQL if it starts
    python bench/answer_apply.py --registry sqlite --calls 400 --json
    python bench/compare.py --base main --benches answer_apply --rounds 3

Prints, for each registry: CPU per element (process time, which includes the database's own
work on SQLite and not on PostgreSQL), wall time per call, and SQL statements per call. On
SQLite also the floor: the same statements, parameters and commits replayed through the sqlite3
driver alone on a copy of the registry in the same state.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the PostgreSQL helpers live with the tests
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2  # noqa: E402
from xerolink.xero.v1 import objects_pb2 as xero_pb2  # noqa: E402
from xerolink_poster.adapters.database import Database, now_us, open_database  # noqa: E402
from xerolink_poster.adapters.migrations import migrate  # noqa: E402
from xerolink_poster.adapters.tables import OutboxRow  # noqa: E402
from xerolink_poster.domain.kinds import ObjectType  # noqa: E402
from xerolink_poster.domain.records import XeroObjectRef  # noqa: E402
from xerolink_poster.domain.states import Event, OutboxState  # noqa: E402
from xerolink_poster.service_layer import drift_snapshots  # noqa: E402
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch  # noqa: E402
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction  # noqa: E402

from bench.many_tenants import engines_of, load_average, postgres_server  # noqa: E402
from tests.fixtures.postgres import create_database  # noqa: E402
from tests.fixtures.registry_rows import link_with_posting, unreachable_connection  # noqa: E402

HOLDER = "bench-poster"
ACTOR = f"dispatcher:{HOLDER}"
LOCAL_REF = "invoice"


def xero_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def invoice_element(n: int) -> dict[str, Any]:
    """Xero's element for a sales invoice it created, as its answer carries it."""
    return {
        "InvoiceID": xero_id(n),
        "InvoiceNumber": f"INV-{n}",
        "Reference": f"Matter {n}",
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "Contact": {"ContactID": xero_id(900_000_000 + n), "Name": f"Client {n}"},
        "Date": "/Date(1772323200000+0000)/",
        "DueDate": "/Date(1774915200000+0000)/",
        "LineAmountTypes": "Exclusive",
        "CurrencyCode": "AUD",
        "LineItems": [
            {
                "Description": "Professional fees",
                "AccountCode": "200",
                "LineAmount": 1000,
                "TaxType": "OUTPUT",
                "TaxAmount": 100,
                "Quantity": 1,
                "UnitAmount": 1000,
            },
            {
                "Description": "Disbursement",
                "AccountCode": "260",
                "LineAmount": 55,
                "TaxType": "BASEXCLUDED",
                "TaxAmount": 0,
                "Quantity": 1,
                "UnitAmount": 55,
            },
        ],
        "SubTotal": 1055,
        "TotalTax": 100,
        "Total": 1155,
    }


def fill(db: Database, calls: int, elements: int) -> list[list[int]]:
    """`calls` batches of `elements` ready entries of one organisation, each a pending link with its
    posting, claimed by this bench's poster and marked uncertain, as just before a create call."""
    operations = mapper_pb2.MapTransactionResponse(operations=[xero_pb2.Operation(local_ref=LOCAL_REF)])
    encoded = operations.SerializeToString()

    def batch(uow: UnitOfWork, first: int) -> list[int]:
        if uow.connections.get_connection("c1") is None:
            uow.connections.add_connection(unreachable_connection("c1", "t1"))
        ids = []
        now = now_us()
        for record_id in range(first, first + elements):
            link = link_with_posting(uow, record_id)
            uow.links.change_state(link, Event.ACCEPTED, "caller:bench", now)
            row = OutboxRow(
                tenant_id="t1",
                connection_id="c1",
                link_id=link.id or 0,
                posting_id=link.posting_id,
                operations=encoded,
                state=OutboxState.READY,
                available_us=0,
                claimed_by=HOLDER,
                lease_until_us=now + 3_600_000_000,
                uncertain=True,
                lookup_hint="bench",
                create_us=now,
            )
            ids.append(uow.outbox.add_outbox(True, row).id or 0)
        return ids

    return [run_in_transaction(db, functools.partial(batch, first=1 + c * elements)) for c in range(calls)]


def answers(batch: list[int], first: int) -> list[ElementResult]:
    """Each entry's answer as Results.write hands it to apply_batch: created, trimmed beforehand."""
    results = []
    for n, outbox_id in enumerate(batch, start=first):
        created = XeroObjectRef(int(ObjectType.INVOICE), xero_id(n), LOCAL_REF)
        documents = drift_snapshots.documents_of([created], invoice_element(n))
        results.append(ElementResult(outbox_id, created=created, documents=documents))
    return results


def apply(uow: UnitOfWork, results: list[ElementResult]) -> None:
    apply_batch(uow, results, HOLDER, ACTOR, now_us())


def done_entries(uow: UnitOfWork, ids: list[int]) -> int:
    return sum(1 for row in uow.outbox.outbox_by_ids(ids).values() if row.state == OutboxState.DONE)


@contextmanager
def counting_statements(db: Database) -> Iterator[list[int]]:
    counted = [0]

    def count(*_args: Any) -> None:
        counted[0] += 1

    engines = engines_of(db)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield counted
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


# What the driver was asked to run, call by call: (SQL, parameters, executemany), a commit as None.
Recorded = list[list[tuple[str, Any, bool] | None]]


@contextmanager
def recording(db: Database) -> Iterator[Recorded]:
    """Every statement and commit on the write engine, as the driver receives them."""
    calls: Recorded = []

    def statement(_conn: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, many: bool) -> None:
        if sql.startswith("BEGIN"):
            calls.append([])
        calls[-1].append((sql, parameters, many))

    def commit(_conn: Any) -> None:
        calls[-1].append(None)

    event.listen(db.write, "before_cursor_execute", statement)
    event.listen(db.write, "commit", commit)
    try:
        yield calls
    finally:
        event.remove(db.write, "before_cursor_execute", statement)
        event.remove(db.write, "commit", commit)


def driver_floor(path: str, calls: Recorded) -> float:
    """CPU seconds the SQLite driver takes for exactly these statements, parameters and commits,
    on a registry in the same state, with the poster's connection settings and nothing of
    SQLAlchemy or the poster around them: what the same writes cost at the least."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            raw.execute(f"PRAGMA {pragma}")
        cursor = raw.cursor()
        cpu = time.process_time()
        for call in calls:
            for step in call:
                if step is None:
                    raw.execute("COMMIT")
                elif step[2]:
                    cursor.executemany(step[0], step[1])
                else:
                    cursor.execute(step[0], step[1]).fetchall()
        return time.process_time() - cpu
    finally:
        raw.close()


def driver_floor_of(copies: tuple[str, str], prepared: list[list[ElementResult]], entries: int) -> float:
    """The answers applied on the first copy, every statement recorded, then replayed through
    the driver alone on the second: the CPU seconds of the replay."""
    recorded_path, floor_path = copies
    recorded_db = open_database(f"sqlite:///{recorded_path}")
    try:
        with recording(recorded_db) as recorded:
            for results in prepared:
                run_in_transaction(recorded_db, functools.partial(apply, results=results))
    finally:
        recorded_db.dispose()
    floor = driver_floor(floor_path, recorded)
    with sqlite3.connect(floor_path) as raw:
        (done,) = raw.execute("SELECT count(*) FROM outbox WHERE state = ?", (OutboxState.DONE,)).fetchone()
    if done != entries:
        raise SystemExit(f"the driver's replay applied {done} of {entries} entries")
    return floor


def copy_of(path: str, name: str) -> str:
    """A copy of the SQLite registry at `path` (checkpointed first, so the file holds it all)."""
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = os.path.join(os.path.dirname(path), name)
    shutil.copyfile(path, copy)
    return copy


def measure(url: str, calls: int, elements: int) -> dict[str, Any]:
    db = open_database(url)
    try:
        migrate(db)
        batches = fill(db, calls, elements)
        prepared = [answers(batch, 1 + c * elements) for c, batch in enumerate(batches)]
        copies = None
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            copies = copy_of(path, "recorded.db"), copy_of(path, "floor.db")
        load_before = load_average()
        with counting_statements(db) as statements:
            cpu, wall = time.process_time(), time.perf_counter()
            for results in prepared:
                run_in_transaction(db, functools.partial(apply, results=results))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        linked = run_in_transaction(db, lambda uow: done_entries(uow, [i for b in batches for i in b]))
        if linked != calls * elements:  # a bench that measured nothing must not print a figure
            raise SystemExit(f"{linked} of {calls * elements} entries applied")
        # After the measured loop: the recorded statements, kept alive during it, would have made
        # each of its garbage collections longer.
        floor = driver_floor_of(copies, prepared, calls * elements) if copies else None
        return {
            "cpu_ms_per_element": round(cpu * 1000 / (calls * elements), 4),
            "wall_ms_per_call": round(wall * 1000 / calls, 3),
            "statements_per_call": round(statements[0] / calls, 2),
            **(
                {
                    "driver_floor_cpu_ms_per_element": round(floor * 1000 / (calls * elements), 4),
                    "cpu_over_driver_floor": round(cpu / floor, 2),
                }
                if floor
                else {}
            ),
            "load_average": [load_before, load_average()],
        }
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--calls", type=int, default=200, help="calls whose answers are applied")
    parser.add_argument("--elements", type=int, default=50, help="elements a call (Xero takes at most 50)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON line last")
    args = parser.parse_args(argv)
    if args.calls < 1 or not 1 <= args.elements <= 50:
        parser.error("--calls must be at least 1 and --elements 1 to 50")
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="xerolink-answer-apply-") as tmp:
        if args.registry in ("sqlite", "both"):
            figures["sqlite"] = measure(f"sqlite:///{os.path.join(tmp, 'registry.db')}", args.calls, args.elements)
        if args.registry in ("postgres", "both"):
            with postgres_server(True) as pg:
                if isinstance(pg, str):
                    if args.registry == "postgres":
                        raise SystemExit(f"PostgreSQL: {pg}")
                    print(f"PostgreSQL left out: {pg}", file=sys.stderr)
                else:
                    figures["postgres"] = measure(create_database(pg), args.calls, args.elements)
    for registry, figure in figures.items():
        print(
            f"[{registry}] applying {args.calls} calls' answers of {args.elements} elements: "
            f"{figure['cpu_ms_per_element']:.4f} ms CPU per element, {figure['wall_ms_per_call']:.2f} ms a call, "
            f"{figure['statements_per_call']:.1f} statements a call"
            + (
                f"; the same statements through the driver alone {figure['driver_floor_cpu_ms_per_element']:.4f} ms"
                f" ({figure['cpu_over_driver_floor']:.2f} times)"
                if "driver_floor_cpu_ms_per_element" in figure
                else ""
            )
            + " (load average "
            f"{figure['load_average'][0]:.2f} before, {figure['load_average'][1]:.2f} after)"
        )
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
