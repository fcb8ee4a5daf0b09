"""Unlinking through UnlinkLinks and ListOrphans on a real poster, mapper and Xero emulator, on
SQLite and PostgreSQL: previews change nothing, a confirmation is required, an invoice with
linked payments is refused naming them unless the request cascades, orphans are recorded and
listed, and a repost after an unlink creates a new Xero object while the old one stays."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from xero_emulator import EmulatorServer
from xero_emulator.testing import Tenant
from xero_emulator.testing import connect as emulator_client
from xerolink.actionstep.v1 import common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.poster.v1 import unlink_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_common.grpc_errors import from_rpc_error
from xerolink_mapper import samples
from xerolink_poster.domain.records import RecordRef
from xerolink_poster.service_layer import unlinking

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled, xero_objects

BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
PAYMENT = common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT
CREDIT_NOTE = common_pb2.TRANSACTION_KIND_CREDIT_NOTE
APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION
LINKED, UNLINKED = poster_pb2.LINK_STATE_LINKED, poster_pb2.LINK_STATE_UNLINKED


def key(kind: int, record_id: int) -> common_pb2.RecordKey:
    return common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]


def key_of(tx: transaction_pb2.Transaction) -> common_pb2.RecordKey:
    kinds = {"client_bill": BILL, "client_bill_payment": PAYMENT, "credit_note": CREDIT_NOTE}
    kinds["credit_note_application"] = APPLICATION
    return key(kinds[tx.WhichOneof("kind") or ""], tx.header.id)


def post_linked(stub: poster_grpc.PosterServiceStub, *transactions: transaction_pb2.Transaction) -> None:
    for tx in transactions:
        posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=tx))
        assert wait_settled(stub, posting.posting.name).state == LINKED


def link(stub: poster_grpc.PosterServiceStub, record: common_pb2.RecordKey, audit: bool = False) -> poster_pb2.Link:
    found: poster_pb2.Link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=record, include_audit=audit)
    ).link
    return found


def unlink(stub: poster_grpc.PosterServiceStub, *records: common_pb2.RecordKey, **flags: Any) -> Any:
    request = unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=records, **flags)
    return stub.UnlinkLinks(request)


def orphans(stub: poster_grpc.PosterServiceStub, **filters: Any) -> list[unlink_pb2.OrphanedXeroObject]:
    found: list[unlink_pb2.OrphanedXeroObject] = []
    request = unlink_pb2.ListOrphansRequest(connection_id="firm-1", page_size=1, **filters)
    while True:
        page = stub.ListOrphans(request)
        found.extend(page.orphans)
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


def refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def bill_and_payment(base: int) -> tuple[transaction_pb2.Transaction, transaction_pb2.Transaction]:
    sample = samples.sample_transactions(base)
    return sample["client_bill"], sample["client_bill_payment"]


def test_a_preview_says_per_record_what_would_happen_and_changes_nothing(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    bill, payment = bill_and_payment(1000)
    post_linked(stub, bill, payment)
    before = [link(stub, key_of(t), audit=True) for t in (bill, payment)]

    preview = unlink(stub, key_of(bill), validate_only=True, cascade=True)

    assert preview.validate_only and preview.unlinked_count == 0
    [for_bill, for_payment] = preview.outcomes
    assert (for_bill.record, for_bill.action) == (key_of(bill), unlink_pb2.UNLINK_ACTION_UNLINK)
    assert [o.xero_id for o in for_bill.orphaned] == [before[0].xero_objects[0].xero_id]
    assert (for_payment.record, for_payment.action) == (key_of(payment), unlink_pb2.UNLINK_ACTION_CASCADE)
    assert for_payment.cascaded_from == key_of(bill)
    assert [o.xero_id for o in for_payment.orphaned] == [before[1].xero_objects[0].xero_id]
    without_cascade = unlink(stub, key_of(bill), validate_only=True)
    [refusal] = without_cascade.outcomes
    assert refusal.action == unlink_pb2.UNLINK_ACTION_REFUSED
    assert refusal.error.reason == "LINKED_DEPENDENTS"
    assert list(refusal.blocked_by) == [key_of(payment)]

    assert [link(stub, key_of(t), audit=True) for t in (bill, payment)] == before
    assert orphans(stub) == []


def test_unlinking_needs_an_explicit_confirmation_and_valid_records(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    bill, _ = bill_and_payment(1100)
    post_linked(stub, bill)

    err = refused(lambda: unlink(stub, key_of(bill)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = from_rpc_error(err)
    assert details.reason == "CONFIRMATION_REQUIRED"
    assert [v.field for v in details.field_violations] == ["confirm"]
    assert link(stub, key_of(bill)).state == LINKED

    err = refused(lambda: unlink(stub, confirm=True))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in from_rpc_error(err).field_violations] == ["records"]
    err = refused(lambda: unlink(stub, key_of(bill), key(BILL, 0), confirm=True))
    assert [v.field for v in from_rpc_error(err).field_violations] == ["records[1]"]
    assert link(stub, key_of(bill)).state == LINKED


def test_an_invoice_with_linked_payments_is_refused_naming_them_and_nothing_changes(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    bill, payment = bill_and_payment(1200)
    other_bill, _ = bill_and_payment(1300)
    post_linked(stub, bill, payment, other_bill)

    err = refused(lambda: unlink(stub, key_of(other_bill), key_of(bill), confirm=True))

    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = from_rpc_error(err)
    assert details.reason == "LINKED_DEPENDENTS"
    assert f"client bill payment {payment.header.id}" in details.message
    subjects = {(v.type, v.subject) for v in details.precondition_violations}
    assert ("LINKED_DEPENDENTS", f"connections/firm-1/links/client-bill/{bill.header.id}") in subjects
    assert ("BLOCKING_DEPENDENT", f"connections/firm-1/links/client-bill-payment/{payment.header.id}") in subjects
    # All or nothing: the bill that could be unlinked was not.
    assert {link(stub, key_of(t)).state for t in (bill, payment, other_bill)} == {LINKED}
    assert orphans(stub) == []

    # Selecting the payment too is as good as cascading.
    both = unlink(stub, key_of(bill), key_of(payment), confirm=True)
    assert [o.action for o in both.outcomes] == [unlink_pb2.UNLINK_ACTION_UNLINK] * 2
    assert both.unlinked_count == 2


def test_cascade_unlinks_payments_and_allocations_and_every_orphan_is_listed(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    sample = samples.sample_transactions(1400)
    bill, payment = sample["client_bill"], sample["client_bill_payment"]
    credit_note, application = sample["credit_note"], sample["credit_note_application"]
    post_linked(stub, bill, payment, credit_note, application)
    held = {
        (r.kind, r.id): link(stub, r).xero_objects[0] for r in map(key_of, (bill, payment, credit_note, application))
    }

    done = unlink(stub, key_of(bill), key_of(credit_note), cascade=True, confirm=True, reason="bill reissued")

    assert done.unlinked_count == 4
    actions = {(o.record.kind, o.record.id): (o.action, o.cascaded_from.id) for o in done.outcomes}
    assert actions == {
        (BILL, bill.header.id): (unlink_pb2.UNLINK_ACTION_UNLINK, 0),
        (CREDIT_NOTE, credit_note.header.id): (unlink_pb2.UNLINK_ACTION_UNLINK, 0),
        (PAYMENT, payment.header.id): (unlink_pb2.UNLINK_ACTION_CASCADE, bill.header.id),
        (APPLICATION, application.header.id): (unlink_pb2.UNLINK_ACTION_CASCADE, bill.header.id),
    }
    for record in map(key_of, (bill, payment, credit_note, application)):
        unlinked = link(stub, record, audit=True)
        assert unlinked.state == UNLINKED
        assert unlinked.audit[-1].event == "unlinked" and "bill reissued" in unlinked.audit[-1].detail

    listed = orphans(stub)
    assert {(o.record.kind, o.record.id): o.xero_id for o in listed} == {k: v.xero_id for k, v in held.items()}
    assert all(o.reason == "bill reissued" and o.generation == 1 and o.name for o in listed)
    assert {o.name for o in listed} == {o.name for r in done.outcomes for o in r.orphaned}
    only_payments = orphans(stub, type=xero_pb2.OBJECT_TYPE_PAYMENT)
    assert [o.xero_id for o in only_payments] == [held[(PAYMENT, payment.header.id)].xero_id]
    assert [o.xero_id for o in orphans(stub, record=key_of(bill))] == [held[(BILL, bill.header.id)].xero_id]
    # The records remain in Xero, untouched.
    invoices = {i["InvoiceID"]: i["Status"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert invoices[held[(BILL, bill.header.id)].xero_id] == "AUTHORISED"
    notes = {c["CreditNoteID"] for c in xero_objects(emulator, org["tenant_id"], "CreditNotes")}
    assert notes == {held[(CREDIT_NOTE, credit_note.header.id)].xero_id}
    payments = xero_objects(emulator, org["tenant_id"], "Payments")
    assert [p["PaymentID"] for p in payments] == [held[(PAYMENT, payment.header.id)].xero_id]

    again = unlink(stub, key_of(bill), confirm=True)
    assert [o.action for o in again.outcomes] == [unlink_pb2.UNLINK_ACTION_ALREADY_UNLINKED]
    assert again.unlinked_count == 0 and len(orphans(stub)) == 4


def test_after_an_unlink_the_record_is_editable_and_a_repost_creates_a_new_xero_object(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bill, _ = bill_and_payment(1500)
    post_linked(stub, bill)
    first = link(stub, key_of(bill)).xero_objects[0]
    bill.client_bill.bill_number += "-R"
    locked = refused(
        lambda: stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    )
    assert from_rpc_error(locked).reason == "LINK_LOCKED"

    unlink(stub, key_of(bill), confirm=True)
    post_linked(stub, bill)

    second = link(stub, key_of(bill)).xero_objects[0]
    assert second.xero_id != first.xero_id and second.number.endswith("-R")
    ledger = {i["InvoiceID"]: i for i in xero_objects(emulator, org["tenant_id"], "Invoices")}
    assert set(ledger) == {first.xero_id, second.xero_id}
    assert ledger[first.xero_id]["Status"] == "AUTHORISED"  # the orphan stays as it was
    [orphan] = orphans(stub)
    assert (orphan.xero_id, orphan.generation, orphan.number) == (first.xero_id, 1, first.number)


def _repost_refused(stub: poster_grpc.PosterServiceStub, bill: transaction_pb2.Transaction) -> poster_pb2.Link:
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    assert wait_settled(stub, posting.posting.name).state == poster_pb2.LINK_STATE_FAILED
    return link(stub, key_of(bill))


def test_a_repost_keeps_its_number_unless_the_records_own_voided_orphan_holds_it(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """docs/unlinking.md: a sales invoice posted again takes another number only when Xero holds
    its number on this record's own orphaned invoice, voided. A live orphan (posting again would
    bill the client twice) or an invoice someone entered by hand under the number stays a refusal."""
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bill, _ = bill_and_payment(1700)
    post_linked(stub, bill)
    first = link(stub, key_of(bill)).xero_objects[0]
    unlink(stub, key_of(bill), confirm=True)

    live = _repost_refused(stub, bill)
    assert "Invoice # must be unique." in [v.description for v in live.last_error.field_violations]

    # The orphan renamed and voided in Xero by hand; someone enters another invoice under the number.
    xero = Tenant(emulator, org, emulator_client(emulator, org))
    for change in ({"InvoiceNumber": f"{first.number}-old"}, {"Status": "VOIDED"}):
        done = xero.post(f"/Invoices/{first.xero_id}", {"Invoices": [change]})
        assert done.status_code == 200, done.text
    line = {"Description": "Entered in Xero", "Quantity": 1, "UnitAmount": 10, "AccountCode": "200"}
    entered = xero.put(
        "Invoices",
        {"Type": "ACCREC", "Contact": {"Name": "Walk-in"}, "LineItems": [line]} | {"InvoiceNumber": first.number},
    )
    assert entered.status_code == 200, entered.text
    taken = _repost_refused(stub, bill)
    assert "Invoice # must be unique." in [v.description for v in taken.last_error.field_violations]
    numbers = sorted(i["InvoiceNumber"] for i in xero_objects(emulator, org["tenant_id"], "Invoices"))
    assert numbers == sorted([first.number, f"{first.number}-old"])


def test_payments_of_an_unlinked_invoice_wait_and_are_recreated_when_it_is_linked_again(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    _, org = connect(stub, emulator)
    bill, payment = bill_and_payment(1600)
    post_linked(stub, bill, payment)
    old_payment = link(stub, key_of(payment)).xero_objects[0].xero_id
    unlink(stub, key_of(bill), cascade=True, confirm=True)

    reposted = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=payment))
    assert reposted.posting.state == poster_pb2.LINK_STATE_WAITING
    assert list(link(stub, key_of(payment)).waiting_on) == [key_of(bill)]
    time.sleep(0.3)
    assert [p["PaymentID"] for p in xero_objects(emulator, org["tenant_id"], "Payments")] == [old_payment]

    bill.client_bill.bill_number += "-R"
    post_linked(stub, bill)
    assert wait_settled(stub, reposted.posting.name).state == LINKED
    new_invoice = link(stub, key_of(bill)).xero_objects[0].xero_id
    new_payment = link(stub, key_of(payment)).xero_objects[0].xero_id
    payments = {p["PaymentID"]: p for p in xero_objects(emulator, org["tenant_id"], "Payments")}
    assert set(payments) == {old_payment, new_payment}
    assert payments[new_payment]["Invoice"]["InvoiceID"] == new_invoice


def test_a_pending_record_cannot_be_unlinked_and_says_so(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(run_dispatcher=False))
    connect(stub, emulator)
    bill, _ = bill_and_payment(1700)
    pending = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=bill))
    assert pending.posting.state == poster_pb2.LINK_STATE_PENDING

    [preview] = unlink(stub, key_of(bill), validate_only=True).outcomes
    assert preview.action == unlink_pb2.UNLINK_ACTION_REFUSED
    assert preview.error.reason == "POSTING_IN_PROGRESS" and "being posted" in preview.error.message
    err = refused(lambda: unlink(stub, key_of(bill), key(BILL, 999_999), confirm=True))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = from_rpc_error(err)
    assert details.reason == "UNLINK_REFUSED"
    assert {v.type for v in details.precondition_violations} == {"POSTING_IN_PROGRESS", "LINK_NOT_FOUND"}
    assert link(stub, key_of(bill)).state == poster_pb2.LINK_STATE_PENDING

    missing = refused(lambda: unlink(stub, key(BILL, 999_999), confirm=True))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert from_rpc_error(missing).reason == "LINK_NOT_FOUND"


def test_list_links_selects_by_kind_matter_participant_time_and_xero_id_with_stable_pages(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    bills = []
    for n in range(4):
        bill, _ = bill_and_payment(2000 + 100 * n)
        bill.header.action_id = 9000 + n % 2
        bill.header.participant.participant_id = 600 + n
        bills.append(bill)
    payment = samples.sample_transactions(2000)["client_bill_payment"]
    post_linked(stub, *bills, payment)

    def ids(**filters: Any) -> list[int]:
        request = poster_pb2.ListLinksRequest(connection_id="firm-1", page_size=1, **filters)
        found = []
        while True:
            page = stub.ListLinks(request)
            found += [x.record.id for x in page.links]
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token

    every_bill = [b.header.id for b in bills]
    assert ids(kinds=[BILL]) == every_bill
    assert ids(kinds=[PAYMENT]) == [payment.header.id]
    assert ids(kinds=[BILL], action_id=9001) == every_bill[1::2]
    assert ids(participant_id=602) == [every_bill[2]]
    target = link(stub, key_of(bills[3])).xero_objects[0].xero_id
    assert ids(xero_id=target) == [every_bill[3]]
    split = link(stub, key_of(bills[2])).update_time
    assert ids(kinds=[BILL], update_time_start=split) == every_bill[2:]
    assert ids(kinds=[BILL], update_time_end=split) == every_bill[:2]

    first = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", kinds=[BILL], page_size=1))
    for bad in (
        poster_pb2.ListLinksRequest(connection_id="firm-1", kinds=[PAYMENT], page_token=first.next_page_token),
        poster_pb2.ListLinksRequest(connection_id="firm-1", page_token="bm90IGEgdG9rZW4="),
        poster_pb2.ListLinksRequest(connection_id="firm-1", kinds=[99]),  # type: ignore[list-item]
        poster_pb2.ListLinksRequest(connection_id="firm-1", xero_id="%"),
        poster_pb2.ListLinksRequest(connection_id="firm-1", action_id=-1),
        poster_pb2.ListLinksRequest(connection_id="firm-1", update_time_start=split, update_time_end=split),
    ):
        err = refused(lambda bad=bad: stub.ListLinks(bad))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert from_rpc_error(err).field_violations, bad


def test_the_single_record_step_records_orphans_and_returns_the_unlinked_link(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    connect(stub, emulator)
    bill, _ = bill_and_payment(2600)
    post_linked(stub, bill)
    held = link(stub, key_of(bill)).xero_objects[0].xero_id

    row = unlinking.unlink(app.db, "firm-1", RecordRef(BILL, bill.header.id), "operator:saga")

    assert (row.state, row.generation) == ("unlinked", 1)
    [orphan] = orphans(stub)
    assert (orphan.xero_id, orphan.actor) == (held, "operator:saga")
    first = stub.ListOrphans(unlink_pb2.ListOrphansRequest(connection_id="firm-1", page_size=1))
    assert first.next_page_token == ""
    for bad in (
        unlink_pb2.ListOrphansRequest(connection_id="firm-1", page_token="bm90IGEgdG9rZW4="),
        unlink_pb2.ListOrphansRequest(connection_id="firm-1", page_size=-1),
        unlink_pb2.ListOrphansRequest(connection_id="firm-1", type=99),  # type: ignore[arg-type]
        unlink_pb2.ListOrphansRequest(connection_id="firm-1", record=key(BILL, 0)),
    ):
        err = refused(lambda bad=bad: stub.ListOrphans(bad))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
    # A token of another listing is refused, not read as a position in this one.
    post_linked(stub, bill_and_payment(2700)[0])
    token = stub.ListLinks(poster_pb2.ListLinksRequest(connection_id="firm-1", page_size=1, kinds=[BILL]))
    assert token.next_page_token
    mismatch = refused(
        lambda: stub.ListOrphans(
            unlink_pb2.ListOrphansRequest(connection_id="firm-1", page_token=token.next_page_token)
        )
    )
    assert from_rpc_error(mismatch).reason == "PAGE_TOKEN_FILTER_MISMATCH"


def test_concurrent_unlinks_of_the_same_records_unlink_them_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    bill, payment = bill_and_payment(2800)
    post_linked(stub, bill, payment)

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda _: unlink(stub, key_of(bill), cascade=True, confirm=True, reason="race"), range(6))
        )

    assert sum(a.unlinked_count for a in answers) == 2
    assert len(orphans(stub)) == 2
    for record in (key_of(bill), key_of(payment)):
        assert [a.event for a in link(stub, record, audit=True).audit].count("unlinked") == 1


def test_list_links_selects_by_the_seeds_groups_and_by_state(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    sample = samples.sample_transactions(2600)
    post_linked(
        stub,
        *(
            sample[k]
            for k in (
                "client_bill",
                "client_bill_payment",
                "credit_note",
                "credit_note_application",
                "supplier_invoice",
                "trust_receipt",
            )
        ),
    )
    # A payment of a bill never posted: a payment, waiting.
    waiting = samples.sample_transactions(2700)["client_bill_payment"]
    answer = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=waiting))
    assert answer.posting.state == poster_pb2.LINK_STATE_WAITING

    def records(group: int, state: int = poster_pb2.LINK_STATE_UNSPECIFIED) -> set[tuple[str, int]]:
        page = stub.ListLinks(
            poster_pb2.ListLinksRequest(connection_id="firm-1", group=group, state=state, page_size=100)  # type: ignore[arg-type]
        )
        assert not page.next_page_token
        assert all(x.group == group for x in page.links)
        return {
            (common_pb2.TransactionKind.Name(x.record.kind).removeprefix("TRANSACTION_KIND_"), x.record.id)
            for x in page.links
        }

    assert records(poster_pb2.LINK_GROUP_SALES_INVOICES) == {
        ("CLIENT_BILL", 2601),
        ("SUPPLIER_INVOICE", sample["supplier_invoice"].header.id),
    }
    assert records(poster_pb2.LINK_GROUP_PAYMENTS) == {
        ("CLIENT_BILL_PAYMENT", sample["client_bill_payment"].header.id),
        ("CLIENT_BILL_PAYMENT", waiting.header.id),
    }
    assert records(poster_pb2.LINK_GROUP_PAYMENTS, poster_pb2.LINK_STATE_WAITING) == {
        ("CLIENT_BILL_PAYMENT", waiting.header.id)
    }
    assert records(poster_pb2.LINK_GROUP_PAYMENTS, poster_pb2.LINK_STATE_LINKED) == {
        ("CLIENT_BILL_PAYMENT", sample["client_bill_payment"].header.id)
    }
    assert records(poster_pb2.LINK_GROUP_CREDIT_NOTES) == {
        ("CREDIT_NOTE", sample["credit_note"].header.id),
        ("CREDIT_NOTE_APPLICATION", sample["credit_note_application"].header.id),
    }
    assert records(poster_pb2.LINK_GROUP_BANK_TRANSACTIONS) == {("TRUST_RECEIPT", sample["trust_receipt"].header.id)}


def test_records_are_selected_by_link_name_in_either_kind_form_and_only_of_the_requests_connection(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory())
    connect(stub, emulator)
    connect(stub, emulator, "firm-2")
    bill, _ = bill_and_payment(2900)
    other_bill, _ = bill_and_payment(3000)
    post_linked(stub, bill, other_bill)
    # The same bill on another connection: its link name differs only in the connection.
    posting = stub.PostTransaction(poster_pb2.PostTransactionRequest(connection_id="firm-2", transaction=bill))
    assert wait_settled(stub, posting.posting.name).state == LINKED
    by_kind_name = f"connections/firm-1/links/client-bill/{bill.header.id}"
    by_number = f"connections/firm-1/links/{BILL}/{other_bill.header.id}"
    of_firm_2 = f"connections/firm-2/links/client-bill/{bill.header.id}"

    err = refused(lambda: unlink(stub, names=[by_kind_name, of_firm_2, "links/client-bill/2900"], confirm=True))

    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = from_rpc_error(err)
    assert details.reason == "INVALID_UNLINK_REQUEST"
    assert [v.field for v in details.field_violations] == ["names[1]", "names[2]"]
    assert "another connection" in details.field_violations[0].description
    assert [link(stub, key_of(t)).state for t in (bill, other_bill)] == [LINKED, LINKED]

    # Names select as records do, after them; a record both named and listed is selected once.
    preview = unlink(stub, key_of(bill), names=[by_kind_name, by_number], validate_only=True)

    assert [(o.record, o.action, o.link_name) for o in preview.outcomes] == [
        (key_of(bill), unlink_pb2.UNLINK_ACTION_UNLINK, by_kind_name),
        (
            key_of(other_bill),
            unlink_pb2.UNLINK_ACTION_UNLINK,
            f"connections/firm-1/links/client-bill/{other_bill.header.id}",
        ),
    ]

    done = unlink(stub, names=[by_kind_name, by_number], confirm=True, reason="reissued")

    assert done.unlinked_count == 2
    assert [link(stub, key_of(t)).state for t in (bill, other_bill)] == [UNLINKED, UNLINKED]
    assert {o.record.id for o in orphans(stub)} == {bill.header.id, other_bill.header.id}
    on_firm_2 = stub.GetLink(poster_pb2.GetLinkRequest(name=of_firm_2)).link
    assert on_firm_2.state == LINKED
