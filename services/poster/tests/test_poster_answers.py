"""The one classification of Xero's answers, to create calls and to calls on one object: only an
element Xero explicitly refused fails; an answer that proves nothing leaves its elements unknown."""

from __future__ import annotations

from typing import Any

from xerolink.type.v1 import money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.adapters.xero_client import XeroAnswer
from xerolink_poster.domain.rate_limits import RateHeaders
from xerolink_poster.domain.stored_rows import ClaimedEntry, StoredLink
from xerolink_poster.service_layer.dispatch.answers import MISSING, UNREADABLE, call_verdict, read_answer, read_elements
from xerolink_poster.service_layer.dispatch.work import Work


def _works(count: int) -> list[Work]:
    works = []
    for n in range(count):
        operation = xero_pb2.Operation(
            local_ref="payment",
            payment=xero_pb2.Payment(document_type=xero_pb2.OBJECT_TYPE_INVOICE, amount=money_pb2.Money(units=100)),
        )
        row = ClaimedEntry(
            id=n + 1,
            link_id=n + 1,
            connection_id="c",
            operations=b"",
            uncertain=False,
            alone=False,
            lookup_hint="",
            trace_context="",
        )
        link = StoredLink(
            id=n + 1,
            connection_id="c",
            kind=2,
            record_id=100 + n,
            state="pending",
            posting_id="p",
            generation=0,
            attempts=0,
            xero_objects="[]",
        )
        work = Work(
            row,
            link,
            ConnectionRow(connection_id="c", xero_base_url="", xero_tenant_id="t", mapping_context=b"", create_us=0),
        )
        work.operation, work.reference = operation, f"[AS-CBP-{100 + n}]"
        works.append(work)
    return works


def _answer(status: int, body: Any) -> XeroAnswer:
    return XeroAnswer(status, body, RateHeaders(), 0.0)


def test_a_batch_refused_whole_without_elements_leaves_every_element_unknown_and_alone() -> None:
    """Without an outcome per element Xero may have created the valid ones: none may fail."""
    read = read_answer(_answer(400, {"Message": "A validation exception occurred"}), "Payments", _works(3))
    assert [e.refused for e in read.elements] == [None] * 3 and not any(e.created for e in read.elements)
    assert read.alone and read.reason == "XERO_BATCH_REFUSED"


def test_a_call_of_one_refused_without_elements_is_that_elements_refusal() -> None:
    read = read_answer(_answer(400, {"Message": "Account code 999 is not valid"}), "Payments", _works(1))
    assert read.elements[0].refused == ["Account code 999 is not valid"]


def test_valid_elements_of_a_batch_refused_whole_are_unknown_and_the_invalid_one_refused() -> None:
    elements = [
        {"PaymentID": "00000000-0000-0000-0000-000000000000"},
        {"ValidationErrors": [{"Message": "Payment amount exceeds the amount outstanding"}]},
    ]
    read = read_answer(_answer(400, {"Elements": elements}), "Payments", _works(2))
    assert read.elements[0].refused is None and not read.elements[0].created
    assert read.elements[1].refused == ["Payment amount exceeds the amount outstanding"]
    assert read.alone


def test_a_200_that_cannot_be_matched_is_unknown_never_refused() -> None:
    for body in ({"Payments": ["garbled"]}, {"Payments": [{"PaymentID": "a"}]}, "not json", {}):
        read = read_answer(_answer(200, body), "Payments", _works(3))
        assert all(e.refused is None and not e.created for e in read.elements), body
        assert read.reason == "XERO_ANSWER_UNREADABLE" and not read.alone


def test_an_element_without_an_id_or_with_another_records_tag_is_unknown() -> None:
    answered = [{"PaymentID": "", "Reference": "[AS-CBP-100]"}, {"PaymentID": "p-2", "Reference": "[AS-CBP-999]"}]
    read = read_answer(_answer(200, {"Payments": answered}), "Payments", _works(2))
    assert [bool(e.created) for e in read.elements] == [False, False]
    assert [e.refused for e in read.elements] == [None, None]


def test_each_element_of_a_matched_answer_is_created_or_refused() -> None:
    answered = [
        {"PaymentID": "p-1", "Reference": "[AS-CBP-100]"},
        {"StatusAttributeString": "ERROR", "ValidationErrors": [{"Message": "Invoice not of valid status"}]},
    ]
    read = read_answer(_answer(200, {"Payments": answered}), "Payments", _works(2))
    assert read.elements[0].created[0].xero_id == "p-1"
    assert read.elements[1].refused == ["Invoice not of valid status"]
    assert read.outcomes(2) == ["created", "rejected"]


def test_rate_limits_outages_and_credentials_speak_for_the_whole_call() -> None:
    assert read_answer(_answer(429, {}), "Payments", _works(2)).call == "rate_limited"
    assert read_answer(_answer(503, {}), "Payments", _works(2)).call == "unavailable"
    assert read_answer(_answer(401, {}), "Payments", _works(2)).call == "unauthorised"


def test_a_call_on_one_object_reads_a_404_as_missing_and_a_create_as_a_refusal() -> None:
    missing = _answer(404, {"Message": "Resource not found"})
    assert call_verdict(missing, one_object=True) == MISSING
    assert read_answer(missing, "Payments", _works(1)).elements[0].refused == ["Resource not found"]


def test_a_call_on_one_object_that_cannot_be_read_is_unreadable_not_refused() -> None:
    for answer in (_answer(400, "not json"), _answer(200, {"Message": "done?"})):
        assert read_elements(answer, "Invoices", 1, one_object=True).call == UNREADABLE
    assert read_elements(_answer(400, "not json"), "Invoices", 1).elements[0].refused == ["Xero answered 400"]


def test_a_refused_call_on_one_object_refuses_its_valid_element_with_the_answers_message() -> None:
    answer = _answer(400, {"Message": "Invoice cannot be voided", "Elements": [{"InvoiceID": "i-1"}]})
    assert read_elements(answer, "Invoices", 1, one_object=True).elements[0].refused == ["Invoice cannot be voided"]
    batch = read_elements(answer, "Invoices", 1)
    assert batch.elements[0].refused is None and batch.alone


def test_a_call_on_one_object_answered_with_its_element_is_answered() -> None:
    read = read_elements(_answer(200, {"Invoices": [{"InvoiceID": "i-1", "Status": "VOIDED"}]}), "Invoices", 1, True)
    assert read.elements[0].answered == {"InvoiceID": "i-1", "Status": "VOIDED"}
    assert read.elements[0].refused is None
