"""One mapping in progress (the transaction, its context and the problems found so far), and the
lines, bank transactions and totals several kinds build the same way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from xerolink_common.reasons import Reason

from xerolink_mapper.domain.aggregation import aggregate_lines, unit_amount
from xerolink_mapper.domain.allocations import OFFICE_FUNCTIONS, TRUST_FUNCTIONS
from xerolink_mapper.domain.model import Amount, BankEntryBody, DocumentBody, MappingContext, Totals, Transaction
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.text import TextRule, check_text
from xerolink_mapper.domain.validation import money
from xerolink_mapper.domain.xero import (
    BankTransaction,
    BankTransactionType,
    Contact,
    LineAmountTypes,
    LineItem,
    Operation,
)
from xerolink_mapper.domain.xero_fields import (
    ACCOUNT_CODE,
    CONTACT_EMAIL,
    CONTACT_FIRST_NAME,
    CONTACT_LAST_NAME,
    CONTACT_NAME,
    CONTACT_TAX_NUMBER,
    REFERENCE,
    contact_number,
)

SALES_MAP = "tax_code_map"
PURCHASE_MAP = "purchase_tax_code_map"


class MappingJob:
    """One mapping in progress: the transaction, the context and the problems found so far."""

    __slots__ = ("ctx", "currency", "date", "matter", "path", "problems", "rate", "reference", "tracking", "tx")

    def __init__(self, tx: Transaction, ctx: MappingContext, problems: Problems) -> None:
        self.tx = tx
        self.ctx = ctx
        self.problems = problems
        header = tx.header
        self.path = f"transaction.{tx.field_name}"
        self.currency = header.currency_code
        self.date: date = header.transaction_date or date.min  # validated before mapping
        self.rate = header.currency_rate
        self.reference = header.reference
        # Reports by matter: lines carry their matter, the header's unless a line has its own; 0 when off.
        self.tracking = ctx.matter_tracking.enabled
        self.matter = header.action_id if self.tracking else 0
        self.text(header.reference, "transaction.header.reference", REFERENCE)

    def text(self, value: str, path: str, rule: TextRule) -> bool:
        """Xero refuses such text or keeps it unreadable; refusing it here keeps an invalid
        request from changing state."""
        return check_text(value, path, rule, self.problems)

    def code(self, value: str, field: str) -> str:
        """An account code the transaction names (empty: the allocated one applies)."""
        self.text(value, f"{self.path}.{field}", ACCOUNT_CODE)
        return value

    def money(self, value: Amount | None, name: str, *, positive: bool = True) -> int:
        return money(value, f"{self.path}.{name}", self.currency, self.problems, positive=positive)

    def allocated(self, function: str, why: str) -> str:
        code = self.ctx.account_allocation.get(function, "")
        subject = f"context.account_allocation[{function}]"
        unholdable = Problems()
        if not code:
            self.problems.precondition(
                Reason.ACCOUNT_ALLOCATION_MISSING,
                function,
                f"no Xero account is allocated to {function!r} ({why}): add it to the connection's account allocation",
            )
        elif not check_text(code, subject, ACCOUNT_CODE, unholdable):
            # Without a chart nothing else would stop it: Xero would refuse it after the caller was told it is posted.
            self.problems.precondition(
                Reason.MAPPING_NOT_CONFIGURED,
                subject,
                f"{function} is allocated {code!r}, which Xero cannot hold as an account code (it "
                f"{unholdable.fields[0].description}): re-map {function} to an account of the organisation's chart",
            )
        elif code in self.ctx.trust_accounts and code in self.ctx.office_accounts:
            # One account for both ledgers: Xero could not tell clients' money from the firm's.
            other = OFFICE_FUNCTIONS if function in TRUST_FUNCTIONS else TRUST_FUNCTIONS
            others = ", ".join(f for f, c in self.ctx.account_allocation.items() if c == code and f in other)
            self.problems.precondition(
                Reason.MAPPING_NOT_CONFIGURED,
                subject,
                f"{function} is allocated account {code}, which is also allocated to {others}: clients' money "
                "and the firm's would share one Xero account; allocate each its own account",
            )
        return code

    def kept_apart(self, code: str, path: str, trust: bool) -> None:
        """Clients' money and the firm's never mix: an account a trust transaction names (`trust`)
        must not be one the connection allocates to the office, and one an office transaction names
        must not be one it allocates to trust (allocations.TRUST_FUNCTIONS)."""
        other = self.ctx.office_accounts if trust else self.ctx.trust_accounts
        if code not in other:
            return
        functions = OFFICE_FUNCTIONS if trust else TRUST_FUNCTIONS
        owner = next(f for f, c in self.ctx.account_allocation.items() if c == code and f in functions)
        if trust:
            why = "clients' money is kept in trust accounts, never in the firm's office accounts; name a trust account"
        else:
            why = (
                "an office transaction moves the firm's own money and never clients' money in a trust account; "
                "name an office account, or record a movement of trust money as a trust transaction"
            )
        self.problems.field(path, f"is account {code}, which the connection allocates to {owner}: {why}")

    def untaxed(self, which: str) -> str:
        """The organisation's tax type for lines without a tax code (allocations.TRUST_MONEY, ...)."""
        tax_type: str = getattr(self.ctx.untaxed, which)
        if not tax_type:
            self.problems.precondition(
                Reason.UNTAXED_TAX_TYPE_NOT_MAPPED,
                f"context.untaxed_line_tax_types.{which}",
                f"the connection has no Xero tax type for {which.replace('_', ' ')} lines, which carry no "
                "Actionstep tax code: set untaxed_line_tax_types on the connection (ConnectOrganisation fills "
                "it with the default of the organisation's country; docs/regions.md)",
            )
        return tax_type

    def account(self, explicit: str, field: str, function: str, why: str) -> str:
        """The account the transaction names in `field`, else the one allocated to the function."""
        if not self.code(explicit, field):
            return self.allocated(function, why)
        self.kept_apart(explicit, f"{self.path}.{field}", function in TRUST_FUNCTIONS)
        return explicit

    def contact(self) -> Contact:
        participant = self.tx.header.participant
        path = "transaction.header.participant"
        if participant is None:
            self.problems.field(path, "is required: Xero needs a contact for this transaction")
            return Contact("", "", 0)
        if participant.participant_id <= 0:
            self.problems.field(f"{path}.participant_id", "must be the Actionstep participant id")
        name = participant.display_name or f"{participant.first_name} {participant.last_name}".strip()
        if not name:
            self.problems.field(f"{path}.display_name", "is required (or first_name / last_name)")
        self.text(name, f"{path}.display_name", CONTACT_NAME)
        for field, value, rule in (
            ("first_name", participant.first_name, CONTACT_FIRST_NAME),
            ("last_name", participant.last_name, CONTACT_LAST_NAME),
            ("email", participant.email, CONTACT_EMAIL),
            ("tax_number", participant.tax_number, CONTACT_TAX_NUMBER),
        ):
            self.text(value, f"{path}.{field}", rule)
        return Contact(
            contact_number=contact_number(participant.participant_id),
            name=name,
            participant_id=participant.participant_id,
            first_name=participant.first_name,
            last_name=participant.last_name,
            email_address=participant.email,
            tax_number=participant.tax_number,
        )

    def record_id(self, value: int, name: str) -> int:
        if value <= 0:
            self.problems.field(f"{self.path}.{name}", "must be the Actionstep id of the linked record")
        return value

    def check_totals(self, totals: Totals | None, sub_total: int, tax_total: int) -> int:
        """The stated totals must equal what the lines add up to; returns the inclusive total."""
        path = f"{self.path}.totals"
        if totals is None:
            self.problems.field(path, "is required: send exclusive, tax and inclusive totals")
            return sub_total + tax_total
        stated = (
            ("exclusive", totals.exclusive, sub_total),
            ("tax", totals.tax, tax_total),
            ("inclusive", totals.inclusive, sub_total + tax_total),
        )
        for name, value, summed in stated:
            cents = self.money(value, f"totals.{name}", positive=False)
            if value is not None and cents != summed:
                self.problems.field(
                    f"{path}.{name}",
                    f"is {cents} cents but the lines add up to {summed}: correct the lines or the total",
                )
        inclusive = sub_total + tax_total
        if inclusive < 0:
            self.problems.field(f"{path}.inclusive", "is negative: post a credit instead of a negative document")
        return inclusive


def document_lines(
    job: MappingJob, body: DocumentBody | BankEntryBody, purchase: bool, *, merge: bool = True
) -> tuple[tuple[LineItem, ...], int, int, int]:
    tax_map, map_name = (job.ctx.purchase_tax_code_map, PURCHASE_MAP) if purchase else (job.ctx.tax_code_map, SALES_MAP)
    if job.ctx.trust_accounts:  # documents, deposits and withdrawals are the office's
        for i, line in enumerate(body.lines):
            job.kept_apart(line.gl_account, f"{job.path}.lines[{i}].gl_account", trust=False)
    items, sub_total, tax_total = aggregate_lines(
        body.lines, f"{job.path}.lines", job.currency, tax_map, map_name, job.problems, merge=merge, matter=job.matter
    )
    total = job.check_totals(body.totals, sub_total, tax_total)
    return items, sub_total, tax_total, total


def bank_transaction(
    job: MappingJob,
    type_: BankTransactionType,
    bank: str,
    items: tuple[LineItem, ...],
    line_amount_types: LineAmountTypes,
) -> BankTransaction:
    tax_total = sum(item.tax_amount for item in items)
    # Under Inclusive a LineAmount includes its tax: "SubTotal = Total - TotalTax" then.
    lines = sum(item.line_amount for item in items)
    sub_total = lines - tax_total if line_amount_types is LineAmountTypes.INCLUSIVE else lines
    return BankTransaction(
        type=type_,
        contact=job.contact(),
        bank_account_code=bank,
        date=job.date,
        reference=job.reference,
        line_amount_types=line_amount_types,
        line_items=items,
        sub_total=sub_total,
        total_tax=tax_total,
        total=sub_total + tax_total,
        currency_code=job.currency,
        currency_rate=job.rate,
    )


def single_line(description: str, account: str, tax_type: str, amount: int, matter: int) -> tuple[LineItem, ...]:
    return (
        LineItem(description or f"Account {account}", "1", unit_amount(amount), account, tax_type, amount, 0, matter),
    )


# What maps one kind: the job and the kind's body, to its operations and the total they move.
KindMapper = Callable[[MappingJob, object], tuple[list[Operation], int]]
