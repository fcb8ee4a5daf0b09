"""`xerolink matters list` and `xerolink matters close`: the tracking options of a connection's
matters (reports by matter), and archiving a closed matter's option in Xero."""

from __future__ import annotations

import argparse
from datetime import UTC

from rich.console import Console
from rich.table import Table
from xerolink.poster.v1 import organisations_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc

from xerolink_cli.channels import open_channel
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.labels import enum_label
from xerolink_cli.unlink import parse_record_id
from xerolink_cli.usage import UsageError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    matters = sub.add_parser("matters", help="the Xero tracking options of matters (reports by matter)")
    actions = matters.add_subparsers(dest="matters_command", required=True)
    listing = actions.add_parser("list", help="list the matters' tracking options xerolink found or created")
    listing.add_argument("--connection", required=True)
    listing.set_defaults(run=list_command)
    close = actions.add_parser("close", help="archive a closed matter's tracking option in Xero")
    close.add_argument("--connection", required=True)
    close.add_argument("--matter", required=True, help="the closed matter's Actionstep action id")
    close.set_defaults(run=close_command)


def _table(title: str) -> Table:
    table = Table(title=title)
    for column in ("matter", "option", "state", "Xero option id", "changed"):
        table.add_column(column)
    return table


def _row(table: Table, option: organisations_pb2.MatterOption) -> None:
    table.add_row(
        str(option.action_id),
        option.name,
        enum_label(organisations_pb2.MatterOptionState, option.state),
        option.tracking_option_id,
        option.update_time.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    )


def list_command(args: argparse.Namespace, console: Console) -> ExitCode:
    request = organisations_pb2.ListMatterOptionsRequest(connection_id=args.connection, page_size=500)
    table = _table(f"Matters' tracking options ({args.connection})")
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        while True:
            page = stub.ListMatterOptions(request, timeout=30)
            for option in page.options:
                _row(table, option)
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    console.print(table)
    return ExitCode.OK


def close_command(args: argparse.Namespace, console: Console) -> ExitCode:
    action_id = parse_record_id(args.matter)
    if action_id is None:
        raise UsageError(f"--matter {args.matter[:80]!r}: the matter's Actionstep action id, e.g. 7001")
    request = organisations_pb2.CloseMatterRequest(connection_id=args.connection, action_id=action_id)
    with open_channel(args.poster) as channel:
        answer = poster_grpc.PosterServiceStub(channel).CloseMatter(request, timeout=60)
    if not answer.HasField("option"):
        console.print(f"matter {action_id} has no tracking option in Xero: nothing to archive")
        return ExitCode.OK
    table = _table(f"Matter {action_id} closed ({args.connection})")
    _row(table, answer.option)
    console.print(table)
    return ExitCode.OK
