"""The plain rules of holds on drifted documents (domain/drift_holds.py) and how a document's
correction plan treats a payment held on its drift (domain/correction_plans.py)."""

from __future__ import annotations

from xerolink.actionstep.v1 import common_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.domain import drift_holds as rules
from xerolink_poster.domain.correction_plans import plan_document
from xerolink_poster.domain.corrections import Intent, LinkFacts, XeroDocument
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import LinkState


def test_paid_voided_deleted_unapproved_and_part_paid_in_xero_documents_block_payments() -> None:
    # Money applied in Xero that xerolink did not make may be the very money a payment brings.
    for kind in ("PAID_IN_XERO", "VOIDED_IN_XERO", "DELETED_IN_XERO", "ALLOCATION_ADDED_IN_XERO"):
        assert rules.blocks_payment(kind, [])
    drafted = [{"field": "Status", "posted": "AUTHORISED", "xero": "DRAFT"}]
    assert rules.blocks_payment("STATUS_CHANGED", drafted)
    assert not rules.blocks_payment("STATUS_CHANGED", [{"field": "Status", "posted": "DRAFT", "xero": "AUTHORISED"}])
    for kind in ("DATE_CHANGED", "AMOUNT_CHANGED", "PAYMENT_DELETED_IN_XERO"):
        assert not rules.blocks_payment(kind, drafted)


def test_xeros_refusals_over_the_documents_state_are_recognised_and_others_are_not() -> None:
    assert rules.refused_for_document(["Payments can only be made against Authorised documents"])
    assert rules.refused_for_document(["x", "The payment amount exceeds the amount outstanding on this document"])
    assert rules.refused_for_document(["Invoice not of valid status for modification"])
    assert not rules.refused_for_document(["Account code '999' is not a valid code for this document."])
    assert not rules.refused_for_document([])


def test_sentences_say_what_happened_name_the_drift_and_what_to_do() -> None:
    name = rules.drift_name("firm-1", 7)
    held = rules.hold_message("VOIDED_IN_XERO", "invoice INV-0042", name)
    assert held.startswith("invoice INV-0042 was voided in Xero (connections/firm-1/drifts/7)")
    assert "not sent to Xero" in held and f"xerolink drift resolve {name} --accept-xero" in held
    accepted = rules.accepted_message("PAID_IN_XERO", "invoice INV-0042", name)
    assert accepted.startswith("Xero's version was accepted (connections/firm-1/drifts/7: invoice INV-0042 was paid")
    assert "delete this record in Actionstep" in accepted
    # Accepting another drift of the document accepts all of it: the sentence explains the one
    # that keeps the document from taking the record.
    dated = rules.drift_name("firm-1", 8)
    via = rules.accepted_message("PAID_IN_XERO", "invoice INV-0042", name, accepted=dated)
    assert f"({dated})" in via and f"including {name}" in via and "already paid in Xero" in via
    applied = rules.hold_message("ALLOCATION_ADDED_IN_XERO", "invoice INV-0042", name)
    assert "money applied in Xero that xerolink did not make" in applied and "--corrected" in applied
    stands = rules.accepted_message("ALLOCATION_ADDED_IN_XERO", "invoice INV-0042", name)
    assert "stands for this record" in stands and "post this record again" in stands


def test_an_accepted_deletion_is_no_longer_expected_on_its_document() -> None:
    assert rules.gone(None) and rules.gone({"Status": "VOIDED"}) and rules.gone({"IsDeleted": True})
    assert not rules.gone({"Status": "PAID"})
    document = {"Status": "PAID", "Payments": [{"PaymentID": "p-1", "Amount": "5.00"}, {"PaymentID": "p-2"}]}
    kept = rules.without_entry(document, "Payments", "PaymentID", "P-1")
    assert kept["Payments"] == [{"PaymentID": "p-2"}]
    assert document["Payments"] != kept["Payments"]  # the snapshot read is not changed in place


def test_a_payment_held_on_its_documents_drift_is_noted_and_does_not_block_the_correction() -> None:
    bill = RecordRef(common_pb2.TRANSACTION_KIND_CLIENT_BILL, 1)
    invoice = XeroObjectRef(xero_pb2.OBJECT_TYPE_INVOICE, "inv-1", "invoice", "INV-0001")
    target = LinkFacts(bill, LinkState.LINKED, (invoice,))
    payment = RecordRef(common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT, 2)
    held = LinkFacts(payment, LinkState.WAITING, (), held=True)
    waiting = LinkFacts(payment, LinkState.WAITING, ())

    plan = plan_document(target, Intent.EDIT, XeroDocument("VOIDED"), [held], {})
    assert plan.blockers == ()
    assert any("is held, not in Xero" in note for note in plan.notes)
    assert plan_document(target, Intent.EDIT, XeroDocument("VOIDED"), [waiting], {}).blockers
