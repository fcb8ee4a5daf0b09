"""A posting whose first operation moves money and whose later one pays a document (an invoice
paid from trust: the trust spend, then the payment of the invoice) is checked against the
document as Xero holds it before the first is sent. Sent blind, a spend whose payment Xero then
refused (the invoice paid, voided or owing less in Xero) left clients' money withdrawn from the
trust bank in Xero for a fee that was never paid.

Xero takes a payment only on an AUTHORISED document ("Payments can only be made against
Authorised documents", NOTES.md), and only up to what it owes: Payment.Amount "Must be less than
or equal to the outstanding amount owing on the invoice", Invoice.AmountDue "Amount remaining to
be paid on invoice" (Xero's OpenAPI description). A document in another status is recorded as the
drift it is and the entry held on it, as a payment Xero refused is (refusals.py); a payment over
the amount due, counting what the batch's other payments and allocations pay on the invoice, is
refused with Xero's figure, and one in another currency than the invoice (Xero reads
Payment.Amount in the invoice's currency) is refused likewise, nothing sent. Entries whose last
call had no answer are checked after their look-up, once it found nothing in Xero.
The payments postings outside the batch still have to make on the invoice (open outbox work:
a part-sent posting whose payment waits for a retry, a receipt backing off) count likewise. When
only what other postings pay stops a payment that fits the amount due alone, it waits for their
answers (retried) instead of being refused, as Xero may refuse them."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.money import cents_to_decimal
from xerolink_common.reasons import Reason

from xerolink_poster.adapters import operations as deps
from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.xero_client import Credentials
from xerolink_poster.domain.kinds import ObjectType
from xerolink_poster.service_layer import outcomes
from xerolink_poster.service_layer.dispatch import refusals
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.results import Results, Retry
from xerolink_poster.service_layer.dispatch.work import Document, Work
from xerolink_poster.service_layer.drift_checks import Observed
from xerolink_poster.service_layer.drift_rereads import RereadFailed, read_invoices, read_object
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

PAYABLE = "AUTHORISED"


def check_later_payments(gate: Gate, results: Results, works: list[Work]) -> list[Work]:
    """The works to send: those with no later payment, and those whose later payments Xero
    would take as their documents stand now, after what the batch's other works pay on them. The
    others are held, refused or retried."""
    checked = [w for w in works if w.later_payments]
    if not checked:
        return works
    by_connection: dict[str, list[Work]] = defaultdict(list)
    for w in checked:
        by_connection[w.connection.connection_id].append(w)
    stopped: set[int] = set()
    for cid, members in by_connection.items():
        batch = [w for w in works if w.connection.connection_id == cid]
        paying = _paid_first(batch)
        for xero_id, amount in _paid_elsewhere(results, cid, members, {w.link.id for w in batch}).items():
            paying[xero_id] += amount
        stopped |= _check(gate, results, members, paying)
    return [w for w in works if id(w) not in stopped]


def _paid_elsewhere(results: Results, connection_id: str, works: list[Work], batch: set[int]) -> dict[str, Decimal]:
    """What postings outside the batch still have to pay on the works' documents, by lower-case
    Xero id: the payments and allocations of their open work not made yet (an invoice paid from
    trust whose spend is made and whose payment waits for a retry, a receipt backing off). Xero
    takes them from what the invoice owes when they are sent. One read by the dependency index."""
    by_record = {
        document[0]: document[2].lower()
        for w in works
        for payment in w.later_payments
        if (document := payment.document)[3] == ObjectType.INVOICE
    }
    with UnitOfWork(results.d.db, write=False) as uow:
        open_work = uow.links.open_work_paying(connection_id, by_record)
    paying: dict[str, Decimal] = defaultdict(Decimal)
    for work in open_work:
        if work.link_id in batch:
            continue
        mapped = mapper_pb2.MapTransactionResponse()
        mapped.ParseFromString(work.operations)
        made = {o.get("local_ref") for o in json.loads(work.xero_objects or "[]") if isinstance(o, dict)}
        for op in mapped.operations:
            body = deps.body_of(op)
            if op.local_ref in made or body not in ("payment", "allocation"):
                continue
            refs = [deps.record_of(ref) for ref, wanted in deps.document_refs(op) if wanted == ObjectType.INVOICE]
            if work.document in refs:
                paying[by_record[work.document]] += cents_to_decimal(getattr(op, body).amount.units)
    return paying


def _paid_first(works: list[Work]) -> dict[str, Decimal]:
    """What the batch's payments and allocations sent as they stand (their posting's next
    operation) pay on each invoice, by lower-case Xero id: Xero takes them from what it owes."""
    paying: dict[str, Decimal] = defaultdict(Decimal)
    for w in works:
        if w.operation is None or w.body not in ("payment", "allocation"):
            continue
        amount = cents_to_decimal(getattr(w.operation, w.body).amount.units)
        for _, _, xero_id, object_type in w.documents:
            if object_type == ObjectType.INVOICE:
                paying[xero_id.lower()] += amount
    return paying


def _documents(w: Work) -> list[Document]:
    return [payment.document for payment in w.later_payments]


def _check(gate: Gate, results: Results, works: list[Work], paying: dict[str, Decimal]) -> set[int]:
    """Reads the documents of one connection's works; returns the ids of the works not to send."""
    creds = gate.credentials(works[0].connection)
    try:
        observed = _read(gate, creds, [d for w in works for d in _documents(w)])
    except RereadFailed as exc:
        message = (
            f"its payment's document is read before its first operation is sent, and the read failed: {exc.message}"
        )
        results.retry_together(
            [Retry.after_lookup(works, False, exc.reason, message, exc.rate_limited, gate.blocked_until)]
        )
        return {id(w) for w in works}
    unpayable = [(w, problem) for w in works if (problem := _unpayable(w, observed, paying)) is not None]
    if not unpayable:
        return set()
    stopped = {id(w) for w, _ in unpayable}
    waiting = [Retry([w], False, p.reason, p.message) for w, p in unpayable if p.wait]
    if waiting:
        results.retry_together(waiting)
        unpayable = [(w, p) for w, p in unpayable if not p.wait]
        if not unpayable:
            return stopped
    # Drifted documents (paid, voided, deleted in Xero) hold their entries, as a refusal would.
    still = refusals.hold_drifted(results, [(w, [p.message]) for w, p in unpayable], observed, _documents)
    if still:
        why = {id(w): p for w, p in unpayable}
        _refuse(results, [(w, why[id(w)]) for w, _ in still])
    return stopped


def _read(gate: Gate, creds: Credentials, documents: list[Document]) -> dict[str, Observed]:
    """Xero's current element of each document by lower-case id: invoices a GET of many, others
    one a GET. An AUTHORISED document whose AmountDue cannot be read fails the read: what it owes
    is what the check needs, and is never guessed."""
    wanted = {xero_id.lower(): object_type for _, _, xero_id, object_type in documents}
    invoices = [x for x, t in wanted.items() if t == ObjectType.INVOICE]
    elements = read_invoices(gate, creds, invoices) if invoices else {}
    for xero_id, object_type in wanted.items():
        if object_type != ObjectType.INVOICE:
            elements[xero_id] = read_object(gate, creds, object_type, xero_id)
    for xero_id, element in elements.items():
        if element is not None and element.get("Status") == PAYABLE and _money(element.get("AmountDue")) is None:
            raise RereadFailed(
                Reason.XERO_LOOKUP_FAILED, f"Xero's answer gave document {xero_id} no AmountDue that could be read"
            )
    return {
        x: Observed(wanted[x], x, element, str(element.get("UpdatedDateUTC", "")) if element else "")
        for x, element in elements.items()
    }


@dataclass(frozen=True)
class _Problem:
    reason: Reason
    message: str
    # Only what other postings of the batch pay stops it, and Xero may refuse those: it is
    # checked again once they are answered, not refused for good.
    wait: bool = False


def _unpayable(w: Work, observed: dict[str, Observed], paying: dict[str, Decimal]) -> _Problem | None:
    """Why Xero would refuse one of the work's later payments, as its documents read now and
    after what `paying` holds (the batch's other payments, by document); None when it would take
    them, which are then added to `paying`."""
    for payment in w.later_payments:
        record, _, xero_id, _ = payment.document
        seen = observed.get(xero_id.lower())
        element: dict[str, Any] | None = seen.document if seen is not None else None
        if element is None:
            return _Problem(
                Reason.PAYMENT_NOT_PAYABLE_IN_XERO,
                f"{record}'s document {xero_id} is no longer in Xero: its payment cannot be made; nothing was sent",
            )
        status = str(element.get("Status") or "")
        if status != PAYABLE:
            return _Problem(
                Reason.PAYMENT_NOT_PAYABLE_IN_XERO,
                f"{record}'s document {xero_id} is {status or 'of no status'} in Xero: Xero takes payments only on "
                "AUTHORISED documents; nothing was sent",
            )
        currency = str(element.get("CurrencyCode") or "")
        if currency and currency != payment.currency:
            # Xero reads Payment.Amount in the invoice's currency (BankAmount is the bank account's).
            return _Problem(
                Reason.DOCUMENT_IN_ANOTHER_CURRENCY,
                f"{record} is a {currency} document in Xero and this posting pays it in {payment.currency}: Xero "
                f"would read its amount as {currency}; nothing was sent. Post it in {currency}, or enter it in Xero",
            )
        due = _money(element.get("AmountDue"))
        earlier = paying[xero_id.lower()]
        if due is not None and payment.amount <= due < payment.amount + earlier:
            return _Problem(
                Reason.PAYMENT_NOT_PAYABLE_IN_XERO,
                f"{record}'s document {xero_id} owes {due} in Xero, other postings sent now pay {earlier} on it and "
                f"this one pays {payment.amount}: nothing of it was sent; it is checked again once Xero has "
                "answered them",
                wait=True,
            )
        if due is not None and payment.amount > due:
            return _Problem(
                Reason.PAYMENT_NOT_PAYABLE_IN_XERO,
                f"{record}'s document {xero_id} owes {due} in Xero, and this posting pays {payment.amount}: "
                "Xero refuses a payment over the amount due; nothing was sent. Correct the amount in Actionstep and "
                "post it again",
            )
    for payment in w.later_payments:
        paying[payment.document[2].lower()] += payment.amount
    return None


def _money(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        found = Decimal(str(value))
    except InvalidOperation:
        return None
    return found if found.is_finite() else None


def _refuse(results: Results, refused: list[tuple[Work, _Problem]]) -> None:
    """Refused for good before anything of them was sent: Xero would refuse the payment."""

    def write(uow: UnitOfWork) -> None:
        now = now_us()
        results.preload(uow, [w for w, _ in refused])
        for w, problem in refused:
            row, link = results.reload(uow, w)
            if row is not None and link is not None:
                outcomes.record_rejected(uow, row, link, problem.reason, problem.message, [], now, results.d.actor)

    results.handing_back([w for w, _ in refused], write)
    results.d.changes.notify()
