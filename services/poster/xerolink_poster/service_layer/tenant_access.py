"""Xero calls outside the outbox (corrections, closing a matter, resolving a drift, reconciling):
they borrow the tenant's worker, so they share its lease and rate budget with posting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from xerolink_common.errors import PreconditionViolation, failed_precondition, unavailable
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.xero_client import Credentials
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker


@contextmanager
def borrowed_tenant(
    dispatcher: Dispatcher | None, connection: ConnectionRow, lease_wait: float, elsewhere: str
) -> Iterator[tuple[TenantWorker, Credentials]]:
    """The tenant's worker and the connection's opened credentials, for the body's calls.
    FAILED_PRECONDITION when this poster runs no dispatcher (`elsewhere` says what to do
    instead, e.g. "resolve drifts on a poster that runs it") or when the connection is not
    connected; UNAVAILABLE (TENANT_BUSY) when
    another poster keeps the tenant longer than `lease_wait` seconds, or loses it mid-way."""
    if dispatcher is None:
        raise failed_precondition(
            Reason.DISPATCHER_OFF,
            f"this poster runs without its dispatcher (XEROLINK_DISPATCHER=off) and makes no Xero calls; {elsewhere}",
        )
    if connection.state != ConnectionState.CONNECTED:
        # Xero refuses its calls (a 403 or a refused refresh made it so): only a consent mends that,
        # and a retry told UNAVAILABLE would only be refused again.
        reason = (
            Reason.CONNECTION_DISCONNECTED
            if connection.state == ConnectionState.DISCONNECTED
            else Reason.CONNECTION_NEEDS_RECONNECT
        )
        why = f" ({connection.last_error})" if connection.last_error else ""
        raise failed_precondition(
            reason,
            f"connection {connection.connection_id!r} is {connection.state}{why}: Xero takes none of its calls until "
            "an administrator connects the organisation again (ConnectOrganisation)",
            [PreconditionViolation("CONNECTION_STATE", f"connections/{connection.connection_id}", connection.state)],
        )
    try:
        with dispatcher.tenant_calls(connection.xero_tenant_id, lease_wait) as worker:
            # Tokens are sealed at rest: the keeper opens them and refreshes an expiring one.
            yield worker, worker.credentials(connection)
    except LeaseLost as exc:
        raise unavailable(
            Reason.TENANT_BUSY,
            "another poster is serving this Xero organisation (or this one is stopping); try again in a few seconds",
            retry_after_seconds=2.0,
        ) from exc
