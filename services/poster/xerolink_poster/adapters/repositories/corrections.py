"""The corrections repository: the correction saga's rows, and the links that pay or credit a
document (found from the operations the mapper produced for them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.reasons import Reason

from xerolink_poster.adapters import operations as deps
from xerolink_poster.adapters.correction_tables import CorrectionRow, CorrectionStepRow
from xerolink_poster.adapters.repositories.links import SqlLinkRepository
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain.corrections import Action, Actor, LinkFacts, SagaState, Step, StepState
from xerolink_poster.domain.kinds import LinkGroup
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState

# One generation of a record's link: what a saga is of.
Generation = tuple[RecordRef, int]


@dataclass(frozen=True)
class Saga:
    row: CorrectionRow
    steps: tuple[Step, ...]


def notes_of(row: CorrectionRow) -> list[str]:
    return [str(n) for n in json.loads(row.notes)]


def _step_of(row: CorrectionStepRow) -> Step:
    return Step(
        Action(row.action),
        Actor(row.actor),
        row.description,
        RecordRef(row.kind, row.record_id) if row.kind else None,
        row.xero_type,
        row.xero_id,
        row.parent_xero_id,
        StepState(row.state),
        row.detail,
        row.reason,
        row.attempts,
        row.update_us,
    )


class SqlCorrectionRepository:
    def __init__(self, session: Session, is_sqlite: bool) -> None:
        self._session = session
        self._is_sqlite = is_sqlite

        self._links = SqlLinkRepository(session, is_sqlite)

    def link_facts(self, link: LinkRow) -> LinkFacts:
        return LinkFacts(
            RecordRef(link.kind, link.record_id),
            LinkState(link.state),
            tuple(self._links.xero_objects(link)),
            link.generation,
            self._credit_note_of(link),
            held=link.state == LinkState.WAITING and _reason_of(link.last_error) == Reason.XERO_DOCUMENT_CHANGED,
            outcome_unknown=link.outcome_unknown,
        )

    def _operations(self, link: LinkRow) -> list[xero_pb2.Operation]:
        row = self._session.exec(select(OutboxRow).where(OutboxRow.posting_id == link.posting_id)).first()
        if row is None:
            return []
        mapped = mapper_pb2.MapTransactionResponse()
        mapped.ParseFromString(row.operations)
        return list(mapped.operations)

    def _credit_note_of(self, link: LinkRow) -> str:
        """The Xero credit note an allocation link's allocation belongs to."""
        if link.link_group != LinkGroup.CREDIT_NOTES:
            return ""
        for op in self._operations(link):
            if deps.body_of(op) != "allocation":
                continue
            record = deps.record_of(op.allocation.credit_note)
            if record is None:
                continue
            note = self._links.get_link(link.connection_id, record)
            if note is not None:
                found = [o for o in self._links.xero_objects(note) if o.type == xero_pb2.OBJECT_TYPE_CREDIT_NOTE]
                if found:
                    return found[0].xero_id
        return ""

    def dependents(self, connection_id: str, document: RecordRef) -> list[LinkFacts]:
        """Links of payments, refunds and credit applications whose operations name the document.
        One pass over the connection's payment and credit links: a correction is rare, and the
        mapper's operations are the only place that relation is written down."""
        links = self._session.exec(
            select(LinkRow)
            .where(
                LinkRow.connection_id == connection_id,
                col(LinkRow.link_group).in_([LinkGroup.PAYMENTS, LinkGroup.CREDIT_NOTES]),
            )
            .order_by(col(LinkRow.id))
        ).all()
        found = []
        for link in links:
            if RecordRef(link.kind, link.record_id) == document:
                continue
            if document in deps.record_dependencies(self._operations(link)):
                found.append(self.link_facts(link))
        return found

    def paid_document(self, link: LinkRow) -> LinkRow | None:
        """The document a payment or credit application is made against (the first one it names)."""
        for record in deps.record_dependencies(self._operations(link)):
            found = self._links.get_link(link.connection_id, record)
            if found is not None:
                return found
        return None

    # -- the saga ---------------------------------------------------------------------------
    def find_saga(self, connection_id: str, record: RecordRef, generation: int | None) -> Saga | None:
        """The saga of one generation of a record's link, or its latest one (generation None)."""
        query = select(CorrectionRow).where(
            CorrectionRow.connection_id == connection_id,
            CorrectionRow.kind == record.kind,
            CorrectionRow.record_id == record.id,
        )
        if generation is not None:
            query = query.where(CorrectionRow.generation == generation)
        row = self._session.exec(query.order_by(col(CorrectionRow.generation).desc())).first()
        if row is None:
            return None
        return Saga(row, self.load_steps(row.correction_id))

    def sagas_of(self, connection_id: str, links: Sequence[Generation]) -> dict[Generation, Saga]:
        """The saga of each of these generations of records' links that has one: one read (as
        links_of reads links), then the steps of those found. A plan of many links read each
        saga on its own."""
        wanted = set(links)
        if not wanted:
            return {}
        ids: dict[int, set[int]] = {}
        for record, _ in wanted:
            ids.setdefault(record.kind, set()).add(record.id)
        by_kind = [
            and_(col(CorrectionRow.kind) == k, col(CorrectionRow.record_id).in_(sorted(i)))
            for k, i in sorted(ids.items())
        ]
        query = select(CorrectionRow).where(CorrectionRow.connection_id == connection_id, or_(*by_kind))
        return {
            key: Saga(row, self.load_steps(row.correction_id))
            for row in self._session.exec(query).all()
            if (key := (RecordRef(row.kind, row.record_id), row.generation)) in wanted
        }

    def open_sagas(self, connection_id: str) -> list[Saga]:
        """The connection's sagas that are running or failed (finished or not by applying again)."""
        query = select(CorrectionRow).where(
            CorrectionRow.connection_id == connection_id,
            col(CorrectionRow.state).in_([SagaState.RUNNING.value, SagaState.FAILED.value]),
        )
        return [Saga(row, self.load_steps(row.correction_id)) for row in self._session.exec(query).all()]

    def under_correction(self, connection_id: str, record: RecordRef, generation: int) -> bool:
        """Whether a correction of this generation of the record's link has started and not
        completed (running, or failed and waiting to be applied again)."""
        query = select(CorrectionRow.correction_id).where(
            CorrectionRow.connection_id == connection_id,
            CorrectionRow.kind == record.kind,
            CorrectionRow.record_id == record.id,
            CorrectionRow.generation == generation,
            col(CorrectionRow.state).in_([SagaState.RUNNING.value, SagaState.FAILED.value]),
        )
        return self._session.exec(query).first() is not None

    def renamed_documents(self, xero_ids: Sequence[str]) -> set[str]:
        """Which of these Xero documents a correction renamed before voiding (their numbers are
        free): not one found voided already, which keeps its number."""
        if not xero_ids:
            return set()
        rows = self._session.exec(
            select(CorrectionStepRow.xero_id).where(
                CorrectionStepRow.action == Action.RENAME_DOCUMENT.value,
                CorrectionStepRow.state == StepState.DONE.value,
                CorrectionStepRow.reason != Reason.INVOICE_NUMBER_KEPT.value,
                col(CorrectionStepRow.xero_id).in_(sorted(set(xero_ids))),
            )
        ).all()
        return {str(r).lower() for r in rows}

    def load_steps(self, correction_id: str) -> tuple[Step, ...]:
        rows = self._session.exec(
            select(CorrectionStepRow)
            .where(CorrectionStepRow.correction_id == correction_id)
            .order_by(col(CorrectionStepRow.position))
        ).all()
        return tuple(_step_of(r) for r in rows)

    def add_saga(self, row: CorrectionRow, steps: Sequence[Step]) -> None:
        self._session.add(row)
        for position, step in enumerate(steps, start=1):
            self._session.add(
                CorrectionStepRow(
                    correction_id=row.correction_id,
                    position=position,
                    action=int(step.action),
                    actor=int(step.actor),
                    description=step.description,
                    kind=step.record.kind if step.record else 0,
                    record_id=step.record.id if step.record else 0,
                    xero_type=step.xero_type,
                    xero_id=step.xero_id,
                    parent_xero_id=step.parent_xero_id,
                    state=step.state.value,
                    detail=step.detail,
                    update_us=row.create_us,
                )
            )

    def set_step(
        self,
        correction_id: str,
        position: int,
        state: StepState,
        now_us: int,
        detail: str = "",
        reason: str = "",
        started: bool = False,
    ) -> None:
        values: dict[str, object] = {"state": state.value, "detail": detail, "reason": reason, "update_us": now_us}
        if started:
            values["attempts"] = CorrectionStepRow.attempts + 1
        self._session.execute(
            update(CorrectionStepRow)
            .where(
                col(CorrectionStepRow.correction_id) == correction_id,
                col(CorrectionStepRow.position) == position,
            )
            .values(**values)
        )

    def claim_saga(self, correction_id: str, runner: str, now_us: int, ttl_us: int) -> bool:
        """Takes the saga for one runner when nobody runs it or the last runner's claim expired (a
        poster that died mid-saga); renews it for the same runner."""
        result = self._session.execute(
            update(CorrectionRow)
            .where(
                col(CorrectionRow.correction_id) == correction_id,
                (col(CorrectionRow.runner) == "")
                | (col(CorrectionRow.runner) == runner)
                | (col(CorrectionRow.runner_until_us) < now_us),
            )
            .values(runner=runner, runner_until_us=now_us + ttl_us, update_us=now_us)
        )
        return bool(getattr(result, "rowcount", 0))

    def finish_saga(self, correction_id: str, runner: str, state: str, now_us: int) -> None:
        self._session.execute(
            update(CorrectionRow)
            .where(col(CorrectionRow.correction_id) == correction_id, col(CorrectionRow.runner) == runner)
            .values(state=state, runner="", runner_until_us=0, update_us=now_us)
        )

    def set_saga_state(self, correction_id: str, state: str, xero_status: str | None, now_us: int) -> None:
        values: dict[str, object] = {"state": state, "update_us": now_us}
        if xero_status is not None:
            values["xero_status"] = xero_status
        self._session.execute(
            update(CorrectionRow).where(col(CorrectionRow.correction_id) == correction_id).values(**values)
        )


def _reason_of(last_error: str | None) -> str:
    """The reason of a link's last error (stored as JSON, service_layer/errors_json.py)."""
    try:
        error = json.loads(last_error) if last_error else None
    except ValueError:
        return ""
    return str(error.get("reason", "")) if isinstance(error, dict) else ""
