"""The poster builds each Xero URL itself and keeps it (adapters/xero_client.api_url): it must be
the URL httpx's client joins from its base URL, the API path and the query, byte for byte, for
every path and query the dispatcher sends (ids, where filters quoting names and numbers a firm
typed, pages)."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from xerolink_poster.adapters.xero_client import API_PREFIX, api_url

BASES = [
    "https://api.xero.com",
    "https://api.xero.com/",
    "http://127.0.0.1:8123",
    "http://127.0.0.1:8123/prefix",
    "http://127.0.0.1:8123/#",  # a stored base URL may hold a fragment or a query: httpx drops them
    "http://127.0.0.1:8123/prefix?x=1",
]


def joined_by_httpx(base_url: str, path: str, params: dict[str, str] | None) -> httpx.URL:
    with httpx.Client(base_url=base_url) as client:
        return client.build_request("GET", API_PREFIX + path, params=params).url


@pytest.mark.parametrize("base_url", BASES)
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("Invoices", {"summarizeErrors": "false"}),
        ("Invoices", None),
        ("CreditNotes/0b6c3a52-1b0c-4c1e-9d07-5f2f3a0e8a11", None),
        ("Contacts", {"where": 'ContactNumber=="AS-0042 & Sons / \\"Ltd\\""'}),
        ("Invoices", {"where": 'Reference=="Matter 7 #12% ü"', "page": "2"}),
        ("TrackingCategories", {"includeArchived": "true"}),
        # A query in the path (an id holding "?"): params given replace it, as httpx does.
        ("Invoices/abc?page=1&where=x", {}),
        ("Invoices/abc?page=1&where=x", {"page": "2"}),
        ("Invoices/abc?page=1", None),
    ],
)
def test_the_kept_url_is_the_one_httpx_joins(base_url: str, path: str, params: dict[str, str] | None) -> None:
    kept = api_url(base_url, path, None if params is None else tuple(params.items()))
    assert kept == joined_by_httpx(base_url, path, params)
    assert kept.raw_path == joined_by_httpx(base_url, path, params).raw_path


@given(
    path=st.sampled_from(["Invoices", "Payments", "Contacts", "ManualJournals"]),
    params=st.dictionaries(
        st.sampled_from(["where", "page", "order", "summarizeErrors"]),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
        max_size=3,
    ),
)
def test_any_query_is_encoded_as_httpx_encodes_it(path: str, params: dict[str, str]) -> None:
    kept = api_url("https://api.xero.com", path, tuple(params.items()))
    assert kept.raw_path == joined_by_httpx("https://api.xero.com", path, params).raw_path
