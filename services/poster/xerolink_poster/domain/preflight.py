"""Preflight: the Xero integration's prerequisites, checked against a connection's Actionstep facts
before anything is posted (Actionstep's "Before You Integrate with Xero" and "Limitations").

A check FAILS when the mapper would refuse every transaction of the connection for that reason,
when a setting of the connection names something the Xero organisation does not have (an
allocated account, a tax type), or when the connection cannot post at all (disconnected, or
waiting to be connected again), and WARNS when only some transactions are refused (each still
gets the mapper's own decision) or when the Xero facts to check against were never read.
The profiles each condition applies in follow the support matrix (docs/support-matrix.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from xerolink_common.reasons import Reason

from xerolink_poster.domain.allocation import Discrepancy
from xerolink_poster.domain.states import ConnectionState
from xerolink_poster.domain.tax_types import Problem


class Profile(StrEnum):
    COMPATIBLE = "actionstep-compatible"
    EXTENDED = "extended"


class Method(StrEnum):
    UNSPECIFIED = "unspecified"
    ACCRUAL = "accrual"
    CASH = "cash"


class Status(StrEnum):
    PASS = "pass"
    WARNING = "warning"
    FAIL = "fail"


BOTH = (Profile.COMPATIBLE, Profile.EXTENDED)

# check -> (the matrix condition it is about, or for SETTING_CHECKS the reason its failures
# carry; the profiles it applies in).
CHECKS: dict[str, tuple[str, tuple[Profile, ...]]] = {
    "ACCOUNTING_METHOD": ("CASH_ACCOUNTING", BOTH),
    "MULTI_CURRENCY_DATABASE": ("MULTI_CURRENCY_DATABASE", (Profile.COMPATIBLE,)),
    "GENERAL_RETAINERS": ("GENERAL_RETAINERS_CONFIGURED", BOTH),
    "DIVISIONS": ("OTHER_DIVISION", BOTH),
    "ACCOUNT_ALLOCATION": (Reason.ACCOUNT_ALLOCATION_BROKEN, BOTH),
    "TAX_TYPES": (Reason.TAX_TYPE_NOT_IN_ORGANISATION, BOTH),
    # Last, so the checks before it keep their places in the answer.
    "CONNECTION_STATE": (Reason.CONNECTION_DISCONNECTED, BOTH),
}
# Checks of the connection itself (its settings against the Xero organisation, its state) rather
# than of a support matrix condition.
SETTING_CHECKS = frozenset({"ACCOUNT_ALLOCATION", "TAX_TYPES", "CONNECTION_STATE"})


@dataclass(frozen=True)
class RoutedDivision:
    """A division the connection posts under its own organisation's connection
    (ConnectionRouting.division_connections), and that connection's state."""

    connection_id: str
    state: str = ConnectionState.CONNECTED


@dataclass(frozen=True)
class Facts:
    """What the connection knows about the Actionstep organisation."""

    profile: Profile
    accounting_method: Method
    multi_currency_database: bool
    general_retainers_configured: bool
    linked_division_id: int
    # Every division of the organisation; None when the caller did not send them.
    division_ids: tuple[int, ...] | None = None
    # What the Xero organisation lacks of the connection's allocation and tax types (checked
    # against its chart and TaxRates read when it was connected); None: never read.
    allocation_discrepancies: tuple[Discrepancy, ...] | None = None
    tax_problems: tuple[Problem, ...] = ()
    # Whether the organisation's tax rates were read (without them only unset settings are found).
    tax_rates_read: bool = False
    # The organisation's CountryCode, named in messages.
    country_code: str = ""
    # The connection's state (ConnectionState): only a connected one gets anything into Xero.
    connection_state: str = ConnectionState.CONNECTED
    # The divisions the connection routes to their own organisations' connections, by division id.
    routed_divisions: Mapping[int, RoutedDivision] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    check: str
    status: Status
    reason_code: str
    profiles: tuple[Profile, ...]
    message: str


def _check(name: str, status: Status, message: str, reason_code: str = "") -> Check:
    """The check's result; `reason_code` when its refusals carry another reason than CHECKS gives."""
    default, profiles = CHECKS[name]
    return Check(name, status, reason_code or default, profiles, message)


def accounting_method(facts: Facts) -> Check:
    if facts.accounting_method is Method.ACCRUAL:
        return _check("ACCOUNTING_METHOD", Status.PASS, "The Actionstep database uses the accrual accounting method.")
    if facts.accounting_method is Method.CASH:
        return _check(
            "ACCOUNTING_METHOD",
            Status.FAIL,
            "The Actionstep database uses the cash accounting method, so every transaction is refused "
            "(CASH_ACCOUNTING); set the accounting method to accrual in Actionstep so invoices reach Xero "
            "before they are paid, then update the connection.",
        )
    return _check(
        "ACCOUNTING_METHOD",
        Status.FAIL,
        "The connection does not say which accounting method the Actionstep database uses, so nothing "
        "can be mapped; read it from the division's settings and set the connection's accounting method "
        "(accrual is required).",
    )


def multi_currency(facts: Facts) -> Check:
    if not facts.multi_currency_database:
        return _check("MULTI_CURRENCY_DATABASE", Status.PASS, "The Actionstep database uses a single currency.")
    if facts.profile is Profile.COMPATIBLE:
        return _check(
            "MULTI_CURRENCY_DATABASE",
            Status.FAIL,
            "The Actionstep database uses multiple currencies, which Actionstep's Xero integration does not "
            "support, so every transaction is refused (MULTI_CURRENCY_DATABASE); turn multi-currency off in "
            "Actionstep, or choose the extended profile to post foreign-currency documents with their rate.",
        )
    return _check(
        "MULTI_CURRENCY_DATABASE",
        Status.WARNING,
        "The Actionstep database uses multiple currencies: the extended profile posts foreign-currency "
        "documents and their payments only with their currency rate, and refuses foreign-currency journals, "
        "transfers, funds and trust movements (trust receipts, payments, interest, invoices paid from trust), "
        "bank deposits and withdrawals (FOREIGN_CURRENCY_NOT_REPRESENTABLE); send the rate with each "
        "foreign-currency transaction.",
    )


def general_retainers(facts: Facts) -> Check:
    if not facts.general_retainers_configured:
        return _check("GENERAL_RETAINERS", Status.PASS, "General retainers are not configured in Actionstep.")
    return _check(
        "GENERAL_RETAINERS",
        Status.FAIL,
        "General retainers are configured in Actionstep, which the Xero integration does not support, so "
        "every transaction is refused (GENERAL_RETAINERS_CONFIGURED); remove the retainer balances from the "
        "matters and unconfigure general retainers, then update the connection.",
    )


def divisions(facts: Facts) -> Check:
    linked = facts.linked_division_id
    if linked <= 0:
        return _check(
            "DIVISIONS",
            Status.FAIL,
            "The connection has no linked division; set it to the Actionstep division that posts to this "
            "Xero organisation (transactions of any other division are refused as OTHER_DIVISION).",
        )
    if facts.division_ids is None:
        return _check(
            "DIVISIONS",
            Status.WARNING,
            f"Division {linked} is linked but the organisation's divisions were not sent, so this was not "
            "checked; send every division id (Actionstep's divisions resource) with the preflight.",
        )
    if linked not in facts.division_ids:
        return _check(
            "DIVISIONS",
            Status.FAIL,
            f"The linked division {linked} is not one of the organisation's divisions "
            f"({_ids(facts.division_ids)}), so every transaction is refused (OTHER_DIVISION); link the "
            "division that posts to this Xero organisation.",
        )
    # Divisions routed to their own organisations' connections post there (division_connections).
    routed = {d: r for d, r in facts.routed_divisions.items() if d in facts.division_ids and d != linked}
    others = sorted(set(facts.division_ids) - {linked} - set(routed))
    posted = f" and division(s) {_routes(routed)} post under their own organisations' connections" if routed else ""
    waiting = _cut_off(routed)
    if others:
        return _check(
            "DIVISIONS",
            Status.WARNING,
            f"The organisation has {len(others) + len(routed) + 1} divisions and the Xero integration supports "
            f"a single one: only division {linked}{posted} is posted and transactions of division(s) "
            f"{_ids(others)} are refused (OTHER_DIVISION); keep them out of Xero, or merge them into the linked "
            f"division in Actionstep{f'; {waiting}' if waiting else ''}.",
        )
    if waiting:
        disconnected = any(r.state == ConnectionState.DISCONNECTED for r in routed.values())
        return _check(
            "DIVISIONS",
            Status.WARNING,
            f"Division {linked} is linked{posted}, but {waiting}.",
            Reason.CONNECTION_DISCONNECTED if disconnected else Reason.CONNECTION_NEEDS_RECONNECT,
        )
    if routed:
        return _check("DIVISIONS", Status.PASS, f"Division {linked} is linked to this organisation{posted}.")
    return _check("DIVISIONS", Status.PASS, f"The organisation has a single division ({linked}), linked to Xero.")


def _routes(routed: Mapping[int, RoutedDivision]) -> str:
    return ", ".join(f"{d} ({r.connection_id!r})" for d, r in sorted(routed.items()))


def _cut_off(routed: Mapping[int, RoutedDivision]) -> str:
    """What becomes of the transactions of divisions routed to a connection that cannot post, and
    what to do; "" when every such connection is connected."""
    said = []
    for division, to in sorted(routed.items()):
        if to.state == ConnectionState.DISCONNECTED:
            said.append(
                f"transactions of division {division} are refused while connection {to.connection_id!r} is "
                "disconnected (CONNECTION_DISCONNECTED)"
            )
        elif to.state == ConnectionState.NEEDS_RECONNECT:
            said.append(
                f"transactions of division {division} wait, reaching no Xero organisation, while connection "
                f"{to.connection_id!r} needs to be connected again (CONNECTION_NEEDS_RECONNECT)"
            )
    return "; ".join([*said, "connect their organisations again with ConnectOrganisation"]) if said else ""


def account_allocation(facts: Facts) -> Check:
    broken = facts.allocation_discrepancies
    if broken is None:
        return _check(
            "ACCOUNT_ALLOCATION",
            Status.WARNING,
            "The organisation's chart was never read, so the account allocation was not checked against it; "
            "connect the organisation with ConnectOrganisation, or refresh the chart with "
            "GetAllocationDiscrepancies.",
        )
    if broken:
        listed = "; ".join(d.description for d in broken)
        return _check(
            "ACCOUNT_ALLOCATION",
            Status.FAIL,
            f"{len(broken)} allocated account(s) the chart cannot take, so every post is refused: {listed} "
            "(ACCOUNT_ALLOCATION_BROKEN).",
        )
    return _check("ACCOUNT_ALLOCATION", Status.PASS, "Every allocated account is an active account of the chart.")


def tax_types(facts: Facts) -> Check:
    found = facts.tax_problems
    where = f" ({facts.country_code})" if facts.country_code else ""
    if found:
        listed = "; ".join(p.description for p in found)
        return _check(
            "TAX_TYPES",
            Status.FAIL,
            # The settings first: a violation quoting this message is cut short.
            f"{len(found)} tax setting(s) the organisation{where} cannot take, so transactions using them are "
            f"refused: {listed} (TAX_TYPE_NOT_IN_ORGANISATION).",
        )
    if not facts.tax_rates_read:
        return _check(
            "TAX_TYPES",
            Status.WARNING,
            "The organisation's tax rates were never read, so the tax types were not checked against them; "
            "connect the organisation with ConnectOrganisation.",
        )
    return _check(
        "TAX_TYPES",
        Status.PASS,
        f"Every Actionstep tax code and every line without one maps to an active tax rate of the organisation{where}.",
    )


def connection_state(facts: Facts) -> Check:
    if facts.connection_state == ConnectionState.DISCONNECTED:
        return _check(
            "CONNECTION_STATE",
            Status.FAIL,
            "The connection is disconnected, so every post is refused (CONNECTION_DISCONNECTED); connect the "
            "organisation again with ConnectOrganisation, then run the preflight again.",
        )
    if facts.connection_state == ConnectionState.NEEDS_RECONNECT:
        return _check(
            "CONNECTION_STATE",
            Status.FAIL,
            "Xero no longer accepts the connection's tokens (GetConnection's last_error says why), so nothing "
            "reaches Xero: posts are accepted but wait (CONNECTION_NEEDS_RECONNECT); connect the organisation "
            "again with ConnectOrganisation, then run the preflight again.",
            Reason.CONNECTION_NEEDS_RECONNECT,
        )
    return _check("CONNECTION_STATE", Status.PASS, "The connection is connected to its Xero organisation.")


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids) or "none"


def run(facts: Facts) -> list[Check]:
    """Every check, in a fixed order."""
    return [
        accounting_method(facts),
        multi_currency(facts),
        general_retainers(facts),
        divisions(facts),
        account_allocation(facts),
        tax_types(facts),
        connection_state(facts),
    ]


def failed(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.status is Status.FAIL]
