"""The backfills repository: one row per backfill operation and one per transaction it handled."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, select

from xerolink_poster.adapters.backfill_tables import BackfillClaimRow, BackfillItemRow, BackfillRow


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

    def claim_request(self, connection_id: str, request_id: str, fingerprint: str, now_us: int) -> str:
        """The fingerprint of the request holding the request_id: the one already claimed, or
        `fingerprint`, claimed now. A call that gets its own `fingerprint` back holds the claim:
        it made it, or joined the same request's claim (one more hold). The caller holds the
        connection's row, so two claims of one request_id never both find it free."""
        held = self._session.get(BackfillClaimRow, (connection_id, request_id), populate_existing=True)
        if held is None:
            claim = BackfillClaimRow(
                connection_id=connection_id, request_id=request_id, fingerprint=fingerprint, create_us=now_us
            )
            self._session.add(claim)
        elif held.fingerprint == fingerprint:
            held.holders += 1
        else:
            return held.fingerprint
        return fingerprint

    def drop_hold(self, connection_id: str, request_id: str, fingerprint: str) -> None:
        """A start of the request that queued nothing lets go of its hold; the claim goes with
        the last hold. Another request's claim under the request_id stays."""
        held = self._session.get(BackfillClaimRow, (connection_id, request_id), populate_existing=True)
        if held is None or held.fingerprint != fingerprint:
            return
        if held.holders > 1:
            held.holders -= 1
        else:
            self._session.delete(held)

    def release_request(self, connection_id: str, request_id: str, fingerprint: str) -> None:
        """The request's claim goes once its backfill is recorded, whoever else holds it (they
        find the record); another request's claim under the request_id stays."""
        held = self._session.get(BackfillClaimRow, (connection_id, request_id), populate_existing=True)
        if held is not None and held.fingerprint == fingerprint:
            self._session.delete(held)

    def items_of(self, backfill_id: str) -> list[BackfillItemRow]:
        query = select(BackfillItemRow).where(BackfillItemRow.backfill_id == backfill_id).order_by(BackfillItemRow.seq)  # type: ignore[arg-type]
        return list(self._session.exec(query).all())
