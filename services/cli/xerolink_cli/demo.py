"""`xerolink demo`: a newcomer's first look at the whole flow with no Xero account."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.allocation_functions import AllocationFunction
from xerolink_common.money import cents_to_str, decimal_to_cents

from xerolink_cli.commands import exit_code, post_all, results_table, summary
from xerolink_cli.connections import register_emulated_connection
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.firm_month.localise import localise_all
from xerolink_cli.firm_month.regions import AU, REGIONS, FirmRegion
from xerolink_cli.local_stack import LocalStack
from xerolink_cli.notes import Notes
from xerolink_cli.transactions import demo_transactions

FIRM = "Harbour & Finch Lawyers"
CONNECTION_ID = "harbour-finch"
# The allocation the first connected organisation writes (function -> the demo chart's codes).
ALLOCATION: dict[str, str] = {
    AllocationFunction.OFFICE_BANK: "090",
    AllocationFunction.TRUST_BANK: "091",
    AllocationFunction.STATUTORY_DEPOSIT: "092",
    AllocationFunction.ADVANCED_FUNDS: "093",
    AllocationFunction.TRUST_INTEREST: "270",
    AllocationFunction.TRUST_LIABILITY: "850",
    AllocationFunction.TRUST_TRANSFERS: "855",
    AllocationFunction.TRUST_PAID_BY_FIRM: "860",
}


def mapping_context(region: FirmRegion = AU) -> mapper_pb2.MappingContext:
    """The firm's connection: its codes mapped to the tax types of its country's organisation."""
    connected = Timestamp()
    connected.FromJsonString("2026-11-01T00:00:00Z")
    sales, purchases = region.tax_maps()
    return mapper_pb2.MappingContext(
        profile=mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE,
        linked_division_id=1,
        connected_at=connected,
        base_currency_code=region.currency,
        accounting_method=mapper_pb2.ACCOUNTING_METHOD_ACCRUAL,
        account_allocation=ALLOCATION,
        tax_code_map=sales,
        purchase_tax_code_map=purchases,
        untaxed_line_tax_types=mapper_pb2.UntaxedLineTaxTypes(**region.untaxed()),
    )


def connect(stack: LocalStack, stub: poster_grpc.PosterServiceStub, region: FirmRegion) -> str:
    """Creates the firm's organisation, of its region, in the emulator and registers the connection."""
    org = httpx.post(
        f"{stack.emulator_url}/emulator/organisations", json={"name": FIRM, "region": region.key}, timeout=10
    )
    org.raise_for_status()
    created: dict[str, Any] = org.json()
    register_emulated_connection(stub, CONNECTION_ID, stack.emulator_url, created, mapping_context(region))
    return str(created["tenant_id"])


def ledger_table(ledger: dict[str, Any]) -> Table:
    table = Table(title=f"{FIRM} in the emulated Xero: balances per account")
    table.add_column("account")
    table.add_column("name")
    table.add_column("balance (debit +)", justify="right")
    for row in ledger.get("accounts", []):
        units = decimal_to_cents(str(row["Balance"]))
        if units:
            table.add_row(str(row["Code"]), str(row.get("Name", "")), cents_to_str(units))
    return table


def demo(args: argparse.Namespace, console: Console) -> ExitCode:
    region = REGIONS[args.region]
    transactions = localise_all(demo_transactions(), region)
    console.print(
        f"[bold]xerolink demo[/bold]: {len(transactions)} transactions of {FIRM} (a week in November), "
        f"a firm in {args.region} keeping its books in {region.currency}"
    )
    with LocalStack(Path(args.workdir), keep_running=args.keep_running) as stack:
        console.print(
            f"emulator {stack.emulator_url}  mapper {stack.mapper_target}  poster {stack.poster_target}"
            f"  (logs in {args.workdir})"
        )
        with grpc.insecure_channel(stack.poster_target) as channel:
            stub = poster_grpc.PosterServiceStub(channel)
            tenant = connect(stack, stub, region)
            results = post_all(stub, CONNECTION_ID, transactions, console, wait=True)
        notes = Notes(wide=args.wide)
        notes.print(console, results_table(results, notes))
        console.print(f"{summary(results)}  (refusals are what Actionstep's own integration does not post)")
        ledger = httpx.get(f"{stack.emulator_url}/emulator/organisations/{tenant}/ledger", timeout=10)
        ledger.raise_for_status()
        # Amounts arrive as JSON numbers: read them as Decimal, never float.
        books = json.loads(ledger.text, parse_float=Decimal)
        console.print(ledger_table(books))
        console.print(f"debits equal credits: {'yes' if books.get('balanced') else 'NO'}")
        if args.keep_running:
            hint = f"xerolink --poster {stack.poster_target} links --connection {CONNECTION_ID}"
            console.print(f"services left running; try: {hint}")
    code = exit_code(results)
    # Refusals are part of the demo (Actionstep's integration does not post those kinds).
    return ExitCode.OK if code == ExitCode.REFUSED else code
