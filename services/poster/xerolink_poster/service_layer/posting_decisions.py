"""Post's decisions: each mapped item against the links already stored and the items before it
in the batch: accepted (to be written by posting_writes.py), answered with an earlier posting,
or refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from xerolink_common.errors import ErrorCode, FieldViolation, PreconditionViolation, XerolinkError, failed_precondition
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import now_us
from xerolink_poster.adapters.tables import ConnectionRow, LinkRow, PostingRow
from xerolink_poster.domain.records import RecordRef, link_name
from xerolink_poster.domain.states import Event, LinkState, OutboxState
from xerolink_poster.service_layer.ports import Repositories
from xerolink_poster.service_layer.posting_values import Mapped, PostOutcome


def decide(
    repos: Repositories,
    connection: ConnectionRow,
    item: Mapped,
    record: RecordRef,
    links: dict[RecordRef, LinkRow],
    earlier: Earlier,
) -> PostOutcome | Accept:
    response = item.response
    outcome = PostOutcome(response.decision, record, item.fingerprint)
    # A request_id names one request (AIP-155): the same record with the same content replays
    # the first answer; anything else under it is refused, so no record is silently dropped.
    # Earlier in this batch counts as if it had been committed before this one arrived.
    if item.request_id and (first := earlier.by_request.get(item.request_id)) is not None:
        if not first.same_request(record, item.fingerprint):
            raise request_id_reused(connection, item.request_id, first.record, record == first.record)
        return first.answer_for(outcome)
    if item.request_id:
        for other in item.elsewhere:
            # A request_id names one request across the firm's connections: the routing may send a
            # second request under it to another connection than the first.
            first_elsewhere = repos.links.posting_by_request(other, item.request_id)
            if first_elsewhere is not None and RecordRef(first_elsewhere.kind, first_elsewhere.record_id) != record:
                raise request_id_reused(
                    connection, item.request_id, RecordRef(first_elsewhere.kind, first_elsewhere.record_id), False
                )
        stored = repos.links.posting_by_request(connection.connection_id, item.request_id)
        if stored is not None:
            check_same_request(connection, item.request_id, stored, record, item.fingerprint)
            outcome.posting = stored
            outcome.link = repos.links.get_link_by_id(stored.link_id or 0)
            outcome.duplicate = True
            return outcome
    if (same_record := earlier.by_record.get(record)) is not None:
        if same_record.item.fingerprint == item.fingerprint:
            _remember_request(earlier, item, record, same_record)
            return same_record.follow(outcome)
        raise in_progress(connection, record)
    accept = _decide_against_links(repos, connection, item, record, links, outcome)
    if isinstance(accept, Accept):
        earlier.by_record[record] = accept
    _remember_request(earlier, item, record, accept)
    return accept


def _remember_request(earlier: Earlier, item: Mapped, record: RecordRef, answer: PostOutcome | Accept) -> None:
    """A later item of the batch under the same request_id is judged against this one, also
    when this one was answered with an existing posting (and so stores no request_id).
    `answer` is the Accept whose posting answers it, or its answer if that is known now."""
    if item.request_id:
        earlier.by_request[item.request_id] = _FirstRequest(record, item.fingerprint, answer)


# States whose work a Post of other content (or a repost) replaces: the caller reads these links
# again, held until its commit, before deciding (posting._record_connection, hold_replaceable).
REPLACEABLE = (LinkState.WAITING, LinkState.FAILED, LinkState.UNLINKED)


def hold_replaceable(
    repos: Repositories, connection_id: str, records: Sequence[RecordRef], links: dict[RecordRef, LinkRow]
) -> None:
    """Reads again, held until the transaction ends, the links of these records that a Post may
    replace the work of, all in one statement in id order (so two batches lock them alike), and
    updates `links` with what they hold now. Without it, a release committed since `links` was
    read would have the old entry claimed and sent while this Post closes it, and Xero's answer
    dropped: the payment twice in Xero."""
    replaceable = sorted({r for r in records if (link := links.get(r)) is not None and link.state in REPLACEABLE})
    if replaceable:
        links.update(repos.links.links_of(connection_id, replaceable, lock=True))


def _decide_against_links(
    repos: Repositories,
    connection: ConnectionRow,
    item: Mapped,
    record: RecordRef,
    links: dict[RecordRef, LinkRow],
    outcome: PostOutcome,
) -> PostOutcome | Accept:
    for other in item.elsewhere:
        found = repos.links.links_for(other, [record]).get(record)
        if found is not None and item.complement and found.fingerprint == item.complement:
            continue  # the record's other half, in the other organisation: as it should be
        if found is not None and found.state != LinkState.UNLINKED:
            if item.request_id and (stored := repos.links.posting_by_request(other, item.request_id)) is not None:
                # A retry of the request that put it there, before the routing changed: its answer.
                check_same_request(connection, item.request_id, stored, record, item.fingerprint)
                outcome.posting, outcome.link, outcome.duplicate = stored, found, True
                return outcome
            raise linked_elsewhere(connection, record, other)
    now = now_us()
    link = links.get(record)
    if link is None:  # a new record: its link is written by _write_accepted
        return Accept(item, record, outcome, None, Event.ACCEPTED, now)
    state = LinkState(link.state)
    same = link.fingerprint == item.fingerprint
    if same and state in (LinkState.PENDING, LinkState.WAITING, LinkState.LINKED):
        outcome.posting = repos.links.get_posting(link.posting_id)
        outcome.link = link
        outcome.duplicate = True
        return outcome
    if state == LinkState.LINKED:
        raise failed_precondition(
            Reason.LINK_LOCKED,
            f"locked - unlink first: {record} is linked to Xero with other content; unlink it (and "
            "correct the Xero object) before posting the change",
            [PreconditionViolation(Reason.LINK_LOCKED, _subject(connection, record), "linked records are locked")],
        )
    if state == LinkState.PENDING:
        raise in_progress(connection, record)
    if state == LinkState.FAILED and not same and repos.links.xero_objects(link):
        raise failed_precondition(
            Reason.LINK_PARTIALLY_POSTED,
            f"{record} failed after part of it reached Xero; unlink it before posting changed content",
            [PreconditionViolation(Reason.LINK_PARTIALLY_POSTED, _subject(connection, record), "partly in Xero")],
        )
    if state == LinkState.FAILED and not same and link.outcome_unknown:
        # A look-up would find, and adopt, an object holding the old content.
        raise failed_precondition(
            Reason.LINK_OUTCOME_UNKNOWN,
            f"{record} gave up without knowing whether Xero created it; post the same content again "
            "so xerolink looks it up in Xero, then unlink or correct it to post the change",
            [PreconditionViolation(Reason.LINK_OUTCOME_UNKNOWN, _subject(connection, record), "may be in Xero")],
        )
    # Xero may hold what the failed attempt sent: the repost's first call is a look-up, made no
    # sooner than one of the given-up entry would have been (Xero may still be carrying out its
    # last call: a look-up before that lands finds nothing, and the repost created it twice).
    look_up_first = state == LinkState.FAILED and link.outcome_unknown
    not_before = repos.outbox.latest_available(link.id or 0) if look_up_first else 0
    link.outcome_unknown = False
    for old in repos.outbox.open_outbox_of_link(link.id or 0):
        old.state = OutboxState.DONE
        repos.outbox.clear_waits(old.id or 0)
        repos.outbox.save(old)
    if state == LinkState.UNLINKED:
        link.generation += 1
        repos.links.set_xero_objects(link, [])
    link.fingerprint = item.fingerprint
    link.attempts = 0
    link.last_error = None
    event = Event.ACCEPTED if state == LinkState.WAITING else Event.RETRY_ACCEPTED
    return Accept(item, record, outcome, link, event, now, look_up_first=look_up_first, not_before=not_before)


@dataclass
class Accept:
    """An item accepted for (re)posting, written in the batch's second phase."""

    item: Mapped
    record: RecordRef
    outcome: PostOutcome
    # The loaded link of a record posted before; None for a new record.
    link: LinkRow | None
    event: Event
    now: int
    # The outbox entry starts uncertain: a failed attempt's object may be in Xero.
    look_up_first: bool = False
    # The entry is available no sooner than this (its look-up first waits for the last call).
    not_before: int = 0
    waits: list[RecordRef] = field(default_factory=list)
    # Records of other connections it waits for (item.after not yet linked).
    foreign_waits: list[tuple[str, RecordRef]] = field(default_factory=list)
    # Later items of the batch with the same content or request: answered with this posting.
    followers: list[PostOutcome] = field(default_factory=list)

    def follow(self, outcome: PostOutcome) -> PostOutcome:
        outcome.duplicate = True
        self.followers.append(outcome)
        return outcome


@dataclass(frozen=True)
class _FirstRequest:
    """The first item of a batch under a request_id, and the answer it got."""

    record: RecordRef
    fingerprint: str
    answer: PostOutcome | Accept

    def same_request(self, record: RecordRef, fingerprint: str) -> bool:
        return record == self.record and fingerprint == self.fingerprint

    def answer_for(self, outcome: PostOutcome) -> PostOutcome:
        if isinstance(self.answer, Accept):
            return self.answer.follow(outcome)
        outcome.posting, outcome.link, outcome.duplicate = self.answer.posting, self.answer.link, True
        return outcome


@dataclass
class Earlier:
    """The items of a batch answered so far, by record (accepted ones) and by request id."""

    by_record: dict[RecordRef, Accept] = field(default_factory=dict)
    by_request: dict[str, _FirstRequest] = field(default_factory=dict)


def request_id_reused(connection: ConnectionRow, request_id: str, first: RecordRef, same_record: bool) -> XerolinkError:
    """ALREADY_EXISTS, not INVALID_ARGUMENT: the request is only wrong because the id already
    names another request (docs/poster.md, "Request ids")."""
    what = f"{first} with other content" if same_record else str(first)
    return XerolinkError(
        ErrorCode.ALREADY_EXISTS,
        Reason.REQUEST_ID_REUSED,
        f"request_id {request_id!r} was already used for {what} on connection {connection.connection_id}; "
        "nothing was posted: send a new request_id for a new request (reuse one only to retry the same request)",
        field_violations=[
            FieldViolation(
                "request_id", f"already used for {_subject(connection, first)}; a new request needs a new request_id"
            )
        ],
        metadata={"request_id": request_id, "first_record": _subject(connection, first)},
    )


def check_same_request(
    connection: ConnectionRow, request_id: str, stored: PostingRow, record: RecordRef, fingerprint: str
) -> None:
    """Refuses a request that is not the one `stored` answered under `request_id`."""
    first = RecordRef(stored.kind, stored.record_id)
    if record != first or stored.fingerprint != fingerprint:
        raise request_id_reused(connection, request_id, first, record == first)


def linked_elsewhere(connection: ConnectionRow, record: RecordRef, other: str) -> XerolinkError:
    """The firm's routing sends the record to `connection`, but it is linked under `other` (it was
    posted before the routing changed): posting it here would put it in two organisations."""
    return failed_precondition(
        Reason.RECORD_LINKED_ELSEWHERE,
        f"{record} is linked under connection {other}, and the routing now posts it under "
        f"{connection.connection_id}; nothing was posted: unlink it under {other} (and remove it from that "
        "organisation) first, or change the routing back",
        [PreconditionViolation(Reason.RECORD_LINKED_ELSEWHERE, _subject(connection, record), f"linked under {other}")],
    )


def in_progress(connection: ConnectionRow, record: RecordRef) -> XerolinkError:
    return failed_precondition(
        Reason.POSTING_IN_PROGRESS,
        f"{record} is being posted with other content; wait until it is linked or failed, then unlink or post again",
        [PreconditionViolation(Reason.POSTING_IN_PROGRESS, _subject(connection, record), "posting in progress")],
    )


def _subject(connection: ConnectionRow, record: RecordRef) -> str:
    return link_name(connection.connection_id, record)
