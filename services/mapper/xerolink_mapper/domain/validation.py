"""Checks shared by every kind: the context, the header, money fields, dates and rates."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from xerolink_common.money import CURRENCY_CODES, ISO_4217
from xerolink_common.reasons import Reason

from xerolink_mapper.domain.model import AccountingMethod, Amount, Header, Ledgers, MappingContext, Profile
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.xero_fields import TRACKING_CATEGORY_NAME_LENGTH

# Dates outside this range are typing mistakes (a year 0025 or 2502), not accounting.
EARLIEST_YEAR = 1970
LATEST_YEAR = 2099
# 10 billion in cents: larger amounts are a unit mistake (cents sent as thousandths...).
MAX_CENTS = 1_000_000_000_000
# A rate as Actionstep writes it: ASCII digits and a point. Decimal() also reads other scripts'
# digits, "_" between digits and whitespace, and the text goes to Xero as it came: "0_65" is 65.
PLAIN_RATE = re.compile(r"[0-9]+(\.[0-9]+)?")
RATE_DECIMALS = 6  # the decimal places Xero keeps of a currency rate


def check_context(ctx: MappingContext, problems: Problems) -> None:
    if ctx.connected_at is not None and not EARLIEST_YEAR <= ctx.connected_at.year <= LATEST_YEAR:
        problems.field("context.connected_at", f"{ctx.connected_at.isoformat()} is not a plausible connection time")
    if ctx.connected_at is None:
        problems.precondition(
            Reason.CONNECTION_NOT_READY,
            "context.connected_at",
            "the connection has no connected_at: set when the integration was connected so pre-integration "
            "transactions can be told apart",
        )
    if not ISO_4217.fullmatch(ctx.base_currency_code):
        problems.precondition(
            Reason.CONNECTION_NOT_READY,
            "context.base_currency_code",
            "the connection has no base currency: set the Xero organisation's BaseCurrency (ISO-4217, e.g. AUD)",
        )
    if ctx.accounting_method is AccountingMethod.UNSPECIFIED:
        problems.precondition(
            Reason.CONNECTION_NOT_READY,
            "context.accounting_method",
            "the Actionstep accounting method is unknown: set ACCRUAL or CASH from the division's settings",
        )
    check_options(ctx, problems)


def check_options(ctx: MappingContext, problems: Problems) -> None:
    """The extended profile's options (reports by matter, an office or trust organisation) are a
    connection's settings: without that profile, or out of Xero's bounds, the connection is wrong."""
    tracking = ctx.matter_tracking
    if tracking.enabled and ctx.profile is not Profile.EXTENDED:
        problems.precondition(
            Reason.MAPPING_NOT_CONFIGURED,
            "context.matter_tracking",
            "reports by matter are available in the extended profile only: choose the extended profile for the "
            "connection, or turn matter tracking off",
        )
    if len(tracking.category_name) > TRACKING_CATEGORY_NAME_LENGTH:
        problems.precondition(
            Reason.MAPPING_NOT_CONFIGURED,
            "context.matter_tracking.category_name",
            f"the matter tracking category's name is {len(tracking.category_name)} characters; a Xero tracking "
            f"category's name takes at most {TRACKING_CATEGORY_NAME_LENGTH}",
        )
    if ctx.ledgers in (Ledgers.OFFICE, Ledgers.TRUST) and ctx.profile is not Profile.EXTENDED:
        problems.precondition(
            Reason.MAPPING_NOT_CONFIGURED,
            "context.ledgers",
            f"an organisation that keeps the {ctx.ledgers.value} ledger only is available in the extended profile "
            "only: choose the extended profile for the connection, or keep office and trust in one organisation",
        )


def check_date(value: date | None, path: str, problems: Problems, required: bool = True) -> date | None:
    if value is None:
        if required:
            problems.field(path, "is required: send the calendar date (year, month, day)")
        return None
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        problems.field(
            path,
            f"{value.isoformat()} is not a plausible accounting date (years {EARLIEST_YEAR}-"
            f"{LATEST_YEAR}); correct the year",
        )
        return None
    return value


def check_header(header: Header, ctx: MappingContext, problems: Problems) -> None:
    path = "transaction.header"
    if header.id <= 0:
        problems.field(f"{path}.id", "must be the Actionstep record id (a positive integer)")
    if header.posted_at is None:
        problems.field(f"{path}.posted_at", "is required: send when the transaction was posted in Actionstep")
    elif not EARLIEST_YEAR <= header.posted_at.year <= LATEST_YEAR:
        problems.field(f"{path}.posted_at", f"{header.posted_at.isoformat()} is not a plausible posting time")
    check_date(header.transaction_date, f"{path}.transaction_date", problems)
    code = header.currency_code
    if code not in CURRENCY_CODES:
        problems.field(f"{path}.currency_code", f"{code!r} is not an ISO-4217 code Xero knows: send e.g. 'AUD'")
    check_rate(header, ctx, problems)


def check_rate(header: Header, ctx: MappingContext, problems: Problems) -> None:
    """A foreign-currency transaction (extended profile) carries Actionstep's rate; a base-currency
    one must not, so a stray rate is never applied silently."""
    path = "transaction.header.currency_rate"
    foreign = header.currency_code != ctx.base_currency_code
    if not header.currency_rate:
        if foreign and ctx.profile is Profile.EXTENDED and ISO_4217.fullmatch(ctx.base_currency_code):
            problems.field(
                path,
                f"is required for a {header.currency_code} transaction in a {ctx.base_currency_code} organisation: "
                f"send units of {header.currency_code} per {ctx.base_currency_code}",
            )
        return
    if not foreign:
        problems.field(path, "must be empty for a transaction in the base currency")
        return
    if not PLAIN_RATE.fullmatch(header.currency_rate):
        problems.field(path, f"{header.currency_rate!r} is not a decimal number such as '0.65' (ASCII digits)")
        return
    if Decimal(header.currency_rate) <= 0:
        problems.field(path, f"{header.currency_rate!r} must be a positive decimal number")
        return
    _, _, decimals = header.currency_rate.partition(".")
    if len(decimals.rstrip("0")) > RATE_DECIMALS:
        # Xero keeps six decimal places ("max length = [18].[6]": Invoice.CurrencyRate in Xero's
        # OpenAPI description): a rate it rounds books other base-currency amounts than Actionstep's.
        problems.field(
            path,
            f"{header.currency_rate!r} has more than six decimal places, which Xero keeps of a currency rate: "
            "record it to six in Actionstep, or enter the transaction in Xero",
        )


def money(value: Amount | None, path: str, currency: str, problems: Problems, *, positive: bool) -> int:
    """The cents of a money field, checked: present, in the transaction's currency, plausible,
    and (when `positive`) greater than zero."""
    if value is not None and (not value.currency_code or value.currency_code == currency):
        cents = value.cents
        if (cents > 0 if positive else cents >= -MAX_CENTS) and cents <= MAX_CENTS:
            return cents
    if value is None:
        problems.field(path, "is required")
        return 0
    if value.currency_code and value.currency_code != currency:
        problems.field(
            f"{path}.currency_code",
            f"{value.currency_code} differs from the transaction's currency {currency}: one transaction has "
            "one currency",
        )
    cents = value.cents
    if abs(cents) > MAX_CENTS:
        problems.field(f"{path}.units", f"{cents} cents is beyond any plausible amount; send hundredths of the unit")
    elif positive and cents <= 0:
        problems.field(f"{path}.units", "must be greater than zero")
    return cents


def decimal_field(value: str, path: str, problems: Problems, *, places: int, allow_negative: bool) -> Decimal | None:
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        problems.field(path, f"{value!r} is not a decimal number")
        return None
    if not number.is_finite():
        problems.field(path, f"{value!r} is not a finite number")
        return None
    if not allow_negative and number < 0:
        problems.field(path, f"{value} is negative: a negative quantity is not allowed here (post a credit instead)")
        return None
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        problems.field(path, f"{value} has more than {places} decimal places")
    return number
