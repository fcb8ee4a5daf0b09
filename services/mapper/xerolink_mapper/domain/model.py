"""The Actionstep side of a mapping: transactions, their bodies and the connection context.

Money is integer cents (hundredths of the transaction's currency) everywhere; quantities and
rates are decimal strings checked with Decimal; nothing is a float. Values built per transaction
are treated as immutable but are not frozen dataclasses: frozen ones cost twice as much to build,
and thousands are built per second on the streaming path. Bodies are grouped by shape, not by kind: a client bill and
a supplier credit are both a `DocumentBody`, and the `Kind` says which one it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum

from xerolink_mapper.domain.allocations import OFFICE_FUNCTIONS, TRUST_FUNCTIONS


class ValueEnum(Enum):
    """An enum hashed by identity (members are singletons): Enum's own __hash__ is Python code,
    and these are dictionary keys on the hot path of every mapping."""

    __hash__ = object.__hash__


class Kind(ValueEnum):
    """Actionstep transaction kinds, named as in xerolink.actionstep.v1.TransactionKind."""

    CLIENT_BILL = "CLIENT_BILL"
    CLIENT_BILL_PAYMENT = "CLIENT_BILL_PAYMENT"
    CREDIT_NOTE = "CREDIT_NOTE"
    CREDIT_NOTE_APPLICATION = "CREDIT_NOTE_APPLICATION"
    CREDIT_NOTE_REFUND = "CREDIT_NOTE_REFUND"
    OVERPAYMENT_REFUND = "OVERPAYMENT_REFUND"
    GENERAL_RETAINER = "GENERAL_RETAINER"
    TRUST_RECEIPT = "TRUST_RECEIPT"
    TRUST_PAYMENT = "TRUST_PAYMENT"
    TRUST_JOURNAL = "TRUST_JOURNAL"
    TRUST_TRANSFER = "TRUST_TRANSFER"
    TRUST_INTEREST = "TRUST_INTEREST"
    INVOICE_PAID_FROM_TRUST = "INVOICE_PAID_FROM_TRUST"
    STATUTORY_FUNDS = "STATUTORY_FUNDS"
    ADVANCED_FUNDS = "ADVANCED_FUNDS"
    TRUST_BANK_RECONCILIATION = "TRUST_BANK_RECONCILIATION"
    SUPPLIER_INVOICE = "SUPPLIER_INVOICE"
    SUPPLIER_INVOICE_PAYMENT = "SUPPLIER_INVOICE_PAYMENT"
    SUPPLIER_CREDIT = "SUPPLIER_CREDIT"
    SUPPLIER_CREDIT_APPLICATION = "SUPPLIER_CREDIT_APPLICATION"
    PURCHASE_ORDER = "PURCHASE_ORDER"
    PURCHASE_CREDIT_ORDER = "PURCHASE_CREDIT_ORDER"
    PRE_ENTERED_SUPPLIER_INVOICE = "PRE_ENTERED_SUPPLIER_INVOICE"
    BANK_DEPOSIT = "BANK_DEPOSIT"
    BANK_WITHDRAWAL = "BANK_WITHDRAWAL"
    OFFICE_BANK_TRANSFER = "OFFICE_BANK_TRANSFER"
    ELECTRONIC_PAYMENT_BATCH = "ELECTRONIC_PAYMENT_BATCH"
    BANK_RECONCILIATION = "BANK_RECONCILIATION"
    PRINTED_CHEQUE = "PRINTED_CHEQUE"
    DEPOSIT_SLIP = "DEPOSIT_SLIP"
    GENERAL_JOURNAL = "GENERAL_JOURNAL"
    SALES_TAX_RETURN = "SALES_TAX_RETURN"


class Profile(ValueEnum):
    """Policy profile: what the mapper is willing to post."""

    ACTIONSTEP_COMPATIBLE = "actionstep-compatible"
    EXTENDED = "extended"


class Ledgers(ValueEnum):
    """Which of the firm's ledgers the connected organisation keeps (MappingContext.ledgers)."""

    UNSPECIFIED = "unspecified"
    OFFICE_AND_TRUST = "office-and-trust"
    # Extended profile only: the office ledger, trust money being kept in the firm's trust organisation.
    OFFICE = "office"
    # Extended profile only: the trust ledger, the office ledger being kept in the firm's office organisation.
    TRUST = "trust"


class AccountingMethod(ValueEnum):
    UNSPECIFIED = "unspecified"
    ACCRUAL = "accrual"
    CASH = "cash"


class FundsDirection(ValueEnum):
    UNSPECIFIED = "unspecified"
    OUT_OF_TRUST = "out-of-trust"
    INTO_TRUST = "into-trust"


@dataclass(frozen=True, slots=True)
class RecordKey:
    kind: Kind
    id: int


@dataclass(slots=True)
class Participant:
    participant_id: int
    display_name: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    tax_number: str = ""


@dataclass(slots=True)
class Amount:
    """A money field as received: cents plus the currency it claims (empty: the transaction's)."""

    cents: int
    currency_code: str = ""


@dataclass(slots=True)
class Header:
    id: int
    division_id: int
    currency_code: str
    posted_at: datetime | None
    transaction_date: date | None
    action_id: int = 0
    participant: Participant | None = None
    reference: str = ""
    memo: str = ""
    # Units of the transaction currency per unit of the base currency; "" when not given.
    currency_rate: str = ""


@dataclass(slots=True)
class Line:
    description: str
    quantity: str
    unit_price: str
    gl_account: str
    tax_code: str
    amount: Amount | None
    tax: Amount | None


@dataclass(slots=True)
class Totals:
    exclusive: Amount | None
    tax: Amount | None
    inclusive: Amount | None


@dataclass(slots=True)
class JournalLine:
    gl_account: str
    description: str
    amount: Amount | None
    tax_code: str = ""
    action_id: int = 0


@dataclass(slots=True)
class DocumentBody:
    """Client bill, credit note, supplier invoice, supplier credit, purchase documents."""

    number: str
    lines: tuple[Line, ...]
    totals: Totals | None
    due_date: date | None = None
    # The bill (credit note) or supplier invoice (supplier credit) it relates to; 0 when none.
    related_id: int = 0


@dataclass(slots=True)
class PaymentBody:
    """Payment of a bill / supplier invoice, refund of a credit note, invoice paid from trust."""

    document_id: int
    amount: Amount | None
    bank_account: str = ""


@dataclass(slots=True)
class ApplicationBody:
    """A credit (client or supplier) applied to an invoice."""

    credit_id: int
    invoice_id: int
    amount: Amount | None


@dataclass(slots=True)
class OverpaymentRefundBody:
    receipt_id: int
    overpaid: Amount | None
    refund: Amount | None
    bank_account: str = ""


@dataclass(slots=True)
class BankAmountBody:
    """Trust receipt, trust payment, trust interest, general retainer."""

    amount: Amount | None
    bank_account: str = ""
    description: str = ""


@dataclass(slots=True)
class TrustJournalBody:
    from_action_id: int
    to_action_id: int
    amount: Amount | None
    description: str = ""


@dataclass(slots=True)
class TransferBody:
    """Trust transfer, office bank-to-bank transfer."""

    from_account: str
    to_account: str
    amount: Amount | None


@dataclass(slots=True)
class FundsBody:
    """Statutory funds, advanced funds: between the trust bank and a regulated account."""

    direction: FundsDirection
    trust_bank_account: str
    funds_account: str
    amount: Amount | None


@dataclass(slots=True)
class BankEntryBody:
    """A bank deposit or withdrawal not linked to a payment."""

    bank_account: str
    lines: tuple[Line, ...]
    totals: Totals | None


@dataclass(slots=True)
class GeneralJournalBody:
    narration: str
    lines: tuple[JournalLine, ...]


@dataclass(slots=True)
class OpaqueBody:
    """A kind the integration never posts (reconciliations, batches, printed documents, returns):
    nothing of it is needed to decide, so nothing of it is kept."""


Body = (
    DocumentBody
    | PaymentBody
    | ApplicationBody
    | OverpaymentRefundBody
    | BankAmountBody
    | TrustJournalBody
    | TransferBody
    | FundsBody
    | BankEntryBody
    | GeneralJournalBody
    | OpaqueBody
)


@dataclass(slots=True)
class Transaction:
    kind: Kind
    header: Header
    body: Body
    # The oneof field name in the request ("client_bill"): field paths in errors start with it.
    field_name: str


@dataclass(frozen=True, slots=True)
class ChartAccount:
    code: str
    name: str
    type: str
    status: str
    tax_type: str = ""
    enable_payments: bool = False
    # Xero's Class (ASSET, EQUITY, EXPENSE, LIABILITY, REVENUE); empty when not given.
    account_class: str = ""


# Roles an account plays in an operation.
LINE = "line"
BANK = "bank"
PAYMENT = "payment"


def usable_accounts(chart: dict[str, ChartAccount]) -> frozenset[tuple[str, str]]:
    """Every (code, role) the chart allows, computed once per context: most operations pass the
    chart check by a set lookup and only a problem pays for the full check."""
    out = set()
    for code, account in chart.items():
        if account.status.upper() == "ARCHIVED":
            continue
        out.add((code, LINE))
        if account.type == "BANK":
            out.add((code, BANK))
        if account.type == "BANK" or account.enable_payments:
            out.add((code, PAYMENT))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class UntaxedTaxTypes:
    """The organisation's tax types for lines that carry no Actionstep tax code; empty: not set."""

    trust_money: str = ""
    interest_on_trust: str = ""
    journal_without_tax_code: str = ""


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A tax rate of the organisation (Xero's TaxRates)."""

    tax_type: str
    name: str = ""
    status: str = ""
    # The account classes Xero allows the rate on; empty when not given (no check).
    account_classes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class MatterTracking:
    """Reports by matter (extended profile): every line carries the matter it belongs to."""

    enabled: bool = False
    # The tracking category's name in Xero (the poster's business); "" means "Matter".
    category_name: str = ""


@dataclass(frozen=True, slots=True)
class MappingContext:
    """Everything about the connection that a decision depends on."""

    profile: Profile
    linked_division_id: int
    connected_at: datetime | None
    base_currency_code: str
    multi_currency_database: bool
    accounting_method: AccountingMethod
    general_retainers_configured: bool
    account_allocation: dict[str, str] = field(default_factory=dict)
    # Actionstep tax code -> Xero TaxType on the sales side (bills, credit notes, deposits).
    tax_code_map: dict[str, str] = field(default_factory=dict)
    # The same on the purchase side (supplier invoices and credits, withdrawals).
    purchase_tax_code_map: dict[str, str] = field(default_factory=dict)
    # Chart of accounts by code; None when the caller did not pass it (no chart checks).
    chart: dict[str, ChartAccount] | None = None
    # Posting open documents that predate the connection (the backfill): the pre-integration
    # condition does not apply to client bills and their payments.
    pre_integration_backfill: bool = False
    # The tax types of trust lines and of journal lines without a code (from the organisation).
    untaxed: UntaxedTaxTypes = field(default_factory=UntaxedTaxTypes)
    # The organisation's tax rates by tax type; None when the caller did not pass them (no checks).
    tax_rates: dict[str, TaxRate] | None = None
    # Reports by matter: lines carry their matter as tracked_action_id (extended profile only).
    matter_tracking: MatterTracking = field(default_factory=MatterTracking)
    # Which ledgers the organisation keeps; OFFICE and TRUST in the extended profile only.
    ledgers: Ledgers = Ledgers.UNSPECIFIED
    # (account code, role) pairs the chart allows, derived from `chart`.
    chart_usable: frozenset[tuple[str, str]] = field(init=False, repr=False, compare=False)
    # The codes the allocation gives to the trust ledger's functions and to the office's, derived
    # from `account_allocation` (allocations.TRUST_FUNCTIONS, OFFICE_FUNCTIONS).
    trust_accounts: frozenset[str] = field(init=False, repr=False, compare=False)
    office_accounts: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chart_usable", usable_accounts(self.chart) if self.chart is not None else frozenset())
        # An organisation that keeps one ledger only names the other ledger's accounts by their
        # codes in the other organisation (its trust transfers are refused by them): the same code
        # there is another account, so the two ledgers' codes are kept apart only where both are kept.
        both = self.ledgers not in (Ledgers.OFFICE, Ledgers.TRUST)
        allocation = self.account_allocation if both else {}
        object.__setattr__(
            self, "trust_accounts", frozenset(c for f, c in allocation.items() if c and f in TRUST_FUNCTIONS)
        )
        object.__setattr__(
            self, "office_accounts", frozenset(c for f, c in allocation.items() if c and f in OFFICE_FUNCTIONS)
        )
