"""The contacts repository: which Xero contact each Actionstep participant was linked to."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete
from sqlmodel import Session, col, select

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

    def add_contact(self, row: ContactLinkRow) -> None:
        if self.get_contact(row.connection_id, row.participant_id) is None:
            self._session.add(row)

    def forget_contacts(self, connection_id: str) -> None:
        self._session.execute(delete(ContactLinkRow).where(col(ContactLinkRow.connection_id) == connection_id))
