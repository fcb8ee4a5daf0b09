"""Drift rules: trimming Xero's elements, comparing what xerolink posted with what Xero holds, and
record_observations over the in-memory repositories (opening, updating, resolving drift rows)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xerolink.poster.v1 import drift_pb2
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain import drift as rules
from xerolink_poster.domain.drift import DriftKind
from xerolink_poster.domain.kinds import ObjectType, TransactionKind
from xerolink_poster.domain.records import XeroObjectRef
from xerolink_poster.service_layer import drift_snapshots
from xerolink_poster.service_layer.drift_checks import Observed, record_observations

from tests.unit.fakes.unit_of_work import FakeUnitOfWork

INVOICE_ID = "6f1e2d3c-0000-4000-8000-000000000001"
PAYMENT_ID = "6f1e2d3c-0000-4000-8000-000000000002"
FOREIGN_ID = "6f1e2d3c-0000-4000-8000-000000000003"
CONTACT_ID = "6f1e2d3c-0000-4000-8000-0000000000c1"


def invoice(**changes: Any) -> dict[str, Any]:
    element: dict[str, Any] = {
        "InvoiceID": INVOICE_ID,
        "InvoiceNumber": "INV-0001",
        "Type": "ACCREC",
        "Status": "AUTHORISED",
        "Date": "/Date(1782864000000+0000)/",  # 2026-07-01
        "Contact": {"ContactID": CONTACT_ID, "Name": "Smith"},
        "LineItems": [
            {"AccountCode": "200", "LineAmount": 100, "TaxType": "OUTPUT", "TaxAmount": "10.00"},
            {"AccountCode": "260", "LineAmount": "50.5", "TaxType": "OUTPUT", "TaxAmount": 5.05},
        ],
        "SubTotal": "150.50",
        "TotalTax": "15.05",
        "Total": "165.55",
        "Payments": [],
        "CreditNotes": [],
        "Prepayments": [],
        "Overpayments": [],
        "UpdatedDateUTC": "/Date(1782864000000+0000)/",
    }
    element.update(changes)
    return element


def kinds(findings: list[rules.Finding]) -> list[str]:
    return sorted(f.kind.value for f in findings)


def test_the_domain_kinds_are_the_proto_kinds() -> None:
    names = {n.removeprefix("DRIFT_KIND_") for n in drift_pb2.DriftKind.DESCRIPTOR.values_by_name} - {"UNSPECIFIED"}
    assert names == {k.value for k in DriftKind}


def test_trimming_keeps_money_as_two_decimal_strings_and_dates_as_days() -> None:
    doc = rules.trim(ObjectType.INVOICE, invoice())
    assert doc["Date"] == "2026-07-01"
    assert doc["Total"] == "165.55"
    assert doc["LineItems"][0] == {
        "AccountCode": "200",
        "LineAmount": "100.00",
        "TaxType": "OUTPUT",
        "TaxAmount": "10.00",
    }
    assert doc["LineItems"][1]["TaxAmount"] == "5.05"
    assert doc["Contact"] == {"ContactID": CONTACT_ID}
    assert rules.trim(ObjectType.INVOICE, doc) == doc


@pytest.mark.parametrize("garbled", ["Infinity", "-Infinity", "1e30", "12345678901234567890123456789"])
def test_an_amount_that_cannot_be_rounded_to_cents_is_kept_as_xero_wrote_it(garbled: str) -> None:
    """Xero's element is trimmed for every answer of a call before any is applied: an amount the
    cents cannot hold (a garbled answer) must not raise there and lose the call's other answers."""
    doc = rules.trim(ObjectType.INVOICE, invoice(Total=garbled))
    assert doc["Total"] == garbled
    assert doc["SubTotal"] == "150.50"


@pytest.mark.parametrize(
    "garbled",
    [
        {"Date": "/Date(99999999999999999999+0000)/"},
        {"Date": "/Date(-99999999999999+0000)/"},
        {"CurrencyRate": "1e999999999"},
        {"CurrencyRate": "-Infinity", "Total": "1e999999999"},
    ],
)
def test_a_date_or_rate_out_of_any_range_does_not_stop_the_trim(garbled: dict[str, str]) -> None:
    """The same as for amounts: a garbled date or currency rate in one element must not raise
    out of the trim that every answer of a call goes through before any is applied."""
    doc = rules.trim(ObjectType.INVOICE, invoice(**garbled))
    assert doc["InvoiceID"] == INVOICE_ID.lower() and doc["SubTotal"] == "150.50"


@given(st.decimals(allow_nan=True, allow_infinity=True) | st.decimals(places=2) | st.integers())
def test_an_amount_read_as_a_decimal_trims_as_its_text_does(value: Decimal | int) -> None:
    """xero_json reads Xero's numbers as Decimal and money() takes them as they are: the cents
    must be those of the text Xero wrote, special values and overflows included."""
    assert rules.money(value) == rules.money(str(value))


@given(st.text(min_size=1, max_size=60))
def test_a_date_is_the_same_day_cached_or_not(value: str) -> None:
    assert rules.xero_date(value) == rules.xero_date(value) == rules._day_of(value)


def test_a_garbled_long_date_is_not_kept_in_the_cache() -> None:
    before = rules._cached_day.cache_info().currsize
    assert rules.xero_date("/Date(" + "9" * 10_000 + ")/") == "/Date(9999"
    assert rules._cached_day.cache_info().currsize == before


def test_the_same_invoice_is_no_drift() -> None:
    posted = rules.trim(ObjectType.INVOICE, invoice())
    assert rules.compare(ObjectType.INVOICE, posted, rules.trim(ObjectType.INVOICE, invoice()), set()) == []


def test_paid_by_xerolinks_own_payment_is_no_drift() -> None:
    posted = rules.with_applied(
        rules.trim(ObjectType.INVOICE, invoice()), "Payments", {"PaymentID": PAYMENT_ID, "Amount": "165.55"}
    )
    paid = invoice(Status="PAID", Payments=[{"PaymentID": PAYMENT_ID, "Amount": "165.55"}])
    assert rules.compare(ObjectType.INVOICE, posted, rules.trim(ObjectType.INVOICE, paid), set()) == []


@pytest.mark.parametrize(
    ("status", "kind"),
    [("PAID", DriftKind.PAID_IN_XERO), ("AUTHORISED", DriftKind.ALLOCATION_ADDED_IN_XERO)],
)
def test_money_xerolink_did_not_apply_is_paid_or_allocation_added(status: str, kind: DriftKind) -> None:
    posted = rules.trim(ObjectType.INVOICE, invoice())
    current = rules.trim(
        ObjectType.INVOICE, invoice(Status=status, Payments=[{"PaymentID": FOREIGN_ID, "Amount": 100}])
    )
    findings = rules.compare(ObjectType.INVOICE, posted, current, set())
    assert kinds(findings) == [kind.value]
    assert rules.Difference(f"Payments[PaymentID={FOREIGN_ID}].Amount", "", "100.00") in findings[0].differences
    assert "did not post" in findings[0].description


def test_a_payment_another_link_made_is_not_foreign() -> None:
    posted = rules.trim(ObjectType.INVOICE, invoice())
    current = rules.trim(ObjectType.INVOICE, invoice(Status="PAID", Payments=[{"PaymentID": FOREIGN_ID, "Amount": 1}]))
    assert rules.compare(ObjectType.INVOICE, posted, current, {FOREIGN_ID}) == []


@pytest.mark.parametrize(
    ("changes", "kind", "field"),
    [
        ({"Status": "VOIDED"}, DriftKind.VOIDED_IN_XERO, "Status"),
        ({"Status": "DELETED"}, DriftKind.DELETED_IN_XERO, "Status"),
        ({"Status": "DRAFT"}, DriftKind.STATUS_CHANGED, "Status"),
        ({"Contact": {"ContactID": FOREIGN_ID}}, DriftKind.CONTACT_CHANGED, "Contact.ContactID"),
        ({"Date": "2026-07-02T00:00:00"}, DriftKind.DATE_CHANGED, "Date"),
        ({"Total": "170.00", "TotalTax": "19.50"}, DriftKind.AMOUNT_CHANGED, "Total"),
        (
            {
                "LineItems": [
                    {"AccountCode": "200", "LineAmount": 150.5, "TaxType": "OUTPUT", "TaxAmount": "15.05"},
                ]
            },
            DriftKind.LINES_CHANGED,
            "LineItems[AccountCode=200].LineAmount",
        ),
    ],
)
def test_each_edit_in_xero_is_its_kind(changes: dict[str, Any], kind: DriftKind, field: str) -> None:
    posted = rules.trim(ObjectType.INVOICE, invoice())
    findings = rules.compare(ObjectType.INVOICE, posted, rules.trim(ObjectType.INVOICE, invoice(**changes)), set())
    assert kinds(findings) == [kind.value]
    assert field in [d.field for d in findings[0].differences]


def test_lines_split_on_one_account_are_no_drift() -> None:
    posted = rules.trim(ObjectType.INVOICE, invoice())
    lines = [
        {"AccountCode": "200", "LineAmount": "60", "TaxType": "OUTPUT", "TaxAmount": "6"},
        {"AccountCode": "200", "LineAmount": "40", "TaxType": "OUTPUT", "TaxAmount": "4"},
        {"AccountCode": "260", "LineAmount": "50.50", "TaxType": "OUTPUT", "TaxAmount": "5.05"},
    ]
    current = rules.trim(ObjectType.INVOICE, invoice(LineItems=lines))
    assert rules.compare(ObjectType.INVOICE, posted, current, set()) == []


def test_gone_from_xero_is_deleted_and_a_payment_gone_is_payment_deleted() -> None:
    posted = rules.trim(ObjectType.INVOICE, invoice())
    assert kinds(rules.compare(ObjectType.INVOICE, posted, None, set())) == ["DELETED_IN_XERO"]
    payment = rules.trim(ObjectType.PAYMENT, {"PaymentID": PAYMENT_ID, "Status": "AUTHORISED", "Amount": 5})
    assert kinds(rules.compare(ObjectType.PAYMENT, payment, None, set())) == ["PAYMENT_DELETED_IN_XERO"]
    deleted = rules.trim(ObjectType.PAYMENT, {"PaymentID": PAYMENT_ID, "Status": "DELETED", "Amount": 5})
    assert kinds(rules.compare(ObjectType.PAYMENT, payment, deleted, set())) == ["PAYMENT_DELETED_IN_XERO"]


def test_a_payment_xerolink_made_missing_from_its_invoice_is_deleted_on_the_payment() -> None:
    posted = rules.with_applied(
        rules.trim(ObjectType.INVOICE, invoice()), "Payments", {"PaymentID": PAYMENT_ID, "Amount": "165.55"}
    )
    findings = rules.compare(ObjectType.INVOICE, posted, rules.trim(ObjectType.INVOICE, invoice()), set())
    assert [(f.kind, f.xero_id) for f in findings] == [(DriftKind.PAYMENT_DELETED_IN_XERO, PAYMENT_ID)]


def test_a_journal_with_other_amounts_changed_amount() -> None:
    def journal(amount: str) -> dict[str, Any]:
        return {
            "ManualJournalID": "j1",
            "Status": "POSTED",
            "Date": "2026-07-01",
            "JournalLines": [
                {"AccountCode": "800", "LineAmount": amount},
                {"AccountCode": "090", "LineAmount": f"-{amount}"},
            ],
        }

    posted = rules.trim(ObjectType.MANUAL_JOURNAL, journal("10"))
    current = rules.trim(ObjectType.MANUAL_JOURNAL, journal("12"))
    assert kinds(rules.compare(ObjectType.MANUAL_JOURNAL, posted, current, set())) == ["AMOUNT_CHANGED"]


# -- record_observations over the fakes ----------------------------------------------------------
def linked(uow: FakeUnitOfWork, record_id: int, objects: list[XeroObjectRef]) -> LinkRow:
    link = LinkRow(
        connection_id="c1",
        kind=TransactionKind.CLIENT_BILL,
        record_id=record_id,
        link_group=1,
        state="linked",
        fingerprint="f",
        posting_id=f"p{record_id}",
        xero_objects=json.dumps([o.to_json() for o in objects]),
        create_us=1,
        update_us=1,
    )
    return uow.links.add_link(link)


def posted_invoice(uow: FakeUnitOfWork) -> LinkRow:
    ref = XeroObjectRef(ObjectType.INVOICE, INVOICE_ID, "invoice")
    link = linked(uow, 1103, [ref])
    drift_snapshots.record_posted(uow, [(link, drift_snapshots.documents_of([ref], invoice()))], 10)
    return link


def observe(uow: FakeUnitOfWork, element: dict[str, Any] | None, now: int = 20) -> list[Any]:
    seen = Observed(ObjectType.INVOICE, INVOICE_ID, element, "u")
    return record_observations(uow, "c1", [seen], "poll", now, "poller")


def test_a_finding_opens_one_drift_and_the_same_again_changes_nothing() -> None:
    uow = FakeUnitOfWork()
    link = posted_invoice(uow)
    opened = observe(uow, invoice(Status="VOIDED"))
    assert [(r.kind, r.state, r.link_id, r.source) for r in opened] == [("VOIDED_IN_XERO", "open", link.id, "poll")]
    assert json.loads(opened[0].differences) == [{"field": "Status", "posted": "AUTHORISED", "xero": "VOIDED"}]
    assert observe(uow, invoice(Status="VOIDED"), now=30) == []
    assert [a.event for a in uow.registry.audit] == ["drift_detected"]


def test_a_matching_read_resolves_open_drifts_as_xero_restored() -> None:
    uow = FakeUnitOfWork()
    posted_invoice(uow)
    observe(uow, invoice(Date="2026-08-01"))
    resolved = observe(uow, invoice(), now=40)
    assert [(r.kind, r.state, r.resolution, r.resolved_us) for r in resolved] == [
        ("DATE_CHANGED", "resolved", "XERO_RESTORED", 40)
    ]
    assert [a.event for a in uow.registry.audit] == ["drift_detected", "drift_cleared"]


def test_another_difference_of_the_kind_updates_the_open_drift() -> None:
    uow = FakeUnitOfWork()
    posted_invoice(uow)
    first = observe(uow, invoice(Date="2026-08-01"))[0]
    second = observe(uow, invoice(Date="2026-09-01"), now=30)[0]
    assert first.id == second.id
    assert json.loads(second.differences)[0]["xero"] == "2026-09-01"


def test_objects_no_link_holds_are_ignored_and_old_links_adopt_what_xero_holds() -> None:
    uow = FakeUnitOfWork()
    assert observe(uow, invoice(Status="VOIDED")) == []
    assert uow.drift.snapshots == {}
    linked(uow, 7, [XeroObjectRef(ObjectType.INVOICE, INVOICE_ID, "invoice")])
    assert observe(uow, invoice(Date="2026-08-01")) == []
    adopted = uow.drift.get_snapshot("c1", INVOICE_ID)
    assert adopted is not None and json.loads(adopted.document)["Date"] == "2026-08-01"
    assert observe(uow, invoice(Date="2026-08-01")) == []
    assert [a.event for a in uow.registry.audit] == ["snapshot_adopted"]


def test_an_old_link_adopts_a_voided_document_as_posted_live_and_finds_it_voided() -> None:
    uow = FakeUnitOfWork()
    linked(uow, 7, [XeroObjectRef(ObjectType.INVOICE, INVOICE_ID, "invoice")])
    found = observe(uow, invoice(Status="VOIDED"))
    assert [(r.kind, r.state) for r in found] == [("VOIDED_IN_XERO", "open")]
    adopted = uow.drift.get_snapshot("c1", INVOICE_ID)
    assert adopted is not None and json.loads(adopted.document)["Status"] == "AUTHORISED"
    assert observe(uow, invoice(Status="VOIDED"), now=30) == []
    assert [a.event for a in uow.registry.audit] == ["snapshot_adopted", "drift_detected"]


def test_an_old_link_whose_object_xero_no_longer_has_finds_it_deleted() -> None:
    uow = FakeUnitOfWork()
    linked(uow, 7, [XeroObjectRef(ObjectType.INVOICE, INVOICE_ID, "invoice")])
    assert [(r.kind, r.state) for r in observe(uow, None)] == [("DELETED_IN_XERO", "open")]


def test_an_old_link_adopts_its_document_without_money_no_link_made() -> None:
    uow = FakeUnitOfWork()
    linked(uow, 7, [XeroObjectRef(ObjectType.INVOICE, INVOICE_ID, "invoice")])
    mine = {"PaymentID": PAYMENT_ID, "Amount": "100.00"}
    foreign = {"PaymentID": "0b0b0b0b-0000-4000-8000-00000000000f", "Amount": "65.55"}
    linked(uow, 2001, [XeroObjectRef(ObjectType.PAYMENT, PAYMENT_ID, "payment")])
    found = observe(uow, invoice(Status="PAID", Payments=[mine, foreign]))
    assert [(r.kind, r.state) for r in found] == [("PAID_IN_XERO", "open")]
    assert foreign["PaymentID"] in found[0].differences and PAYMENT_ID not in found[0].differences


def test_a_payment_deleted_in_xero_is_a_drift_on_the_payments_link() -> None:
    uow = FakeUnitOfWork()
    posted_invoice(uow)
    pay_ref = XeroObjectRef(ObjectType.PAYMENT, PAYMENT_ID, "payment")
    pay_link = linked(uow, 2001, [pay_ref])
    payment = {
        "PaymentID": PAYMENT_ID,
        "Status": "AUTHORISED",
        "Amount": "165.55",
        "Invoice": {"InvoiceID": INVOICE_ID},
    }
    drift_snapshots.record_posted(uow, [(pay_link, drift_snapshots.documents_of([pay_ref], payment))], 15)
    # Paid by xerolink's own payment: nothing.
    assert observe(uow, invoice(Status="PAID", Payments=[{"PaymentID": PAYMENT_ID, "Amount": 165.55}])) == []
    # The payment deleted in Xero: the invoice no longer holds it.
    rows = observe(uow, invoice(), now=30)
    assert [(r.kind, r.link_id, r.xero_id) for r in rows] == [("PAYMENT_DELETED_IN_XERO", pay_link.id, PAYMENT_ID)]
    # Reading the payment itself finds the same drift: nothing changes.
    deleted = {**payment, "Status": "DELETED"}
    seen = Observed(ObjectType.PAYMENT, PAYMENT_ID, deleted)
    assert record_observations(uow, "c1", [seen], "poll", 40, "poller") == []


def test_an_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        record_observations(FakeUnitOfWork(), "c1", [], "email", 1, "x")
