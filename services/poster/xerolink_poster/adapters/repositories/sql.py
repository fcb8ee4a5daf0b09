"""Every SQL repository on one session: what the unit of work hands out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from xerolink_poster.adapters.repositories.backfills import SqlBackfillRepository
from xerolink_poster.adapters.repositories.connections import SqlConnectionRepository
from xerolink_poster.adapters.repositories.contacts import SqlContactRepository
from xerolink_poster.adapters.repositories.corrections import SqlCorrectionRepository
from xerolink_poster.adapters.repositories.drift import SqlDriftRepository
from xerolink_poster.adapters.repositories.leases import SqlLeaseRepository
from xerolink_poster.adapters.repositories.links import SqlLinkRepository
from xerolink_poster.adapters.repositories.matters import SqlMatterRepository
from xerolink_poster.adapters.repositories.outbox import SqlOutboxRepository


@dataclass(frozen=True)
class SqlRepositories:
    links: SqlLinkRepository
    outbox: SqlOutboxRepository
    contacts: SqlContactRepository
    connections: SqlConnectionRepository
    corrections: SqlCorrectionRepository
    backfills: SqlBackfillRepository
    leases: SqlLeaseRepository
    matters: SqlMatterRepository
    drift: SqlDriftRepository

    @classmethod
    def on(cls, session: Session, is_sqlite: bool) -> SqlRepositories:
        return cls(
            links=SqlLinkRepository(session, is_sqlite),
            outbox=SqlOutboxRepository(session, is_sqlite),
            contacts=SqlContactRepository(session),
            connections=SqlConnectionRepository(session),
            corrections=SqlCorrectionRepository(session, is_sqlite),
            backfills=SqlBackfillRepository(session),
            leases=SqlLeaseRepository(session, is_sqlite),
            matters=SqlMatterRepository(session),
            drift=SqlDriftRepository(session),
        )
