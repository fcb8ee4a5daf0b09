"""`xerolink unlink` and `xerolink orphans` as an operator's script runs them: the real console
script against a real poster on loopback (SQLite and PostgreSQL registries) and the emulator."""

from __future__ import annotations

import os
import pty
import subprocess

from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_cli.exit_codes import ExitCode
from xerolink_mapper import samples

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled
from tests.fixtures.processes import child_env, console_script

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT


def run_cli(poster_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script("xerolink"), "--poster", f"127.0.0.1:{poster_port}", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(COLUMNS="400"),
        timeout=60,
        check=False,
    )


def post_linked(stub: poster_grpc.PosterServiceStub, *transactions: transaction_pb2.Transaction) -> None:
    for tx in transactions:
        posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=tx))
        assert wait_settled(stub, posting.posting.name).state == poster_pb2.LINK_STATE_LINKED


def state(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> int:
    request = poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=kind, id=record_id))  # type: ignore[arg-type]
    return int(stub.GetLink(request).link.state)


def test_unlink_shows_a_preview_needs_yes_refuses_without_cascade_and_lists_orphans(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    sample = samples.sample_transactions(3000)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    post_linked(stub, bill, payment)
    invoice_id = (
        stub.GetLink(
            poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=BILL, id=bill.header.id))
        )
        .link.xero_objects[0]
        .xero_id
    )
    record = f"client-bill:{bill.header.id}"

    blocked = run_cli(app.port, "unlink", "--connection", "firm-1", record, "--yes")
    assert blocked.returncode == ExitCode.FAILED, blocked.stdout + blocked.stderr
    assert "LINKED_DEPENDENTS" in blocked.stdout and f"client bill payment {payment.header.id}" in blocked.stdout
    assert "--cascade" in blocked.stdout

    unconfirmed = run_cli(app.port, "unlink", "--connection", "firm-1", record, "--cascade")
    assert unconfirmed.returncode == ExitCode.USAGE, unconfirmed.stdout + unconfirmed.stderr
    assert "Preview" in unconfirmed.stdout and "will unlink (cascade)" in unconfirmed.stdout
    assert "add --yes" in unconfirmed.stdout
    assert state(stub, BILL, bill.header.id) == poster_pb2.LINK_STATE_LINKED

    done = run_cli(app.port, "unlink", "--connection", "firm-1", record, "--cascade", "--yes", "--reason", "reissue")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert "2 unlinked; 2 Xero object(s) left in Xero" in done.stdout
    assert state(stub, BILL, bill.header.id) == poster_pb2.LINK_STATE_UNLINKED
    assert state(stub, PAYMENT, payment.header.id) == poster_pb2.LINK_STATE_UNLINKED

    listed = run_cli(app.port, "orphans", "--connection", "firm-1", "--record", record)
    assert listed.returncode == ExitCode.OK, listed.stdout + listed.stderr
    assert invoice_id in listed.stdout and "reissue" in listed.stdout

    again = run_cli(app.port, "unlink", "--connection", "firm-1", record, "--yes")
    assert again.returncode == ExitCode.OK and "already unlinked" in again.stdout


def test_unlink_selects_by_filters_and_refuses_bad_selections_with_exit_codes(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bills = []
    for n, matter in enumerate((9001, 9002)):
        bill = samples.sample_transactions(3100 + 100 * n)["client_bill"]
        bill.header.action_id = matter
        bills.append(bill)
    post_linked(stub, *bills)

    done = run_cli(app.port, "unlink", "--connection", "firm-1", "--kind", "client-bill", "--matter", "9002", "--yes")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert f"client-bill/{bills[1].header.id}" in done.stdout
    assert state(stub, BILL, bills[1].header.id) == poster_pb2.LINK_STATE_UNLINKED
    assert state(stub, BILL, bills[0].header.id) == poster_pb2.LINK_STATE_LINKED

    nothing = run_cli(app.port, "unlink", "--connection", "firm-1", "--matter", "424242", "--yes")
    assert nothing.returncode == ExitCode.OK and "No links match" in nothing.stdout
    for bad in (
        ["--connection", "firm-1"],
        ["--connection", "firm-1", "nonsense:1"],
        ["--connection", "firm-1", "--since", "soon"],
    ):
        refused = run_cli(app.port, "unlink", *bad, "--yes")
        assert refused.returncode == ExitCode.USAGE, (bad, refused.stdout, refused.stderr)
    assert state(stub, BILL, bills[0].header.id) == poster_pb2.LINK_STATE_LINKED

    unreachable = subprocess.run(
        [*console_script("xerolink"), "--poster", "127.0.0.1:9", "unlink", "--connection", "c", "client-bill:1"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
        check=False,
    )
    assert unreachable.returncode == ExitCode.UNAVAILABLE


def test_unlink_asks_on_a_terminal_and_acts_only_on_yes(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bill = samples.sample_transactions(3300)["client_bill"]
    post_linked(stub, bill)
    command = [*console_script("xerolink"), "--poster", f"127.0.0.1:{app.port}", "unlink", "--connection", "firm-1"]

    for answer, code, expected in (
        ("n", ExitCode.USAGE, poster_pb2.LINK_STATE_LINKED),
        ("y", ExitCode.OK, poster_pb2.LINK_STATE_UNLINKED),
    ):
        controller, terminal = pty.openpty()
        try:
            proc = subprocess.Popen(
                [*command, f"client-bill:{bill.header.id}"],
                stdin=terminal,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=child_env(COLUMNS="400"),
            )
            os.write(controller, f"{answer}\n".encode())
            out, err = proc.communicate(timeout=60)
        finally:
            os.close(controller)
            os.close(terminal)
        assert proc.returncode == code, out + err
        assert "Unlink 1 record(s) from Xero?" in out
        assert ("Nothing was changed." in out) == (answer == "n")
        assert state(stub, BILL, bill.header.id) == expected


def test_unlink_sends_link_names_by_kind_from_kind_names_and_the_numeric_form(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bills = [samples.sample_transactions(3400 + 100 * n)["client_bill"] for n in range(4)]
    post_linked(stub, *bills)
    ids = [bill.header.id for bill in bills]

    # A whole name of another connection is refused by the poster as names[0]: the CLI sends the
    # name, not the record it holds, which would have unlinked firm-1's record instead.
    other = run_cli(
        app.port, "unlink", "--connection", "firm-1", f"connections/firm-2/links/client-bill/{ids[0]}", "--yes"
    )
    assert other.returncode == 2, other.stdout + other.stderr
    assert "names[0]" in other.stdout
    assert state(stub, BILL, ids[0]) == poster_pb2.LINK_STATE_LINKED

    written = [
        f"client-bill/{ids[0]}",
        f"1/{ids[1]}",
        f"connections/firm-1/links/1/{ids[2]}",
        f"connections/firm-1/links/client-bill/{ids[3]}",
    ]
    done = run_cli(app.port, "unlink", "--connection", "firm-1", *written, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 unlinked" in done.stdout
    for record_id in ids:
        assert f"client-bill/{record_id}" in done.stdout
        assert state(stub, BILL, record_id) == poster_pb2.LINK_STATE_UNLINKED


def test_a_record_id_beyond_int64_or_markup_in_a_record_is_a_usage_error_in_one_line(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory(run_dispatcher=False)
    connect(stub_for(app), emulator)
    huge = "99999999999999999999"

    for args in (
        ["unlink", "--connection", "firm-1", f"client-bill/{huge}", "--yes"],
        ["unlink", "--connection", "firm-1", f"connections/firm-1/links/1/{huge}", "--yes"],
        ["unlink", "--connection", "firm-1", f"client-bill/{'9' * 5000}", "--yes"],
        ["orphans", "--connection", "firm-1", "--record", f"client-bill/{huge}"],
        ["correct", f"client-bill/{huge}", "--connection", "firm-1", "--intent", "delete"],
        ["correct", f"{huge}/1", "--connection", "firm-1", "--intent", "delete"],
        # What the error repeats of the input is text, never markup.
        ["unlink", "--connection", "firm-1", "[/red]:1", "--yes"],
    ):
        result = run_cli(app.port, *args)
        assert result.returncode == ExitCode.USAGE, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        # One line however long the input, for scripts to grep.
        [line] = result.stdout.splitlines()
        assert line.startswith("error: "), line
