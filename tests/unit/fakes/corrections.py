"""An in-memory CorrectionRepository: correction sagas with their steps, and the links that pay
or credit a document (from the links' indexed dependencies)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from xerolink_common.reasons import Reason
from xerolink_poster.adapters.correction_tables import CorrectionRow
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain.corrections import Action, LinkFacts, SagaState, Step, StepState
from xerolink_poster.domain.kinds import LinkGroup
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer.ports import Generation, Saga

from tests.unit.fakes.links import FakeLinkRepository
from tests.unit.fakes.registry import Registry


class FakeCorrectionRepository:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def link_facts(self, link: LinkRow) -> LinkFacts:
        # credit_note_id stays "": allocations (found from the mapper's operations) are not modelled.
        return LinkFacts(
            RecordRef(link.kind, link.record_id),
            LinkState(link.state),
            tuple(FakeLinkRepository.xero_objects(link)),
            link.generation,
            outcome_unknown=link.outcome_unknown,
        )

    def dependents(self, connection_id: str, document: RecordRef) -> list[LinkFacts]:
        return [
            self.link_facts(link)
            for link_id, targets in sorted(self._registry.dependencies.items())
            if document in targets
            and (link := self._registry.links[link_id]).connection_id == connection_id
            and link.link_group in (LinkGroup.PAYMENTS, LinkGroup.CREDIT_NOTES)
        ]

    def paid_document(self, link: LinkRow) -> LinkRow | None:
        for record in self._registry.dependencies.get(link.id or 0, []):
            if (found := self._registry.link_of(link.connection_id, record)) is not None:
                return found
        return None

    # -- the saga ---------------------------------------------------------------------------
    def find_saga(self, connection_id: str, record: RecordRef, generation: int | None) -> Saga | None:
        rows = [
            row
            for row in self._registry.sagas.values()
            if row.connection_id == connection_id
            and (row.kind, row.record_id) == (record.kind, record.id)
            and (generation is None or row.generation == generation)
        ]
        if not rows:
            return None
        row = max(rows, key=lambda r: r.generation)
        return Saga(row, self.load_steps(row.correction_id))

    def sagas_of(self, connection_id: str, links: Sequence[Generation]) -> dict[Generation, Saga]:
        found = {key: self.find_saga(connection_id, key[0], key[1]) for key in set(links)}
        return {key: saga for key, saga in found.items() if saga is not None}

    def open_sagas(self, connection_id: str) -> list[Saga]:
        return [
            Saga(row, self.load_steps(row.correction_id))
            for row in self._registry.sagas.values()
            if row.connection_id == connection_id and row.state in (SagaState.RUNNING.value, SagaState.FAILED.value)
        ]

    def under_correction(self, connection_id: str, record: RecordRef, generation: int) -> bool:
        saga = self.find_saga(connection_id, record, generation)
        return saga is not None and saga.row.state in (SagaState.RUNNING.value, SagaState.FAILED.value)

    def renamed_documents(self, xero_ids: Sequence[str]) -> set[str]:
        wanted = {x.lower() for x in xero_ids}
        return {
            s.xero_id.lower()
            for steps in self._registry.steps.values()
            for s in steps
            if s.action == Action.RENAME_DOCUMENT
            and s.state == StepState.DONE
            and s.reason != Reason.INVOICE_NUMBER_KEPT
            and s.xero_id.lower() in wanted
        }

    def load_steps(self, correction_id: str) -> tuple[Step, ...]:
        return self._registry.steps.get(correction_id, ())

    def add_saga(self, row: CorrectionRow, steps: Sequence[Step]) -> None:
        self._registry.sagas[row.correction_id] = row
        self._registry.steps[row.correction_id] = tuple(steps)

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
        steps = list(self._registry.steps[correction_id])
        old = steps[position - 1]
        attempts = old.attempts + 1 if started else old.attempts
        steps[position - 1] = dataclasses.replace(
            old, state=state, detail=detail, reason=reason, update_us=now_us, attempts=attempts
        )
        self._registry.steps[correction_id] = tuple(steps)

    def claim_saga(self, correction_id: str, runner: str, now_us: int, ttl_us: int) -> bool:
        row = self._registry.sagas[correction_id]
        if row.runner not in ("", runner) and row.runner_until_us >= now_us:
            return False
        row.runner, row.runner_until_us, row.update_us = runner, now_us + ttl_us, now_us
        return True

    def finish_saga(self, correction_id: str, runner: str, state: str, now_us: int) -> None:
        row = self._registry.sagas[correction_id]
        if row.runner == runner:
            row.state, row.runner, row.runner_until_us, row.update_us = state, "", 0, now_us

    def set_saga_state(self, correction_id: str, state: str, xero_status: str | None, now_us: int) -> None:
        row = self._registry.sagas[correction_id]
        row.state, row.update_us = state, now_us
        if xero_status is not None:
            row.xero_status = xero_status
