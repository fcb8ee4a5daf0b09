"""Reads of a collection: the IDs, invoice, archive and If-Modified-Since filters, `where`, `order`
and paging (an unpaged list is a summary without lines)."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils

from xero_emulator.domain.errors import BadRequest
from xero_emulator.domain.organisation import ID_FIELD, Organisation, is_guid
from xero_emulator.domain.query import matches, order_items, page_of, parse_where
from xero_emulator.messages import Request
from xero_emulator.openapi.paths import COLLECTIONS
from xero_emulator.xero_api.params import flag, page_number
from xero_emulator.xero_api.resources import Obj


def list_objects(org: Organisation, request: Request, resource: str) -> list[Obj]:
    items = list(org.accounts.values()) if resource == "Accounts" else list(org.objects[resource].values())
    ids = request.param("IDs")
    if ids is not None:
        wanted = {i.strip().lower() for i in ids.split(",")}
        if not all(is_guid(i) for i in wanted):
            raise BadRequest("IDs must be a comma-separated list of GUIDs.")
        items = [i for i in items if i[ID_FIELD[resource]] in wanted]
    if resource == "Invoices":
        items = _invoice_filters(request, items)
    if resource == "Contacts" and not flag(request, "includeArchived", False):
        items = [c for c in items if c["ContactStatus"] == "ACTIVE"]
    since = _modified_since(request)
    if since is not None:
        items = [i for i in items if _changed_at(i) >= since]
    items = filter_where(request, items)
    order = request.param("order") or DEFAULT_ORDER.get(resource)
    if order and resource in ORDERED:
        items = order_items(items, order)
    page = page_number(request)
    if page is None and resource in LINES_ONLY_WHEN_PAGED:
        # An unpaged list is a summary: the same objects without their lines.
        items = [{**i, key: []} for i in items for key in [LINES_ONLY_WHEN_PAGED[resource]]]
    return page_of(items, page)


# The lists whose GET takes `order` in Xero's OpenAPI ("Order by an any element") and the emulator
# honours, as its own description lists them; others ignore it.
ORDERED = frozenset(name for name, _, _, params, _, _ in COLLECTIONS if "order" in params)

# The order of a list asked for in none. Xero's OpenAPI does not say; XeroAPI/xero-mcp-server#21
# (Xero's own) lists invoices "Descending by Updated date rather than the default Ascending by
# Updated date and Id". So an invoice edited while a caller reads the pages moves to the last page,
# and those after it move up one. Other lists keep the order of creation (not known for them).
DEFAULT_ORDER = {"Invoices": "UpdatedDateUTC ASC, InvoiceID ASC"}

# Xero's OpenAPI, the `page` parameter of each list: "Up to 100 invoices will be returned in a
# single API call with line items shown for each invoice" (likewise credit notes, bank
# transactions, manual journals, overpayments), and its example answer to GET /BankTransactions
# shows "LineItems": []; Xero's SDKs report unpaged lists without lines (XeroAPI/xero-node#200,
# XeroAPI/xero-ruby#9). Fetched by id, or paged, an object comes whole.
LINES_ONLY_WHEN_PAGED = {
    "Invoices": "LineItems",
    "CreditNotes": "LineItems",
    "BankTransactions": "LineItems",
    "Overpayments": "LineItems",
    "ManualJournals": "JournalLines",
}


def _modified_since(request: Request) -> dt.datetime | None:
    """If-Modified-Since: "Only records created or modified since this timestamp will be returned"
    (Xero's OpenAPI, components.parameters.ifModifiedSince: format date-time, example
    "2020-02-06T12:17:43.202-08:00", which Xero's SDKs send). ISO 8601 is UTC unless it carries an
    offset. An HTTP date ("Thu, 06 Feb 2020 20:17:43 GMT") is taken too: pyxero sends that form
    (freakboy3742/pyxero, basemanager.prepare_filtering_date), and a string it was given wrapped in
    double quotes. What Xero answers to an unreadable value is not documented: here a 400."""
    value = request.header("If-Modified-Since")
    if value is None:
        return None
    text = value.strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    moment: dt.datetime | None = None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            moment = email.utils.parsedate_to_datetime(text)
    if moment is None:
        raise BadRequest(
            f"If-Modified-Since '{value}' is not a timestamp: send ISO 8601 such as 2026-07-01T09:30:00 (UTC) or "
            "2026-07-01T09:30:00.000+10:00, or an HTTP date such as Wed, 01 Jul 2026 09:30:00 GMT."
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _changed_at(obj: Obj) -> dt.datetime:
    """UpdatedDateUTC; a BankTransfer has only CreatedDateUTC (Xero's OpenAPI), as it is never changed."""
    stamp = obj.get("UpdatedDateUTC") or obj.get("CreatedDateUTC")
    if not isinstance(stamp, str):
        return dt.datetime.max.replace(tzinfo=dt.UTC)  # never changed: always listed
    return dt.datetime.fromtimestamp(int(stamp[6:].split("+")[0].split(")")[0]) / 1000, tz=dt.UTC)


def _invoice_filters(request: Request, items: list[Obj]) -> list[Obj]:
    numbers = request.param("InvoiceNumbers")
    if numbers:
        wanted = {n.strip() for n in numbers.split(",")}
        items = [i for i in items if i.get("InvoiceNumber") in wanted]
    contact_ids = request.param("ContactIDs")
    if contact_ids is not None:
        wanted = {c.strip().lower() for c in contact_ids.split(",")}
        if not all(is_guid(c) for c in wanted):
            raise BadRequest("ContactIDs must be a comma-separated list of GUIDs.")
        items = [i for i in items if i["Contact"]["ContactID"] in wanted]
    statuses = request.param("Statuses")
    if statuses:
        wanted = {s.strip().upper() for s in statuses.split(",")}
        items = [i for i in items if i["Status"] in wanted]
    return items


def filter_where(request: Request, items: list[Obj]) -> list[Obj]:
    where = request.param("where")
    if not where:
        return items
    clauses = parse_where(where)
    return [i for i in items if matches(i, clauses)]
