"""TODO(dispatch): move to repositories. The dispatcher still asks this on a session; the
corrections repository (adapters/repositories/corrections.py) answers it."""

from __future__ import annotations

from sqlmodel import Session

from xerolink_poster.adapters.repositories.corrections import SqlCorrectionRepository
from xerolink_poster.domain.records import RecordRef


def under_correction(session: Session, connection_id: str, record: RecordRef, generation: int) -> bool:
    # TODO(dispatch): move to repositories (uow.corrections.under_correction).
    is_sqlite = session.get_bind().dialect.name == "sqlite"
    return SqlCorrectionRepository(session, is_sqlite).under_correction(connection_id, record, generation)
