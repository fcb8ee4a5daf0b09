"""The gauges' read model on SQLite and on the real PostgreSQL server: what it counts, and on
SQLite, that counting the open outbox reads the open entries only (the done ones, kept for the
retention period, are most of the table)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories.gauges import GaugeReadings
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.domain.states import OutboxState

from tests.fixtures.outbox import ready_row
from tests.fixtures.statements import query_plan, statements_sent


def _entries(database: Database, states: list[tuple[str, OutboxState]]) -> None:
    now = now_us()
    rows = [{**ready_row(tenant, "c1", n, 0, now), "state": state.value} for n, (tenant, state) in enumerate(states)]
    with database.write.begin() as conn:
        conn.execute(insert(OutboxRow.__table__), rows)  # type: ignore[attr-defined]


def test_the_open_outbox_is_counted_by_tenant_and_state_and_done_entries_are_not(database: Database) -> None:
    ready, waiting, done = OutboxState.READY, OutboxState.WAITING, OutboxState.DONE
    _entries(database, [("t1", ready), ("t1", ready), ("t1", waiting), ("t1", done), ("t2", done), ("t3", waiting)])

    assert sorted(GaugeReadings(database).open_outbox()) == [
        ("t1", "ready", 2),
        ("t1", "waiting", 1),
        ("t3", "waiting", 1),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_counting_the_open_outbox_reads_no_done_entry_on_sqlite(database: Database) -> None:
    """As `state != 'done'`, SQLite read the whole of `ix_outbox_ready`, done entries and all, at
    every export of the gauges: it must read the ranges on either side of 'done' only."""
    _entries(database, [("t1", OutboxState.DONE)])
    with statements_sent(database.read) as statements:
        GaugeReadings(database).open_outbox()
    ((sql, parameters),) = [s for s in statements if "FROM outbox" in s[0]]
    with database.read.connect() as conn:
        plan = query_plan(conn, sql, parameters)
    reads = [step for step in plan if step.startswith(("SEARCH outbox", "SCAN outbox"))]
    ranges = ("(state<?)", "(state>?)")
    assert reads and all(step.startswith("SEARCH outbox") and step.endswith(ranges) for step in reads), plan
