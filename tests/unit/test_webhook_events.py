"""Xero's webhook deliveries as the poster reads them: the signature over the exact bytes, the
events of a delivery and what names an event across Xero's retries; and the endpoint's and the
poller's settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from xerolink_poster.domain.webhook_events import MalformedDelivery, parse_delivery, signature_of, signature_valid
from xerolink_poster.entrypoints.drift_config import load_polling, load_webhooks

KEY = b"key"
EVENT = {
    "resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/0f2a",
    "resourceId": "0f2a",
    "eventDateUtc": "2026-07-01T10:00:00.000",
    "eventType": "UPDATE",
    "eventCategory": "INVOICE",
    "tenantId": "c2cc",
    "tenantType": "ORGANISATION",
}


def test_the_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"events": []}'
    expected = base64.b64encode(hmac.new(KEY, body, hashlib.sha256).digest()).decode()
    assert signature_of(KEY, body) == expected
    assert signature_valid(KEY, body, expected)
    assert not signature_valid(KEY, body + b" ", expected)  # the bytes, not the JSON they hold
    assert not signature_valid(b"other", body, expected)
    assert not signature_valid(KEY, body, None)
    assert not signature_valid(KEY, body, "")


def test_a_delivery_s_events_are_read_in_order_and_named_by_what_identifies_them() -> None:
    later = {**EVENT, "eventDateUtc": "2026-07-01T10:05:00.000"}
    events = parse_delivery(json.dumps({"events": [EVENT, later], "entropy": "X"}).encode())
    assert [e.event_date for e in events] == ["2026-07-01T10:00:00.000", "2026-07-01T10:05:00.000"]
    assert events[0].key != events[1].key
    again = parse_delivery(json.dumps({"events": [{**EVENT, "resourceUrl": "elsewhere"}]}).encode())
    assert again[0].key == events[0].key  # the same event, delivered again
    assert parse_delivery(b'{"events": []}') == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\xff", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"events": {}}', "'events' list"),
        (json.dumps({"events": [1]}).encode(), "events[0] is not an object"),
        (json.dumps({"events": [{**EVENT, "tenantId": 5}]}).encode(), "events[0].tenantId"),
        (json.dumps({"events": [{**EVENT, "eventType": "DELETE"}]}).encode(), "eventType"),
        (json.dumps({"events": [{**EVENT, "resourceId": "x" * 65}]}).encode(), "too long"),
    ],
)
def test_a_body_not_in_xeros_shape_says_what_is_wrong(body: bytes, says: str) -> None:
    with pytest.raises(MalformedDelivery, match=re.escape(says)):
        parse_delivery(body)


def test_the_endpoint_needs_a_key_and_takes_it_from_a_file(tmp_path: Path) -> None:
    assert not load_webhooks({}).enabled
    assert not load_webhooks({"XEROLINK_WEBHOOK_ADDRESS": "off"}).enabled
    with pytest.raises(SystemExit, match="no webhook key"):
        load_webhooks({"XEROLINK_WEBHOOK_ADDRESS": "127.0.0.1:0"})
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    loaded = load_webhooks({"XEROLINK_WEBHOOK_ADDRESS": "0.0.0.0:50063", "XEROLINK_WEBHOOK_KEY_FILE": str(key_file)})
    assert (loaded.key, loaded.path, loaded.address) == (b"from-file", "/xero/webhooks", "0.0.0.0:50063")
    both = {"XEROLINK_WEBHOOK_ADDRESS": "127.0.0.1:0", "XEROLINK_WEBHOOK_KEY": "k", "XEROLINK_WEBHOOK_KEY_FILE": "f"}
    with pytest.raises(SystemExit, match="not both"):
        load_webhooks(both)
    with pytest.raises(SystemExit, match="XEROLINK_WEBHOOK_PATH"):
        load_webhooks(
            {"XEROLINK_WEBHOOK_ADDRESS": "127.0.0.1:0", "XEROLINK_WEBHOOK_KEY": "k", "XEROLINK_WEBHOOK_PATH": "x"}
        )
    with pytest.raises(SystemExit, match="host:port"):
        load_webhooks({"XEROLINK_WEBHOOK_ADDRESS": "localhost", "XEROLINK_WEBHOOK_KEY": "k"})


def test_the_poller_is_off_by_default_and_its_share_is_bounded() -> None:
    assert load_polling({}).interval == 0
    assert load_polling({"XEROLINK_POLL_INTERVAL_SECONDS": "300", "XEROLINK_POLL_SHARE": "0.2"}).share == 0.2
    for share in ("0", "0.6", "x"):
        with pytest.raises(SystemExit):
            load_polling({"XEROLINK_POLL_SHARE": share})
    with pytest.raises(SystemExit):
        load_polling({"XEROLINK_POLL_INTERVAL_SECONDS": "-1"})
