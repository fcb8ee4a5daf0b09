"""The numbered kinds the poster stores and sends: Actionstep transaction kinds, Xero object types
and link groups. Plain enums, so the domain needs no generated code; the numbers and names are the
proto enums' (without their prefix), because the numbers are stored in the registry and sent over
the wire. tests check them value for value against the generated enums."""

from __future__ import annotations

from enum import IntEnum


class TransactionKind(IntEnum):
    """xerolink.actionstep.v1.TransactionKind."""

    UNSPECIFIED = 0
    CLIENT_BILL = 1
    CLIENT_BILL_PAYMENT = 2
    CREDIT_NOTE = 3
    CREDIT_NOTE_APPLICATION = 4
    CREDIT_NOTE_REFUND = 5
    OVERPAYMENT_REFUND = 6
    GENERAL_RETAINER = 7
    TRUST_RECEIPT = 8
    TRUST_PAYMENT = 9
    TRUST_JOURNAL = 10
    TRUST_TRANSFER = 11
    TRUST_INTEREST = 12
    INVOICE_PAID_FROM_TRUST = 13
    STATUTORY_FUNDS = 14
    ADVANCED_FUNDS = 15
    TRUST_BANK_RECONCILIATION = 16
    SUPPLIER_INVOICE = 17
    SUPPLIER_INVOICE_PAYMENT = 18
    SUPPLIER_CREDIT = 19
    SUPPLIER_CREDIT_APPLICATION = 20
    PURCHASE_ORDER = 21
    PURCHASE_CREDIT_ORDER = 22
    PRE_ENTERED_SUPPLIER_INVOICE = 23
    BANK_DEPOSIT = 24
    BANK_WITHDRAWAL = 25
    OFFICE_BANK_TRANSFER = 26
    ELECTRONIC_PAYMENT_BATCH = 27
    BANK_RECONCILIATION = 28
    PRINTED_CHEQUE = 29
    DEPOSIT_SLIP = 30
    GENERAL_JOURNAL = 31
    SALES_TAX_RETURN = 32


class ObjectType(IntEnum):
    """xerolink.xero.v1.ObjectType: the type of a Xero object a link holds."""

    UNSPECIFIED = 0
    CONTACT = 1
    INVOICE = 2
    CREDIT_NOTE = 3
    PAYMENT = 4
    ALLOCATION = 5
    BANK_TRANSACTION = 6
    BANK_TRANSFER = 7
    MANUAL_JOURNAL = 8
    OVERPAYMENT = 9


class LinkGroup(IntEnum):
    """xerolink.poster.v1.LinkGroup: the groups the seed lists links in."""

    UNSPECIFIED = 0
    SALES_INVOICES = 1
    PAYMENTS = 2
    BANK_TRANSACTIONS = 3
    CREDIT_NOTES = 4
