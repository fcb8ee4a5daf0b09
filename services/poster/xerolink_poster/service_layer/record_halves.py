"""The other half of a record kept in two organisations: an invoice paid from trust posted to an
office connection whose firm keeps trust money in its own organisation is linked twice under the
same record key, its spend under the trust organisation's connection and its payment under the
office one (service_layer/posting.py, Poster._post_split). Unlinking and correcting treat the two
links as the one Actionstep record they are.

The pairing is read from the routing: an office connection's other half is under its trust
connection, a trust connection's under each connection that names it as its trust organisation.
Only those connections' links of the same record key are halves."""

from __future__ import annotations

from collections.abc import Sequence

from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.domain.routing import SPLIT_KINDS
from xerolink_poster.service_layer.ports import Repositories
from xerolink_poster.service_layer.routing_changes import routing_of


def paired_connections(repos: Repositories, connection_id: str) -> list[str]:
    """The connections holding the other halves of `connection_id`'s split records."""
    trust = routing_of(repos.connections.get_connection(connection_id)).trust_connection_id
    if trust:
        return [trust]
    return sorted(
        r.connection_id
        for r in repos.connections.all_connections()
        if r.connection_id != connection_id and routing_of(r).trust_connection_id == connection_id
    )


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
