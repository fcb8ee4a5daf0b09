"""The connections repository: each firm's connection to a Xero organisation, with its sealed
tokens. Claiming the refresh and storing rotated tokens are plain UPDATE ... WHERE statements whose
row count says who won; the same on SQLite and PostgreSQL (no advisory locks), so threads of one
poster and several posters race safely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, update
from sqlmodel import Session, col, select

from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain.routing import HeldConnection
from xerolink_poster.domain.states import ConnectionState

# Built once, as every Post runs it (building a statement is CPU a Post can spare). FOR SHARE on
# PostgreSQL; SQLite renders no lock clause (its write transaction already holds the only writer).
_HELD = (
    select(ConnectionRow.firm_group, ConnectionRow.routing, ConnectionRow.mapping_context)
    .where(ConnectionRow.connection_id == bindparam("connection_id"))
    .with_for_update(read=True)
)


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


class SqlConnectionRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get_connection(self, connection_id: str) -> ConnectionRow | None:
        return self._session.get(ConnectionRow, connection_id)

    def lock_connection(self, connection_id: str) -> ConnectionRow | None:
        """The row, read again and held until the transaction ends (FOR UPDATE on PostgreSQL; a
        SQLite write transaction already holds the only writer), so read-modify-write units of its
        mapping context never lose each other's changes."""
        return self._session.get(ConnectionRow, connection_id, with_for_update=True, populate_existing=True)

    def share_connection(self, connection_id: str) -> HeldConnection | None:
        """What a post checks of the row, read now and held against changes until the transaction
        ends (FOR SHARE on PostgreSQL, so posts hold it together and a routing change waits for
        them). Three columns, not the row: a post's loading of the whole ORM row (tokens and all)
        was a fifth of its CPU."""
        row = self._session.exec(_HELD, params={"connection_id": connection_id}).first()
        if row is None:
            return None
        firm_group, routing, mapping_context = row
        return HeldConnection(firm_group, routing or b"", mapping_context or b"")

    def add_connection(self, row: ConnectionRow) -> None:
        self._session.add(row)

    def save(self, row: ConnectionRow) -> None:
        self._session.add(row)

    def all_connections(self) -> Sequence[ConnectionRow]:
        # Read as committed now, also the rows this unit of work read before (a routing change
        # reads them again after taking its locks).
        return self._session.exec(select(ConnectionRow).execution_options(populate_existing=True)).all()

    def firm_members(self, group: str) -> list[str]:
        """The connections of a firm group, in id order."""
        if not group:
            return []
        rows = self._session.exec(select(ConnectionRow.connection_id).where(ConnectionRow.firm_group == group))
        return sorted(rows)

    def connection_ids_of_tenant(self, tenant_id: str) -> list[str]:
        """The connections to the organisation; its id is a GUID, compared without case."""
        return list(
            self._session.exec(
                select(ConnectionRow.connection_id).where(
                    func.lower(col(ConnectionRow.xero_tenant_id)) == tenant_id.lower()
                )
            )
        )

    def claim_refresh(self, connection_id: str, version: int, holder: str, now_us: int, until_us: int) -> bool:
        """Takes the right to exchange the refresh token of token `version`: only while nobody holds
        it (or the holder's claim lapsed) and nobody has already stored a newer token."""
        result = self._session.execute(
            update(ConnectionRow)
            .where(
                col(ConnectionRow.connection_id) == connection_id,
                col(ConnectionRow.token_version) == version,
                (col(ConnectionRow.refresh_holder) == "") | (col(ConnectionRow.refresh_until_us) < now_us),
            )
            .values(refresh_holder=holder, refresh_until_us=until_us)
        )
        return _rowcount(result) == 1

    def release_refresh(self, connection_id: str, holder: str, **values: Any) -> None:
        self._session.execute(
            update(ConnectionRow)
            .where(col(ConnectionRow.connection_id) == connection_id, col(ConnectionRow.refresh_holder) == holder)
            .values(refresh_holder="", refresh_until_us=0, **values)
        )

    def mark_needs_reconnect(self, connection_id: str, version: int, message: str) -> bool:
        """Marks a connected connection as needing a new consent, unless its tokens moved on since
        `version` (a reconnect or refresh after the refusal): False then, or when not connected."""
        result = self._session.execute(
            update(ConnectionRow)
            .where(
                col(ConnectionRow.connection_id) == connection_id,
                col(ConnectionRow.token_version) == version,
                col(ConnectionRow.state) == ConnectionState.CONNECTED,
            )
            .values(state=ConnectionState.NEEDS_RECONNECT, last_error=message)
        )
        return _rowcount(result) == 1

    def store_tokens(self, connection_id: str, version: int, holder: str | None, values: dict[str, Any]) -> bool:
        """Stores new tokens as version + 1, atomically with releasing the claim; False when the
        version moved on meanwhile (the caller then reads the newer tokens instead)."""
        conditions = [col(ConnectionRow.connection_id) == connection_id, col(ConnectionRow.token_version) == version]
        if holder is not None:
            conditions.append(col(ConnectionRow.refresh_holder) == holder)
        result = self._session.execute(
            update(ConnectionRow)
            .where(*conditions)
            .values(token_version=version + 1, refresh_holder="", refresh_until_us=0, **values)
        )
        return _rowcount(result) == 1
