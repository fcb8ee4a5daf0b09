"""Deciding an unlink request: per record what happens, before anything changes.

A request is all or nothing. An operator selects records together because they belong
together (an invoice and its payments); unlinking some of them would leave a payment linked to
an invoice the registry no longer holds, or half a correction done. So the plan is computed
first, and when any record is refused the request is refused as a whole, naming every record
in the way; a preview (validate_only) shows the same plan.

Rules (the seed: unlinked records stay in both systems; Actionstep locks linked records):
- a record never posted is refused (LINK_NOT_FOUND);
- a pending record is being posted right now and is refused (POSTING_IN_PROGRESS): wait until
  it is linked or failed;
- an unlinked record needs nothing (already unlinked);
- linked, failed and waiting records can be unlinked; their Xero objects become orphans;
- a document (invoice, credit note) whose payments or allocations are linked or being posted is
  refused (LINKED_DEPENDENTS) naming them, unless they are selected too or the request cascades;
  with cascade the linked ones are unlinked with it (their own dependents likewise), and
  in-flight ones still refuse it (DEPENDENT_IN_PROGRESS). Waiting and failed dependents hold
  nothing in Xero: they stay, and wait for the document to be linked again.
- an invoice paid from trust kept in two organisations is one record in two links of the same
  key (the spend under the trust organisation's connection, the payment under the office one):
  whichever half is selected or cascaded, the other half goes with it (with_other_halves), and
  either half refused refuses the request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from xerolink_common.errors import ErrorCode, PreconditionViolation, XerolinkError
from xerolink_common.reasons import Reason

from xerolink_poster.domain.kinds import TransactionKind
from xerolink_poster.domain.records import KNOWN_KINDS, RecordRef, XeroObjectRef
from xerolink_poster.domain.records import link_name as _record_link_name
from xerolink_poster.domain.states import LinkState

# Dependents in these states hold (or are about to hold) Xero objects that refer to the document.
_ACTIVE = frozenset({LinkState.LINKED, LinkState.PENDING})


class Action(StrEnum):
    UNLINK = "unlink"
    CASCADE = "cascade"
    ALREADY_UNLINKED = "already_unlinked"
    REFUSED = "refused"


@dataclass(frozen=True)
class LinkFacts:
    """What the plan needs of one link."""

    state: LinkState
    objects: tuple[XeroObjectRef, ...] = ()
    # The link gave up while a call's outcome was unknown: Xero may hold an object it does not.
    outcome_unknown: bool = False
    # A correction of this generation is running, or failed on a step that applying again may
    # get past (corrections.FAILED_FOR_GOOD: one Xero refuses for good does not count).
    under_correction: bool = False


@dataclass
class Outcome:
    record: RecordRef
    action: Action
    orphans: tuple[XeroObjectRef, ...] = ()
    blocked_by: list[RecordRef] = field(default_factory=list)
    cascaded_from: RecordRef | None = None
    error: XerolinkError | None = None
    # The connection whose link this is, when not the request's: the other half of a record kept
    # in two organisations.
    connection_id: str = ""


def label(record: RecordRef) -> str:
    """ "client bill payment 7001": how an accountant names a record."""
    if record.kind not in KNOWN_KINDS:
        return f"record {record}"
    return f"{TransactionKind(record.kind).name.replace('_', ' ').lower()} {record.id}"


def _names(records: Sequence[RecordRef]) -> str:
    return ", ".join(label(r) for r in records)


def plan_unlink(
    selected: Sequence[RecordRef],
    links: Mapping[RecordRef, LinkFacts],
    dependents: Mapping[RecordRef, Sequence[RecordRef]],
    cascade: bool,
) -> list[Outcome]:
    """Outcomes for the selected records (in order, repeats once) then the cascaded ones.
    `links` holds every selected record and dependent that has a link; `dependents` maps a
    record to the records whose current posting refers to it."""
    chosen = list(dict.fromkeys(selected))
    chosen_set = set(chosen)
    outcomes: dict[RecordRef, Outcome] = {}
    queue: list[tuple[RecordRef, RecordRef | None]] = [(r, None) for r in chosen]
    while queue:
        record, parent = queue.pop(0)
        if record in outcomes:
            continue
        facts = links.get(record)
        outcome = Outcome(record, Action.CASCADE if parent else Action.UNLINK, cascaded_from=parent)
        outcomes[record] = outcome
        if facts is None:
            outcome.action = Action.REFUSED
            outcome.error = XerolinkError(
                ErrorCode.NOT_FOUND,
                Reason.LINK_NOT_FOUND,
                f"{label(record)} was never posted on this connection; check the kind and id (list links to find it)",
            )
            continue
        if not _judge(outcome, facts):
            continue
        active = [d for d in dependents.get(record, ()) if d in links and links[d].state in _ACTIVE]
        in_flight = sorted(d for d in active if links[d].state == LinkState.PENDING)
        linked = sorted(d for d in active if links[d].state == LinkState.LINKED and d not in chosen_set)
        if in_flight:
            outcome.action = Action.REFUSED
            outcome.blocked_by = in_flight
            outcome.error = XerolinkError(
                ErrorCode.FAILED_PRECONDITION,
                Reason.DEPENDENT_IN_PROGRESS,
                f"{label(record)} has payments or allocations being posted right now ({_names(in_flight)}); "
                "wait until they are linked or failed, then unlink again",
            )
        elif linked and not cascade:
            outcome.action = Action.REFUSED
            outcome.blocked_by = linked
            outcome.error = XerolinkError(
                ErrorCode.FAILED_PRECONDITION,
                Reason.LINKED_DEPENDENTS,
                f"{label(record)} has linked payments or allocations ({_names(linked)}); unlink them first, "
                "select them too, or request cascade to unlink them with it",
            )
        else:
            queue.extend((d, record) for d in linked)
    first = [outcomes[r] for r in chosen]
    return first + [o for r, o in outcomes.items() if r not in chosen_set]


def _judge(outcome: Outcome, facts: LinkFacts) -> bool:
    """Applies the link's own state to the outcome; True when it can be unlinked (its Xero objects
    become the outcome's orphans), False when it is already unlinked or refused."""
    where = f" under connection {outcome.connection_id}" if outcome.connection_id else ""
    name = f"{label(outcome.record)}{where}"
    if facts.state == LinkState.UNLINKED:
        outcome.action = Action.ALREADY_UNLINKED
        return False
    if facts.state == LinkState.PENDING:
        outcome.action = Action.REFUSED
        outcome.error = XerolinkError(
            ErrorCode.FAILED_PRECONDITION,
            Reason.POSTING_IN_PROGRESS,
            f"{name} is being posted to Xero right now and cannot be unlinked; wait until it is "
            "linked or failed (watch its posting), then unlink it",
        )
        return False
    if facts.under_correction:
        # Unlinked now, its Xero objects the correction has not undone yet stay live as orphans,
        # and the correction applied again would act on whatever is posted for it next.
        outcome.action = Action.REFUSED
        outcome.error = XerolinkError(
            ErrorCode.FAILED_PRECONDITION,
            Reason.CORRECTION_UNFINISHED,
            f"{name} has a correction that has not completed (GetCorrection shows where it stopped); apply it "
            "again to finish it: it resumes at that step and unlinks the record itself (once Xero refuses a "
            "step for good, the record can be unlinked here)",
        )
        return False
    if facts.state == LinkState.FAILED and facts.outcome_unknown:
        # Unlinked, the record would be posted afresh under a new generation's tag, and what
        # the lost call made (under this generation's tag) would be neither found nor listed.
        outcome.action = Action.REFUSED
        outcome.error = XerolinkError(
            ErrorCode.FAILED_PRECONDITION,
            Reason.LINK_OUTCOME_UNKNOWN,
            f"{name} gave up without knowing whether Xero created it; post the same content again "
            "so xerolink finds it in Xero (or creates it once), then unlink it",
        )
        return False
    outcome.orphans = facts.objects
    return True


def with_other_halves(
    outcomes: Sequence[Outcome], other_halves: Mapping[RecordRef, Sequence[tuple[str, LinkFacts]]]
) -> list[Outcome]:
    """The plan with the other half of each record kept in two organisations right after its own
    outcome: unlinked with it (as selected, or cascaded from the same document), judged by its
    own link's state, so a half being posted refuses the request. `other_halves` maps a record to
    its links under other connections (connection id, facts). A record refused here for its own
    reasons (never posted, blocked by its payments) takes its other half nowhere."""
    planned: list[Outcome] = []
    for outcome in outcomes:
        planned.append(outcome)
        if (
            outcome.action == Action.REFUSED
            and outcome.error is not None
            and outcome.error.reason
            in (
                Reason.LINK_NOT_FOUND,
                Reason.LINKED_DEPENDENTS,
                Reason.DEPENDENT_IN_PROGRESS,
            )
        ):
            continue
        for connection_id, facts in other_halves.get(outcome.record, ()):
            half = Outcome(
                outcome.record,
                Action.CASCADE if outcome.cascaded_from else Action.UNLINK,
                cascaded_from=outcome.cascaded_from,
                connection_id=connection_id,
            )
            _judge(half, facts)
            planned.append(half)
    return planned


def refusal(connection_id: str, outcomes: Sequence[Outcome]) -> XerolinkError | None:
    """The request's error when any record is refused (nothing is changed), else None. Each
    refused record is a violation, and so is each record that blocks one."""
    refused = [o for o in outcomes if o.action == Action.REFUSED and o.error is not None]
    if not refused:
        return None
    reasons = {o.error.reason for o in refused if o.error is not None}
    violations: list[PreconditionViolation] = []
    for o in refused:
        assert o.error is not None
        subject = link_name(o.connection_id or connection_id, o.record)
        violations.append(PreconditionViolation(o.error.reason, subject, o.error.message))
        violations.extend(
            PreconditionViolation(
                "BLOCKING_DEPENDENT",
                link_name(connection_id, b),
                f"{label(b)} refers to {label(o.record)} in Xero; cascade or unlink it first",
            )
            for b in o.blocked_by
        )
    code = ErrorCode.NOT_FOUND if reasons == {Reason.LINK_NOT_FOUND} else ErrorCode.FAILED_PRECONDITION
    summary = "; ".join(o.error.message for o in refused if o.error is not None)
    return XerolinkError(
        code,
        reasons.pop() if len(reasons) == 1 else Reason.UNLINK_REFUSED,
        f"nothing was unlinked: {len(refused)} record(s) cannot be unlinked: {summary}",
        precondition_violations=violations,
    )


def link_name(connection_id: str, record: RecordRef) -> str:
    return _record_link_name(connection_id, record)
