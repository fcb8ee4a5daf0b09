"""`xerolink post` and `xerolink links` as an operator's script runs them: the real console script
against a real poster and mapper on loopback and the Xero emulator over HTTP. The tables are read
cell by cell, so a cell in the wrong column fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2
from xerolink_cli.exit_codes import ExitCode
from xerolink_mapper import samples

from tests.fixtures.cli import run_cli, table
from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled

POSTED = "Posted to Xero"
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
POST_COLUMNS = ["record", "state", "Xero", "reason"]
LINK_COLUMNS = ["record", "group", "state", "Xero", "attempts", "last error"]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The registry is not what these tests are about: SQLite only."""
    return f"sqlite:///{tmp_path / 'registry.db'}"


def as_json(tx: transaction_pb2.Transaction) -> dict[str, object]:
    return json_format.MessageToDict(tx)


def ndjson(*transactions: transaction_pb2.Transaction) -> str:
    return "".join(json.dumps(as_json(tx)) + "\n" for tx in transactions)


def link_of(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> poster_pb2.Link:
    request = poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=kind, id=record_id))  # type: ignore[arg-type]
    link: poster_pb2.Link = stub.GetLink(request).link
    return link


OBJECT_WORDS = {objects_pb2.OBJECT_TYPE_INVOICE: "invoice", objects_pb2.OBJECT_TYPE_PAYMENT: "payment"}


def xero_cell(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> str:
    """What `post` must show in the Xero column of a linked record: its objects by number, else
    by the start of their Xero id, as the poster's own link holds them."""
    link = link_of(stub, kind, record_id)
    assert link.state == poster_pb2.LINK_STATE_LINKED and link.xero_objects
    return ", ".join(f"{OBJECT_WORDS[o.type]} {o.number or o.xero_id[:8]}" for o in link.xero_objects)


def test_post_from_an_ndjson_file_with_wait_links_each_and_exits_4_for_an_unsupported_kind(
    poster_factory: PosterFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    sample = samples.sample_transactions(4000)
    bill, payment, journal = sample["client_bill"], sample["client_bill_payment"], sample["general_journal"]
    source = tmp_path / "week.ndjson"
    source.write_text(ndjson(bill, payment, journal))

    result = run_cli(
        "--wide", "--poster", f"127.0.0.1:{app.port}", "post", str(source), "--connection", "firm-1", "--wait"
    )

    assert result.returncode == ExitCode.REFUSED, result.stdout + result.stderr
    header, rows = table(result.stdout, POSTED)
    assert header == POST_COLUMNS
    assert rows[:2] == [
        [f"client-bill/{bill.header.id}", "linked", xero_cell(stub, BILL, bill.header.id), ""],
        [
            f"client-bill-payment/{payment.header.id}",
            "linked",
            xero_cell(stub, PAYMENT, payment.header.id),
            "",
        ],
    ]
    record, state, xero, reason = rows[2]
    assert (record, state, xero) == (f"general-journal/{journal.header.id}", "not posted", "—")
    assert reason.startswith("EXTENDED_ONLY: ")
    assert "2 linked, 1 not posted" in result.stdout


def test_post_reads_a_json_array_from_stdin_and_exits_1_when_xero_refuses_one(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    # Without the chart the mapper cannot catch the unknown account; Xero refuses that bill.
    connect(stub, emulator, context=samples.demo_context(with_chart=False))
    good = samples.client_bill(4101)
    unknown_account = samples.client_bill(4102, [samples.line("Advice", "999", "GST", 10000, 1000)])
    no_id = samples.client_bill(4103)
    no_id.header.id = 0
    stdin = json.dumps([as_json(good), as_json(unknown_account), as_json(no_id)])

    result = run_cli(
        "--wide", "--poster", f"127.0.0.1:{app.port}", "post", "-", "--connection", "firm-1", "--wait", stdin=stdin
    )

    assert result.returncode == ExitCode.FAILED, result.stdout + result.stderr
    header, rows = table(result.stdout, POSTED)
    assert header == POST_COLUMNS
    assert rows[0] == ["client-bill/4101", "linked", "invoice INV-4101", ""]
    record, state, xero, reason = rows[1]
    assert (record, state, xero) == ("client-bill/4102", "failed", "—")
    assert reason.startswith("XERO_VALIDATION: ") and reason == (
        f"XERO_VALIDATION: {link_of(stub, BILL, 4102).last_error.message}"
    )
    record, state, xero, reason = rows[2]
    assert (record, state, xero) == ("client-bill/0", "rejected", "—")
    assert reason.startswith("INVALID_TRANSACTION: ")
    assert "1 failed, 1 linked, 1 rejected" in result.stdout


def test_post_without_wait_answers_at_once_with_pending_and_waiting_rows(
    poster_factory: PosterFactory, emulator: EmulatorServer, tmp_path: Path
) -> None:
    # No dispatcher: nothing reaches Xero, so the answer is what the poster accepted.
    app = poster_factory(run_dispatcher=False)
    stub = stub_for(app)
    connect(stub, emulator)
    sample = samples.sample_transactions(4200)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    source = tmp_path / "two.ndjson"
    source.write_text(ndjson(bill, payment))

    result = run_cli("--wide", "--poster", f"127.0.0.1:{app.port}", "post", str(source), "--connection", "firm-1")

    assert result.returncode == ExitCode.OK, result.stdout + result.stderr
    header, rows = table(result.stdout, POSTED)
    assert header == POST_COLUMNS
    assert rows[0] == [f"client-bill/{bill.header.id}", "pending", "—", ""]
    record, state, xero, reason = rows[1]
    assert (record, state, xero) == (
        f"client-bill-payment/{payment.header.id}",
        "waiting",
        "—",
    )
    waiting = link_of(stub, PAYMENT, payment.header.id)
    assert waiting.state == poster_pb2.LINK_STATE_WAITING
    assert reason == f"DEPENDENCY_NOT_LINKED: {waiting.last_error.message}"
    assert "1 pending, 1 waiting" in result.stdout


def test_links_lists_the_registry_by_group_and_state(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator, context=samples.demo_context(with_chart=False))
    sample = samples.sample_transactions(4300)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    refused = samples.client_bill(4399, [samples.line("Advice", "999", "GST", 10000, 1000)])
    for tx in (bill, payment, refused):
        posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=tx))
        wait_settled(stub, posting.posting.name)
    payment_link = link_of(stub, PAYMENT, payment.header.id)
    failed = link_of(stub, BILL, refused.header.id)
    assert failed.state == poster_pb2.LINK_STATE_FAILED and failed.last_error.message

    def links(*filters: str) -> list[list[str]]:
        result = run_cli("--wide", "--poster", f"127.0.0.1:{app.port}", "links", "--connection", "firm-1", *filters)
        assert result.returncode == ExitCode.OK, result.stdout + result.stderr
        header, rows = table(result.stdout, "Links of firm-1")
        assert header == LINK_COLUMNS
        return sorted(rows)

    bill_row = [f"client-bill/{bill.header.id}", "sales invoices", "linked", f"INV-{bill.header.id}", "1", ""]
    payment_row = [
        f"client-bill-payment/{payment.header.id}",
        "payments",
        "linked",
        ", ".join(o.xero_id for o in payment_link.xero_objects),
        "1",
        "",
    ]
    failed_row = [
        f"client-bill/{refused.header.id}",
        "sales invoices",
        "failed",
        "—",
        str(failed.attempts),
        f"{failed.last_error.reason}: {failed.last_error.message}",
    ]
    assert links() == sorted([bill_row, payment_row, failed_row])
    assert links("--group", "payments") == [payment_row]
    assert links("--group", "sales-invoices") == sorted([bill_row, failed_row])
    assert links("--state", "failed") == [failed_row]
    assert links("--group", "payments", "--state", "failed") == []
    assert links("--group", "credit-notes") == []
