"""`xerolink unlink` and `xerolink orphans`: select links (by record or by filters), preview what
unlinking them does, confirm, unlink, and list the Xero objects left orphaned.

One unlink is one request to the poster, all or nothing, so a selection is limited to what one
request carries (500 records): a larger one is refused before anything is sent, rather than
unlinked in pieces of which some could fail."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
from google.protobuf import timestamp_pb2
from rich.console import Console
from rich.progress import Progress
from rich.prompt import Confirm
from rich.table import Table
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.poster.v1 import unlink_pb2
from xerolink.xero.v1 import objects_pb2
from xerolink_common.grpc_errors import from_rpc_error

from xerolink_cli.channels import open_channel
from xerolink_cli.commands import GROUPS, STATES
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.labels import enum_label
from xerolink_cli.notes import Notes, keep_whole, one_line_columns
from xerolink_cli.rpc_errors import CALLER_REFUSED, NOT_ANSWERED
from xerolink_cli.usage import UsageError

MAX_RECORDS = 500
# Actionstep ids travel as int64; protobuf raises on a larger one, so the CLI refuses it first.
MAX_RECORD_ID = 2**63 - 1
ACTION_STYLE: dict[int, str] = {
    unlink_pb2.UNLINK_ACTION_UNLINK: "magenta",
    unlink_pb2.UNLINK_ACTION_CASCADE: "magenta",
    unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED: "dim",
    unlink_pb2.UNLINK_ACTION_REFUSED: "red",
}
PREVIEW_WORDS: dict[int, str] = {
    unlink_pb2.UNLINK_ACTION_UNLINK: "will unlink",
    unlink_pb2.UNLINK_ACTION_CASCADE: "will unlink (cascade)",
    unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED: "already unlinked",
    unlink_pb2.UNLINK_ACTION_REFUSED: "refused",
}
DONE_WORDS = {
    **PREVIEW_WORDS,
    unlink_pb2.UNLINK_ACTION_UNLINK: "unlinked",
    unlink_pb2.UNLINK_ACTION_CASCADE: "unlinked (cascade)",
}


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    unlink = sub.add_parser(
        "unlink",
        help="unlink records from Xero (preview, then confirm); the Xero objects stay, recorded as orphans",
        description="Select records by KIND/ID (e.g. client-bill/1001) or by filters; a preview is shown and "
        "nothing changes without --yes or an interactive confirmation.",
    )
    unlink.add_argument(
        "records",
        nargs="*",
        metavar="KIND/ID",
        help="records, e.g. client-bill/1001 or connections/main/links/client-bill/1001 (client-bill:1001 and "
        "the kind's number, 2/7001, work too)",
    )
    unlink.add_argument("--connection", required=True)
    unlink.add_argument("--group", choices=sorted(GROUPS))
    unlink.add_argument("--state", choices=sorted(STATES))
    unlink.add_argument("--kind", action="append", default=[], help="record kind (repeatable), e.g. client-bill")
    unlink.add_argument("--matter", type=int, default=0, help="Actionstep matter (action) id")
    unlink.add_argument("--participant", type=int, default=0, help="Actionstep participant id")
    unlink.add_argument("--since", help="changed at or after (ISO date or time, UTC unless given)")
    unlink.add_argument("--until", help="changed before (ISO date or time)")
    unlink.add_argument("--xero-id", default="", help="the link holding this Xero object")
    unlink.add_argument("--cascade", action="store_true", help="also unlink linked payments and allocations")
    unlink.add_argument("--reason", default="", help="why, for the audit trail")
    unlink.add_argument("--yes", action="store_true", help="unlink without asking")
    unlink.set_defaults(run=unlink_command)

    orphans = sub.add_parser("orphans", help="list Xero objects left in Xero by unlinks")
    orphans.add_argument("--connection", required=True)
    orphans.add_argument("--record", help="only this record's orphans (KIND/ID)")
    orphans.set_defaults(run=orphans_command)


def parse_record(text: str) -> common_pb2.RecordKey:
    """KIND/ID as link names write it (client-bill/1001), a whole link name
    (connections/main/links/client-bill/1001), or KIND:ID; KIND a kind name or number."""
    if text.startswith("connections/"):
        text = text.split("/links/", 1)[-1]
    separator = "/" if "/" in text else ":"
    kind_text, sep, id_text = text.partition(separator)
    record_id = parse_record_id(id_text)
    if not sep or record_id is None:
        raise UsageError(f"{text[:80]!r}: write a record as KIND/ID, e.g. client-bill/1001")
    return common_pb2.RecordKey(kind=parse_kind(kind_text), id=record_id)  # type: ignore[arg-type]


def parse_number(text: str) -> int | None:
    """The number `text` writes in ASCII digits, at most 19 of them (int() refuses "²" and
    thousands of digits with an exception); None for anything else."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else None


def parse_record_id(text: str) -> int | None:
    """An Actionstep record id: a positive int64; None for anything else."""
    number = parse_number(text)
    return number if number is not None and 0 < number <= MAX_RECORD_ID else None


def parse_kind(text: str) -> int:
    number = parse_number(text)
    if number is not None and number in common_pb2.TransactionKind.values() and number > 0:
        return number
    name = "TRANSACTION_KIND_" + text.upper().replace("-", "_").replace(" ", "_")
    if name not in set(common_pb2.TransactionKind.keys()) or name.endswith("UNSPECIFIED"):
        known = ", ".join(enum_label(common_pb2.TransactionKind, v).replace(" ", "-") for v in kind_values())
        raise UsageError(f"unknown record kind {text[:80]!r}; use one of: {known}")
    return int(common_pb2.TransactionKind.Value(name))


def link_name(text: str, connection_id: str) -> str:
    """The link name UnlinkLinksRequest.names takes, the kind by name
    (connections/main/links/client-bill/1001), for a record as parse_record reads it. A whole link
    name keeps its own connection, so the poster refuses one of another connection instead of the
    CLI quietly unlinking the same record of --connection."""
    connection = connection_id
    if text.startswith("connections/") and "/links/" in text:
        connection = text.removeprefix("connections/").split("/links/", 1)[0]
    return f"connections/{connection}/links/{record_label(parse_record(text))}"


def kind_values() -> list[int]:
    return [v for v in common_pb2.TransactionKind.values() if v]


def parse_time(text: str | None, option: str) -> timestamp_pb2.Timestamp | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: use an ISO date or time, e.g. 2026-11-01 or 2026-11-01T09:30") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def record_label(record: common_pb2.RecordKey) -> str:
    """ "client-bill/1001", as link names and the docs write a record."""
    return f"{enum_label(common_pb2.TransactionKind, record.kind).replace(' ', '-')}/{record.id}"


def selection_request(args: argparse.Namespace) -> poster_pb2.ListLinksRequest | None:
    """The ListLinks request for a selection by filters; None when records are named."""
    request = poster_pb2.ListLinksRequest(
        connection_id=args.connection,
        group=GROUPS.get(args.group or "", poster_pb2.LINK_GROUP_UNSPECIFIED),
        state=STATES.get(args.state or "", poster_pb2.LINK_STATE_UNSPECIFIED),
        kinds=[parse_kind(k) for k in args.kind],  # type: ignore[misc]
        action_id=args.matter,
        participant_id=args.participant,
        xero_id=args.xero_id,
        page_size=500,
    )
    for field, option in (("update_time_start", "--since"), ("update_time_end", "--until")):
        stamp = parse_time(getattr(args, option.strip("-")), option)
        if stamp is not None:
            getattr(request, field).CopyFrom(stamp)
    filtered = request.ByteSize() > poster_pb2.ListLinksRequest(connection_id=args.connection, page_size=500).ByteSize()
    if args.records and filtered:
        raise UsageError("name records or give filters, not both")
    if not args.records and not filtered:
        raise UsageError("select what to unlink: name records (KIND/ID) or give at least one filter")
    return None if args.records else request


def select_links(
    stub: poster_grpc.PosterServiceStub, request: poster_pb2.ListLinksRequest, console: Console
) -> list[str]:
    """The names of every link the filters match, page by page with a progress bar."""
    found: list[str] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("selecting links", total=None)
        while True:
            page = stub.ListLinks(request, timeout=30)
            found.extend(link.name for link in page.links)
            progress.update(task, completed=len(found))
            if len(found) > MAX_RECORDS or not page.next_page_token:
                return found
            request.page_token = page.next_page_token


def outcomes_table(
    title: str,
    outcomes: Sequence[unlink_pb2.UnlinkOutcome],
    words: dict[int, str],
    notes: Notes | None = None,
    connection_id: str = "",
) -> Table:
    """One row per outcome; the other half of a record kept in two organisations (an invoice paid
    from trust) is a row of its own, noted with the connection its link is under."""
    notes = notes or Notes(wide=True)
    table = Table(title=title)
    for column in ("record", "action", "Xero objects left in Xero", "note"):
        table.add_column(column)
    one_line_columns(table, "Xero objects left in Xero")
    for o in outcomes:
        style = ACTION_STYLE.get(o.action, "white")
        objects = ", ".join(f"{enum_label(objects_pb2.ObjectType, x.type)} {x.number or x.xero_id}" for x in o.orphaned)
        if o.action == unlink_pb2.UNLINK_ACTION_REFUSED:
            note = notes.cell(o.error.reason, o.error.message)
        elif o.HasField("cascaded_from"):
            note = f"pays or allocates to {record_label(o.cascaded_from)}"
        else:
            note = ""
        under = o.link_name.split("/")[1] if o.link_name.startswith("connections/") else ""
        if connection_id and under and under != connection_id:
            note = "; ".join(n for n in (f"its other half, under connection {under}", note) if n)
        table.add_row(record_label(o.record), f"[{style}]{words[o.action]}[/{style}]", objects or "—", note)
    return table


def _confirmed(args: argparse.Namespace, count: int, console: Console) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        console.print(f"Nothing was changed: add --yes to unlink these {count} record(s).")
        return False
    if Confirm.ask(f"Unlink {count} record(s) from Xero? The Xero objects stay in Xero", console=console):
        return True
    console.print("Nothing was changed.")
    return False


def unlink_command(args: argparse.Namespace, console: Console) -> ExitCode:
    named = [link_name(r, args.connection) for r in args.records]
    filters = selection_request(args)
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        names = named if filters is None else select_links(stub, filters, console)
        if not names:
            console.print("No links match: nothing to unlink.")
            return ExitCode.OK
        if len(names) > MAX_RECORDS:
            raise UsageError(
                f"more than {MAX_RECORDS} links selected; narrow the filters (one unlink is all or nothing)"
            )
        request = unlink_pb2.UnlinkLinksRequest(
            connection_id=args.connection, names=names, cascade=args.cascade, reason=args.reason
        )
        request.validate_only = True
        try:
            preview = stub.UnlinkLinks(request, timeout=60)
        except grpc.RpcError as exc:
            return _refused(exc, console)
        notes = Notes(wide=args.wide)
        notes.print(
            console,
            outcomes_table("Preview: nothing has changed yet", preview.outcomes, PREVIEW_WORDS, notes, args.connection),
        )
        refused = [o for o in preview.outcomes if o.action == unlink_pb2.UNLINK_ACTION_REFUSED]
        if refused:
            hint = " (add --cascade to unlink linked payments too)" if not args.cascade else ""
            console.print(f"[red]{len(refused)} record(s) cannot be unlinked; nothing was changed{hint}.[/red]")
            return ExitCode.FAILED
        to_unlink = [o for o in preview.outcomes if o.action != unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED]
        if not to_unlink:
            console.print("Every selected record is already unlinked.")
            return ExitCode.OK
        if not _confirmed(args, len(to_unlink), console):
            return ExitCode.USAGE
        request.validate_only, request.confirm = False, True
        try:
            done = stub.UnlinkLinks(request, timeout=60)
        except grpc.RpcError as exc:
            return _refused(exc, console)
    notes = Notes(wide=args.wide)
    notes.print(console, outcomes_table("Unlinked", done.outcomes, DONE_WORDS, notes, args.connection))
    orphaned = sum(len(o.orphaned) for o in done.outcomes)
    console.print(
        f"{done.unlinked_count} unlinked; {orphaned} Xero object(s) left in Xero as orphans "
        f"(xerolink orphans --connection {args.connection}). Correct them in Xero, then post the records again."
    )
    return ExitCode.OK


def _refused(exc: grpc.RpcError, console: Console) -> ExitCode:
    if exc.code() in NOT_ANSWERED | CALLER_REFUSED:
        raise exc
    err = from_rpc_error(exc)
    console.print(f"[red]{err.reason}:[/red] {err.message}")
    for v in err.field_violations:
        console.print(f"  {v.field}: {v.description}")
    for p in err.precondition_violations:
        console.print(f"  {p.subject}: {p.description}")
    return ExitCode.USAGE if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else ExitCode.FAILED


def orphans_command(args: argparse.Namespace, console: Console) -> ExitCode:
    request = unlink_pb2.ListOrphansRequest(connection_id=args.connection, page_size=500)
    if args.record:
        request.record.CopyFrom(parse_record(args.record))
    table = Table(title=f"Xero objects left in Xero by unlinks ({args.connection})")
    for column in ("record", "cycle", "Xero object", "Xero id", "unlinked", "by", "reason"):
        table.add_column(column)
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        while True:
            page = stub.ListOrphans(request, timeout=30)
            for o in page.orphans:
                table.add_row(
                    record_label(o.record),
                    str(o.generation),
                    f"{enum_label(objects_pb2.ObjectType, o.type)} {o.number}".strip(),
                    o.xero_id,
                    o.orphan_time.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    o.actor,
                    o.reason,
                )
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    keep_whole(table, "record")
    console.print(table)
    return ExitCode.OK
