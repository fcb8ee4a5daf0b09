"""Reading drift records: ListDrift's pages and the open drifts shown on links (docs/drift.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from xerolink_common.errors import not_found
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.drift_tables import DriftRow
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer.connections import get_connection
from xerolink_poster.service_layer.queries import encode_token, page_position, page_size
from xerolink_poster.service_layer.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class DriftFilter:
    """Empty means "any". `state` is "open" or "resolved"; `kinds` DriftKind names without prefix."""

    state: str = ""
    kinds: tuple[str, ...] = ()
    link: RecordRef | None = None

    def fingerprint(self, connection_id: str) -> str:
        """Digest of the connection and the filters a page token is issued for: a token of one
        connection (or other filters) is refused on another rather than starting mid-list."""
        text = repr((connection_id, self.state, sorted(set(self.kinds)), str(self.link or "")))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def list_drifts(
    db: Database, connection_id: str, wanted: DriftFilter, size: int, token: str
) -> tuple[list[tuple[DriftRow, LinkRow | None]], str]:
    """One page, newest first, each drift with its link."""
    get_connection(db, connection_id)
    fingerprint = wanted.fingerprint(connection_id)
    before = page_position(token, fingerprint)
    limit = page_size(size)
    with UnitOfWork(db, write=False) as uow:
        link_id: int | None = None
        if wanted.link is not None:
            link = uow.links.get_link(connection_id, wanted.link)
            if link is None:
                raise not_found(
                    Reason.LINK_NOT_FOUND, f"{wanted.link} has no link on connection {connection_id!r}; post it first"
                )
            link_id = link.id
        rows = uow.drift.list_drifts(
            connection_id, wanted.state or None, wanted.kinds, link_id, before or None, limit + 1
        )
        links = uow.links.links_by_ids(sorted({r.link_id for r in rows}))
    next_token = encode_token(f"{rows[limit - 1].id}:{fingerprint}") if len(rows) > limit else ""
    return [(row, links.get(row.link_id)) for row in rows[:limit]], next_token


def open_drifts(db: Database, links: Sequence[LinkRow]) -> dict[int, list[DriftRow]]:
    """The open drifts of each link, oldest first: one query."""
    ids = [link.id for link in links if link.id is not None]
    if not ids:
        return {}
    with UnitOfWork(db, write=False) as uow:
        return uow.drift.open_drifts_of_links(ids)
