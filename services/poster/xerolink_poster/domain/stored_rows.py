"""Outbox entries, links and leases as stored, read as plain values: what the dispatcher's
claims and leases take and what applying a call's answers reads of them. The answers are
applied while SQLite's one writer is held, and loading each row as an ORM object (then expiring
it after the bulk UPDATEs) cost more than the SQL; a claim's ORM objects were only ever read."""

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
    # The claim's end: which of the poster's jobs holds the entry (ElementResult.claims).
    lease_until_us: int = 0


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


@dataclass(frozen=True, slots=True)
class ClaimedEntry:
    """An outbox entry as a claim took it: what the dispatcher's job reads of it."""

    id: int
    link_id: int
    connection_id: str
    # The mapper's answer (MapTransactionResponse), serialised: the operations the entry posts.
    operations: bytes
    # The last call for it had no certain answer: look the object up before creating.
    uncertain: bool
    # Sent in a call of its own (a batch it was in was refused whole).
    alone: bool
    # What the look-up after an uncertain call needs that Xero cannot carry.
    lookup_hint: str
    trace_context: str
    # The claim's end as this claim set it: the claim's own token. A claim names the poster, and
    # one of its jobs that waited past its claim must not send what another of its jobs claimed
    # since (Work.claim_until_us). 0: not read with a claim.
    lease_until_us: int = 0


@dataclass(frozen=True, slots=True)
class PriorLease:
    """A tenant's lease row as found before a poster takes or renews it: who held it last, and
    until when (0: its holder handed it back with no claim of its left)."""

    holder: str
    expires_us: int

    @property
    def handed_back(self) -> bool:
        return self.expires_us == 0


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A tenant's lease as a poster took or renewed it: what a new worker resumes from (the calls
    recorded under it and Xero's Retry-After)."""

    tenant_id: str
    holder: str
    expires_us: int
    # JSON list of wall-clock seconds of the calls in the last (scaled) minute.
    minute_log: str
    day_calls: int
    day_started_us: int
    blocked_until_us: int


@dataclass(frozen=True, slots=True)
class LeaseForCall:
    """A lease's call log, read (and held) before a Xero call, written back with the call."""

    # JSON list of wall-clock seconds of the calls in the last (scaled) minute.
    minute_log: str
    day_started_us: int
    day_calls: int
