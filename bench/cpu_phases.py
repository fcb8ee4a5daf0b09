"""Where a program's CPU goes: thread CPU time (time.thread_time) spent inside named functions,
wrapped in place for the length of a `with` block and restored after it.

A sampling profiler of the interpreter lock counts a thread that holds the lock while the OS
has it waiting for a core, so on a busy machine it overstates Python's part; thread CPU counts
only what ran. A phase is counted once on a thread however deeply its function recurses or
re-enters, and a phase nested in another is counted in both (the report shows them nested). One
clock counts at a time in a process; a generator function is refused (its body runs after the
call returns)."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

_INHERITED = object()
_ENTERING = threading.Lock()
_entered: PhaseClock | None = None


@dataclass(frozen=True)
class Phase:
    """`owner.attribute` (a class's method or a module's function, looked up where its callers
    look it up) is the phase `name`, shown under `parent` ("" for a phase of its own). A phase
    `across` the others (a commit, wherever it runs) is shown apart and not added to the whole."""

    name: str
    owner: Any
    attribute: str
    parent: str = ""
    across: bool = False


class PhaseClock:
    def __init__(self, phases: Sequence[Phase]) -> None:
        names = [p.name for p in phases]
        if len(set(names)) != len(names):
            raise ValueError("two phases with one name")
        unknown = {p.parent for p in phases if p.parent} - set(names)
        if unknown:
            raise ValueError(f"parents that are no phase: {sorted(unknown)}")
        if any(p.across and p.parent for p in phases):
            raise ValueError("a phase across the others has no parent")
        parents = {p.name: p.parent for p in phases}
        for name in names:
            seen, up = {name}, parents[name]
            while up:
                if up in seen:
                    raise ValueError(f"phases that are their own parents: {sorted(seen)}")
                seen.add(up)
                up = parents[up]
        self.phases = list(phases)
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = dict.fromkeys(names, 0.0)
        self._calls: dict[str, int] = dict.fromkeys(names, 0)
        self._active = threading.local()
        # (owner, attribute, what the owner itself held, or _INHERITED)
        self._originals: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> PhaseClock:
        # One clock at a time in a process: two that overlapped without nesting would put back
        # each other's wrappers as they left, and a function would stay wrapped.
        global _entered  # noqa: PLW0603 - the process's one clock
        with _ENTERING:
            if _entered is not None:
                raise RuntimeError("a phase clock is already counting in this process")
            _entered = self
        try:
            for phase in self.phases:
                own = vars(phase.owner).get(phase.attribute, _INHERITED)
                # The descriptor, wherever the class or its bases hold it: an inherited
                # staticmethod or classmethod must stay one.
                held = inspect.getattr_static(phase.owner, phase.attribute)
                function = held.__func__ if isinstance(held, staticmethod | classmethod) else held
                if inspect.isgeneratorfunction(function) or inspect.iscoroutinefunction(function):
                    raise ValueError(f"{phase.name}: a generator's body runs after the call returns")
                self._originals.append((phase.owner, phase.attribute, own))
                setattr(phase.owner, phase.attribute, self._timed(phase.name, held))
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._leave()

    def _leave(self) -> None:
        global _entered  # noqa: PLW0603 - the process's one clock
        try:
            self._restore()
        finally:
            with _ENTERING:
                _entered = None

    def _restore(self) -> None:
        # Last wrapped first: two phases on one attribute come back to the original.
        while self._originals:
            owner, attribute, original = self._originals.pop()
            if original is _INHERITED:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)

    def _timed(self, name: str, held: Any) -> Any:
        """`held` timed, a staticmethod or classmethod kept one (its descriptor is what the
        class held)."""
        if isinstance(held, staticmethod | classmethod):
            return type(held)(self._timed(name, held.__func__))
        function: Callable[..., Any] = held
        active = self._active

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            running: set[str] | None = getattr(active, "names", None)
            if running is None:
                running = active.names = set()
            if name in running:  # re-entered: the outer call counts it
                return function(*args, **kwargs)
            started = None
            try:
                # Inside the try: an interrupt right after the name is marked must unmark it,
                # or every later call on the thread would pass for a re-entry.
                running.add(name)
                started = time.thread_time()
                return function(*args, **kwargs)
            finally:
                running.discard(name)
                if started is not None:
                    spent = time.thread_time() - started
                    with self._lock:
                        self._seconds[name] += spent
                        self._calls[name] += 1

        return timed

    def totals(self) -> dict[str, tuple[float, int]]:
        """Seconds of thread CPU and calls, by phase."""
        with self._lock:
            return {name: (self._seconds[name], self._calls[name]) for name in self._seconds}

    def report(self, per: int, unit: str = "element") -> tuple[dict[str, Any], str]:
        """Milliseconds per `unit` (of `per` units) by phase, and a line saying them nested; the
        phases without a parent, except those across the others, are the whole."""
        totals = self.totals()
        whole = sum(totals[p.name][0] for p in self.phases if not p.parent and not p.across)
        figures: dict[str, Any] = {
            f"{unit}s": per,
            f"cpu_ms_per_{unit}": round(whole * 1000 / per, 3) if per else None,
            "phases": {
                p.name: {
                    "ms_per_" + unit: round(totals[p.name][0] * 1000 / per, 3) if per else None,
                    "share_pct": round(100 * totals[p.name][0] / whole, 1) if whole else None,
                    "calls": totals[p.name][1],
                    "parent": p.parent,
                }
                for p in self.phases
            },
        }

        def said(parent: str, across: bool = False) -> str:
            parts = []
            for p in self.phases:
                if p.parent != parent or p.across != across:
                    continue
                ms, share = figures["phases"][p.name][f"ms_per_{unit}"], figures["phases"][p.name]["share_pct"]
                inner = said(p.name)
                parts.append(f"{p.name} {ms} ({share} %)" + (f" [{inner}]" if inner else ""))
            return "; ".join(parts)

        apart = said("", across=True)
        return figures, said("") + (f"; across them: {apart}" if apart else "")
