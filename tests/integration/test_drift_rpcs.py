"""Drift records through the poster's API and CLI, on SQLite and PostgreSQL: ListDrift with its
filters and pages, the open drifts on GetLink and ListLinks, ListLinks' `drifted` filter, bad
requests refused with field violations, and `xerolink drift list` as table and JSON."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import drift_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_common.grpc_errors import from_rpc_error

from tests.fixtures.cli import run_cli, table
from tests.fixtures.poster import PosterFactory
from tests.integration.test_drift_detection import INVOICE, Firm

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
OPEN, RESOLVED = drift_pb2.DRIFT_STATE_OPEN, drift_pb2.DRIFT_STATE_RESOLVED
VOIDED, DATED = drift_pb2.DRIFT_KIND_VOIDED_IN_XERO, drift_pb2.DRIFT_KIND_DATE_CHANGED


def drifted_firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> tuple[Firm, list[str]]:
    """Three bills: the first voided in Xero, the second re-dated, the third untouched."""
    firm = Firm(poster_factory(), emulator)
    ids = [firm.bill(base) for base in (23000, 23100, 23200)]
    firm.edit("Invoices", ids[0], {"Status": "VOIDED"})
    firm.edit("Invoices", ids[1], {"Date": "2026-03-09"})
    for xero_id in ids:
        firm.observe("Invoices", INVOICE, xero_id)
    return firm, ids


def list_drift(firm: Firm, **fields: Any) -> drift_pb2.ListDriftResponse:
    answer: drift_pb2.ListDriftResponse = firm.stub.ListDrift(
        drift_pb2.ListDriftRequest(connection_id="firm-1", **fields)
    )
    return answer


def link_name(record_id: int) -> str:
    return f"connections/firm-1/links/client-bill/{record_id}"


def test_drift_is_listed_filtered_paged_and_shown_on_links(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm, ids = drifted_firm(poster_factory, emulator)

    listed = list_drift(firm).drifts
    assert [(d.kind, d.xero_id, d.state) for d in listed] == [(DATED, ids[1], OPEN), (VOIDED, ids[0], OPEN)]
    dated = listed[0]
    assert dated.name == f"connections/firm-1/drifts/{dated.drift_id}"
    assert (dated.link, dated.record.kind, dated.record.id) == (link_name(23101), BILL, 23101)
    assert dated.source == drift_pb2.DRIFT_SOURCE_POLL and dated.detect_time.seconds > 0
    assert dated.xero_update_time.seconds > 0
    assert [(f.field, f.posted, f.xero) for f in dated.differences] == [("Date", "2026-03-02", "2026-03-09")]
    assert "date was changed in Xero" in dated.description

    assert [d.kind for d in list_drift(firm, kinds=[VOIDED]).drifts] == [VOIDED]
    assert [d.kind for d in list_drift(firm, link=link_name(23101)).drifts] == [DATED]
    first = list_drift(firm, page_size=1)
    assert [d.kind for d in first.drifts] == [DATED] and first.next_page_token
    second = list_drift(firm, page_size=1, page_token=first.next_page_token)
    assert [d.kind for d in second.drifts] == [VOIDED] and not second.next_page_token

    record = common_pb2.RecordKey(kind=BILL, id=23001)
    got = firm.stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link
    assert [(d.kind, d.state) for d in got.drifts] == [(VOIDED, OPEN)]
    drifted = firm.stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", drifted=True)).links
    assert [link.name for link in drifted] == [link_name(23001), link_name(23101)]
    every = firm.stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1")).links
    assert {link.name: len(link.drifts) for link in every} == {
        link_name(23001): 1,
        link_name(23101): 1,
        link_name(23201): 0,
    }

    # Put back in Xero: resolved, off the link, listed as resolved.
    firm.edit("Invoices", ids[1], {"Date": "2026-03-02"})
    firm.observe("Invoices", INVOICE, ids[1])
    [restored] = list_drift(firm, state=RESOLVED).drifts
    assert (restored.kind, restored.resolution, restored.resolved_by) == (
        DATED,
        drift_pb2.DRIFT_RESOLUTION_XERO_RESTORED,
        "poller",
    )
    assert restored.resolve_time.seconds > 0
    assert [d.kind for d in list_drift(firm, state=OPEN).drifts] == [VOIDED]
    drifted = firm.stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", drifted=True)).links
    assert [link.name for link in drifted] == [link_name(23001)]


def refusal(call: Any) -> tuple[grpc.StatusCode, list[str], str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    details = from_rpc_error(err.value)
    return err.value.code(), [v.field for v in details.field_violations], details.reason


def test_bad_list_drift_requests_are_refused_naming_the_fields(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm, _ = drifted_firm(poster_factory, emulator)
    bad = grpc.StatusCode.INVALID_ARGUMENT

    assert refusal(lambda: list_drift(firm, state=7)) == (bad, ["state"], "INVALID_DRIFT_FILTER")
    assert refusal(lambda: list_drift(firm, kinds=[VOIDED, 0, 99])) == (
        bad,
        ["kinds[1]", "kinds[2]"],
        "INVALID_DRIFT_FILTER",
    )
    assert refusal(lambda: list_drift(firm, link="client-bill/23001"))[1] == ["link"]
    assert refusal(lambda: list_drift(firm, link="connections/other/links/client-bill/23001"))[1] == ["link"]
    assert refusal(lambda: list_drift(firm, page_size=-1)) == (bad, ["page_size"], "INVALID_PAGE_SIZE")
    assert refusal(lambda: list_drift(firm, page_token="not a token")) == (bad, ["page_token"], "INVALID_PAGE_TOKEN")
    token = list_drift(firm, page_size=1).next_page_token
    assert refusal(lambda: list_drift(firm, page_size=1, page_token=token, state=OPEN))[1] == ["page_token"]
    assert refusal(lambda: list_drift(firm, link=link_name(99999)))[0] == grpc.StatusCode.NOT_FOUND
    unknown = drift_pb2.ListDriftRequest(connection_id="nobody")
    assert refusal(lambda: firm.stub.ListDrift(unknown))[0] == grpc.StatusCode.NOT_FOUND
    assert refusal(lambda: firm.stub.ListDrift(drift_pb2.ListDriftRequest()))[1] == ["connection_id"]
    # Nothing changed.
    assert len(list_drift(firm).drifts) == 2


def test_the_cli_lists_drift_as_a_table_and_as_json(poster_factory: PosterFactory, emulator: EmulatorServer) -> None:
    firm, ids = drifted_firm(poster_factory, emulator)
    poster = f"127.0.0.1:{firm.app.port}"

    shown = run_cli("--poster", poster, "drift", "list", "--connection", "firm-1", "--state", "open")
    assert shown.returncode == 0, shown.stderr
    header, rows = table(shown.stdout, "Drift in Xero (firm-1)")
    assert header[:4] == ["detected", "link", "kind", "state"]
    assert [(r[1], r[2], r[3]) for r in rows if r[1]] == [
        ("client-bill/23101", "date-changed", "open"),
        ("client-bill/23001", "voided-in-xero", "open"),
    ]

    as_json = run_cli(
        "--poster", poster, "drift", "list", "--connection", "firm-1", "--kind", "voided-in-xero", "--format", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    [voided] = json.loads(as_json.stdout)
    assert (voided["kind"], voided["xero_id"], voided["link"]) == (
        "DRIFT_KIND_VOIDED_IN_XERO",
        ids[0],
        link_name(23001),
    )
    assert voided["differences"] == [{"field": "Status", "posted": "AUTHORISED", "xero": "VOIDED"}]

    refused = run_cli("--poster", poster, "drift", "list", "--connection", "firm-1", "--link", "nonsense")
    assert refused.returncode != 0 and "KIND/ID" in refused.stdout
