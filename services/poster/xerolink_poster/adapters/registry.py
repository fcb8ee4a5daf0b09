"""TODO(dispatch): move to repositories. The registry facade the dispatcher still uses
(service_layer/dispatcher.py): the old Registry methods, each handing on to the repository that
now holds it (adapters/repositories/), plus the session. Nothing else may use it; it goes once the
dispatcher works through the unit of work's repositories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from xerolink_poster.adapters.repositories.links import xero_objects
from xerolink_poster.adapters.repositories.outbox import OUTBOX_DONE, OUTBOX_READY, OUTBOX_WAITING
from xerolink_poster.adapters.repositories.sql import SqlRepositories
from xerolink_poster.adapters.tables import ConnectionRow, ContactLinkRow, LinkRow, OutboxRow, TenantLeaseRow
from xerolink_poster.domain.records import RecordRef, XeroObjectRef

__all__ = ["OUTBOX_DONE", "OUTBOX_READY", "OUTBOX_WAITING", "Registry"]


class Registry:
    """TODO(dispatch): move to repositories."""

    def __init__(self, session: Session, repositories: SqlRepositories) -> None:
        self.session = session
        self.links = repositories.links
        self.outbox = repositories.outbox
        self.contacts = repositories.contacts
        self.connections = repositories.connections
        self.corrections = repositories.corrections
        self.backfills = repositories.backfills
        self.leases = repositories.leases

    def preload(self, model: type[Any], column: Any, values: Sequence[Any]) -> None:
        if values:
            self.session.exec(select(model).where(col(column).in_(list(values)))).all()

    @staticmethod
    def xero_objects(link: LinkRow) -> list[XeroObjectRef]:
        return xero_objects(link)

    def get_connection(self, connection_id: str) -> ConnectionRow | None:
        return self.connections.get_connection(connection_id)

    def get_link(self, connection_id: str, record: RecordRef) -> LinkRow | None:
        return self.links.get_link(connection_id, record)

    def get_link_by_id(self, link_id: int) -> LinkRow | None:
        return self.links.get_link_by_id(link_id)

    def held_xero_ids(self, connection_id: str, xero_ids: Sequence[str], except_link_id: int) -> set[str]:
        return self.links.held_xero_ids(connection_id, xero_ids, except_link_id)

    def get_outbox(self, outbox_id: int) -> OutboxRow | None:
        return self.outbox.get_outbox(outbox_id)

    def waits_of(self, outbox_id: int) -> list[RecordRef]:
        return self.outbox.waits_of(outbox_id)

    def claim(self, tenant_id: str, holder: str, limit: int, now_us: int, lease_us: int) -> list[OutboxRow]:
        return self.outbox.claim(tenant_id, holder, limit, now_us, lease_us)

    def release_claims(self, tenant_id: str) -> None:
        self.outbox.release_claims(tenant_id)

    def tenants_with_ready_work(self, now_us: int) -> list[str]:
        return self.outbox.tenants_with_ready_work(now_us)

    def satisfied_waiting_entries(self) -> list[int]:
        return self.outbox.satisfied_waiting_entries()

    def purge_done_outbox(self, before_us: int, limit: int) -> int:
        return self.outbox.purge_done_outbox(before_us, limit)

    def get_contact(self, connection_id: str, participant_id: int) -> ContactLinkRow | None:
        return self.contacts.get_contact(connection_id, participant_id)

    def participant_of_contact(self, connection_id: str, contact_id: str) -> int | None:
        return self.contacts.participant_of_contact(connection_id, contact_id)

    def add_contact(self, row: ContactLinkRow) -> None:
        self.contacts.add_contact(row)

    def acquire_lease(self, tenant_id: str, holder: str, now_us: int, ttl_us: int) -> TenantLeaseRow | None:
        return self.leases.acquire_lease(tenant_id, holder, now_us, ttl_us)

    def release_lease(self, tenant_id: str, holder: str) -> None:
        self.leases.release_lease(tenant_id, holder)

    def record_call(self, tenant_id: str, holder: str, now_us: int, ttl_us: int, minute_us: int, day_us: int) -> bool:
        return self.leases.record_call(tenant_id, holder, now_us, ttl_us, minute_us, day_us)

    def count_app_call(self, now_us: int, window_us: int) -> int:
        return self.leases.count_app_call(now_us, window_us)

    def move_app_call(self, counted_us: int, answered_us: int, window_us: int) -> None:
        self.leases.move_app_call(counted_us, answered_us, window_us)

    def purge_app_calls(self, before_us: int) -> None:
        self.leases.purge_app_calls(before_us)

    def block_tenant(self, tenant_id: str, until_us: int) -> None:
        self.leases.block_tenant(tenant_id, until_us)
