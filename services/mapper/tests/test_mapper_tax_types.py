"""Tax types come from the connection, never from a country written into the mapper: the tax-code
maps, the organisation's types for lines without a tax code, and its tax rates."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.protobuf.message import Message
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import ErrorCode, XerolinkError
from xerolink_mapper.adapters.mapping_calls import map_request
from xerolink_mapper.samples import demo_context, sample_transactions

SAMPLES = sample_transactions()
# A New Zealand organisation's tax types (Xero's NZ TaxRates), none of them an Australian one.
NZ_SALES = {"GST": "OUTPUT2", "FRE": "ZERORATED", "NTR": "NONE"}
NZ_PURCHASES = {"GST": "INPUT2", "FRE": "ZERORATED", "NTR": "NONE"}
NZ_UNTAXED = mapper_pb2.UntaxedLineTaxTypes(
    trust_money="NONE", interest_on_trust="NONE", journal_without_tax_code="NONE"
)
NZ_RATES = ("OUTPUT2", "INPUT2", "ZERORATED", "NONE", "GSTONIMPORTS")


def nz_context(**changes: object) -> mapper_pb2.MappingContext:
    # The extended profile, which posts the most kinds (general journals among them).
    context = demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
    context.tax_code_map.clear()
    context.tax_code_map.update(NZ_SALES)
    context.purchase_tax_code_map.clear()
    context.purchase_tax_code_map.update(NZ_PURCHASES)
    context.untaxed_line_tax_types.CopyFrom(NZ_UNTAXED)
    for name, value in changes.items():
        field = getattr(context, name)
        if isinstance(value, Message):
            field.CopyFrom(value)
        else:
            del field[:]
            field.extend(value)
    return context


def tax_types(message: Message) -> Iterator[str]:
    for descriptor, value in message.ListFields():
        if descriptor.name == "tax_type":
            yield value
        elif descriptor.message_type is not None:
            items = value if descriptor.is_repeated else [value]
            for item in items:
                if isinstance(item, Message):
                    yield from tax_types(item)


def mapped(kind: str, context: mapper_pb2.MappingContext) -> mapper_pb2.MapTransactionResponse:
    return map_request(mapper_pb2.MapTransactionRequest(transaction=SAMPLES[kind], context=context))


def refusal(kind: str, context: mapper_pb2.MappingContext) -> XerolinkError:
    with pytest.raises(XerolinkError) as caught:
        mapped(kind, context)
    return caught.value


# Every slot a distinct custom tax type (Xero names an organisation's own rates TAX001, TAX002, ...),
# so a tax type the mapper wrote in itself cannot hide behind an equal one of the connection's.
MARKED_SALES = {"GST": "TAX001", "FRE": "TAX002", "NTR": "TAX003"}
MARKED_PURCHASES = {"GST": "TAX004", "FRE": "TAX005", "NTR": "TAX006"}
MARKED_UNTAXED = mapper_pb2.UntaxedLineTaxTypes(
    trust_money="TAX007", interest_on_trust="TAX008", journal_without_tax_code="TAX009"
)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_kind_takes_its_tax_types_from_the_connection_only(kind: str) -> None:
    context = nz_context(untaxed_line_tax_types=MARKED_UNTAXED)
    context.tax_code_map.clear()
    context.tax_code_map.update(MARKED_SALES)
    context.purchase_tax_code_map.clear()
    context.purchase_tax_code_map.update(MARKED_PURCHASES)
    named = {*MARKED_SALES.values(), *MARKED_PURCHASES.values(), *(v for _, v in MARKED_UNTAXED.ListFields())}
    response = mapped(kind, context)
    used = {t for op in response.operations for t in tax_types(op)}
    assert used <= named, f"{kind} used {sorted(used - named)}, which the connection never named"


def test_the_kinds_with_lines_use_each_slot_of_the_connection() -> None:
    """The test above is not vacuous: together the samples use every tax type the context names."""
    context = nz_context(untaxed_line_tax_types=MARKED_UNTAXED)
    context.tax_code_map.clear()
    context.tax_code_map.update(MARKED_SALES)
    context.purchase_tax_code_map.clear()
    context.purchase_tax_code_map.update(MARKED_PURCHASES)
    used = {t for kind in SAMPLES for op in mapped(kind, context).operations for t in tax_types(op)}
    assert {"TAX001", "TAX002", "TAX004", "TAX007", "TAX008", "TAX009"} <= used


@pytest.mark.parametrize(
    ("kind", "field", "expected"),
    [
        ("trust_receipt", "trust_money", "TRUSTRECEIPT"),
        ("trust_payment", "trust_money", "TRUSTPAYMENT"),
        ("trust_journal", "trust_money", "TRUSTJOURNAL"),
        ("invoice_paid_from_trust", "trust_money", "FROMTRUST"),
        ("trust_interest", "interest_on_trust", "TRUSTINTEREST"),
    ],
)
def test_a_trust_line_carries_the_connections_tax_type_for_it(kind: str, field: str, expected: str) -> None:
    untaxed = mapper_pb2.UntaxedLineTaxTypes(trust_money="NONE", interest_on_trust="NONE")
    setattr(untaxed, field, expected)
    response = mapped(kind, nz_context(untaxed_line_tax_types=untaxed))
    assert expected in {t for op in response.operations for t in tax_types(op)}


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("trust_receipt", "trust_money"),
        ("trust_payment", "trust_money"),
        ("trust_journal", "trust_money"),
        ("invoice_paid_from_trust", "trust_money"),
        ("trust_interest", "interest_on_trust"),
        ("general_journal", "journal_without_tax_code"),
    ],
)
def test_a_kind_whose_tax_type_the_connection_lacks_is_a_precondition_naming_the_field(kind: str, field: str) -> None:
    untaxed = mapper_pb2.UntaxedLineTaxTypes()
    untaxed.CopyFrom(NZ_UNTAXED)
    setattr(untaxed, field, "")
    error = refusal(kind, nz_context(untaxed_line_tax_types=untaxed))
    assert error.code is ErrorCode.FAILED_PRECONDITION
    subjects = [(v.type, v.subject) for v in error.precondition_violations]
    # Named once, even for a journal with several lines without a tax code.
    assert subjects == [("UNTAXED_TAX_TYPE_NOT_MAPPED", f"context.untaxed_line_tax_types.{field}")]


def test_kinds_whose_lines_all_carry_tax_codes_need_no_untaxed_tax_types() -> None:
    context = nz_context(untaxed_line_tax_types=mapper_pb2.UntaxedLineTaxTypes())
    assert mapped("client_bill", context).decision.supported


def rates(*types: str, status: str = "ACTIVE") -> list[mapper_pb2.TaxRate]:
    return [mapper_pb2.TaxRate(tax_type=t, name=f"Rate {t}", status=status) for t in types]


def test_a_tax_type_the_organisation_has_passes_the_rates_check() -> None:
    context = nz_context(tax_rates=rates(*NZ_RATES))
    for kind in ("client_bill", "supplier_invoice", "trust_receipt", "general_journal"):
        assert mapped(kind, context).operations, kind


def test_an_australian_tax_type_in_a_new_zealand_organisation_is_a_precondition_naming_it() -> None:
    context = nz_context(tax_rates=rates(*NZ_RATES))
    context.tax_code_map["GST"] = "OUTPUT"  # AU's GST on Income: NZ's Xero has no such rate
    error = refusal("client_bill", context)
    assert error.code is ErrorCode.FAILED_PRECONDITION
    assert [(v.type, v.subject) for v in error.precondition_violations] == [("TAX_TYPE_NOT_IN_ORGANISATION", "OUTPUT")]


@pytest.mark.parametrize("status", ["DELETED", "ARCHIVED", "PENDING"])
def test_a_tax_rate_that_is_not_active_is_a_precondition(status: str) -> None:
    context = nz_context(tax_rates=[*rates("INPUT2", "ZERORATED", "NONE"), *rates("OUTPUT2", status=status)])
    error = refusal("client_bill", context)
    assert [(v.type, v.subject) for v in error.precondition_violations] == [("TAX_TYPE_NOT_IN_ORGANISATION", "OUTPUT2")]
    assert status.lower() in error.precondition_violations[0].description


def test_the_untaxed_tax_type_is_checked_against_the_rates_too() -> None:
    untaxed = mapper_pb2.UntaxedLineTaxTypes(trust_money="BASEXCLUDED", interest_on_trust="NONE")
    error = refusal("trust_receipt", nz_context(untaxed_line_tax_types=untaxed, tax_rates=rates(*NZ_RATES)))
    assert [(v.type, v.subject) for v in error.precondition_violations] == [
        ("TAX_TYPE_NOT_IN_ORGANISATION", "BASEXCLUDED")
    ]


def test_a_tax_rate_without_a_tax_type_is_a_field_error() -> None:
    error = refusal("client_bill", nz_context(tax_rates=[*rates(*NZ_RATES), mapper_pb2.TaxRate(name="?")]))
    assert error.code is ErrorCode.INVALID_ARGUMENT
    assert [v.field for v in error.field_violations] == [f"context.tax_rates[{len(NZ_RATES)}].tax_type"]


def test_a_tax_type_xero_does_not_allow_on_the_lines_account_class_is_a_precondition() -> None:
    """New Zealand's Zero Rated applies to revenue and liabilities only (CanApplyToExpenses false in
    Xero's getTaxRates example): a purchase line on an expense account cannot take it."""
    context = nz_context(tax_rates=rates(*NZ_RATES))
    for account in context.chart:
        account.account_class = {"REVENUE": "REVENUE", "EXPENSE": "EXPENSE", "BANK": "ASSET"}.get(
            account.type, "LIABILITY"
        )
    for rate in context.tax_rates:
        rate.account_classes.extend(
            ["REVENUE", "LIABILITY"]
            if rate.tax_type == "ZERORATED"
            else ["ASSET", "EQUITY", "EXPENSE", "LIABILITY", "REVENUE"]
        )
    assert mapped("client_bill", context).operations  # ZERORATED on revenue: allowed
    context.purchase_tax_code_map["GST"] = "ZERORATED"
    error = refusal("supplier_invoice", context)
    assert error.code is ErrorCode.FAILED_PRECONDITION
    violations = [(v.type, v.subject) for v in error.precondition_violations]
    # Named once per account it is placed on (the sample bill has two expense accounts).
    assert violations == [("TAX_TYPE_NOT_FOR_ACCOUNT", "ZERORATED")] * 2
    assert "expense account" in error.precondition_violations[0].description
    # Without the classes (a caller that sends none) nothing is checked.
    for rate in context.tax_rates:
        del rate.account_classes[:]
    assert mapped("supplier_invoice", context).operations
