"""Creating: one call puts a batch of elements of one endpoint, its entries marked uncertain
until the answer is applied; the answer, read by `answers`, becomes each entry's outcome."""

from __future__ import annotations

import json
from collections.abc import Callable

from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer
from xerolink_poster.domain.matters import refused_for_tracking
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.service_layer import tracing
from xerolink_poster.service_layer.dispatch import answers
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.lookups import LookupFailed, check_lookup
from xerolink_poster.service_layer.dispatch.results import Results
from xerolink_poster.service_layer.dispatch.work import Work


class Creator:
    def __init__(
        self,
        tenant_id: str,
        gate: Gate,
        results: Results,
        retrack: Callable[[list[Work]], list[Work]] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.gate = gate
        self.results = results
        # Gives entries Xero refused over their tracking the names Xero has now (matters.py):
        # they are sent again once, not counted as an attempt.
        self.retrack = retrack

    def create(self, path: str, works: list[Work], retracked: bool = False) -> None:
        again = self._create(path, works, retracked)
        if again and self.retrack is not None:
            self.results.refused_before_sending(again)
            resend = self.retrack(again)
            if resend:
                self.create(path, resend, retracked=True)

    def _create(self, path: str, works: list[Work], retracked: bool) -> list[Work]:
        """One call; returns the entries to send again with their tracking re-read."""
        first = works[0]
        assert first.operation is not None
        target = payloads.target_of(first.operation, first.resolved)
        elements = []
        for w in works:
            assert w.operation is not None
            elements.append(payloads.element_of(w.operation, w.reference, w.contact_id, w.resolved, w.tracking))
        body = {target.collection: elements}
        members = [(w.row.trace_context, w.link) for w in works]
        creds = self.gate.credentials(first.connection)
        with tracing.xero_call(path, self.tenant_id, members) as (call, linked):
            try:
                if target.body == "allocation":
                    self._note_allocations(creds, works)
                answer = self.gate.call(
                    creds,
                    "PUT",
                    path,
                    params={"summarizeErrors": "false"} if target.per_element else None,
                    body=body,
                    mark_uncertain=works,
                    names=[w.identity for w in works],
                )
            except Uncertain as exc:
                for span in (call, *linked):
                    span.set_attribute("xerolink.outcome", "uncertain")
                self.results.retry(
                    works, uncertain=True, reason=Reason.XERO_NO_ANSWER, message=f"no answer from Xero ({exc})"
                )
                return []
            except LookupFailed as exc:  # the credit note could not be read: nothing was sent
                self.results.retry(works, uncertain=False, reason=Reason.XERO_LOOKUP_FAILED, message=str(exc))
                return []
            read = answers.read_answer(answer, target.collection, works)
            for span, outcome in zip((call, *linked), read.outcomes(len(works)), strict=True):
                span.set_attribute("xerolink.outcome", outcome)
            return self._apply(works, answer, read, retracked)

    def _note_allocations(self, creds: Credentials, works: list[Work]) -> None:
        """Allocations carry no field for a tag, and two allocations of equal amounts from one
        credit note to one invoice are both legitimate: the look-up after an uncertain call tells
        ours apart by what the credit note held just before it (stored with the uncertain mark)."""
        answer = self.gate.call(creds, "GET", f"CreditNotes/{works[0].resolved['credit_note']}")
        check_lookup(answer)
        ids = sorted(
            str(a.get("AllocationID", ""))
            for note in answer.body.get("CreditNotes") or []
            if isinstance(note, dict)
            for a in note.get("Allocations") or []
            if isinstance(a, dict)
        )
        for w in works:
            w.hint = json.dumps(ids)

    def _apply(self, works: list[Work], answer: XeroAnswer, read: answers.ReadAnswer, retracked: bool) -> list[Work]:
        """Writes each entry's outcome; returns those Xero refused over their lines' tracking, to
        be sent again once with the names Xero has now (their outcome is not written yet)."""
        if read.call == answers.RATE_LIMITED:
            self.results.retry(
                works,
                uncertain=False,
                reason=Reason.XERO_RATE_LIMITED,
                message="Xero asked to slow down",
                at=self.gate.blocked_until,
                count=False,
            )
            return []
        if read.call == answers.UNAVAILABLE:
            self.results.retry(
                works, uncertain=True, reason=Reason.XERO_UNAVAILABLE, message=f"Xero answered {answer.status}"
            )
            return []
        if read.call == answers.UNAUTHORISED:
            self.results.retry(
                works,
                uncertain=False,
                reason=Reason.XERO_UNAUTHORISED,
                message=f"Xero refused the connection's credentials ({answer.status}); reconnect the organisation",
            )
            return []
        created: list[tuple[Work, list[XeroObjectRef]]] = []
        rejected: list[tuple[Work, list[str]]] = []
        unknown: list[Work] = []
        again: list[Work] = []
        for w, element in zip(works, read.elements, strict=True):
            if element.refused is not None and not retracked and w.tracking and refused_for_tracking(element.refused):
                again.append(w)
            elif element.refused is not None:
                rejected.append((w, element.refused))
            elif element.created:
                w.answer(element.answered)
                created.append((w, element.created))
            else:
                unknown.append(w)
        if created or rejected:
            self.results.write(created, rejected)
        if unknown:
            # Not a refusal: Xero may hold the objects. The next attempt looks each up and
            # creates only what is not there (alone, when the batch was refused whole).
            self.results.retry(unknown, uncertain=True, reason=read.reason, message=read.message, alone=read.alone)
        return again
