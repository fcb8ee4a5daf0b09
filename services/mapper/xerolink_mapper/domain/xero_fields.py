"""What each Xero field the mapper fills with Actionstep text will take.

The lengths are those of Xero's OpenAPI description of the Accounting API (xero_accounting.yaml,
components/schemas/<Object>/properties/<Field>, `maxLength` or, for Account.Code, "(max length =
10)" in its description); services/mapper/tests/test_mapper_xero_limits.py reads each from the
file. Where the description bounds nothing (references, credit note numbers, narrations, line
descriptions) the mapper's own budget below applies, or none."""

from __future__ import annotations

from xerolink_mapper.domain.text import TextRule

CONTACT_NAME_LENGTH = 255  # Contact.Name
CONTACT_NUMBER_LENGTH = 50  # Contact.ContactNumber
CONTACT_FIRST_NAME_LENGTH = 255  # Contact.FirstName
CONTACT_LAST_NAME_LENGTH = 255  # Contact.LastName
CONTACT_EMAIL_LENGTH = 255  # Contact.EmailAddress ("umlauts not supported")
CONTACT_TAX_NUMBER_LENGTH = 50  # Contact.TaxNumber
INVOICE_NUMBER_LENGTH = 255  # Invoice.InvoiceNumber; credit note numbers are held to it too
ACCOUNT_CODE_LENGTH = 10  # Account.Code: the codes of lines and bank accounts
TRACKING_CATEGORY_NAME_LENGTH = 100  # TrackingCategory.Name: MappingContext.matter_tracking.category_name

# The description gives references no maxLength; the mapper holds them to 200 so that with the
# tag of up to 45 characters the poster adds naming the Actionstep record (" [AS-CBP-7001] #2")
# they stay within the 255 of Xero's other text fields. A journal's narration is its reference.
TRACKING_TAG_LENGTH = 45  # " [AS-PESI-<int64 id>] #<int32 generation>" is 42: tests/contract/test_tag_budget.py
REFERENCE_LENGTH = 200

CONTACT_NAME = TextRule("a Xero contact name", CONTACT_NAME_LENGTH, required=True)
CONTACT_FIRST_NAME = TextRule("a Xero contact's first name", CONTACT_FIRST_NAME_LENGTH)
CONTACT_LAST_NAME = TextRule("a Xero contact's last name", CONTACT_LAST_NAME_LENGTH)
CONTACT_EMAIL = TextRule("a Xero contact's email address", CONTACT_EMAIL_LENGTH, ascii_only=True)
CONTACT_TAX_NUMBER = TextRule("a Xero contact's tax number", CONTACT_TAX_NUMBER_LENGTH)
INVOICE_NUMBER = TextRule("a Xero invoice number", INVOICE_NUMBER_LENGTH, required=True)
CREDIT_NOTE_NUMBER = TextRule("a Xero credit note number", INVOICE_NUMBER_LENGTH, required=True)
REFERENCE = TextRule("a reference", REFERENCE_LENGTH)
# On bills and supplier credits Xero drops Reference ("ACCREC only"), so the poster's tag follows
# the supplier's number in InvoiceNumber / CreditNoteNumber: the number gets a reference's budget.
SUPPLIER_NUMBER = TextRule("a Xero bill or supplier credit number, followed by the record's tag", REFERENCE_LENGTH)
NARRATION = TextRule("a Xero journal narration", REFERENCE_LENGTH, required=True)
ACCOUNT_CODE = TextRule("a Xero account code", ACCOUNT_CODE_LENGTH, required=True)
# Line descriptions may span lines, as in Xero's own invoice and journal screens.
LINE_DESCRIPTION = TextRule("a Xero line description", multiline=True)


def contact_number(participant_id: int) -> str:
    """The contact's stable key in Xero: participants are matched by it, never by name."""
    return f"AS-{participant_id}"
