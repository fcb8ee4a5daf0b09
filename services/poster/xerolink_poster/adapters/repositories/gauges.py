"""The read model behind the poster's gauges: counts over the whole registry, read on a
connection of its own when the exporter collects."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, func, select, union_all

from xerolink_poster.adapters.database import Database
from xerolink_poster.adapters.tables import LinkRow, OutboxRow
from xerolink_poster.domain.states import OutboxState


class GaugeReadings:
    def __init__(self, db: Database) -> None:
        self._db = db

    def open_outbox(self) -> list[tuple[str, str, int]]:
        """(tenant, state, entries) of the outbox entries not done, whatever their state (one
        this poster does not know, written by another version or by hand, is work stuck for good,
        and this is where it shows). Read as the two ranges on either side of 'done', so that the
        database reads them from `ix_outbox_ready` (state first) and not the done entries kept for
        the retention period, most of the table: `!= 'done'` read them all on SQLite, and an IN
        of the known states lost the others."""
        outbox = OutboxRow.__table__  # type: ignore[attr-defined]

        def counted(where: ColumnElement[bool]) -> Select[str, str, int]:
            return (
                select(outbox.c.tenant_id, outbox.c.state, func.count())
                .where(where)
                .group_by(outbox.c.tenant_id, outbox.c.state)
            )

        done = OutboxState.DONE.value
        query = union_all(counted(outbox.c.state < done), counted(outbox.c.state > done))
        with self._db.read.connect() as conn:
            return [(str(row[0]), str(row[1]), int(row[2])) for row in conn.execute(query)]

    def links(self) -> list[tuple[str, str, int]]:
        """(connection, state, links) of every link."""
        link = LinkRow.__table__  # type: ignore[attr-defined]
        query = select(link.c.connection_id, link.c.state, func.count()).group_by(link.c.connection_id, link.c.state)
        with self._db.read.connect() as conn:
            return [(str(c), str(s), int(n)) for c, s, n in conn.execute(query)]
