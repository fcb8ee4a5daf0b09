"""What the in-memory repositories keep: the registry's rows in plain dicts and lists, shared by
every fake unit of work on one Registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from xerolink_poster.adapters.correction_tables import CorrectionRow
from xerolink_poster.adapters.tables import (
    AuditRow,
    ConnectionRow,
    ContactLinkRow,
    LinkRow,
    OrphanRow,
    OutboxRow,
    PostingRow,
)
from xerolink_poster.domain.corrections import Step
from xerolink_poster.domain.records import RecordRef


@dataclass(frozen=True)
class Wait:
    """An outbox entry waiting for a record to link."""

    outbox_id: int
    connection_id: str
    record: RecordRef


@dataclass
class Registry:
    connections: dict[str, ConnectionRow] = field(default_factory=dict)
    contacts: dict[tuple[str, int], ContactLinkRow] = field(default_factory=dict)
    links: dict[int, LinkRow] = field(default_factory=dict)
    postings: dict[str, PostingRow] = field(default_factory=dict)
    audit: list[AuditRow] = field(default_factory=list)
    orphans: list[OrphanRow] = field(default_factory=list)
    # The records each link's current posting refers to (the link_dependency table).
    dependencies: dict[int, list[RecordRef]] = field(default_factory=dict)
    outbox: dict[int, OutboxRow] = field(default_factory=dict)
    waits: list[Wait] = field(default_factory=list)
    sagas: dict[str, CorrectionRow] = field(default_factory=dict)
    steps: dict[str, tuple[Step, ...]] = field(default_factory=dict)
    last_id: int = 0

    def next_id(self) -> int:
        """One sequence for every table's ids: tests only compare them for identity."""
        self.last_id += 1
        return self.last_id

    def link_of(self, connection_id: str, record: RecordRef) -> LinkRow | None:
        return next(
            (
                link
                for link in self.links.values()
                if link.connection_id == connection_id and (link.kind, link.record_id) == (record.kind, record.id)
            ),
            None,
        )
