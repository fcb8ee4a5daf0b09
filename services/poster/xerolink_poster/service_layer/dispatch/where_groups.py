"""Look-ups of many records in one GET: each record's condition ORed in one `where`, as many as
fit in a URL Xero serves."""

from __future__ import annotations

from collections.abc import Sequence

from xerolink_poster.adapters.xero_client import XERO_URL_MAX, value_length

# Conditions ORed in one `where`: Xero takes OR there (its OpenAPI, GET /Invoices `Statuses`: "...
# instead of passing OR conditions into the Where filter"; XeroAPI/XeroAPI.Net#29). Only single
# conditions are ORed: no source at hand says whether AND binds before OR in Xero's filter.
OR = " OR "


def or_groups(fixed: int, clauses: Sequence[str], most: int) -> list[list[int]]:
    """The positions of `clauses` in groups of at most `most`, each group's clauses ORed filling
    the URL no further than Xero serves; `fixed` is the URL's length without the `where` value."""
    separator = value_length(OR)
    groups: list[list[int]] = []
    group: list[int] = []
    length = fixed
    for position, clause in enumerate(clauses):
        more = value_length(clause) + (separator if group else 0)
        if group and (length + more > XERO_URL_MAX or len(group) >= most):
            groups.append(group)
            group, length, more = [], fixed, more - separator
        group.append(position)
        length += more
    return [*groups, group] if group else groups
