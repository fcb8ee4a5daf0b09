"""The arithmetic of bench/many_tenants.py: statement kinds and shapes, the fair-share prediction
of the first element, and the spread of the organisations' shares."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "bench_many_tenants", Path(__file__).parents[2] / "bench" / "many_tenants.py"
)
assert SPEC and SPEC.loader
bench = importlib.util.module_from_spec(SPEC)
sys.modules[SPEC.name] = bench  # its dataclasses look their module up while it loads
SPEC.loader.exec_module(bench)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT outbox.id FROM outbox", "SELECT"),
        ("  select 1", "SELECT"),
        ("\n(SELECT 1) UNION (SELECT 2)", "SELECT"),
        ("INSERT INTO app_call_bucket (bucket_us, calls) VALUES (?, ?)", "INSERT"),
        ("UPDATE outbox SET claimed_by=? WHERE outbox.id IN (SELECT outbox.id FROM outbox)", "UPDATE"),
        ("DELETE FROM dependency_wait WHERE outbox_id = ?", "DELETE"),
        ("BEGIN IMMEDIATE", "BEGIN"),
        ("WITH ready AS (SELECT 1) SELECT * FROM ready", "other"),
        ("SELECT pg_advisory_xact_lock(%(k)s)", "SELECT"),
        ("", "other"),
    ],
)
def test_a_statement_is_counted_by_its_first_word(sql: str, kind: str) -> None:
    assert bench.statement_kind(sql) == kind


def test_statement_shapes_are_the_same_on_both_databases_whatever_the_list_length() -> None:
    sqlite = "SELECT link.id, link.state\nFROM link WHERE link.id IN (?, ?, ?)"
    postgres = "SELECT link.id, link.state FROM link WHERE link.id IN (%(id_1_1)s::INTEGER, %(id_1_2)s::INTEGER)"
    assert bench.normalise_sql(sqlite) == bench.normalise_sql(postgres) == "SELECT … FROM link WHERE link.id IN (…)"
    assert bench.normalise_sql("SELECT … FROM outbox WHERE outbox.id = %(pk_1)s::INTEGER") == (
        "SELECT … FROM outbox WHERE outbox.id = ?"
    )
    # One column, or an aggregate, stays as it is: it says what the query is for.
    assert bench.normalise_sql("SELECT DISTINCT outbox.tenant_id FROM outbox") == (
        "SELECT DISTINCT outbox.tenant_id FROM outbox"
    )
    assert len(bench.normalise_sql("UPDATE outbox SET " + "a=?, " * 100, width=40)) == 40


def test_the_fair_share_puts_the_last_first_element_after_every_organisations_calls_before_it() -> None:
    # 200 organisations needing 3 calls each, 10 calls a second in all: a round takes 20 s.
    assert bench.fair_first_element_s(200, 10.0, 3) == pytest.approx(60.0)
    assert bench.fair_first_element_s(20, 40.0, 1) == pytest.approx(0.5)
    assert bench.fair_first_element_s(200, 0.0, 3) is None
    assert bench.fair_first_element_s(0, 10.0, 3) is None


def test_equal_shares_are_fair() -> None:
    spread = bench.share_spread([50] * 200)
    assert (spread.median, spread.worst_deviation_pct, spread.off) == (50.0, 0.0, 0)


def test_shares_are_measured_against_the_median_and_20_percent_is_the_edge() -> None:
    shares = [100] * 7 + [120, 80, 121, 0]
    spread = bench.share_spread(shares)
    assert spread.median == 100.0
    assert spread.worst_deviation_pct == 100.0  # the starved one
    assert spread.off == 2  # 121 and 0; 120 and 80 are exactly 20 % off, not more


def test_a_median_of_nothing_falls_back_to_the_mean() -> None:
    # An unfair poster serving a quarter of the organisations: the median one posted nothing.
    spread = bench.share_spread([150] * 50 + [0] * 150)
    assert spread.median == 0.0
    assert spread.reference == pytest.approx(37.5)
    assert spread.worst_deviation_pct == 300.0
    assert spread.off == 200
    assert bench.share_spread([0, 0, 0]).worst_deviation_pct is None
    assert bench.share_spread([]).off == 0


def test_ratio_is_none_without_a_denominator() -> None:
    assert bench.ratio(31.0, 2.4) == 12.92
    assert bench.ratio(5, 0) is None
    assert bench.ratio(None, 3) is None
    assert bench.ratio(1, 3, 1) == 0.3
