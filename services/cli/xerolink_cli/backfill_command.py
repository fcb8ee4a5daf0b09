"""`xerolink backfill`: preflight the connection, then post the open bills that predate it (with
their payments) as one backfill, following its progress until it is done."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from google.protobuf import json_format
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from xerolink.actionstep.v1 import common_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import backfill_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc

from xerolink_cli.channels import open_channel
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.labels import enum_label
from xerolink_cli.notes import Notes
from xerolink_cli.usage import UsageError

STATUS_STYLE = {"pass": "green", "warning": "yellow", "fail": "red"}


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "backfill",
        help="post the open bills that predate the connection, with their payments (JSON file or -)",
        description="The file holds {'bills': [BackfillBill, ...]} or a JSON array of BackfillBill in protobuf "
        "JSON (see docs/backfill.md). The connection is checked first (preflight).",
    )
    parser.add_argument("file", nargs="?", help="path, or - for standard input (omit with --check)")
    parser.add_argument("--connection", required=True, help="connection id")
    parser.add_argument(
        "--division", type=int, action="append", default=[], help="an Actionstep division id (repeat for each)"
    )
    parser.add_argument("--check", action="store_true", help="only run the preflight checks")
    parser.add_argument("--request-id", default="", help="idempotency key: the same key answers the same backfill")
    parser.set_defaults(run=backfill)


def read_bills(path: str) -> list[backfill_pb2.BackfillBill]:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        raw = json.loads(text)
        body = {"bills": raw} if isinstance(raw, list) else raw
        request = json_format.ParseDict(body, backfill_pb2.StartBackfillRequest(), ignore_unknown_fields=False)
    except (OSError, ValueError, json_format.ParseError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    if not request.bills:
        raise UsageError(f"{path}: no bills")
    return list(request.bills)


def preflight_table(response: backfill_pb2.RunPreflightResponse, notes: Notes | None = None) -> Table:
    notes = notes or Notes(wide=True)
    table = Table(title=f"Preflight ({'ready' if response.ready else 'not ready'})")
    for column in ("check", "status", "profiles", "what to do"):
        table.add_column(column)
    for check in response.checks:
        status = enum_label(backfill_pb2.PreflightStatus, check.status)
        style = STATUS_STYLE.get(status, "white")
        table.add_row(
            check.check,
            f"[{style}]{status}[/{style}]",
            ", ".join(enum_label(mapper_pb2.PolicyProfile, p) for p in check.profiles),
            notes.cell(check.reason_code, check.message),
        )
    return table


def follow(
    stub: poster_grpc.PosterServiceStub, started: backfill_pb2.Backfill, console: Console
) -> backfill_pb2.Backfill:
    """Watches the backfill with a progress bar of settled transactions until it is done."""
    latest = started
    tracked = started.accepted + started.already_done
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("backfill", total=tracked)
        for update in stub.WatchBackfill(backfill_pb2.WatchBackfillRequest(name=started.name), timeout=3600):
            latest = update.backfill
            progress.update(
                task,
                completed=latest.linked + latest.failed + latest.unlinked,
                description=f"linked {latest.linked}, waiting {latest.waiting}, failed {latest.failed}",
            )
    return latest


def outcome_table(done: backfill_pb2.Backfill, notes: Notes | None = None) -> Table:
    notes = notes or Notes(wide=True)
    table = Table(title="Not linked")
    for column in ("bill", "record", "outcome", "state", "reason"):
        table.add_column(column)
    for item in done.items:
        if item.state == backfill_pb2.BACKFILL_ITEM_STATE_LINKED:
            continue
        table.add_row(
            str(item.bill_index),
            f"{enum_label(common_pb2.TransactionKind, item.record.kind)} {item.record.id}",
            enum_label(backfill_pb2.BackfillItemOutcome, item.outcome),
            enum_label(backfill_pb2.BackfillItemState, item.state) if item.state else "—",
            notes.cell(item.error.reason, item.error.message),
        )
    return table


def summary(done: backfill_pb2.Backfill) -> str:
    return (
        f"{done.name}: {done.bills} bills, {done.total} transactions: {done.accepted} accepted, "
        f"{done.already_done} already done, {done.refused} refused; {done.linked} linked, {done.waiting} waiting, "
        f"{done.failed} failed"
    )


def backfill(args: argparse.Namespace, console: Console) -> ExitCode:
    if not args.check and not args.file:
        raise UsageError("give the file of bills to backfill, or --check to only run the preflight")
    bills = [] if args.check else read_bills(args.file)
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        checks = stub.RunPreflight(
            backfill_pb2.RunPreflightRequest(connection_id=args.connection, division_ids=args.division), timeout=15
        )
        preflight_notes = Notes(wide=args.wide)
        preflight_notes.print(console, preflight_table(checks, preflight_notes))
        if args.check or not checks.ready:
            return ExitCode.OK if checks.ready else ExitCode.FAILED
        started = stub.StartBackfill(
            backfill_pb2.StartBackfillRequest(connection_id=args.connection, bills=bills, request_id=args.request_id),
            timeout=300,
        ).backfill
        done = follow(stub, started, console)
    if done.linked < done.total:
        outcome_notes = Notes(wide=args.wide)
        outcome_notes.print(console, outcome_table(done, outcome_notes))
    console.print(summary(done))
    if done.failed or done.waiting:
        return ExitCode.FAILED
    return ExitCode.REFUSED if done.refused else ExitCode.OK
