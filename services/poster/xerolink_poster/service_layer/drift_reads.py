"""Reading Xero's current state of linked objects for drift detection: one object by id (a
webhook's resource) or a collection changed since a moment (the poller). Every call goes through a
tenant worker lent by the dispatcher, so the reads share the tenant's budget and lease with
posting (docs/drift.md)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from xerolink.xero.v1 import objects_pb2 as xero_pb2

from xerolink_poster.adapters.xero_client import Credentials, Uncertain, XeroAnswer
from xerolink_poster.service_layer.dispatch import answers
from xerolink_poster.service_layer.ports import XeroCaller

RATE_LIMIT_RETRIES = 5
# Xero returns up to 100 elements a page (OpenAPI, GET /Invoices `page`: "Up to 100 invoices will
# be returned in a single API call"; pageSize's example is 100): a shorter page is the last.
PAGE_SIZE = 100
ORDER = "UpdatedDateUTC ASC"


@dataclass(frozen=True)
class Resource:
    collection: str
    id_field: str
    object_type: int
    # Whether Xero's GET of the collection takes `page` (OpenAPI: BankTransfers does not).
    paged: bool = True


# The collections xerolink links objects in, as the poller reads them.
POLLED: tuple[Resource, ...] = (
    Resource("Invoices", "InvoiceID", xero_pb2.OBJECT_TYPE_INVOICE),
    Resource("CreditNotes", "CreditNoteID", xero_pb2.OBJECT_TYPE_CREDIT_NOTE),
    Resource("Payments", "PaymentID", xero_pb2.OBJECT_TYPE_PAYMENT),
    Resource("BankTransactions", "BankTransactionID", xero_pb2.OBJECT_TYPE_BANK_TRANSACTION),
    Resource("BankTransfers", "BankTransferID", xero_pb2.OBJECT_TYPE_BANK_TRANSFER, paged=False),
    Resource("ManualJournals", "ManualJournalID", xero_pb2.OBJECT_TYPE_MANUAL_JOURNAL),
)
BY_TYPE = {r.object_type: r for r in POLLED}
# A webhook's eventCategory -> the collection its resourceId is read from.
BY_CATEGORY = {
    "INVOICE": BY_TYPE[xero_pb2.OBJECT_TYPE_INVOICE],
    "CREDITNOTE": BY_TYPE[xero_pb2.OBJECT_TYPE_CREDIT_NOTE],
}

_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


class ReadFailed(Exception):
    """No usable answer from Xero: retried later, the message kept as the visible last error."""


def _get(
    caller: XeroCaller, creds: Credentials, path: str, params: dict[str, str], headers: dict[str, str]
) -> XeroAnswer:
    """One GET; a 429 waits (the tenant budget holds the next call until Retry-After) and asks
    again."""
    for _ in range(RATE_LIMIT_RETRIES):
        try:
            answer = caller.call(creds, "GET", path, params=params or None, headers=headers or None)
        except Uncertain as exc:
            raise ReadFailed(f"no answer from Xero to GET {path} ({exc})") from exc
        if answer.status != 429:
            return answer
    raise ReadFailed(f"Xero kept asking to slow down (GET {path})")


def read_one(caller: XeroCaller, creds: Credentials, resource: Resource, xero_id: str) -> dict[str, Any] | None:
    """Xero's current element for the object; None when Xero answers 404 (it no longer has it,
    or never had it in this organisation)."""
    path = f"{resource.collection}/{xero_id}"
    answer = _get(caller, creds, path, {}, {})
    verdict = answers.call_verdict(answer, one_object=True)
    if verdict == answers.MISSING:
        return None
    if verdict:
        raise ReadFailed(f"Xero answered {answer.status} to GET {path} ({verdict})")
    items = answer.body.get(resource.collection) if isinstance(answer.body, dict) else None
    first = items[0] if isinstance(items, list) and items else None
    if not answer.ok or not isinstance(first, dict):
        raise ReadFailed(f"Xero answered {answer.status} to GET {path} without the {resource.collection} element")
    return first


def read_page(
    caller: XeroCaller, creds: Credentials, resource: Resource, modified_since: str, page: int
) -> list[dict[str, Any]]:
    """One page of the collection's objects created or changed since `modified_since` (Xero's
    If-Modified-Since header: OpenAPI components.parameters.ifModifiedSince, format date-time,
    e.g. "2020-02-06T12:17:43.202-08:00"), oldest change first: `order` ("Order by an any
    element", declared on each of these GETs in Xero's OpenAPI) by UpdatedDateUTC, so an object
    changed while the pages are read moves to the end instead of shifting the others."""
    # An unpaged answer (BankTransfers) comes whole, and a BankTransfer has no UpdatedDateUTC.
    params = {"page": str(page), "order": ORDER} if resource.paged else {}
    headers = {"If-Modified-Since": modified_since} if modified_since else {}
    answer = _get(caller, creds, resource.collection, params, headers)
    if answer.status == 304:  # nothing changed (HTTP's answer to a conditional GET)
        return []
    verdict = answers.call_verdict(answer)
    if verdict or not answers.readable_lookup(answer):
        raise ReadFailed(f"Xero answered {answer.status} to GET {resource.collection} {verdict}".strip())
    items = answer.body.get(resource.collection)
    if not isinstance(items, list):
        raise ReadFailed(f"Xero's answer to GET {resource.collection} has no {resource.collection} list")
    return [i for i in items if isinstance(i, dict)]


def updated_ms(element: dict[str, Any]) -> int | None:
    """An element's UpdatedDateUTC ("/Date(ms+0000)/", Xero's JSON date) in epoch milliseconds;
    a BankTransfer has only CreatedDateUTC (OpenAPI: it is never changed)."""
    stamp = element.get("UpdatedDateUTC") or element.get("CreatedDateUTC")
    if not isinstance(stamp, str):
        return None
    found = _MS_DATE.match(stamp.strip())
    if found:
        return int(found.group(1))
    try:
        moment = dt.datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def iso_of_ms(ms: int) -> str:
    """An If-Modified-Since value in the OpenAPI's date-time form, in UTC with milliseconds."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def ms_of_iso(text: str) -> int:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
