"""Xero refused a payment or allocation because its document is no longer payable (paid, voided,
deleted or un-approved in Xero since xerolink posted it; the messages in domain/drift_holds.py)
and no drift said so yet (no webhook or poll had seen the change): the job reads each document
again through the tenant's gate, records what it finds (record_observations, source "posting")
and holds the entry on the drift found, as if the drift had been known before sending
(docs/drift.md "Holds and resolution"). A refusal the read does not explain stays a refusal."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.xero_client import Credentials
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.service_layer import drift_holds
from xerolink_poster.service_layer.dispatch.gate import Gate
from xerolink_poster.service_layer.dispatch.results import Results, Retry
from xerolink_poster.service_layer.dispatch.work import Document, Work
from xerolink_poster.service_layer.drift_checks import Observed, links_written, record_observations
from xerolink_poster.service_layer.drift_rereads import RereadFailed, read_object
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

Refused = tuple[Work, list[str]]
SOURCE = "posting"


def _about_document(w: Work, messages: Sequence[str]) -> bool:
    return (
        w.operation is not None
        and w.body in ("payment", "allocation")
        and bool(w.documents)
        and rules.refused_for_document(messages)
    )


def hold_refused(gate: Gate, creds: Credentials, results: Results, rejected: list[Refused]) -> list[Refused]:
    """Holds the entries Xero refused over a document that drifted; returns the other refusals,
    to be written as such. Entries whose document could not be read are retried later."""
    candidates = [(w, m) for w, m in rejected if _about_document(w, m)]
    if not candidates:
        return rejected
    observed: dict[str, Observed] = {}
    unread: list[Work] = []
    problem: RereadFailed | None = None
    for w, _ in candidates:
        try:
            for _, _, xero_id, object_type in w.documents:
                if xero_id.lower() not in observed:
                    element = read_object(gate, creds, object_type, xero_id)
                    observed[xero_id.lower()] = Observed(object_type, xero_id, element, _updated(element))
        except RereadFailed as exc:
            unread.append(w)
            problem = exc
    if unread and problem is not None:
        message = f"Xero refused it as its document changed, and reading the document failed: {problem.message}"
        results.retry_together(
            [Retry.after_lookup(unread, False, problem.reason, message, problem.rate_limited, gate.blocked_until)]
        )
    skipped = {id(w) for w in unread}
    read = [(w, m) for w, m in candidates if id(w) not in skipped]
    chosen = {id(w) for w, _ in candidates}
    others = [(w, m) for w, m in rejected if id(w) not in chosen]
    return others + hold_drifted(results, read, observed, lambda w: w.documents)


Documents = Callable[[Work], Sequence[Document]]


def hold_drifted(
    results: Results, read: list[Refused], observed: dict[str, Observed], documents: Documents
) -> list[Refused]:
    """Records what was read of the documents as drift checks do, and holds each entry whose
    documents (`documents` of it) drifted so that they cannot be paid; returns the others."""
    if not read:
        return []
    d = results.d

    def write(uow: UnitOfWork) -> list[Refused]:
        now = now_us()
        connection_id = read[0][0].connection.connection_id
        # The refused entries' links and every link the drift check takes (the documents' and
        # their own payments' and allocations'), in one statement in id order, as an unlink of a
        # document with its payments and a drift resolution take them: the hold writes the
        # entries' links after the check.
        checked = links_written(uow, connection_id, sorted(observed))
        uow.links.lock_links([w.link.id for w, _ in read] + checked)
        record_observations(uow, connection_id, list(observed.values()), SOURCE, now, d.actor)
        found = drift_holds.blocking_of_links(uow, [dep.id or 0 for w, _ in read for _, dep, _, _ in documents(w)])
        still: list[Refused] = []
        results.preload(uow, [w for w, _ in read])
        for w, messages in read:
            hold = _hold_of(documents(w), found)
            if hold is None:
                still.append((w, messages))
                continue
            row, link = results.reload(uow, w)
            if row is not None and link is not None:
                drift_holds.hold(uow, row, link, hold, now, d.actor)
        return still

    unexplained = results.handing_back([w for w, _ in read], write, kept=lambda still: {id(w) for w, _ in still})
    d.changes.notify()
    return unexplained


def _hold_of(documents: Sequence[Document], found: dict[int, list[DriftRow]]) -> drift_holds.Hold | None:
    for record, dep, xero_id, _ in documents:
        drift = next((x for x in found.get(dep.id or 0, []) if x.xero_id.lower() == xero_id.lower()), None)
        if drift is not None:
            return drift_holds.Hold(record, dep, drift)
    return None


def _updated(element: dict[str, Any] | None) -> str:
    return str(element.get("UpdatedDateUTC", "")) if element else ""
