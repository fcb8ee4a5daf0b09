"""The account allocation (function -> Xero account code) checked against an organisation's chart,
and the organisation facts worth a warning. Pure: no gRPC, no SQL.

The seed: "The first connected Xero account will write these accounts to Actionstep. Replacing
the Xero account will not overwrite the accounts, creating a discrepancy" — so a replacement
organisation keeps the allocation and every allocated code its chart lacks is reported here,
before posting, instead of as a Xero 400 later."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xerolink_common.allocation_functions import AllocationFunction
from xerolink_common.reasons import Reason

# The allocation functions the mapper reads (described in docs/support-matrix.md).
FUNCTIONS = frozenset(AllocationFunction)


@dataclass(frozen=True)
class ChartEntry:
    code: str
    name: str
    status: str


@dataclass(frozen=True)
class Discrepancy:
    function: str
    account_code: str
    problem: str
    description: str


def discrepancies(allocation: Mapping[str, str], chart: Iterable[ChartEntry]) -> list[Discrepancy]:
    """Every allocated code the chart lacks or has archived, by function. An empty chart means
    none was read (a connection registered without one): nothing can be checked."""
    by_code = {entry.code: entry for entry in chart}
    if not by_code:
        return []
    found: list[Discrepancy] = []
    for function, code in sorted(allocation.items()):
        if not code:
            continue
        entry = by_code.get(code)
        if entry is None:
            found.append(
                Discrepancy(
                    function,
                    code,
                    Reason.ACCOUNT_NOT_IN_CHART,
                    f"{function!r} is allocated account {code}, which the connected Xero organisation's chart "
                    f"does not have: create account {code} in Xero, or re-map {function!r} with RemapAccounts",
                )
            )
        elif entry.status.upper() == "ARCHIVED":
            found.append(
                Discrepancy(
                    function,
                    code,
                    Reason.ACCOUNT_ARCHIVED,
                    f"{function!r} is allocated account {code} {entry.name!r}, which is archived in Xero: restore it, "
                    f"or re-map {function!r} with RemapAccounts",
                )
            )
    return found


def remap_problems(changes: Mapping[str, str], chart: Iterable[ChartEntry]) -> dict[str, str]:
    """Function -> why its new code cannot be allocated (a re-map must name a usable account)."""
    by_code = {entry.code: entry for entry in chart}
    problems: dict[str, str] = {}
    for function, code in changes.items():
        if function not in FUNCTIONS:
            problems[function] = f"not an allocation function: one of {', '.join(sorted(FUNCTIONS))}"
        elif not code:
            problems[function] = "a Xero account code of the organisation's chart"
        elif by_code and code not in by_code:
            problems[function] = f"account {code} is not in the organisation's chart; choose one of its codes"
        elif by_code and by_code[code].status.upper() == "ARCHIVED":
            problems[function] = f"account {code} is archived in Xero; restore it or choose an active account"
    return problems


@dataclass(frozen=True)
class Warning:
    code: str
    message: str


def organisation_warnings(
    demo_company: bool, organisation_class: str, base_currency: str, expected_currency: str
) -> list[Warning]:
    """What an operator must know about the organisation; none of it refuses the connection."""
    warnings: list[Warning] = []
    if demo_company or organisation_class.upper() == "DEMO":
        warnings.append(
            Warning(
                "DEMO_COMPANY",
                "this is Xero's demo company: it resets about monthly with a new tenant id, losing everything posted; "
                "connect a real organisation before posting real work",
            )
        )
    elif organisation_class.upper() == "TRIAL":
        warnings.append(
            Warning(
                "TRIAL_ORGANISATION",
                "this is a Xero trial organisation: do not connect a trial to a system that will later need a live "
                "Xero organisation (if the trial lapses the connection cannot move); subscribe first",
            )
        )
    if expected_currency and base_currency and expected_currency.upper() != base_currency.upper():
        warnings.append(
            Warning(
                "BASE_CURRENCY_DIFFERS",
                f"the organisation's base currency is {base_currency}, the connection was set up for "
                f"{expected_currency}: transactions in {expected_currency} will be refused as foreign currency",
            )
        )
    return warnings
