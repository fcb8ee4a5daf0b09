"""Unlinking: the link is kept (state unlinked) and its Xero objects stay in Xero, recorded as
orphaned (a row each in orphaned_xero_object, and in the audit trail). Posting the record again
creates it afresh (a new generation); a payment whose invoice is unlinked waits until the
invoice is linked again.

`unlink` is the single-record step (the correction saga calls it; it does not look at
payments, because the saga unlinks them itself); `unlink_links` is the operator's request:
several records, a preview, a confirmation, cascades, all or nothing (see domain/unlink_plan.py).
Both take the other half of a record kept in two organisations (an invoice paid from trust whose
spend is linked under the trust organisation's connection): it is one Actionstep record, so its
two links are unlinked together, in the same transaction (service_layer/record_halves.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xerolink_common.errors import FieldViolation, failed_precondition, invalid_argument, not_found
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import LinkRow, OrphanRow
from xerolink_poster.domain.corrections import to_finish
from xerolink_poster.domain.drift_holds import RESOLVED, UNLINKED
from xerolink_poster.domain.records import KNOWN_KINDS, RecordRef, XeroObjectRef, parse_link_name
from xerolink_poster.domain.states import Event, LinkState
from xerolink_poster.domain.unlink_plan import (
    Action,
    LinkFacts,
    Outcome,
    label,
    plan_unlink,
    refusal,
    with_other_halves,
)
from xerolink_poster.service_layer import drift_holds
from xerolink_poster.service_layer.connections import get_connection, text_ok
from xerolink_poster.service_layer.ports import Repositories, StateChange
from xerolink_poster.service_layer.queries import connection_filters, encode_token, page_position, page_size
from xerolink_poster.service_layer.record_halves import other_halves
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

MAX_RECORDS = 500
MAX_REASON = 500
# Why a link (as held, with its Xero objects) is not the one the caller planned to unlink; "" when it is.
Planned = Callable[[LinkRow, Sequence[XeroObjectRef]], str]


def unlink(db: Database, connection_id: str, record: RecordRef, actor: str) -> LinkRow:
    return run_in_transaction(db, lambda uow: unlink_record(uow, connection_id, record, actor))


def unlink_as_planned(
    db: Database, connection_id: str, record: RecordRef, actor: str, planned: Planned
) -> LinkRow | str:
    """Unlinks the record when `planned` finds its link the one the caller planned to unlink;
    otherwise unlinks nothing and returns why (unlink_planned_record)."""
    return run_in_transaction(db, lambda uow: unlink_planned_record(uow, connection_id, record, actor, planned))


def unlink_record(repos: Repositories, connection_id: str, record: RecordRef, actor: str) -> LinkRow:
    """The single-record step in the caller's transaction, with the record's other half under
    another connection, if it has one: both or neither (a half being posted refuses both)."""
    unlinked = unlink_planned_record(repos, connection_id, record, actor, lambda _link, _objects: "")
    assert isinstance(unlinked, LinkRow)  # every generation is the one planned
    return unlinked


def unlink_planned_record(
    repos: Repositories, connection_id: str, record: RecordRef, actor: str, planned: Planned
) -> LinkRow | str:
    """unlink_record, when `planned` (given the link as held and its Xero objects) finds it the generation the caller
    planned to unlink ("" from it); otherwise nothing is unlinked and its sentence is returned."""
    # Held from the first read: a waiting entry released between a plain read and the write would
    # be claimed and sent while this unlink closes it, and Xero's answer dropped. With it, in one
    # id order, the links of the records referring to it: the payments held on a document, whose
    # errors the unlink rewrites (drift_holds.unheld_by_unlink) and a drift resolution holds too.
    link = _gather(repos, connection_id, [record], cascade=False, lock=True)[0].get(record)
    if link is None:
        raise not_found(Reason.LINK_NOT_FOUND, f"{record} was never posted on connection {connection_id!r}")
    if other := planned(link, repos.links.xero_objects(link)):
        return other
    halves = [link, *other_halves(repos, connection_id, [record], lock=True).get(record, [])]
    for half in halves:
        if half.state == LinkState.PENDING:
            where = "" if half is link else f" under connection {half.connection_id} (its other half)"
            raise failed_precondition(
                Reason.POSTING_IN_PROGRESS,
                f"{record} is being posted{where}; wait until it is linked or failed, then unlink",
            )
    to_unlink = [(h, "" if h is link else f"with its other half under {connection_id}") for h in halves]
    to_unlink = [(h, d) for h, d in to_unlink if h.state != LinkState.UNLINKED]
    if to_unlink:
        unlink_rows(repos, to_unlink, actor, now_us(), reason="")
    repos.links.refresh(link)  # the bulk transition expired it; callers read it after commit
    return link


def unlink_rows(
    uow: Repositories, links: Sequence[tuple[LinkRow, str]], actor: str, now: int, reason: str
) -> dict[int, list[OrphanRow]]:
    """Unlinks links (each with a detail for its audit row) in the caller's transaction, in a few
    statements for all of them: closes their open outbox work, records their Xero objects as
    orphans and applies the transitions with their audit rows. Returns the orphans by link id."""
    ids = [link.id or 0 for link, _ in links]
    uow.outbox.close_work_of_links(ids)
    orphans: dict[int, list[OrphanRow]] = {}
    changes: list[StateChange] = []
    for link, detail in links:
        objects = uow.links.xero_objects(link)
        orphans[link.id or 0] = [
            OrphanRow(
                connection_id=link.connection_id,
                link_id=link.id or 0,
                kind=link.kind,
                record_id=link.record_id,
                generation=link.generation,
                object_type=o.type,
                xero_id=o.xero_id,
                local_ref=o.local_ref,
                number=o.number,
                orphaned_us=now,
                actor=actor,
                reason=reason,
            )
            for o in objects
        ]
        names = ", ".join(f"{o.type}:{o.xero_id}" for o in objects)
        text = "; ".join(t for t in (f"orphaned in Xero: {names or 'nothing'}", detail, reason) if t)
        values: dict[str, object] = {"waiting_on": "[]"}
        if link.state == LinkState.WAITING:
            values["last_error"] = None  # the wait it described is over
        changes.append(StateChange(link, Event.UNLINKED, text, values))
    uow.links.add_orphans([o for rows in orphans.values() for o in rows])
    uow.links.apply_transitions(changes, actor, now)
    _end_drift(uow, links, actor, now)
    return orphans


def _end_drift(uow: Repositories, links: Sequence[tuple[LinkRow, str]], actor: str, now: int) -> None:
    """The unlinked records' Xero objects are orphans now: their open drifts are resolved as
    UNLINKED, their snapshots no longer compared, and work held on them waits for them to link
    again (docs/drift.md "Holds and resolution")."""
    ids = [link.id or 0 for link, _ in links]
    for rows in uow.drift.open_drifts_of_links(ids).values():
        for drift in rows:
            drift.state = RESOLVED
            drift.resolution = UNLINKED
            drift.resolved_us = now
            drift.resolved_by = actor
            uow.drift.save_drift(drift)
    for link, _ in links:
        uow.drift.deactivate_snapshots(link.id or 0, now)
        drift_holds.unheld_by_unlink(uow, link.connection_id, RecordRef(link.kind, link.record_id))


@dataclass
class UnlinkResult:
    """Outcomes in the plan's order; orphans stored per link, by connection and record (empty in
    a preview)."""

    outcomes: list[Outcome]
    orphans: dict[tuple[str, RecordRef], list[OrphanRow]] = field(default_factory=dict)
    unlinked: int = 0


def _validate(
    connection_id: str,
    records: Sequence[tuple[int, int]],
    names: Sequence[str],
    validate_only: bool,
    confirm: bool,
    reason: str,
) -> list[RecordRef]:
    """The records `names` names, once the request is checked: a name must be a link name of
    `connection_id` (the caller is authorised for that connection only)."""
    violations: list[FieldViolation] = []
    selected = len(records) + len(names)
    if not selected:
        violations.append(
            FieldViolation("records", "select at least one record, in records or names (list links to find them)")
        )
    if selected > MAX_RECORDS:
        violations.append(
            FieldViolation("records", f"{selected} records, at most {MAX_RECORDS} in records and names; split them")
        )
    violations.extend(
        FieldViolation(f"records[{i}]", "needs a TransactionKind value and the record's positive id")
        for i, (kind, record_id) in enumerate(records[:MAX_RECORDS])
        if kind not in KNOWN_KINDS or record_id <= 0
    )
    named: list[RecordRef] = []
    for i, name in enumerate(names[:MAX_RECORDS]):
        parsed = parse_link_name(name)
        if parsed is None:
            violations.append(
                FieldViolation(
                    f"names[{i}]",
                    "a link name: connections/{connection_id}/links/{kind}/{id}, "
                    "e.g. connections/main/links/client-bill/1103",
                )
            )
        elif parsed[0] != connection_id:
            violations.append(
                FieldViolation(f"names[{i}]", "names a link of another connection than the request's connection_id")
            )
        else:
            named.append(parsed[1])
    if len(reason) > MAX_REASON or not text_ok(reason):
        violations.append(FieldViolation("reason", f"at most {MAX_REASON} characters, without control characters"))
    if violations:
        raise invalid_argument(
            Reason.INVALID_UNLINK_REQUEST, "the unlink request is not valid; fix the fields listed", violations
        )
    if not validate_only and not confirm:
        raise invalid_argument(
            Reason.CONFIRMATION_REQUIRED,
            "unlinking needs an explicit confirmation: preview with validate_only, then send confirm=true",
            [FieldViolation("confirm", "must be true to unlink (or set validate_only to preview)")],
        )
    return named


def _gather(
    uow: Repositories, connection_id: str, chosen: Sequence[RecordRef], cascade: bool, lock: bool
) -> tuple[dict[RecordRef, LinkRow], dict[RecordRef, list[RecordRef]]]:
    """The chosen links and their dependents (all the way down when cascading). With `lock` each
    is held until the transaction ends, with the other halves of records kept in two
    organisations, all taken in one statement in id order, as a Post, a drift resolution and
    another unlink take theirs: found, locked, then found again on what is
    held, until nothing new turns up. Taken as found (the chosen, then their dependents), an
    invoice unlinked alone and one unlinked with its payments took the two in opposite orders."""
    locked: set[int] = set()
    while True:
        links, dependents = _found(uow, connection_id, chosen, cascade)
        if not lock:
            return links, dependents
        # With the other halves of records kept in two organisations (locked again by _plan and
        # unlink_record: a lock held already is no wait), so an unlink from either side takes both
        # halves in one order.
        halves = other_halves(uow, connection_id, list(links), lock=False)
        found = {link.id or 0 for link in links.values()} | {h.id or 0 for hs in halves.values() for h in hs}
        new = sorted(found - locked)
        if not new:
            return links, dependents
        uow.links.lock_links(new)
        locked.update(new)


def _found(
    uow: Repositories, connection_id: str, chosen: Sequence[RecordRef], cascade: bool
) -> tuple[dict[RecordRef, LinkRow], dict[RecordRef, list[RecordRef]]]:
    """The chosen links and their dependents (all the way down when cascading), as read."""
    links = uow.links.links_of(connection_id, chosen, lock=False)
    dependents: dict[RecordRef, list[RecordRef]] = {}
    frontier = [r for r in chosen if r in links]
    seen = set(chosen)
    while frontier:
        found = uow.links.dependents_of(connection_id, frontier)
        dependents.update(found)
        new = sorted({d for ds in found.values() for d in ds} - seen)
        seen.update(new)
        links.update(uow.links.links_of(connection_id, new, lock=False))
        frontier = [d for d in new if d in links] if cascade else []
    return links, dependents


def unlink_links(
    db: Database,
    connection_id: str,
    records: Sequence[tuple[int, int]],
    *,
    names: Sequence[str] = (),
    validate_only: bool,
    confirm: bool,
    cascade: bool,
    reason: str,
    actor: str,
) -> UnlinkResult:
    named = _validate(connection_id, records, names, validate_only, confirm, reason)
    get_connection(db, connection_id)
    chosen = [RecordRef(kind, record_id) for kind, record_id in records] + named
    if validate_only:
        with UnitOfWork(db, write=False) as uow:
            return preview_unlink(uow, connection_id, chosen, cascade)
    return run_in_transaction(db, lambda uow: unlink_chosen(uow, connection_id, chosen, cascade, reason, actor))


def _plan(
    repos: Repositories, connection_id: str, chosen: Sequence[RecordRef], cascade: bool, lock: bool
) -> tuple[list[Outcome], dict[tuple[str, RecordRef], LinkRow]]:
    """The plan, and the links it speaks of by (connection, record): the request's connection's,
    and the other halves of records kept in two organisations under theirs."""
    links, dependents = _gather(repos, connection_id, chosen, cascade, lock)
    facts = _facts(repos, links)
    planned = plan_unlink(chosen, facts, dependents, cascade)
    halves = other_halves(repos, connection_id, [o.record for o in planned], lock)
    if not halves:
        return planned, {(connection_id, r): link for r, link in links.items()}
    by_link = {(connection_id, r): link for r, link in links.items()}
    by_link.update({(h.connection_id, r): h for r, hs in halves.items() for h in hs})
    by_connection: dict[str, dict[RecordRef, LinkRow]] = {}
    for r, hs in halves.items():
        for h in hs:
            by_connection.setdefault(h.connection_id, {})[r] = h
    half_facts = {(c, r): f for c, held in by_connection.items() for r, f in _facts(repos, held).items()}
    other = {r: [(h.connection_id, half_facts[(h.connection_id, r)]) for h in hs] for r, hs in halves.items()}
    return with_other_halves(planned, other), by_link


def _facts(repos: Repositories, links: dict[RecordRef, LinkRow]) -> dict[RecordRef, LinkFacts]:
    """What the plan reads of each of one connection's links: its state, its Xero objects, and
    whether a correction of its generation is to be finished (the sagas in one read)."""
    live = [(r, link.generation) for r, link in links.items() if LinkState(link.state) != LinkState.UNLINKED]
    connection_id = next(iter(links.values())).connection_id if links else ""
    sagas = repos.corrections.sagas_of(connection_id, live)
    facts: dict[RecordRef, LinkFacts] = {}
    for r, link in links.items():
        saga = sagas.get((r, link.generation))  # an unlinked link's is never read
        correcting = saga is not None and to_finish(saga.row.state, saga.steps)
        objects = tuple(repos.links.xero_objects(link))
        facts[r] = LinkFacts(LinkState(link.state), objects, link.outcome_unknown, correcting)
    return facts


def preview_unlink(repos: Repositories, connection_id: str, chosen: Sequence[RecordRef], cascade: bool) -> UnlinkResult:
    """What unlinking the chosen records would do; writes nothing."""
    return UnlinkResult(_plan(repos, connection_id, chosen, cascade, lock=False)[0])


def unlink_chosen(
    repos: Repositories, connection_id: str, chosen: Sequence[RecordRef], cascade: bool, reason: str, actor: str
) -> UnlinkResult:
    """Unlinks the chosen records (and, cascading, their dependents) in the caller's transaction,
    all or nothing: any refusal raises before anything is written."""
    outcomes, links = _plan(repos, connection_id, chosen, cascade, lock=True)
    error = refusal(connection_id, outcomes)
    if error is not None:
        raise error
    acting = [o for o in outcomes if o.action in (Action.UNLINK, Action.CASCADE)]
    keys = [(o.connection_id or connection_id, o.record) for o in acting]
    details = [_detail(connection_id, o) for o in acting]
    stored = unlink_rows(repos, [(links[k], d) for k, d in zip(keys, details, strict=True)], actor, now_us(), reason)
    return UnlinkResult(outcomes, {k: stored[links[k].id or 0] for k in keys}, len(acting))


def _detail(connection_id: str, outcome: Outcome) -> str:
    """The audit detail of one unlinked link: what it cascaded from, and for the other half of a
    record kept in two organisations, the connection the request was made under."""
    parts = [f"cascaded from {label(outcome.cascaded_from)}" if outcome.cascaded_from else ""]
    if outcome.connection_id:
        parts.append(f"with its other half under {connection_id}")
    return "; ".join(p for p in parts if p)


def list_orphans(
    db: Database, connection_id: str, record: RecordRef | None, object_type: int, size: int, token: str
) -> tuple[list[OrphanRow], str]:
    get_connection(db, connection_id)
    fingerprint = connection_filters(connection_id, f"{record or ''}|{object_type}")
    after = page_position(token, fingerprint)
    limit = page_size(size)
    with UnitOfWork(db, write=False) as uow:
        rows = uow.links.list_orphans(connection_id, record, object_type, after, limit + 1)
    next_token = encode_token(f"{rows[limit - 1].id}:{fingerprint}") if len(rows) > limit else ""
    return list(rows[:limit]), next_token
