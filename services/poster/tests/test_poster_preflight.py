"""Preflight rules and backfill progress as plain Python."""

from __future__ import annotations

import dataclasses

import pytest
from xerolink_mapper.domain import support_matrix as sm
from xerolink_mapper.domain.model import Profile as MapperProfile
from xerolink_poster.domain import backfill_progress as bp
from xerolink_poster.domain import preflight as pf
from xerolink_poster.domain.allocation import Discrepancy
from xerolink_poster.domain.states import ConnectionState, LinkState
from xerolink_poster.domain.tax_types import Problem

READY = pf.Facts(
    profile=pf.Profile.COMPATIBLE,
    accounting_method=pf.Method.ACCRUAL,
    multi_currency_database=False,
    general_retainers_configured=False,
    linked_division_id=1,
    division_ids=(1,),
    allocation_discrepancies=(),
    tax_problems=(),
    tax_rates_read=True,
    country_code="NZ",
)
BROKEN_ALLOCATION = Discrepancy("trust_bank", "091", "ACCOUNT_NOT_IN_CHART", "create account 091 in Xero")
FOREIGN_TAX_TYPE = Problem(
    "tax_code_map[GST]", "OUTPUT", "TAX_TYPE_NOT_IN_ORGANISATION", "tax_code_map[GST] is OUTPUT: map it to OUTPUT2"
)
BRANCH = pf.RoutedDivision("branch")
CUT_OFF = pf.RoutedDivision("branch", ConnectionState.DISCONNECTED)
WARNED = pf.Status.WARNING


def _statuses(facts: pf.Facts) -> dict[str, pf.Status]:
    return {c.check: c.status for c in pf.run(facts)}


def test_every_check_names_a_matrix_condition_with_the_profiles_the_matrix_gives_it() -> None:
    profiles = {MapperProfile.ACTIONSTEP_COMPATIBLE: pf.Profile.COMPATIBLE, MapperProfile.EXTENDED: pf.Profile.EXTENDED}
    for check in pf.run(READY):
        if check.check in pf.SETTING_CHECKS:
            assert check.profiles == (pf.Profile.COMPATIBLE, pf.Profile.EXTENDED), check.check
            continue
        condition = sm.CONDITIONS_BY_CODE[check.reason_code]
        assert check.profiles == tuple(profiles[p] for p in condition.profiles), check.check


def test_ready_facts_pass_every_check() -> None:
    assert set(_statuses(READY).values()) == {pf.Status.PASS}
    assert not pf.failed(pf.run(READY))


@pytest.mark.parametrize(
    ("change", "check", "compatible", "extended"),
    [
        ({"accounting_method": pf.Method.CASH}, "ACCOUNTING_METHOD", pf.Status.FAIL, pf.Status.FAIL),
        ({"accounting_method": pf.Method.UNSPECIFIED}, "ACCOUNTING_METHOD", pf.Status.FAIL, pf.Status.FAIL),
        ({"multi_currency_database": True}, "MULTI_CURRENCY_DATABASE", pf.Status.FAIL, pf.Status.WARNING),
        ({"general_retainers_configured": True}, "GENERAL_RETAINERS", pf.Status.FAIL, pf.Status.FAIL),
        ({"division_ids": (1, 2)}, "DIVISIONS", pf.Status.WARNING, pf.Status.WARNING),
        ({"division_ids": (2, 3)}, "DIVISIONS", pf.Status.FAIL, pf.Status.FAIL),
        ({"linked_division_id": 0}, "DIVISIONS", pf.Status.FAIL, pf.Status.FAIL),
        ({"division_ids": None}, "DIVISIONS", pf.Status.WARNING, pf.Status.WARNING),
        ({"allocation_discrepancies": (BROKEN_ALLOCATION,)}, "ACCOUNT_ALLOCATION", pf.Status.FAIL, pf.Status.FAIL),
        ({"allocation_discrepancies": None}, "ACCOUNT_ALLOCATION", pf.Status.WARNING, pf.Status.WARNING),
        ({"tax_problems": (FOREIGN_TAX_TYPE,)}, "TAX_TYPES", pf.Status.FAIL, pf.Status.FAIL),
        ({"tax_rates_read": False}, "TAX_TYPES", pf.Status.WARNING, pf.Status.WARNING),
        ({"connection_state": ConnectionState.DISCONNECTED}, "CONNECTION_STATE", pf.Status.FAIL, pf.Status.FAIL),
        ({"connection_state": ConnectionState.NEEDS_RECONNECT}, "CONNECTION_STATE", pf.Status.FAIL, pf.Status.FAIL),
        # A division routed to its own organisation's connection posts there; one that cannot post
        # there, or is not routed, is a warning.
        ({"division_ids": (1, 2), "routed_divisions": {2: BRANCH}}, "DIVISIONS", pf.Status.PASS, pf.Status.PASS),
        ({"division_ids": (1, 2, 3), "routed_divisions": {2: BRANCH}}, "DIVISIONS", WARNED, WARNED),
        ({"division_ids": (1, 2), "routed_divisions": {2: CUT_OFF}}, "DIVISIONS", WARNED, WARNED),
    ],
)
def test_one_broken_fact_changes_only_its_own_check_in_each_profile(
    change: dict[str, object], check: str, compatible: pf.Status, extended: pf.Status
) -> None:
    for profile, expected in ((pf.Profile.COMPATIBLE, compatible), (pf.Profile.EXTENDED, extended)):
        statuses = _statuses(dataclasses.replace(READY, profile=profile, **change))  # type: ignore[arg-type]
        assert statuses.pop(check) is expected, profile
        assert set(statuses.values()) == {pf.Status.PASS}


def test_every_failure_and_warning_says_what_to_do() -> None:
    broken = dataclasses.replace(
        READY,
        accounting_method=pf.Method.CASH,
        multi_currency_database=True,
        general_retainers_configured=True,
        division_ids=(1, 2),
        allocation_discrepancies=(BROKEN_ALLOCATION,),
        tax_problems=(FOREIGN_TAX_TYPE,),
        connection_state=ConnectionState.DISCONNECTED,
    )
    verbs = ("set ", "remove ", "turn ", "keep ", "choose ", "create ", "map ", "connect ")
    for check in pf.run(broken):
        assert check.status is not pf.Status.PASS
        assert check.reason_code in check.message or check.status is pf.Status.WARNING
        assert any(verb in check.message for verb in verbs), check.check


def test_the_divisions_check_says_where_routed_divisions_post_and_what_stops_them() -> None:
    routed = dataclasses.replace(READY, division_ids=(1, 2), routed_divisions={2: BRANCH})
    [passed] = [c for c in pf.run(routed) if c.check == "DIVISIONS"]
    assert "division(s) 2 ('branch') post under their own" in passed.message
    for state, reason in (
        (ConnectionState.DISCONNECTED, "CONNECTION_DISCONNECTED"),
        (ConnectionState.NEEDS_RECONNECT, "CONNECTION_NEEDS_RECONNECT"),
    ):
        cut_off = dataclasses.replace(routed, routed_divisions={2: pf.RoutedDivision("branch", state)})
        [warned] = [c for c in pf.run(cut_off) if c.check == "DIVISIONS"]
        assert (warned.status, warned.reason_code) == (pf.Status.WARNING, reason)
        assert "division 2" in warned.message and "ConnectOrganisation" in warned.message
    [needs] = [
        c
        for c in pf.run(dataclasses.replace(READY, connection_state=ConnectionState.NEEDS_RECONNECT))
        if c.check == "CONNECTION_STATE"
    ]
    assert needs.reason_code == "CONNECTION_NEEDS_RECONNECT" and "ConnectOrganisation" in needs.message


def test_the_settings_checks_name_each_thing_the_organisation_lacks() -> None:
    second = dataclasses.replace(FOREIGN_TAX_TYPE, setting="untaxed_line_tax_types.trust_money", tax_type="BASEXCLUDED")
    facts = dataclasses.replace(READY, tax_problems=(FOREIGN_TAX_TYPE, second))
    [tax] = [c for c in pf.run(facts) if c.check == "TAX_TYPES"]
    assert "2 tax setting(s) the organisation (NZ) cannot take" in tax.message
    assert FOREIGN_TAX_TYPE.description in tax.message and second.description in tax.message


def _item(bill: int, is_bill: bool, state: LinkState | None, outcome: str = bp.ACCEPTED) -> bp.ItemState:
    return bp.ItemState(bill, is_bill, outcome, state)


def test_a_backfill_is_done_when_nothing_can_still_move() -> None:
    linked = [_item(0, True, LinkState.LINKED), _item(0, False, LinkState.LINKED)]
    assert bp.progress(linked).done
    waiting_on_pending = [_item(0, True, LinkState.PENDING), _item(0, False, LinkState.WAITING)]
    assert not bp.progress(waiting_on_pending).done
    waiting_on_failed = [_item(0, True, LinkState.FAILED), _item(0, False, LinkState.WAITING)]
    progress = bp.progress(waiting_on_failed)
    assert progress.done and (progress.failed, progress.waiting) == (1, 1)
    refused = [_item(0, True, None, bp.REFUSED), _item(0, False, None, bp.REFUSED)]
    assert bp.progress(refused).done and bp.progress(refused).refused == 2


def test_progress_counts_add_up() -> None:
    items = [
        _item(0, True, LinkState.LINKED, bp.ALREADY_DONE),
        _item(0, False, LinkState.PENDING),
        _item(1, True, LinkState.FAILED),
        _item(2, True, None, bp.REFUSED),
    ]
    p = bp.progress(items)
    assert p.total == p.accepted + p.already_done + p.refused == 4
    assert p.accepted + p.already_done == p.pending + p.waiting + p.linked + p.failed + p.unlinked
