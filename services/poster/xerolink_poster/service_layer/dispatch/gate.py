"""The one place a tenant's Xero calls are made and Xero's limits enforced: the tenant's budget
(concurrency, per minute, per day, Retry-After), the app's minute shared by every poster, the
tenant lease checked and renewed before each call, and one refresh of the token after a 401."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from xerolink_poster.adapters.database import DatabaseError, lock_wait_ended, now_us
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.xero_client import Credentials, XeroAnswer
from xerolink_poster.adapters.xero_json import dumps
from xerolink_poster.domain.rate_limits import TenantBudget
from xerolink_poster.domain.retry import idempotency_key
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.metrics import record_call
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
US = 1_000_000


class LeaseLost(Exception):
    """Another poster holds the tenant now; stop calling Xero for it."""


class ClaimsLost(LeaseLost):
    """Entries of a create call are no longer this poster's to send: another poster took the
    tenant over meanwhile (this one was paused past its lease) and may have posted them, or the
    claim ran out. The call is not made."""


class HandingBack(LeaseLost):
    """The worker is handing the tenant back: a job that has not called yet puts its work back."""


class AppMinuteFull(Exception):
    """The posters together have made the app's calls of this minute: wait, call nothing."""


class Gate:
    def __init__(
        self,
        shared: Shared,
        settings: DispatcherSettings,
        tenant_id: str,
        history: list[float],
        day_calls: int,
        day_started: float,
        blocked_until: float,
    ) -> None:
        self.d = shared
        self.settings = settings
        self.tenant_id = tenant_id
        # The tenant's budget, resumed from what its lease recorded (calls, Retry-After). The
        # lease counts the day's calls from `day_started` without their times: they are taken as
        # made then, so they leave the budget when the lease's day ends (its count resets then
        # too). Taken as made now, every new worker (one a turn) would wait a whole day again.
        self.budget = TenantBudget(settings.limits, shared.app_window, history)
        for _ in range(day_calls):
            self.budget.day.done.append(day_started)
        self.budget.blocked_until = blocked_until
        self.lock = threading.Lock()  # guards the budget
        # Set when the worker hands the tenant back: a job still waiting for budget gives way.
        self.handing_back = False

    def wait_time(self) -> float:
        """Seconds before the budget allows another call (0: now)."""
        with self.lock:
            return self.budget.wait_time(time.time())

    @property
    def blocked_until(self) -> float:
        """Until when Xero asked this tenant's calls to wait (Retry-After), epoch seconds."""
        return self.budget.blocked_until

    def credentials(self, connection: ConnectionRow) -> Credentials:
        """The connection's access token, opened from its sealed box (refreshed when expiring)."""
        if self.d.keeper is None:
            raise RuntimeError("the dispatcher has no connection keeper to open the tokens with")
        return self.d.keeper.credentials(connection)

    def _wait_for_budget(self) -> None:
        while True:
            if self.d.stopping:
                raise LeaseLost("stopping")
            with self.lock:
                wait = self.budget.try_acquire(time.time())
            if wait <= 0:
                return
            if self.handing_back:
                # Its claims go back to the queue, for whoever serves the tenant next; waiting
                # here would hold the worker (and its place among max_tenants) for the wait.
                raise HandingBack(self.tenant_id)
            time.sleep(min(wait, 0.05))

    def _recount(self, counted_us: int, minute_us: int) -> None:
        """Moves the call's count in the app's shared minute to now, when it has surely reached
        Xero, with the next count's transaction (AppCallMoves): a transaction for each would
        cost a commit, and a failed one would cost the answer."""
        self.d.app_moves.add(counted_us, now_us(), minute_us)

    def call(
        self,
        creds: Credentials,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        mark_uncertain: Sequence[Work] = (),
        refreshed: bool = False,
        names: Sequence[str] = (),
        headers: dict[str, str] | None = None,
    ) -> XeroAnswer:
        """One call within every limit: waits for the budget, checks and renews the lease, counts
        the call in the app's shared minute (and marks the entries of a create call uncertain)
        in one short transaction, then calls. `names` say what the call is for (the records and
        operations it creates); a call without them changes the Xero object its path names."""
        key = None
        # Encoded once: the same bytes make the Idempotency-Key and go to Xero.
        content = dumps(body) if body is not None else None
        if content is not None:
            key = idempotency_key(creds.tenant_id, method, path, names or [f"{method} {path}"], content)
        minute_us = int(self.settings.limits.minute_seconds * US)
        counted_at: list[int] = []
        marked_until: list[int] = []
        committing: list[bool] = []
        moves: dict[int, int] = {}

        def before(uow: UnitOfWork) -> bool:
            committing.clear()  # an attempt run again after a conflict starts over
            # A poster frozen inside its count holds the app-minute lock (until PostgreSQL ends
            # its session); waiting for it here would hold the dispatcher's turn as long.
            uow.leases.limit_lock_wait(self.d.db.call_lock_ms)
            now = now_us()
            counted_at[:] = [now]
            lease = uow.leases.lease_for_call(self.tenant_id, self.d.holder, now)
            if lease is None:
                return False
            # With it, earlier calls' counts are moved to their answers' buckets (AppCallMoves).
            if uow.leases.count_app_call(now, minute_us, moves) > self.settings.limits.app_per_minute:
                raise AppMinuteFull  # rolls the count back with the rest
            if mark_uncertain:
                hints = {w.row.id: w.hint for w in mark_uncertain}
                claims = {w.row.id: w.claim_until_us for w in mark_uncertain}
                marked_until[:] = [now + int(self.settings.claim_ttl * US)]
                marked = uow.outbox.mark_uncertain(hints, marked_until[0], self.d.holder, now, claims)
                if marked != len(hints):
                    # Another poster holds one now, or another job of this one claimed it after
                    # this job's claim ran out (a long wait for Xero's budget) and may send it.
                    raise ClaimsLost(self.tenant_id)  # rolls the count and the lease's renewal back
            # Logged last, at the time every lock of the transaction is held: this call's time in
            # the log whoever serves the tenant next starts its minute from (plus the HTTP timeout,
            # for the sending). Taken before the waits for the lease row and the app minute (up
            # to call_lock_ms each on PostgreSQL), it could be seconds before Xero counted it.
            logged = now_us()
            uow.leases.log_call(
                self.tenant_id,
                lease,
                logged,
                int(self.settings.lease_ttl * US),
                minute_us,
                int(self.settings.limits.day_seconds * US),
            )
            committing.append(True)
            return True

        while True:
            self._wait_for_budget()
            moves = self.d.app_moves.take()
            for w in mark_uncertain:
                w.sending = True  # from the mark on, a failure cannot say whether Xero has it
            try:
                allowed = run_in_transaction(self.d.db, before)
            except BaseException as exc:
                if committing and marked_until:
                    # It failed at the commit, which may have gone through: the entries may be
                    # under the claim the mark extended, and the job's failure must find them.
                    for w in mark_uncertain:
                        w.claim_if_marked_us = marked_until[0]
                if not committing:
                    self.d.app_moves.put_back(moves)  # not written: the transaction rolled back
                # Else the commit may have written them: written twice, an earlier bucket would
                # lose a call it holds. Dropped, a moved call stays in its count's bucket.
                if isinstance(exc, AppMinuteFull):
                    with self.lock:
                        self.budget.cancel()
                    time.sleep(self.settings.limits.minute_seconds / 60)
                    continue
                if lock_wait_ended(exc):
                    # Every try of the transaction waited its lock time for a lock held elsewhere
                    # (another poster frozen in its count): nothing was counted or called, so it
                    # is no failed attempt of the work. Wait for it as for a full app minute.
                    log.warning(
                        "the count before a Xero call waited for a lock held elsewhere; waiting on",
                        extra={"tenant_id": self.tenant_id},
                    )
                    with self.lock:
                        self.budget.cancel()
                    if self.handing_back:
                        raise HandingBack(self.tenant_id) from exc  # its work goes back to the queue
                    time.sleep(self.settings.limits.minute_seconds / 60)
                    continue
                with self.lock:
                    self.budget.release(time.time())
                raise
            break
        if not allowed:
            self.d.app_moves.put_back(moves)  # the lease was lost before the count wrote them
            with self.lock:
                self.budget.release(time.time())
            raise LeaseLost(self.tenant_id)
        for w in mark_uncertain:
            w.claim_until_us = marked_until[0]  # the mark extended the job's claim
        try:
            answer = self.d.xero.call(
                creds, method, path, params=params, idempotency_key=key, content=content, extra_headers=headers
            )
        except BaseException:
            # Unanswered, or an answer that could not be read: the call's slot is given back
            # whatever was raised (kept, five such answers stopped the tenant for good).
            with self.lock:
                self.budget.release(time.time())
            self._recount(counted_at[0], minute_us)
            raise
        with self.lock:
            self.budget.release(time.time(), answer.rate, answer.elapsed)
        self._recount(counted_at[0], minute_us)
        record_call(method, path, answer.status, answer.elapsed)
        if self.d.metrics is not None:
            self.d.metrics.headroom(self.tenant_id, answer.rate)
        self.d.calls_made += 1
        if answer.status == 429:
            self.d.calls_refused += 1
            log.warning("Xero refused a call for rate (%s)", answer.rate.problem, extra={"tenant_id": self.tenant_id})
            if answer.rate.retry_after is None:
                # Xero names the wait in Retry-After (docs/poster.md); a 429 without it (from
                # something in front of Xero, say) waits out a minute of Xero's, not nothing:
                # the work it refused would be sent again at once, and again.
                with self.lock:
                    self.budget.blocked_until = max(
                        self.budget.blocked_until, time.time() + self.settings.limits.minute_seconds
                    )
            self._persist_block()
        if answer.status == 403 and self.d.keeper is not None and creds.connection_id:
            # Xero answers 403 AuthenticationUnsuccessful to a token that is still valid once the
            # organisation's connection to the app is removed in Xero (XeroAPI/Xero-OpenAPI#585,
            # XeroAPI/xero-php-oauth2#147): no refresh mends it, a new consent does.
            self.d.keeper.refused(
                creds,
                f"Xero answered 403 to {method} {path}: the organisation's connection to the app was removed or "
                "lacks a permission; an administrator must connect the organisation again (ConnectOrganisation)",
            )
        if answer.status == 401 and not refreshed and self.d.keeper is not None and creds.connection_id:
            # The access token expired or was revoked early: refresh once and repeat the call
            # (a 401 changed nothing at Xero, and the Idempotency-Key stays the same).
            fresh = self.d.keeper.after_unauthorised(creds)
            if fresh is not None:
                return self.call(
                    fresh, method, path, params, body, mark_uncertain, refreshed=True, names=names, headers=headers
                )
        return answer

    def _persist_block(self) -> None:
        """Writes Retry-After to the tenant's lease, so a poster that takes the tenant over (after
        a crash or a hand-back) waits it out too instead of being refused again."""
        with self.lock:
            until = self.budget.blocked_until
        if until > time.time():
            try:
                run_in_transaction(self.d.db, lambda uow: uow.leases.block_tenant(self.tenant_id, int(until * US)))
            except DatabaseError:
                # This poster's budget keeps the wait; only a poster taking the tenant over now
                # would not know it, and Xero refuses it again, with Retry-After.
                log.warning("could not store Xero's Retry-After", exc_info=True, extra={"tenant_id": self.tenant_id})
