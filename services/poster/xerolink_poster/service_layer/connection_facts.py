"""What a connection row says: its mapping context and chart, whether it can take posts, and
the organisation facts and chart read from Xero when it connects."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from google.protobuf import timestamp_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import PreconditionViolation, failed_precondition
from xerolink_common.reasons import Reason

from xerolink_poster.adapters.tables import ConnectionRow
from xerolink_poster.domain import allocation, tax_types
from xerolink_poster.domain.states import ConnectionState


def context_of(row: ConnectionRow) -> mapper_pb2.MappingContext:
    context = mapper_pb2.MappingContext()
    context.ParseFromString(row.mapping_context)
    return context


def chart_entries(context: mapper_pb2.MappingContext) -> list[allocation.ChartEntry]:
    return [allocation.ChartEntry(a.code, a.name, a.status) for a in context.chart]


def allocation_discrepancies(context: mapper_pb2.MappingContext) -> list[allocation.Discrepancy]:
    return allocation.discrepancies(dict(context.account_allocation), chart_entries(context))


def tax_rate_entries(context: mapper_pb2.MappingContext) -> dict[str, tax_types.Rate]:
    return {r.tax_type: tax_types.Rate(r.tax_type, r.name, r.status, r.effective_rate) for r in context.tax_rates}


def untaxed_of(context: mapper_pb2.MappingContext) -> dict[str, str]:
    return {name: getattr(context.untaxed_line_tax_types, name) for name in tax_types.UNTAXED_FIELDS}


def tax_problems(context: mapper_pb2.MappingContext, country: str) -> list[tax_types.Problem]:
    return tax_types.problems(
        dict(context.tax_code_map),
        dict(context.purchase_tax_code_map),
        untaxed_of(context),
        tax_rate_entries(context),
        country,
    )


def set_tax_rates(
    context: mapper_pb2.MappingContext,
    rates: list[dict[str, Any]],
    country: str,
    held: frozenset[str] = frozenset(),
) -> None:
    """Stores the organisation's tax rates in the context (the mapper checks every line's tax type
    against them) and fills each empty tax type for lines without a tax code with the country's
    default, when the organisation has that rate active; the `held` settings (waiting to be mapped
    again, TAX_RATE_CHANGED) stay empty."""
    del context.tax_rates[:]
    context.tax_rates.extend(
        mapper_pb2.TaxRate(
            tax_type=str(rate.get("TaxType") or ""),
            name=str(rate.get("Name") or ""),
            status=str(rate.get("Status") or ""),
            effective_rate=_decimal_text(rate.get("EffectiveRate")),
            account_classes=[c for flag, c in _CLASS_FLAGS if rate.get(flag) is True],
        )
        for rate in rates
        if rate.get("TaxType")
    )
    filled = tax_types.fill_untaxed(untaxed_of(context), country, tax_rate_entries(context))
    for name, value in filled.items():
        if f"untaxed_line_tax_types.{name}" not in held:
            setattr(context.untaxed_line_tax_types, name, value)


def held_settings(row: ConnectionRow) -> frozenset[str]:
    """The settings a replacement organisation cleared (TAX_RATE_CHANGED) and nobody mapped again."""
    context = context_of(row)
    empty = [s for s, t in settings_of(context).items() if not t]
    return frozenset(
        setting
        for w in organisation_facts(row).get("warnings") or []
        if w.get("code") == "TAX_RATE_CHANGED"
        for setting in empty
        if str(w.get("message", "")).startswith(f"{setting} was ")
    )


# TaxRate's CanApplyTo* flags and the account Class each allows (Xero's OpenAPI, schemas TaxRate, Account).
_CLASS_FLAGS = (
    ("CanApplyToAssets", "ASSET"),
    ("CanApplyToEquity", "EQUITY"),
    ("CanApplyToExpenses", "EXPENSE"),
    ("CanApplyToLiabilities", "LIABILITY"),
    ("CanApplyToRevenue", "REVENUE"),
)


def _decimal_text(value: Any) -> str:
    """Xero's EffectiveRate (a JSON number, read as Decimal) as text; empty when missing or not a number."""
    try:
        return str(Decimal(str(value))) if value is not None and not isinstance(value, bool) else ""
    except ArithmeticError:
        return ""


def settings_of(context: mapper_pb2.MappingContext) -> dict[str, str]:
    """Every tax setting of the context (setting -> tax type), named as tax_types.Problem names them."""
    return {
        **{f"tax_code_map[{c}]": t for c, t in context.tax_code_map.items()},
        **{f"purchase_tax_code_map[{c}]": t for c, t in context.purchase_tax_code_map.items()},
        **{f"untaxed_line_tax_types.{n}": t for n, t in untaxed_of(context).items()},
    }


def clear_setting(context: mapper_pb2.MappingContext, setting: str) -> None:
    for prefix, field in (
        ("tax_code_map[", context.tax_code_map),
        ("purchase_tax_code_map[", context.purchase_tax_code_map),
    ):
        if setting.startswith(prefix):
            field[setting[len(prefix) : -1]] = ""
            return
    setattr(context.untaxed_line_tax_types, setting.removeprefix("untaxed_line_tax_types."), "")


# The warning codes tax_warnings derives from a connection's settings each time it is read.
LIVE_TAX_WARNINGS = frozenset(
    {Reason.TAX_TYPE_NOT_IN_ORGANISATION, Reason.UNTAXED_TAX_TYPE_NOT_MAPPED, Reason.TAX_CODE_NOT_MAPPED}
)


def tax_warnings(context: mapper_pb2.MappingContext, country: str) -> list[allocation.Warning]:
    """A warning per tax type the connection names that the organisation cannot take: the
    transactions that use it are refused (FAILED_PRECONDITION) until it is mapped again."""
    return [allocation.Warning(p.problem, p.description) for p in tax_problems(context, country)]


def check_postable(row: ConnectionRow) -> None:
    """Refuses a post, before anything is queued, when the connection is disconnected or its
    allocation names accounts the organisation's chart lacks."""
    if row.state == ConnectionState.DISCONNECTED:
        raise failed_precondition(
            Reason.CONNECTION_DISCONNECTED,
            f"connection {row.connection_id!r} is disconnected; connect the organisation again with "
            "ConnectOrganisation before posting",
            [
                PreconditionViolation(
                    "CONNECTION_STATE", f"connections/{row.connection_id}", ConnectionState.DISCONNECTED
                )
            ],
        )
    broken = allocation_discrepancies(context_of(row))
    if broken:
        codes = ", ".join(f"{d.function}={d.account_code}" for d in broken)
        raise failed_precondition(
            Reason.ACCOUNT_ALLOCATION_BROKEN,
            f"the account allocation names accounts the Xero organisation cannot take ({codes}); re-map them with "
            "RemapAccounts (GetAllocationDiscrepancies lists them) or fix the chart in Xero",
            [PreconditionViolation(d.problem, d.account_code, d.description) for d in broken],
        )


def organisation_facts(row: ConnectionRow) -> dict[str, Any]:
    try:
        facts = json.loads(row.organisation or "{}")
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


def chart_from_accounts(accounts: list[dict[str, Any]]) -> list[mapper_pb2.ChartAccount]:
    """Xero's Accounts as the mapper's chart; accounts without a code cannot be allocated."""
    chart = []
    for account in accounts:
        code = str(account.get("Code") or "")
        if not code:
            continue
        kind = str(account.get("Type") or "")
        chart.append(
            mapper_pb2.ChartAccount(
                code=code,
                name=str(account.get("Name") or ""),
                type=kind,
                status=str(account.get("Status") or "ACTIVE"),
                tax_type=str(account.get("TaxType") or ""),
                enable_payments=kind == "BANK" or bool(account.get("EnablePaymentsToAccount")),
                account_class=str(account.get("Class") or ""),
            )
        )
    return chart


def timestamp_of(us: int) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(us)
    return ts


def tenant_list(tenants: list[dict[str, Any]]) -> str:
    return ", ".join(f"{t.get('tenantName', '?')} ({t.get('tenantId', '?')})" for t in tenants) or "none"
