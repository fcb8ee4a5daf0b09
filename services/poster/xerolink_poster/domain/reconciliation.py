"""Reconciliation (docs/drift.md, Reconciliation): the ledger effect of the Xero objects xerolink
posted, per account code, against the movement Xero's Trial Balance reports. Pure: documents are
Xero's JSON elements (as Xero answered them), amounts Decimal, debit positive.

The effect follows Xero's double entry as its OpenAPI describes the objects: an invoice's
(credit note's) lines and tax against its Total on accounts receivable or payable; a bank
transaction's lines and tax against its Total on its BankAccount; a payment's Amount between its
Account and the control account of its PaymentType; a bank transfer between FromBankAccount and
ToBankAccount; a manual journal's JournalLines (LineAmount debit positive) and their tax. Only
objects Xero counts in its ledger move money: invoices and credit notes AUTHORISED or PAID,
payments and bank transactions AUTHORISED, bank transfers AUTHORISED (or with no Status: Xero's
answer to a create may leave it out), manual journals POSTED (Xero's status rules: DRAFT and
SUBMITTED are not posted, VOIDED and DELETED are reversed). Foreign amounts are converted at the
object's CurrencyRate (units of the currency per unit of the base currency)."""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ZERO = Decimal("0.00")
CENT = Decimal("0.01")

# xerolink.xero.v1.ObjectType values (the domain does not import protobuf).
INVOICE, CREDIT_NOTE, PAYMENT, ALLOCATION, BANK_TRANSACTION, BANK_TRANSFER, MANUAL_JOURNAL, OVERPAYMENT = (
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
)
_LIVE_DOCUMENT = ("AUTHORISED", "PAID")
# Payment types by the side the money moves and the control account they settle (Xero's
# PaymentType enum: sales side on receivables, purchase side on payables).
_MONEY_IN = ("ACCRECPAYMENT", "APCREDITPAYMENT", "APOVERPAYMENTPAYMENT", "APPREPAYMENTPAYMENT")
_RECEIVABLE_SIDE = ("ACCRECPAYMENT", "ARCREDITPAYMENT", "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT")


@dataclass(frozen=True)
class SystemAccounts:
    """The organisation's control accounts, by their SystemAccount in Xero's chart."""

    receivable: str
    payable: str
    tax: str


Effect = dict[str, Decimal]


def _dec(value: Any) -> Decimal:
    if value is None or value == "":
        return ZERO
    return Decimal(str(value))


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _base(amount: Decimal, rate: Decimal) -> Decimal:
    return amount if rate in (0, 1) else cents(amount / rate)


def _rate(doc: Mapping[str, Any]) -> Decimal:
    return _dec(doc.get("CurrencyRate") or 1)


def _code(ref: Any) -> str:
    return str(ref.get("Code") or "") if isinstance(ref, Mapping) else ""


def _inclusive(doc: Mapping[str, Any], key: str) -> bool:
    """Whether LineAmount includes tax: LineAmountTypes "Inclusive" (snapshots keep it), or, on a
    snapshot kept before they did (SubTotal but no LineAmountTypes), lines that add up to more
    than the SubTotal (Xero's SubTotal is the total excluding tax)."""
    if doc.get("LineAmountTypes"):
        return doc.get("LineAmountTypes") == "Inclusive"
    if doc.get("SubTotal") in (None, ""):
        return False
    return sum((_dec(line.get("LineAmount")) for line in doc.get(key) or []), ZERO) != _dec(doc.get("SubTotal"))


def _lines(doc: Mapping[str, Any], key: str, sign: int, accounts: SystemAccounts) -> list[tuple[str, Decimal]]:
    """Each line's net amount on its account and its tax on the tax account, times sign."""
    inclusive = _inclusive(doc, key)
    out = []
    for line in doc.get(key) or []:
        amount = _dec(line.get("LineAmount"))
        tax = _dec(line.get("TaxAmount"))
        out.append((str(line.get("AccountCode") or ""), sign * (amount - tax if inclusive else amount)))
        if tax:
            out.append((accounts.tax, sign * tax))
    return out


def _balanced(entries: list[tuple[str, Decimal]], rate: Decimal) -> Effect:
    """Converts each entry to the base currency; the cent the conversion's rounding can leave goes
    to the first line's account (entries[1]: entries[0] is the control or bank account). Only
    that: entries that do not balance in their own currency (a journal whose lines do not add up,
    a document whose lines and tax are not its Total) stay unbalanced, so the difference shows in
    the report instead of being moved onto a line."""
    effect: Effect = defaultdict(lambda: ZERO)
    imbalance = sum((amount for _code, amount in entries), ZERO)
    converted = [(code, _base(amount, rate)) for code, amount in entries]
    residual = sum((amount for _code, amount in converted), ZERO) - _base(imbalance, rate)
    if residual and len(converted) > 1:
        code, amount = converted[1]
        converted[1] = (code, amount - residual)
    for code, amount in converted:
        effect[code] += amount
    return {code: amount for code, amount in effect.items() if amount}


def imbalance(effect: Mapping[str, Decimal]) -> Decimal:
    """What an object's effect leaves unbalanced (zero for every object Xero accepts)."""
    return sum(effect.values(), ZERO)


def counted(object_type: int, doc: Mapping[str, Any] | None) -> bool:
    """Whether Xero counts the object in its ledger, by its status (whatever it moves: a journal
    between two lines of one account counts and moves nothing)."""
    if not doc:
        return False
    status = str(doc.get("Status") or "").upper()
    if object_type in (INVOICE, CREDIT_NOTE):
        return status in _LIVE_DOCUMENT
    if object_type in (BANK_TRANSACTION, PAYMENT):
        return status == "AUTHORISED"
    if object_type == BANK_TRANSFER:
        # BankTransfer.Status: AUTHORISED or DELETED (Xero's OpenAPI); a deleted one moves nothing.
        return status in ("", "AUTHORISED")
    if object_type == MANUAL_JOURNAL:
        return status == "POSTED"
    return False  # contacts, allocations (one control account, one value) and overpayments' own rows


def ledger_effect(object_type: int, doc: Mapping[str, Any] | None, accounts: SystemAccounts) -> Effect:
    """What the object moves on each account, debit positive; {} when Xero does not count it."""
    if not doc or not counted(object_type, doc):
        return {}
    kind = str(doc.get("Type") or "").upper()
    if object_type in (INVOICE, CREDIT_NOTE):
        sales = kind in ("ACCREC", "ACCRECCREDIT")
        # Sales invoices and supplier credits credit their lines; bills and sales credits debit.
        credit_lines = kind in {"ACCREC", "ACCPAYCREDIT"}
        sign = -1 if credit_lines else 1
        control = accounts.receivable if sales else accounts.payable
        entries = [(control, -sign * _dec(doc.get("Total"))), *_lines(doc, "LineItems", sign, accounts)]
        return _balanced(entries, _rate(doc))
    if object_type == BANK_TRANSACTION:
        sign = -1 if kind.startswith("RECEIVE") else 1
        bank = _code(doc.get("BankAccount"))
        entries = [(bank, -sign * _dec(doc.get("Total"))), *_lines(doc, "LineItems", sign, accounts)]
        return _balanced(entries, _rate(doc))
    if object_type == PAYMENT:
        payment_type = str(doc.get("PaymentType") or "ACCRECPAYMENT").upper()
        sign = 1 if payment_type in _MONEY_IN else -1
        control = accounts.receivable if payment_type in _RECEIVABLE_SIDE else accounts.payable
        amount = _dec(doc.get("BankAmount") or doc.get("Amount"))
        base = amount if doc.get("BankAmount") else _base(amount, _rate(doc))
        return {c: a for c, a in ((_code(doc.get("Account")), sign * base), (control, -sign * base)) if a}
    if object_type == BANK_TRANSFER:
        amount = _dec(doc.get("Amount"))
        moved: Effect = defaultdict(lambda: ZERO)
        moved[_code(doc.get("ToBankAccount"))] += amount
        moved[_code(doc.get("FromBankAccount"))] -= amount
        return {c: a for c, a in moved.items() if a}
    if object_type == MANUAL_JOURNAL:
        return _balanced(_lines(doc, "JournalLines", 1, accounts), Decimal(1))
    return {}


# The PaymentType of a payment by the Type of the document it pays (Xero's PaymentType enum), for
# snapshots kept before they held the payment's own PaymentType. Overpayment.Type and
# Prepayment.Type are RECEIVE-/SPEND-OVERPAYMENT and RECEIVE-/SPEND-PREPAYMENT (Xero's OpenAPI);
# a payment naming neither an invoice nor a credit note but a bare Overpayment or Prepayment is a
# refund of it.
_PAYMENT_TYPES = {
    "ACCREC": "ACCRECPAYMENT",
    "ACCPAY": "ACCPAYPAYMENT",
    "ACCRECCREDIT": "ARCREDITPAYMENT",
    "ACCPAYCREDIT": "APCREDITPAYMENT",
    "RECEIVE-OVERPAYMENT": "AROVERPAYMENTPAYMENT",
    "SPEND-OVERPAYMENT": "APOVERPAYMENTPAYMENT",
    "RECEIVE-PREPAYMENT": "ARPREPAYMENTPAYMENT",
    "SPEND-PREPAYMENT": "APPREPAYMENTPAYMENT",
}
_PAID_REFS = (
    ("Invoice", "InvoiceID"),
    ("CreditNote", "CreditNoteID"),
    ("Overpayment", "OverpaymentID"),
    ("Prepayment", "PrepaymentID"),
)


def document_types(documents: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, str]:
    """Document id -> Type, for with_payment_type: each document's own, and the Overpayment or
    Prepayment a bank transaction made (BankTransaction.OverpaymentID / PrepaymentID) under the
    transaction's Type (RECEIVE-PREPAYMENT, ...)."""
    out: dict[str, str] = {}
    for xero_id, doc in documents:
        kind = str(doc.get("Type") or "")
        out[xero_id.lower()] = kind
        for key in ("OverpaymentID", "PrepaymentID"):
            if doc.get(key):
                out.setdefault(str(doc[key]).lower(), kind)
    return out


def paid_document_id(doc: Mapping[str, Any]) -> str:
    for key, id_field in _PAID_REFS:
        ref = doc.get(key)
        if isinstance(ref, Mapping) and ref.get(id_field):
            return str(ref[id_field]).lower()
    return ""


def with_payment_type(doc: Mapping[str, Any], types_by_id: Mapping[str, str]) -> dict[str, Any]:
    """The payment with its PaymentType: its own (snapshots keep it), else from the Type of the
    document it pays (`types_by_id`: document id -> Type, for invoices, credit notes, overpayments
    and prepayments, and for the bank transaction that made an overpayment or prepayment)."""
    out = dict(doc)
    if not out.get("PaymentType"):
        paid = types_by_id.get(paid_document_id(doc), "")
        if paid in _PAYMENT_TYPES:
            out["PaymentType"] = _PAYMENT_TYPES[paid]
    return out


def add(into: dict[str, Decimal], effect: Mapping[str, Decimal], sign: int = 1) -> None:
    for code, amount in effect.items():
        into[code] = into.get(code, ZERO) + sign * amount


def doc_date(doc: Mapping[str, Any] | None) -> str:
    """The object's date, YYYY-MM-DD, from Xero's Date ("2026-07-01T00:00:00" or "/Date(ms)/")."""
    if not doc:
        return ""
    value = str(doc.get("Date") or doc.get("DateString") or "")
    if value.startswith("/Date("):
        millis = int(value[6:].split(")", maxsplit=1)[0].split("+", maxsplit=1)[0].split("-", maxsplit=1)[0] or 0)
        return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).date().isoformat()
    return value[:10]


def in_period(doc: Mapping[str, Any] | None, first: str, last: str) -> bool:
    day = doc_date(doc)
    return bool(day) and first <= day <= last


# -- Xero's movement ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialBalanceRow:
    account_id: str
    code: str
    name: str
    ytd: Decimal  # debit positive


def parse_trial_balance(report: Mapping[str, Any], codes_by_id: Mapping[str, str]) -> dict[str, TrialBalanceRow]:
    """The YTD Debit / YTD Credit of each account row of a ReportWithRow, by account code. The
    columns are found by the header's titles (Xero's example: Account, Debit, Credit, YTD Debit,
    YTD Credit); the account by its cell's "account" attribute, else the "(Code)" of its name."""
    rows = report.get("Rows") or []
    header = next((r for r in rows if r.get("RowType") == "Header"), None)
    titles = [str(c.get("Value", "")) for c in (header or {}).get("Cells") or []]
    if "YTD Debit" not in titles or "YTD Credit" not in titles:
        raise ValueError(f"the Trial Balance has no YTD Debit and YTD Credit columns: {titles}")
    debit_at, credit_at = titles.index("YTD Debit"), titles.index("YTD Credit")
    out: dict[str, TrialBalanceRow] = {}
    for section in rows:
        for row in section.get("Rows") or []:
            cells = row.get("Cells") or []
            if row.get("RowType") != "Row" or len(cells) <= max(debit_at, credit_at):
                continue
            label = str(cells[0].get("Value", ""))
            account_id = next(
                (str(a.get("Value")) for a in cells[0].get("Attributes") or [] if a.get("Id") == "account"), ""
            )
            code = codes_by_id.get(account_id.lower(), "")
            if not code and label.endswith(")") and "(" in label:
                code = label[label.rindex("(") + 1 : -1]
            name = label[: label.rindex("(")].strip() if label.endswith(")") and "(" in label else label
            ytd = _dec(cells[debit_at].get("Value")) - _dec(cells[credit_at].get("Value"))
            out[code] = TrialBalanceRow(account_id, code, name, ytd)
    return out


# The longest period one Reconcile covers: it reads a Trial Balance at the day before the period,
# at each financial year end inside it and at its last day, so at most MAX_YEARS + 2 reports,
# all through the tenant's rate budget that posting shares (Xero allows 5,000 calls per tenant
# per day: developer.xero.com/documentation/guides/oauth2/limits).
MAX_YEARS = 10


def _years_later(day: dt.date, years: int) -> dt.date:
    """The same day `years` later (29 February to 1 March when that year has no 29 February)."""
    year = day.year + years
    if day.day > calendar.monthrange(year, day.month)[1]:
        return dt.date(year, day.month + 1, 1)
    return dt.date(year, day.month, day.day)


def period_problems(first: dt.date, last: dt.date) -> dict[str, str]:
    """What makes [first, last] a period reconciliation cannot read, by request field (empty when
    none): the day before `first` must be a date, and the period at most MAX_YEARS years long."""
    problems: dict[str, str] = {}
    if first == dt.date.min:
        problems["from_date"] = (
            f"{first} has no day before it, where the period's opening Trial Balance is read; start on a later day"
        )
    latest = _years_later(first, MAX_YEARS) - dt.timedelta(days=1) if first.year + MAX_YEARS <= dt.MAXYEAR else None
    if latest is not None and last > latest:
        problems["to_date"] = (
            f"a period of at most {MAX_YEARS} years: from {first} reconcile to {latest} at the latest, and the "
            "years after it in further requests"
        )
    return problems


def year_end_on_or_before(day: dt.date, end_day: int, end_month: int) -> dt.date:
    """The last financial year end on or before `day` (Organisation's FinancialYearEndDay/Month);
    dt.date.min when the calendar has none before it."""

    def end_of(year: int) -> dt.date:
        if year < dt.MINYEAR:
            return dt.date.min
        return dt.date(year, end_month, min(end_day, calendar.monthrange(year, end_month)[1]))

    end = end_of(day.year)
    return end if end <= day else end_of(day.year - 1)


def report_dates(first: dt.date, last: dt.date, end_day: int, end_month: int) -> list[dt.date]:
    """The Trial Balance dates reconciliation reads: the day before the period, each financial
    year end inside it (revenue and expense YTD restart after it), and its last day."""
    dates = [first - dt.timedelta(days=1)]
    end = year_end_on_or_before(last, end_day, end_month)
    ends = []
    while end >= first and end > dt.date.min:
        if end < last:
            ends.append(end)
        end = year_end_on_or_before(end - dt.timedelta(days=1), end_day, end_month)
    return [*dates, *sorted(ends), last]


def xero_movement(
    balances: Mapping[dt.date, Mapping[str, TrialBalanceRow]],
    first: dt.date,
    last: dt.date,
    end_day: int,
    end_month: int,
    profit_codes: Iterable[str],
    retained_code: str,
) -> dict[str, Decimal]:
    """Each account's movement in [first, last] from YTD balances at report_dates: asset,
    liability and equity accounts by the difference of their YTD (which includes earlier years);
    revenue and expense accounts per financial year (their YTD restarts), and Retained Earnings
    without the profit Xero carries into it at each year end."""
    dates = report_dates(first, last, end_day, end_month)
    profit = set(profit_codes)
    before, end = balances[dates[0]], balances[last]

    def ytd(at: Mapping[str, TrialBalanceRow], code: str) -> Decimal:
        row = at.get(code)
        return row.ytd if row else ZERO

    codes = set(before) | set(end)
    for day in dates:
        codes |= set(balances[day])
    out: dict[str, Decimal] = {}
    year_ends = [d for d in dates[:-1] if year_end_on_or_before(d, end_day, end_month) == d]
    for code in codes:
        if code in profit:
            moved = ZERO
            start = dates[0]
            for day in dates[1:]:
                opening = (
                    ZERO if year_end_on_or_before(start, end_day, end_month) == start else ytd(balances[start], code)
                )
                moved += ytd(balances[day], code) - opening
                start = day
        else:
            moved = ytd(end, code) - ytd(before, code)
            if code == retained_code:
                for day in year_ends:
                    moved -= sum((r.ytd for c, r in balances[day].items() if c in profit), ZERO)
        if moved:
            out[code] = moved
    return out


# -- comparison -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    link: str
    xero_id: str
    object_type: int
    amount: Decimal
    reason: str
    drift: str = ""


@dataclass
class AccountResult:
    code: str
    name: str
    posted: Decimal
    xero: Decimal
    explanations: list[Explanation] = field(default_factory=list)

    @property
    def difference(self) -> Decimal:
        return self.xero - self.posted

    @property
    def unexplained(self) -> Decimal:
        return self.difference - sum((e.amount for e in self.explanations), ZERO)


@dataclass(frozen=True)
class Cause:
    """Something that moves Xero's ledger away from what xerolink posted: its effect per account."""

    link: str
    xero_id: str
    object_type: int
    reason: str
    effect: Mapping[str, Decimal]
    drift: str = ""


def compare(
    posted: Mapping[str, Decimal],
    xero: Mapping[str, Decimal],
    causes: Iterable[Cause],
    names: Mapping[str, str],
) -> list[AccountResult]:
    """Every account either side moved (or a cause touches), by code, with the causes' parts."""
    results: dict[str, AccountResult] = {}
    for code in sorted(set(posted) | set(xero)):
        results[code] = AccountResult(code, names.get(code, ""), posted.get(code, ZERO), xero.get(code, ZERO))
    for cause in causes:
        for code, amount in sorted(cause.effect.items()):
            if not amount:
                continue
            result = results.setdefault(code, AccountResult(code, names.get(code, ""), ZERO, ZERO))
            result.explanations.append(
                Explanation(cause.link, cause.xero_id, cause.object_type, amount, cause.reason, cause.drift)
            )
    return [results[code] for code in sorted(results)]


def trust_balances(lines: Iterable[tuple[int, Decimal]]) -> dict[int, Decimal]:
    """Each matter's trust balance (credit positive, what the firm holds for it) from the
    movements on the trust liability account, debit positive, per matter."""
    out: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for action_id, amount in lines:
        out[action_id] -= amount
    return {a: b for a, b in sorted(out.items()) if b}


def line_matter(journal: tuple[int, int] | None, amount: Decimal) -> int:
    """The matter of a trust journal's line on the trust liability that carries no tracking option:
    a debit (the liability falls) is the paying matter's, a credit the receiving matter's; 0 when
    the line is no such journal's."""
    if journal is None or not amount:
        return 0
    paying, receiving = journal
    return paying if amount > 0 else receiving


def trust_lines(doc: Mapping[str, Any] | None, object_type: int, liability: str) -> list[tuple[str, Decimal]]:
    """The object's lines on the trust liability account: (its tracking option's name or id,
    lowercased, or "", amount debit positive). Every line of an object Xero counts, also of a
    journal from one matter to another, whose two lines on the liability account net to nothing
    on the account but move each matter's balance."""
    if not doc or not counted(object_type, doc):
        return []
    key = "JournalLines" if object_type == MANUAL_JOURNAL else "LineItems"
    if object_type == BANK_TRANSACTION:
        sign = -1 if str(doc.get("Type") or "").upper().startswith("RECEIVE") else 1
    elif object_type == MANUAL_JOURNAL:
        sign = 1
    else:
        return []
    out = []
    for line in doc.get(key) or []:
        if str(line.get("AccountCode") or "") != liability:
            continue
        # Xero's answer names the option (Tracking Name/Option); a request may carry its id.
        option = next((str(t.get("Option") or t.get("TrackingOptionID") or "") for t in line.get("Tracking") or []), "")
        out.append((option.lower(), sign * _dec(line.get("LineAmount"))))
    return out
