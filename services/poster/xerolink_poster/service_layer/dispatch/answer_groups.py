"""Several Xero calls' answers applied in one transaction: group commit, as Posts are written
(service_layer/group_commit.py). The first job to find no group being applied applies its own
answers and those of every job that queued meanwhile, in its own thread; each job returns only
once the commit holding its rows is done, or raises its own call's error.

A transaction costs the same statements whether it applies one call's answers or several
(outcomes.apply_batch reads and writes a batch by key), and on SQLite a commit that syncs the file.
A group that fails is applied again call by call, each in a transaction of its own, so one
call's failure stays its own job's. Calls that answer for the same entry never share a group:
the later one must find the entry as the earlier one left it (no longer held, its answer dropped)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.service_layer.group_commit import GroupQueue, Job
from xerolink_poster.service_layer.outcomes import ElementResult, apply_batch
from xerolink_poster.service_layer.unit_of_work import run_in_transaction

log = logging.getLogger(__name__)
# At most this many calls' answers a transaction: 400 entries at 50 a call, so a group holds
# SQLite's one writer about as long as a Post's group does, not the whole backlog's worth.
MAX_CALLS = 8


class AnswerGroups:
    def __init__(self, db: Database, holder: str, actor: str, max_calls: int = MAX_CALLS) -> None:
        self.db = db
        self.holder = holder
        self.actor = actor
        self._queue: GroupQueue[Sequence[ElementResult], None, None] = GroupQueue(
            "dispatcher-answers", self._apply_group, lambda exc: exc, 0.0, max_calls
        )

    def apply(self, results: Sequence[ElementResult]) -> None:
        """Applies one call's answers; returns once they are committed."""
        job: Job[Sequence[ElementResult], None] = Job(results, Future())
        self._queue.run([job])
        job.future.result()

    @property
    def waiting(self) -> int:
        """Calls whose answers wait for the group being applied."""
        return self._queue.waiting

    @property
    def figures(self) -> tuple[int, int, int]:
        """(transactions of groups, calls applied in them, most calls in one), for the bench."""
        return self._queue.groups, self._queue.jobs, self._queue.largest

    def _apply_group(self, jobs: list[Job[Sequence[ElementResult], None]]) -> list[None]:
        for together in _apart_where_entries_repeat(jobs):
            if len(together) > 1:
                try:
                    self._write([r for job in together for r in job.payload])
                except Exception:
                    log.warning("a group of %d calls' answers failed; applying them call by call", len(together))
                else:
                    for job in together:
                        job.settle(None)
                    continue
            for job in together:
                try:
                    self._write(job.payload)
                except Exception as exc:
                    job.settle(exc)
                else:
                    job.settle(None)
        return []

    def _write(self, results: Sequence[ElementResult]) -> None:
        run_in_transaction(self.db, lambda uow: apply_batch(uow, results, self.holder, self.actor, now_us()))


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
