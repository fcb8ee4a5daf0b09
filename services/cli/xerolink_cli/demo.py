"""`xerolink demo`: a newcomer's first look at the whole flow with no Xero account."""

from __future__ import annotations

import argparse
import json
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.table import Table
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import organisations_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.allocation_functions import AllocationFunction
from xerolink_common.money import cents_to_str, decimal_to_cents

from xerolink_cli import demo_drift
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
# With --trust-organisation: the connection of the firm's separate trust organisation.
TRUST_FIRM = f"{FIRM} Trust Account"
TRUST_CONNECTION_ID = "harbour-finch-trust"
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


def mapping_context(
    region: FirmRegion = AU, extended: bool = False, matters: bool = False
) -> mapper_pb2.MappingContext:
    """The firm's connection: its codes mapped to the tax types of its country's organisation;
    `extended` for the options of the extended profile, `matters` for reports by matter."""
    connected = Timestamp()
    connected.FromJsonString("2026-11-01T00:00:00Z")
    sales, purchases = region.tax_maps()
    return mapper_pb2.MappingContext(
        profile=mapper_pb2.POLICY_PROFILE_EXTENDED if extended else mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE,
        linked_division_id=1,
        connected_at=connected,
        base_currency_code=region.currency,
        accounting_method=mapper_pb2.ACCOUNTING_METHOD_ACCRUAL,
        account_allocation=ALLOCATION,
        tax_code_map=sales,
        purchase_tax_code_map=purchases,
        untaxed_line_tax_types=mapper_pb2.UntaxedLineTaxTypes(**region.untaxed()),
        matter_tracking=mapper_pb2.MatterTracking(enabled=True) if matters else None,
    )


def connect(
    stack: LocalStack,
    stub: poster_grpc.PosterServiceStub,
    region: FirmRegion,
    context: mapper_pb2.MappingContext,
    connection_id: str = CONNECTION_ID,
    name: str = FIRM,
) -> str:
    """Creates an organisation of the firm, of its region, in the emulator and registers the connection."""
    org = httpx.post(
        f"{stack.emulator_url}/emulator/organisations", json={"name": name, "region": region.key}, timeout=10
    )
    org.raise_for_status()
    created: dict[str, Any] = org.json()
    register_emulated_connection(stub, connection_id, stack.emulator_url, created, context)
    return str(created["tenant_id"])


def ledger_table(ledger: dict[str, Any], name: str = FIRM) -> Table:
    table = Table(title=f"{name} in the emulated Xero: balances per account")
    table.add_column("account")
    table.add_column("name")
    table.add_column("balance (debit +)", justify="right")
    for row in ledger.get("accounts", []):
        units = decimal_to_cents(str(row["Balance"]))
        if units:
            table.add_row(str(row["Code"]), str(row.get("Name", "")), cents_to_str(units))
    return table


def print_ledger(stack: LocalStack, console: Console, tenant: str, name: str) -> None:
    ledger = httpx.get(f"{stack.emulator_url}/emulator/organisations/{tenant}/ledger", timeout=10)
    ledger.raise_for_status()
    # Amounts arrive as JSON numbers: read them as Decimal, never float.
    books = json.loads(ledger.text, parse_float=Decimal)
    console.print(ledger_table(books, name))
    console.print(f"debits equal credits: {'yes' if books.get('balanced') else 'NO'}")


def demo(args: argparse.Namespace, console: Console) -> ExitCode:
    region = REGIONS[args.region]
    transactions = localise_all(demo_transactions(), region)
    extended = args.matters or args.trust_organisation
    console.print(
        f"[bold]xerolink demo[/bold]: {len(transactions)} transactions of {FIRM} (a week in November), "
        f"a firm in {args.region} keeping its books in {region.currency}"
        + (" (extended profile: " + ", ".join(_options(args)) + ")" if extended else "")
    )
    # With --drift the poster receives Xero's webhooks, signed with a key made for this run.
    webhook_key = secrets.token_urlsafe(32) if args.drift else ""
    with LocalStack(Path(args.workdir), keep_running=args.keep_running, webhook_key=webhook_key) as stack:
        console.print(
            f"emulator {stack.emulator_url}  mapper {stack.mapper_target}  poster {stack.poster_target}"
            f"  (logs in {args.workdir})"
        )
        with grpc.insecure_channel(stack.poster_target) as channel:
            stub = poster_grpc.PosterServiceStub(channel)
            context = mapping_context(region, extended=extended, matters=args.matters)
            tenant = connect(stack, stub, region, context)
            trust_tenant = ""
            if args.trust_organisation:
                trust_tenant = connect(stack, stub, region, context, TRUST_CONNECTION_ID, TRUST_FIRM)
                stub.UpdateConnectionRouting(
                    organisations_pb2.UpdateConnectionRoutingRequest(
                        connection_id=CONNECTION_ID,
                        routing=organisations_pb2.ConnectionRouting(trust_connection_id=TRUST_CONNECTION_ID),
                    ),
                    timeout=10,
                )
            results = post_all(stub, CONNECTION_ID, transactions, console, wait=True)
            notes = Notes(wide=args.wide)
            notes.print(console, results_table(results, notes))
            console.print(f"{summary(results)}  (refusals are what Actionstep's own integration does not post)")
            print_ledger(stack, console, tenant, FIRM)
            if trust_tenant:
                print_ledger(stack, console, trust_tenant, TRUST_FIRM)
            if args.matters:
                for connection_id, org in ((CONNECTION_ID, tenant), (TRUST_CONNECTION_ID, trust_tenant)):
                    if org:
                        print_matters(stack, stub, console, connection_id, org)
            if args.drift:
                shown = demo_drift.show_drift(
                    stack, stub, console, CONNECTION_ID, tenant, transactions, results, args.wide
                )
                if shown != ExitCode.OK:
                    return shown
        if args.keep_running:
            hint = f"xerolink --poster {stack.poster_target} links --connection {CONNECTION_ID}"
            console.print(f"services left running; try: {hint}")
    code = exit_code(results)
    # Refusals are part of the demo (Actionstep's integration does not post those kinds).
    return ExitCode.OK if code == ExitCode.REFUSED else code


def _options(args: argparse.Namespace) -> list[str]:
    chosen = (("reports by matter", args.matters), ("a trust organisation", args.trust_organisation))
    return [name for name, on in chosen if on]


def print_matters(
    stack: LocalStack, stub: poster_grpc.PosterServiceStub, console: Console, connection_id: str, tenant: str
) -> None:
    """Profit per matter as the organisation's ledger has it, by the matters' tracking options
    (the figures Xero's Profit and Loss shows split by the Matter category)."""
    options = stub.ListMatterOptions(
        organisations_pb2.ListMatterOptionsRequest(connection_id=connection_id, page_size=500), timeout=10
    ).options
    if not options:
        console.print(f"{connection_id}: no matter options (nothing of a matter was posted there)")
        return
    category = options[0].tracking_category_id
    answer = httpx.get(f"{stack.emulator_url}/emulator/organisations/{tenant}/tracking/{category}/profit", timeout=10)
    answer.raise_for_status()
    figures = {o["TrackingOptionID"]: o for o in answer.json()["options"]}
    table = Table(title=f"{connection_id}: profit per matter (tracking category Matter)")
    table.add_column("matter")
    table.add_column("income", justify="right")
    table.add_column("expenses", justify="right")
    table.add_column("profit", justify="right")
    for option in options:
        row = figures.get(option.tracking_option_id, {})
        table.add_row(
            str(option.action_id),
            *(cents_to_str(int(row.get(f, 0))) for f in ("income_cents", "expense_cents", "profit_cents")),
        )
    console.print(table)
