"""The CLI's commands; each returns the process exit code (xerolink_cli.exit_codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.mapper.v1 import mapper_service_pb2_grpc as mapper_grpc
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2
from xerolink_common.grpc_errors import from_rpc_error

from xerolink_cli.channels import open_channel
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.labels import enum_label
from xerolink_cli.notes import Notes, keep_whole, one_line_columns
from xerolink_cli.rpc_errors import CALLER_REFUSED, NOT_ANSWERED
from xerolink_cli.transactions import TransactionFileError, parse_transactions
from xerolink_cli.usage import UsageError

PROFILES = {
    "compatible": mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE,
    "extended": mapper_pb2.POLICY_PROFILE_EXTENDED,
    "all": mapper_pb2.POLICY_PROFILE_UNSPECIFIED,
}


def matrix(args: argparse.Namespace, console: Console) -> ExitCode:
    with open_channel(args.mapper) as channel:
        response = mapper_grpc.MapperServiceStub(channel).ListSupportMatrix(
            mapper_pb2.ListSupportMatrixRequest(profile=PROFILES[args.profile]), timeout=10
        )
    table = Table(title="Support matrix", show_lines=False)
    for column in ("transaction", "profile", "posted", "reason", "Xero representation"):
        table.add_column(column)
    for row in response.rows:
        table.add_row(
            row.label or enum_label(common_pb2.TransactionKind, row.kind),
            enum_label(mapper_pb2.PolicyProfile, row.profile),
            "[green]yes[/green]" if row.supported else "[red]no[/red]",
            f"{row.reason_code}: {row.reason}",
            row.xero_representation or "—",
        )
    console.print(table)
    if response.conditions:
        conditions = Table(title="Conditions that refuse any transaction")
        conditions.add_column("reason")
        conditions.add_column("profiles")
        for condition in response.conditions:
            conditions.add_row(
                f"{condition.reason_code}: {condition.reason}",
                ", ".join(enum_label(mapper_pb2.PolicyProfile, p) for p in condition.profiles),
            )
        console.print(conditions)
    return ExitCode.OK


GROUPS = {
    "sales-invoices": poster_pb2.LINK_GROUP_SALES_INVOICES,
    "payments": poster_pb2.LINK_GROUP_PAYMENTS,
    "bank-transactions": poster_pb2.LINK_GROUP_BANK_TRANSACTIONS,
    "credit-notes": poster_pb2.LINK_GROUP_CREDIT_NOTES,
}
STATES = {
    "pending": poster_pb2.LINK_STATE_PENDING,
    "waiting": poster_pb2.LINK_STATE_WAITING,
    "linked": poster_pb2.LINK_STATE_LINKED,
    "failed": poster_pb2.LINK_STATE_FAILED,
    "unlinked": poster_pb2.LINK_STATE_UNLINKED,
}
SETTLED = {poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_FAILED, poster_pb2.LINK_STATE_UNSPECIFIED}
STATE_STYLE = {"linked": "green", "failed": "red", "waiting": "yellow", "pending": "cyan", "unlinked": "magenta"}


def read_transactions(path: str) -> list[transaction_pb2.Transaction]:
    try:
        if path == "-":
            return list(parse_transactions(sys.stdin, "<stdin>"))
        with open(path, encoding="utf-8") as stream:
            return list(parse_transactions(stream, path))
    except (OSError, TransactionFileError) as exc:
        raise UsageError(str(exc)) from exc


def post_all(
    stub: poster_grpc.PosterServiceStub,
    connection: str,
    transactions: Sequence[transaction_pb2.Transaction],
    console: Console,
    wait: bool,
) -> list[tuple[transaction_pb2.Transaction, poster_pb2.Posting | None, str]]:
    """Posts each transaction with a progress bar; with `wait`, watches each until settled.
    Returns (transaction, posting or None, error sentence) per transaction."""
    results: list[tuple[transaction_pb2.Transaction, poster_pb2.Posting | None, str]] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("posting", total=len(transactions))
        for tx in transactions:
            try:
                response = stub.PostTransaction(
                    poster_pb2.PostTransactionRequest(connection_id=connection, transaction=tx), timeout=15
                )
                results.append((tx, response.posting, ""))
            except grpc.RpcError as exc:
                # Not answered, a refused caller or an unknown connection (PostTransaction's only
                # NOT_FOUND) would be the answer for every transaction: the command ends.
                if exc.code() in NOT_ANSWERED | CALLER_REFUSED | {grpc.StatusCode.NOT_FOUND}:
                    raise
                err = from_rpc_error(exc)
                results.append((tx, None, f"{err.reason}: {err.message}"))
            progress.advance(task)
        if wait:
            settle = progress.add_task("waiting for Xero", total=len(results))
            for i, (tx, posting, error) in enumerate(results):
                if posting is not None and posting.state not in SETTLED:
                    results[i] = (tx, watch_until_settled(stub, posting), error)
                progress.advance(settle)
    return results


def watch_until_settled(stub: poster_grpc.PosterServiceStub, posting: poster_pb2.Posting) -> poster_pb2.Posting:
    latest = posting
    for update in stub.WatchPosting(poster_pb2.WatchPostingRequest(name=posting.name), timeout=120):
        latest = update.posting
        if latest.state in SETTLED:
            break
    return latest


def record_name(record: common_pb2.RecordKey) -> str:
    """ "client-bill/1001": the record as link names and the docs write it."""
    return f"{enum_label(common_pb2.TransactionKind, record.kind).replace(' ', '-')}/{record.id}"


def results_table(
    results: Sequence[tuple[transaction_pb2.Transaction, poster_pb2.Posting | None, str]], notes: Notes | None = None
) -> Table:
    notes = notes or Notes(wide=True)
    table = Table(title="Posted to Xero")
    for column in ("record", "state", "Xero", "reason"):
        table.add_column(column)
    one_line_columns(table, "Xero")
    for tx, posting, error in results:
        kind = (tx.WhichOneof("kind") or "?").replace("_", "-")
        record = f"{kind}/{tx.header.id}"
        if posting is None:
            table.add_row(record, "[red]rejected[/red]", "—", notes.cell("", error))
            continue
        if not posting.decision.supported:
            decision = posting.decision
            table.add_row(record, "[yellow]not posted[/yellow]", "—", notes.cell(decision.reason_code, decision.reason))
            continue
        state = enum_label(poster_pb2.LinkState, posting.state)
        objects = ", ".join(
            f"{enum_label(objects_pb2.ObjectType, o.type)} {o.number or o.xero_id[:8]}"
            for o in posting.link.xero_objects
        )
        why = ""
        if posting.link.last_error.message:
            why = notes.cell(posting.link.last_error.reason, posting.link.last_error.message)
        elif posting.link.waiting_on:
            why = "waiting for " + ", ".join(record_name(k) for k in posting.link.waiting_on)
        style = STATE_STYLE.get(state, "white")
        table.add_row(record, f"[{style}]{state}[/{style}]", objects or "—", why)
    return table


def summary(results: Sequence[tuple[transaction_pb2.Transaction, poster_pb2.Posting | None, str]]) -> str:
    counts: dict[str, int] = {}
    for _, posting, _ in results:
        if posting is None:
            label = "rejected"
        elif not posting.decision.supported:
            label = "not posted"
        else:
            label = enum_label(poster_pb2.LinkState, posting.state)
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))


def exit_code(results: Sequence[tuple[transaction_pb2.Transaction, poster_pb2.Posting | None, str]]) -> ExitCode:
    if any(p is None or p.state == poster_pb2.LINK_STATE_FAILED for _, p, _ in results):
        return ExitCode.FAILED
    if any(p is not None and not p.decision.supported for _, p, _ in results):
        return ExitCode.REFUSED
    return ExitCode.OK


def post(args: argparse.Namespace, console: Console) -> ExitCode:
    transactions = read_transactions(args.file)
    if not transactions:
        raise UsageError(f"{args.file}: no transactions")
    with open_channel(args.poster) as channel:
        results = post_all(poster_grpc.PosterServiceStub(channel), args.connection, transactions, console, args.wait)
    notes = Notes(wide=args.wide)
    notes.print(console, results_table(results, notes))
    console.print(summary(results))
    return exit_code(results)


def links(args: argparse.Namespace, console: Console) -> ExitCode:
    request = poster_pb2.ListLinksRequest(
        connection_id=args.connection,
        group=GROUPS.get(args.group or "", poster_pb2.LINK_GROUP_UNSPECIFIED),
        state=STATES.get(args.state or "", poster_pb2.LINK_STATE_UNSPECIFIED),
        page_size=200,
    )
    table = Table(title=f"Links of {args.connection}")
    for column in ("record", "group", "state", "Xero", "attempts", "last error"):
        table.add_column(column)
    one_line_columns(table, "Xero")
    notes = Notes(wide=args.wide)
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        while True:
            page = stub.ListLinks(request, timeout=15)
            for link in page.links:
                state = enum_label(poster_pb2.LinkState, link.state)
                style = STATE_STYLE.get(state, "white")
                table.add_row(
                    record_name(link.record),
                    enum_label(poster_pb2.LinkGroup, link.group),
                    f"[{style}]{state}[/{style}]",
                    ", ".join(o.number or o.xero_id for o in link.xero_objects) or "—",
                    str(link.attempts),
                    notes.cell(link.last_error.reason, link.last_error.message),
                )
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    keep_whole(table, "record")
    notes.print(console, table)
    return ExitCode.OK
