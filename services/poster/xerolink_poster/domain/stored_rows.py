"""An outbox entry and a link as stored, read as plain values: what applying a call's answers
reads of them. The answers are applied while SQLite's one writer is held, and loading each row as
an ORM object (then expiring it after the bulk UPDATEs) cost more than the SQL."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredEntry:
    id: int
    link_id: int
    state: str
    claimed_by: str
    # The mapper's answer (MapTransactionResponse), serialised: the operations the entry posts.
    operations: bytes


@dataclass(frozen=True, slots=True)
class StoredLink:
    id: int
    connection_id: str
    kind: int
    record_id: int
    state: str
    posting_id: str
    generation: int
    attempts: int
    # JSON list of the Xero objects the link holds (XeroObjectRef.to_json).
    xero_objects: str
