"""Work held on a drifted document (docs/drift.md "Holds and resolution"): a payment or
allocation whose document was paid, voided, deleted or un-approved in Xero, or had money applied
there that xerolink did not make, waits, with reason XERO_DOCUMENT_CHANGED, instead of being sent;
resolving the drift fails it (Xero's version accepted) or releases it (Xero put back). Each function
writes in its caller's transaction.

A held entry waits on its document's record like any waiting entry (so it is released when the
document links again after a correction), and stays waiting while that record's link has an open
drift that blocks payment (still_held: the sweep of satisfied waits leaves it alone)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from xerolink_common.errors import ErrorCode
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.domain.corrections import object_name
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer.errors_json import error_json, parse_error
from xerolink_poster.service_layer.outcomes import dependency_links, release_entry
from xerolink_poster.service_layer.ports import Repositories
from xerolink_poster.service_layer.posting_writes import waiting_error


@dataclass(frozen=True)
class Hold:
    """Why one entry waits: the document's record and link, and the drift that blocks it."""

    record: RecordRef
    link: LinkRow
    drift: DriftRow


def differences_of(drift: DriftRow) -> list[dict[str, str]]:
    loaded = json.loads(drift.differences or "[]")
    return [d for d in loaded if isinstance(d, dict)]


def blocking(drifts: Sequence[DriftRow], xero_ids: Sequence[str] | None = None) -> list[DriftRow]:
    """The drifts that leave a document unpayable; only those of `xero_ids` when given."""
    wanted = {x.lower() for x in xero_ids} if xero_ids is not None else None
    return [
        d
        for d in drifts
        if rules.blocks_payment(d.kind, differences_of(d)) and (wanted is None or d.xero_id.lower() in wanted)
    ]


def document_label(repos: Repositories, drift: DriftRow, link: LinkRow) -> str:
    """ "invoice INV-0042" (its number when xerolink knows it)."""
    objects = repos.links.xero_objects(link)
    obj = next((o for o in objects if o.xero_id.lower() == drift.xero_id.lower()), None)
    return object_name(obj or XeroObjectRef(drift.object_type, drift.xero_id, ""))


def blocking_of_links(repos: Repositories, link_ids: Sequence[int]) -> dict[int, list[DriftRow]]:
    """The open drifts that leave the links' documents unpayable, by link id: one query."""
    drifts = repos.drift.open_drifts_of_links(link_ids)
    return {link_id: found for link_id, rows in drifts.items() if (found := blocking(rows))}


def hold(repos: Repositories, row: OutboxRow, link: LinkRow, held: Hold, now_us: int, actor: str) -> None:
    """The entry waits on its document, saying what happened in Xero and what to do."""
    drift = held.drift
    name = rules.drift_name(drift.connection_id, drift.id or 0)
    label = document_label(repos, drift, held.link)
    message = rules.hold_message(drift.kind, label, name)
    row.state = OutboxState.WAITING
    row.claimed_by = ""
    row.lease_until_us = 0
    row.uncertain = False
    repos.outbox.clear_waits(row.id or 0)
    repos.outbox.add_waits(row.id or 0, row.connection_id, [held.record])
    link.waiting_on = json.dumps([[held.record.kind, held.record.id]])
    link.last_error = error_json(
        ErrorCode.FAILED_PRECONDITION, Reason.XERO_DOCUMENT_CHANGED, message, [("drift", name)]
    )
    repos.outbox.save(row)
    repos.links.save(link)
    repos.links.change_state(link, Event.BLOCKED, actor, now_us, detail=f"held: {message}"[:2000])


def is_held(link: LinkRow | None) -> bool:
    """Whether a waiting link waits because of drift (its last error says so)."""
    if link is None or link.state != LinkState.WAITING:
        return False
    error = parse_error(link.last_error)
    return error is not None and error.get("reason") == Reason.XERO_DOCUMENT_CHANGED


def still_held(repos: Repositories, outbox_id: int) -> bool:
    """Whether a waiting entry still waits on a linked document with a drift that blocks payment."""
    linked = [d for _, _, d in dependency_links(repos, outbox_id) if d.state == LinkState.LINKED]
    drifts = repos.drift.open_drifts_of_links([d.id or 0 for d in linked])
    return any(blocking(drifts.get(d.id or 0, [])) for d in linked)


def held_on(repos: Repositories, connection_id: str, record: RecordRef) -> list[tuple[OutboxRow, LinkRow]]:
    """The entries held because of drift on the record's document."""
    held: list[tuple[OutboxRow, LinkRow]] = []
    for outbox_id in repos.outbox.waiters_on(connection_id, record):
        row = repos.outbox.get_outbox(outbox_id)
        if row is None or row.state != OutboxState.WAITING:
            continue
        link = repos.links.get_link_by_id(row.link_id)
        if link is not None and link.posting_id == row.posting_id and is_held(link):
            held.append((row, link))
    return held


def held_on_locked(repos: Repositories, connection_id: str, record: RecordRef) -> list[tuple[OutboxRow, LinkRow]]:
    """held_on, decided on rows held until the transaction ends, for a caller that writes them.
    It takes the held entries' links, then the entries, each in id order, as a Post or an unlink
    of the payment takes them: the link, then its entries. So neither waits for the other in a
    cycle, and a Post that closed the held entry since the plain read is seen here, not written
    over. Read again until no new hold appears."""
    locked: set[int] = set()
    while True:
        found = held_on(repos, connection_id, record)
        new = [(row, link) for row, link in found if (link.id or 0) not in locked]
        if not new:
            return found
        repos.links.lock_links([link.id or 0 for _, link in new])
        repos.outbox.lock_entries([row.id or 0 for row, _ in new])
        locked.update(link.id or 0 for _, link in new)


def fail_held(
    repos: Repositories,
    connection_id: str,
    record: RecordRef,
    drift: DriftRow,
    resolved: Sequence[DriftRow],
    label: str,
    now_us: int,
    actor: str,
) -> int:
    """Xero's version was accepted (`drift`, resolving the document's open drifts `resolved`): the
    held entries fail, each naming the drift that keeps the document from taking it (the one it
    was held on, else a blocking one resolved, else `drift`) and saying what to change in
    Actionstep."""
    accepted = rules.drift_name(drift.connection_id, drift.id or 0)
    by_name = {rules.drift_name(r.connection_id, r.id or 0): r for r in resolved}
    blockers = blocking(resolved)
    held = held_on_locked(repos, connection_id, record)
    for row, link in held:
        cause = by_name.get(_held_on_drift(link)) or (blockers[0] if blockers else drift)
        name = rules.drift_name(cause.connection_id, cause.id or 0)
        message = rules.accepted_message(cause.kind, label, name, accepted)
        repos.outbox.clear_waits(row.id or 0)
        row.state = OutboxState.DONE
        row.claimed_by = ""
        repos.outbox.save(row)
        link.waiting_on = "[]"
        link.attempts += 1
        link.last_error = error_json(
            ErrorCode.FAILED_PRECONDITION, Reason.XERO_DOCUMENT_CHANGED, message, [("drift", name)]
        )
        repos.links.save(link)
        repos.links.change_state(link, Event.DRIFT_ACCEPTED, actor, now_us, detail=message[:2000])
    return len(held)


def _held_on_drift(link: LinkRow) -> str:
    """The drift a held link's error names ("" when none)."""
    error = parse_error(link.last_error) or {}
    violations = error.get("field_violations") or []
    return next(
        (str(v.get("description", "")) for v in violations if isinstance(v, dict) and v.get("field") == "drift"), ""
    )


def release_held(repos: Repositories, connection_id: str, record: RecordRef, now_us: int, detail: str) -> int:
    """Xero was put back: the held entries go back to the queue, unless another drift still blocks
    their document."""
    released = 0
    for row, _ in held_on(repos, connection_id, record):
        if still_held(repos, row.id or 0):
            continue
        released += release_entry(repos, row.id or 0, now_us, detail)
    return released


def unheld_by_unlink(repos: Repositories, connection_id: str, record: RecordRef) -> None:
    """The document was unlinked: its held entries now wait for it to link again, and say so."""
    for _, link in held_on_locked(repos, connection_id, record):
        link.last_error = waiting_error([record])
        repos.links.save(link)
