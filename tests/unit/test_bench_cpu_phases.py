"""The bench's phase clock: thread CPU inside wrapped functions, counted once when re-entered,
and every function back as it was after the block, whatever happened in it."""

from __future__ import annotations

import threading
import time
import types

import pytest

from bench.cpu_phases import Phase, PhaseClock


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Work:
    def busy(self, seconds: float) -> str:
        _spin(seconds)
        return "busy"

    def nested(self, seconds: float) -> None:
        self.busy(seconds)

    def recurse(self, depth: int, seconds: float) -> None:
        _spin(seconds)
        if depth:
            self.recurse(depth - 1, seconds)

    @staticmethod
    def static(seconds: float) -> None:
        _spin(seconds)

    @classmethod
    def cls(cls, seconds: float) -> type:
        _spin(seconds)
        return cls

    def fails(self) -> None:
        _spin(0.01)
        raise RuntimeError("out")


class Child(Work):
    pass


def test_cpu_is_counted_in_the_phase_and_in_the_phase_around_it() -> None:
    clock = PhaseClock([Phase("outer", Work, "nested"), Phase("inner", Work, "busy", parent="outer")])
    with clock:
        Work().nested(0.05)
        assert Work().busy(0.02) == "busy"
    totals = clock.totals()
    assert totals["inner"][1] == 2 and totals["outer"][1] == 1
    assert 0.06 <= totals["inner"][0] < 0.2
    assert 0.045 <= totals["outer"][0] < totals["inner"][0]


def test_a_recursive_phase_counts_each_outer_call_once() -> None:
    clock = PhaseClock([Phase("recurse", Work, "recurse")])
    with clock:
        Work().recurse(3, 0.01)
    seconds, calls = clock.totals()["recurse"]
    assert calls == 1
    assert 0.035 <= seconds < 0.2  # four levels of 10 ms, not 10 + 20 + 30 + 40


def test_sleeping_is_no_cpu_and_other_threads_count_their_own() -> None:
    clock = PhaseClock([Phase("busy", Work, "busy"), Phase("sleep", time, "sleep")])
    with clock:
        threads = [threading.Thread(target=Work().busy, args=(0.03,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.1)
    totals = clock.totals()
    assert totals["busy"][1] == 3 and totals["busy"][0] >= 0.09
    assert totals["sleep"][0] < 0.02


def test_everything_wrapped_is_restored_even_after_a_failure_and_for_inherited_methods() -> None:
    module = types.ModuleType("m")
    module.f = lambda: 1  # type: ignore[attr-defined]
    before = {name: vars(Work)[name] for name in ("busy", "static", "cls", "fails")}
    original_f = module.f
    clock = PhaseClock(
        [
            Phase("busy", Work, "busy"),
            Phase("static", Work, "static"),
            Phase("cls", Work, "cls"),
            Phase("fails", Work, "fails"),
            Phase("inherited", Child, "nested"),
            Phase("f", module, "f"),
        ]
    )
    with pytest.raises(RuntimeError), clock:
        Work.static(0.001)
        assert Work.cls(0.001) is Work and Child.cls(0.001) is Child
        assert module.f() == 1
        Child().nested(0.001)
        Work().fails()
    assert {name: vars(Work)[name] for name in before} == before
    assert "nested" not in vars(Child)
    assert module.f is original_f
    totals = clock.totals()
    assert totals["fails"][1] == 1 and totals["fails"][0] >= 0.009
    assert all(totals[name][1] >= 1 for name in ("static", "cls", "inherited", "f"))


def test_a_wrong_description_is_refused_before_anything_is_wrapped() -> None:
    with pytest.raises(ValueError, match="parents"):
        PhaseClock([Phase("a", Work, "busy", parent="nobody")])
    with pytest.raises(ValueError, match="one name"):
        PhaseClock([Phase("a", Work, "busy"), Phase("a", Work, "nested")])
    clock = PhaseClock([Phase("busy", Work, "busy"), Phase("missing", Work, "no_such_method")])
    with pytest.raises(AttributeError), clock:
        pass
    assert vars(Work)["busy"].__name__ == "busy" and not hasattr(vars(Work)["busy"], "__wrapped__")


def test_the_report_nests_phases_and_takes_the_whole_from_the_top_ones() -> None:
    clock = PhaseClock(
        [
            Phase("jobs", Work, "nested"),
            Phase("busy", Work, "busy", parent="jobs"),
            Phase("other", Work, "recurse"),
            Phase("spins", Work, "static", across=True),
        ]
    )
    with clock:
        Work().nested(0.04)
        Work().recurse(0, 0.04)
        Work.static(0.02)  # outside the others here, and still not part of the whole
    figures, line = clock.report(per=10)
    whole = figures["cpu_ms_per_element"]
    jobs, other = figures["phases"]["jobs"]["ms_per_element"], figures["phases"]["other"]["ms_per_element"]
    assert whole == pytest.approx(jobs + other, abs=0.002)
    assert 7.5 <= whole < 20  # 80 ms of CPU over 10 elements
    assert line.startswith(f"jobs {jobs} (") and "[busy " in line and "; other " in line
    spins = figures["phases"]["spins"]["ms_per_element"]
    assert spins >= 1.5 and line.split("; across them: ")[1].startswith(f"spins {spins} (")
    with pytest.raises(ValueError, match="across"):
        PhaseClock([Phase("a", Work, "busy"), Phase("b", Work, "nested", parent="a", across=True)])
