"""Every way a record is unlinked stops comparing its Xero objects (docs/drift.md, "Holds and
resolution"): UnlinkLinks of one half of a trust pair takes the other half's snapshots too, and a
correction's unlink step does the same. A real poster, the real mapper and the emulator's
organisations, on both registries."""

from __future__ import annotations

from typing import Any

from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.entrypoints.bootstrap import PosterApp
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, stub_for, wait_settled
from tests.fixtures.routing import extended_context, route, sample

PAID = common_pb2.TRANSACTION_KIND_INVOICE_PAID_FROM_TRUST


def _pair(poster_factory: PosterFactory, emulator_factory: EmulatorFactory) -> tuple[PosterApp, Any, Any]:
    """An office connection whose trust money is in its own organisation, with a bill and its
    invoice paid from trust posted (the spend under the trust connection, the payment under the
    office one)."""
    app = poster_factory()
    stub = stub_for(app)
    emulator = emulator_factory()
    connect(stub, emulator, "office", extended_context())
    connect(stub, emulator, "trust", extended_context())
    route(stub, "office", trust_connection_id="trust")
    payment = sample("invoice_paid_from_trust")
    for tx in (sample("client_bill"), payment):
        posted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="office", transaction=tx))
        assert wait_settled(stub, posted.posting.name).state == poster_pb2.LINK_STATE_LINKED
    return app, stub, common_pb2.RecordKey(kind=PAID, id=payment.header.id)


def _snapshots(app: PosterApp, record_id: int) -> dict[str, list[bool]]:
    """Per connection, whether each snapshot of the record's links is active."""
    out: dict[str, list[bool]] = {}
    with UnitOfWork(app.db, write=False) as uow:
        for connection_id in ("office", "trust"):
            link = uow.links.get_link(connection_id, RecordRef(PAID, record_id))
            assert link is not None and link.id is not None
            rows = uow.drift.snapshots_of_links([link.id], active_only=False)
            out[connection_id] = [row.active for row in rows]
    return out


def test_unlinking_one_half_of_a_trust_pair_stops_comparing_both(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    app, stub, record = _pair(poster_factory, emulator_factory)
    assert _snapshots(app, record.id) == {"office": [True], "trust": [True]}

    stub.UnlinkLinks(unlink_pb2.UnlinkLinksRequest(connection_id="trust", records=[record], confirm=True))

    assert _snapshots(app, record.id) == {"office": [False], "trust": [False]}


def test_a_corrections_unlink_step_stops_comparing_both_halves(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    app, stub, record = _pair(poster_factory, emulator_factory)

    request = correction_pb2.ApplyCorrectionRequest(
        connection_id="office", record=record, intent=correction_pb2.CORRECTION_INTENT_DELETE
    )
    done = stub.ApplyCorrection(request, timeout=60).correction

    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED
    assert _snapshots(app, record.id) == {"office": [False], "trust": [False]}
