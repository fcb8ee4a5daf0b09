"""`xerolink drift list`: what changed in Xero on the objects xerolink linked (docs/drift.md)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc

from xerolink_cli.channels import open_channel
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.notes import keep_whole
from xerolink_cli.usage import UsageError

STATES = {"open": drift_pb2.DRIFT_STATE_OPEN, "resolved": drift_pb2.DRIFT_STATE_RESOLVED}
KINDS = {
    name.removeprefix("DRIFT_KIND_").lower().replace("_", "-"): number
    for name, number in drift_pb2.DriftKind.items()
    if number
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    drift = sub.add_parser(
        "drift",
        help="drift: what was changed in Xero on the objects xerolink linked",
        description="Drift records: a linked Xero object that Xero now holds otherwise than xerolink posted it "
        "(paid, voided or deleted in Xero, amounts, lines, contact or date edited, a payment deleted). "
        "See docs/drift.md for what to do about each kind.",
    )
    actions = drift.add_subparsers(dest="drift_command", required=True)
    listing = actions.add_parser("list", help="list drift records, newest first")
    listing.add_argument("--connection", required=True)
    listing.add_argument("--state", choices=sorted(STATES), help="open or resolved (default: both)")
    listing.add_argument("--kind", action="append", default=[], choices=sorted(KINDS), help="drift kind (repeatable)")
    listing.add_argument("--link", default="", help="only this link's drifts (KIND/ID or its link name)")
    listing.add_argument("--format", choices=["table", "json"], default="table")
    listing.set_defaults(run=list_command)


def _link_name(connection: str, text: str) -> str:
    if not text or text.startswith("connections/"):
        return text
    if text.count("/") != 1:
        raise UsageError(f"{text[:80]!r}: write a link as KIND/ID, e.g. client-bill/1001")
    return f"connections/{connection}/links/{text}"


def list_command(args: argparse.Namespace, console: Console) -> ExitCode:
    request = drift_pb2.ListDriftRequest(
        connection_id=args.connection,
        state=STATES.get(args.state or "", drift_pb2.DRIFT_STATE_UNSPECIFIED),
        kinds=[KINDS[k] for k in args.kind],
        link=_link_name(args.connection, args.link),
        page_size=500,
    )
    drifts: list[drift_pb2.Drift] = []
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        while True:
            page = stub.ListDrift(request, timeout=30)
            drifts.extend(page.drifts)
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
    if args.format == "json":
        # One JSON document on stdout, for scripts: the Drift messages as proto3 JSON.
        print(json.dumps([MessageToDict(d, preserving_proto_field_name=True) for d in drifts], indent=2))
        return ExitCode.OK
    table = Table(title=f"Drift in Xero ({args.connection})")
    for column in ("detected", "link", "kind", "state", "differences", "what to do"):
        table.add_column(column)
    for d in drifts:
        differences = "\n".join(f"{f.field}: {f.posted or '-'} -> {f.xero or '-'}" for f in d.differences)
        state = drift_pb2.DriftState.Name(d.state).removeprefix("DRIFT_STATE_").lower()
        if d.resolution:
            state += f" ({drift_pb2.DriftResolution.Name(d.resolution).removeprefix('DRIFT_RESOLUTION_').lower()})"
        table.add_row(
            d.detect_time.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            d.link.split("/links/", 1)[-1],
            drift_pb2.DriftKind.Name(d.kind).removeprefix("DRIFT_KIND_").lower().replace("_", "-"),
            state,
            differences,
            d.description,
        )
    keep_whole(table, "link")
    console.print(table)
    if not drifts:
        console.print("no drift: Xero holds every linked object as xerolink posted it")
    return ExitCode.OK
