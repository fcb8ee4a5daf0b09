"""Plans and applies corrections (docs/corrections.md).

The saga: the first ApplyCorrection of a link generation writes the plan's steps; then each of
xerolink's steps is recorded in_progress, performed (a look-up in Xero first, then the change),
and recorded done or failed, each record its own transaction. A poster that dies or a Xero call
that fails mid-way leaves the saga at a step; ApplyCorrection again resumes from it, and the
look-up makes the repeat harmless. One runner at a time: a claim on the saga row, renewed at each
step, expires when its poster died.

An invoice paid from trust kept in two organisations has its other half (the trust spend) under
the trust organisation's connection: a step on one of that half's objects is sent through that
connection (its credentials, and its tenant's budget and lease, borrowed from the dispatcher like
the saga's own), found from the link that holds the object, so a resumed saga finds it again."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass

from xerolink_common.errors import (
    ErrorCode,
    PreconditionViolation,
    XerolinkError,
    failed_precondition,
    not_found,
    unavailable,
)
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.correction_tables import CorrectionRow
from xerolink_poster.adapters.database import Database, DuplicateKey, now_us
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow
from xerolink_poster.domain import correction_plans as plans
from xerolink_poster.domain import corrections as dom
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.routing import SPLIT_KINDS
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer import unlinking
from xerolink_poster.service_layer.connections import get_connection, require_connection_id
from xerolink_poster.service_layer.correction_views import CorrectionView, refusal_of, view_of
from xerolink_poster.service_layer.correction_xero import CorrectionXero, XeroRefused, XeroTrouble
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.ports import Repositories, Saga
from xerolink_poster.service_layer.record_halves import other_halves
from xerolink_poster.service_layer.tenant_access import borrowed_tenant
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction, run_until_confirmed

log = logging.getLogger(__name__)
__all__ = ["CorrectionView", "Corrections"]
US = 1_000_000


@dataclass(frozen=True)
class _Outcome:
    state: dom.StepState
    detail: str
    reason: str = ""


_LEASE_LOST = _Outcome(
    dom.StepState.FAILED,
    "this poster lost the Xero organisation's lease (stopping, or another poster took over); apply again",
    Reason.TENANT_BUSY,
)


class Corrections:
    def __init__(self, db: Database, dispatcher: Dispatcher | None, lease_wait: float = 10.0) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.lease_wait = lease_wait
        holder = dispatcher.holder if dispatcher is not None else "poster"
        self.runner_prefix = holder[:120]
        # A runner's claim outlives the longest step (a Xero call plus its look-up) with room.
        self.claim_ttl_us = int((dispatcher.settings.lease_ttl if dispatcher else 30.0) * US)

    # -- Xero access -------------------------------------------------------------------------
    @contextmanager
    def _xero(self, connection: ConnectionRow) -> Iterator[CorrectionXero]:
        with borrowed_tenant(
            self.dispatcher, connection, self.lease_wait, "send corrections to a poster that runs it"
        ) as (worker, creds):
            yield CorrectionXero(worker, creds)

    @contextmanager
    def _xeros(self, connection: ConnectionRow) -> Iterator[_Xeros]:
        """The saga's Xero access per connection: its own connection's opened at once (refusing
        as _xero does), another half's connection on first use."""
        with ExitStack() as stack:
            xeros = _Xeros(self.db, self._xero, stack)
            xeros.opened[connection.connection_id] = stack.enter_context(self._xero(connection))
            yield xeros

    # -- planning ----------------------------------------------------------------------------
    def _facts(self, connection_id: str, record: RecordRef) -> tuple[ConnectionRow, Saga | None, dom.LinkFacts]:
        require_connection_id(connection_id)
        with UnitOfWork(self.db, write=False) as uow:
            return correction_target(uow, connection_id, record)

    def _plan(self, connection_id: str, target: dom.LinkFacts, intent: dom.Intent, xeros: _Xeros) -> dom.Plan:
        xero = xeros.get(connection_id)
        try:
            if dom.is_document(target):
                document = dom.document_of(target)
                with UnitOfWork(self.db, write=False) as uow:
                    dependents = uow.corrections.dependents(connection_id, target.record)
                    halves = halves_of(uow, connection_id, [d.record for d in dependents])
                status = {
                    o.xero_id: xero.status(o.type, o.xero_id, d.credit_note_id)
                    for d in dependents
                    if d.state == LinkState.LINKED
                    for o in d.objects
                }
                status |= _half_statuses(halves.values(), xeros)
                read = xero.document(document.type, document.xero_id)
                return plans.plan_document(target, intent, read, dependents, status, halves)
            status = {o.xero_id: xero.status(o.type, o.xero_id, target.credit_note_id) for o in target.objects}
            with UnitOfWork(self.db, write=False) as uow:
                link = uow.links.get_link(connection_id, target.record)
                paid = uow.corrections.paid_document(link) if link is not None else None
                document_facts = uow.corrections.link_facts(paid) if paid is not None else None
                halves = halves_of(uow, connection_id, [target.record])
            status |= _half_statuses(halves.values(), xeros)
            return plans.plan_payment(target, intent, status, document_facts, halves.get(target.record, ()))
        except XeroTrouble as exc:
            raise unavailable(exc.reason, f"{exc.message}; plan again when Xero answers", 5.0) from exc

    def plan(self, connection_id: str, record: RecordRef, intent: dom.Intent) -> CorrectionView:
        connection, saga, target = self._facts(connection_id, record)
        if saga is not None and (target.state == LinkState.UNLINKED or dom.left_in_previous_organisation(saga.steps)):
            return view_of(saga)
        with self._xeros(connection) as xeros:
            plan = self._plan(connection_id, target, intent, xeros)
        notes = list(plan.notes)
        if saga is not None:
            notes.append(
                f"correction {saga.row.correction_id} of this record is {saga.row.state}: ApplyCorrection resumes it"
            )
        notes.append("the document's status was read from Xero just now: someone may have changed it there by hand")
        planned = dom.SagaState.PLANNED
        return CorrectionView("", connection_id, record, intent, planned, plan.steps, plan.xero_status, tuple(notes))

    def get(self, connection_id: str, record: RecordRef) -> CorrectionView:
        get_connection(self.db, connection_id)
        with UnitOfWork(self.db, write=False) as uow:
            saga = uow.corrections.find_saga(connection_id, record, None)
        if saga is None:
            raise not_found(
                Reason.CORRECTION_NOT_FOUND,
                f"no correction was applied to {record}; PlanCorrection shows what one would do",
            )
        return view_of(saga)

    # -- applying ----------------------------------------------------------------------------
    def apply(self, connection_id: str, record: RecordRef, intent: dom.Intent, actor: str) -> CorrectionView:
        connection, saga, target = self._facts(connection_id, record)
        if (finished := completed_answer(saga, intent)) is not None:
            return finished
        if saga is not None and dom.left_in_previous_organisation(saga.steps):
            return view_of(saga)  # what is left is for a person in the previous organisation
        with self._xeros(connection) as xeros:
            if saga is None:
                saga = self._start(connection_id, target, intent, xeros)
            if saga.row.state == dom.SagaState.COMPLETED:
                return view_of(saga)
            runner = f"{self.runner_prefix}:{uuid.uuid4().hex[:12]}"
            try:
                # Inside: a claim that went through unconfirmed, then failed, is given back.
                self._claim(saga, runner)
                self._run(saga, runner, connection_id, xeros, f"{actor} (correction {saga.row.correction_id})"[:128])
            finally:
                self._finish(saga.row.correction_id, runner)
        with UnitOfWork(self.db, write=False) as uow:
            done = uow.corrections.find_saga(connection_id, record, target.generation)
        assert done is not None
        return view_of(done)

    def _start(self, connection_id: str, target: dom.LinkFacts, intent: dom.Intent, xeros: _Xeros) -> Saga:
        plan = self._plan(connection_id, target, intent, xeros)
        if plan.blockers:
            raise failed_precondition(
                Reason.CORRECTION_BLOCKED,
                "a person must act before xerolink can correct this record: " + "; ".join(plan.blockers),
                [PreconditionViolation(Reason.CORRECTION_BLOCKED, str(target.record), b) for b in plan.blockers],
            )
        now = now_us()
        row = CorrectionRow(
            correction_id=uuid.uuid4().hex,
            connection_id=connection_id,
            kind=target.record.kind,
            record_id=target.record.id,
            generation=target.generation,
            intent=int(intent),
            state=dom.SagaState.RUNNING.value,
            xero_status=plan.xero_status,
            notes=json.dumps(list(plan.notes)),
            create_us=now,
            update_us=now,
        )

        def write(uow: UnitOfWork) -> None:
            uow.corrections.add_saga(row, plan.steps)

        # DuplicateKey: another apply started the same saga a moment ago; resume that one.
        with suppress(DuplicateKey):
            run_in_transaction(self.db, write, attempts=1)
        with UnitOfWork(self.db, write=False) as uow:
            saga = uow.corrections.find_saga(connection_id, target.record, target.generation)
        assert saga is not None
        return saga

    def _claim(self, saga: Saga, runner: str) -> None:
        def take(uow: UnitOfWork) -> bool:
            return uow.corrections.claim_saga(saga.row.correction_id, runner, now_us(), self.claim_ttl_us)

        # A runner whose poster died holds the claim until it expires: wait that long, not more.
        deadline = time.monotonic() + self.lease_wait
        while not self._taken(take):
            if time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise XerolinkError(
                ErrorCode.ABORTED,
                Reason.CORRECTION_RUNNING,
                f"correction {saga.row.correction_id} is being applied by another request; "
                "follow it with GetCorrection, or apply again once it stops",
            )

    def _taken(self, take: Callable[[UnitOfWork], bool]) -> bool:
        """The claim, taken. A claim whose COMMIT went unconfirmed is taken again: it renews for
        the same runner, so another take answers whether the first went through. Left unknown, it
        held the saga off every retry until it expired (CORRECTION_RUNNING, by no one)."""
        return run_until_confirmed(self.db, take)

    def _finish(self, correction_id: str, runner: str) -> None:
        def write(uow: UnitOfWork) -> None:
            steps = uow.corrections.load_steps(correction_id)
            uow.corrections.finish_saga(correction_id, runner, dom.saga_state(steps).value, now_us())

        run_in_transaction(self.db, write)

    def _run(self, saga: Saga, runner: str, connection_id: str, xeros: _Xeros, actor: str) -> None:
        correction_id = saga.row.correction_id
        with UnitOfWork(self.db, write=False) as uow:
            steps = uow.corrections.load_steps(correction_id)
        for position, step in enumerate(steps, start=1):
            if step.actor != dom.Actor.XEROLINK or step.state == dom.StepState.DONE:
                continue

            def start(uow: UnitOfWork, position: int = position) -> bool:
                now = now_us()
                if not uow.corrections.claim_saga(correction_id, runner, now, self.claim_ttl_us):
                    return False
                uow.corrections.set_step(correction_id, position, dom.StepState.IN_PROGRESS, now, started=True)
                uow.corrections.set_saga_state(correction_id, dom.SagaState.RUNNING.value, None, now)
                return True

            if not run_in_transaction(self.db, start):
                log.warning("correction %s was taken over by another runner", correction_id)
                return
            try:
                outcome = self._perform(step, saga, steps, xeros, actor)
            except Exception as exc:  # recorded, so the saga never sits in_progress with no reason
                log.exception("correction %s step %d failed unexpectedly", correction_id, position)
                outcome = _Outcome(
                    dom.StepState.FAILED,
                    f"unexpected error ({type(exc).__name__}: {str(exc)[:200]}); apply again: the step looks "
                    "Xero up before acting",
                    Reason.INTERNAL,
                )
            log.info(
                "correction %s step %d: %s %s",
                correction_id,
                position,
                outcome.state.value,
                outcome.detail,
                extra={"connection_id": connection_id},
            )

            def record(uow: UnitOfWork, position: int = position, outcome: _Outcome = outcome) -> None:
                uow.corrections.set_step(
                    correction_id, position, outcome.state, now_us(), outcome.detail, outcome.reason
                )

            run_in_transaction(self.db, record)
            if outcome.state == dom.StepState.FAILED:
                return

    def _perform(self, step: dom.Step, saga: Saga, steps: Sequence[dom.Step], xeros: _Xeros, actor: str) -> _Outcome:
        connection_id, generation = saga.row.connection_id, saga.row.generation
        if step.action == dom.Action.UNLINK:
            assert step.record is not None
            own = RecordRef(saga.row.kind, saga.row.record_id)
            ids = {s.xero_id for s in steps if s.record == step.record and s.xero_id}
            return self._unlink(connection_id, step.record, actor, _planned(own, generation, step.record, ids))
        if step.action == dom.Action.RENAME_DOCUMENT:
            return self._rename(step, connection_id, generation, xeros.get(connection_id))
        try:
            xero = xeros.get(self._step_connection(connection_id, step))
        except XerolinkError as exc:  # the other organisation's connection is busy elsewhere, or gone
            return _Outcome(dom.StepState.FAILED, f"{exc.message}; then apply again", exc.reason)
        try:
            undone = xero.undo(step.xero_type, step.xero_id, step.parent_xero_id)
        except XeroTrouble as exc:
            return _Outcome(
                dom.StepState.FAILED,
                f"{exc.message}; apply again: xerolink looks the object up in Xero before sending anything again",
                exc.reason,
            )
        except XeroRefused as exc:
            return _Outcome(
                dom.StepState.FAILED,
                f"Xero refused: {exc}. Fix that in Xero (for example delete payments entered there by hand), "
                "then apply again",
                Reason.XERO_REFUSED,
            )
        except LeaseLost:
            return _LEASE_LOST
        return _Outcome(dom.StepState.DONE, undone.detail)

    def _step_connection(self, connection_id: str, step: dom.Step) -> str:
        """The connection whose organisation holds the step's object: the saga's, or for the other
        half of a record kept in two organisations the connection whose link holds it (kept there
        after the unlink too, so a resumed step finds the same one)."""
        if step.record is None or step.record.kind not in SPLIT_KINDS or not step.xero_id:
            return connection_id
        with UnitOfWork(self.db, write=False) as uow:
            for half in other_halves(uow, connection_id, [step.record], lock=False).get(step.record, []):
                if any(o.xero_id == step.xero_id for o in uow.links.xero_objects(half)):
                    return half.connection_id
        return connection_id

    def _rename(self, step: dom.Step, connection_id: str, generation: int, xero: CorrectionXero) -> _Outcome:
        """Frees the invoice's or client credit note's number before the void. The numbers come
        from the registry (the number Xero gave the document when it was posted) and the saga's
        link generation, so a resumed step renames to the same number the plan named."""
        assert step.record is not None
        with UnitOfWork(self.db, write=False) as uow:
            link = uow.links.get_link(connection_id, step.record)
            facts = uow.corrections.link_facts(link) if link is not None else None
        number = dom.document_of(facts).number if facts is not None and dom.is_document(facts) else ""
        label = dom.object_label(step.xero_type)
        if not number:
            return _Outcome(
                dom.StepState.FAILED,
                f"the registry holds no {label} number for {dom.record_name(step.record)}; rename {label} "
                f"{step.xero_id} in Xero by hand, then apply again",
                Reason.NUMBER_UNKNOWN,
            )
        new_number = dom.void_number(number, step.record, generation)
        try:
            renamed = xero.rename(step.xero_type, step.xero_id, number, new_number)
        except XeroTrouble as exc:
            return _Outcome(
                dom.StepState.FAILED,
                f"{exc.message}; apply again: xerolink reads the {label} to see whether it was renamed before "
                "sending anything again",
                exc.reason,
            )
        except XeroRefused as exc:
            return _Outcome(
                dom.StepState.FAILED,
                f"Xero refused to rename {label} {number}: {exc} It keeps its number and stays linked, and nothing "
                "after this step was done. Delete the payments, credit notes or allocations entered on it in Xero "
                "by hand, then apply again",
                Reason.XERO_REFUSED,
            )
        except LeaseLost:
            return _LEASE_LOST
        return _Outcome(dom.StepState.DONE, renamed.detail, renamed.reason)

    def _unlink(self, connection_id: str, record: RecordRef, actor: str, planned: unlinking.Planned) -> _Outcome:
        """Unlinks the record, with its other half under another connection if it has one: the
        generation the saga planned to unlink, never one posted since."""
        with UnitOfWork(self.db, write=False) as uow:
            link = uow.links.get_link(connection_id, record)
            halves = [link, *other_halves(uow, connection_id, [record], lock=False).get(record, [])]
            states = {LinkState(h.state) for h in halves if h is not None}
        if states == {LinkState.UNLINKED}:
            return _Outcome(dom.StepState.DONE, "already unlinked")
        try:
            unlinked = unlinking.unlink_as_planned(self.db, connection_id, record, actor, planned)
        except XerolinkError as exc:
            return _Outcome(dom.StepState.FAILED, exc.message, exc.reason)
        if isinstance(unlinked, str):
            return _Outcome(dom.StepState.DONE, unlinked)
        with UnitOfWork(self.db, write=False) as uow:
            rows = [uow.links.get_link(h.connection_id, record) for h in halves if h is not None]
            orphans = ", ".join(o.xero_id for r in rows if r is not None for o in uow.links.xero_objects(r))
        both = " with its other half" if len(rows) > 1 else ""
        return _Outcome(dom.StepState.DONE, f"unlinked{both}; its Xero objects are recorded as orphaned ({orphans})")


def _planned(own: RecordRef, generation: int, record: RecordRef, undone: set[str]) -> unlinking.Planned:
    """Why the record's link, as held when its unlink step runs, is not what the saga planned to
    unlink ("" when it is). The saga's own record: its generation. A payment or allocation the
    saga undid: the Xero objects its steps undid, which a link posted again since (a new
    generation, after its own correction or a plain unlink) no longer holds. Unlinked by record
    alone, that new posting's work was closed and it never reached Xero."""

    def check(link: LinkRow, objects: Sequence[XeroObjectRef]) -> str:
        if record == own:
            if link.generation == generation:
                return ""
            return (
                f"already unlinked: generation {generation} was unlinked since, and generation {link.generation} "
                "posted after it is left alone"
            )
        held = {o.xero_id for o in objects}
        if not undone or undone & held:
            return ""
        return (
            f"already unlinked: the Xero objects this correction undid ({', '.join(sorted(undone))}) are no longer "
            f"its link's (generation {link.generation}, posted again since), which is left alone"
        )

    return check


class _Xeros:
    """A saga's CorrectionXero per connection, each opened through the dispatcher on first use
    and given back when the saga's request ends."""

    def __init__(
        self,
        db: Database,
        open_one: Callable[[ConnectionRow], AbstractContextManager[CorrectionXero]],
        stack: ExitStack,
    ) -> None:
        self._db = db
        self._open_one = open_one
        self._stack = stack
        self.opened: dict[str, CorrectionXero] = {}

    def get(self, connection_id: str) -> CorrectionXero:
        if connection_id not in self.opened:
            connection = get_connection(self._db, connection_id)
            self.opened[connection_id] = self._stack.enter_context(self._open_one(connection))
        return self.opened[connection_id]


def halves_of(
    repos: Repositories, connection_id: str, records: Sequence[RecordRef]
) -> dict[RecordRef, list[plans.OtherHalf]]:
    """The other halves of these records (kept in two organisations), as the plans take them."""
    found = other_halves(repos, connection_id, records, lock=False)
    return {r: [(h.connection_id, repos.corrections.link_facts(h)) for h in hs] for r, hs in found.items()}


def _half_statuses(halves: Iterable[Sequence[plans.OtherHalf]], xeros: _Xeros) -> dict[str, str]:
    """The Xero status of the linked other halves' objects, each read in its own organisation."""
    statuses: dict[str, str] = {}
    for found in halves:
        for connection_id, facts in found:
            if facts.state != LinkState.LINKED:
                continue
            xero = xeros.get(connection_id)
            statuses |= {o.xero_id: xero.status(o.type, o.xero_id, facts.credit_note_id) for o in facts.objects}
    return statuses


def correction_target(
    repos: Repositories, connection_id: str, record: RecordRef
) -> tuple[ConnectionRow, Saga | None, dom.LinkFacts]:
    """The connection, the saga of the link's current generation and the link's facts; a record
    with no saga must be correctable (linked), else it is refused before Xero is asked anything."""
    connection = repos.connections.get_connection(connection_id)
    if connection is None:
        raise not_found(Reason.CONNECTION_NOT_FOUND, f"no connection {connection_id!r}; create it first")
    link = repos.links.get_link(connection_id, record)
    facts = repos.corrections.link_facts(link) if link is not None else None
    saga = repos.corrections.find_saga(connection_id, record, link.generation) if link is not None else None
    if saga is None or facts is None:
        try:
            plans.check_target(facts, record, connection_id)
            for half in halves_of(repos, connection_id, [record]).get(record, []):
                if (why := plans.half_violation(half)) is not None:
                    raise dom.NotCorrectable(Reason.POSTING_IN_PROGRESS, why)
        except dom.NotCorrectable as exc:
            raise refusal_of(exc) from exc
    assert facts is not None
    return connection, saga, facts


def completed_answer(saga: Saga | None, intent: dom.Intent) -> CorrectionView | None:
    """An apply that resumes a saga must carry its intent; a completed saga is answered as it
    stands, without a Xero call."""
    if saga is not None and saga.row.intent != intent:
        raise failed_precondition(
            Reason.INTENT_MISMATCH,
            f"correction {saga.row.correction_id} of this record was started with intent "
            f"{dom.Intent(saga.row.intent).name}; apply it again with that intent",
        )
    if saga is not None and saga.row.state == dom.SagaState.COMPLETED:
        return view_of(saga)
    return None
