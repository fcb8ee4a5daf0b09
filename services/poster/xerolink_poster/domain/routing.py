"""Which connection a transaction is posted under, when a firm keeps trust money in its own Xero
organisation or posts each Actionstep division to its own (extended profile). Pure rules: the
connections' routings are passed in."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from xerolink_poster.domain.kinds import TransactionKind as K

# Trust money: posted to the trust organisation. An invoice paid from trust is both: the spend from
# the trust bank belongs to the trust organisation, the payment of the invoice to the office one.
TRUST_KINDS = frozenset(
    {
        K.TRUST_RECEIPT,
        K.TRUST_PAYMENT,
        K.TRUST_JOURNAL,
        K.TRUST_TRANSFER,
        K.TRUST_INTEREST,
        K.STATUTORY_FUNDS,
        K.ADVANCED_FUNDS,
        K.TRUST_BANK_RECONCILIATION,
    }
)
SPLIT_KINDS = frozenset({K.INVOICE_PAID_FROM_TRUST})


@dataclass(frozen=True)
class Routing:
    """A connection's ConnectionRouting: its trust organisation's connection, and a connection per
    Actionstep division."""

    trust_connection_id: str = ""
    division_connections: Mapping[int, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.trust_connection_id and not self.division_connections

    def names(self) -> set[str]:
        """Every connection this routing sends transactions to."""
        named = set(self.division_connections.values())
        if self.trust_connection_id:
            named.add(self.trust_connection_id)
        return named


@dataclass(frozen=True)
class HeldConnection:
    """What a post checks of a connection it holds against change until its transaction ends:
    the firm group it is in, its routing (serialised ConnectionRouting) and its mapping context
    (serialised; its ledgers)."""

    firm_group: str
    routing: bytes
    mapping_context: bytes


class Half(StrEnum):
    """What part of a transaction a connection receives."""

    WHOLE = "whole"
    # The spend from the trust bank of an invoice paid from trust, in the trust organisation.
    TRUST = "trust"
    # Its payment of the invoice, in the office organisation, after the trust half links.
    OFFICE = "office"


@dataclass(frozen=True)
class Target:
    connection_id: str
    half: Half = Half.WHOLE


def route(routing_of: Callable[[str], Routing], connection_id: str, kind: int, division_id: int) -> tuple[Target, ...]:
    """Where a transaction posted to `connection_id` goes: first to its division's connection (one
    hop: a division's connection is not routed by division again), then, by that connection's
    trust organisation, trust kinds to it and an invoice paid from trust to both, the trust half
    first."""
    routing = routing_of(connection_id)
    office = routing.division_connections.get(division_id, connection_id) if division_id else connection_id
    if office != connection_id:
        routing = routing_of(office)
    trust = routing.trust_connection_id
    if not trust:
        return (Target(office),)
    if kind in TRUST_KINDS:
        return (Target(trust),)
    if kind in SPLIT_KINDS:
        return (Target(trust, Half.TRUST), Target(office, Half.OFFICE))
    return (Target(office),)
