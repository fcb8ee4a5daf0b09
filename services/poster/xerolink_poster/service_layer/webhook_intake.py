"""Storing a signed webhook delivery's events before it is answered (docs/drift.md "Webhooks")."""

from __future__ import annotations

from collections.abc import Sequence

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.drift_tables import WebhookEventRow
from xerolink_poster.domain.webhook_events import WebhookEvent
from xerolink_poster.service_layer.unit_of_work import UnitOfWork, run_in_transaction

PENDING = "pending"


def store_events(db: Database, events: Sequence[WebhookEvent], now_us: int) -> int:
    """Stores every event of one delivery in one transaction (all or none); an event stored by an
    earlier delivery (Xero retries until answered, and may replay) is not stored again. Returns
    how many were new."""

    def write(uow: UnitOfWork) -> int:
        added = 0
        for event in events:
            row = WebhookEventRow(
                event_key=event.key,
                tenant_id=event.tenant_id,
                category=event.category,
                event_type=event.event_type,
                resource_id=event.resource_id,
                event_date=event.event_date,
                received_us=now_us,
                state=PENDING,
            )
            added += uow.drift.add_event(row)
        return added

    if not events:
        return 0
    return run_in_transaction(db, write)
