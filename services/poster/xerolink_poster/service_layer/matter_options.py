"""CloseMatter and ListMatterOptions: a closed matter's tracking option is archived in Xero (a
later posting of the matter makes it ACTIVE again), and the options xerolink found or created are
listed by matter.

The archive call borrows the tenant's worker from the dispatcher (as corrections do), so it shares
the tenant's rate budget and lease with posting, and it runs under the worker's matters lock: no
job of the tenant is then between finding the option ACTIVE and sending lines that carry it."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from xerolink_common.errors import (
    FieldViolation,
    PreconditionViolation,
    failed_precondition,
    invalid_argument,
    unavailable,
)
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import ConnectionRow, MatterOptionLinkRow
from xerolink_poster.adapters.xero_client import Uncertain
from xerolink_poster.domain import matters as dom
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer.connections import get_connection, require_connection_id
from xerolink_poster.service_layer.dispatch.gate import LeaseLost
from xerolink_poster.service_layer.dispatch.matters import Trouble, set_status
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.queries import encode_token, page_position, page_size
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

log = logging.getLogger(__name__)
# Links of a matter not yet in Xero: a posting that would use the option the close archives.
UNSETTLED = (LinkState.PENDING, LinkState.WAITING)
_PAGE_FILTERS = "matter-options"
# Xero's answers that may pass: the close is called again (UNAVAILABLE); others need the firm.
_PASSING = (Reason.XERO_RATE_LIMITED, Reason.XERO_UNAVAILABLE, Reason.XERO_ANSWER_UNREADABLE)


def _check_request(connection_id: str, action_id: int) -> None:
    require_connection_id(connection_id)
    if action_id <= 0:
        raise invalid_argument(
            Reason.INVALID_MATTER_REQUEST,
            "action_id is required: the closed matter's Actionstep action id",
            [FieldViolation("action_id", "required: the matter's positive Actionstep action id")],
        )


class MatterOptions:
    def __init__(self, db: Database, dispatcher: Dispatcher | None, lease_wait: float = 10.0) -> None:
        self.db = db
        self.dispatcher = dispatcher
        self.lease_wait = lease_wait

    def close(self, connection_id: str, action_id: int) -> MatterOptionLinkRow | None:
        """Archives the matter's option in Xero; None when xerolink never made one for it. Calling
        it again answers the archived option and calls Xero no more."""
        _check_request(connection_id, action_id)
        connection = get_connection(self.db, connection_id)
        option = self._checked(connection_id, action_id)
        if option is None or option.state == dom.OptionState.ARCHIVED:
            return option
        if self.dispatcher is None:
            raise failed_precondition(
                Reason.DISPATCHER_OFF,
                "this poster runs without its dispatcher (XEROLINK_DISPATCHER=off) and makes no Xero calls; "
                "close matters on a poster that runs it",
            )
        try:
            with self.dispatcher.tenant_calls(connection.xero_tenant_id, self.lease_wait) as worker:
                return self._archive(connection, action_id, worker)
        except LeaseLost as exc:
            raise unavailable(
                Reason.TENANT_BUSY,
                "another poster is serving this Xero organisation (or this one is stopping); try again in a few "
                "seconds",
                retry_after_seconds=2.0,
            ) from exc

    def _checked(self, connection_id: str, action_id: int) -> MatterOptionLinkRow | None:
        """The matter's option, after refusing a close while postings of the matter are not in
        Xero yet (they would carry the option, or make it ACTIVE again)."""
        with UnitOfWork(self.db, write=False) as uow:
            unsettled = uow.matters.unsettled_links_of_matter(connection_id, action_id, list(UNSETTLED))
            option = uow.matters.get_option(connection_id, action_id)
        if unsettled:
            raise failed_precondition(
                Reason.MATTER_HAS_PENDING_POSTINGS,
                f"{unsettled} posting(s) of matter {action_id} are not in Xero yet (pending or waiting): close the "
                "matter when they are linked (or failed), so none carries an archived option",
                [
                    PreconditionViolation(
                        Reason.MATTER_HAS_PENDING_POSTINGS,
                        f"connections/{connection_id}/matters/{action_id}",
                        f"{unsettled} link(s) pending or waiting; list them with ListLinks (action_id={action_id})",
                    )
                ],
            )
        return option

    def _archive(self, connection: ConnectionRow, action_id: int, worker: TenantWorker) -> MatterOptionLinkRow | None:
        with worker.matters.lock:
            return self._archive_locked(connection, action_id, worker)

    def _archive_locked(
        self, connection: ConnectionRow, action_id: int, worker: TenantWorker
    ) -> MatterOptionLinkRow | None:
        cid = connection.connection_id
        # Again under the lock: a job may have taken a posting of the matter meanwhile.
        option = self._checked(cid, action_id)
        if option is None or option.state == dom.OptionState.ARCHIVED:
            return option
        try:
            creds = worker.credentials(connection)
            set_status(worker, creds, option.tracking_category_id, option.tracking_option_id, dom.ARCHIVED, time.time())
        except Uncertain as exc:
            raise unavailable(
                Reason.XERO_NO_ANSWER,
                f"Xero did not answer the archive of matter {action_id}'s option ({exc}); call again",
            ) from exc
        except Trouble as trouble:
            if trouble.reason in _PASSING:
                message = f"{trouble.message}; call again"
                raise unavailable(trouble.reason, message, retry_after_seconds=2.0) from trouble
            raise failed_precondition(trouble.reason, trouble.message) from trouble
        log.info("matter %s closed: Xero tracking option %s archived", action_id, option.tracking_option_id)

        def write(uow: UnitOfWork) -> MatterOptionLinkRow | None:
            uow.matters.set_option_state(cid, action_id, dom.OptionState.ARCHIVED, now_us())
            return uow.matters.get_option(cid, action_id)

        return run_in_transaction(self.db, write)

    def list(self, connection_id: str, size: int, token: str) -> tuple[Sequence[MatterOptionLinkRow], str]:
        """The connection's matter options by action id, a page at a time."""
        get_connection(self.db, connection_id)
        after = page_position(token, _PAGE_FILTERS)
        limit = page_size(size)
        with UnitOfWork(self.db, write=False) as uow:
            rows = uow.matters.list_options(connection_id, after, limit + 1)
        next_token = encode_token(f"{rows[limit - 1].action_id}:{_PAGE_FILTERS}") if len(rows) > limit else ""
        return list(rows[:limit]), next_token
