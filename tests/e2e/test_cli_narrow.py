"""In an 80-column terminal every row of the CLI's tables is one line: refusal and error sentences
are listed below the table at their number, and `--wide` keeps them in their cells."""

from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import json_format
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_mapper import samples

from tests.fixtures.cli import run_cli, table
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled

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

    assert result.returncode == 4, result.stdout + result.stderr
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

    assert result.returncode == 0, result.stdout + result.stderr
    _fits(result.stdout)
    _, rows = table(result.stdout, "Links of firm-1")
    assert rows[0][0] == "client-bill/8201" and rows[0][-1].startswith("[1] XERO")
    below = " ".join(line.strip() for line in result.stdout.split("[1] XERO_VALIDATION: ", 1)[1].splitlines())
    assert failed.link.last_error.message.split()[0] in below
