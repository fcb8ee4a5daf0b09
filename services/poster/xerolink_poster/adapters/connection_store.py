"""The connection row's compare-and-swap statements: claiming the refresh, storing rotated tokens.
Plain UPDATE ... WHERE statements whose row count says who won; the same on SQLite and PostgreSQL
(no advisory locks), so threads of one poster and several posters race safely."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col

from xerolink_poster.adapters.registry import OUTBOX_DONE
from xerolink_poster.adapters.tables import ConnectionRow, ContactLinkRow, OutboxRow


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)


def claim_refresh(session: Session, connection_id: str, version: int, holder: str, now_us: int, until_us: int) -> bool:
    """Takes the right to exchange the refresh token of token `version`: only while nobody holds
    it (or the holder's claim lapsed) and nobody has already stored a newer token."""
    result = session.execute(
        update(ConnectionRow)
        .where(
            col(ConnectionRow.connection_id) == connection_id,
            col(ConnectionRow.token_version) == version,
            (col(ConnectionRow.refresh_holder) == "") | (col(ConnectionRow.refresh_until_us) < now_us),
        )
        .values(refresh_holder=holder, refresh_until_us=until_us)
    )
    return _rowcount(result) == 1


def release_refresh(session: Session, connection_id: str, holder: str, **values: Any) -> None:
    session.execute(
        update(ConnectionRow)
        .where(col(ConnectionRow.connection_id) == connection_id, col(ConnectionRow.refresh_holder) == holder)
        .values(refresh_holder="", refresh_until_us=0, **values)
    )


def store_tokens(
    session: Session, connection_id: str, version: int, holder: str | None, values: dict[str, Any]
) -> bool:
    """Stores new tokens as version + 1, atomically with releasing the claim; False when the
    version moved on meanwhile (the caller then reads the newer tokens instead)."""
    conditions = [col(ConnectionRow.connection_id) == connection_id, col(ConnectionRow.token_version) == version]
    if holder is not None:
        conditions.append(col(ConnectionRow.refresh_holder) == holder)
    result = session.execute(
        update(ConnectionRow)
        .where(*conditions)
        .values(token_version=version + 1, refresh_holder="", refresh_until_us=0, **values)
    )
    return _rowcount(result) == 1


def forget_contacts(session: Session, connection_id: str) -> None:
    session.execute(delete(ContactLinkRow).where(col(ContactLinkRow.connection_id) == connection_id))


def move_outbox(session: Session, connection_id: str, tenant_id: str) -> None:
    """Queued work follows the connection to its new organisation, so the new tenant's lease and
    rate budget govern it."""
    session.execute(
        update(OutboxRow)
        .where(
            col(OutboxRow.connection_id) == connection_id,
            col(OutboxRow.tenant_id) != tenant_id,
            col(OutboxRow.state) != OUTBOX_DONE,
        )
        .values(tenant_id=tenant_id)
    )
