"""Several Xero calls' answers applied in one transaction: group commit, as Posts are written
(service_layer/group_commit.py). The first job to find no group being applied applies its own
answers and those of every job that queued meanwhile, in its own thread; each job returns only
once the commit holding its rows is done, or raises its own call's error.

A transaction costs the same statements whether it applies one call's answers or several
(outcomes.apply_batch reads and writes a batch by key), and on SQLite a commit that syncs the file.
A group that fails before its commit is applied again call by call, each in a transaction of
its own, so one call's failure stays its own job's; one that fails at the commit (which may have
gone through) fails each of its calls, as a call alone would. Calls that answer for the same
entry never share a group: the later one must find the entry as the earlier one left it (no
longer held, its answer dropped)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.service_layer.group_commit import GroupQueue, Job
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction, writing_here

log = logging.getLogger(__name__)
# At most this many calls' answers a transaction: 400 entries at 50 a call, so a group holds
# SQLite's one writer about as long as a Post's group does, not the whole backlog's worth.
MAX_CALLS = 8


class AnswersMayBeCommitted(Exception):
    """Applying a call's answers failed at the commit, which may have gone through (a connection
    lost before the database's reply): the entries may be handed back, and held by another job."""


def _at_commit(exc: BaseException, committing: list[bool]) -> BaseException:
    if committing and isinstance(exc, Exception):
        wrapped = AnswersMayBeCommitted(f"the answers' commit may have gone through: {type(exc).__name__}: {exc}")
        wrapped.__cause__ = exc
        return wrapped
    return exc


class AnswerGroups:
    def __init__(self, db: Database, holder: str, actor: str, max_calls: int = MAX_CALLS) -> None:
        if max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, not {max_calls}")
        self.db = db
        self.holder = holder
        self.actor = actor
        self._queue: GroupQueue[Sequence[ElementResult], None, None] = GroupQueue(
            "dispatcher-answers", self._apply_group, lambda exc: exc, 0.0, max_calls
        )
        self._counted = threading.Lock()
        self._transactions = self._calls = self._largest = 0

    def apply(self, results: Sequence[ElementResult]) -> None:
        """Applies one call's answers; returns once they are committed."""
        if writing_here(self.db):
            # The group's transaction would wait for the writer this thread holds, and this
            # thread for the group: it fails at once, as a unit of work opened inside another.
            raise RuntimeError("answers applied inside a write unit of work on the same thread")
        job: Job[Sequence[ElementResult], None] = Job(results, Future())
        self._queue.run([job])
        job.future.result()

    @property
    def waiting(self) -> int:
        """Calls whose answers wait for the group being applied."""
        return self._queue.waiting

    @property
    def figures(self) -> tuple[int, int, int]:
        """(transactions committed, calls' answers they applied, most calls in one), for the bench."""
        with self._counted:
            return self._transactions, self._calls, self._largest

    def _apply_group(self, jobs: list[Job[Sequence[ElementResult], None]]) -> list[None]:
        for together in _apart_where_entries_repeat(jobs):
            if len(together) > 1:
                committing: list[bool] = []
                try:
                    self._write([r for job in together for r in job.payload], len(together), committing)
                except BaseException as exc:
                    if committing:
                        # It failed at the commit, which may have gone through: applied again,
                        # the answers could be written over what this poster did since (a claim
                        # of an entry's next operation). Each call fails, as a call alone would.
                        for job in together:
                            job.settle(_at_commit(exc, committing))
                        continue
                    log.warning("a group of %d calls' answers failed; applying them call by call", len(together))
                else:
                    for job in together:
                        job.settle(None)
                    continue
            for job in together:
                alone: list[bool] = []
                try:
                    self._write(job.payload, 1, alone)
                except BaseException as exc:  # that call's alone, whatever it is
                    job.settle(_at_commit(exc, alone))
                else:
                    job.settle(None)
        return []

    def _write(self, results: Sequence[ElementResult], calls: int, committing: list[bool]) -> None:
        """One transaction; `committing` is set once the answers are written and the commit is
        next (a retried attempt clears it)."""

        def work(uow: UnitOfWork) -> None:
            committing.clear()
            apply_batch(uow, results, self.holder, self.actor, now_us())
            committing.append(True)

        run_in_transaction(self.db, work)
        with self._counted:
            self._transactions += 1
            self._calls += calls
            self._largest = max(self._largest, calls)


def _apart_where_entries_repeat(
    jobs: list[Job[Sequence[ElementResult], None]],
) -> list[list[Job[Sequence[ElementResult], None]]]:
    """The jobs in order, cut into runs in which no entry is answered twice."""
    runs: list[list[Job[Sequence[ElementResult], None]]] = [[]]
    seen: set[int] = set()
    for job in jobs:
        ids = {r.outbox_id for r in job.payload}
        if seen & ids:
            runs.append([])
            seen = set()
        runs[-1].append(job)
        seen |= ids
    return [run for run in runs if run]
