"""The stateful test's sequence for bill-2, made deterministic on SQLite: post a client bill,
correct it (ApplyCorrection EDIT), post the same content again, then again.

What the docs promise (docs/corrections.md, "Editing a client bill: the old invoice gives up its
number"): the EDIT renames the old invoice `<number>-void-<bill id>-<generation>` before voiding
it, "so the edited bill can be posted again under INV-0042", and "After the saga, the user's
repost creates a new invoice `INV-0042` and links it (generation 2)". docs/link-states.md,
"Posting again": unlinked, same content -> "queued again as a new generation"; linked, same
content -> "the existing posting (`duplicate`), nothing new in Xero"."""

from __future__ import annotations

from typing import Any

import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled, xero_objects

BILL_ID = 102  # the stateful model's bill-2
NUMBER = f"INV-{BILL_ID}"
RENAMED = f"{NUMBER}-void-{BILL_ID}-1"
CONNECTION = "firm-1"


def bill() -> transaction_pb2.Transaction:
    """bill-2 at version 0, exactly as tests/stateful/link_model.py builds it."""
    lines = [
        samples.line("Advice on lease", "200", "GST", 45_000, 4_500),
        samples.line("Court filing fee", "210", "FRE", 8_900, 0),
    ]
    return samples.client_bill(BILL_ID, lines)


class Bill:
    def __init__(self, stub: poster_grpc.PosterServiceStub, emulator: EmulatorServer) -> None:
        self.stub = stub
        self.emulator = emulator
        _, self.org = connect(stub, emulator, CONNECTION)
        self.key = common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=BILL_ID)

    def post(self) -> poster_pb2.Posting:
        request = poster_pb2.PostTransactionRequest(connection_id=CONNECTION, transaction=bill())
        posting: poster_pb2.Posting = self.stub.PostTransaction(request).posting
        return posting

    def link(self) -> poster_pb2.Link:
        request = poster_pb2.GetLinkRequest(connection_id=CONNECTION, record=self.key, include_audit=True)
        found: poster_pb2.Link = self.stub.GetLink(request).link
        return found

    def invoice_id(self) -> str:
        return next(o.xero_id for o in self.link().xero_objects if o.type == xero_pb2.OBJECT_TYPE_INVOICE)

    def correct(self) -> correction_pb2.Correction:
        request = correction_pb2.ApplyCorrectionRequest(
            connection_id=CONNECTION, record=self.key, intent=correction_pb2.CORRECTION_INTENT_EDIT
        )
        found: correction_pb2.Correction = self.stub.ApplyCorrection(request, timeout=60).correction
        return found

    def unlink(self) -> None:
        request = unlink_pb2.UnlinkLinksRequest(connection_id=CONNECTION, records=[self.key], confirm=True, reason="t")
        assert self.stub.UnlinkLinks(request).unlinked_count == 1

    def invoices(self) -> list[dict[str, Any]]:
        return [i for i in xero_objects(self.emulator, self.org["tenant_id"], "Invoices") if i["Type"] == "ACCREC"]

    def numbers(self) -> list[tuple[str, str, str]]:
        """Xero's ACCREC invoices as (InvoiceID, InvoiceNumber, Status), sorted by number."""
        return sorted(((i["InvoiceID"], i["InvoiceNumber"], i["Status"]) for i in self.invoices()), key=lambda t: t[1])


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Bill:
    return Bill(stub_for(poster_factory()), emulator)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bill_corrected_then_posted_unchanged_twice_links_under_its_own_number(firm: Bill) -> None:
    linked, unlinked = poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_UNLINKED

    # 1. post bill-2: linked, one AUTHORISED invoice INV-102.
    first = firm.post()
    assert not first.duplicate
    assert wait_settled(firm.stub, first.name).state == linked
    old_id = firm.invoice_id()
    assert firm.numbers() == [(old_id, NUMBER, "AUTHORISED")]
    link = firm.link()
    assert (link.state, link.last_error.reason) == (linked, "")

    # 2. ApplyCorrection EDIT: renamed INV-102-void-102-1, voided, unlinked (generation 1).
    done = firm.correct()
    assert done.state == correction_pb2.CORRECTION_STATE_COMPLETED, done
    rename = next(s for s in done.steps if s.action == correction_pb2.CORRECTION_ACTION_RENAME_DOCUMENT)
    assert rename.state == correction_pb2.CORRECTION_STEP_STATE_DONE and RENAMED in rename.detail, rename
    assert firm.numbers() == [(old_id, RENAMED, "VOIDED")]
    link = firm.link()
    assert (link.state, link.last_error.reason) == (unlinked, "")

    # 3. the same content again: a new generation, a new invoice under INV-102, linked.
    second = firm.post()
    assert not second.duplicate and second.posting_id != first.posting_id
    settled = wait_settled(firm.stub, second.name)
    link = firm.link()
    assert settled.state == linked, (link.last_error, [(a.event, a.detail) for a in link.audit])
    new_id = firm.invoice_id()
    assert new_id != old_id
    assert (link.state, link.last_error.reason) == (linked, "")
    assert [o.number for o in link.xero_objects if o.type == xero_pb2.OBJECT_TYPE_INVOICE] == [NUMBER]
    assert firm.numbers() == [(new_id, NUMBER, "AUTHORISED"), (old_id, RENAMED, "VOIDED")]
    new = next(i for i in firm.invoices() if i["InvoiceID"] == new_id)
    assert new["Reference"].endswith("#2"), new["Reference"]  # generation 2

    # 4. the same content once more: the existing posting, nothing new in Xero, still linked.
    third = firm.post()
    assert third.duplicate and third.posting_id == second.posting_id
    link = firm.link()
    assert (link.state, link.last_error.reason) == (linked, "")
    assert firm.invoice_id() == new_id
    assert firm.numbers() == [(new_id, NUMBER, "AUTHORISED"), (old_id, RENAMED, "VOIDED")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_control_a_bill_unlinked_then_posted_unchanged_fails_on_its_number(firm: Bill) -> None:
    """What the model's FAILED rule is right about: after a plain unlink the orphan keeps INV-102
    live, so the same content posted again is refused by Xero (docs/unlinking.md, "After an
    unlink")."""
    first = firm.post()
    assert wait_settled(firm.stub, first.name).state == poster_pb2.LINK_STATE_LINKED
    old_id = firm.invoice_id()
    firm.unlink()
    second = firm.post()
    assert not second.duplicate
    assert wait_settled(firm.stub, second.name).state == poster_pb2.LINK_STATE_FAILED
    link = firm.link()
    assert link.state == poster_pb2.LINK_STATE_FAILED
    assert "must be unique" in link.last_error.message + str(list(link.last_error.field_violations)), link.last_error
    assert firm.numbers() == [(old_id, NUMBER, "AUTHORISED")]
