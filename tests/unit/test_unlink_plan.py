"""The unlink planner's rules, on plain data (no database, no transport)."""

from __future__ import annotations

from xerolink_common.errors import ErrorCode
from xerolink_poster.domain.records import RecordRef, XeroObjectRef
from xerolink_poster.domain.states import LinkState
from xerolink_poster.domain.unlink_plan import Action, LinkFacts, plan_unlink, refusal, with_other_halves

BILL, PAYMENT, CREDIT, APPLICATION, REFUND = (
    RecordRef(1, 10),
    RecordRef(2, 20),
    RecordRef(3, 30),
    RecordRef(4, 40),
    RecordRef(5, 50),
)
INVOICE = XeroObjectRef(2, "inv-1", "invoice", "INV-10")


def facts(state: LinkState, *objects: XeroObjectRef) -> LinkFacts:
    return LinkFacts(state, objects)


def test_a_document_with_a_linked_payment_is_refused_naming_it_unless_cascading() -> None:
    links = {BILL: facts(LinkState.LINKED, INVOICE), PAYMENT: facts(LinkState.LINKED)}
    dependents = {BILL: [PAYMENT]}

    [refused] = plan_unlink([BILL], links, dependents, cascade=False)
    assert (refused.action, refused.blocked_by) == (Action.REFUSED, [PAYMENT])
    assert refused.error is not None and "client bill payment 20" in refused.error.message

    bill, payment = plan_unlink([BILL], links, dependents, cascade=True)
    assert (bill.action, bill.orphans) == (Action.UNLINK, (INVOICE,))
    assert (payment.action, payment.cascaded_from) == (Action.CASCADE, BILL)


def test_a_selected_payment_does_not_block_its_invoice_and_repeats_count_once() -> None:
    links = {BILL: facts(LinkState.LINKED), PAYMENT: facts(LinkState.LINKED)}
    outcomes = plan_unlink([PAYMENT, BILL, PAYMENT], links, {BILL: [PAYMENT]}, cascade=False)
    assert [(o.record, o.action) for o in outcomes] == [(PAYMENT, Action.UNLINK), (BILL, Action.UNLINK)]
    assert refusal("c", outcomes) is None


def test_cascade_follows_dependents_of_dependents_and_in_flight_ones_refuse() -> None:
    links = {
        BILL: facts(LinkState.LINKED),
        CREDIT: facts(LinkState.LINKED),
        APPLICATION: facts(LinkState.LINKED),
        REFUND: facts(LinkState.PENDING),
    }
    dependents = {BILL: [CREDIT, APPLICATION], CREDIT: [APPLICATION, REFUND]}
    outcomes = plan_unlink([BILL], links, dependents, cascade=True)
    by_record = {o.record: o for o in outcomes}
    assert by_record[APPLICATION].action == Action.CASCADE
    assert (by_record[CREDIT].action, by_record[CREDIT].blocked_by) == (Action.REFUSED, [REFUND])
    err = refusal("c", outcomes)
    assert err is not None and err.code == ErrorCode.FAILED_PRECONDITION and err.reason == "DEPENDENT_IN_PROGRESS"
    assert [v.subject for v in err.precondition_violations] == [
        "connections/c/links/credit-note/30",
        "connections/c/links/credit-note-refund/50",
    ]


def test_waiting_failed_and_unlinked_dependents_hold_nothing_in_xero_and_do_not_block() -> None:
    for dependent_state in (LinkState.WAITING, LinkState.FAILED, LinkState.UNLINKED):
        links = {BILL: facts(LinkState.LINKED), PAYMENT: facts(dependent_state)}
        assert [o.action for o in plan_unlink([BILL], links, {BILL: [PAYMENT]}, cascade=False)] == [Action.UNLINK]


def test_pending_unknown_and_unlinked_records() -> None:
    links = {BILL: facts(LinkState.PENDING), PAYMENT: facts(LinkState.UNLINKED)}
    pending, unlinked, unknown = plan_unlink([BILL, PAYMENT, CREDIT], links, {}, cascade=True)
    assert pending.action == Action.REFUSED and pending.error is not None
    assert pending.error.reason == "POSTING_IN_PROGRESS"
    assert unlinked.action == Action.ALREADY_UNLINKED
    assert unknown.error is not None and unknown.error.reason == "LINK_NOT_FOUND"
    err = refusal("c", [pending, unlinked, unknown])
    assert err is not None and err.reason == "UNLINK_REFUSED" and err.message.startswith("nothing was unlinked")
    only_missing = refusal("c", [unknown])
    assert only_missing is not None and only_missing.code == ErrorCode.NOT_FOUND


PAID_FROM_TRUST = RecordRef(13, 60)
SPEND = XeroObjectRef(4, "spend-1", "trust-spend")


def test_the_other_half_of_a_record_kept_in_two_organisations_follows_its_own_half() -> None:
    links = {BILL: facts(LinkState.LINKED, INVOICE), PAID_FROM_TRUST: facts(LinkState.LINKED)}
    planned = plan_unlink([BILL], links, {BILL: [PAID_FROM_TRUST]}, cascade=True)
    other = {PAID_FROM_TRUST: [("trust", facts(LinkState.LINKED, SPEND))]}

    bill, office, trust = with_other_halves(planned, other)

    assert (bill.record, office.record, trust.record) == (BILL, PAID_FROM_TRUST, PAID_FROM_TRUST)
    assert (trust.action, trust.cascaded_from, trust.connection_id) == (Action.CASCADE, BILL, "trust")
    assert trust.orphans == (SPEND,)


def test_a_pending_other_half_refuses_the_request_naming_its_connection() -> None:
    planned = plan_unlink([PAID_FROM_TRUST], {PAID_FROM_TRUST: facts(LinkState.WAITING)}, {}, cascade=False)
    outcomes = with_other_halves(planned, {PAID_FROM_TRUST: [("trust", facts(LinkState.PENDING, SPEND))]})

    assert [o.action for o in outcomes] == [Action.UNLINK, Action.REFUSED]
    error = refusal("office", outcomes)
    assert error is not None and error.code == ErrorCode.FAILED_PRECONDITION
    assert [v.subject for v in error.precondition_violations] == ["connections/trust/links/invoice-paid-from-trust/60"]
