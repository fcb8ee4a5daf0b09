"""In an 80-column terminal every row of the CLI's tables is one line: refusal, error and step sentences
are listed below the table at their number, and `--wide` keeps them in their cells."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_cli.exit_codes import ExitCode
from xerolink_mapper import samples

from tests.fixtures.cli import run_cli, table
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled
from tests.integration.test_poster_corrections import BILL, PAYMENT, Firm

NARROW = "80"


def _fits(output: str) -> None:
    too_wide = [line for line in output.splitlines() if len(line) > int(NARROW)]
    assert not too_wide, "\n".join(too_wide)


def test_post_at_80_columns_keeps_each_row_on_one_line_and_lists_the_reasons_below(
    poster_factory: PosterFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    app = poster_factory()
    connect(stub_for(app), emulator)
    sample = samples.sample_transactions(8000)
    journals = [sample["general_journal"], samples.sample_transactions(8100)["general_journal"]]
    source = tmp_path / "week.ndjson"
    source.write_text(
        "".join(json.dumps(json_format.MessageToDict(t)) + "\n" for t in [sample["client_bill"], *journals])
    )

    result = run_cli(
        "--poster", f"127.0.0.1:{app.port}", "post", str(source), "--connection", "firm-1", "--wait", COLUMNS=NARROW
    )

    assert result.returncode == ExitCode.REFUSED, result.stdout + result.stderr
    _fits(result.stdout)
    _, rows = table(result.stdout, "Posted to Xero")
    assert [row[0] for row in rows] == [
        f"client-bill/{sample['client_bill'].header.id}",
        *(f"general-journal/{j.header.id}" for j in journals),
    ]
    # Two refusals for one reason share one note.
    assert [row[-1] for row in rows[1:]] == ["[1] EXTENDED_ONLY", "[1] EXTENDED_ONLY"]
    notes = [line for line in result.stdout.splitlines() if line.startswith("[1] ")]
    assert notes and notes[0].startswith("[1] EXTENDED_ONLY: ")

    wide = run_cli(
        "--wide", "--poster", f"127.0.0.1:{app.port}", "post", str(source), "--connection", "firm-1", "--wait"
    )
    _, wide_rows = table(wide.stdout, "Posted to Xero")
    assert wide_rows[1][-1].startswith("EXTENDED_ONLY: ") and len(wide_rows[1][-1]) > 40
    assert "[1] " not in wide.stdout


def test_links_at_80_columns_lists_last_errors_below(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    app = poster_factory()
    stub = stub_for(app)
    # Without the chart the mapper cannot catch the unknown account; Xero refuses the bill.
    connect(stub, emulator, context=samples.demo_context(with_chart=False))
    refused = samples.client_bill(8201, [samples.line("Advice", "999", "GST", 10000, 1000)])
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=refused))
    failed = wait_settled(stub, posting.posting.name)
    assert failed.state == poster_pb2.LINK_STATE_FAILED

    result = run_cli("--poster", f"127.0.0.1:{app.port}", "links", "--connection", "firm-1", COLUMNS=NARROW)

    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    _fits(result.stdout)
    _, rows = table(result.stdout, "Links of firm-1")
    assert rows[0][0] == "client-bill/8201" and rows[0][-1].startswith("[1] XERO")
    below = " ".join(line.strip() for line in result.stdout.split("[1] XERO_VALIDATION: ", 1)[1].splitlines())
    assert failed.link.last_error.message.split()[0] in below


def _notes(output: str) -> dict[int, str]:
    """The sentences listed below the tables by number, each joined back onto one line."""
    notes: dict[int, str] = {}
    number = 0
    for line in output.splitlines():
        head, _, rest = line.partition("] ")
        if line.startswith("[") and head[1:].isdigit():
            number = int(head[1:])
            notes[number] = rest
        elif number and line and not line.startswith(("  note:", "Nothing", "Xero says", "stopped")):
            notes[number] += " " + line.strip()
        else:
            number = 0
    return notes


def test_correct_at_80_columns_keeps_each_step_on_one_line_and_lists_its_sentences_below(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    firm = Firm(stub_for(app), emulator)
    firm.post("client_bill", "client_bill_payment")
    payment_id = firm.xero_id(PAYMENT, firm.payment, xero_pb2.OBJECT_TYPE_PAYMENT)
    invoice_id = firm.xero_id(BILL, firm.bill, xero_pb2.OBJECT_TYPE_INVOICE)
    target = f"127.0.0.1:{app.port}"
    args = (f"client-bill/{firm.bill}", "--connection", "firm-1", "--intent", "delete")

    planned = run_cli("--poster", target, "correct", *args, COLUMNS=NARROW)

    assert planned.returncode == ExitCode.OK, planned.stdout + planned.stderr
    _fits(planned.stdout)
    _, rows = table(planned.stdout, f"Correction of client-bill/{firm.bill}: planned (nothing done yet)")
    # Step i's sentence is note [i]; the step cell shows its action beside the number.
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(rows) + 1)]
    assert [row[2].split(" ", 1)[0] for row in rows] == [f"[{i}]" for i in range(1, len(rows) + 1)]
    assert rows[0][1:3] == ["xerolink", "[1] delete payment"]
    assert rows[-1][1] == "Actionstep user"
    notes = _notes(planned.stdout)
    assert notes[1] == f"Delete payment {payment_id} of payment {firm.payment} in Xero"
    assert notes[len(rows)] == f"Delete client bill {firm.bill} in Actionstep"
    assert "Xero says AUTHORISED" in planned.stdout

    firm.emulator.faults.add(FaultRule("error", status=503, count=1, methods=("POST",), path_contains=invoice_id))
    failed = run_cli("--poster", target, "correct", *args, "--apply", "--yes", COLUMNS=NARROW)

    assert failed.returncode == ExitCode.FAILED, failed.stdout + failed.stderr
    _fits(failed.stdout)
    _, rows = table(failed.stdout, f"Correction of client-bill/{firm.bill}: stopped at a failed step")
    [void] = [row for row in rows if row[3] == "failed"]
    number, reason = void[-1].split(" ")
    assert reason == "XERO_UNAVAILABLE"
    assert _notes(failed.stdout)[int(number.strip("[]"))].startswith("XERO_UNAVAILABLE: Xero answered 503")

    wide = run_cli("--wide", "--poster", target, "correct", *args, "--apply", "--yes")

    assert wide.returncode == ExitCode.OK, wide.stdout + wide.stderr
    _, wide_rows = table(wide.stdout, f"Correction of client-bill/{firm.bill}: xerolink's steps done")
    assert wide_rows[0][2] == f"Delete payment {payment_id} of payment {firm.payment} in Xero"
    assert wide_rows[0][-1].startswith("deleted in Xero")
    assert "[1] " not in wide.stdout


def test_links_at_80_columns_never_cut_the_record(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    # The longest record a link can name: the id is what a user copies into `xerolink unlink`.
    payment = samples.sample_transactions(8300)["client_bill_payment"]
    payment.header.id = 2**63 - 1
    stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=payment))

    result = run_cli("--poster", f"127.0.0.1:{app.port}", "links", "--connection", "firm-1", COLUMNS=NARROW)

    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    _fits(result.stdout)
    _, rows = table(result.stdout, "Links of firm-1")
    assert rows[0][0] == f"client-bill-payment/{2**63 - 1}", result.stdout


def test_orphans_at_80_columns_never_cut_the_record(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bill = samples.sample_transactions(8400)["client_bill"]
    bill.header.id = 2**63 - 1
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    assert wait_settled(stub, posting.posting.name).state == poster_pb2.LINK_STATE_LINKED
    target = f"127.0.0.1:{app.port}"
    unlinked = run_cli("--poster", target, "unlink", "--connection", "firm-1", f"client-bill/{2**63 - 1}", "--yes")
    assert unlinked.returncode == ExitCode.OK, unlinked.stdout + unlinked.stderr

    result = run_cli("--poster", target, "orphans", "--connection", "firm-1", COLUMNS=NARROW)

    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    _fits(result.stdout)
    _, rows = table(result.stdout, "Xero objects left in Xero by unlinks (firm-1)")
    assert rows[0][0] == f"client-bill/{2**63 - 1}", result.stdout
