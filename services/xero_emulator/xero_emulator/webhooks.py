"""Xero's webhooks: every created or changed invoice, credit note and contact of any organisation
becomes an event, and a background sender POSTs signed batches of them to the configured URL,
retrying failures with backoff and keeping each organisation's events in sequence.

Sources: developer.xero.com/documentation/webhooks/overview (events and payload),
developer.xero.com/documentation/webhooks/configuring-your-server (200 within 5 seconds, 401 for
a bad signature, retries "with decreasing frequency for up to 24 hours", then the webhook is
disabled; the intent-to-receive payload), and Xero's webhooks description (XeroAPI/Xero-OpenAPI,
xero-webhooks.yaml v16.1.0: the event fields, the CREDITNOTE category and its `data`, the
eventDateUtc form "2024-06-21T01:15:39.902"). The batch size, the backoff schedule and per-tenant
sequence numbers are the emulator's choices (docs/emulator.md, Known differences)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import string
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx

from xero_emulator.jsonio import dumps

# The resources Xero sends events for, and their eventCategory.
EVENT_CATEGORIES = {"Invoices": "INVOICE", "CreditNotes": "CREDITNOTE", "Contacts": "CONTACT"}
RESPONSE_SECONDS = 5.0  # "It responds within 5 seconds with a 200 O.K status code"
RETRY_FOR_MINUTES = 24 * 60.0  # "for up to 24 hours. After 24 hours the webhook will be disabled"
FIRST_RETRY_MINUTES = 1.0  # assumed: Xero does not publish its schedule
LONGEST_RETRY_MINUTES = 60.0  # assumed
MAX_EVENTS_PER_PAYLOAD = 100  # assumed
HISTORY = 100  # deliveries kept for GET /emulator/webhooks


def sign(key: str, body: bytes) -> str:
    """Xero's x-xero-signature: base64 of HMAC-SHA256 of the raw body, keyed by the webhook key."""
    return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def _entropy() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


def _event_date(update_stamp: Any) -> str:
    """The object's UpdatedDateUTC ("/Date(ms+0000)/") in Xero's eventDateUtc form, UTC without
    an offset, so a receiver can pass it on as If-Modified-Since and find the change."""
    moment = dt.datetime.now(dt.UTC)
    if isinstance(update_stamp, str) and update_stamp.startswith("/Date("):
        millis = int(update_stamp[6:].split("+")[0].split(")")[0])
        moment = dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one payload."""

    tenant_id: str
    first_sequence: int
    last_sequence: int
    events: int
    attempt: int
    status: int | None  # None: no answer (connection error or timeout)
    error: str | None
    delivered: bool
    at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "first_event_sequence": self.first_sequence,
            "last_event_sequence": self.last_sequence,
            "events": self.events,
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "delivered": self.delivered,
            "at": self.at,
        }


@dataclass
class _Payload:
    tenant_id: str
    events: list[dict[str, Any]]
    body: bytes
    first: int
    last: int
    attempts: int = 0
    due: float = 0.0
    first_attempt: float | None = None


@dataclass
class _Counters:
    events_queued: int = 0
    events_delivered: int = 0
    events_dropped: int = 0
    payloads_delivered: int = 0
    attempts_failed: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Tenant:
    sequence: int = 0
    waiting: deque[dict[str, Any]] = field(default_factory=deque)
    payload: _Payload | None = None


class Webhooks:
    """`configure(url, key)`, `clear()`, `deliveries()`, `flush(timeout)`; `record()` is called for
    every change. Retry delays are in emulated minutes (EmulatorConfig.minute_seconds)."""

    def __init__(self, minute_seconds: float) -> None:
        self.minute_seconds = minute_seconds
        self.base_url = ""  # set by the server once it listens; resourceUrl starts with it
        self._cond = threading.Condition()
        self._url: str | None = None
        self._key: str | None = None
        self._disabled_reason: str | None = None
        self._tenants: dict[str, _Tenant] = {}
        self._deliveries: deque[Delivery] = deque(maxlen=HISTORY)
        self._counters = _Counters()
        self._sending = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- configuration ------------------------------------------------------------------------
    def configure(self, url: str, key: str) -> None:
        """Turns webhooks on (again): events from now on go to `url`, signed with `key`."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("the webhook url must be an http:// or https:// URL")
        if not isinstance(key, str) or not key:
            raise ValueError("the webhook key must be a non-empty string")
        with self._cond:
            self._url, self._key, self._disabled_reason = url, key, None
            for tenant in self._tenants.values():  # a payload waiting for a retry goes at once
                if tenant.payload is not None:
                    tenant.payload.due = 0.0
            self._cond.notify_all()
        self._ensure_sender()

    def clear(self) -> None:
        """Turns webhooks off; events not yet delivered are dropped."""
        with self._cond:
            self._url = self._key = None
            self._drop_all()

    @property
    def enabled(self) -> bool:
        with self._cond:
            return self._url is not None

    def reset(self) -> None:
        """Forgets deliveries, counters and sequences, and turns webhooks off."""
        with self._cond:
            self._url = self._key = self._disabled_reason = None
            self._tenants.clear()
            self._deliveries.clear()
            self._counters = _Counters()
            self._cond.notify_all()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=RESPONSE_SECONDS + 1)
        self._thread = None

    # -- events ---------------------------------------------------------------------------------
    def record(self, tenant_id: str, resource: str, obj: dict[str, Any], created: bool) -> None:
        """Queues an event for an invoice, credit note or contact that was created or changed."""
        category = EVENT_CATEGORIES.get(resource)
        if category is None:
            return
        id_field = {"Invoices": "InvoiceID", "CreditNotes": "CreditNoteID", "Contacts": "ContactID"}[resource]
        resource_id = str(obj[id_field])
        event: dict[str, Any] = {
            "resourceUrl": f"{self.base_url}/api.xro/2.0/{resource}/{resource_id}",
            "resourceId": resource_id,
            "eventDateUtc": _event_date(obj.get("UpdatedDateUTC")),
            "eventType": "CREATE" if created else "UPDATE",
            "eventCategory": category,
            "tenantId": tenant_id,
            "tenantType": "ORGANISATION",
        }
        if category == "CREDITNOTE":  # xero-webhooks.yaml: CreditNoteWebhookEvent requires data
            event["data"] = {"Type": obj.get("Type"), "Status": obj.get("Status")}
        with self._cond:
            if self._url is None:
                return
            tenant = self._tenants.setdefault(tenant_id, _Tenant())
            tenant.sequence += 1
            tenant.waiting.append({"sequence": tenant.sequence, "event": event})
            self._counters.events_queued += 1
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Waits until every queued event is delivered (or dropped); False if `timeout` passes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending() or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    def counters(self) -> dict[str, int]:
        with self._cond:
            return self._counters.to_json() | {"events_pending": self._pending()}

    def view(self) -> dict[str, Any]:
        """What GET /emulator/webhooks shows: never the key."""
        with self._cond:
            return {
                "enabled": self._url is not None,
                "url": self._url,
                "disabled_reason": self._disabled_reason,
                "counters": self._counters.to_json() | {"events_pending": self._pending()},
                "deliveries": [d.to_json() for d in self._deliveries],
            }

    # -- intent to receive ----------------------------------------------------------------------
    def intent_to_receive(self) -> dict[str, Any]:
        """Xero's check of a new subscription: the empty payload once correctly and once wrongly
        signed; the endpoint passes with 200 and 401 respectively, within 5 seconds, no body."""
        with self._cond:
            url, key = self._url, self._key
        if url is None or key is None:
            raise ValueError("configure a webhook url and key first (PUT /emulator/webhooks)")
        body = dumps({"events": [], "lastEventSequence": 0, "firstEventSequence": 0, "entropy": _entropy()})
        wrong_key = key + "-not-the-key"
        checks = [
            self._probe(url, body, sign(key, body), "correct", 200),
            self._probe(url, body, sign(wrong_key, body), "incorrect", 401),
        ]
        return {"passed": all(c["passed"] for c in checks), "checks": checks}

    @staticmethod
    def _probe(url: str, body: bytes, signature: str, kind: str, expected: int) -> dict[str, Any]:
        started = time.monotonic()
        result: dict[str, Any] = {"signature": kind, "expected_status": expected, "status": None, "error": None}
        try:
            with httpx.Client(timeout=RESPONSE_SECONDS) as client:
                answer = client.post(url, content=body, headers=_headers(signature))
            result["status"] = answer.status_code
            result["body_empty"] = not answer.content
        except httpx.HTTPError as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
        result["seconds"] = round(time.monotonic() - started, 3)
        result["passed"] = (
            result["status"] == expected and result.get("body_empty") is True and result["seconds"] <= RESPONSE_SECONDS
        )
        return result

    # -- the sender -----------------------------------------------------------------------------
    def _ensure_sender(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="xero-emulator-webhooks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=RESPONSE_SECONDS) as client:
            while not self._stop.is_set():
                job = self._next_job()
                if job is None:
                    continue
                payload, url, key = job
                status, error = self._post(client, url, key, payload.body)
                self._settle(payload, url, status, error)

    def _next_job(self) -> tuple[_Payload, str, str] | None:
        """The earliest payload due, or None after waiting for one (or for a change)."""
        with self._cond:
            while not self._stop.is_set():
                if self._url is not None and self._key is not None:
                    now = time.monotonic()
                    due: _Payload | None = None
                    wake = None
                    for tenant_id, tenant in self._tenants.items():
                        payload = tenant.payload or self._form(tenant_id, tenant)
                        if payload is None:
                            continue
                        if payload.due <= now and (due is None or payload.due < due.due):
                            due = payload
                        elif payload.due > now:
                            wake = payload.due if wake is None else min(wake, payload.due)
                    if due is not None:
                        self._sending = True
                        return due, self._url, self._key
                    self._cond.wait(None if wake is None else wake - now)
                else:
                    self._cond.wait()
            return None

    def _form(self, tenant_id: str, tenant: _Tenant) -> _Payload | None:
        """Takes up to MAX_EVENTS_PER_PAYLOAD waiting events into this tenant's next payload."""
        if not tenant.waiting:
            return None
        taken = [tenant.waiting.popleft() for _ in range(min(MAX_EVENTS_PER_PAYLOAD, len(tenant.waiting)))]
        events = [t["event"] for t in taken]
        first, last = taken[0]["sequence"], taken[-1]["sequence"]
        body = dumps({"events": events, "firstEventSequence": first, "lastEventSequence": last, "entropy": _entropy()})
        tenant.payload = _Payload(tenant_id, events, body, first, last)
        return tenant.payload

    @staticmethod
    def _post(client: httpx.Client, url: str, key: str, body: bytes) -> tuple[int | None, str | None]:
        try:
            answer = client.post(url, content=body, headers=_headers(sign(key, body)))
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return answer.status_code, None

    def _settle(self, payload: _Payload, url: str, status: int | None, error: str | None) -> None:
        with self._cond:
            self._sending = False
            tenant = self._tenants.get(payload.tenant_id)
            if tenant is None or tenant.payload is not payload or self._url != url:
                self._cond.notify_all()  # cleared or reconfigured meanwhile: this payload is gone
                return
            now = time.monotonic()
            payload.attempts += 1
            payload.first_attempt = payload.first_attempt if payload.first_attempt is not None else now
            delivered = status == 200  # Xero accepts "a 200 O.K status code", nothing else
            if not delivered and error is None:
                error = f"answered {status}, not 200"
            self._deliveries.append(
                Delivery(
                    payload.tenant_id,
                    payload.first,
                    payload.last,
                    len(payload.events),
                    payload.attempts,
                    status,
                    error,
                    delivered,
                    dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
                )
            )
            if delivered:
                tenant.payload = None
                self._counters.payloads_delivered += 1
                self._counters.events_delivered += len(payload.events)
            else:
                self._counters.attempts_failed += 1
                if now - payload.first_attempt >= RETRY_FOR_MINUTES * self.minute_seconds:
                    self._url = self._key = None
                    self._disabled_reason = (
                        f"deliveries failed for {RETRY_FOR_MINUTES:.0f} emulated minutes; "
                        "the webhook was disabled (configure it again to re-enable)"
                    )
                    self._drop_all()
                else:
                    minutes = min(FIRST_RETRY_MINUTES * 2 ** (payload.attempts - 1), LONGEST_RETRY_MINUTES)
                    payload.due = now + minutes * self.minute_seconds
            self._cond.notify_all()

    def _pending(self) -> int:
        return sum(len(t.waiting) + (len(t.payload.events) if t.payload else 0) for t in self._tenants.values())

    def _drop_all(self) -> None:
        self._counters.events_dropped += self._pending()
        for tenant in self._tenants.values():
            tenant.waiting.clear()
            tenant.payload = None
        self._cond.notify_all()


def _headers(signature: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "x-xero-signature": signature}
