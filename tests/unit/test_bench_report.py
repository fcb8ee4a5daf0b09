"""bench/report.py rewrites docs/benchmarks.md: what it keeps of the page as it was."""

from __future__ import annotations

import re
from pathlib import Path

from bench.report import BENCHES, HEADLINES, Run, render
from bench.report_page import OldPage

ROOT = Path(__file__).resolve().parents[2]
HOST = {"CPU": "test", "cores": "2"}
BY_NAME = {b.name: b for b in BENCHES}


def run_of(name: str, figure: float, key: str = "figure") -> Run:
    bench = BY_NAME[name]
    command = ["python", f"bench/{name}.py", "--json"]
    output = f'it printed this\n{{"{key}": {figure}}}'
    return Run(bench, command, 0, 12.0, output, {key: figure}, (1.0, 1.0, 1.0), (1.5, 1.0, 1.0))


# A figure the mapper bench's headline shows.
MAPPER_KEY = "mixed_unary_32_in_flight_per_second"


def page(*runs: Run, old: OldPage | None = None) -> str:
    return render(list(runs), HOST, False, "python bench/report.py", old)


def sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.MULTILINE)


def test_a_rewrite_keeps_the_notes_under_the_section_of_a_bench_it_runs_and_replaces_its_figures() -> None:
    title = BY_NAME["emulator_throughput"].title
    first = page(run_of("emulator_throughput", 111.0))
    noted = first.rstrip("\n") + "\n\n### Tried by hand (side by side)\n\nHalf the time, measured once.\n"

    again = page(run_of("emulator_throughput", 222.0), old=OldPage.parse(noted))

    assert "| figure | 222.00 |" in again
    assert "111.00" not in again
    assert again.count("### Tried by hand (side by side)") == 1
    section = again.split(f"## {title}", 1)[1]
    assert section.index("| figure | 222.00 |") < section.index("### Tried by hand")
    assert "Half the time, measured once." in section


def test_a_bench_not_run_keeps_its_section_and_headline_rows_as_they_were() -> None:
    both = page(run_of("emulator_throughput", 111.0), run_of("mapper_throughput", 333.0, MAPPER_KEY))
    old = OldPage.parse(both)
    mapper_rows = old.rows_of("mapper_throughput")
    assert mapper_rows == [
        "| Mapper, unary calls, 32 in flight | 333 transactions/s | `python bench/mapper_throughput.py --json` |"
    ]

    only = page(run_of("emulator_throughput", 222.0), old=old)

    mapper = next(s for s in old.sections if s.title == BY_NAME["mapper_throughput"].title)
    assert mapper.title in sections(only)
    assert mapper.whole() in only
    assert f"| {MAPPER_KEY} | 333.00 |" in only
    for row in mapper_rows:
        assert row in only


def test_a_section_no_bench_writes_any_more_is_kept_whole() -> None:
    old = OldPage.parse("# Benchmarks\n\n## A bench since removed\n\nfigures\n\n### What we learnt\n\nkeep this\n")

    text = page(run_of("emulator_throughput", 1.0), old=old)

    assert "## A bench since removed\n\nfigures\n\n### What we learnt\n\nkeep this" in text


def test_writing_the_page_again_and_again_changes_nothing_but_the_runs() -> None:
    first = page(run_of("emulator_throughput", 1.0))
    noted = first.rstrip("\n") + "\n\n### A note\n\ntext\n"
    second = page(run_of("emulator_throughput", 1.0), old=OldPage.parse(noted))
    third = page(run_of("emulator_throughput", 1.0), old=OldPage.parse(second))

    assert second == third
    assert "\n\n\n" not in third


def test_the_committed_page_loses_no_section_or_note_when_one_bench_is_run_again() -> None:
    committed = (ROOT / "docs" / "benchmarks.md").read_text()

    text = page(run_of("emulator_throughput", 1.0), old=OldPage.parse(committed))

    headings = re.findall(r"^###? .+$", committed, flags=re.MULTILINE)
    kept_rows = [row for name, row in OldPage.parse(committed).headline_rows if name != "emulator_throughput"]
    assert len(headings) > 20 and kept_rows
    for heading in headings:
        assert heading in text, heading
    for row in kept_rows:
        assert row in text


def test_the_headline_shows_the_post_paths_floor_beside_the_acknowledgement_while_draining() -> None:
    ack = {"offered_per_s": 100.0, "p50_ms": 30.0, "errors": 0, "poster_cpu_ms_per_post": 9.0}
    figures = {
        "tenants": 200,
        "sqlite": {
            "acknowledgement": {**ack, "p99_ms": 226.2, "drain_elements_per_s": 711},
            "acknowledgement_idle": {**ack, "p99_ms": 9.1, "drain_elements_per_s": 0, "poster_cpu_ms_per_post": 3.9},
        },
    }

    rows = dict(HEADLINES["many_tenants"](figures, ""))

    assert rows["Post p99 at 100/s, open loop, nothing draining, SQLite"].startswith("9.1 ms")
    assert "poster CPU 3.9 ms per Post" in rows["Post p99 at 100/s, open loop, nothing draining, SQLite"]
    assert rows["Post p99 at 100/s, open loop, while draining, SQLite"].startswith("226.2 ms")
    assert "711 elements/s meanwhile" in rows["Post p99 at 100/s, open loop, while draining, SQLite"]


def test_the_headline_shows_the_roles_split_beside_one_poster() -> None:
    ack = {"offered_per_s": 100.0, "p50_ms": 10.5, "errors": 0, "poster_cpu_ms_per_post": 5.7}
    figures = {
        "tenants": 200,
        "postgres": {
            "acknowledgement": {**ack, "p99_ms": 168.1, "drain_elements_per_s": 624},
            "acknowledgement_split": {**ack, "p99_ms": 45.4, "drain_elements_per_s": 456},
        },
    }

    rows = dict(HEADLINES["many_tenants"](figures, ""))

    split = rows["Post p99 at 100/s, open loop, while draining, roles split, PostgreSQL"]
    assert split.startswith("45.4 ms")
    assert "the draining poster at nice 19 posted 456 elements/s meanwhile" in split
    assert rows["Post p99 at 100/s, open loop, while draining, PostgreSQL"].startswith("168.1 ms")


def test_the_headline_shows_the_dispatchers_cpu_by_phase_from_a_run_of_part_2b_alone() -> None:
    def phase(ms: float, parent: str = "") -> dict[str, object]:
        return {"ms_per_element": ms, "share_pct": 0.0, "calls": 1, "parent": parent}

    figures = {
        "tenants": 200,
        "sqlite": {
            "cpu_phases": {
                "cpu_ms_per_element": 0.771,
                "phases": {
                    "Xero calls": phase(0.239, "jobs"),
                    "the transaction before the call": phase(0.12, "Xero calls"),
                    "applying answers": phase(0.228, "jobs"),
                    "contacts": phase(0.076, "jobs"),
                    "claims": phase(0.071, "worker turns"),
                },
            }
        },
    }

    rows = dict(HEADLINES["many_tenants"](figures, ""))

    assert rows["Dispatcher thread CPU per element by phase, SQLite"] == (
        "0.771 ms: Xero calls 0.239 (the transaction before each 0.12), applying answers 0.228, contacts 0.076, "
        "claims 0.071"
    )
    assert not any("PostgreSQL" in name for name in rows)


def test_the_headline_shows_marking_uncertain_beside_the_claim_when_a_run_of_part_3_measured_it() -> None:
    sizes: dict[str, object] = {"rows_1000": {}, "rows_100000": {}}
    marked = {
        "tenants": 200,
        "sqlite": {
            "flat": {**sizes, "claim_ratio": 1.04, "mark_uncertain_ratio": 1.1, "tenants_with_ready_work_ratio": 1.09}
        },
    }
    older = {"tenants": 200, "sqlite": {"flat": {**sizes, "claim_ratio": 1.04, "tenants_with_ready_work_ratio": 1.09}}}
    voiding = {"claim_ratio": 1.04, "mark_uncertain_ratio": 1.1, "lease_taken_ratio": 0.97, "release_claims_ratio": 8.4}
    voided = {"tenants": 200, "sqlite": {"flat": {**sizes, **voiding, "tenants_with_ready_work_ratio": 1.09}}}

    rows = dict(HEADLINES["many_tenants"](marked, ""))
    old_rows = dict(HEADLINES["many_tenants"](older, ""))
    new_rows = dict(HEADLINES["many_tenants"](voided, ""))

    name = "Claim / marking uncertain / tenants_with_ready_work at 100,000 ready rows over 1,000, SQLite"
    assert rows[name] == "x1.04 / x1.1 / x1.09 (1 is flat)"
    assert old_rows["Claim / tenants_with_ready_work at 100,000 ready rows over 1,000, SQLite"] == (
        "x1.04 / x1.09 (1 is flat)"
    )
    with_leases = (
        "Claim / marking uncertain / taking a lease handed back / tenants_with_ready_work at 100,000 ready rows "
        "over 1,000, SQLite"
    )
    assert new_rows[with_leases] == "x1.04 / x1.1 / x0.97 / x1.09 (1 is flat)"
