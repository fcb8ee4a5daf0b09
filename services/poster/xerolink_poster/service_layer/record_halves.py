"""The other half of a record kept in two organisations: an invoice paid from trust posted to an
office connection whose firm keeps trust money in its own organisation is linked twice under the
same record key, its spend under the trust organisation's connection and its payment under the
office one (service_layer/posting.py, Poster._post_split). Unlinking and correcting treat the two
links as the one Actionstep record they are.

The other half is the link of the same record key under another connection of the firm group
(the connections a routing ever joined: routing changes never split it, see routing_changes.py)."""

from __future__ import annotations

from collections.abc import Sequence

from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.routing import SPLIT_KINDS
from xerolink_poster.service_layer.ports import Repositories


def paired_connections(repos: Repositories, connection_id: str) -> list[str]:
    """The connections that may hold the other halves of `connection_id`'s split records: the rest
    of its firm group (every connection a routing ever joined it with), so a half is still found
    after the routing that split the record was changed or cleared."""
    row = repos.connections.get_connection(connection_id)
    if row is None or not row.firm_group:
        return []
    return [c for c in repos.connections.firm_members(row.firm_group) if c != connection_id]


def other_halves(
    repos: Repositories, connection_id: str, records: Sequence[RecordRef], lock: bool
) -> dict[RecordRef, list[LinkRow]]:
    """The links of these records under the paired connections (only kinds posted in two halves),
    row-locked with `lock` as the request's own links are."""
    split = sorted({r for r in records if r.kind in SPLIT_KINDS})
    if not split:
        return {}
    found: dict[RecordRef, list[LinkRow]] = {}
    for other in paired_connections(repos, connection_id):
        for record, link in repos.links.links_of(other, split, lock).items():
            found.setdefault(record, []).append(link)
    return found
