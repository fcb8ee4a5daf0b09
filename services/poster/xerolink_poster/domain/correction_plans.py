"""Planning the correction of a linked record, as Actionstep's help describes it ("Correcting
Accounting Errors in the Xero Integration", best-practice scenarios): ordered steps with who does
each.

For a payment: delete it in Xero, unlink it, then the Actionstep user edits and resaves (which
posts it again) or deletes it. For a document (invoice, supplier invoice, credit note): delete
its payments and allocations in Xero, void or delete it, unlink it and them, then the user deletes
the payments in Actionstep, reverts the document to draft, deletes it or edits and reposts it, and
pays it again. xerolink's steps come first; a person's steps follow.

Editing a sales invoice or a client credit note adds one step before the void: Xero keeps a
voided one's number and refuses a second ACCREC invoice (or ACCRECCREDIT credit note) with it, so
the old document is renamed (void_number) while Xero still lets it be edited (approved, no
payments or allocations), and the edited one is posted again under the number the client holds.

An invoice paid from trust kept in two organisations (the spend linked under the trust
organisation's connection, the payment under the office one) is one record: its other half's
objects are deleted in their own organisation (the saga sends each step through the connection
whose link holds the object), and its one unlink step unlinks both halves.

Pure: the facts (links, what Xero reports) are gathered by the service layer; what a plan is
made of is in corrections.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from xerolink_common.reasons import Reason

from xerolink_poster.domain.corrections import (
    DELETABLE_DOCUMENT,
    DOCUMENT_TYPES,
    GONE,
    UNIQUE_NUMBERED,
    VOIDABLE_DOCUMENT,
    Action,
    Actor,
    Intent,
    LinkFacts,
    NotCorrectable,
    Plan,
    Step,
    StepState,
    XeroDocument,
    document_of,
    object_label,
    object_name,
    record_name,
    void_number,
)
from xerolink_poster.domain.kinds import LinkGroup, ObjectType, TransactionKind
from xerolink_poster.domain.records import RecordRef, XeroObjectRef, group_of
from xerolink_poster.domain.states import LinkState

# Another connection's link of the same record (the other half of an invoice paid from trust kept
# in two organisations): its connection id and its facts.
OtherHalf = tuple[str, LinkFacts]

_DELETE_ACTION: Mapping[int, Action] = {
    ObjectType.PAYMENT: Action.DELETE_PAYMENT,
    ObjectType.BANK_TRANSACTION: Action.DELETE_BANK_TRANSACTION,
    ObjectType.ALLOCATION: Action.DELETE_ALLOCATION,
}


def check_target(link: LinkFacts | None, record: RecordRef, connection_id: str) -> None:
    """Refuses records that cannot be corrected, saying what to do instead."""
    if link is None:
        raise NotCorrectable(
            Reason.LINK_NOT_FOUND,
            f"{record_name(record)} ({record}) was never posted on connection {connection_id!r}: nothing of it is "
            "in Xero, so correct it in Actionstep only",
            not_found=True,
        )
    if link.state in (LinkState.PENDING, LinkState.WAITING):
        raise NotCorrectable(
            Reason.POSTING_IN_PROGRESS,
            f"{record_name(record)} is {link.state.value}: wait until it is linked or failed (GetLink), "
            "then plan again",
        )
    if link.state == LinkState.FAILED and link.outcome_unknown:
        raise NotCorrectable(
            Reason.LINK_OUTCOME_UNKNOWN,
            f"{record_name(record)} gave up without knowing whether Xero created it, so Xero may hold it: post "
            "the same content again so xerolink finds it in Xero (or creates it once), then correct it",
        )
    if link.state == LinkState.FAILED and link.objects:
        # Xero made its first operations before refusing a later one (an invoice paid from trust:
        # the trust spend, then the payment): not "not in Xero".
        held = ", ".join(object_name(o) for o in link.objects)
        raise NotCorrectable(
            Reason.LINK_PARTIALLY_POSTED,
            f"{record_name(record)} failed after part of it reached Xero, which holds {held}: post the same "
            "content again once what stopped it is mended (what Xero holds is not sent again), or unlink it "
            "(UnlinkLinks) and void or delete those in Xero by hand before correcting it in Actionstep",
        )
    if link.state == LinkState.FAILED:
        raise NotCorrectable(
            Reason.NOT_IN_XERO,
            f"{record_name(record)} failed to post, so it is not in Xero: fix it in Actionstep and post it again",
        )
    if link.state == LinkState.UNLINKED:
        orphans = ", ".join(object_name(o) for o in link.objects) or "nothing"
        numbered = [o for o in link.objects if o.type == ObjectType.INVOICE and o.number]
        reuse = ""
        if record.kind == TransactionKind.CLIENT_BILL and numbered:
            # Unlinked by hand: nothing freed the number, and Xero refuses a second invoice with it.
            label = object_name(numbered[0])
            reuse = (
                f". To post the edited bill again under {numbered[0].number}, first rename {label} in Xero "
                "before posting (Xero allows it while the invoice has no payments), then void it: Xero keeps a "
                "voided invoice's number and refuses it on a second invoice"
            )
        raise NotCorrectable(
            Reason.ALREADY_UNLINKED,
            f"{record_name(record)} is already unlinked; its Xero objects ({orphans}) are orphaned: delete or void "
            f"them in Xero by hand, or read an earlier correction with GetCorrection{reuse}",
        )
    group = group_of(record.kind)
    if group not in (LinkGroup.SALES_INVOICES, LinkGroup.PAYMENTS, LinkGroup.CREDIT_NOTES) or not all(
        o.type in _DELETE_ACTION or o.type in DOCUMENT_TYPES for o in link.objects
    ):
        raise NotCorrectable(
            Reason.CORRECTION_NOT_SUPPORTED,
            f"automated correction covers payments, credit note applications and documents; for "
            f"{record_name(record)} unlink it, then correct it in Xero by hand",
        )


def half_violation(half: OtherHalf) -> str | None:
    """Why a record cannot be corrected now because of its other half, or None."""
    connection_id, link = half
    if link.state in (LinkState.PENDING, LinkState.WAITING):
        return (
            f"{record_name(link.record)} is {link.state.value} under connection {connection_id} (its other half, in "
            "the other organisation): wait until it is linked or failed (GetLink), then plan again"
        )
    return None


def _delete_steps(link: LinkFacts, statuses: Mapping[str, str], connection_id: str = "") -> list[Step]:
    """Deletes a link's Xero objects, newest first (a trust payment's Payment before its SPEND);
    `connection_id` names the organisation of another connection's half."""
    steps = []
    where = f"the Xero organisation of connection {connection_id} (its trust half)" if connection_id else "Xero"
    for obj in reversed(link.objects):
        action = _DELETE_ACTION[obj.type]
        gone = statuses.get(obj.xero_id, "") in GONE
        steps.append(
            Step(
                action,
                Actor.XEROLINK,
                f"Delete {object_name(obj)} of {record_name(link.record)} in {where}",
                link.record,
                obj.type,
                obj.xero_id,
                parent_xero_id=link.credit_note_id,
                state=StepState.DONE if gone else StepState.PENDING,
                detail="already deleted in Xero" if gone else "",
            )
        )
    return steps


def renamed_number(target: LinkFacts, intent: Intent, xero: XeroDocument) -> tuple[str, str] | None:
    """(number, new number) when an edit must free the document's number before voiding it: an
    ACCREC invoice or ACCRECCREDIT credit note that Xero still lets be edited once its payments
    and allocations are gone. None otherwise: a deletion keeps the number on the voided document
    (what the client holds is cancelled, not reissued), drafts are deleted (a deleted document's
    number is free), suppliers' numbers (ACCPAY, ACCPAYCREDIT) are not unique. The number is the
    registry's (what Xero answered when it was posted), as the step computes it when it runs."""
    document = document_of(target)
    number = document.number
    if (
        intent != Intent.EDIT
        or (document.type, xero.doc_type) not in UNIQUE_NUMBERED
        or not number
        or xero.status not in VOIDABLE_DOCUMENT
    ):
        return None
    return number, void_number(number, target.record, target.generation)


def _rename_step(target: LinkFacts, document: XeroObjectRef, number: str, new_number: str) -> Step:
    label = object_label(document.type)
    return Step(
        Action.RENAME_DOCUMENT,
        Actor.XEROLINK,
        f"Rename {label} {number} in Xero to {new_number}, so the edited {record_name(target.record)} can be "
        f"posted again under {number} (Xero keeps a voided {label}'s number)",
        target.record,
        document.type,
        document.xero_id,
    )


def _halves_steps(halves: Sequence[OtherHalf], statuses: Mapping[str, str]) -> list[Step]:
    """Deletes the linked other halves' objects, each in its own organisation."""
    return [s for c, h in halves if h.state == LinkState.LINKED for s in _delete_steps(h, statuses, c)]


def _unlink_step(link: LinkFacts, halves: Sequence[OtherHalf] = ()) -> Step:
    others = [c for c, h in halves if h.state != LinkState.UNLINKED]
    with_halves = "".join(f" and its other half under connection {c}" for c in others)
    return Step(
        Action.UNLINK,
        Actor.XEROLINK,
        f"Unlink {record_name(link.record)}{with_halves} (their Xero objects are recorded as orphaned)"
        if others
        else f"Unlink {record_name(link.record)} (its Xero objects are recorded as orphaned)",
        link.record,
    )


def _user(description: str, record: RecordRef | None = None) -> Step:
    return Step(Action.MANUAL, Actor.ACTIONSTEP_USER, description, record)


def plan_payment(
    target: LinkFacts,
    intent: Intent,
    statuses: Mapping[str, str],
    document: LinkFacts | None,
    halves: Sequence[OtherHalf] = (),
) -> Plan:
    """A payment (or refund, or credit note application): delete it in Xero (and its other half
    in the other organisation), unlink it, then the user deletes it, or edits and resaves it
    (which posts it again)."""
    name = record_name(target.record)
    steps = [*_delete_steps(target, statuses), *_halves_steps(halves, statuses), _unlink_step(target, halves)]
    notes: list[str] = []
    if intent == Intent.DELETE:
        steps.append(_user(f"Delete {name} in Actionstep", target.record))
    else:
        steps.append(_user(f"Edit {name} in Actionstep and save it", target.record))
        if document is not None and document.state == LinkState.LINKED:
            paid = record_name(document.record)
            repost = f"Post {name} again: xerolink recreates it in Xero, because {paid} is still linked"
        else:
            repost = f"Post {name} again: it waits until the document it pays is linked, then xerolink creates it"
            notes.append("the document this record pays is not linked: the reposted record will wait for it")
        steps.append(_user(repost, target.record))
    return Plan(target.record, intent, tuple(steps), notes=tuple(notes))


def plan_document(
    target: LinkFacts,
    intent: Intent,
    xero: XeroDocument,
    dependents: Sequence[LinkFacts],
    statuses: Mapping[str, str],
    halves: Mapping[RecordRef, Sequence[OtherHalf]] | None = None,
) -> Plan:
    """A document: delete its payments and allocations in Xero, void or delete it, unlink them and
    it; then the user deletes the payments, reverts the document to draft, deletes it or edits
    and reposts it, and pays it again."""
    document = document_of(target)
    name = record_name(target.record)
    linked = [d for d in dependents if d.state == LinkState.LINKED]
    notes: list[str] = []
    blockers: list[str] = []
    for d in dependents:
        if d.held:
            notes.append(
                f"{record_name(d.record)} is held, not in Xero, as {object_name(document)} changed in Xero: once "
                f"{name} is unlinked it waits for it to be posted again and is then posted against it; delete it in "
                "Actionstep if it no longer applies"
            )
        elif d.state in (LinkState.PENDING, LinkState.WAITING):
            blockers.append(f"{record_name(d.record)} is being posted against it: wait until it settles, then retry")
        elif d.state == LinkState.FAILED and d.outcome_unknown:
            notes.append(
                f"{record_name(d.record)} gave up without knowing whether Xero created it: Xero may hold it (an "
                "object below that no linked record holds may be its own); post the same content again so "
                "xerolink finds it, or delete it in Actionstep and remove it in Xero"
            )
        elif d.state == LinkState.FAILED:
            notes.append(f"{record_name(d.record)} failed to post: it is not in Xero; delete or fix it in Actionstep")
    halves = halves or {}
    for d in linked:
        blockers += [b for h in halves.get(d.record, ()) if (b := half_violation(h))]
    steps: list[Step] = []
    for d in linked:
        steps += _delete_steps(d, statuses) + _halves_steps(halves.get(d.record, ()), statuses)
    # Money on the document in Xero that no linked record of xerolink accounts for. An unlinked
    # dependent's objects are orphans: live in Xero, they are left to a person like hand-made ones.
    ours = {o.xero_id.lower() for d in dependents if d.state != LinkState.UNLINKED for o in d.objects}
    ours_credit = [d.credit_note_id.lower() for d in linked if d.credit_note_id]
    hand_made: list[Step] = []
    for payment_id in xero.payment_ids:
        if payment_id.lower() not in ours:
            hand_made.append(
                Step(
                    Action.MANUAL,
                    Actor.XERO_USER,
                    f"Delete payment {payment_id} in Xero: no linked Actionstep record holds it (entered in Xero "
                    "by hand, or orphaned by an earlier unlink), so xerolink leaves it to you",
                    xero_type=ObjectType.PAYMENT,
                    xero_id=payment_id,
                )
            )
    for credit_id in xero.credit_ids:
        lowered = credit_id.lower()
        if lowered in ours or lowered in ours_credit:
            if lowered in ours_credit:
                ours_credit.remove(lowered)
            continue
        hand_made.append(
            Step(
                Action.MANUAL,
                Actor.XERO_USER,
                f"Remove the credit allocation {credit_id} in Xero: no linked Actionstep record holds it",
                xero_type=ObjectType.ALLOCATION,
                xero_id=credit_id,
            )
        )
    for what, applied_id in xero.applied:
        if applied_id.lower() in ours:
            continue
        hand_made.append(
            Step(
                Action.MANUAL,
                Actor.XERO_USER,
                f"Remove the allocation of {what} {applied_id} from {object_name(document)} in Xero: no linked "
                "Actionstep record holds it, and Xero voids no invoice with money applied to it",
                xero_type=ObjectType.OVERPAYMENT if what == "overpayment" else ObjectType.UNSPECIFIED,
                xero_id=applied_id,
            )
        )
    steps += hand_made
    blockers += [s.description for s in hand_made]
    rename = renamed_number(target, intent, xero)
    label = object_label(document.type)
    if rename is not None:
        steps.append(_rename_step(target, document, *rename))
        notes.append(
            f"the old {label} {rename[0]} is renamed {rename[1]} and voided in Xero, so the edited {label} can be "
            f"posted again under {rename[0]}: Xero keeps a voided {label}'s number"
        )
    elif (
        intent == Intent.EDIT
        and xero.status == "VOIDED"
        and (document.type, xero.doc_type) in UNIQUE_NUMBERED
        and xero.number
    ):
        notes.append(
            f"{label} {xero.number} was already voided in Xero under its own number; Xero does not let a voided "
            f"{label} be renamed, so the edited {label} cannot be posted again under {xero.number}"
        )
    steps.append(_document_step(target, document, xero.status))
    steps += [_unlink_step(d, halves.get(d.record, ())) for d in linked]
    steps.append(_unlink_step(target))
    for d in linked:
        steps.append(_user(f"Delete {record_name(d.record)} in Actionstep", d.record))
    steps.append(_user(f"Revert {name} to Draft in Actionstep", target.record))
    if intent == Intent.DELETE:
        steps.append(_user(f"Delete {name} in Actionstep", target.record))
    else:
        again = f" under {rename[0]}" if rename is not None else ""
        steps.append(
            _user(f"Edit {name} and post it again: xerolink creates a new Xero document{again}", target.record)
        )
        if linked:
            steps.append(
                _user(
                    f"If applicable, enter {name}'s payments again in Actionstep: they post once it is linked",
                    target.record,
                )
            )
    label = object_name(document)
    if xero.status == "PAID" and linked and not hand_made:
        notes.append(f"Xero reports {label} as PAID by the records above; once they are deleted Xero lets it be voided")
    elif xero.status not in ("AUTHORISED", *GONE, *DELETABLE_DOCUMENT):
        notes.append(f"Xero reports {label} as {xero.status}: someone may have paid or changed it in Xero by hand")
    return Plan(target.record, intent, tuple(steps), xero.status, tuple(notes), tuple(blockers))


def _document_step(target: LinkFacts, document: XeroObjectRef, status: str) -> Step:
    label = object_name(document)
    if status in GONE:
        return Step(
            Action.VOID_OR_DELETE_DOCUMENT,
            Actor.XEROLINK,
            f"Void or delete {label} in Xero",
            target.record,
            document.type,
            document.xero_id,
            state=StepState.DONE,
            detail=f"already {status.lower()} in Xero",
        )
    if status in DELETABLE_DOCUMENT:
        what = f"Delete {label} in Xero (it is {status}; Xero deletes drafts)"
    else:
        what = f"Void {label} in Xero (it is {status}; Xero voids it once its payments and allocations are gone)"
    return Step(Action.VOID_OR_DELETE_DOCUMENT, Actor.XEROLINK, what, target.record, document.type, document.xero_id)
