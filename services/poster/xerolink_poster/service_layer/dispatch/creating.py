"""Creating: one call puts a batch of elements of one endpoint, its entries marked uncertain
until the answer is applied; the answer, read by `answers`, becomes each entry's outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer
from xerolink_poster.domain.matters import refused_for_tracking
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.service_layer import tracing
from xerolink_poster.service_layer.dispatch import answers, refusals
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.lookups import LookupFailed, check_lookup, note_allocations
from xerolink_poster.service_layer.dispatch.results import Results, Retry
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.drift_rereads import RereadFailed, read_object

# Xero's refusal of an ACCREC invoice or ACCRECCREDIT credit note whose number another holds, a
# voided one included (the OpenAPI's example answer to PUT Invoices; "Credit Note # must be
# unique.", XeroAPI/Xero-Net#257; docs/emulator.md "Numbers").
NUMBERS_IN_USE = ("Invoice # must be unique.", "Credit Note # must be unique.")
# A gateway in front of Xero gave up waiting for it (RFC 9110, 15.6.5 "504 Gateway Timeout").
GATEWAY_TIMEOUT = 504


def _voided_under(element: dict[str, Any] | None, field: str, number: str) -> bool:
    """Xero's document is VOIDED and holds the number."""
    if element is None:
        return False
    return element.get("Status") == "VOIDED" and element.get(field) == number


def _number_in_use(refused: list[str]) -> bool:
    return any(message in refused for message in NUMBERS_IN_USE)


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
        again, renumbered = self._create(path, works, retracked)
        if renumbered:
            # Refused because this record's own orphaned document holds the number: sent again
            # once under the number preparing gave it, not counted as an attempt.
            self.results.refused_before_sending(renumbered)
            for w in renumbered:
                w.sent_number, w.number_note = w.renumber_to, w.renumber_note
            self.create(path, renumbered, retracked)
        if again and self.retrack is not None:
            self.results.refused_before_sending(again)
            resend = self.retrack(again)
            if resend:
                self.create(path, resend, retracked=True)

    def _create(self, path: str, works: list[Work], retracked: bool) -> tuple[list[Work], list[Work]]:
        """One call; returns the entries to send again with their tracking re-read, and those to
        send again under another number."""
        first = works[0]
        assert first.operation is not None
        target = payloads.target_of(first.operation, first.resolved)
        elements = []
        for w in works:
            assert w.operation is not None
            element = payloads.element_of(w.operation, w.reference, w.contact_id, w.resolved, w.tracking)
            unique = payloads.unique_number(w.operation) if w.sent_number else None
            if unique is not None:
                element[unique[1]] = w.sent_number
            elements.append(element)
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
                return [], []
            except LookupFailed as exc:  # the credit note could not be read: nothing was sent
                failed = Retry.after_lookup(
                    works, False, Reason.XERO_LOOKUP_FAILED, str(exc), exc.rate_limited, self.gate.blocked_until
                )
                self.results.retry_together([failed])
                return [], []
            read = answers.read_answer(answer, target.collection, works)
            for span, outcome in zip((call, *linked), read.outcomes(len(works)), strict=True):
                span.set_attribute("xerolink.outcome", outcome)
            return self._apply(works, answer, read, retracked, creds)

    def _held_by_own_orphan(
        self, creds: Credentials, numbered: list[tuple[Work, list[str]]]
    ) -> tuple[list[Work], list[tuple[Work, RereadFailed]], list[tuple[Work, list[str]]]]:
        """Of the sales invoices and client credit notes refused as their number is in use: those
        whose own orphaned document holds it in Xero VOIDED (read now: the registry's number may be
        stale), to be sent again under their repost number; those whose orphan could not be read;
        the rest, which stay refused: the number belongs to something xerolink did not orphan from
        this record, or to the orphan still live in Xero (a second live invoice for one bill would
        bill the client twice, a second credit note credit them twice; docs/unlinking.md says how
        to free the number)."""
        ours: list[Work] = []
        unread: list[tuple[Work, RereadFailed]] = []
        refused: list[tuple[Work, list[str]]] = []
        for w, messages in numbered:
            assert w.operation is not None
            unique = payloads.unique_number(w.operation)
            assert unique is not None
            object_type, field, number = unique
            try:
                held = any(
                    _voided_under(read_object(self.gate, creds, object_type, x), field, number)
                    for x in w.renumber_holders
                )
            except RereadFailed as exc:
                unread.append((w, exc))
                continue
            if held:
                ours.append(w)
            else:
                refused.append((w, messages))
        return ours, unread, refused

    def _note_allocations(self, creds: Credentials, works: list[Work]) -> None:
        """Allocations carry no field for a tag, and two allocations of equal amounts from one
        credit note to one invoice are both legitimate: the look-up after an uncertain call tells
        ours apart by what the credit note held just before it (stored with the uncertain mark)."""
        answer = self.gate.call(creds, "GET", f"CreditNotes/{works[0].resolved['credit_note']}")
        ids = sorted(note_allocations(check_lookup(answer, "CreditNotes", one=True)))
        for w in works:
            w.hint = json.dumps(ids)

    def _apply(
        self, works: list[Work], answer: XeroAnswer, read: answers.ReadAnswer, retracked: bool, creds: Credentials
    ) -> tuple[list[Work], list[Work]]:
        """Writes each entry's outcome; returns those Xero refused over their lines' tracking, to
        be sent again once with the names Xero has now, and the sales invoices and client credit
        notes refused because their own orphan holds their number, to be sent again once under
        another (the outcome of neither is written yet). A
        payment or allocation refused because its document changed in Xero is held on the drift
        a read of the document finds (refusals.py)."""
        if read.call == answers.RATE_LIMITED:
            self.results.retry(
                works,
                uncertain=False,
                reason=Reason.XERO_RATE_LIMITED,
                message="Xero asked to slow down",
                at=self.gate.blocked_until,
                count=False,
            )
            return [], []
        if read.call == answers.UNAVAILABLE and answer.status == GATEWAY_TIMEOUT:
            # A gateway stopped waiting for Xero (RFC 9110, 15.6.5), which may still carry out the
            # call: looked up before it lands, the entries were created again. Waits as no answer.
            self.results.retry(
                works,
                uncertain=True,
                reason=Reason.XERO_NO_ANSWER,
                message="a gateway answered 504: it stopped waiting for Xero, which may still carry out the call",
            )
            return [], []
        if read.call == answers.UNAVAILABLE:
            self.results.retry(
                works, uncertain=True, reason=Reason.XERO_UNAVAILABLE, message=f"Xero answered {answer.status}"
            )
            return [], []
        if read.call == answers.UNAUTHORISED:
            self.results.retry(
                works,
                uncertain=False,
                reason=Reason.XERO_UNAUTHORISED,
                message=f"Xero refused the connection's credentials ({answer.status}); reconnect the organisation",
            )
            return [], []
        created: list[tuple[Work, list[XeroObjectRef]]] = []
        rejected: list[tuple[Work, list[str]]] = []
        unknown: list[Work] = []
        again: list[Work] = []
        numbered: list[tuple[Work, list[str]]] = []
        for w, element in zip(works, read.elements, strict=True):
            if element.refused is not None and w.renumber_to and not w.sent_number and _number_in_use(element.refused):
                numbered.append((w, element.refused))
            elif element.refused is not None and not retracked and w.tracking and refused_for_tracking(element.refused):
                again.append(w)
            elif element.refused is not None:
                rejected.append((w, element.refused))
            elif element.created:
                w.answer(element.answered)
                created.append((w, element.created))
            else:
                unknown.append(w)
        renumbered, unread, refused = self._held_by_own_orphan(creds, numbered)
        rejected += refused
        if rejected:
            rejected = refusals.hold_refused(self.gate, creds, self.results, rejected)
        if created or rejected:
            self.results.write(created, rejected)
        if unknown:
            # Not a refusal: Xero may hold the objects. The next attempt looks each up and
            # creates only what is not there (alone, when the batch was refused whole).
            self.results.retry(unknown, uncertain=True, reason=read.reason, message=read.message, alone=read.alone)
        if unread:
            problem = unread[0][1]
            message = f"Xero refused the invoice's number as in use, and reading who holds it failed: {problem.message}"
            failed = Retry.after_lookup(
                [w for w, _ in unread], False, problem.reason, message, problem.rate_limited, self.gate.blocked_until
            )
            self.results.retry_together([failed])
        return again, renumbered
