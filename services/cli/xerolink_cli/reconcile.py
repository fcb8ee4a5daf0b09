"""`xerolink reconcile`: per Xero account, the movement xerolink posted in a period against the
movement Xero's Trial Balance reports, each difference with the links that explain it, and trust
per matter (docs/drift.md, Reconciliation). Exit 0 when reconciled, 1 with differences."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
from decimal import Decimal

from rich.console import Console
from rich.table import Table
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.type.v1 import date_pb2, money_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2

from xerolink_cli.channels import open_channel
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.labels import enum_label
from xerolink_cli.usage import UsageError

FORMATS = ("table", "json", "csv")
CSV_COLUMNS = ("account_code", "account_name", "posted", "xero", "difference", "unexplained", "explained_by")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = sub.add_parser(
        "reconcile",
        help="compare each Xero account's movement xerolink posted in a period with Xero's Trial Balance "
        "(exit 0 reconciled, 1 with differences)",
        description="Per Xero account: the movement xerolink posted between --from and --to (inclusive) "
        "against the movement Xero's Trial Balance reports, each difference with the links, drifts and "
        "orphaned objects that explain it; for a connection holding trust money, each matter's trust balance "
        "against Xero's trust liability and trust bank. Exit 0 when reconciled, 1 with differences.",
    )
    command.add_argument("--connection", required=True)
    command.add_argument("--from", dest="from_date", required=True, help="the first day, YYYY-MM-DD")
    command.add_argument("--to", dest="to_date", required=True, help="the last day (inclusive), YYYY-MM-DD")
    command.add_argument("--format", choices=FORMATS, default="table", help="table (default), json or csv")
    command.set_defaults(run=reconcile_command)


def _date(value: str, flag: str) -> date_pb2.Date:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise UsageError(f"{flag} {value[:40]!r}: a date such as 2026-07-31") from exc
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def _amount(money: money_pb2.Money) -> str:
    return str(Decimal(money.units).scaleb(-2))


def _explained_by(explanation: drift_pb2.ReconcileExplanation) -> str:
    what = explanation.link or explanation.xero_id
    return f"{explanation.reason} {what} {_amount(explanation.amount)}"


def as_json(answer: drift_pb2.ReconcileResponse) -> str:
    accounts = [
        {
            "account_code": a.account_code,
            "account_name": a.account_name,
            "posted": _amount(a.posted),
            "xero": _amount(a.xero),
            "difference": _amount(a.difference),
            "unexplained": _amount(a.unexplained),
            "explanations": [
                {
                    "reason": e.reason,
                    "link": e.link,
                    "xero_id": e.xero_id,
                    "object_type": enum_label(xero_pb2.ObjectType, e.object_type),
                    "amount": _amount(e.amount),
                    "drift": e.drift,
                }
                for e in a.explanations
            ],
        }
        for a in answer.accounts
    ]
    out: dict[str, object] = {"reconciled": answer.reconciled, "accounts": accounts, "sources": list(answer.sources)}
    if answer.HasField("trust"):
        t = answer.trust
        out["trust"] = {
            "reconciled": t.reconciled,
            "matters": [{"action_id": m.action_id, "balance": _amount(m.balance)} for m in t.matters],
            "posted_total": _amount(t.posted_total),
            "liability_account_code": t.liability_account_code,
            "xero_liability": _amount(t.xero_liability),
            "bank_account_code": t.bank_account_code,
            "xero_bank": _amount(t.xero_bank),
            "posted_bank": _amount(t.posted_bank),
        }
    return json.dumps(out, indent=2)


def as_csv(answer: drift_pb2.ReconcileResponse) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for a in answer.accounts:
        writer.writerow(
            [
                a.account_code,
                a.account_name,
                _amount(a.posted),
                _amount(a.xero),
                _amount(a.difference),
                _amount(a.unexplained),
                "; ".join(_explained_by(e) for e in a.explanations),
            ]
        )
    return buffer.getvalue()


def _print_table(answer: drift_pb2.ReconcileResponse, title: str, console: Console) -> None:
    table = Table(title=title)
    for column in ("account", "name", "posted", "Xero", "difference", "explained by", "unexplained"):
        table.add_column(column)
    for a in answer.accounts:
        table.add_row(
            a.account_code,
            a.account_name,
            _amount(a.posted),
            _amount(a.xero),
            _amount(a.difference),
            "\n".join(_explained_by(e) for e in a.explanations),
            _amount(a.unexplained),
        )
    console.print(table)
    if answer.HasField("trust"):
        t = answer.trust
        trust = Table(title="Trust at the end of the period")
        trust.add_column("matter")
        trust.add_column("balance")
        for m in t.matters:
            trust.add_row(str(m.action_id), _amount(m.balance))
        trust.add_row("total posted", _amount(t.posted_total))
        trust.add_row(f"Xero trust liability ({t.liability_account_code})", _amount(t.xero_liability))
        trust.add_row("trust bank posted", _amount(t.posted_bank))
        trust.add_row(f"Xero trust bank ({t.bank_account_code})", _amount(t.xero_bank))
        console.print(trust)
    console.print("reconciled" if answer.reconciled else "[red]differences[/red]: see the accounts above")


def reconcile_command(args: argparse.Namespace, console: Console) -> ExitCode:
    request = drift_pb2.ReconcileRequest(
        connection_id=args.connection,
        from_date=_date(args.from_date, "--from"),
        to_date=_date(args.to_date, "--to"),
    )
    with open_channel(args.poster) as channel:
        answer = poster_grpc.PosterServiceStub(channel).Reconcile(request, timeout=120)
    if args.format == "json":
        print(as_json(answer))
    elif args.format == "csv":
        print(as_csv(answer), end="")
    else:
        _print_table(answer, f"Reconciliation {args.from_date} to {args.to_date} ({args.connection})", console)
    return ExitCode.OK if answer.reconciled else ExitCode.FAILED
