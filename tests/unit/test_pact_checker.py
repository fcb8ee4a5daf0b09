"""The pact checker itself must fail when a provider drops or changes a field a consumer reads."""

from __future__ import annotations

from tests.contract.pact import check

RESPONSE = {
    "decision": {"supported": True, "reason_code": "SUPPORTED"},
    "operations": [{"invoice": {"line_items": [{"account_code": "200"}, {"account_code": ""}]}}],
}


def test_a_matching_response_has_no_problems() -> None:
    assert check(RESPONSE, [{"path": "decision.supported", "equals": True}]) == []


def test_a_changed_value_is_reported() -> None:
    assert check(RESPONSE, [{"path": "decision.reason_code", "equals": "OTHER"}]) == [
        "decision.reason_code: expected 'OTHER', got 'SUPPORTED'"
    ]


def test_a_missing_field_is_reported() -> None:
    problems = check(RESPONSE, [{"path": "operations[0].payment.amount", "present": True}])
    assert problems == ["operations[0].payment.amount: missing (operations[0].payment)"]


def test_every_element_is_checked_and_an_empty_one_is_caught() -> None:
    problems = check(RESPONSE, [{"path": "operations[0].invoice.line_items[*].account_code", "present": True}])
    assert problems == ["operations[0].invoice.line_items[1].account_code: expected a value, got ''"]


def test_a_wildcard_over_an_empty_list_fails_rather_than_passing_vacuously() -> None:
    problems = check({"operations": []}, [{"path": "operations[*].local_ref", "present": True}])
    assert problems == ["operations[*].local_ref: missing (operations is empty)"]


def test_patterns_must_match_whole_values() -> None:
    assert check(RESPONSE, [{"path": "decision.reason_code", "matches": "SUPP"}]) != []
    assert check(RESPONSE, [{"path": "decision.reason_code", "matches": "^[A-Z_]+$"}]) == []
