"""The contacts repository: which Xero contact each Actionstep participant was linked to."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from xerolink_poster.adapters.repositories.bulk import insert_rows
from xerolink_poster.adapters.tables import ContactLinkRow


class SqlContactRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get_contact(self, connection_id: str, participant_id: int) -> ContactLinkRow | None:
        return self._session.get(ContactLinkRow, (connection_id, participant_id))

    def contacts_of(self, connection_id: str, participant_ids: Sequence[int]) -> dict[int, str]:
        """The Xero contact id of each of these participants that is linked to one."""
        if not participant_ids:
            return {}
        query = select(ContactLinkRow.participant_id, ContactLinkRow.contact_id).where(
            ContactLinkRow.connection_id == connection_id,
            col(ContactLinkRow.participant_id).in_(list(participant_ids)),
        )
        return dict(self._session.exec(query).all())

    def participant_of_contact(self, connection_id: str, contact_id: str) -> int | None:
        """The participant already linked to this Xero contact, if any."""
        query = select(ContactLinkRow.participant_id).where(
            ContactLinkRow.connection_id == connection_id, ContactLinkRow.contact_id == contact_id
        )
        return self._session.exec(query).first()

    def add_contacts(self, rows: Sequence[ContactLinkRow]) -> dict[tuple[str, int], str]:
        """Links participants to their contacts, each once: a participant already linked keeps its
        link. Returns the contact each row's participant is linked to now, (connection,
        participant) -> contact id. One read and one INSERT a connection: a read and an ORM flush
        a participant were most of what a job of new clients cost."""
        by_connection: dict[str, list[ContactLinkRow]] = defaultdict(list)
        for row in rows:
            by_connection[row.connection_id].append(row)
        fresh: list[dict[str, Any]] = []
        linked: dict[tuple[str, int], str] = {}
        for connection_id, group in by_connection.items():
            held = self.contacts_of(connection_id, [r.participant_id for r in group])
            for row in group:
                if row.participant_id not in held:
                    held[row.participant_id] = row.contact_id
                    fresh.append(row.model_dump())
                linked[(connection_id, row.participant_id)] = held[row.participant_id]
        insert_rows(self._session, ContactLinkRow, fresh)
        return linked

    def forget_contacts(self, connection_id: str) -> None:
        self._session.execute(delete(ContactLinkRow).where(col(ContactLinkRow.connection_id) == connection_id))
