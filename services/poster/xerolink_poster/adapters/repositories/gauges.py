"""The read model behind the poster's gauges: counts over the whole registry, read on a
connection of its own when the exporter collects."""

from __future__ import annotations

from sqlalchemy import func, select

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain.states import OutboxState


class GaugeReadings:
    def __init__(self, db: Database) -> None:
        self._db = db

    def open_outbox(self) -> list[tuple[str, str, int]]:
        """(tenant, state, entries) of the outbox entries not done. The open states by name, so
        that SQLite reads their ranges of `ix_outbox_ready` (state first) and not the done
        entries kept for the retention period, most of the table: `!= 'done'` read them all."""
        outbox = OutboxRow.__table__  # type: ignore[attr-defined]
        query = (
            select(outbox.c.tenant_id, outbox.c.state, func.count())
            .where(outbox.c.state.in_([s.value for s in OutboxState if s is not OutboxState.DONE]))
            .group_by(outbox.c.tenant_id, outbox.c.state)
        )
        with self._db.read.connect() as conn:
            return [(str(t), str(s), int(n)) for t, s, n in conn.execute(query)]

    def links(self) -> list[tuple[str, str, int]]:
        """(connection, state, links) of every link."""
        link = LinkRow.__table__  # type: ignore[attr-defined]
        query = select(link.c.connection_id, link.c.state, func.count()).group_by(link.c.connection_id, link.c.state)
        with self._db.read.connect() as conn:
            return [(str(c), str(s), int(n)) for c, s, n in conn.execute(query)]
