"""Post's writes: the accepted items of a batch with one multi-row INSERT per table."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from xerolink_common.errors import ErrorCode
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.operations import record_dependencies
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow, PostingRow
from xerolink_poster.domain.records import RecordRef, group_of, link_name
from xerolink_poster.domain.states import Event, LinkState, OutboxState, transition
from xerolink_poster.service_layer.errors_json import error_json
from xerolink_poster.service_layer.ports import IndexedPosting, Repositories
from xerolink_poster.service_layer.posting_decisions import Accept


def write_accepted(
    repos: Repositories, connection: ConnectionRow, accepted: list[Accept], links: dict[RecordRef, LinkRow]
) -> None:
    """Writes the accepted items with one multi-row INSERT per table (links, postings, outbox,
    waits, audit): Core statements, as the ORM's unit of work costs more than the SQL here. A
    re-posted record's link is a loaded row, updated when the unit of work commits."""
    for accept in accepted:
        accept.waits = [
            dep
            for dep in record_dependencies(accept.item.response.operations)
            if (dep_link := links.get(dep)) is None or dep_link.state != LinkState.LINKED
        ]
        accept.foreign_waits = [
            (cid, dep)
            for cid, dep in accept.item.after
            if (dep_link := repos.links.links_for(cid, [dep]).get(dep)) is None or dep_link.state != LinkState.LINKED
        ]
        if accept.waits or accept.foreign_waits:
            accept.event = Event.BLOCKED
    steps = [transition(LinkState(a.link.state) if a.link is not None else None, a.event) for a in accepted]
    posting_ids = [uuid.uuid4().hex for _ in accepted]
    fresh = [a.link is None for a in accepted]
    changes: list[dict[str, Any]] = [
        {
            "state": step.to_state.value,
            "update_us": accept.now,
            "posting_id": posting_id,
            "waiting_on": json.dumps([[w.kind, w.id] for w in _all_waits(accept)]),
            **({"last_error": waiting_error(accept.waits, accept.foreign_waits)} if _all_waits(accept) else {}),
        }
        for accept, step, posting_id in zip(accepted, steps, posting_ids, strict=True)
    ]
    new = [(accept, values) for accept, values in zip(accepted, changes, strict=True) if accept.link is None]
    rows: list[dict[str, Any]] = [
        {
            "connection_id": connection.connection_id,
            "kind": accept.record.kind,
            "record_id": accept.record.id,
            "link_group": group_of(accept.record.kind),
            "fingerprint": accept.item.fingerprint,
            "generation": 1,
            "attempts": 0,
            "last_error": None,
            "xero_objects": "[]",
            "outcome_unknown": False,
            "create_us": accept.now,
            **values,
        }
        for accept, values in new
    ]
    for row, link_id in zip(rows, repos.links.insert_links(rows), strict=True):
        row["id"] = link_id
    for (accept, _), row in zip(new, rows, strict=True):
        accept.link = LinkRow.model_construct(**row)
    for accept, values, is_new in zip(accepted, changes, fresh, strict=True):
        if not is_new:
            for name, value in values.items():
                setattr(accept.link, name, value)
    repos.links.index_postings(
        [
            IndexedPosting(_link(a), a.item.transaction, a.item.response.operations, is_new)
            for a, is_new in zip(accepted, fresh, strict=True)
        ],
    )
    postings: list[dict[str, Any]] = [
        {
            "posting_id": posting_id,
            "connection_id": connection.connection_id,
            "kind": accept.record.kind,
            "record_id": accept.record.id,
            "link_id": _id(accept.link),
            "fingerprint": accept.item.fingerprint,
            "decision": accept.item.response.decision.SerializeToString(),
            "state": step.to_state.value,
            "duplicate": False,
            "request_id": accept.item.request_id,
            "create_us": accept.now,
        }
        for accept, step, posting_id in zip(accepted, steps, posting_ids, strict=True)
    ]
    repos.links.insert_postings(postings)
    for accept, values in zip(accepted, postings, strict=True):
        posting = PostingRow.model_construct(**values)
        for outcome in (accept.outcome, *accept.followers):
            outcome.posting = posting
            outcome.link = accept.link
    boxes = [
        {
            "tenant_id": connection.xero_tenant_id,
            "connection_id": connection.connection_id,
            "link_id": _id(accept.link),
            "posting_id": posting_id,
            "operations": accept.item.response.SerializeToString(),
            "state": OutboxState.WAITING if _all_waits(accept) else OutboxState.READY,
            "available_us": max(accept.now, accept.not_before),
            "claimed_by": "",
            "lease_until_us": 0,
            "attempts": 0,
            "uncertain": accept.look_up_first,
            "create_us": accept.now,
            "trace_context": accept.item.trace_context,
        }
        for accept, posting_id in zip(accepted, posting_ids, strict=True)
    ]
    waiting = any(_all_waits(a) for a in accepted)
    box_ids = repos.outbox.insert_outbox(boxes, returning_ids=waiting)
    if waiting:
        repos.outbox.insert_waits(
            [
                {"outbox_id": box_id, "connection_id": cid, "kind": w.kind, "record_id": w.id}
                for accept, box_id in zip(accepted, box_ids, strict=True)
                for cid, w in [(connection.connection_id, w) for w in accept.waits] + accept.foreign_waits
            ],
        )
    repos.links.insert_audit(
        [
            {
                "link_id": _id(accept.link),
                "time_us": accept.now,
                "actor": accept.item.actor,
                "event": accept.event.value,
                "from_state": step.from_state.value if step.from_state else "",
                "to_state": step.to_state.value,
                "detail": f"posting {posting_id}",
            }
            for accept, step, posting_id in zip(accepted, steps, posting_ids, strict=True)
        ],
    )


def _all_waits(accept: Accept) -> list[RecordRef]:
    return [*accept.waits, *(w for _, w in accept.foreign_waits)]


def _link(accept: Accept) -> LinkRow:
    assert accept.link is not None
    return accept.link


def _id(link: LinkRow | None) -> int:
    assert link is not None and link.id is not None
    return link.id


def waiting_error(waits: Sequence[RecordRef], foreign: Sequence[tuple[str, RecordRef]] = ()) -> str:
    """Records of another connection (an invoice paid from trust's trust half) are named by their
    link name, so the caller can look them up there."""
    names = ", ".join([*(str(w) for w in waits), *(link_name(c, w) for c, w in foreign)])
    return error_json(
        ErrorCode.FAILED_PRECONDITION,
        Reason.DEPENDENCY_NOT_LINKED,
        f"waiting for {names} to be linked; it is posted automatically when they link (post them if they "
        "were never posted)",
    )
