"""The support matrix: ONE table, read by the decision logic, by ListSupportMatrix and by the
generator of docs/support-matrix.md.

Source: Actionstep's help article "Understanding the Xero and Actionstep Integration", its
"Supported Transactions" table (the complete list). Where the article's prose disagrees with its
table (office bank-to-bank transfers), the table wins; see BANK_TO_BANK_CONFLICT.
"""

from __future__ import annotations

from dataclasses import dataclass

from xerolink_common.reasons import Reason

from xerolink_mapper.domain.model import Kind, Profile

COMPATIBLE = Profile.ACTIONSTEP_COMPATIBLE
EXTENDED = Profile.EXTENDED
PROFILES = (COMPATIBLE, EXTENDED)

SUPPORTED = "SUPPORTED"
EXTENDED_ONLY = "EXTENDED_ONLY"
NOT_POSTED_BY_ACTIONSTEP = "NOT_POSTED_BY_ACTIONSTEP"
GENERAL_RETAINER_NOT_SUPPORTED = "GENERAL_RETAINER_NOT_SUPPORTED"
RECONCILED_IN_ACTIONSTEP = "RECONCILED_IN_ACTIONSTEP"
DOCUMENT_NOT_POSTED = "DOCUMENT_NOT_POSTED"

PRE_INTEGRATION = "PRE_INTEGRATION"
OTHER_DIVISION = "OTHER_DIVISION"
MULTI_CURRENCY_DATABASE = "MULTI_CURRENCY_DATABASE"
FOREIGN_CURRENCY = "FOREIGN_CURRENCY"
FOREIGN_CURRENCY_NOT_REPRESENTABLE = "FOREIGN_CURRENCY_NOT_REPRESENTABLE"
CASH_ACCOUNTING = "CASH_ACCOUNTING"
GENERAL_RETAINERS_CONFIGURED = "GENERAL_RETAINERS_CONFIGURED"


@dataclass(frozen=True)
class Verdict:
    supported: bool
    reason_code: str
    reason: str


@dataclass(frozen=True)
class Row:
    kind: Kind
    # The transaction as the Actionstep help article names it.
    label: str
    # The article's table section.
    group: str
    compatible: Verdict
    extended: Verdict
    # What a supported transaction becomes in Xero (also shown for extended-only kinds).
    xero_representation: str

    def verdict(self, profile: Profile) -> Verdict:
        return self.compatible if profile is COMPATIBLE else self.extended


@dataclass(frozen=True)
class Condition:
    """A fact about the connection or the transaction that makes any transaction unsupported."""

    reason_code: str
    reason: str
    profiles: tuple[Profile, ...]


def _yes() -> Verdict:
    return Verdict(True, SUPPORTED, "Processed in Actionstep, posted to Xero.")


def _extended_only(what: str) -> tuple[Verdict, Verdict]:
    return (
        Verdict(
            False,
            EXTENDED_ONLY,
            f"Actionstep's Xero integration does not post {what}; choose the extended profile to post it.",
        ),
        Verdict(True, SUPPORTED, f"Posted to Xero by the extended profile ({what} is not posted by Actionstep)."),
    )


def _never(reason_code: str, reason: str) -> tuple[Verdict, Verdict]:
    verdict = Verdict(False, reason_code, reason)
    return verdict, verdict


def _row(kind: Kind, label: str, group: str, verdicts: tuple[Verdict, Verdict], xero: str) -> Row:
    return Row(kind, label, group, verdicts[0], verdicts[1], xero)


_BOTH_YES = (_yes(), _yes())
_CLIENT = "Client billing"
_TRUST = "Trust accounting"
_SUPPLIER = "Supplier / vendor transactions"
_BANKING = "Banking transactions"
_OTHER = "Other accounting functions"
_NOT_POSTED = "These can be created in Actionstep but are not posted to Xero."

ROWS: tuple[Row, ...] = (
    _row(Kind.CLIENT_BILL, "Posting a client bill", _CLIENT, _BOTH_YES, "Invoice ACCREC, AUTHORISED"),
    _row(Kind.CLIENT_BILL_PAYMENT, "Paying a client bill", _CLIENT, _BOTH_YES, "Payment on the linked invoice"),
    _row(Kind.CREDIT_NOTE, "Creating a credit note", _CLIENT, _BOTH_YES, "CreditNote ACCRECCREDIT, AUTHORISED"),
    _row(
        Kind.CREDIT_NOTE_APPLICATION,
        "Applying a credit note to an invoice",
        _CLIENT,
        _BOTH_YES,
        "Allocation of the linked credit note to the linked invoice",
    ),
    _row(
        Kind.CREDIT_NOTE_REFUND,
        "Refunding an outstanding credit note to the client",
        _CLIENT,
        _extended_only("credit note refunds"),
        "Payment on the linked credit note",
    ),
    _row(
        Kind.OVERPAYMENT_REFUND,
        "Refunding an overpayment from a client",
        _CLIENT,
        _extended_only("overpayment refunds"),
        "BankTransaction RECEIVE-OVERPAYMENT + Payment refunding the overpayment",
    ),
    _row(
        Kind.GENERAL_RETAINER,
        "General retainers (regional)",
        _CLIENT,
        _never(
            GENERAL_RETAINER_NOT_SUPPORTED,
            "General retainers are not available with the Xero integration; remove retainer balances from "
            "matters and unconfigure general retainers.",
        ),
        "",
    ),
    _row(
        Kind.TRUST_RECEIPT,
        "Trust receipt",
        _TRUST,
        _BOTH_YES,
        "BankTransaction RECEIVE on the trust bank account, line on trust liability",
    ),
    _row(
        Kind.TRUST_PAYMENT,
        "Trust payment",
        _TRUST,
        _BOTH_YES,
        "BankTransaction SPEND on the trust bank account, line on trust liability",
    ),
    _row(
        Kind.TRUST_JOURNAL,
        "Trust journal (matter to matter)",
        _TRUST,
        _BOTH_YES,
        "ManualJournal, POSTED, between the matters' trust liability lines",
    ),
    _row(Kind.TRUST_TRANSFER, "Trust transfer", _TRUST, _BOTH_YES, "BankTransfer between the two bank accounts"),
    _row(
        Kind.TRUST_INTEREST,
        "Trust interest",
        _TRUST,
        _BOTH_YES,
        "BankTransaction RECEIVE on the trust bank account, line on trust interest",
    ),
    _row(
        Kind.INVOICE_PAID_FROM_TRUST,
        "Invoice payment from trust",
        _TRUST,
        _BOTH_YES,
        "BankTransaction SPEND on the trust bank account + Payment on the linked invoice via trust transfers",
    ),
    _row(
        Kind.STATUTORY_FUNDS,
        "Statutory funds (regional)",
        _TRUST,
        _BOTH_YES,
        "BankTransfer between trust bank and statutory deposit (BankTransaction when that account is not a bank)",
    ),
    _row(
        Kind.ADVANCED_FUNDS,
        "Advanced funds transactions (regional)",
        _TRUST,
        _BOTH_YES,
        "BankTransfer between trust bank and advanced funds (BankTransaction when that account is not a bank)",
    ),
    _row(
        Kind.TRUST_BANK_RECONCILIATION,
        "Trust bank reconciliation",
        _TRUST,
        _never(
            RECONCILED_IN_ACTIONSTEP,
            "Trust bank reconciliations are completed in Actionstep and are not posted to Xero.",
        ),
        "",
    ),
    _row(
        Kind.SUPPLIER_INVOICE,
        "Posting a supplier or vendor invoice",
        _SUPPLIER,
        _BOTH_YES,
        "Invoice ACCPAY, AUTHORISED",
    ),
    _row(
        Kind.SUPPLIER_INVOICE_PAYMENT,
        "Paying a supplier or vendor invoice",
        _SUPPLIER,
        _BOTH_YES,
        "Payment on the linked bill",
    ),
    _row(
        Kind.SUPPLIER_CREDIT,
        "Supplier or vendor credit",
        _SUPPLIER,
        _BOTH_YES,
        "CreditNote ACCPAYCREDIT, AUTHORISED",
    ),
    _row(
        Kind.SUPPLIER_CREDIT_APPLICATION,
        "Applying a supplier credit to a supplier invoice",
        _SUPPLIER,
        _BOTH_YES,
        "Allocation of the linked supplier credit to the linked bill",
    ),
    _row(Kind.PURCHASE_ORDER, "Purchase order", _SUPPLIER, _never(NOT_POSTED_BY_ACTIONSTEP, _NOT_POSTED), ""),
    _row(
        Kind.PURCHASE_CREDIT_ORDER,
        "Purchase credit order",
        _SUPPLIER,
        _never(NOT_POSTED_BY_ACTIONSTEP, _NOT_POSTED),
        "",
    ),
    _row(
        Kind.PRE_ENTERED_SUPPLIER_INVOICE,
        "Pre-entered supplier or vendor invoice",
        _SUPPLIER,
        _never(NOT_POSTED_BY_ACTIONSTEP, _NOT_POSTED),
        "",
    ),
    _row(
        Kind.BANK_DEPOSIT,
        "Bank deposit not linked to a client payment",
        _BANKING,
        _extended_only("bank deposits that are not linked to a payment"),
        "BankTransaction RECEIVE on the bank account",
    ),
    _row(
        Kind.BANK_WITHDRAWAL,
        "Bank withdrawal not linked to a supplier payment",
        _BANKING,
        _extended_only("bank withdrawals that are not linked to a payment"),
        "BankTransaction SPEND on the bank account",
    ),
    _row(
        Kind.OFFICE_BANK_TRANSFER,
        "Bank to bank transfer (office)",
        _BANKING,
        _extended_only("office bank-to-bank transfers"),
        "BankTransfer",
    ),
    _row(
        Kind.ELECTRONIC_PAYMENT_BATCH,
        "Electronic batching of payments",
        _BANKING,
        _never(
            NOT_POSTED_BY_ACTIONSTEP,
            "The batch file is not posted to Xero; the payments it carries are posted one by one.",
        ),
        "",
    ),
    _row(
        Kind.BANK_RECONCILIATION,
        "Bank reconciliation",
        _BANKING,
        _never(
            RECONCILED_IN_ACTIONSTEP,
            "Bank reconciliations are not available through the Xero API; reconcile in Actionstep or in Xero.",
        ),
        "",
    ),
    _row(
        Kind.PRINTED_CHEQUE,
        "Printed cheque",
        _BANKING,
        _never(
            DOCUMENT_NOT_POSTED,
            "The cheque is printed in Actionstep and not posted; the payments it carries are decided one by one.",
        ),
        "",
    ),
    _row(
        Kind.DEPOSIT_SLIP,
        "Deposit slip",
        _BANKING,
        _never(
            DOCUMENT_NOT_POSTED,
            "The deposit slip is printed in Actionstep and not posted; the receipts it carries are decided one by one.",
        ),
        "",
    ),
    _row(
        Kind.GENERAL_JOURNAL,
        "General journal",
        _OTHER,
        _extended_only("general journals"),
        "ManualJournal, POSTED",
    ),
    _row(
        Kind.SALES_TAX_RETURN,
        "Sales / VAT return",
        _OTHER,
        _never(NOT_POSTED_BY_ACTIONSTEP, _NOT_POSTED),
        "",
    ),
)

ROWS_BY_KIND: dict[Kind, Row] = {row.kind: row for row in ROWS}

# In the order they are checked: the first that holds is the reason given.
CONDITIONS: tuple[Condition, ...] = (
    Condition(
        OTHER_DIVISION,
        "The transaction belongs to a division other than the one linked to Xero; the integration "
        "supports a single division.",
        PROFILES,
    ),
    Condition(
        PRE_INTEGRATION,
        "The transaction was posted before the integration was connected; only new transactions are "
        "pushed (repost open invoices from draft, or use the pre-integration backfill).",
        PROFILES,
    ),
    Condition(
        MULTI_CURRENCY_DATABASE,
        "The Actionstep database uses multiple currencies, which the integration does not support; "
        "choose the extended profile to post foreign-currency transactions with their rate.",
        (COMPATIBLE,),
    ),
    Condition(
        FOREIGN_CURRENCY,
        "The transaction is not in the Xero organisation's base currency; choose the extended profile "
        "and send the currency rate to post it.",
        (COMPATIBLE,),
    ),
    Condition(
        FOREIGN_CURRENCY_NOT_REPRESENTABLE,
        "Xero keeps manual journals in the base currency and this version cannot tell the currencies "
        "of bank accounts, so a foreign-currency journal, transfer, funds or trust movement, bank "
        "deposit or withdrawal is not posted; convert it to the base currency in Actionstep, or enter "
        "it in Xero.",
        (EXTENDED,),
    ),
    Condition(
        CASH_ACCOUNTING,
        "The Actionstep database uses the cash accounting method; set it to accrual so invoices reach "
        "Xero before they are paid.",
        PROFILES,
    ),
    Condition(
        GENERAL_RETAINERS_CONFIGURED,
        "General retainers are configured in Actionstep; remove retainer balances from matters and "
        "unconfigure them before posting to Xero.",
        PROFILES,
    ),
)

CONDITIONS_BY_CODE: dict[str, Condition] = {c.reason_code: c for c in CONDITIONS}

# The ledger each kind belongs to, for an organisation that keeps one only (MappingContext.ledgers
# OFFICE or TRUST, extended profile). An invoice paid from trust is in both: each organisation
# posts its own half of it.
TRUST_KINDS: frozenset[Kind] = frozenset(
    {
        Kind.TRUST_RECEIPT,
        Kind.TRUST_PAYMENT,
        Kind.TRUST_JOURNAL,
        Kind.TRUST_TRANSFER,
        Kind.TRUST_INTEREST,
        Kind.STATUTORY_FUNDS,
        Kind.ADVANCED_FUNDS,
        Kind.INVOICE_PAID_FROM_TRUST,
    }
)
OFFICE_KINDS: frozenset[Kind] = (frozenset(Kind) - TRUST_KINDS) | {Kind.INVOICE_PAID_FROM_TRUST}

# What an organisation that keeps one ledger says of a transaction of the other. Checked after the
# kind's own row and before the conditions: wherever else the transaction may be refused, it is
# never posted here.
TRUST_ELSEWHERE = Verdict(
    False,
    Reason.TRUST_IN_OTHER_ORGANISATION,
    "This organisation keeps the firm's office ledger only: trust money belongs in the firm's trust "
    "organisation; post the transaction to the trust organisation's connection.",
)
OFFICE_ELSEWHERE = Verdict(
    False,
    Reason.OFFICE_IN_OTHER_ORGANISATION,
    "This organisation keeps the firm's trust ledger only: the transaction belongs in the firm's office "
    "organisation; post it to the office organisation's connection.",
)
TRANSFER_TO_OFFICE = Verdict(
    False,
    Reason.TRANSFER_BETWEEN_ORGANISATIONS,
    "The trust transfer takes money to the office bank, which is in the firm's office organisation, and a "
    "Xero bank transfer moves money only between two bank accounts of one organisation; enter it in Xero as a "
    "spend from the trust bank here and a receive into the office bank there.",
)
LEDGER_VERDICTS: tuple[Verdict, ...] = (TRUST_ELSEWHERE, OFFICE_ELSEWHERE, TRANSFER_TO_OFFICE)


@dataclass(frozen=True)
class Option:
    """A choice a connection makes beyond its profile, and the profiles it is available in."""

    name: str
    # Where it is set.
    setting: str
    profiles: tuple[Profile, ...]
    # What it does.
    effect: str


OPTIONS: tuple[Option, ...] = (
    Option(
        "Reports by matter",
        "`MappingContext.matter_tracking` (`enabled`, `category_name`)",
        (EXTENDED,),
        "Every line item and journal line carries its matter as `tracked_action_id`: the transaction "
        "header's `action_id`; for a trust journal the debit line the paying matter's (`from_action_id`) "
        "and the credit line the receiving matter's (`to_action_id`); for a general journal a line's own "
        "`action_id`, else the header's; 0 for none. Lines of different matters are never summed into one. "
        'The poster sets the matter\'s option of the tracking category `category_name` ("Matter" when '
        "empty, at most 100 characters) on each line.",
    ),
    Option(
        "Trust in its own organisation",
        "`MappingContext.ledgers` `OFFICE` or `TRUST` (the poster sets them from `ConnectionRouting."
        "trust_connection_id`)",
        (EXTENDED,),
        "The office organisation posts the office kinds and the trust organisation the trust kinds; the "
        "other ledger's kinds are not posted (`TRUST_IN_OTHER_ORGANISATION`, `OFFICE_IN_OTHER_ORGANISATION`). "
        "An invoice paid from trust is posted in both, each organisation its own half.",
    ),
    Option(
        "Divisions to organisations",
        "the poster's `ConnectionRouting.division_connections`: Actionstep division -> connection, whose "
        "`linked_division_id` is the division",
        (EXTENDED,),
        "The poster posts each listed division's transactions under that division's connection, so each is "
        "decided with the context of the organisation it belongs in; the mapper itself is unchanged: a "
        "transaction of a division other than its context's `linked_division_id` is still `OTHER_DIVISION`.",
    ),
)

BANK_TO_BANK_CONFLICT = (
    "The help article lists 'Bank to bank transfers' among the transactions pushed to Xero, yet its "
    "Supported Transactions table (which it calls the complete list) says an office bank-to-bank "
    "transfer is not posted. The table wins: the actionstep-compatible profile does not post office "
    "bank-to-bank transfers (EXTENDED_ONLY); the extended profile posts them as a Xero BankTransfer. "
    "Transfers that involve a trust account are trust transfers and are posted in both profiles. A trust "
    "transfer takes money out of a trust account: one out of the allocated office bank (between two office "
    "accounts, say) is refused, never posted as a trust transfer in either profile."
)
