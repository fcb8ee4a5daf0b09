"""The arithmetic of bench/poster_fleet.py: the --posters list, duplicates, calls per scaled
minute against the app limit, and the split of organisations between posters."""

from __future__ import annotations

import argparse

import pytest

from bench import poster_fleet as fleet


def test_poster_counts_reads_a_list() -> None:
    assert fleet.poster_counts("1,2,4") == [1, 2, 4]
    assert fleet.poster_counts("3") == [3]


@pytest.mark.parametrize("text", ["", "0", "1,-2", "2,2", "one"])
def test_poster_counts_refuses_nonsense(text: str) -> None:
    with pytest.raises((argparse.ArgumentTypeError, ValueError)):
        fleet.poster_counts(text)


def test_duplicates_are_the_numbers_seen_more_than_once() -> None:
    assert fleet.duplicates(["INV-1", "INV-2", "INV-1", "INV-3", "INV-1"]) == {"INV-1": 3}
    assert fleet.duplicates(["INV-1", "INV-2"]) == {}
    assert fleet.duplicates([]) == {}


def test_calls_per_minute_counts_fixed_minutes_from_the_first_call() -> None:
    assert fleet.calls_per_minute([10.0, 10.5, 10.99, 11.0, 13.2], 1.0) == [3, 1, 0, 1]
    assert fleet.calls_per_minute([], 1.0) == []


def test_busiest_window_slides() -> None:
    # Fixed minutes from the first call see 2 and 2; the minute from 0.6 to 1.6 holds 3.
    times = [0.0, 0.7, 1.2, 1.5]
    assert fleet.calls_per_minute(times, 1.0) == [2, 2]
    assert fleet.busiest_window(times, 1.0) == 3
    # A call exactly a window after another no longer counts it (the emulator's (t - w, t]).
    assert fleet.busiest_window([0.0, 1.0, 2.0], 1.0) == 1
    assert fleet.busiest_window([], 1.0) == 0


def test_split_counts_organisations_and_elements_per_poster() -> None:
    rows = [
        ("dispatcher:fleet-1", "t1", 100),
        ("dispatcher:fleet-1", "t2", 50),
        ("dispatcher:fleet-2", "t2", 50),
        ("dispatcher:fleet-2", "t3", 100),
    ]
    got = fleet.split(rows)
    assert got.tenants == {"fleet-1": 2, "fleet-2": 2}
    assert got.elements == {"fleet-1": 150, "fleet-2": 150}
    assert got.shared == 1  # t2 changed hands
    assert fleet.split([]) == fleet.Split({}, {}, 0)
