"""What a tenant worker's parts use of the dispatcher that runs them, named as a protocol so the
parts need not import the supervisor (which imports them)."""

from __future__ import annotations

from typing import Protocol

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.xero_client import XeroClient
from xerolink_poster.domain.rate_limits import AppCallMoves, SlidingWindow
from xerolink_poster.service_layer.connection_lifecycle import ConnectionKeeper
from xerolink_poster.service_layer.dispatch.answer_groups import AnswerGroups
from xerolink_poster.service_layer.dispatch.state_changes import StateChanges
from xerolink_poster.service_layer.metrics import PosterMetrics


class Shared(Protocol):
    db: Database
    xero: XeroClient
    # The poster instance holding leases and claims, and the actor its state changes name.
    holder: str
    actor: str
    # Applies the calls' answers, several calls' in one transaction when they arrive together.
    answers: AnswerGroups
    changes: StateChanges
    metrics: PosterMetrics | None
    # Opens the sealed tokens and refreshes them (one worker at a time, across posters).
    keeper: ConnectionKeeper | None
    # This process's share of the app's calls per minute, across its tenants.
    app_window: SlidingWindow
    # Counts of the app's minute to move to their calls' answers, not yet written.
    app_moves: AppCallMoves
    calls_made: int
    calls_refused: int

    @property
    def stopping(self) -> bool: ...

    @property
    def others_waiting(self) -> bool:
        """Tenants with ready work wait for a worker: every worker this poster may run is busy."""
        ...

    def hand_back(self, tenant_id: str, worker: object, claims_left: bool = False) -> None:
        """Releases the tenant's lease as `worker` ends, unless a newer worker of this poster
        serves the tenant by now (it holds the lease under the same holder name); `claims_left`
        when a job could not put its claims back, so that the next holder voids them."""
        ...

    def worker_failed(self, tenant_id: str) -> None:
        """The tenant's worker failed outside a job: its next one starts after a pause that
        doubles with each failure in a row."""
        ...

    def worker_served(self, tenant_id: str) -> None:
        """The tenant's worker ended its turn as it should: no pause before the next one."""
        ...
