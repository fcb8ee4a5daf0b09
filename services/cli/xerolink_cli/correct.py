"""`xerolink correct`: show the best-practice plan to edit or delete a linked record, and with
`--apply --yes` perform xerolink's steps, following the saga's progress step by step."""

from __future__ import annotations

import argparse
import sys
import threading
import time

import grpc
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import correction_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_common.grpc_errors import from_rpc_error

from xerolink_cli.channels import open_channel
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.labels import enum_label
from xerolink_cli.notes import Notes
from xerolink_cli.rpc_errors import CALLER_REFUSED, NOT_ANSWERED, status_code
from xerolink_cli.unlink import parse_number, parse_record_id, record_label
from xerolink_cli.usage import UsageError

INTENTS = {"edit": correction_pb2.CORRECTION_INTENT_EDIT, "delete": correction_pb2.CORRECTION_INTENT_DELETE}
ACTORS = {
    correction_pb2.CORRECTION_ACTOR_XEROLINK: "xerolink",
    correction_pb2.CORRECTION_ACTOR_ACTIONSTEP_USER: "Actionstep user",
    correction_pb2.CORRECTION_ACTOR_XERO_USER: "Xero user",
}
STEP_STATES = {
    correction_pb2.CORRECTION_STEP_STATE_PENDING: ("pending", "white"),
    correction_pb2.CORRECTION_STEP_STATE_IN_PROGRESS: ("in progress", "cyan"),
    correction_pb2.CORRECTION_STEP_STATE_DONE: ("done", "green"),
    correction_pb2.CORRECTION_STEP_STATE_FAILED: ("failed", "red"),
}
SAGA_STATES = {
    correction_pb2.CORRECTION_STATE_PLANNED: "planned (nothing done yet)",
    correction_pb2.CORRECTION_STATE_RUNNING: "running",
    correction_pb2.CORRECTION_STATE_FAILED: "stopped at a failed step",
    correction_pb2.CORRECTION_STATE_COMPLETED: "xerolink's steps done",
}


def record_key(text: str) -> common_pb2.RecordKey:
    """ "client-bill/5001" or "1/5001": the record's kind (name or number) and Actionstep id."""
    kind_text, _, id_text = text.partition("/")
    record_id = parse_record_id(id_text)
    if record_id is None:
        raise UsageError(f"record {text[:80]!r}: write KIND/ID, e.g. client-bill/5001 or 2/5002")
    kind = parse_number(kind_text)
    if kind is None or kind not in common_pb2.TransactionKind.values():
        name = "TRANSACTION_KIND_" + kind_text.upper().replace("-", "_")
        try:
            kind = common_pb2.TransactionKind.Value(name)
        except ValueError as exc:
            raise UsageError(
                f"record {text[:80]!r}: unknown kind {kind_text[:40]!r} (e.g. client-bill, client-bill-payment)"
            ) from exc
    return common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]


def plan_table(correction: correction_pb2.Correction, notes: Notes | None = None) -> Table:
    """The steps, one row each. Narrow, a step shows its action and the number of its sentence,
    listed below the table (step i's at [i]), and the detail its reason and the number of its
    sentence; `notes` wide keeps both sentences in their cells."""
    notes = notes or Notes(wide=True)
    # Xero's status goes under the table, so that the title stays one line in 80 columns.
    table = Table(
        title=f"Correction of {record_label(correction.record)}: {SAGA_STATES.get(correction.state, '?')}",
        caption=f"Xero says {correction.xero_status}" if correction.xero_status else None,
    )
    for column in ("#", "who", "step", "state", "detail"):
        table.add_column(column)
    # Every step's sentence first, so that the notes below are numbered as the steps are.
    steps = [
        notes.labelled(enum_label(correction_pb2.CorrectionAction, s.action), s.description) for s in correction.steps
    ]
    for step, step_cell in zip(correction.steps, steps, strict=True):
        label, style = STEP_STATES.get(step.state, ("?", "white"))
        table.add_row(
            str(step.order),
            ACTORS.get(step.actor, "?"),
            step_cell,
            f"[{style}]{label}[/{style}]",
            notes.cell(step.reason, step.detail),
        )
    return table


def _show(console: Console, correction: correction_pb2.Correction, wide: bool) -> None:
    notes = Notes(wide=wide)
    notes.print(console, plan_table(correction, notes))
    for note in correction.notes:
        console.print(f"  note: {escape(note)}")


def _refused(console: Console, exc: grpc.RpcError) -> ExitCode:
    if status_code(exc) in NOT_ANSWERED | CALLER_REFUSED:
        raise exc
    err = from_rpc_error(exc)
    console.print(f"[red]{err.reason}[/red]: {err.message}")
    for violation in err.precondition_violations:
        console.print(f"  - {violation.description}")
    return ExitCode.FAILED


def correct(args: argparse.Namespace, console: Console) -> ExitCode:
    record = record_key(args.record)
    intent = INTENTS[args.intent]
    if args.apply and not args.yes and not sys.stdin.isatty():
        raise UsageError("--apply changes Xero: confirm with --yes (or run it in a terminal to be asked)")
    with open_channel(args.poster) as channel:
        stub = poster_grpc.PosterServiceStub(channel)
        try:
            plan = stub.PlanCorrection(
                correction_pb2.PlanCorrectionRequest(connection_id=args.connection, record=record, intent=intent),
                timeout=30,
            ).correction
        except grpc.RpcError as exc:
            return _refused(console, exc)
        _show(console, plan, args.wide)
        if not args.apply:
            console.print("Nothing was changed. Add --apply --yes to perform xerolink's steps.")
            return ExitCode.OK
        if not args.yes and console.input("Perform xerolink's steps in Xero and the registry? [y/N] ").lower() != "y":
            console.print("Nothing was changed.")
            return ExitCode.OK
        return _apply(stub, console, args.connection, record, intent, args.wide)


def _apply(
    stub: poster_grpc.PosterServiceStub,
    console: Console,
    connection_id: str,
    record: common_pb2.RecordKey,
    intent: correction_pb2.CorrectionIntent.ValueType,
    wide: bool,
) -> ExitCode:
    """ApplyCorrection runs the saga to its end; meanwhile GetCorrection shows each step."""
    result: list[correction_pb2.Correction | grpc.RpcError] = []

    def run() -> None:
        try:
            request = correction_pb2.ApplyCorrectionRequest(connection_id=connection_id, record=record, intent=intent)
            result.append(stub.ApplyCorrection(request, timeout=600).correction)
        except grpc.RpcError as exc:
            result.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}")) as bar:
        task = bar.add_task("applying", total=None)
        while worker.is_alive():
            worker.join(0.2)
            try:
                seen = stub.GetCorrection(
                    correction_pb2.GetCorrectionRequest(connection_id=connection_id, record=record), timeout=5
                ).correction
            except grpc.RpcError:
                continue  # not started yet
            ours = [s for s in seen.steps if s.actor == correction_pb2.CORRECTION_ACTOR_XEROLINK]
            done = sum(s.state == correction_pb2.CORRECTION_STEP_STATE_DONE for s in ours)
            current = next((s for s in ours if s.state != correction_pb2.CORRECTION_STEP_STATE_DONE), None)
            bar.update(task, total=len(ours), completed=done, description=current.description if current else "done")
            time.sleep(0.05)
    [outcome] = result
    if isinstance(outcome, grpc.RpcError):
        return _refused(console, outcome)
    _show(console, outcome, wide)
    if outcome.state == correction_pb2.CORRECTION_STATE_COMPLETED:
        console.print("[green]xerolink's steps are done[/green]; the Actionstep user's steps above remain.")
        return ExitCode.OK
    console.print("[red]stopped at a failed step[/red]: fix what it says, then run the same command again to resume.")
    return ExitCode.FAILED
