"""Link, connection and outbox states, and the one table of allowed link transitions. Every state change of a link goes
through `transition`, and the repository writes an audit row for it in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_common.reasons import Reason


class LinkState(StrEnum):
    PENDING = "pending"
    WAITING = "waiting"
    LINKED = "linked"
    FAILED = "failed"
    UNLINKED = "unlinked"


class ConnectionState(StrEnum):
    """A connection row's state; the values are stored."""

    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"  # Xero refused or lost its tokens: connect again
    DISCONNECTED = "disconnected"


class OutboxState(StrEnum):
    """An outbox row's state; the values are stored."""

    READY = "ready"  # claimable by a dispatcher
    WAITING = "waiting"  # held until the records it depends on link
    DONE = "done"  # finished; purged after the retention period


class Event(StrEnum):
    ACCEPTED = "accepted"  # a new posting of new or changed content was queued
    RETRY_ACCEPTED = "retry_accepted"  # a failed or unlinked record was posted again
    BLOCKED = "blocked"  # a dependency is not linked yet
    RELEASED = "released"  # the dependency linked; the work is queued again
    POSTED = "posted"  # every Xero operation succeeded
    XERO_REJECTED = "xero_rejected"  # Xero refused an element (validation errors)
    GAVE_UP = "gave_up"  # retries exhausted on errors Xero never explained
    UNLINKED = "unlinked"  # an operator unlinked it; the Xero object stays (orphaned)
    DRIFT_ACCEPTED = "drift_accepted"  # Xero's changed document was accepted: work held on it fails


# (from, event) -> to. None as the source is a link that does not exist yet.
TRANSITIONS: dict[tuple[LinkState | None, Event], LinkState] = {
    (None, Event.ACCEPTED): LinkState.PENDING,
    (None, Event.BLOCKED): LinkState.WAITING,
    (LinkState.PENDING, Event.BLOCKED): LinkState.WAITING,
    (LinkState.PENDING, Event.POSTED): LinkState.LINKED,
    (LinkState.PENDING, Event.XERO_REJECTED): LinkState.FAILED,
    (LinkState.PENDING, Event.GAVE_UP): LinkState.FAILED,
    (LinkState.WAITING, Event.RELEASED): LinkState.PENDING,
    (LinkState.WAITING, Event.ACCEPTED): LinkState.PENDING,  # changed content replaces waiting work
    (LinkState.WAITING, Event.BLOCKED): LinkState.WAITING,  # changed content, still blocked
    (LinkState.FAILED, Event.RETRY_ACCEPTED): LinkState.PENDING,
    (LinkState.FAILED, Event.BLOCKED): LinkState.WAITING,
    (LinkState.UNLINKED, Event.RETRY_ACCEPTED): LinkState.PENDING,
    (LinkState.UNLINKED, Event.BLOCKED): LinkState.WAITING,
    (LinkState.LINKED, Event.UNLINKED): LinkState.UNLINKED,
    (LinkState.FAILED, Event.UNLINKED): LinkState.UNLINKED,
    (LinkState.WAITING, Event.UNLINKED): LinkState.UNLINKED,
    (LinkState.WAITING, Event.DRIFT_ACCEPTED): LinkState.FAILED,
}

# States in which a posting has reached its end (WatchPosting stops there).
SETTLED = frozenset({LinkState.LINKED, LinkState.FAILED, LinkState.UNLINKED})


@dataclass(frozen=True)
class Transition:
    from_state: LinkState | None
    to_state: LinkState
    event: Event


def transition(current: LinkState | None, event: Event) -> Transition:
    """The next state, or an error naming the refused move (a bug or a race, never silently applied)."""
    target = TRANSITIONS.get((current, event))
    if target is None:
        raise XerolinkError(
            ErrorCode.FAILED_PRECONDITION,
            Reason.ILLEGAL_LINK_TRANSITION,
            f"a link in state {current.value if current else 'none'} cannot take event {event.value}; "
            "read the link again and retry with its current state",
        )
    return Transition(current, target, event)
