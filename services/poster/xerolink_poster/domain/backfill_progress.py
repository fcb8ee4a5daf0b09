"""A backfill's progress from the states of the links of its items: plain data, no storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xerolink_poster.domain.states import LinkState

ACCEPTED = "accepted"
ALREADY_DONE = "already_done"
REFUSED = "refused"

# A payment waiting for a bill in one of these states will not move on its own.
_DEAD_ENDS = (LinkState.FAILED, LinkState.UNLINKED)


@dataclass(frozen=True)
class ItemState:
    bill_index: int
    is_bill: bool
    outcome: str
    # The link's state now; None when refused (or its link is gone).
    state: LinkState | None


@dataclass(frozen=True)
class Progress:
    total: int
    accepted: int
    already_done: int
    refused: int
    pending: int
    waiting: int
    linked: int
    failed: int
    unlinked: int
    done: bool


def progress(items: Sequence[ItemState]) -> Progress:
    def count(state: LinkState) -> int:
        return sum(1 for i in items if i.state is state)

    bill_state = {i.bill_index: i.state for i in items if i.is_bill}
    stuck_waiting = all(
        bill_state.get(i.bill_index) in _DEAD_ENDS for i in items if i.state is LinkState.WAITING and not i.is_bill
    )
    # A bill that waits has nothing to wait for in a backfill: it is treated like a pending one.
    bills_waiting = any(i.is_bill and i.state is LinkState.WAITING for i in items)
    return Progress(
        total=len(items),
        accepted=sum(1 for i in items if i.outcome == ACCEPTED),
        already_done=sum(1 for i in items if i.outcome == ALREADY_DONE),
        refused=sum(1 for i in items if i.outcome == REFUSED),
        pending=count(LinkState.PENDING),
        waiting=count(LinkState.WAITING),
        linked=count(LinkState.LINKED),
        failed=count(LinkState.FAILED),
        unlinked=count(LinkState.UNLINKED),
        done=count(LinkState.PENDING) == 0 and stuck_waiting and not bills_waiting,
    )
