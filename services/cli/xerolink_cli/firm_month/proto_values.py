"""The protobuf values a transaction is built of, from plain dates and integer cents."""

from __future__ import annotations

import datetime as dt

from xerolink.actionstep.v1 import common_pb2
from xerolink.type.v1 import date_pb2, money_pb2


def date(on: dt.date) -> date_pb2.Date:
    return date_pb2.Date(year=on.year, month=on.month, day=on.day)


def money(cents: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, units=cents)


def line(
    description: str,
    quantity: str,
    unit_cents: int,
    account: str,
    tax_code: str,
    amount: money_pb2.Money,
    tax: money_pb2.Money,
) -> common_pb2.Line:
    return common_pb2.Line(
        description=description,
        quantity=quantity,
        unit_price=f"{unit_cents // 100}.{unit_cents % 100:02d}",
        gl_account=account,
        tax_code=tax_code,
        amount=amount,
        tax=tax,
    )


def totals(lines: list[common_pb2.Line], currency: str) -> common_pb2.Totals:
    exclusive = sum(line.amount.units for line in lines)
    tax = sum(line.tax.units for line in lines)
    return common_pb2.Totals(
        exclusive=money(exclusive, currency), tax=money(tax, currency), inclusive=money(exclusive + tax, currency)
    )
