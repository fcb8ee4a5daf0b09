"""The backfills repository: one row per backfill operation and one per transaction it handled."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, select

from xerolink_poster.adapters.backfill_tables import BackfillItemRow, BackfillRow


class SqlBackfillRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add_backfill(self, row: BackfillRow, items: Sequence[BackfillItemRow]) -> None:
        self._session.add(row)
        self._session.add_all(items)

    def get_backfill(self, backfill_id: str) -> BackfillRow | None:
        return self._session.get(BackfillRow, backfill_id)

    def backfill_by_request(self, connection_id: str, request_id: str) -> BackfillRow | None:
        query = select(BackfillRow).where(
            BackfillRow.connection_id == connection_id, BackfillRow.request_id == request_id
        )
        return self._session.exec(query).first()

    def items_of(self, backfill_id: str) -> list[BackfillItemRow]:
        query = select(BackfillItemRow).where(BackfillItemRow.backfill_id == backfill_id).order_by(BackfillItemRow.seq)  # type: ignore[arg-type]
        return list(self._session.exec(query).all())
