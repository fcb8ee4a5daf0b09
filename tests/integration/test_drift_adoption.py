"""Links made before snapshots were kept (docs/drift.md): Reconcile reads their objects from Xero
first and adopts a baseline for each, through the tenant's budget and a bounded number of reads a
call; what xerolink cannot have posted (a void in Xero, money no link made) shows as drift with
source RECONCILE and explains the difference. A real poster, the emulator over HTTP, both
registries."""

from __future__ import annotations

import grpc
import pytest
from xero_emulator import EmulatorServer
from xerolink.poster.v1 import drift_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples
from xerolink_poster.service_layer import snapshot_adoption
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.attack.test_drift_attacks import Firm, differing
from tests.fixtures.poster import PosterFactory


def _audit_events(firm: Firm, xero_id: str) -> list[str]:
    """The audit events of the link holding the Xero object."""
    with UnitOfWork(firm.app.db, write=False) as uow:
        link = uow.links.link_holding(firm.connection_id, xero_id)
        assert link is not None and link.id is not None
        return [a.event for a in uow.links.audit(link.id)]


def test_reconcile_adopts_old_links_and_a_void_in_xero_is_the_explained_difference(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator)
    sample = samples.sample_transactions(43000)
    invoice = firm.post(sample["client_bill"])
    firm.post(sample["supplier_invoice"])
    firm.forget_snapshots()
    emulator.hand_edit(firm.tenant, "Invoices", invoice, {"Status": "VOIDED"})

    answer = firm.reconcile()

    assert not answer.reconciled and differing(answer)
    assert all(a.unexplained.units == 0 for a in answer.accounts), differing(answer)
    reasons = {e.reason for a in answer.accounts for e in a.explanations if e.xero_id == invoice}
    assert reasons == {"VOIDED_IN_XERO"}
    drifts = firm.stub.ListDrift(drift_pb2.ListDriftRequest(connection_id=firm.connection_id)).drifts
    assert [(d.kind, d.source) for d in drifts] == [
        (drift_pb2.DRIFT_KIND_VOIDED_IN_XERO, drift_pb2.DRIFT_SOURCE_RECONCILE)
    ]
    assert [d.link for d in drifts] == [firm.link(sample["client_bill"]).name]
    assert _audit_events(firm, invoice)[-2:] == ["snapshot_adopted", "drift_detected"]


def test_money_no_link_made_on_an_old_link_is_not_reconciled_away(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    firm = Firm(poster_factory(), emulator)
    sample = samples.sample_transactions(43100)
    invoice = firm.post(sample["client_bill"])
    firm.forget_snapshots()
    match = {"InvoiceID": invoice, "Amount": "20.00", "Date": "2026-03-05", "AccountCode": "090"}
    emulator.bank_feed_match(firm.tenant, match)

    answer = firm.reconcile()

    assert not answer.reconciled
    assert all(a.unexplained.units == 0 for a in answer.accounts), differing(answer)
    assert differing(answer)["090"][1] - differing(answer)["090"][0] == 2000
    drifts = firm.stub.ListDrift(drift_pb2.ListDriftRequest(connection_id=firm.connection_id)).drifts
    assert [d.kind for d in drifts] == [drift_pb2.DRIFT_KIND_ALLOCATION_ADDED_IN_XERO]


def test_adoption_reads_at_most_its_share_a_call_and_the_next_call_goes_on(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    firm = Firm(poster_factory(), emulator)
    sample = samples.sample_transactions(43200)
    firm.post(sample["client_bill"])
    firm.post(sample["client_bill_payment"])
    firm.forget_snapshots()
    monkeypatch.setattr(snapshot_adoption, "ADOPT_READS", 1)

    try:
        firm.reconcile()
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert from_rpc_error(err).reason == "SNAPSHOTS_NOT_ADOPTED"
        assert "1 objects" in (err.details() or "")
    else:
        raise AssertionError("reconciled before every linked object was read")
    answer = firm.reconcile()

    assert answer.reconciled and differing(answer) == {}
    assert snapshot_adoption.missing_snapshots(firm.app.db, firm.connection_id) == []
