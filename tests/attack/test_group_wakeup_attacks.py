"""Attacks on the group commit stage's wake-ups (service_layer/group_commit.py since aa7ec86: each
waiting caller waits on a condition of its own, woken when its jobs are taken or when the leader
finishes and it is the first follower with untaken jobs; a leader waiting out its window waits on
`_arrivals`). From outside, and each queue-level scenario also against the stage as it was before
the change (one shared condition, notify_all), loaded from git under another module name, so a
failure can be told apart as the change's or as older.

What must hold, whatever the schedule: every caller returns; every job is handled exactly once,
in a group of at most max_size, in the order queued, one group at a time; a caller returns only
once its jobs are taken; a handler's error (BaseException included) settles its group's jobs and
leaves no caller hanging; a leader's window closes as soon as its group is full; the follow-up
work of every group that did not fail is returned to exactly one caller.

Schedules are forced, not hoped for: the first group's handler is held until released, callers
are queued one at a time (GroupQueue.waiting), and a caller that must be interrupted or held
while it waits is the main thread, sent SIGUSR1 while it waits inside Condition.wait; its signal
handler runs there (inside the lock acquisition the wait blocks in), and may let other threads
move on before it returns or raises. One scenario interrupts a worker thread instead, with an
asynchronous exception (PyThreadState_SetAsyncExc) that fires as soon as it wakes.

The real users are exercised too: Posts through a real Poster and mapper (mapping stage with a
window, writing stage without), and the dispatcher's answer groups (window 0, at most 8 calls),
on SQLite and PostgreSQL."""

from __future__ import annotations

import ctypes
import importlib.util
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pytest
from sqlalchemy import event
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.mapper_client import MapperClient
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer import group_commit, posting
from xerolink_poster.service_layer.dispatch.answer_groups import MAX_CALLS, AnswerGroups
from xerolink_poster.service_layer.posting import GroupSettings, Poster
from xerolink_poster.service_layer.posting_values import PostOutcome

from tests.attack.test_answers_as_values_attacks import (
    ACTOR,
    HOLDER,
    _created,
    _entry,
    _fill,
    _invoice,
    _link,
    _read,
    _uuid,
)
from tests.fixtures.poster import accepting_poster

REPO = Path(__file__).resolve().parents[2]
CHANGE = "aa7ec86"
SOURCE = "services/poster/xerolink_poster/service_layer/group_commit.py"
HANG = 15.0  # seconds a join waits before a caller is taken to wait for ever


def _load_before_change() -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{CHANGE}~1:{SOURCE}"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "notify_all" in source and "_followers" not in source, "not the stage as it was before the change"
    name = "group_commit_before_aa7ec86"
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


BEFORE = _load_before_change()
IMPLS = {"changed": group_commit, "before": BEFORE}


@pytest.fixture(params=["changed", "before"])
def impl(request: pytest.FixtureRequest) -> ModuleType:
    return IMPLS[request.param]


# -- helpers ----------------------------------------------------------------------------------------


class Interrupt(BaseException):
    """Like KeyboardInterrupt: not an Exception."""


class GroupFailed(Exception):
    """What `failed` turns a handler's error into, so a caller's future never re-raises a
    BaseException in a test thread."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


def _until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@contextmanager
def _on_sigusr1(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    assert threading.current_thread() is threading.main_thread(), "signals are handled in the main thread"
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _signal_main() -> None:
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)


def _raise_in(thread: threading.Thread, exc_type: type[BaseException]) -> None:
    """An asynchronous exception, raised in `thread` the next time it runs Python code."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident or 0), ctypes.py_object(exc_type))
    assert done == 1, done


class Recorder:
    """A handler for a GroupQueue of payloads: records each group (in handling order), checks one
    group at a time and that its jobs are marked taken, settles each job with its payload and
    returns the payloads as follow-up work. The first group is held until `release` while
    `hold_first`; `fail` says what to raise for a group, if anything."""

    def __init__(
        self, hold_first: bool = True, fail: Callable[[list[Any]], BaseException | None] = lambda _: None
    ) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.hold_first = hold_first
        self.fail = fail
        self.groups: list[list[Any]] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._active = 0

    def __call__(self, group: list[Any]) -> list[Any]:
        with self._lock:
            self._active += 1
            if self._active > 1:
                self.problems.append("two groups handled at once")
            self.groups.append([j.payload for j in group])
            if not all(j.taken for j in group):
                self.problems.append(f"a group handled before its jobs were marked taken: {self.groups[-1]}")
        try:
            if self.hold_first and not self.entered.is_set():
                self.entered.set()
                if not self.release.wait(30):
                    self.problems.append("the first group was never released")
            error = self.fail([j.payload for j in group])
            if error is not None:
                raise error
            for job in group:
                job.settle(job.payload)
            return [j.payload for j in group]
        finally:
            with self._lock:
                self._active -= 1

    @property
    def handled(self) -> list[Any]:
        return [p for g in self.groups for p in g]


def _queue(
    impl: ModuleType, handler: Callable[[list[Any]], list[Any]], window: float = 0.0, max_size: int = 256
) -> Any:
    return impl.GroupQueue("attack", handler, GroupFailed, window, max_size)


class Caller:
    """One caller of queue.run in a thread of its own: what run returned or raised, and whether
    its jobs were all taken when it returned."""

    def __init__(self, impl: ModuleType, queue: Any, payloads: Sequence[Any], start: bool = True) -> None:
        self.jobs = [impl.Job(p, Future()) for p in payloads]
        self.queue = queue
        self.returned: list[Any] | None = None
        self.raised: BaseException | None = None
        self.taken_on_return: bool | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        if start:
            self.thread.start()

    def _run(self) -> None:
        try:
            self.returned = self.queue.run(self.jobs)
            self.taken_on_return = all(j.taken for j in self.jobs)
        except BaseException as exc:
            self.raised = exc

    def start(self) -> Caller:
        self.thread.start()
        return self

    def join(self, seconds: float = HANG) -> bool:
        """Whether it returned in time."""
        self.thread.join(seconds)
        return not self.thread.is_alive()


def _kick(impl: ModuleType, queue: Any) -> Caller:
    """A new arrival: if nobody leads it leads, and takes every queued job before its own."""
    caller = Caller(impl, queue, ["kick"])
    caller.join()
    return caller


def _outcome(job: Any) -> Any:
    error = job.future.exception(0)
    return ("failed", type(error.cause).__name__) if isinstance(error, GroupFailed) else job.future.result(0)


# -- a caller interrupted while it waits ---------------------------------------------------------------


def test_a_follower_interrupted_once_chosen_to_lead_does_not_strand_the_followers_behind_it(
    impl: ModuleType,
) -> None:
    """Schedule: L leads (its group held); M (the main thread) queues behind it, then F. M gets
    SIGUSR1 while it waits; its handler lets L finish, waits until L is gone (L has handed the
    stage to the first follower with untaken jobs: M), then raises, as a KeyboardInterrupt
    would. M leaves without leading. F must still be led: its job must be handled and F must
    return. Nothing else arrives."""
    handler = Recorder()
    queue = _queue(impl, handler, max_size=1)
    leader = Caller(impl, queue, ["L"])
    assert handler.entered.wait(10), "L never led"
    follower = Caller(impl, queue, ["F"], start=False)
    main_jobs = [impl.Job("M", Future())]

    def arrange() -> None:
        _until(lambda: queue.waiting == 1, "M queued")
        follower.start()
        _until(lambda: queue.waiting == 2, "F queued")
        _signal_main()

    def interrupted(_signum: int, _frame: FrameType | None) -> None:
        handler.release.set()
        assert leader.join(10), "L never finished"
        raise Interrupt("Ctrl-C while waiting behind a group")

    with _on_sigusr1(interrupted):
        _thread(arrange)
        with pytest.raises(Interrupt):
            queue.run(main_jobs)

    stranded = not follower.join()
    left = queue.waiting
    if stranded:
        _kick(impl, queue)  # a new arrival leads and frees F, so no thread is left behind
        follower.join()
    assert not stranded, (
        f"F waits for ever: the stage was handed to M, which left without leading; {left} jobs queued, nobody leads"
    )
    assert follower.taken_on_return and _outcome(follower.jobs[0]) == "F"
    assert sorted(Counter(handler.handled).items()) == [("F", 1), ("L", 1), ("M", 1)]
    assert not handler.problems, handler.problems


def test_a_worker_follower_hit_by_an_asynchronous_exception_as_it_is_woken_to_lead_strands_no_one(
    impl: ModuleType,
) -> None:
    """As above with worker threads: M's pending asynchronous exception fires when L's hand-off
    wakes it, before it takes the stage. F, queued behind M, must be led anyway."""
    handler = Recorder()
    queue = _queue(impl, handler, max_size=1)
    leader = Caller(impl, queue, ["L"])
    assert handler.entered.wait(10), "L never led"
    middle = Caller(impl, queue, ["M"])
    _until(lambda: queue.waiting == 1, "M queued")
    follower = Caller(impl, queue, ["F"])
    _until(lambda: queue.waiting == 2, "F queued")
    _raise_in(middle.thread, Interrupt)  # pending: M is blocked in the lock its condition waits on
    handler.release.set()
    assert leader.join(), "L never finished"
    assert middle.join(), "M never woke"
    assert isinstance(middle.raised, Interrupt), (middle.raised, middle.returned)

    stranded = not follower.join()
    if stranded:
        _kick(impl, queue)
        follower.join()
    assert not stranded, "F waits for ever: M was woken to lead, was interrupted, and nobody else was woken"
    assert sorted(Counter(handler.handled).items()) == [("F", 1), ("L", 1), ("M", 1)]


def test_a_follower_interrupted_before_its_turn_leaves_and_its_jobs_are_still_handled_once(
    impl: ModuleType,
) -> None:
    """M (main thread, two jobs) is interrupted while L's group is still held. Its jobs stay
    queued; L finishes and F, queued behind M, leads and takes M's jobs before its own: each is
    handled once, nobody hangs, no group is larger than max_size."""
    handler = Recorder()
    queue = _queue(impl, handler, max_size=2)
    leader = Caller(impl, queue, ["L"])
    assert handler.entered.wait(10)
    follower = Caller(impl, queue, ["F"], start=False)
    main_jobs = [impl.Job("M1", Future()), impl.Job("M2", Future())]

    def arrange() -> None:
        _until(lambda: queue.waiting == 2, "M queued")
        follower.start()
        _until(lambda: queue.waiting == 3, "F queued")
        _signal_main()

    def interrupted(_signum: int, _frame: FrameType | None) -> None:
        raise Interrupt("Ctrl-C while waiting behind a group")

    with _on_sigusr1(interrupted):
        _thread(arrange)
        with pytest.raises(Interrupt):
            queue.run(main_jobs)
    handler.release.set()
    assert leader.join() and follower.join(), "a caller waits for ever after another was interrupted"
    assert handler.groups == [["L"], ["M1", "M2"], ["F"]]
    assert [_outcome(j) for j in main_jobs] == ["M1", "M2"]
    assert follower.returned == ["M1", "M2", "F"]  # F led both groups and carries their follow-ups
    assert not handler.problems, handler.problems


def test_a_leader_interrupted_in_its_window_hands_the_stage_on_and_the_next_window_closes_when_full(
    impl: ModuleType,
) -> None:
    """The main thread leads with a 30 s window and max_size 4; F1 and F2 queue (3 of 4), then
    SIGUSR1 interrupts the leader inside its window wait. F1 must lead next and wait out its own
    window, which must close as soon as F3 arrives and fills the group: all return long before
    the window would end, the leader's job handled once by F1's group."""
    handler = Recorder(hold_first=False)
    queue = _queue(impl, handler, window=30.0, max_size=4)
    f1, f2, f3 = (Caller(impl, queue, [name], start=False) for name in ("F1", "F2", "F3"))
    main_jobs = [impl.Job("L", Future())]

    def arrange() -> None:
        _until(lambda: queue.waiting == 1, "L leading")
        f1.start()
        _until(lambda: queue.waiting == 2, "F1 queued")
        f2.start()
        _until(lambda: queue.waiting == 3, "F2 queued")
        _signal_main()

    def interrupted(_signum: int, _frame: FrameType | None) -> None:
        raise Interrupt("Ctrl-C in the window")

    with _on_sigusr1(interrupted):
        _thread(arrange)
        with pytest.raises(Interrupt):
            queue.run(main_jobs)
    assert handler.groups == []
    f3.start()
    done = [c.join(HANG) for c in (f1, f2, f3)]
    if not all(done):
        _kick(impl, queue)
    assert all(done), "a window did not close when its group filled, or nobody took the stage after the leader"
    assert handler.groups == [["L", "F1", "F2", "F3"]]
    assert _outcome(main_jobs[0]) == "L"
    assert not handler.problems, handler.problems


# -- a follower woken to lead while a new arrival takes the lead first -----------------------------------


def test_a_follower_woken_to_lead_finds_a_new_arrival_leading_and_is_still_served(impl: ModuleType) -> None:
    """L leads a full group of 4 (window 30 s, max_size 4), held. M (main thread) and F queue.
    M's SIGUSR1 handler lets L finish (L hands the stage to M) and, before M can take it, has N
    arrive: N finds the stage idle, leads, and waits out its window with 3 of 4 queued. Then M
    goes back to waiting. G arrives and fills N's group: the window closes at once, and M, F, N
    and G all return with their jobs handled once in one group."""
    handler = Recorder()
    queue = _queue(impl, handler, window=30.0, max_size=4)
    leader = Caller(impl, queue, ["L1", "L2", "L3", "L4"])
    assert handler.entered.wait(10), "L never led"
    follower = Caller(impl, queue, ["F"], start=False)
    newcomer = Caller(impl, queue, ["N"], start=False)
    main_jobs = [impl.Job("M", Future())]
    seen: list[str] = []

    def arrange() -> None:
        _until(lambda: queue.waiting == 1, "M queued")
        follower.start()
        _until(lambda: queue.waiting == 2, "F queued")
        _signal_main()

    def hold_main(_signum: int, _frame: FrameType | None) -> None:
        handler.release.set()
        assert leader.join(10), "L never finished"
        newcomer.start()
        # N queued its job and took the stage in the same hold of the lock.
        _until(lambda: queue.waiting == 3, "N leading")
        seen.append("N leads")

    with _on_sigusr1(hold_main):
        _thread(arrange)
        # G fills N's group once M is back to waiting (or has returned).
        filler = Caller(impl, queue, ["G"], start=False)

        def fill_once_n_leads() -> None:
            _until(lambda: bool(seen), "N leading", 20)
            time.sleep(0.05)
            filler.start()

        _thread(fill_once_n_leads)
        returned = queue.run(main_jobs)

    done = [c.join() for c in (leader, follower, newcomer, filler)]
    if not all(done):
        _kick(impl, queue)
    assert all(done), "a caller waits for ever"
    assert handler.groups == [["L1", "L2", "L3", "L4"], ["M", "F", "N", "G"]]
    assert all(j.taken for j in main_jobs)
    # The second group's follow-ups went to whoever led it (N here; before the change F, woken
    # with everyone, may take the stage first), and to nobody else.
    follow_ups = [returned, follower.returned, newcomer.returned, filler.returned]
    assert sorted(follow_ups, key=len) == [[], [], [], ["M", "F", "N", "G"]], follow_ups
    assert [_outcome(j) for j in main_jobs] == ["M"]
    assert not handler.problems, handler.problems


# -- partially taken groups, errors, handlers calling back ------------------------------------------------


def test_callers_submitting_several_jobs_are_served_in_order_across_partly_taken_groups(impl: ModuleType) -> None:
    """L (3 jobs), M (3 jobs), F (1 job), max_size 2, the first group held. The groups follow
    the queue: [L1 L2] [L3 M1] [M2 M3] [F1]; M, partly taken by L's last group, must lead its
    rest; F must then be led; every caller returns with its jobs taken and each group's
    follow-ups come back to exactly one caller."""
    handler = Recorder()
    queue = _queue(impl, handler, max_size=2)
    leader = Caller(impl, queue, ["L1", "L2", "L3"])
    assert handler.entered.wait(10)
    middle = Caller(impl, queue, ["M1", "M2", "M3"])
    _until(lambda: queue.waiting == 4, "M queued")
    follower = Caller(impl, queue, ["F1"])
    _until(lambda: queue.waiting == 5, "F queued")
    handler.release.set()
    done = [c.join() for c in (leader, middle, follower)]
    if not all(done):
        _kick(impl, queue)
    assert all(done), "a caller waits for ever"
    assert handler.groups == [["L1", "L2"], ["L3", "M1"], ["M2", "M3"], ["F1"]]
    assert all(c.taken_on_return for c in (leader, middle, follower))
    follow_ups = [p for c in (leader, middle, follower) for p in c.returned or []]
    assert sorted(follow_ups) == sorted(handler.handled)
    assert leader.returned == ["L1", "L2", "L3", "M1"]


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt, SystemExit, GeneratorExit, Interrupt, ValueError], ids=lambda e: e.__name__
)
def test_a_handler_raising_anything_fails_only_its_group_and_the_stage_goes_on(
    impl: ModuleType, error: type[BaseException]
) -> None:
    """L leads [L] (held); M, F, G queue; max_size 2. The group [M F] raises `error`. M and F
    must each get that error, L and G their results; every caller returns and the stage still
    works afterwards."""
    handler = Recorder(fail=lambda payloads: error("handler failed") if "M" in payloads else None)
    queue = _queue(impl, handler, max_size=2)
    callers = [Caller(impl, queue, ["L"])]
    assert handler.entered.wait(10)
    for n, name in enumerate(["M", "F", "G"], start=1):
        callers.append(Caller(impl, queue, [name]))
        _until(lambda n=n: queue.waiting == n, f"{name} queued")  # type: ignore[misc]
    handler.release.set()
    done = [c.join() for c in callers]
    if not all(done):
        _kick(impl, queue)
    assert all(done), "a caller waits for ever after a handler raised"
    assert handler.groups == [["L"], ["M", "F"], ["G"]]
    outcomes = [_outcome(c.jobs[0]) for c in callers]
    assert outcomes == ["L", ("failed", error.__name__), ("failed", error.__name__), "G"]
    assert all(c.raised is None for c in callers), [c.raised for c in callers]
    after = _kick(impl, queue)
    assert after.returned == ["kick"]


def test_a_handler_that_queues_more_work_from_another_thread_has_it_led_after_it(impl: ModuleType) -> None:
    """The first group's handler starts a caller of the same stage in another thread and returns
    once it is queued: that caller must be led when the leader is done."""
    extra: list[Caller] = []
    queue: Any = None

    def handle(group: list[Any]) -> list[Any]:
        if not extra:
            extra.append(Caller(impl, queue, ["more"]))
            _until(lambda: queue.waiting == 1, "more queued")
        for job in group:
            job.settle(job.payload)
        return []

    queue = _queue(impl, handle, max_size=4)
    first = Caller(impl, queue, ["first"])
    assert first.join() and extra and extra[0].join(), "work queued by a handler was never led"
    assert _outcome(extra[0].jobs[0]) == "more"


def test_a_handler_calling_run_on_its_own_stage_behaves_as_before_the_change(impl: ModuleType) -> None:
    """A handler that calls run on its own stage, from the leader's thread, waits behind itself.
    Not a defect of the change if the stage did the same before it: this compares the two."""

    def reenters(module: ModuleType) -> bool:
        queue: Any = None

        def handle(group: list[Any]) -> list[Any]:
            if group[0].payload == "outer":
                queue.run([module.Job("inner", Future())])
            for job in group:
                job.settle(job.payload)
            return []

        queue = _queue(module, handle)
        return Caller(module, queue, ["outer"]).join(3)

    assert reenters(impl) == reenters(BEFORE)


# -- many threads, random schedules ---------------------------------------------------------------------


def _hammer(impl: ModuleType, seed: int, threads: int, rounds: int, max_size: int, window: float) -> None:
    """`threads` callers, each calling run `rounds` times with 1 to 4 jobs, random pauses; the
    handler pauses at random and raises (Exception or BaseException) for some groups, sometimes
    after settling part of them. Checks every invariant of the stage."""
    rng = random.Random(seed)
    failing = {n: rng.random() for n in range(threads * rounds * 4)}
    lock = threading.Lock()
    groups: list[tuple[list[Any], bool]] = []
    problems: list[str] = []
    active = [0]
    errors: list[type[BaseException]] = [KeyboardInterrupt, SystemExit, ValueError, Interrupt]

    def handle(group: list[Any]) -> list[Any]:
        payloads = [j.payload for j in group]
        with lock:
            active[0] += 1
            if active[0] > 1:
                problems.append("two groups at once")
            if len(group) > max_size or not group:
                problems.append(f"group of {len(group)} (max {max_size})")
            if not all(j.taken for j in group):
                problems.append("handled before taken")
        try:
            draw = failing[payloads[0][2]]
            time.sleep(draw * 0.002)
            if draw < 0.12:
                with lock:
                    groups.append((payloads, False))
                if draw < 0.04:
                    group[0].settle(payloads[0])  # settled before the error: keeps its result
                raise errors[int(draw * 100) % len(errors)]("handler failed")
            with lock:
                groups.append((payloads, True))
            for job in group:
                job.settle(job.payload)
            return payloads
        finally:
            with lock:
                active[0] -= 1

    queue = _queue(impl, handle, window=window, max_size=max_size)
    serial = iter(range(threads * rounds * 4))
    serial_lock = threading.Lock()
    follow_ups: list[Any] = []
    submitted: list[list[Any]] = []

    def caller(index: int) -> None:
        local = random.Random(seed * 1000 + index)
        for r in range(rounds):
            with serial_lock:
                jobs = [impl.Job((index, r, next(serial)), Future()) for _ in range(local.choice([1, 1, 1, 2, 3, 4]))]
                submitted.append([j.payload for j in jobs])
            if local.random() < 0.7:
                time.sleep(local.random() * 0.003)
            try:
                returned = queue.run(jobs)
            except BaseException as exc:
                problems.append(f"run raised {exc!r}")
                return
            if not all(j.taken for j in jobs):
                problems.append(f"caller {index} returned before its jobs were taken")
            with lock:
                follow_ups.extend(returned)
            for job in jobs:
                try:
                    job.future.exception(HANG)
                except TimeoutError:
                    problems.append(f"job {job.payload} never settled")

    workers = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    stuck = [i for i, w in enumerate(workers) if w.is_alive()]
    if stuck:
        _kick(impl, queue)
    assert not stuck, f"seed {seed}: callers {stuck} wait for ever; {queue.waiting} jobs queued"
    assert not problems, f"seed {seed}: {problems[:5]}"
    handled = [p for g, _ in groups for p in g]
    every = [p for s in submitted for p in s]
    assert sorted(handled) == sorted(every), f"seed {seed}: a job handled twice or never"
    # One group at a time, in the order queued: each call's jobs are handled together, in order.
    position = {p: i for i, p in enumerate(handled)}
    for jobs in submitted:
        at = [position[p] for p in jobs]
        assert at == list(range(at[0], at[0] + len(at))), f"seed {seed}: {jobs} handled out of order"
    succeeded = [p for g, ok in groups if ok for p in g]
    assert sorted(follow_ups) == sorted(succeeded), f"seed {seed}: follow-up work lost or returned twice"


@pytest.mark.parametrize("max_size", [1, 2, 3, 8])
def test_many_callers_without_a_window_with_random_pauses_and_failing_handlers(impl: ModuleType, max_size: int) -> None:
    for seed in range(12):
        _hammer(impl, seed * 31 + max_size, threads=10, rounds=6, max_size=max_size, window=0.0)


@pytest.mark.parametrize("max_size", [1, 3, 5])
def test_many_callers_with_a_short_window_with_random_pauses_and_failing_handlers(
    impl: ModuleType, max_size: int
) -> None:
    for seed in range(8):
        _hammer(impl, seed * 17 + max_size, threads=8, rounds=5, max_size=max_size, window=0.002)


@pytest.mark.parametrize("max_size", [2, 3, 5])
def test_with_a_long_window_every_group_closes_the_moment_it_is_full(impl: ModuleType, max_size: int) -> None:
    """A 30 s window and callers of random sizes arriving at random moments, the jobs in all a
    multiple of max_size: every group must close full, at once, never on time."""
    for seed in range(6):
        rng = random.Random(seed * 7 + max_size)
        sizes = [rng.randint(1, 2 * max_size) for _ in range(9)]
        sizes.append(max_size - sum(sizes) % max_size)
        handler = Recorder(hold_first=False)
        queue = _queue(impl, handler, window=30.0, max_size=max_size)
        callers = []
        for n, size in enumerate(sizes):
            callers.append(Caller(impl, queue, [(n, k) for k in range(size)]))
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.003)
        done = [c.join(HANG) for c in callers]
        if not all(done):
            for _ in range(max_size):
                _thread(partial(queue.run, [impl.Job("fill", Future())]))
        assert all(done), f"seed {seed}: a window did not close when its group filled; sizes {sizes}"
        assert all(len(g) == max_size for g in handler.groups), (seed, [len(g) for g in handler.groups])
        assert sorted(handler.handled) == sorted(p for c in callers for p in (j.payload for j in c.jobs))
        assert all(c.taken_on_return for c in callers)
        assert not handler.problems, handler.problems


# -- the real users -------------------------------------------------------------------------------------


@pytest.fixture
def poster(database: Database, mapper_target: str) -> Iterator[Poster]:
    mapper = MapperClient(mapper_target)
    poster = accepting_poster(database, mapper, GroupSettings(window=0.002, max_size=3))
    poster.post("firm-1", samples.client_bill(1), actor="caller:attack")  # connection cached, channel up
    yield poster
    mapper.close()


def _use_before(poster: Poster) -> None:
    """The same Poster, its two stages built on the stage as it was before the change."""
    assert poster.mapping is not None and poster.writing is not None
    poster.mapping = BEFORE.GroupQueue(
        "post-mapping", poster._map_group, posting._unexpected, poster.mapping.window, poster.mapping.max_size
    )
    poster.writing = BEFORE.GroupQueue("post-writing", poster._write_group, posting._unexpected, 0.0, 3)


def test_many_posts_at_once_through_a_real_poster_are_each_written_once_in_bounded_groups(poster: Poster) -> None:
    """30 Posts from 30 threads (some the same bill twice), max_size 3, a short mapping window:
    every Post returns its own outcome, no group of either stage exceeds 3, and every Post that
    reached the writer was written once (one link per distinct bill)."""
    records = [100 + i for i in range(24)] + [100, 101, 102, 103, 104, 105]
    barrier = threading.Barrier(len(records))
    outcomes: dict[int, Any] = {}

    def post(i: int) -> None:
        barrier.wait(10)
        try:
            outcomes[i] = poster.post("firm-1", samples.client_bill(records[i]), actor="caller:attack")
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(len(records))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(45)
    assert not [i for i, t in enumerate(threads) if t.is_alive()], "a Post waits for ever"
    assert all(isinstance(o, PostOutcome) for o in outcomes.values()), outcomes
    assert poster.mapping is not None and poster.writing is not None
    assert poster.mapping.largest <= 3 and poster.writing.largest <= 3
    assert poster.mapping.jobs == len(records) + 1 and poster.writing.jobs == len(records) + 1
    by_record: dict[int, set[str]] = {}
    for i, o in outcomes.items():
        by_record.setdefault(records[i], set()).add(o.posting.posting_id if o.posting else "")
    assert all(len(ids) == 1 for ids in by_record.values()), by_record
    assert sum(not o.duplicate for o in outcomes.values()) == len(set(records))


@pytest.mark.parametrize("stage", ["changed", "before"])
def test_a_post_interrupted_while_its_group_waits_to_be_written_strands_no_other_post(
    poster: Poster, database: Database, stage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posts A (thread), B (main thread), C (thread). A's write is held at its first statement;
    B and C are mapped and queue behind it at the writing stage. B gets SIGUSR1: its handler
    lets A's write go, waits for A to return (A hands the writing stage to B), then raises as
    Ctrl-C would. C must still be written and return; nothing else arrives. Each Post reads its
    connection first, as it does on a loaded machine where the cached copy outlives its TTL
    between the fixture's Post and these (a CI run held A at that read, not at its write)."""
    monkeypatch.setattr(posting, "CONNECTION_CACHE_SECONDS", 0.0)
    if stage == "before":
        _use_before(poster)
    writing = poster.writing
    assert writing is not None
    results = _interrupt_the_caller_handed_the_stage(
        database,
        lambda: writing.waiting,
        lambda record: poster.post("firm-1", samples.client_bill(record), actor="caller:attack"),
        "Ctrl-C while the Post waits for its group's write",
    )
    assert isinstance(results["A"], PostOutcome) and isinstance(results["C"], PostOutcome), results


def _answer_entries(database: Database, records: Sequence[int]) -> dict[int, int]:
    built: dict[int, int] = _fill(
        database, lambda uow: {n: _entry(uow, _link(uow, n, "c1" if n % 2 else "c2")) for n in records}
    )
    return built


def _answer(outbox_id: int, record: int) -> Any:
    """Xero created the record's invoice."""
    return _created(outbox_id, [XeroObjectRef(ObjectType.INVOICE, _uuid(record), "inv")], _invoice(record))


def test_answer_groups_of_forty_threads_apply_every_call_once_in_groups_of_at_most_eight(database: Database) -> None:
    """40 calls (one or two answers each) from 40 threads at once through real AnswerGroups:
    each call returns, every link is linked, each call's answers applied once (calls counted
    once), no transaction held more than MAX_CALLS calls."""
    records = list(range(5000, 5060))
    ids = _answer_entries(database, records)
    calls: list[list[Any]] = []
    at = 0
    rng = random.Random(5)
    while at < len(records):
        size = min(rng.choice([1, 1, 2]), len(records) - at)
        calls.append([_answer(ids[r], r) for r in records[at : at + size]])
        at += size
    groups = AnswerGroups(database, HOLDER, ACTOR)
    barrier = threading.Barrier(len(calls))
    outcomes: dict[int, Any] = {}

    def call(i: int) -> None:
        barrier.wait(10)
        try:
            groups.apply(calls[i])
            outcomes[i] = None
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(45)
    assert not [i for i, t in enumerate(threads) if t.is_alive()], "a call waits for ever"
    assert outcomes == {i: None for i in range(len(calls))}
    _transactions, applied, largest = groups.figures
    assert applied == len(calls) and largest <= MAX_CALLS
    assert [_read(database, r, "c1" if r % 2 else "c2").state for r in records] == [LinkState.LINKED] * len(records)


@pytest.mark.parametrize("stage", ["changed", "before"])
def test_an_answer_call_interrupted_once_handed_the_group_strands_no_other_call(database: Database, stage: str) -> None:
    """Calls A (thread), B (main thread), C (thread) through real AnswerGroups. A's transaction is
    held at its first statement; B and C queue. B gets SIGUSR1: its handler lets A commit, waits
    for A to return (A hands the stage to B), then raises. C must still be applied and return."""
    ids = _answer_entries(database, [6001, 6003, 6005, 6007])
    groups = AnswerGroups(database, HOLDER, ACTOR)
    if stage == "before":
        groups._queue = BEFORE.GroupQueue("dispatcher-answers", groups._apply_group, lambda exc: exc, 0.0, MAX_CALLS)
    results = _interrupt_the_caller_handed_the_stage(
        database,
        lambda: groups.waiting,
        lambda record: groups.apply([_answer(ids[record], record)]),
        "Ctrl-C while the call waits for its group",
        records=(6001, 6003, 6005, 6007),
    )
    assert results.get("A") is None and results.get("C") is None, results


def _interrupt_the_caller_handed_the_stage(
    database: Database,
    waiting: Callable[[], int],
    call: Callable[[int], object],
    interruption: str,
    records: tuple[int, int, int, int] = (201, 202, 203, 204),
) -> dict[str, Any]:
    """Callers A (a thread), B (the main thread) and C (a thread) call with the first three
    records. A's transaction is held at its first statement; B and C queue behind it. B gets
    SIGUSR1: its handler lets A go, waits for A to return (A hands the stage to B), then raises as
    Ctrl-C would. C must still be handled and return with nothing else arriving; if it waits, a
    fourth caller frees it and the test fails. Returns A's and C's results (or errors)."""
    first, second, third, fourth = records
    held, go = threading.Event(), threading.Event()
    leader_ident: list[int] = []

    def hold(conn: Any, *_: Any) -> None:
        # Only a statement of A's write transaction: on PostgreSQL the read engine is the write
        # engine with other options and shares its listeners, and A reads its connection first
        # when the poster's cached copy is older than its TTL (a loaded machine).
        mine = leader_ident and threading.get_ident() == leader_ident[0]
        if conn.engine is database.write and mine and not held.is_set():
            held.set()
            go.wait(30)

    results: dict[str, Any] = {}

    def caller(name: str, record: int) -> Callable[[], None]:
        def run() -> None:
            if name == "A":
                leader_ident.append(threading.get_ident())
            try:
                results[name] = call(record)
            except BaseException as exc:
                results[name] = exc

        return run

    event.listen(database.write, "before_cursor_execute", hold)
    try:
        a = threading.Thread(target=caller("A", first), daemon=True)
        a.start()
        assert held.wait(20), "A's transaction never started"
        c = threading.Thread(target=caller("C", third), daemon=True)

        def arrange() -> None:
            _until(lambda: waiting() == 1, "B queued", 20)
            c.start()
            _until(lambda: waiting() == 2, "C queued", 20)
            _signal_main()

        def interrupted(_signum: int, _frame: FrameType | None) -> None:
            go.set()
            a.join(20)
            assert not a.is_alive(), "A never returned"
            raise Interrupt(interruption)

        with _on_sigusr1(interrupted):
            _thread(arrange)
            with pytest.raises(Interrupt):
                call(second)
        c.join(HANG)
        stranded = c.is_alive()
        if stranded:
            caller("D", fourth)()  # a later caller leads and frees C
            c.join(HANG)
    finally:
        go.set()
        event.remove(database.write, "before_cursor_execute", hold)
    assert not stranded, "C waits for ever: the stage was handed to B, which was interrupted"
    return results
