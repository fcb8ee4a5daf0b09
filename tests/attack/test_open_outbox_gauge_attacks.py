"""Attacks on `GaugeReadings.open_outbox`, the read behind `xerolink.outbox.depth{tenant,state}`,
since 73c052d an `IN` of every `OutboxState` but DONE instead of `state != 'done'`, so SQLite
reads the open states' ranges of `ix_outbox_ready` and not the done entries kept for retention.

From outside, on both registries unless marked: the readings compared with a plain count grouped
by tenant and state of the rows not done, over generated outboxes (many tenants, every state, none
at all, tenant ids with odd characters); what the exported gauge shows an operator for an entry in
a state this poster does not know (written by another version of the poster, or by hand), which
nothing claims and nothing purges; and the plans, on SQLite with a large done backlog (with and
without ANALYZE, and as the work SQLite does) and on an analysed PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy import Table, delete, func, insert, select, text
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.repositories.gauges import GaugeReadings
from xerolink_poster.adapters.tables import OutboxRow
from xerolink_poster.domain.states import OutboxState
from xerolink_poster.service_layer import metrics as poster_metrics

from tests.fixtures.outbox import ready_row
from tests.fixtures.statements import Statement, query_plan, sqlite_vm_steps, statements_sent

OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
Reading = tuple[str, str, int]
DB_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
STATES = [s.value for s in OutboxState]
# States this poster does not know but a registry can hold: a state a newer (or older) poster
# writes, and states typed by hand. None is claimed by the dispatcher, none is purged.
FOREIGN_STATES = ["held", "claimed", "Ready", "DONE", "done ", ""]


# -- the registry, written straight -----------------------------------------------------------------


def _write(database: Database, entries: list[tuple[str, str]]) -> None:
    """Replaces the whole outbox with one entry per (tenant, state)."""
    now = now_us()
    rows = [{**ready_row(tenant, "c1", n, 0, now), "state": state} for n, (tenant, state) in enumerate(entries)]
    with database.write.begin() as conn:
        conn.execute(delete(OUTBOX))
        for start in range(0, len(rows), 5000):
            conn.execute(insert(OUTBOX), rows[start : start + 5000])


def _oracle(database: Database) -> list[Reading]:
    """A plain count, grouped by tenant and state, of the rows whose state is not 'done'."""
    query = (
        select(OUTBOX.c.tenant_id, OUTBOX.c.state, func.count())
        .where(OUTBOX.c.state != "done")
        .group_by(OUTBOX.c.tenant_id, OUTBOX.c.state)
    )
    with database.read.connect() as conn:
        return sorted((str(t), str(s), int(n)) for t, s, n in conn.execute(query))


def _expected(entries: list[tuple[str, str]]) -> list[Reading]:
    """The same count, done in Python from what was written."""
    return sorted((t, s, n) for (t, s), n in Counter(e for e in entries if e[1] != "done").items())


def _readings(database: Database) -> list[Reading]:
    return sorted(GaugeReadings(database).open_outbox())


def _exported(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[Reading]:
    """`xerolink.outbox.depth` as an exporter collects it from a poster's PosterMetrics: the
    points' (tenant, state, value)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(poster_metrics, "_meter", provider.get_meter("xerolink.poster"))
    poster_metrics.PosterMetrics(database)
    data = reader.get_metrics_data()
    provider.shutdown()
    points: list[Reading] = []
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "xerolink.outbox.depth":
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        value = int(cast(Any, point).value)  # a gauge's point
                        points.append((str(attributes["xerolink.tenant_id"]), str(attributes["state"]), value))
    return sorted(points)


# -- 1. the readings against a plain count ----------------------------------------------------------

_tenant_ids = st.one_of(
    st.sampled_from(["t1", "T1", "t1 ", " t1", "", "%", "_", "'; --", "é", "e\u0301", "😀", "a\tb", "x" * 64]),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=64),
)


@DB_SETTINGS
@given(entries=st.lists(st.tuples(_tenant_ids, st.sampled_from(STATES)), max_size=60))
def test_the_readings_are_the_plain_count_of_entries_not_done(
    database: Database, entries: list[tuple[str, str]]
) -> None:
    """Whatever the tenants (case, trailing spaces, SQL wildcards and quotes, composed and
    decomposed accents, emoji, 64 characters, empty) and the states: one reading per tenant and
    open state, its count, and nothing for done entries."""
    _write(database, entries)
    assert _readings(database) == _oracle(database) == _expected(entries)


def test_an_empty_outbox_and_an_outbox_all_done_read_nothing(database: Database) -> None:
    assert _readings(database) == []
    _write(database, [(f"t{n}", "done") for n in range(50)])
    assert _readings(database) == [] == _oracle(database)


def test_many_tenants_in_every_state_are_each_counted(database: Database) -> None:
    entries = [(f"tenant-{n % 400:04d}", STATES[(n * 7) % 3]) for n in range(6000)]
    entries += [(f"only-done-{n}", "done") for n in range(100)]
    _write(database, entries)
    readings = _readings(database)
    assert readings == _oracle(database) == _expected(entries)
    assert {t for t, _, _ in readings} == {f"tenant-{n:04d}" for n in range(400)}


def test_the_exported_gauge_publishes_the_readings(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [("t1", "ready"), ("t1", "ready"), ("t1", "waiting"), ("t2", "done"), ("t'3", "waiting")]
    _write(database, entries)
    assert _exported(database, monkeypatch) == _expected(entries) == _readings(database)


# -- 2. an entry in a state this poster does not know -----------------------------------------------


@pytest.mark.parametrize("foreign", FOREIGN_STATES)
def test_an_entry_in_a_state_the_poster_does_not_know_still_counts_in_the_depth(
    database: Database, monkeypatch: pytest.MonkeyPatch, foreign: str
) -> None:
    """The gauge is "outbox entries not done" (metrics.py), "work accepted but not yet in Xero"
    (docs/operations.md). An entry another version of the poster (or a person) left in a state
    this one does not know is not done: the dispatcher never claims it (it claims 'ready') and the
    purge never deletes it (it deletes 'done'), so it sits there for good. The gauge is the one
    place an operator can see it; before 73c052d it showed as its own `state` label. It must
    still be counted, under its stored state, beside the known ones."""
    entries = [("t1", "ready"), ("t1", foreign), ("t1", foreign), ("t2", foreign), ("t2", "done")]
    _write(database, entries)
    expected = _expected(entries)
    assert _oracle(database) == expected  # what `state != 'done'` counted before the change
    assert _readings(database) == expected
    assert _exported(database, monkeypatch) == expected


@DB_SETTINGS
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from(["t1", "t2", "T1"]),
            st.one_of(st.sampled_from(STATES), st.text(st.characters(codec="ascii"), max_size=16)),
        ),
        max_size=30,
    )
)
def test_the_readings_are_the_plain_count_whatever_the_stored_states(
    database: Database, entries: list[tuple[str, str]]
) -> None:
    """The same comparison as the first, with any state a varchar(16) can hold."""
    entries = [(t, s.replace("\x00", "")) for t, s in entries]
    _write(database, entries)
    assert _readings(database) == _oracle(database) == _expected(entries)


# -- 3. plans --------------------------------------------------------------------------------------


def _backlog(database: Database, done: int, open_per_state: int = 100) -> None:
    """`done` done entries over 50 tenants and `open_per_state` entries in each open state."""
    entries = [(f"t{n % 50:02d}", "done") for n in range(done)]
    entries += [(f"t{n % 50:02d}", s) for s in STATES if s != "done" for n in range(open_per_state)]
    _write(database, entries)


def _gauge_statement(database: Database) -> Statement:
    """The SQL and parameters open_outbox sends to the driver."""
    with statements_sent(database.read) as seen:
        GaugeReadings(database).open_outbox()
    (statement,) = [s for s in seen if "FROM outbox" in s[0]]
    return statement


def _sqlite_plan(database: Database) -> list[str]:
    sql, parameters = _gauge_statement(database)
    with database.read.connect() as conn:
        return query_plan(conn, sql, parameters)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("analyze", [False, True], ids=["no statistics", "after ANALYZE"])
def test_on_sqlite_the_gauge_searches_by_state_over_a_large_done_backlog(database: Database, analyze: bool) -> None:
    _backlog(database, 60_000)
    if analyze:
        with database.write.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    plan = _sqlite_plan(database)
    reads = [step for step in plan if step.startswith(("SEARCH outbox", "SCAN outbox"))]
    ranges = ("(state<?)", "(state>?)")  # either side of 'done' (73c052d named the states: "(state=?)")
    assert reads and all(step.startswith("SEARCH outbox") and step.endswith(ranges) for step in reads), plan


def _vm_steps(database: Database) -> int:
    """SQLite virtual machine instructions (in thousands) the gauge's statement takes."""
    return sqlite_vm_steps(database.read, *_gauge_statement(database))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_the_gauge_costs_the_same_with_twenty_times_the_done_entries(database: Database) -> None:
    """What the plan means, measured: the work SQLite does for the gauge follows the open entries,
    not the done ones kept for retention."""
    _backlog(database, 3_000)
    small = _vm_steps(database)
    _backlog(database, 60_000)
    large = _vm_steps(database)
    assert large <= small + 2, (small, large)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_on_an_analysed_postgres_the_gauge_does_not_scan_the_table(database: Database) -> None:
    _backlog(database, 60_000)
    with database.write.begin() as conn:
        conn.execute(text("ANALYZE outbox"))
    sql, parameters = _gauge_statement(database)
    with database.read.connect() as conn:
        plan = [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql, parameters)]
    # Any index with state first will do (PostgreSQL picks ix_outbox_done, the narrower one).
    assert any("Index Cond: ((state)::text <" in step for step in plan), plan
    assert any("Index Cond: ((state)::text >" in step for step in plan), plan
    assert not any("Seq Scan" in step for step in plan), plan
    assert _readings(database) == _oracle(database)
