"""A realistic month of a law firm's Actionstep transactions, deterministic from a seed.

Every kind the actionstep-compatible profile posts appears: client bills with several lines over
fee and disbursement accounts (taxed and untaxed), partial and full payments, credit notes and
their applications, trust receipts and payments, invoices paid from trust, trust interest, trust
journals between matters, trust transfers, statutory and advanced funds, supplier invoices and
their payments, supplier credits and their applications.

The amounts respect what Actionstep itself enforces (a payment never exceeds what is due, a
matter's trust ledger never goes negative, a credit is never applied beyond what is left of it),
so every transaction is one Xero accepts. Transactions come in posting order: chronological, but
now and then a payment is posted before its bill, as happens when receipts are keyed first.

    python -m xerolink_cli.firm_generator --seed 7 --matters 300 > month.ndjson
    python -m xerolink_cli.firm_generator --seed 7 --region UK > month.ndjson

The firm is in one of the regions Actionstep serves (firm_month/regions.py: AU, NZ, UK, US, CA);
every amount is in the region's currency and every taxed line bears its standard rate, rounded
half up to the cent. Amounts are integer cents throughout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from google.protobuf import json_format
from xerolink.actionstep.v1 import transaction_pb2

from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.firm_month import client_side, suppliers, trust
from xerolink_cli.firm_month.builder import MonthBuilder
from xerolink_cli.firm_month.chart import SUPPLIERS
from xerolink_cli.firm_month.records import FirmMonth, Matter, OpenDocument, Party
from xerolink_cli.firm_month.regions import REGIONS, region_named


def generate_month(
    seed: int = 1, matters: int = 300, year: int = 2026, month: int = 3, region: str = "AU"
) -> FirmMonth:
    """A month of a firm in `region` (a key of REGIONS) with `matters` open matters,
    deterministic from `seed` and `region`."""
    firm_region = region_named(region)
    b = MonthBuilder(seed, year, month, firm_region)
    clients = b.clients(max(matters * 3 // 4, 1))
    all_matters = [
        Matter(3000 + i, clients[i % len(clients)] if i < len(clients) else b.rng.choice(clients))
        for i in range(matters)
    ]
    firm_suppliers = [(Party(800 + i, name), account) for i, (name, account) in enumerate(SUPPLIERS)]

    for matter in all_matters:
        if b.rng.random() < 0.45:
            trust.receipt(b, matter)
    # Trust journals between matters of one client, or to a related matter.
    for matter in all_matters:
        if matter.trust and b.rng.random() < 0.15:
            trust.journal(b, matter, b.rng.choice(all_matters))
    documents: list[OpenDocument] = []
    for matter in all_matters:
        for _ in range(b.rng.choice((0, 1, 1, 1, 2))):
            documents.append(client_side.bill(b, matter))
    # The first document of each side always gets a credit, so even a small month has every kind.
    for index, doc in enumerate(documents):
        if index == 0 or b.rng.random() < 0.12:
            client_side.credit_note(b, doc, always_apply=index == 0)
        client_side.receipts(b, doc)
    for matter in all_matters:
        if b.rng.random() < 0.25:
            trust.payment(b, matter)
    bills: list[tuple[OpenDocument, str]] = []
    for matter in all_matters:
        if b.rng.random() < 0.3:
            supplier, account = b.rng.choice(firm_suppliers[:5])
            bills.append((suppliers.invoice(b, supplier, account, matter), account))
    for supplier, account in firm_suppliers[5:]:
        for _ in range(max(matters // 60, 1)):
            bills.append((suppliers.invoice(b, supplier, account, None), account))
    for index, (doc, account) in enumerate(bills):
        if index == 0 or b.rng.random() < 0.1:
            suppliers.credit(b, doc, account, always_apply=index == 0)
        suppliers.payments(b, doc)
    held = sum(m.trust for m in all_matters)
    trust.interest(b, max(held // 4000, 1))
    trust.transfer(b, max(held // 50, 100))
    for _ in range(max(matters // 100, 1)):
        trust.funds(b, statutory=True, out_of_trust=True, amount=max(held // 20, 100))
        trust.funds(b, statutory=False, out_of_trust=b.rng.random() < 0.5, amount=b.cents(1_000, 20_000))
    trust.funds(b, statutory=True, out_of_trust=False, amount=max(held // 100, 100))
    transactions, early = b.posting_order()
    return FirmMonth(seed, firm_region, year, month, all_matters, transactions, early)


def to_ndjson(transactions: list[transaction_pb2.Transaction]) -> Iterator[str]:
    """One protobuf-JSON transaction a line, the format `xerolink post` reads."""
    for tx in transactions:
        yield json_format.MessageToJson(tx, indent=None)


def main(argv: list[str] | None = None) -> ExitCode:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--matters", type=int, default=300)
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument("--month", type=int, default=3)
    parser.add_argument("--region", choices=sorted(REGIONS), default="AU")
    args = parser.parse_args(argv)
    month = generate_month(args.seed, args.matters, args.year, args.month, args.region)
    for line in to_ndjson(month.transactions):
        sys.stdout.write(line + "\n")
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
