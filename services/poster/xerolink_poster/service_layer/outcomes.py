"""What the dispatcher writes after each Xero answer, each in the transaction of its caller:
an object created (linked when it was the last operation), a rejection (failed with Xero's
messages), a retry later (with backoff or after Retry-After), a wait on a dependency, and the
release of the entries that waited for a record that just linked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import ErrorCode
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain.dependencies import next_operation
from xerolink_poster.domain.records import RecordRef, XeroObjectRef, link_name
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.domain.stored_rows import StoredEntry, StoredLink
from xerolink_poster.service_layer import drift_snapshots
from xerolink_poster.service_layer.errors_json import error_json
from xerolink_poster.service_layer.ports import Repositories, StateChange
from xerolink_poster.service_layer.posting_writes import waiting_error

ACTOR = "dispatcher"  # suffixed with the poster instance: "dispatcher:<instance>"


@dataclass
class ElementResult:
    """Xero's answer for one element of a call: the object created, or the rejection."""

    outbox_id: int
    created: XeroObjectRef | None = None
    rejected: tuple[str, Sequence[str]] | None = None
    # Objects Xero made with the created one (the Overpayment of an overpayment transaction).
    also: tuple[XeroObjectRef, ...] = ()
    # What drift keeps of Xero's element for each object (drift_snapshots.documents_of), made
    # before the transaction: trimming the element needs nothing stored.
    documents: tuple[drift_snapshots.Document, ...] = ()
    # Said in the link's audit with the object (a sales invoice posted under another number).
    note: str = ""
    # The claim ends under which the entry is the answering job's (Work.claims): a job that
    # waited past its claim must not write over the claim another job of the poster made since.
    # Empty: any claim of the poster's.
    claims: tuple[int, ...] = ()


# The audit event of an object posted under another number than Actionstep gave (a note: the
# link's state does not change).
RENUMBERED = "posted_renumbered"


def apply_batch(repos: Repositories, results: Sequence[ElementResult], holder: str, actor: str, now_us: int) -> None:
    """The answers of a whole call in a few statements: entries and links read as values in one
    query each, updated by primary key in bulk, every state change through the transition table with
    its audit row (the links repository's apply_transitions), waiters released for the records that linked."""
    rows = repos.outbox.stored_entries([r.outbox_id for r in results])
    links = repos.links.stored_links([row.link_id for row in rows.values()])
    outbox_updates: list[dict[str, object]] = []
    link_updates: list[dict[str, object]] = []
    changes: list[StateChange] = []
    linked: list[tuple[str, RecordRef]] = []
    snapshots: list[drift_snapshots.Posted] = []
    notes: list[dict[str, object]] = []
    answered: set[int] = set()
    for result in results:
        row = rows.get(result.outbox_id)
        # An entry answered twice keeps the first answer: applied one after the other, the
        # second would find the entry no longer held (both from this read would post it and
        # also fail it).
        if result.outbox_id in answered or not still_ours(row, holder):
            continue
        assert row is not None
        if result.claims and row.lease_until_us not in result.claims:
            continue
        answered.add(result.outbox_id)
        assert row is not None
        link = links[row.link_id]
        if result.created is not None:
            created = result.created
            objects = [o for o in repos.links.xero_objects(link) if o.local_ref != created.local_ref]
            objects += [created, *result.also]
            if result.documents:
                snapshots.append((link, result.documents))
            mapped = mapper_pb2.MapTransactionResponse()
            mapped.ParseFromString(row.operations)
            finished = next_operation(mapped.operations, objects) is None
            values: dict[str, object] = {
                "xero_objects": json.dumps([o.to_json() for o in objects]),
                "attempts": link.attempts + 1,
                "last_error": None,
            }
            entry: dict[str, object] = {
                "id": row.id,
                "uncertain": False,
                "claimed_by": "",
                "lease_until_us": 0,
                "alone": False,
                "lookup_hint": "",
            }
            if finished:
                entry["state"] = OutboxState.DONE
                detail = f"{created.local_ref} -> {created.xero_id}" + (f"; {result.note}" if result.note else "")
                changes.append(StateChange(link, Event.POSTED, detail, values))
                linked.append((link.connection_id, RecordRef(link.kind, link.record_id)))
            else:
                entry["available_us"] = now_us
                link_updates.append({"id": link.id, **values})
                if result.note:
                    notes.append(
                        {
                            "link_id": link.id,
                            "time_us": now_us,
                            "actor": actor,
                            "event": RENUMBERED,
                            "from_state": link.state,
                            "to_state": link.state,
                            "detail": f"{created.local_ref} -> {created.xero_id}; {result.note}"[:2000],
                        }
                    )
            outbox_updates.append(entry)
        elif result.rejected is not None:
            message, messages = result.rejected
            error = error_json(
                ErrorCode.FAILED_PRECONDITION, Reason.XERO_VALIDATION, message, [("xero", m) for m in messages]
            )
            outbox_updates.append({"id": row.id, "state": OutboxState.DONE, "uncertain": False, "claimed_by": ""})
            changes.append(
                StateChange(
                    link,
                    Event.XERO_REJECTED,
                    "; ".join([message, *messages])[:2000],
                    {"attempts": link.attempts + 1, "last_error": error},
                )
            )
    drift_snapshots.record_posted(repos, snapshots, now_us)
    repos.outbox.update_outbox(outbox_updates)
    repos.links.update_links(link_updates)
    repos.links.apply_transitions(changes, actor, now_us)
    repos.links.insert_audit(notes)
    tell_other_halves(repos, [(c.link, c.detail) for c in changes if c.event == Event.XERO_REJECTED])
    for connection_id, record in repos.outbox.records_with_waiters(linked):
        release_waiters(repos, connection_id, record, now_us)


def still_ours(row: OutboxRow | StoredEntry | None, holder: str) -> bool:
    """An answer is applied only by the claimer of a still-open entry (a late answer after the
    entry moved on is dropped; the look-up before re-creating covers it)."""
    return row is not None and row.claimed_by == holder and row.state == OutboxState.READY


def record_created(
    repos: Repositories,
    row: OutboxRow,
    link: LinkRow,
    created: XeroObjectRef,
    finished: bool,
    now_us: int,
    actor: str = ACTOR,
) -> list[int]:
    """Adds the object to the link; when it was the last operation the link is linked and the
    entries waiting for this record are released (their ids returned)."""
    existing = repos.links.xero_objects(link)
    if created not in existing:  # finishing an entry whose objects are all recorded adds none
        objects = [o for o in existing if o.local_ref != created.local_ref]
        repos.links.set_xero_objects(link, [*objects, created])
    link.attempts += 1
    link.last_error = None
    row.uncertain = False
    row.claimed_by = ""
    row.lease_until_us = 0
    if not finished:
        row.available_us = now_us
        repos.outbox.save(row)
        repos.links.save(link)
        return []
    row.state = OutboxState.DONE
    repos.outbox.save(row)
    repos.links.save(link)
    repos.links.change_state(link, Event.POSTED, actor, now_us, detail=f"{created.local_ref} -> {created.xero_id}")
    return release_waiters(repos, link.connection_id, RecordRef(link.kind, link.record_id), now_us)


def record_rejected(
    repos: Repositories,
    row: OutboxRow,
    link: LinkRow,
    reason: str,
    message: str,
    messages: Sequence[str],
    now_us: int,
    actor: str = ACTOR,
    outcome_unknown: bool = False,
) -> None:
    """Fails the link for good. outcome_unknown: the last call had no certain answer, so Xero may
    hold the object; the link remembers it, and a repost looks it up before creating."""
    link.attempts += 1
    link.last_error = error_json(ErrorCode.FAILED_PRECONDITION, reason, message, [("xero", m) for m in messages])
    link.outcome_unknown = link.outcome_unknown or outcome_unknown
    row.state = OutboxState.DONE
    row.uncertain = False
    row.claimed_by = ""
    repos.outbox.save(row)
    repos.links.save(link)
    event = Event.XERO_REJECTED if reason == Reason.XERO_VALIDATION else Event.GAVE_UP
    repos.links.change_state(link, event, actor, now_us, detail="; ".join([message, *messages])[:2000])
    tell_other_halves(repos, [(link, "; ".join([message, *messages]))])


def tell_other_halves(repos: Repositories, failed: Sequence[tuple[LinkRow | StoredLink, str]]) -> None:
    """A link that failed for good says so on the links of other connections waiting for it (the
    office half of an invoice paid from trust waits for its trust half): their caller holds only
    the waiting half's posting, and would otherwise read "waiting" with no end in sight."""
    for link, why in failed:
        record = RecordRef(link.kind, link.record_id)
        for outbox_id in repos.outbox.waiters_on(link.connection_id, record):
            row = repos.outbox.get_outbox(outbox_id)
            if row is None or row.connection_id == link.connection_id or row.state != OutboxState.WAITING:
                continue
            waiter = repos.links.get_link_by_id(row.link_id)
            if waiter is None or waiter.state != LinkState.WAITING:
                continue
            name = link_name(link.connection_id, record)
            waiter.last_error = error_json(
                ErrorCode.FAILED_PRECONDITION,
                Reason.DEPENDENCY_NOT_LINKED,
                f"waiting for {name}, which failed under connection {link.connection_id}: {why[:500]}; correct it "
                "there and post it again: this is posted when it links",
            )
            repos.links.save(waiter)


def record_retry(
    repos: Repositories,
    row: OutboxRow,
    link: LinkRow,
    available_us: int,
    uncertain: bool,
    count_attempt: bool,
    reason: str,
    message: str,
) -> None:
    """Back to the queue: after backoff (5xx, timeouts) or after Retry-After (429, not counted)."""
    if count_attempt:
        row.attempts += 1
        link.attempts += 1
    # The caller decides (Results.retry_together): a 429 or 401 applied nothing, and an earlier
    # uncertain call stays marked unless this attempt looked it up; a timeout or 5xx may have
    # applied it.
    row.uncertain = uncertain
    row.available_us = available_us
    row.claimed_by = ""
    row.lease_until_us = 0
    link.last_error = error_json(ErrorCode.UNAVAILABLE, reason, message)
    repos.outbox.save(row)
    repos.links.save(link)


def record_waiting(
    repos: Repositories, row: OutboxRow, link: LinkRow, waits: Sequence[RecordRef], now_us: int, actor: str = ACTOR
) -> None:
    row.state = OutboxState.WAITING
    row.claimed_by = ""
    row.lease_until_us = 0
    repos.outbox.add_waits(row.id or 0, row.connection_id, waits)
    link.waiting_on = json.dumps([[w.kind, w.id] for w in waits])
    link.last_error = waiting_error(waits)
    repos.outbox.save(row)
    repos.links.save(link)
    names = ", ".join(str(w) for w in waits)
    repos.links.change_state(link, Event.BLOCKED, actor, now_us, detail=f"waiting for {names}")


def release_waiters(repos: Repositories, connection_id: str, record: RecordRef, now_us: int) -> list[int]:
    released: list[int] = []
    for outbox_id in repos.outbox.waiters_on(connection_id, record):
        if release_entry(repos, outbox_id, now_us, f"{record} linked", just_linked=(connection_id, record)):
            released.append(outbox_id)
    return released


def dependency_links(repos: Repositories, outbox_id: int) -> list[tuple[str, RecordRef, LinkRow]]:
    """The links of the records the entry waits for, each under the connection it is waited for
    in (the trust half's, for an office half); records never posted are left out."""
    return [(c, r, d) for c, r in repos.outbox.connection_waits_of(outbox_id) if (d := repos.links.get_link(c, r))]


def unlinked_waits(
    repos: Repositories, waits: Sequence[tuple[str, RecordRef]], just_linked: tuple[str, RecordRef] | None = None
) -> list[tuple[str, RecordRef]]:
    """Which of these records are not linked now, each one linked held so until the transaction
    ends (`just_linked` counts as linked: this transaction wrote its link in bulk)."""
    return [(c, w) for c, w in waits if (c, w) != just_linked and not repos.links.linked_now(c, w)]


def release_entry(
    repos: Repositories,
    outbox_id: int,
    now_us: int,
    detail: str,
    just_linked: tuple[str, RecordRef] | None = None,
) -> bool:
    """Back to the queue, when every record the entry waits for is linked, checked in this
    transaction (whoever found it waiting may have read before another poster released it or one
    of the records was unlinked). Every row it writes or relies on (the entry, its wait rows, its
    link, the records' links) is taken first, each skipped when another transaction holds it, so
    a release never waits on a lock and never takes part in a deadlock (an unlink of the payment
    takes its link, wait rows and entry in another order): the entry is then left waiting, and the
    sweep for satisfied waits comes back to it."""
    row = repos.outbox.lock_entry(outbox_id)
    if row is None or row.state != OutboxState.WAITING:
        return False
    waits = repos.outbox.lock_waits(outbox_id)
    link = repos.links.lock_link(row.link_id) if waits is not None else None
    if waits is None or link is None or unlinked_waits(repos, waits, just_linked):
        return False
    repos.outbox.clear_waits(outbox_id)
    row.state = OutboxState.READY
    row.available_us = max(row.available_us, now_us)  # a repost's look-up may have to wait longer
    repos.outbox.save(row)
    if link.state != LinkState.WAITING or link.posting_id != row.posting_id:
        return False
    link.waiting_on = "[]"
    link.last_error = None
    repos.links.save(link)
    repos.links.change_state(link, Event.RELEASED, ACTOR, now_us, detail=detail)
    return True
