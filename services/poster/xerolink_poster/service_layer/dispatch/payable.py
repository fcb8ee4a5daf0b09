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
the amount due is refused with Xero's figure, nothing sent. Entries whose last call had no answer
are not checked here: their look-up comes first."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from xerolink_common.reasons import Reason

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
    would take as its documents stand now. The others are held, refused or retried."""
    checked = [w for w in works if w.later_payments and not w.row.uncertain]
    if not checked:
        return works
    by_connection: dict[str, list[Work]] = defaultdict(list)
    for w in checked:
        by_connection[w.connection.connection_id].append(w)
    stopped: set[int] = set()
    for members in by_connection.values():
        stopped |= _check(gate, results, members)
    return [w for w in works if id(w) not in stopped]


def _documents(w: Work) -> list[Document]:
    return [document for document, _ in w.later_payments]


def _check(gate: Gate, results: Results, works: list[Work]) -> set[int]:
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
    # What the batch's earlier postings will pay on each document counts against its amount due.
    paying: dict[str, Decimal] = defaultdict(Decimal)
    unpayable = [(w, [problem]) for w in works if (problem := _unpayable(w, observed, paying))]
    if not unpayable:
        return set()
    stopped = {id(w) for w, _ in unpayable}
    # Drifted documents (paid, voided, deleted in Xero) hold their entries, as a refusal would.
    still = refusals.hold_drifted(results, unpayable, observed, _documents)
    if still:
        _refuse(results, still)
    return stopped


def _read(gate: Gate, creds: Credentials, documents: list[Document]) -> dict[str, Observed]:
    """Xero's current element of each document by lower-case id: invoices a GET of many, others
    one a GET."""
    wanted = {xero_id.lower(): object_type for _, _, xero_id, object_type in documents}
    invoices = [x for x, t in wanted.items() if t == ObjectType.INVOICE]
    elements = read_invoices(gate, creds, invoices) if invoices else {}
    for xero_id, object_type in wanted.items():
        if object_type != ObjectType.INVOICE:
            elements[xero_id] = read_object(gate, creds, object_type, xero_id)
    return {
        x: Observed(wanted[x], x, element, str(element.get("UpdatedDateUTC", "")) if element else "")
        for x, element in elements.items()
    }


def _unpayable(w: Work, observed: dict[str, Observed], paying: dict[str, Decimal]) -> str:
    """Why Xero would refuse one of the work's later payments, as its documents read now and
    after what `paying` holds (the earlier postings' payments, by document); "" when it would
    take them, which are then added to `paying`."""
    for (record, _, xero_id, _), amount in w.later_payments:
        seen = observed.get(xero_id.lower())
        element: dict[str, Any] | None = seen.document if seen is not None else None
        if element is None:
            return f"{record}'s document {xero_id} is no longer in Xero: its payment cannot be made"
        status = str(element.get("Status") or "")
        if status != PAYABLE:
            return (
                f"{record}'s document {xero_id} is {status or 'of no status'} in Xero: Xero takes payments only on "
                "AUTHORISED documents; nothing was sent"
            )
        due = _money(element.get("AmountDue"))
        earlier = paying[xero_id.lower()]
        if due is not None and amount + earlier > due:
            others = f", of which {earlier} is paid by postings sent before this one" if earlier else ""
            return (
                f"{record}'s document {xero_id} owes {due} in Xero{others}, and this posting pays {amount}: Xero "
                "refuses a payment over the amount due; nothing was sent. Correct the amount in Actionstep and post "
                "it again"
            )
    for (_, _, xero_id, _), amount in w.later_payments:
        paying[xero_id.lower()] += amount
    return ""


def _money(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _refuse(results: Results, refused: list[refusals.Refused]) -> None:
    """Refused for good before anything of them was sent: Xero would refuse the payment."""

    def write(uow: UnitOfWork) -> None:
        now = now_us()
        results.preload(uow, [w for w, _ in refused])
        for w, messages in refused:
            row, link = results.reload(uow, w)
            if row is not None and link is not None:
                outcomes.record_rejected(
                    uow, row, link, Reason.PAYMENT_NOT_PAYABLE_IN_XERO, "; ".join(messages), [], now, results.d.actor
                )

    results.handing_back([w for w, _ in refused], write)
    results.d.changes.notify()
