"""bench/registry_reads.py measures what it says: each read it times finds what its rows hold (a
run whose reads found the wrong thing must not print a figure), and it prints a ratio per read."""

from __future__ import annotations

import json

import pytest
from xerolink_poster.adapters.repositories.links import SqlLinkRepository

from bench import registry_reads


def test_a_small_run_finds_what_it_inserted_and_prints_its_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--registry", "sqlite", "--sizes", "400,1000", "--tenants", "4", "--repeats", "3", "--json"]
    assert registry_reads.main(argv) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    sqlite = figures["sqlite"]
    assert set(sqlite) == {
        "rows_400",
        "rows_1000",
        "pending_events_of_ratio",
        "link_holding_foreign_ratio",
        "link_holding_ours_ratio",
        "list_links_page_ratio",
    }
    assert all(sqlite["rows_1000"][name] > 0 for name in ("pending_events_of_ms", "link_holding_foreign_ms"))


def test_a_read_that_finds_the_wrong_link_ends_the_run_without_a_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    found = SqlLinkRepository.link_holding
    # A look-up that answers for an object no link holds with whatever link it finds first.
    monkeypatch.setattr(
        SqlLinkRepository,
        "link_holding",
        lambda self, connection_id, xero_id: found(self, connection_id, registry_reads.xero_id(0)),
    )
    with pytest.raises(SystemExit, match="a link holds an object no link was given"):
        registry_reads.main(["--registry", "sqlite", "--sizes", "20", "--tenants", "1", "--repeats", "1"])
