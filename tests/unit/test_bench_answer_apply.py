"""bench/answer_apply.py measures what it says: every entry it fills is applied (a run that
applied nothing must not print a figure), and its statement count is the transaction's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from xerolink_poster.adapters.database import now_us, open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

from bench import answer_apply


def test_a_small_run_applies_every_entry_and_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert answer_apply.main(["--registry", "sqlite", "--calls", "3", "--elements", "4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(figures) == {"sqlite"}
    sqlite = figures["sqlite"]
    assert sqlite["cpu_ms_per_element"] > 0
    # BEGIN, the entries and links read, three updates by key, the audit and snapshot inserts...:
    # a handful, the same however many elements a call holds.
    assert 5 <= sqlite["statements_per_call"] <= 20
    # The same statements replayed through the driver alone (on a copy in the same state).
    assert sqlite["driver_floor_cpu_ms_per_element"] > 0
    assert sqlite["cpu_over_driver_floor"] > 0


def test_answers_that_apply_nothing_end_the_run_without_a_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Answers from a poster that holds none of the claims are dropped, as late answers are.
    def apply_as_another(uow: UnitOfWork, results: list[ElementResult]) -> None:
        apply_batch(uow, results, "another-poster", answer_apply.ACTOR, now_us())

    monkeypatch.setattr(answer_apply, "apply", apply_as_another)
    with pytest.raises(SystemExit, match="0 of 4 entries applied"):
        answer_apply.measure(f"sqlite:///{tmp_path / 'r.db'}", 1, 4)


def test_the_filled_entries_are_claimed_and_uncertain_as_before_a_call(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        migrate(db)
        (batch,) = answer_apply.fill(db, 1, 3)
        rows = run_in_transaction(db, lambda uow: list(uow.outbox.outbox_by_ids(batch).values()))
        assert [(r.claimed_by, r.uncertain, r.state) for r in rows] == [(answer_apply.HOLDER, True, "ready")] * 3
    finally:
        db.dispose()
