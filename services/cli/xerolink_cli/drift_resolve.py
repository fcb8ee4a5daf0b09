"""`xerolink drift resolve`: accept Xero's version of a drifted object, or confirm that Xero was
put back as xerolink posted it (docs/drift.md "Resolving a drift")."""

from __future__ import annotations

import argparse
import json

import grpc
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.markup import escape
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.grpc_errors import from_rpc_error

from xerolink_cli.channels import open_channel
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.usage import UsageError


def add_parser(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    resolve = actions.add_parser(
        "resolve",
        help="resolve a drift: accept Xero's version, or confirm Xero was put back",
        description="Resolves a drift record. --accept-xero: Xero's current state becomes what xerolink compares "
        "with, and payments held on the document fail, saying what to change in Actionstep. --corrected: you put "
        "Xero back as xerolink posted it; xerolink reads the object again and resolves only if it now agrees "
        "(else it lists the remaining differences and exits 1), and held payments are posted. Each resolution is "
        "written to the link's audit trail. See docs/drift.md.",
    )
    resolve.add_argument(
        "name",
        help="the drift: connections/CONNECTION/drifts/ID (as a held payment's error and "
        "`xerolink drift list --format json` show it), or ID with --connection",
    )
    resolve.add_argument("--connection", default="", help="the connection, when NAME is a drift id")
    how = resolve.add_mutually_exclusive_group(required=True)
    how.add_argument("--accept-xero", action="store_true", help="Xero's version stands")
    how.add_argument("--corrected", action="store_true", help="Xero was put back as xerolink posted it")
    resolve.add_argument(
        "--note", default="", help="why (kept with the drift and in the audit, 1000 characters at most)"
    )
    resolve.add_argument("--format", choices=["table", "json"], default="table")
    resolve.set_defaults(run=resolve_command)


def drift_name(name: str, connection: str) -> str:
    if name.startswith("connections/"):
        return name
    if name.isdigit() and connection:
        return f"connections/{connection}/drifts/{name}"
    raise UsageError(f"{name[:80]!r}: name a drift as connections/CONNECTION/drifts/ID, or its ID with --connection")


def resolve_command(args: argparse.Namespace, console: Console) -> ExitCode:
    resolution = drift_pb2.DRIFT_RESOLUTION_ACCEPT_XERO if args.accept_xero else drift_pb2.DRIFT_RESOLUTION_CORRECTED
    request = drift_pb2.ResolveDriftRequest(
        name=drift_name(args.name, args.connection), resolution=resolution, note=args.note
    )
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        try:
            drift = stub.ResolveDrift(request, timeout=60).drift
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise  # shown by main with its exit code
            # Xero still differs, or the drift was resolved another way: nothing changed.
            err = from_rpc_error(exc)
            console.print(f"[red]{escape(err.reason)}:[/red] {escape(err.message)}", soft_wrap=True)
            for v in err.field_violations:
                console.print(f"  {escape(v.field)}: {escape(v.description)}", soft_wrap=True)
            return ExitCode.FAILED
    if args.format == "json":
        print(json.dumps(MessageToDict(drift, preserving_proto_field_name=True), indent=2))
        return ExitCode.OK
    how = drift_pb2.DriftResolution.Name(drift.resolution).removeprefix("DRIFT_RESOLUTION_").lower()
    kind = drift_pb2.DriftKind.Name(drift.kind).removeprefix("DRIFT_KIND_").lower().replace("_", "-")
    console.print(f"resolved {drift.name} ({kind} on {drift.link or drift.xero_id}) as {how}", soft_wrap=True)
    if drift.resolve_note:
        console.print(f"note: {escape(drift.resolve_note)}", soft_wrap=True)
    return ExitCode.OK
