"""Resolving a drift (ResolveDrift, docs/drift.md "Holds and resolution"). ACCEPT_XERO: Xero's
current state becomes what xerolink compares with, the object's open drifts are resolved, and work
held on the document fails, saying what to change in Actionstep. CORRECTED: only when Xero, read
again, matches what xerolink posted: the object's open drifts are resolved and the held work is
released; otherwise nothing changes and the remaining differences are returned as violations.
Each writes an audit entry on the link ("drift_resolved": actor, resolution, note).

The Xero read (through the tenant's budget) is the caller's: this module writes what it found."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from xerolink_common.errors import (
    ErrorCode,
    FieldViolation,
    XerolinkError,
    failed_precondition,
    invalid_argument,
    not_found,
)
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.domain import drift as drift_rules
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer import drift_holds
from xerolink_poster.service_layer.drift_reads import updated_ms
from xerolink_poster.service_layer.ports import Repositories

MAX_NOTE = 1000
RESOLUTIONS = (rules.ACCEPT_XERO, rules.CORRECTED)
AUDIT_EVENT = "drift_resolved"
_NAME = re.compile(r"^connections/([^/]+)/drifts/([1-9][0-9]{0,17})$")


@dataclass(frozen=True)
class XeroState:
    """What a re-read of the drifted object found: its state trimmed as snapshots are (None when
    Xero no longer has it), its UpdatedDateUTC, and how it differs from the snapshot."""

    document: str | None
    updated: str = ""
    differences: Sequence[dict[str, str]] = field(default_factory=tuple)


def parse_name(name: str) -> tuple[str, int]:
    match = _NAME.fullmatch(name)
    if match is None:
        raise invalid_argument(
            Reason.INVALID_DRIFT_NAME,
            "name must be 'connections/{connection_id}/drifts/{drift_id}'",
            [FieldViolation("name", f"{name[:100]!r} is not a drift name")],
        )
    return match.group(1), int(match.group(2))


def check_request(resolution: str, note: str) -> None:
    violations = []
    if resolution not in RESOLUTIONS:
        violations.append(FieldViolation("resolution", "DRIFT_RESOLUTION_ACCEPT_XERO or DRIFT_RESOLUTION_CORRECTED"))
    if len(note) > MAX_NOTE:
        violations.append(FieldViolation("note", f"at most {MAX_NOTE} characters ({len(note)} given)"))
    if violations:
        raise invalid_argument(
            Reason.INVALID_DRIFT_RESOLUTION, "the drift resolution is not valid; fix the fields listed", violations
        )


def drift_not_found(connection_id: str, drift_id: int) -> XerolinkError:
    return not_found(
        Reason.DRIFT_NOT_FOUND, f"connection {connection_id!r} has no drift {drift_id}; ListDrift lists its drifts"
    )


def get_drift(repos: Repositories, connection_id: str, drift_id: int) -> DriftRow:
    drift = repos.drift.get_drift(connection_id, drift_id)
    if drift is None:
        raise drift_not_found(connection_id, drift_id)
    return drift


def held_drift(repos: Repositories, connection_id: str, drift_id: int) -> DriftRow:
    """The drift read again and held until the transaction ends, after its document's link and
    the links of the payments held on it, all in one statement in id order: the order an unlink
    of the document (with its payments or not) takes them, links before drifts. A resolution that
    read the drift open before an unlink resolved it then sees the unlink's resolution, instead of
    answering and auditing its own over it, and never waits for the unlink in a cycle."""
    drift = get_drift(repos, connection_id, drift_id)
    link = repos.links.get_link_by_id(drift.link_id)
    document = RecordRef(link.kind, link.record_id) if link is not None else None
    held = drift_holds.held_on(repos, connection_id, document) if document is not None else []
    applied_to = _applied_to(repos, drift)
    repos.links.lock_links([drift.link_id, *(payment.id or 0 for _, payment in held), *applied_to])
    locked = repos.drift.get_drift(connection_id, drift_id, lock=True)
    if locked is None:
        raise drift_not_found(connection_id, drift_id)
    return locked


def _applied_to(repos: Repositories, drift: DriftRow) -> list[int]:
    """For a drift of a payment or allocation, the link of the document it is applied to, whose
    snapshot accepting Xero's version rewrites (_accept); none for a document's drift."""
    snapshot = repos.drift.get_snapshot(drift.connection_id, drift.xero_id)
    applied = drift_rules.applied_entry(snapshot.object_type, json.loads(snapshot.document)) if snapshot else None
    target = repos.drift.get_snapshot(drift.connection_id, applied[1].lower()) if applied else None
    return [target.link_id] if target is not None else []


def already_resolved(drift: DriftRow, resolution: str) -> bool:
    """True when the drift was resolved the same way (the request is answered with it, unchanged);
    FAILED_PRECONDITION when it was resolved another way; False while it is open."""
    if drift.state == rules.OPEN:
        return False
    if drift.resolution == resolution:
        return True
    raise failed_precondition(
        Reason.DRIFT_ALREADY_RESOLVED,
        f"{rules.drift_name(drift.connection_id, drift.id or 0)} was already resolved as {drift.resolution or '?'}; "
        "read it with ListDrift",
    )


def _accept(repos: Repositories, drift: DriftRow, xero: XeroState, now_us: int) -> None:
    """Xero's state becomes the snapshot; an object Xero no longer has is compared no more, and a
    payment or allocation deleted there is no longer expected on its document."""
    snapshot = repos.drift.get_snapshot(drift.connection_id, drift.xero_id, lock=True)
    if snapshot is None:
        return
    posted = json.loads(snapshot.document)
    current = json.loads(xero.document) if xero.document is not None else None
    if current is None:
        snapshot.active = False
    else:
        snapshot.document = xero.document or snapshot.document
        snapshot.xero_updated = xero.updated
    snapshot.update_us = now_us
    repos.drift.put_snapshot(snapshot)
    applied = drift_rules.applied_entry(snapshot.object_type, posted)
    if applied is None or not rules.gone(current):
        return
    _, document_id, key, entry = applied
    id_field = "PaymentID" if key == "Payments" else "AllocationID"
    # Read again, held: its link is held since held_drift, so a change of the document accepted
    # meanwhile (a void) is kept, not written over.
    target = repos.drift.get_snapshot(drift.connection_id, document_id.lower(), lock=True)
    if target is not None and target.active:
        kept = rules.without_entry(json.loads(target.document), key, id_field, str(entry.get(id_field, "")))
        target.document = json.dumps(kept, sort_keys=True)
        target.update_us = now_us
        repos.drift.put_snapshot(target)


def recorded_state(repos: Repositories, connection_id: str, xero_id: str, lock: bool) -> str:
    """What xerolink has recorded of the object in Xero: its snapshot (when it last changed, the
    Xero version compared) and its open drifts. ResolveDrift takes it before its read of Xero and
    again, held (`lock`), before it writes: any difference means a webhook, a poll, a posting or
    another resolution recorded something after the read. An object no check changed gives the
    same text (a check that finds nothing new writes nothing)."""
    snapshot = repos.drift.get_snapshot(connection_id, xero_id, lock=lock)
    drifts = repos.drift.open_drifts_of_object(connection_id, xero_id)
    parts = [f"{snapshot.update_us}:{snapshot.xero_updated}:{snapshot.active}" if snapshot is not None else "-"]
    parts += sorted(f"{d.id}:{d.kind}:{d.differences}:{d.xero_updated}" for d in drifts)
    return "|".join(parts)


def changed_since_read(drift: DriftRow, detail: str) -> XerolinkError:
    """ABORTED: deciding on a read of Xero older than what xerolink has recorded since would, say,
    release a payment held on a bank-feed match that was made again after the read."""
    return XerolinkError(
        ErrorCode.ABORTED,
        Reason.DRIFT_CHANGED_SINCE_READ,
        f"Xero's object of {rules.drift_name(drift.connection_id, drift.id or 0)} changed after it was read to "
        f"resolve the drift ({detail}); read it (ListDrift) and resolve again",
    )


def _refuse_if_older(drift: DriftRow, snapshot_updated: str, read_updated: str) -> None:
    """ABORTED when the snapshot records a version of the object later than the one read: its
    UpdatedDateUTC is Xero's "Last modified date UTC format" (Xero's OpenAPI description), and the
    snapshot keeps the one last compared, forwards or back (a Xero clock put back is followed).
    Without a date on either side there is nothing to compare."""
    read_ms = updated_ms({"UpdatedDateUTC": read_updated}) if read_updated else None
    recorded = updated_ms({"UpdatedDateUTC": snapshot_updated}) if snapshot_updated else None
    if read_ms is not None and recorded is not None and recorded > read_ms:
        raise changed_since_read(
            drift,
            f"xerolink has compared Xero's version of {snapshot_updated}, later than the one read, {read_updated}",
        )


def resolve(
    repos: Repositories, drift: DriftRow, resolution: str, note: str, xero: XeroState, actor: str, now_us: int
) -> DriftRow:
    """Applies the resolution in the caller's transaction, given what Xero holds now."""
    link = repos.links.get_link_by_id(drift.link_id)
    assert link is not None
    record = RecordRef(link.kind, link.record_id)
    resolved = repos.drift.open_drifts_of_object(drift.connection_id, drift.xero_id)
    snapshot = repos.drift.get_snapshot(drift.connection_id, drift.xero_id, lock=True)
    _refuse_if_older(drift, snapshot.xero_updated if snapshot is not None else "", xero.updated)
    if resolution == rules.CORRECTED and (xero.document is None or xero.differences):
        remaining = list(xero.differences) or [{"field": "(object)", "posted": "present", "xero": "not found"}]
        raise XerolinkError(
            ErrorCode.FAILED_PRECONDITION,
            Reason.DRIFT_NOT_CORRECTED,
            f"Xero still differs from what xerolink posted on {rules.drift_name(drift.connection_id, drift.id or 0)}: "
            "put it back in Xero and resolve again, or accept Xero's version",
            field_violations=[
                FieldViolation(d.get("field", ""), f"posted {d.get('posted', '')!r}, Xero {d.get('xero', '')!r}")
                for d in remaining
            ],
        )
    if resolution == rules.ACCEPT_XERO:
        _accept(repos, drift, xero, now_us)
    label = drift_holds.document_label(repos, drift, link)
    for row in resolved:
        row.state = rules.RESOLVED
        row.resolution = resolution
        row.resolved_us = now_us
        row.resolved_by = actor
        row.resolve_note = note
        repos.drift.save_drift(row)
    if resolution == rules.ACCEPT_XERO:
        held = drift_holds.fail_held(repos, drift.connection_id, record, drift, resolved, label, now_us, actor)
        outcome = f"{held} held record(s) failed"
    else:
        held = drift_holds.release_held(
            repos, drift.connection_id, record, now_us, f"drift {drift.id} resolved as corrected"
        )
        outcome = f"{held} held record(s) released"
    names = ", ".join(rules.drift_name(r.connection_id, r.id or 0) for r in resolved)
    detail = json.dumps({"resolution": resolution, "drifts": names, "note": note, "outcome": outcome})
    repos.links.insert_audit(
        [
            {
                "link_id": link.id,
                "time_us": now_us,
                "actor": actor,
                "event": AUDIT_EVENT,
                "from_state": link.state,
                "to_state": link.state,
                "detail": detail,
            }
        ]
    )
    drift.state = rules.RESOLVED
    return drift
