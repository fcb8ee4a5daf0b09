"""The matters repository: the connection's tracking category and each matter's tracking option,
found or created once and known afterwards by their Xero ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlmodel import Session, col, select

from xerolink_poster.adapters.tables import LinkRow, LinkSubjectRow, MatterOptionLinkRow, TrackingCategoryLinkRow


class SqlMatterRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get_category(self, connection_id: str) -> TrackingCategoryLinkRow | None:
        return self._session.get(TrackingCategoryLinkRow, connection_id)

    def add_category(self, row: TrackingCategoryLinkRow) -> None:
        if self.get_category(row.connection_id) is None:
            self._session.add(row)

    def set_category_name(self, connection_id: str, name: str) -> None:
        """The category's name as Xero has it now (renamed there); it is still the linked one."""
        row = self.get_category(connection_id)
        if row is not None and row.category_name != name:
            row.category_name = name
            self._session.add(row)

    def get_option(self, connection_id: str, action_id: int) -> MatterOptionLinkRow | None:
        return self._session.get(MatterOptionLinkRow, (connection_id, action_id))

    def options_of(self, connection_id: str, action_ids: Sequence[int]) -> dict[int, MatterOptionLinkRow]:
        """The option links of these matters that exist: one query."""
        if not action_ids:
            return {}
        query = select(MatterOptionLinkRow).where(
            MatterOptionLinkRow.connection_id == connection_id,
            col(MatterOptionLinkRow.action_id).in_(sorted(set(action_ids))),
        )
        return {row.action_id: row for row in self._session.exec(query).all()}

    def matter_of_option(self, connection_id: str, option_id: str) -> int | None:
        """The matter already linked to this Xero option, if any."""
        query = select(MatterOptionLinkRow.action_id).where(
            MatterOptionLinkRow.connection_id == connection_id,
            MatterOptionLinkRow.tracking_option_id == option_id,
        )
        return self._session.exec(query).first()

    def option_names(self, connection_id: str) -> dict[str, str]:
        """TrackingOptionID: the name held, for the connection's options."""
        query = select(MatterOptionLinkRow.tracking_option_id, MatterOptionLinkRow.name).where(
            MatterOptionLinkRow.connection_id == connection_id
        )
        return dict(self._session.exec(query).all())

    def rename_options(self, connection_id: str, names: Mapping[str, str], now_us: int) -> None:
        """Options renamed in Xero get their new names, each found by its TrackingOptionID."""
        if not names:
            return
        query = select(MatterOptionLinkRow).where(
            MatterOptionLinkRow.connection_id == connection_id,
            col(MatterOptionLinkRow.tracking_option_id).in_(sorted(names)),
        )
        for row in self._session.exec(query).all():
            row.name = names[row.tracking_option_id]
            row.update_us = now_us
            self._session.add(row)

    def add_option(self, row: MatterOptionLinkRow) -> None:
        if self.get_option(row.connection_id, row.action_id) is None:
            self._session.add(row)

    def set_option_state(self, connection_id: str, action_id: int, state: str, now_us: int) -> None:
        row = self.get_option(connection_id, action_id)
        if row is not None and row.state != state:
            row.state = state
            row.update_us = now_us
            self._session.add(row)

    def list_options(self, connection_id: str, after_action_id: int, limit: int) -> Sequence[MatterOptionLinkRow]:
        query = (
            select(MatterOptionLinkRow)
            .where(
                MatterOptionLinkRow.connection_id == connection_id,
                col(MatterOptionLinkRow.action_id) > after_action_id,
            )
            .order_by(col(MatterOptionLinkRow.action_id))
            .limit(limit)
        )
        return self._session.exec(query).all()

    def unsettled_links_of_matter(self, connection_id: str, action_id: int, states: Sequence[str]) -> set[int]:
        """The ids of the matter's links (their record's header action, link_subject) in these
        states."""
        query = (
            select(LinkRow.id)
            .join(LinkSubjectRow, col(LinkSubjectRow.link_id) == col(LinkRow.id))
            .where(
                LinkSubjectRow.connection_id == connection_id,
                LinkSubjectRow.action_id == action_id,
                col(LinkRow.state).in_(list(states)),
            )
        )
        return {link_id for link_id in self._session.exec(query) if link_id is not None}

    def journal_matters_of_links(self, link_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Each trust journal's (paying, receiving) matters, of the links that are trust journals
        posted since revision 0012."""
        if not link_ids:
            return {}
        query = select(LinkSubjectRow).where(
            col(LinkSubjectRow.link_id).in_(sorted(set(link_ids))), col(LinkSubjectRow.receiving_action_id) != 0
        )
        return {row.link_id: (row.paying_action_id, row.receiving_action_id) for row in self._session.exec(query).all()}

    def actions_of_links(self, link_ids: Sequence[int]) -> dict[int, int]:
        """Each link's matter (its record's header action, link_subject); links without one are left out."""
        if not link_ids:
            return {}
        query = select(LinkSubjectRow).where(col(LinkSubjectRow.link_id).in_(sorted(set(link_ids))))
        return {row.link_id: row.action_id for row in self._session.exec(query).all() if row.action_id}
