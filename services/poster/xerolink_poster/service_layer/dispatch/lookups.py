"""Uncertain outcomes: before re-creating, a job looks in Xero for the objects an unanswered or
unreadable call may have created, by fields Xero keeps, never adopting one another link holds."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from xerolink_common.reasons import Reason

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer, url_length, value_length
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.service_layer.dispatch import answers
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.results import Results, Retry
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.where_groups import OR, or_groups
from xerolink_poster.service_layer.dispatch.work import Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
# Xero pages lists by 100; a look-up reads at most this many pages (its `where` selects a few).
XERO_PAGE_SIZE = 100
LOOKUP_PAGES = 20
# Each paged list's own id, to name the order its pages come in (`_list_all`).
_ID_FIELDS = {resource: id_field for resource, id_field, _ in payloads.RESOURCES.values()}
# Records looked up in one GET at most: their objects fit in its first page.
MAX_TOGETHER = 50


def _id_of(item: dict[str, Any], id_field: str) -> str:
    xero_id = item.get(id_field)
    return xero_id.lower() if isinstance(xero_id, str) else ""


def _order(resource: str) -> str:
    return f"{_ID_FIELDS[resource]} ASC"


def _paging_length(resource: str) -> int:
    """How long the query after a look-up's `where` is at its last page (`_list_all`)."""
    return len("&order=") + value_length(_order(resource)) + len(f"&page={LOOKUP_PAGES}")


class LookupFailed(Exception):
    def __init__(self, message: str, rate_limited: bool) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


def check_lookup(answer: XeroAnswer, collection: str, one: bool = False) -> list[dict[str, Any]]:
    """The objects a look-up's answer lists in `collection` (exactly one when `one`: read by id).
    Xero answers a look-up that finds nothing with the list empty ("Invoices": [];
    XeroAPI/xero-php-oauth2#356 reports its SDK refusing that empty list), so only a success whose
    list holds objects alone says what Xero holds. Anything else (no list, a string where an
    object was, a page that is no JSON) was garbled on the way: read as "none found" it had a bill
    created twice, so it fails the look-up, to be made again."""
    if not answers.readable_lookup(answer):
        raise LookupFailed(f"Xero answered {answer.status} to a look-up", answer.status == 429)
    items = answer.body.get(collection)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items) or (one and len(items) != 1):
        raise LookupFailed(f"Xero's answer to a look-up listed no {collection} that could be read", False)
    return items


@dataclass
class _Get:
    """One GET of a look-up: the records its answer is for, each with its look-up (None: an
    allocation, read on its credit note), and the collection and `where` it lists ("": the note)."""

    members: list[Work]
    lookups: list[payloads.Lookup | None]
    resource: str
    where: str


def note_allocations(notes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The allocations of credit notes Xero answered with, by id. Each must be readable: its
    AllocationID a GUID (Xero's OpenAPI, Allocation.AllocationID `format: uuid`; a credit note
    read by id lists them, XeroAPI/xero-mcp-server#194 reading them there to delete one), the
    invoice it is to and a numeric amount (both `required` in the OpenAPI's Allocation). One
    that cannot be read fails the read (LookupFailed): left out
    of what the note held before a call, a hand-made allocation looked like the call's; left out
    of a look-up, the record's own was made again."""
    allocations: dict[str, dict[str, Any]] = {}
    for note in notes:
        listed = note.get("Allocations") or []
        if not isinstance(listed, list):
            raise LookupFailed("Xero's answer listed a credit note's allocations garbled", False)
        for allocation in listed:
            invoice = allocation.get("Invoice") if isinstance(allocation, dict) else None
            if (
                not isinstance(allocation, dict)
                or not _is_xero_id(str(allocation.get("AllocationID", "")))
                or not isinstance(invoice, dict)
                or not isinstance(invoice.get("InvoiceID"), str)
                or not _is_amount(allocation.get("Amount"))
            ):
                raise LookupFailed("Xero's answer listed a credit note's allocation garbled", False)
            allocations[str(allocation["AllocationID"])] = allocation
    return allocations


def _is_amount(value: object) -> bool:
    amount = payloads.amount_of(value)
    return amount is not None and amount.is_finite()


def _is_xero_id(value: str) -> bool:
    try:
        return uuid.UUID(value).int != 0  # the zero GUID fills ids Xero did not issue
    except ValueError:
        return False


class LookUps:
    def __init__(self, shared: Shared, gate: Gate, results: Results) -> None:
        self.d = shared
        self.gate = gate
        self.results = results

    def look_up(self, works: list[Work]) -> list[Work]:
        """Finds the objects uncertain calls may have created. Found: recorded as created. Not
        found: returned, to be created now. Xero unreachable: retried later, still uncertain.
        Records whose look-ups differ only in their tag are looked up together, one GET for as
        many as fit in a URL (a lost answer to a call of 50 cost 50 GETs)."""
        to_create: list[Work] = []
        found: list[tuple[Work, list[XeroObjectRef]]] = []
        # Written together once the pass ends: the entries of one failed call come back together
        # however many GETs their look-ups took (Results.retry_together).
        retries: list[Retry] = []
        taken: set[str] = set()  # adopted in this pass, not yet written: held all the same
        try:
            for get in self._plan(works, to_create):
                members = get.members
                try:
                    creds = self.gate.credentials(members[0].connection)
                    if get.resource:
                        items = self._list_all(creds, get.resource, get.where)
                    else:
                        items = self._allocations_of(creds, members[0])
                except Uncertain as exc:
                    retries.append(Retry(members, True, Reason.XERO_NO_ANSWER, f"look-up failed ({exc})"))
                    continue
                except LookupFailed as exc:
                    retries.append(
                        Retry.after_lookup(
                            members,
                            True,
                            Reason.XERO_LOOKUP_FAILED,
                            str(exc),
                            exc.rate_limited,
                            self.gate.blocked_until,
                        )
                    )
                    continue
                listed = [
                    (self._allocations(w, items), False) if lookup is None else _listed(w, lookup, items)
                    for w, lookup in zip(members, get.lookups, strict=True)
                ]
                # Who holds what, for the GET's every record in one read (one a record was most of
                # what a look-up cost the poster).
                with UnitOfWork(self.d.db, write=False) as uow:
                    holders = uow.links.holders(
                        members[0].connection.connection_id, [x for candidates, _ in listed for x, _ in candidates]
                    )
                garbled: list[Work] = []
                for w, (candidates, unreadable) in zip(members, listed, strict=True):
                    match = _take(w, candidates, holders, taken)
                    if match is not None:
                        log.info("found %s in Xero after an uncertain call: %s", w.identity, match[0].xero_id)
                        taken.add(match[0].xero_id)
                        found.append((w, match))
                    elif unreadable:
                        garbled.append(w)  # what could not be read may be its own: made again, not created
                    else:
                        to_create.append(w)
                if garbled:
                    retries.append(
                        Retry(
                            garbled,
                            True,
                            Reason.XERO_LOOKUP_FAILED,
                            "Xero's answer to a look-up listed an object carrying the record's tag garbled",
                        )
                    )
        finally:
            # Written even when the pass stops (its lease lost, say), as each GET's were before.
            self.results.retry_together(retries)
        for w in to_create:
            w.looked_up = True
        if found:
            self.results.write(found, [])
        return to_create

    def _plan(self, works: list[Work], to_create: list[Work]) -> list[_Get]:
        """The GETs to make. An allocation is read on its credit note, alone; a record that was
        never sent goes to `to_create`."""
        planned: list[_Get] = []
        together: dict[tuple[str, str, tuple[str, ...]], list[tuple[Work, payloads.Lookup]]] = {}
        for w in works:
            assert w.operation is not None
            if w.body == "allocation":
                planned.append(_Get([w], [None], "", ""))
                continue
            lookup = payloads.lookup_of(w.operation, w.reference, w.contact_id)
            if lookup is None or (w.body == "bank_transaction" and not w.contact_id and "Contact" in lookup.where):
                to_create.append(w)  # an overpayment whose contact was never linked was never sent
            elif not lookup.clause:
                planned.append(_Get([w], [lookup], lookup.resource, lookup.where))
            else:
                key = (w.connection.connection_id, lookup.resource, lookup.tag_path)
                together.setdefault(key, []).append((w, lookup))
        for (_, resource, _), pairs in together.items():
            creds = self.gate.credentials(pairs[0][0].connection)
            # The order and page come after the `where` (`_list_all`).
            fixed = url_length(creds.base_url, resource, "where") + _paging_length(resource)
            clauses = [lookup.clause for _, lookup in pairs]
            for group in or_groups(fixed, clauses, MAX_TOGETHER):
                chosen = [pairs[p] for p in group]
                where = OR.join(clauses[p] for p in group)
                planned.append(_Get([w for w, _ in chosen], [lookup for _, lookup in chosen], resource, where))
        return planned

    def _list_all(self, creds: Credentials, resource: str, where: str) -> list[dict[str, Any]]:
        """Every object `where` selects. Paged where Xero declares `page`: an unpaged list of
        invoices, credit notes, bank transactions or journals comes without its lines (Xero's
        OpenAPI, `page`: "Up to 100 ... with line items shown"), and an overpayment's tag is in
        its first line. BankTransfers declares no `page` and has no lines.

        The pages come ordered by the object's id (`order`, "Order by an any element"): the
        OpenAPI does not say what order a list takes without one, and an order an edit changes
        (by last update, say) slides an object from a page not yet read onto one already read,
        where the look-up never sees it. An id never changes. An object listed again on a later
        page (one made meanwhile with a lower id pushed it on) is kept once; one listed twice on a
        page is left to the checks of a garbled answer."""
        if resource == "BankTransfers":
            return check_lookup(self.gate.call(creds, "GET", resource, params={"where": where}), resource)
        id_field = _ID_FIELDS[resource]
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        for page in range(1, LOOKUP_PAGES + 1):
            params = {"where": where, "order": _order(resource), "page": str(page)}
            found = check_lookup(self.gate.call(creds, "GET", resource, params=params), resource)
            items += [i for i in found if _id_of(i, id_field) not in seen]
            seen |= {_id_of(i, id_field) for i in found} - {""}
            if len(found) < XERO_PAGE_SIZE:
                return items
        # What was not read may hold a record's object: taken as none, it would be created twice.
        raise LookupFailed(f"a look-up of {resource} listed more than {LOOKUP_PAGES} pages", False)

    def _allocations_of(self, creds: Credentials, w: Work) -> list[dict[str, Any]]:
        """The allocations of the credit note the allocation was made on, as Xero holds it now
        (every one readable, or the look-up fails)."""
        answer = self.gate.call(creds, "GET", f"CreditNotes/{w.resolved['credit_note']}")
        return list(note_allocations(check_lookup(answer, "CreditNotes", one=True)).values())

    def _allocations(self, w: Work, allocations: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        """The credit note's allocations that could be this record's: of this amount, to this
        invoice, not deleted, and not held by the note just before the uncertain call (`hint`)."""
        assert w.operation is not None
        before = set(json.loads(w.row.lookup_hint)) if w.row.lookup_hint else set()
        amount = payloads.element_of(w.operation, "", "", w.resolved)["Amount"]
        return [
            (str(allocation["AllocationID"]), allocation)
            for allocation in allocations
            if str(allocation["Invoice"]["InvoiceID"]).lower() == w.resolved["invoice"].lower()
            and not allocation.get("IsDeleted")
            and payloads.same_amount(allocation.get("Amount"), amount)
            and str(allocation["AllocationID"]) not in before
        ]


def _listed(
    w: Work, lookup: payloads.Lookup, items: list[dict[str, Any]]
) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """The listed objects that could be this record's, with their ids (its own tag, what its
    `where` asks, not deleted or voided), and whether an object carrying its tag could not be
    read: its Type or Amount (`Lookup.matches`), its Status (each of these types has one, and a
    deleted copy read as live was adopted: the record's money never posted; `is_live` reads only
    the values Xero's OpenAPI enumerates for the type), or, live, its id,
    which Xero gives every object as a GUID (its OpenAPI: InvoiceID, PaymentID, ... `format:
    uuid`), and the Overpayment's beside an overpayment transaction's. Garbled on the way, such
    an object may be the record's own: with no readable one to take, the look-up is made again
    (skipped as "not this one", the record was created a second time)."""
    assert w.operation is not None
    overpayment = payloads.makes_overpayment(w.operation)
    candidates: list[tuple[str, dict[str, Any]]] = []
    unreadable = False
    for item in items:
        verdict = lookup.matches(item)
        if verdict is False:
            continue
        live = payloads.is_live(w.body, item)
        if verdict is None or live is None:
            unreadable = True
            continue
        if not live:
            continue
        xero_id = payloads.ids_of(w.body, item)[0]
        if not _is_xero_id(xero_id) or (overpayment and not _is_xero_id(str(item.get("OverpaymentID", "")))):
            unreadable = True
            continue
        candidates.append((xero_id, item))
    return candidates, unreadable


def _take(
    w: Work, candidates: list[tuple[str, dict[str, Any]]], holders: dict[str, set[int]], taken: set[str]
) -> list[XeroObjectRef] | None:
    """The first candidate this look-up has not adopted for another record and that no other
    link holds nor an unlink left orphaned; recorded as the record's answer."""
    assert w.operation is not None
    held = sorted({x for x, _ in candidates if holders.get(x, set()) - {w.link.id}})
    if held:
        log.warning("a look-up for %s passed over objects other links hold: %s", w.identity, held)
    for xero_id, item in candidates:
        if xero_id and xero_id not in taken and xero_id not in held:
            w.answer(item)
            return payloads.created_objects(w.body, w.operation.local_ref, item)
    return None
