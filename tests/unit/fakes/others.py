"""In-memory connections and contacts, and the repositories no unit-tested rule uses yet
(backfills, leases, matters), whose methods say so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from xerolink_poster.adapters.backfill_tables import BackfillItemRow, BackfillRow
from xerolink_poster.adapters.tables import (
    ConnectionRow,
    ContactLinkRow,
    MatterOptionLinkRow,
    TenantLeaseRow,
    TrackingCategoryLinkRow,
)
from xerolink_poster.domain.routing import HeldConnection
from xerolink_poster.domain.stored_rows import HeldLease, LeaseForCall, PriorLease

from tests.unit.fakes.registry import Registry


def _unused(what: str) -> NoReturn:
    raise NotImplementedError(f"{what}: no service-layer rule under unit test needs it yet")


class FakeConnectionRepository:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def get_connection(self, connection_id: str) -> ConnectionRow | None:
        return self._registry.connections.get(connection_id)

    def lock_connection(self, connection_id: str) -> ConnectionRow | None:
        return self.get_connection(connection_id)  # one thread of units at a time in the fake

    def share_connection(self, connection_id: str) -> HeldConnection | None:
        row = self.get_connection(connection_id)
        if row is None:
            return None
        return HeldConnection(row.firm_group, row.routing or b"", row.mapping_context)

    def add_connection(self, row: ConnectionRow) -> None:
        self._registry.connections[row.connection_id] = row

    def save(self, row: ConnectionRow) -> None:
        self.add_connection(row)

    def all_connections(self) -> Sequence[ConnectionRow]:
        return sorted(self._registry.connections.values(), key=lambda c: c.connection_id)

    def firm_members(self, group: str) -> list[str]:
        return sorted(c.connection_id for c in self._registry.connections.values() if group and c.firm_group == group)

    def connection_ids_of_tenant(self, tenant_id: str) -> list[str]:
        return sorted(
            c.connection_id
            for c in self._registry.connections.values()
            if c.xero_tenant_id.lower() == tenant_id.lower()
        )

    def claim_refresh(self, connection_id: str, version: int, holder: str, now_us: int, until_us: int) -> bool:
        _unused("claim_refresh (token refresh)")

    def release_refresh(self, connection_id: str, holder: str, **values: Any) -> None:
        _unused("release_refresh (token refresh)")

    def mark_needs_reconnect(self, connection_id: str, version: int, message: str) -> bool:
        _unused("mark_needs_reconnect (a connection refused by Xero)")

    def store_tokens(self, connection_id: str, version: int, holder: str | None, values: dict[str, Any]) -> bool:
        _unused("store_tokens (token refresh)")


class FakeContactRepository:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def get_contact(self, connection_id: str, participant_id: int) -> ContactLinkRow | None:
        return self._registry.contacts.get((connection_id, participant_id))

    def contacts_of(self, connection_id: str, participant_ids: Sequence[int]) -> dict[int, str]:
        found = (self._registry.contacts.get((connection_id, p)) for p in participant_ids)
        return {row.participant_id: row.contact_id for row in found if row is not None}

    def participant_of_contact(self, connection_id: str, contact_id: str) -> int | None:
        contacts = self._registry.contacts.items()
        return next((p for (c, p), row in contacts if c == connection_id and row.contact_id == contact_id), None)

    def add_contacts(self, rows: Sequence[ContactLinkRow]) -> dict[tuple[str, int], str]:
        return {
            (row.connection_id, row.participant_id): self._registry.contacts.setdefault(
                (row.connection_id, row.participant_id), row
            ).contact_id
            for row in rows
        }

    def forget_contacts(self, connection_id: str) -> None:
        self._registry.contacts = {k: v for k, v in self._registry.contacts.items() if k[0] != connection_id}


class FakeBackfillRepository:
    def add_backfill(self, row: BackfillRow, items: Sequence[BackfillItemRow]) -> None:
        _unused("add_backfill")

    def get_backfill(self, backfill_id: str) -> BackfillRow | None:
        _unused("get_backfill")

    def backfill_by_request(self, connection_id: str, request_id: str) -> BackfillRow | None:
        _unused("backfill_by_request")

    def claim_request(self, connection_id: str, request_id: str, fingerprint: str, now_us: int) -> str:
        _unused("claim_request")

    def drop_hold(self, connection_id: str, request_id: str, fingerprint: str) -> None:
        _unused("drop_hold")

    def release_request(self, connection_id: str, request_id: str, fingerprint: str) -> None:
        _unused("release_request")

    def items_of(self, backfill_id: str) -> list[BackfillItemRow]:
        _unused("items_of")


class FakeLeaseRepository:
    def get_lease(self, tenant_id: str) -> TenantLeaseRow | None:
        _unused("get_lease (the dispatcher's tenant lease)")

    def acquire_lease(self, tenant_id: str, holder: str, now_us: int, ttl_us: int) -> HeldLease | None:
        _unused("acquire_lease")

    def held_by_others(self, tenant_ids: Sequence[str], holder: str, now_us: int) -> set[str]:
        _unused("held_by_others")

    def release_lease(self, tenant_id: str, holder: str, claims_left: bool = False) -> None:
        _unused("release_lease")

    def prior_lease(self, tenant_id: str) -> PriorLease | None:
        _unused("prior_lease")

    def limit_lock_wait(self, ms: int) -> None:
        _unused("limit_lock_wait (rate limits)")

    def lease_for_call(self, tenant_id: str, holder: str, now_us: int) -> LeaseForCall | None:
        _unused("lease_for_call (rate limits)")

    def log_call(
        self, tenant_id: str, lease: LeaseForCall, at_us: int, ttl_us: int, minute_us: int, day_us: int
    ) -> None:
        _unused("log_call (rate limits)")

    def block_tenant(self, tenant_id: str, until_us: int) -> None:
        _unused("block_tenant")

    def count_app_call(self, now_us: int, window_us: int, moved: Mapping[int, int] | None = None) -> int:
        _unused("count_app_call")

    def add_app_calls(self, deltas: Mapping[int, int]) -> None:
        _unused("add_app_calls")

    def purge_app_calls(self, before_us: int) -> None:
        _unused("purge_app_calls")


class FakeMatterRepository:
    def get_category(self, connection_id: str) -> TrackingCategoryLinkRow | None:
        _unused("get_category (matters' tracking category)")

    def add_category(self, row: TrackingCategoryLinkRow) -> None:
        _unused("add_category")

    def set_category_name(self, connection_id: str, name: str) -> None:
        _unused("set_category_name")

    def option_names(self, connection_id: str) -> dict[str, str]:
        _unused("option_names")

    def rename_options(self, connection_id: str, names: Mapping[str, str], now_us: int) -> None:
        _unused("rename_options")

    def get_option(self, connection_id: str, action_id: int) -> MatterOptionLinkRow | None:
        _unused("get_option")

    def options_of(self, connection_id: str, action_ids: Sequence[int]) -> dict[int, MatterOptionLinkRow]:
        _unused("options_of")

    def matter_of_option(self, connection_id: str, option_id: str) -> int | None:
        _unused("matter_of_option")

    def add_option(self, row: MatterOptionLinkRow) -> None:
        _unused("add_option")

    def set_option_state(self, connection_id: str, action_id: int, state: str, now_us: int) -> None:
        _unused("set_option_state")

    def list_options(self, connection_id: str, after_action_id: int, limit: int) -> Sequence[MatterOptionLinkRow]:
        _unused("list_options")

    def unsettled_links_of_matter(self, connection_id: str, action_id: int, states: Sequence[str]) -> set[int]:
        _unused("unsettled_links_of_matter")

    def journal_matters_of_links(self, link_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        _unused("journal_matters_of_links")

    def actions_of_links(self, link_ids: Sequence[int]) -> dict[int, int]:
        _unused("actions_of_links")
