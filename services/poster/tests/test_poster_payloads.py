"""The mapper's operations as Xero elements: exact amounts, deterministic references."""

from __future__ import annotations

from decimal import Decimal

from xerolink.actionstep.v1 import common_pb2
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.adapters import xero_json
from xerolink_poster.adapters import xero_payloads as payloads


def _invoice() -> xero_pb2.Operation:
    return xero_pb2.Operation(
        local_ref="invoice",
        invoice=xero_pb2.Invoice(
            type=xero_pb2.INVOICE_TYPE_ACCREC,
            date=date_pb2.Date(year=2026, month=3, day=2),
            invoice_number="INV-1",
            reference="AS-1",
            line_amount_types=xero_pb2.LINE_AMOUNT_TYPES_EXCLUSIVE,
            line_items=[
                xero_pb2.LineItem(
                    description="Advice",
                    quantity="1.5",
                    unit_amount="200.0333",
                    account_code="200",
                    tax_type="OUTPUT",
                    line_amount=money_pb2.Money(units=30005),
                    tax_amount=money_pb2.Money(units=3001),
                )
            ],
            status=xero_pb2.DOCUMENT_STATUS_AUTHORISED,
        ),
    )


def test_an_invoice_element_carries_exact_amounts_and_the_contact_id() -> None:
    element = payloads.element_of(_invoice(), "AS-1", "contact-1", {})
    assert element["Contact"] == {"ContactID": "contact-1"}
    [line] = element["LineItems"]
    assert (line["LineAmount"], line["TaxAmount"], line["UnitAmount"]) == (
        Decimal("300.05"),
        Decimal("30.01"),
        Decimal("200.0333"),
    )
    raw = xero_json.dumps(element)
    assert b'"LineAmount":300.05' in raw and b'"UnitAmount":200.0333' in raw
    assert xero_json.loads(raw)["LineItems"][0]["TaxAmount"] == Decimal("30.01")


def test_references_are_deterministic_and_mark_each_posting_cycle() -> None:
    bill, payment = common_pb2.TRANSACTION_KIND_CLIENT_BILL, common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
    assert payloads.tracking_reference("INV-1", bill, 1, 1) == "INV-1 [AS-CB-1]"
    assert payloads.tracking_reference("", payment, 77, 1) == "[AS-CBP-77]"
    assert payloads.tracking_reference("INV-1", bill, 1, 3) == "INV-1 [AS-CB-1] #3"


def test_two_records_with_the_same_user_reference_never_share_a_tracking_reference() -> None:
    # Two instalments both referenced "Smith": a look-up for one must never find the other.
    payment = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
    assert payloads.tracking_reference("Smith", payment, 7001, 1) != payloads.tracking_reference(
        "Smith", payment, 7002, 1
    )


def test_every_kind_has_its_own_code() -> None:
    kinds = [k for k in common_pb2.TransactionKind.values() if k != common_pb2.TRANSACTION_KIND_UNSPECIFIED]
    codes = [payloads.kind_code(k) for k in kinds]
    assert len(set(codes)) == len(codes), sorted(codes)


def test_a_payment_is_looked_up_by_reference_and_amount() -> None:
    payment = xero_pb2.Operation(
        local_ref="payment",
        payment=xero_pb2.Payment(
            document_type=xero_pb2.OBJECT_TYPE_INVOICE, amount=money_pb2.Money(units=50000), reference="AS-2"
        ),
    )
    assert payloads.lookup_where(payment, "AS-2 #2", {"document": "x"}) == (
        "Payments",
        'Reference=="AS-2 #2" AND Amount==500.00',
    )


def test_an_answered_amount_is_compared_with_the_sent_one_as_a_number() -> None:
    # A look-up that compared text would miss an allocation Xero wrote as 100 and create it again.
    same: list[object] = ["100", "100.0", "100.00", 100, Decimal("100.000")]
    other: list[object] = ["100.01", "99.99", "", None, "abc", "-100.00"]
    for answered in same:
        assert payloads.same_amount(answered, Decimal("100.00")), answered
    for answered in other:
        assert not payloads.same_amount(answered, Decimal("100.00")), answered
