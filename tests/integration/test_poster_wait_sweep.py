"""The safety net for waits (the supervisor's sweep of every waiting entry) takes a bounded share
of the supervisor's thread however many entries wait: a cheap sweep every half second, a costly
one spaced by its own cost. On a SQLite registry with a real supervisor thread."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import cast

import pytest
from xerolink_poster.adapters.database import open_database
from xerolink_poster.adapters.migrations import migrate
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.supervisor import (
    SWEEP_INTERVAL,
    SWEEP_PAUSE_CAP,
    SWEEP_SHARE,
    Dispatcher,
    sweep_pause,
)


@pytest.mark.parametrize("took", [0.0, 0.001, 0.02])
def test_a_cheap_sweep_runs_every_half_second(took: float) -> None:
    assert sweep_pause(took) == SWEEP_INTERVAL


@pytest.mark.parametrize("took", [0.03, 0.1, 1.0, 1.5])
def test_a_costly_sweep_takes_its_share_of_the_thread_and_no_more(took: float) -> None:
    assert took / (took + sweep_pause(took)) == pytest.approx(SWEEP_SHARE)


@pytest.mark.parametrize("took", [1.6, 10.0, 600.0])
def test_a_sweep_slowed_by_anything_puts_the_next_off_for_half_a_minute_at_most(took: float) -> None:
    assert sweep_pause(took) == SWEEP_PAUSE_CAP


def test_the_supervisor_spaces_a_slow_sweep_by_its_cost(tmp_path: Path) -> None:
    """A sweep of 0.1 s (about 100,000 waiting entries on SQLite) ran every 0.6 s, a sixth of the
    thread; spaced by its cost it runs every 2 s. The app minute's moves keep their half second."""
    db = open_database(f"sqlite:///{tmp_path / 'registry.db'}")
    migrate(db)
    dispatcher = Dispatcher(db, cast(XeroClient, None), DispatcherSettings(), "poster-a")
    sweeps: list[float] = []
    moves: list[float] = []
    lock = threading.Lock()

    def slow_sweep() -> None:
        with lock:
            sweeps.append(time.monotonic())
        time.sleep(0.1)

    def write_moves() -> None:
        with lock:
            moves.append(time.monotonic())

    dispatcher.release_satisfied_waits = slow_sweep  # type: ignore[method-assign]
    dispatcher.write_app_moves = write_moves  # type: ignore[method-assign]
    dispatcher.start()
    try:
        time.sleep(4.5)
    finally:
        dispatcher.stop()
        db.dispose()
    gaps = [b - a for a, b in itertools.pairwise(sweeps)]
    assert 2 <= len(sweeps) <= 3, sweeps
    assert all(gap >= 0.1 / SWEEP_SHARE - 0.05 for gap in gaps), gaps
    assert len(moves) >= 6, moves  # every half second, not held back by the sweep's pause
