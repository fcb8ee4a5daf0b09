"""Xero's webhook deliveries: the signature check and the events a signed body holds.

Xero signs the raw body with HMAC-SHA256 and the webhook key and sends it base64-encoded in
`x-xero-signature`; a delivery holds `events` (resourceUrl, resourceId, eventDateUtc, eventType,
eventCategory, tenantId, tenantType) with firstEventSequence, lastEventSequence and entropy; the
intent-to-receive check sends an empty `events` list (developer.xero.com/documentation/webhooks,
see docs/drift.md "Webhooks")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

# Xero's event categories (the same documentation): payments have none, a payment shows as an
# UPDATE of its invoice.
CATEGORIES = frozenset({"INVOICE", "CREDITNOTE", "CONTACT"})
EVENT_TYPES = frozenset({"CREATE", "UPDATE"})
_FIELD_LIMITS = {"tenantId": 64, "resourceId": 64, "eventDateUtc": 40}


class MalformedDelivery(ValueError):
    """A signed body that is not a delivery in Xero's shape: the message says what is wrong."""


@dataclass(frozen=True)
class WebhookEvent:
    tenant_id: str
    category: str
    event_type: str
    resource_id: str
    event_date: str

    @property
    def key(self) -> str:
        """What names the event across Xero's deliveries of it (a retry, a replay): SHA-256 of
        tenantId, eventCategory, eventType, resourceId and eventDateUtc."""
        parts = (self.tenant_id, self.category, self.event_type, self.resource_id, self.event_date)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def signature_of(key: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def signature_valid(key: bytes, body: bytes, signature: str | None) -> bool:
    """Whether `signature` is Xero's for this exact body; compared in constant time."""
    if not signature:
        return False
    return hmac.compare_digest(signature_of(key, body).encode(), signature.strip().encode())


def parse_delivery(body: bytes) -> list[WebhookEvent]:
    """The events of a signed delivery, in order; [] for intent-to-receive. Raises
    MalformedDelivery when the body is not JSON or an event lacks what names it."""
    try:
        payload: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedDelivery(f"the body is not JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise MalformedDelivery("the body is not a JSON object")
    events = payload.get("events")
    if not isinstance(events, list):
        raise MalformedDelivery("the body has no 'events' list")
    return [_event(i, item) for i, item in enumerate(events)]


def _event(index: int, item: Any) -> WebhookEvent:
    where = f"events[{index}]"
    if not isinstance(item, dict):
        raise MalformedDelivery(f"{where} is not an object")
    values: dict[str, str] = {}
    for field in ("tenantId", "eventCategory", "eventType", "resourceId", "eventDateUtc"):
        value = item.get(field)
        if not isinstance(value, str) or not value.strip():
            raise MalformedDelivery(f"{where}.{field} is missing or not a string")
        if len(value) > _FIELD_LIMITS.get(field, 32):
            raise MalformedDelivery(f"{where}.{field} is too long")
        values[field] = value.strip()
    category = values["eventCategory"].upper()
    if category not in CATEGORIES:
        raise MalformedDelivery(f"{where}.eventCategory {values['eventCategory']!r} is not one Xero sends")
    event_type = values["eventType"].upper()
    if event_type not in EVENT_TYPES:
        raise MalformedDelivery(f"{where}.eventType {values['eventType']!r} is not one Xero sends")
    # tenantId and resourceId are GUIDs, which compare without case: kept in lower case, so an
    # event names its organisation and object (and itself, by its key) however Xero spelt them.
    return WebhookEvent(
        tenant_id=values["tenantId"].lower(),
        category=category,
        event_type=event_type,
        resource_id=values["resourceId"].lower(),
        event_date=values["eventDateUtc"],
    )
