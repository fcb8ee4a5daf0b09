"""Preparing a job: each entry's next operation, its documents resolved to their Xero objects and
its contact to a known one; entries whose documents are not linked start waiting, those whose
documents drifted in Xero so that they cannot be paid are held (drift_holds), broken ones are
rejected, and finished ones link."""

from __future__ import annotations

import json

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.money import cents_to_decimal
from xerolink_common.reasons import Reason

from xerolink_poster.adapters import operations as deps
from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain.corrections import repost_number
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer import drift_holds, outcomes
from xerolink_poster.service_layer.dispatch.results import Results
from xerolink_poster.service_layer.dispatch.shared import Shared
from xerolink_poster.service_layer.dispatch.work import LaterPayment, Work
from xerolink_poster.service_layer.unit_of_work import UnitOfWork


def prepare(shared: Shared, results: Results, works: list[Work]) -> list[Work]:
    """Finds each entry's next operation and resolves its documents and contact; entries whose
    documents are not linked start waiting, finished ones link. Returns the entries to send."""
    ready: list[Work] = []
    waiting: list[tuple[Work, list[RecordRef]]] = []
    broken: list[tuple[Work, Reason, str]] = []
    finished: list[Work] = []
    with UnitOfWork(shared.db, write=False) as uow:
        for w in works:
            mapped = mapper_pb2.MapTransactionResponse()
            mapped.ParseFromString(w.row.operations)
            own = uow.links.xero_objects(w.link)
            w.operation = deps.next_operation(mapped.operations, own)
            if w.operation is None:
                finished.append(w)
                continue

            def linked_objects(record: RecordRef, cid: str = w.connection.connection_id) -> list[XeroObjectRef] | None:
                dep = uow.links.get_link(cid, record)
                if dep is None or dep.state != LinkState.LINKED:
                    return None
                # A document being corrected is about to be voided and unlinked: a payment
                # made on it now would stop the void. It waits for the document to link again.
                if uow.corrections.under_correction(cid, record, dep.generation):
                    return None
                return uow.links.xero_objects(dep)

            missing: list[RecordRef] = []
            problem = ""
            names = ["document"] if w.body == "payment" else ["credit_note", "invoice"]
            for name, (ref, wanted) in zip(names, deps.document_refs(w.operation), strict=False):
                found = deps.resolve(ref, wanted, own, linked_objects)
                record = deps.record_of(ref)
                if found is not None:
                    w.resolved[name] = found.xero_id
                    dep = uow.links.get_link(w.connection.connection_id, record) if record is not None else None
                    if record is not None and dep is not None:
                        w.documents.append((record, dep, found.xero_id, found.type))
                    continue
                if record is None and any(o.local_ref == ref.local_ref for o in own):
                    wanted_name = xero_pb2.ObjectType.Name(wanted)  # type: ignore[arg-type]
                    problem = f"operation {ref.local_ref!r} was performed but Xero named no {wanted_name} for it"
                elif record is None:
                    problem = f"operation {w.operation.local_ref} refers to {ref.local_ref!r}, not performed"
                elif linked_objects(record) is None:
                    missing.append(record)
                else:
                    wanted_name = xero_pb2.ObjectType.Name(wanted)  # type: ignore[arg-type]
                    problem = f"{record} is linked but holds no {wanted_name}"
            # The documents the posting's later operations pay are checked before its first is
            # sent: an invoice paid from trust sends its trust spend first, and a spend sent for
            # an invoice held (paid in Xero since) or being corrected moved trust money for a
            # payment that could not follow.
            for later in deps.later_operations(mapped.operations, own):
                for ref, wanted in deps.document_refs(later):
                    record = deps.record_of(ref)
                    if record is None:
                        continue  # an object of this posting, made by an operation before it
                    objects = linked_objects(record)
                    found = deps.resolve(ref, wanted, own, linked_objects) if objects is not None else None
                    dep = uow.links.get_link(w.connection.connection_id, record)
                    if objects is None:
                        missing += [] if record in missing else [record]
                    elif found is None or dep is None:
                        wanted_name = xero_pb2.ObjectType.Name(wanted)  # type: ignore[arg-type]
                        problem = f"{record} is linked but holds no {wanted_name}"
                    else:
                        document = (record, dep, found.xero_id, found.type)
                        w.later_documents.append(document)
                        if deps.body_of(later) == "payment":
                            amount = later.payment.amount
                            w.later_payments.append(
                                LaterPayment(document, cents_to_decimal(amount.units), amount.currency_code)
                            )
            if problem:
                broken.append((w, Reason.DEPENDENCY_HAS_NO_DOCUMENT, problem))
                continue
            if missing:
                waiting.append((w, missing))
                continue
            w.contact = payloads.contact_of(w.operation)
            w.reference = payloads.tracking_reference(
                payloads.tag_base(w.operation), w.link.kind, w.link.record_id, w.link.generation
            )
            ready.append(w)
        foreign = _in_other_currencies(uow, ready)
        broken.extend((w, Reason.DOCUMENT_IN_ANOTHER_CURRENCY, problem) for w, problem in foreign.values())
        ready = [w for w in ready if id(w) not in foreign]
        held = _held(uow, ready)
        ready = [w for w in ready if id(w) not in held]
        _known_contacts(uow, ready)
        _renumber(uow, ready)
    if waiting or broken or finished or held:

        def write(uow: UnitOfWork) -> None:
            now = now_us()
            for w, missing in waiting:
                row, link = results.reload(uow, w)
                if row is not None and link is not None:
                    outcomes.record_waiting(uow, row, link, missing, now, shared.actor)
            for w, reason, problem in broken:
                row, link = results.reload(uow, w)
                if row is not None and link is not None:
                    outcomes.record_rejected(uow, row, link, reason, problem, [], now, shared.actor)
            for w, hold in held.values():
                row, link = results.reload(uow, w)
                if row is not None and link is not None:
                    drift_holds.hold(uow, row, link, hold, now, shared.actor)
            for w in finished:
                row, link = results.reload(uow, w)
                if row is not None and link is not None and own_last(uow, link) is not None:
                    last = own_last(uow, link)
                    assert last is not None
                    outcomes.record_created(uow, row, link, last, True, now, shared.actor)

        results.handing_back(
            [w for w, _ in waiting] + [w for w, _, _ in broken] + [w for w, _ in held.values()] + finished, write
        )
        shared.changes.notify()
    return ready


def _in_other_currencies(uow: UnitOfWork, works: list[Work]) -> dict[int, tuple[Work, str]]:
    """The payments and allocations in another currency than a Xero document they settle, as
    Xero wrote the document's CurrencyCode in its answer (the drift snapshot). Xero reads a
    payment's Amount in its invoice's currency ("Must be less than or equal to the outstanding
    amount owing on the invoice", with BankAmount "in the currency of the bank account":
    Payment in Xero's OpenAPI description), so AUD 500.00 paid on a USD invoice would be booked
    as USD 500.00. Nothing is sent; a document without a snapshot is not checked. One read for
    the batch. Keyed by id(work), with the sentence."""
    settling = [(w, currency) for w in works if w.documents and (currency := _currency_of(w))]
    keys = [(w.connection.connection_id, xero_id) for w, _ in settling for _, _, xero_id, _ in w.documents]
    if not keys:
        return {}
    snapshots = uow.drift.snapshots_of_objects(keys)
    found: dict[int, tuple[Work, str]] = {}
    for w, currency in settling:
        for record, _, xero_id, _ in w.documents:
            snapshot = snapshots.get((w.connection.connection_id, xero_id))
            written = json.loads(snapshot.document).get("CurrencyCode") if snapshot is not None else None
            if written and written != currency:
                found[id(w)] = (
                    w,
                    f"{record} is a {written} document in Xero and this {w.body} is in {currency}: Xero would "
                    f"read its amount as {written}; post it in {written}, or enter it in Xero",
                )
                break
    return found


def _currency_of(w: Work) -> str:
    """The currency of a payment's or allocation's amount ("" for other operations)."""
    if w.body not in ("payment", "allocation"):
        return ""
    return str(getattr(w.operation, w.body).amount.currency_code)


def _held(uow: UnitOfWork, works: list[Work]) -> dict[int, tuple[Work, drift_holds.Hold]]:
    """The entries whose documents drifted in Xero so that they cannot be paid, their later
    operations' included: one query for the open drifts of every document the batch uses. Keyed
    by id(work)."""
    link_ids = [dep.id or 0 for w in works for _, dep, _, _ in (*w.documents, *w.later_documents)]
    if not link_ids:
        return {}
    found = drift_holds.blocking_of_links(uow, link_ids)
    held: dict[int, tuple[Work, drift_holds.Hold]] = {}
    for w in works:
        for record, dep, xero_id, _ in (*w.documents, *w.later_documents):
            drift = next((d for d in found.get(dep.id or 0, []) if d.xero_id.lower() == xero_id.lower()), None)
            if drift is not None:
                held[id(w)] = (w, drift_holds.Hold(record, dep, drift))
                break
    return held


def _renumber(uow: UnitOfWork, works: list[Work]) -> None:
    """A sales invoice or client credit note posted again after an unlink, whose own earlier
    generation's document was left in Xero (orphaned) under the same number, is given
    repost_number to use if Xero refuses its number as in use and the orphan is VOIDED
    (creating.py): Xero keeps a voided document's number (docs/emulator.md "Numbers") and a voided
    one cannot be renamed (correction_plans renames before voiding for that reason). Only this
    record's orphans count, and only those a correction did not rename before voiding: a number
    held by another record, or by nothing xerolink orphaned from this one, is never moved. The
    registry's number may be stale (the orphan renamed by hand), so Xero's refusal and a read of
    the orphan decide."""
    for w in works:
        assert w.operation is not None
        unique = payloads.unique_number(w.operation) if w.link.generation > 1 else None
        if unique is None:
            continue
        object_type, _, number = unique
        record = RecordRef(w.link.kind, w.link.record_id)
        orphans = [
            o
            for o in uow.links.list_orphans(w.connection.connection_id, record, object_type, 0, 1000)
            if o.number == number and o.generation < w.link.generation
        ]
        renamed = uow.corrections.renamed_documents([o.xero_id for o in orphans])
        holding = [o for o in orphans if o.xero_id.lower() not in renamed]
        if not holding:
            continue
        what = "invoice" if object_type == xero_pb2.OBJECT_TYPE_INVOICE else "credit note"
        w.renumber_to = repost_number(number, record, w.link.generation)
        w.renumber_holders = [o.xero_id for o in holding]
        w.renumber_note = (
            f"posted as {what} {w.renumber_to}: its number {number} is kept in Xero by its own voided {what} "
            f"of an earlier generation ({', '.join(o.xero_id for o in holding)}), left when it was unlinked"
        )


def _known_contacts(uow: UnitOfWork, works: list[Work]) -> None:
    """Each entry's Xero contact when its participant is linked to one: one query a connection."""
    wanted: dict[str, set[int]] = {}
    for w in works:
        if w.contact is not None:
            wanted.setdefault(w.connection.connection_id, set()).add(w.contact.participant_id)
    known = {
        (connection_id, participant): contact_id
        for connection_id, participants in wanted.items()
        for participant, contact_id in uow.contacts.contacts_of(connection_id, sorted(participants)).items()
    }
    for w in works:
        if w.contact is not None:
            w.contact_id = known.get((w.connection.connection_id, w.contact.participant_id), "")


def own_last(uow: UnitOfWork, link: LinkRow) -> XeroObjectRef | None:
    objects = uow.links.xero_objects(link)
    return objects[-1] if objects else None
