"""Unlinking one record: the link is kept (state unlinked) and its Xero objects stay in Xero,
recorded as orphaned in the audit trail. Posting the record again creates it afresh (a new
generation); a payment whose invoice is unlinked waits until the invoice is linked again.
(Selecting groups, previews and cascades are the unlink feature's work, built on this.)"""

from __future__ import annotations

from xerolink_common.errors import failed_precondition, not_found

from xerolink_poster.adapters.database import Database, now_us
from xerolink_poster.adapters.registry import OUTBOX_DONE
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.states import Event, LinkState
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction


def unlink(db: Database, connection_id: str, record: RecordRef, actor: str) -> LinkRow:
    def work(uow: UnitOfWork) -> LinkRow:
        link = uow.registry.get_link(connection_id, record)
        if link is None:
            raise not_found("LINK_NOT_FOUND", f"{record} was never posted on connection {connection_id!r}")
        if link.state == LinkState.PENDING:
            raise failed_precondition(
                "POSTING_IN_PROGRESS", f"{record} is being posted; wait until it is linked or failed, then unlink"
            )
        orphans = ", ".join(f"{o.type}:{o.xero_id}" for o in uow.registry.xero_objects(link))
        for row in uow.registry.open_outbox_of_link(link.id or 0):
            row.state = OUTBOX_DONE
            uow.registry.clear_waits(row.id or 0)
            uow.session.add(row)
        link.waiting_on = "[]"
        uow.registry.change_state(
            link, Event.UNLINKED, actor, now_us(), detail=f"orphaned in Xero: {orphans or 'nothing'}"
        )
        return link

    return run_in_transaction(db, work)
