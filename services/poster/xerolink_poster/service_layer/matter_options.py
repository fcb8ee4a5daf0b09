"""CloseMatter and ListMatterOptions: a closed matter's tracking option is archived in Xero (a
later posting of the matter makes it ACTIVE again), and the options xerolink found or created are
listed by matter.

The archive call borrows the tenant's worker from the dispatcher (as corrections do), so it shares
the tenant's rate budget and lease with posting. It is refused while any outbox entry of the
connection that carries the matter on a line is not done, and it checks that again and archives
under the worker's matters lock. A job holds its entries claimed (open) from before it finds their
options ACTIVE, under that lock, until Xero's answer is written: so no entry is between finding
the option and sending its lines when the close archives it, and an entry accepted after the check
finds the option archived (the lock waits for the close) and makes it ACTIVE again."""

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

from xerolink_poster.adapters import xero_payloads as payloads
from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.tables import ConnectionRow, MatterOptionLinkRow
from xerolink_poster.adapters.xero_client import Uncertain
from xerolink_poster.domain import matters as dom
from xerolink_poster.domain.states import LinkState
from xerolink_poster.service_layer.connections import get_connection, require_connection_id
from xerolink_poster.service_layer.dispatch.matters import Trouble, set_status
from xerolink_poster.service_layer.dispatch.supervisor import Dispatcher
from xerolink_poster.service_layer.dispatch.tenant_loop import TenantWorker
from xerolink_poster.service_layer.queries import connection_filters, encode_token, page_position, page_size
from xerolink_poster.service_layer.tenant_access import borrowed_tenant
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
        with borrowed_tenant(
            self.dispatcher, connection, self.lease_wait, "close matters on a poster that runs it"
        ) as (worker, _):
            return self._archive(connection, action_id, worker)

    def _checked(self, connection_id: str, action_id: int) -> MatterOptionLinkRow | None:
        """The matter's option, after refusing a close while postings of the matter are not in
        Xero yet: those of its records (pending or waiting), and every posting whose outbox entry
        is not done (ready, waiting, or claimed and on its way to Xero) that carries the matter on
        any line (a trust journal's other matter). They would carry the archived option, or make it
        ACTIVE again."""
        with UnitOfWork(self.db, write=False) as uow:
            unsettled = uow.matters.unsettled_links_of_matter(connection_id, action_id, list(UNSETTLED))
            for link_id, operations in uow.outbox.open_operations(connection_id):
                if link_id not in unsettled and action_id in payloads.matters_of_mapped(operations):
                    unsettled.add(link_id)
            option = uow.matters.get_option(connection_id, action_id)
        if unsettled:
            count = len(unsettled)
            raise failed_precondition(
                Reason.MATTER_HAS_PENDING_POSTINGS,
                f"{count} posting(s) of matter {action_id} are not in Xero yet (pending or waiting, or on their way "
                "with a line of the matter): close the matter when they are linked (or failed), so none carries an "
                "archived option",
                [
                    PreconditionViolation(
                        Reason.MATTER_HAS_PENDING_POSTINGS,
                        f"connections/{connection_id}/matters/{action_id}",
                        f"{count} posting(s) not in Xero yet; ListLinks (action_id={action_id}) lists those of the "
                        "matter's records, ListLinks (state=pending) all of them",
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
        filters = connection_filters(connection_id, _PAGE_FILTERS)
        after = page_position(token, filters)
        limit = page_size(size)
        with UnitOfWork(self.db, write=False) as uow:
            rows = uow.matters.list_options(connection_id, after, limit + 1)
        next_token = encode_token(f"{rows[limit - 1].action_id}:{filters}") if len(rows) > limit else ""
        return list(rows[:limit]), next_token
