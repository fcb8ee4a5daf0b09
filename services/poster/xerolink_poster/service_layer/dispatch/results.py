"""What a job writes back about its entries: created or refused elements, and retries (each
attempt counted and backed off, or waiting without counting), each write one short transaction
that skips entries no longer claimed by this poster."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.domain.retry import backoff_delay
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer import drift_snapshots, outcomes
from xerolink_poster.service_layer.dispatch.answer_groups import AnswersMayBeCommitted
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

US = 1_000_000
T = TypeVar("T")
# How often work of an unusable connection looks again whether it was reconnected.
CONNECTION_RECHECK_SECONDS = 5.0
# After a call went unanswered, its entries wait this many HTTP timeouts before the look-up.
NO_ANSWER_SETTLE_TIMEOUTS = 2
# The reasons after which a call may still be in flight at Xero: no answer (or a gateway's 504),
# and a job that failed, which does not know whether its call went out or was answered.
_SETTLE_AFTER = frozenset({Reason.XERO_NO_ANSWER, Reason.DISPATCH_ERROR})


@dataclass(frozen=True)
class Retry:
    """Entries back to the queue for one reason (Results.retry_together)."""

    works: Sequence[Work]
    uncertain: bool
    reason: str
    message: str
    at: float | None = None
    count: bool = True
    alone: bool = False

    @classmethod
    def after_lookup(
        cls, works: Sequence[Work], uncertain: bool, reason: str, message: str, rate_limited: bool, blocked_until: float
    ) -> Retry:
        """After a read that failed: a 429 waits out the tenant's block without using up an attempt."""
        return cls(works, uncertain, reason, message, blocked_until if rate_limited else None, not rate_limited)


def _held_for_their_connections(uow: UnitOfWork, retries: Sequence[Retry]) -> list[Retry]:
    """The retries, with the entries of a connection that is no longer connected (Xero refused its
    tokens, or answered 403 once the organisation's connection to the app was removed in Xero)
    waiting for it instead, not counted as an attempt: what failed was the connection, which a new
    consent restores, not the entry (docs/connections.md). Read in the transaction that writes them,
    so a connection marked while the call ran is seen."""
    states: dict[str, str] = {}
    for cid in {w.connection.connection_id for r in retries for w in r.works}:
        row = uow.connections.get_connection(cid)
        states[cid] = row.state if row is not None else ConnectionState.CONNECTED
    if all(state == ConnectionState.CONNECTED for state in states.values()):
        return list(retries)
    out: list[Retry] = []
    for r in retries:
        usable = [w for w in r.works if states[w.connection.connection_id] == ConnectionState.CONNECTED]
        if usable:
            out.append(dataclasses.replace(r, works=usable))
        for state in sorted({states[w.connection.connection_id] for w in r.works} - {ConnectionState.CONNECTED}):
            held = [w for w in r.works if states[w.connection.connection_id] == state]
            out.append(connection_wait(held, state, r.uncertain, r.message, r.alone))
    return out


def connection_wait(
    works: Sequence[Work], state: str, uncertain: bool = False, detail: str = "", alone: bool = False
) -> Retry:
    """Entries of a connection in `state` (not connected) wait for it to be connected again, not
    counted as an attempt; `detail` says what failed meanwhile."""
    why = f" ({detail})" if detail else ""
    return Retry(
        works,
        uncertain,
        f"CONNECTION_{state.upper()}",
        f"the connection is {state.replace('_', ' ')}{why}: connect the organisation again (ConnectOrganisation); "
        "the work is sent then",
        time.time() + CONNECTION_RECHECK_SECONDS,
        count=False,
        alone=alone,
    )


class Results:
    def __init__(self, shared: Shared, settings: DispatcherSettings) -> None:
        self.d = shared
        self.settings = settings
        self.random = random.Random()

    @staticmethod
    def preload(uow: UnitOfWork, works: Sequence[Work]) -> None:
        """One query per table for a whole batch; the per-entry gets below then cost no SQL."""
        uow.outbox.preload_outbox([w.row.id for w in works])
        uow.links.preload_links([w.link.id for w in works])
        uow.links.preload_postings([w.link.posting_id for w in works])

    @staticmethod
    def handed_back(works: Iterable[Work], commit_unknown: bool = False) -> None:
        """Marks entries whose outcome or retry is committed (or may be: `commit_unknown`): the
        claim is no longer this job's. Matched by poster name alone, a job failing later took over
        an entry another job of the poster had claimed since, and both sent it
        (tenant_loop.TenantWorker._serve)."""
        for w in works:
            w.handed_back = True
            w.commit_unknown = w.commit_unknown or commit_unknown

    def handing_back(
        self,
        works: Sequence[Work],
        write: Callable[[UnitOfWork], T],
        kept: Callable[[T], Collection[int]] = lambda _: (),
    ) -> T:
        """Runs `write`, which writes the outcome or retry of `works`, in one transaction, and marks
        them handed back once it has committed, or once it failed at the commit, which may have
        gone through (a connection lost before the database's reply): left unmarked, a job's failure
        voided the claim another job had made since. `kept`: the `id()`s of the works a committed
        write left with the job. A write that failed before its commit marks nothing."""
        committing: list[bool] = []

        def work(uow: UnitOfWork) -> T:
            committing.clear()  # an attempt run again after a conflict starts over
            result = write(uow)
            committing.append(True)
            return result

        try:
            result = run_in_transaction(self.d.db, work)
        except BaseException:
            if committing:
                self.handed_back(works, commit_unknown=True)
            raise
        left = kept(result)
        self.handed_back(w for w in works if id(w) not in left)
        return result

    def reload(self, uow: UnitOfWork, w: Work) -> tuple[OutboxRow | None, LinkRow | None]:
        """The entry and its link as stored now; (None, None) when this job no longer holds it:
        not this poster's, or claimed since by another of its jobs (its claim's end differs)."""
        row = uow.outbox.get_outbox(w.row.id)
        if not outcomes.still_ours(row, self.d.holder):
            return None, None
        assert row is not None
        if w.claims and row.lease_until_us not in w.claims:
            return None, None
        return row, uow.links.get_link_by_id(w.link.id)

    def write(self, created: list[tuple[Work, list[XeroObjectRef]]], rejected: list[tuple[Work, list[str]]]) -> None:
        """Applies a call's per-element answers, a few statements for the whole batch (see
        outcomes.apply_batch), in one short transaction with the answers of other calls applied
        at the same time (answer_groups.py); returns once they are committed."""
        results = [
            outcomes.ElementResult(
                w.row.id,
                created=objects[0],
                also=tuple(objects[1:]),
                documents=drift_snapshots.documents_of(objects, w.answered) if w.answered is not None else (),
                note=w.number_note,
                claims=w.claims,
            )
            for w, objects in created
        ]
        results += [
            outcomes.ElementResult(
                w.row.id,
                rejected=(
                    "Xero refused it; fix what Xero says in Actionstep or in Xero, then post it again",
                    messages,
                ),
                claims=w.claims,
            )
            for w, messages in rejected
        ]
        answered = [w for w, _ in created] + [w for w, _ in rejected]
        try:
            self.d.answers.apply(results)
        except AnswersMayBeCommitted:
            # Perhaps written, and the entries handed back: the job's failure leaves them alone.
            # If the commit did not go through they stay claimed until the tenant's claims are
            # voided at its next taking, then are looked up (marked uncertain before the call).
            self.handed_back(answered, commit_unknown=True)
            raise
        self.handed_back(answered)
        self.d.changes.notify()

    def refused_before_sending(self, works: Sequence[Work]) -> None:
        """Xero refused these entries explicitly, so nothing of them was created: their uncertain
        mark (set before the call) goes, and they are sent again in this job, not counted."""

        def write(uow: UnitOfWork) -> None:
            self.preload(uow, works)
            for w in works:
                row, _ = self.reload(uow, w)
                if row is not None and row.uncertain:
                    row.uncertain = False
                    row.lookup_hint = ""
                    uow.outbox.save(row)

        run_in_transaction(self.d.db, write)

    def reject(self, works: list[Work], messages: list[str]) -> None:
        self.write([], [(w, [m]) for w, m in zip(works, messages, strict=True)])

    def fail(self, works: Sequence[Work], reason: str, message: str) -> None:
        """Fails the entries for good, before anything of them was sent, with `reason`; a repost
        (after the firm did what `message` says) queues them again."""

        def write(uow: UnitOfWork) -> None:
            now = now_us()
            self.preload(uow, works)
            for w in works:
                row, link = self.reload(uow, w)
                if row is not None and link is not None:
                    outcomes.record_rejected(
                        uow, row, link, reason, message, [], now, self.d.actor, outcome_unknown=row.uncertain
                    )

        self.handing_back(works, write)
        self.d.changes.notify()

    def retry(
        self,
        works: Sequence[Work],
        uncertain: bool,
        reason: str,
        message: str,
        at: float | None = None,
        count: bool = True,
        alone: bool = False,
    ) -> None:
        self.retry_together([Retry(works, uncertain, reason, message, at, count, alone)])

    def retry_together(self, retries: Sequence[Retry]) -> None:
        """Entries back to the queue, in one transaction. Those retried together (a call's, a
        job's look-ups') come back at one time: one draw of the jitter, the longest of their
        back-offs, the latest of their waits. Drawn for each entry, and stepped by each one's
        attempts, the entries of one failed call came back over the back-off's width, in as many
        claims, Xero calls and look-ups as there were moments (a call of 20 in 10 to 14).
        Failures still spread: each draws its own.

        `uncertain=False` says the attempt made nothing in Xero. It keeps the mark of an entry
        whose earlier uncertain call this job did not look up (held back, say): cleared, the
        entry was sent again without a look-up, and created twice."""
        if not retries:
            return
        jitter = self.random.random()
        asked = retries

        def write(uow: UnitOfWork) -> None:
            now = now_us()
            retries = _held_for_their_connections(uow, asked)
            self.preload(uow, [w for r in retries for w in r.works])
            loaded = [(r, w, *self.reload(uow, w)) for r in retries for w in r.works]
            given_up = {
                id(w)
                for r, w, row, link in loaded
                if row is not None and link is not None and r.count and row.attempts + 1 >= self.settings.max_attempts
            }
            retried = [(r, w, row, link) for r, w, row, link in loaded if row is not None and link is not None]
            # The step of the longest back-off among those that come back (not those given up).
            attempts = [row.attempts + 1 for _, w, row, _ in retried if id(w) not in given_up]
            delay = backoff_delay(
                max(attempts, default=1), self.settings.backoff_base, self.settings.backoff_cap, lambda: jitter
            )
            waits: dict[int, tuple[int, bool]] = {}
            # Xero may still be carrying out a call we gave up on: a look-up made before it lands
            # finds nothing, and creating again then duplicates it. Its entries wait this long.
            settle = now + int(NO_ANSWER_SETTLE_TIMEOUTS * self.settings.http_timeout * US)
            settling: set[int] = set()
            for r, w, _, _ in retried:
                uncertain = r.uncertain or (w.row.uncertain and not w.looked_up)
                # A wait Xero named that has passed (a 429 without Retry-After leaves the tenant's
                # block in the past) is no wait: the back-off, not once more at once.
                when = int(r.at * US) if r.at is not None and r.at * US > now else now + int(delay * US)
                if uncertain and r.reason in _SETTLE_AFTER:
                    settling.add(id(w))
                    when = max(when, settle)
                waits[id(w)] = (when, uncertain)
            # All at the latest of their times: one entry's longer wait (a GET of its look-up
            # unanswered) took it into a claim of its own, and the call in two.
            together = max((when for when, _ in waits.values()), default=now)
            for r, w, row, link in retried:
                _, uncertain = waits[id(w)]
                row.alone = row.alone or r.alone
                if id(w) in given_up:
                    # Kept on the entry for a repost (posting_decisions): its look-up waits, as this
                    # entry's would have, for the unanswered call Xero may still be carrying out.
                    row.available_us = settle if id(w) in settling else row.available_us
                    outcomes.record_rejected(
                        uow,
                        row,
                        link,
                        r.reason,
                        f"{r.message}; gave up after {row.attempts + 1} attempts. "
                        + (
                            "Check Xero for the reference before posting again"
                            if row.uncertain or uncertain
                            else "Post it again when Xero is reachable"
                        ),
                        [],
                        now,
                        self.d.actor,
                        outcome_unknown=row.uncertain or uncertain,
                    )
                    continue
                outcomes.record_retry(uow, row, link, together, uncertain, r.count, r.reason, r.message)

        self.handing_back([w for r in retries for w in r.works], write)
        self.d.changes.notify()
