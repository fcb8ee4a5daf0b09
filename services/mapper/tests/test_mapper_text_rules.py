"""Text Xero would refuse, or store as something nobody can read, is refused at the mapper's door:
INVALID_ARGUMENT naming the field, before the poster has accepted anything."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from mapper_factories import cents, context, line, totals_of, transaction
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper.domain.mapping import map_transaction
from xerolink_mapper.domain.model import (
    BankAmountBody,
    DocumentBody,
    GeneralJournalBody,
    JournalLine,
    Kind,
    Line,
    MappingContext,
    Participant,
    PaymentBody,
    Profile,
    Transaction,
    TransferBody,
    TrustJournalBody,
)
from xerolink_mapper.domain.problems import Problems
from xerolink_mapper.domain.text import TextRule, check_text
from xerolink_mapper.domain.xero_fields import (
    ACCOUNT_CODE_LENGTH,
    CONTACT_NAME_LENGTH,
    CONTACT_TAX_NUMBER_LENGTH,
    REFERENCE_LENGTH,
)

# Characters that show nothing: whitespace, zero-width and other format characters, combining
# marks with no base, Hangul fillers.
INVISIBLE = " \u00a0\u2003\u3000\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u0301\u034f\ufe0f\u3164\u115f\u2800"
# C0 and C1 controls other than tab, line feed and carriage return.
CONTROLS = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0))]


def bill(lines: list[Line] | None = None, number: str = "INV-7", **header_changes: Any) -> Transaction:
    lines = lines or [line("200", "GST", 100, 10)]
    body = DocumentBody(number, tuple(lines), totals_of(lines), due_date=date(2026, 4, 1))
    return transaction(Kind.CLIENT_BILL, body, **header_changes)


def named(**participant: Any) -> Transaction:
    return bill(participant=replace(Participant(501, "Harper & Cole Pty Ltd"), **participant))


def violations(tx: Transaction, ctx: MappingContext | None = None) -> list[tuple[str, str]]:
    with pytest.raises(XerolinkError) as caught:
        map_transaction(tx, ctx or context())
    err = caught.value
    assert err.code is ErrorCode.INVALID_ARGUMENT, err
    return [(v.field, v.description) for v in err.field_violations]


def fields(tx: Transaction, ctx: MappingContext | None = None) -> list[str]:
    return [path for path, _ in violations(tx, ctx)]


# -- names Xero needs visible -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [" ", "\u00a0", "\u200b", "\u200b\u200c\u200d", "\ufeff", "\u2060 ", "\u0301", "\u3164"]
)
def test_a_contact_name_that_shows_nothing_is_refused(name: str) -> None:
    ((path, description),) = violations(named(display_name=name))
    assert path == "transaction.header.participant.display_name"
    assert "whitespace or invisible" in description


def test_a_name_made_from_blank_first_and_last_names_is_refused() -> None:
    paths = fields(named(display_name="", first_name="\u200b", last_name=" "))
    assert "transaction.header.participant.display_name" in paths
    assert "transaction.header.participant.first_name" in paths
    assert "transaction.header.participant.last_name" in paths


def test_a_name_with_an_invisible_character_among_visible_ones_is_kept_as_sent() -> None:
    outcome = map_transaction(named(display_name="Zoe\u200b Smith"), context())
    assert outcome.operations[0].body.contact.name == "Zoe\u200b Smith"  # type: ignore[union-attr]


def test_a_journal_narration_that_shows_nothing_is_refused() -> None:
    journal = GeneralJournalBody(
        "\u200b \u200b", (JournalLine("420", "a", cents(100)), JournalLine("310", "b", cents(-100)))
    )
    assert fields(transaction(Kind.GENERAL_JOURNAL, journal), context(Profile.EXTENDED)) == [
        "transaction.general_journal.narration"
    ]


@pytest.mark.parametrize("account", [" ", "\u200b", "\u00a0\u00a0"])
def test_an_account_code_that_shows_nothing_is_refused(account: str) -> None:
    assert fields(bill([line(account, "GST", 100, 10, "Fee")])) == ["transaction.client_bill.lines[0].gl_account"]
    payment = transaction(Kind.CLIENT_BILL_PAYMENT, PaymentBody(1001, cents(100), account))
    assert fields(payment) == ["transaction.client_bill_payment.bank_account"]


def test_a_sales_document_number_that_shows_nothing_is_refused() -> None:
    assert fields(bill(number="\u200b")) == ["transaction.client_bill.bill_number"]


@pytest.mark.parametrize(
    ("tx", "path"),
    [
        (bill(reference="  "), "transaction.header.reference"),
        (bill([line("200", "GST", 100, 10, description="\u200b\n")]), "transaction.client_bill.lines[0].description"),
        (named(email="\u200b"), "transaction.header.participant.email"),
        (named(tax_number=" "), "transaction.header.participant.tax_number"),
        (
            transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(100), "", "\ufeff")),
            "transaction.trust_receipt.description",
        ),
        (transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(100)), memo=" "), "transaction.header.memo"),
    ],
)
def test_optional_text_that_shows_nothing_is_refused_rather_than_sent(tx: Transaction, path: str) -> None:
    """Empty means absent; text of invisible characters alone is a mistake to fix at the source."""
    ((got, description),) = violations(tx)
    assert got == path
    assert "leave it empty" in description


# -- control characters --------------------------------------------------------------------------


@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\t", "\n", "\r"])
def test_a_control_character_in_single_line_text_is_refused(control: str) -> None:
    ((path, description),) = violations(bill(reference=f"AS-1{control}2"))
    assert path == "transaction.header.reference"
    assert f"U+{ord(control):04X}" in description


@pytest.mark.parametrize(
    ("tx", "path"),
    [
        (named(display_name="Harper\x00Cole"), "transaction.header.participant.display_name"),
        (named(first_name="Zoe\x1f"), "transaction.header.participant.first_name"),
        (named(last_name="\x08Smith"), "transaction.header.participant.last_name"),
        (named(email="a@b.example\r\n"), "transaction.header.participant.email"),
        (named(tax_number="12\x00345"), "transaction.header.participant.tax_number"),
        (bill(number="INV\x007"), "transaction.client_bill.bill_number"),
        (bill([line("20\x000", "GST", 100, 10, description="Fee")]), "transaction.client_bill.lines[0].gl_account"),
        (bill([line("200", "GST", 100, 10, description="Fee\x00")]), "transaction.client_bill.lines[0].description"),
        (
            transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(100), "09\x1b1")),
            "transaction.trust_receipt.trust_bank_account",
        ),
        (
            transaction(Kind.TRUST_JOURNAL, TrustJournalBody(7001, 7002, cents(100), "moved\nback")),
            "transaction.trust_journal.description",
        ),
        (
            transaction(Kind.TRUST_JOURNAL, TrustJournalBody(7001, 7002, cents(100)), memo="moved\tback"),
            "transaction.header.memo",
        ),
    ],
)
def test_a_control_character_in_any_text_passed_to_xero_is_refused(tx: Transaction, path: str) -> None:
    assert fields(tx) == [path]


def test_control_characters_in_transfer_accounts_and_journals_are_refused() -> None:
    extended = context(Profile.EXTENDED)
    transfer = transaction(Kind.OFFICE_BANK_TRANSFER, TransferBody("090\x00", "094\x7f", cents(100)))
    assert fields(transfer, extended) == [
        "transaction.office_bank_transfer.from_bank_account",
        "transaction.office_bank_transfer.to_bank_account",
    ]
    journal = GeneralJournalBody(
        "Fix\x00", (JournalLine("420", "a\x1b", cents(100)), JournalLine("31\x000", "b", cents(-100)))
    )
    assert fields(transaction(Kind.GENERAL_JOURNAL, journal), extended) == [
        "transaction.general_journal.lines[0].description",
        "transaction.general_journal.lines[1].gl_account",
        "transaction.general_journal.narration",
    ]


def test_multi_line_descriptions_keep_tabs_and_line_breaks() -> None:
    text = "Attendance:\r\n\tcall with client\n\tletter"
    outcome = map_transaction(bill([line("200", "GST", 100, 10, description=text)]), context())
    assert outcome.operations[0].body.line_items[0].description == text  # type: ignore[union-attr]
    receipt = transaction(Kind.TRUST_RECEIPT, BankAmountBody(cents(100), "", "Deposit\nfor settlement"))
    assert map_transaction(receipt, context()).operations


# -- lengths -------------------------------------------------------------------------------------


def test_a_tax_number_longer_than_xero_takes_is_refused() -> None:
    assert map_transaction(named(tax_number="9" * CONTACT_TAX_NUMBER_LENGTH), context()).operations
    ((path, description),) = violations(named(tax_number="9" * (CONTACT_TAX_NUMBER_LENGTH + 1)))
    assert path == "transaction.header.participant.tax_number"
    assert f"at most {CONTACT_TAX_NUMBER_LENGTH}" in description


def test_an_account_code_longer_than_xero_takes_is_refused() -> None:
    assert fields(bill([line("2" * (ACCOUNT_CODE_LENGTH + 1), "GST", 100, 10, "Fee")])) == [
        "transaction.client_bill.lines[0].gl_account"
    ]


def test_a_narration_longer_than_the_reference_budget_is_refused() -> None:
    """The poster tags a journal's narration as it tags references."""
    lines = (JournalLine("420", "a", cents(100)), JournalLine("310", "b", cents(-100)))
    extended = context(Profile.EXTENDED)
    assert map_transaction(
        transaction(Kind.GENERAL_JOURNAL, GeneralJournalBody("N" * REFERENCE_LENGTH, lines)), extended
    ).operations
    long = transaction(Kind.GENERAL_JOURNAL, GeneralJournalBody("N" * (REFERENCE_LENGTH + 1), lines))
    assert fields(long, extended) == ["transaction.general_journal.narration"]
    note = transaction(Kind.TRUST_JOURNAL, TrustJournalBody(7001, 7002, cents(100), "n" * REFERENCE_LENGTH))
    assert fields(note) == ["transaction.trust_journal.description"]


def test_an_email_address_with_umlauts_is_refused() -> None:
    """Xero's description of Contact.EmailAddress: "umlauts not supported"."""
    assert fields(named(email="jürgen@example.de")) == ["transaction.header.participant.email"]


def test_characters_beyond_the_basic_plane_count_twice_towards_a_limit() -> None:
    """Counted in UTF-16 units, the stricter way a JSON service may count: what fits here fits Xero."""
    emoji = "\U0001f600"
    assert map_transaction(named(display_name=emoji * (CONTACT_NAME_LENGTH // 2)), context()).operations
    ((_, description),) = violations(named(display_name=emoji * (CONTACT_NAME_LENGTH // 2 + 1)))
    assert "UTF-16" in description


# -- the rule itself, for any text -----------------------------------------------------------------

SINGLE = TextRule("a Xero reference", 255)
MULTI = TextRule("a Xero line description", 4000, multiline=True)
NAME = TextRule("a Xero contact name", 255, required=True)


def check(value: str, rule: TextRule) -> list[tuple[str, str]]:
    problems = Problems()
    check_text(value, "some.field", rule, problems)
    return [(v.field, v.description) for v in problems.fields]


@given(st.text(alphabet=INVISIBLE, min_size=1, max_size=40), st.sampled_from([SINGLE, MULTI, NAME]))
@example("\u200b", NAME)
@example("\t\n\r ", MULTI)
def test_any_text_made_only_of_whitespace_or_invisible_characters_is_refused(value: str, rule: TextRule) -> None:
    assert [path for path, _ in check(value, rule)] == ["some.field"]


@given(st.text(alphabet=INVISIBLE + "\t\n\r", min_size=1, max_size=40))
def test_blank_multi_line_text_is_refused_too(value: str) -> None:
    assert [path for path, _ in check(value, MULTI)] == ["some.field"]


# Visible characters: letters, digits, punctuation, symbols (not the Braille blank or fillers).
VISIBLE = st.characters(categories=("L", "N", "P", "S"), exclude_characters="\u2800\u3164\u115f\u1160\uffa0")
# Any character a single-line field may hold: everything but controls and lone surrogates.
PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"))


@given(st.text(PRINTABLE, max_size=120), VISIBLE, st.text(PRINTABLE, max_size=120))
@example("", "A", "")
@example("\u200b", "\u00e9", "\u0301 ")
def test_any_printable_text_with_something_visible_within_the_limit_passes(
    before: str, visible: str, after: str
) -> None:
    value = before + visible + after
    assert not check(value, SINGLE)
    assert not check(value, NAME)
    assert not check(value, MULTI)


@given(st.text(PRINTABLE, max_size=60), st.sampled_from(CONTROLS), st.text(PRINTABLE, max_size=60))
def test_any_text_with_a_control_character_is_refused_naming_it(before: str, control: str, after: str) -> None:
    for rule in (SINGLE, MULTI, NAME):
        ((path, description),) = check(before + control + after, rule)
        assert path == "some.field"
        assert f"U+{ord(control):04X}" in description


@given(st.text(VISIBLE, min_size=1, max_size=10), st.sampled_from("\t\n\r"))
def test_tab_and_line_breaks_pass_only_where_text_may_span_lines(value: str, control: str) -> None:
    assert not check(value + control + value, MULTI)
    assert [path for path, _ in check(value + control + value, SINGLE)] == ["some.field"]


@given(st.integers(1, 300))
def test_the_limit_is_inclusive(length: int) -> None:
    assert bool(check("x" * length, SINGLE)) == (length > SINGLE.limit)


def test_a_lone_surrogate_is_refused_where_a_domain_caller_could_pass_one() -> None:
    """It cannot arrive over gRPC (protobuf refuses strings that are not UTF-8), but the domain is
    also called directly."""
    ((_, description),) = check("ab\ud800", SINGLE)
    assert "U+D800" in description


def test_the_invisible_alphabet_of_these_tests_draws_nothing() -> None:
    """Guards the tests above: each character is a space, a format character, a mark or a filler."""
    for char in INVISIBLE:
        category = unicodedata.category(char)
        assert category in ("Zs", "Cf", "Mn", "Lo", "So"), (char, category)
