"""`xerolink`: the operator and newcomer CLI.

Security: the same client settings the poster uses to reach the mapper, each optional:
  XEROLINK_TLS_CA            the services' CA certificate (PEM): connect with TLS
  XEROLINK_TLS_CLIENT_CERT,  a client certificate and its key (PEM): mutual TLS (needs the CA)
  XEROLINK_TLS_CLIENT_KEY
  XEROLINK_CALLER_TOKEN      a bearer token whose hash the services' callers file lists
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import grpc
from rich.console import Console
from rich.markup import escape

from xerolink_cli import backfill_command, commands, drift, matters, reconcile, unlink
from xerolink_cli import correct as correct_command
from xerolink_cli import demo as demo_command
from xerolink_cli.exit_codes import ExitCode, help_text
from xerolink_cli.firm_month.regions import REGIONS
from xerolink_cli.rpc_errors import NOT_ANSWERED, account, status_code
from xerolink_cli.usage import UsageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xerolink", description=__doc__, epilog=help_text(), formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--mapper",
        default=os.environ.get("XEROLINK_MAPPER_TARGET", "127.0.0.1:50061"),
        help="mapper host:port",
    )
    parser.add_argument(
        "--poster",
        default=os.environ.get("XEROLINK_POSTER_TARGET", "127.0.0.1:50062"),
        help="poster host:port",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="keep long sentences (reasons, errors) in their table cells instead of listing them below",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="start emulator, mapper and poster locally and post a sample firm's week")
    demo.add_argument("--workdir", default=".xerolink/demo", help="where the demo keeps its SQLite registry and logs")
    demo.add_argument("--keep-running", action="store_true", help="leave the services running after the demo")
    demo.add_argument(
        "--region",
        choices=sorted(REGIONS),
        default="AU",
        help="the firm's country: its currency, rate of tax and Xero organisation's tax types (docs/regions.md)",
    )
    demo.add_argument(
        "--matters",
        action="store_true",
        help="reports by matter: a tracking option per matter on every line, and the profit per matter "
        "(extended profile; docs/matters-and-organisations.md)",
    )
    demo.add_argument(
        "--trust-organisation",
        action="store_true",
        help="keep trust money in a second Xero organisation of the firm (extended profile)",
    )
    demo.add_argument(
        "--drift",
        action="store_true",
        help="then work in Xero by hand (a bank-feed match, a voided bill): webhooks, drift, a held receipt "
        "and a reconciliation (docs/drift.md)",
    )
    demo.set_defaults(run=demo_command.demo)

    matrix = sub.add_parser("matrix", help="print the support matrix")
    matrix.add_argument("--profile", choices=["compatible", "extended", "all"], default="all")
    matrix.set_defaults(run=commands.matrix)

    post = sub.add_parser("post", help="post Actionstep transactions (JSON, NDJSON or a JSON array) from a file or -")
    post.add_argument("file", help="path, or - for standard input")
    post.add_argument("--connection", required=True, help="connection id")
    post.add_argument("--wait", action="store_true", help="wait until every posting is settled")
    post.set_defaults(run=commands.post)

    links = sub.add_parser("links", help="list links by group and state")
    links.add_argument("--connection", required=True)
    links.add_argument("--group", choices=["sales-invoices", "payments", "bank-transactions", "credit-notes"])
    links.add_argument("--state", choices=["pending", "waiting", "linked", "failed", "unlinked"])
    links.set_defaults(run=commands.links)

    unlink.add_parsers(sub)
    backfill_command.add_parser(sub)
    matters.add_parser(sub)
    drift.add_parser(sub)
    reconcile.add_parser(sub)
    correct = sub.add_parser(
        "correct", help="plan (and with --apply --yes perform) the correction of a linked payment or document"
    )
    correct.add_argument("record", help="KIND/ID, e.g. client-bill/5001 or client-bill-payment/5002")
    correct.add_argument("--connection", required=True)
    correct.add_argument("--intent", choices=["edit", "delete"], required=True, help="what you will do in Actionstep")
    correct.add_argument("--apply", action="store_true", help="perform xerolink's steps (Xero and the registry)")
    correct.add_argument("--yes", action="store_true", help="confirm --apply without asking")
    correct.set_defaults(run=correct_command.correct)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    run: Callable[[argparse.Namespace, Console], ExitCode] = args.run
    try:
        return run(args, console)
    except UsageError as exc:
        # Escaped: the message repeats the user's input, which is text, not markup.
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        return ExitCode.USAGE
    except grpc.RpcError as exc:
        if status_code(exc) in NOT_ANSWERED:
            details = exc.details() if hasattr(exc, "details") else str(exc)
            console.print(f"[red]service unavailable:[/red] {escape(details or '')}")
            return ExitCode.UNAVAILABLE
        first, *rest = account(exc)
        # soft_wrap: the error stays on one line however narrow the terminal, for scripts to grep.
        console.print(f"[red]error:[/red] {escape(first)}", soft_wrap=True)
        for line in rest:
            console.print(escape(line), soft_wrap=True)
        return ExitCode.REQUEST_REFUSED


if __name__ == "__main__":
    sys.exit(main())
