"""Attacks on five recent changes, as real Xero, a crash, a lost answer and a careless caller
treat them:

- a client credit note's number kept unique, voided ones included: the EDIT correction renames it
  (`<number>-void-<id>-<generation>`) before voiding it, and a repost past its own voided orphan
  goes out as `<number>-repost-<id>-<generation>`; supplier credits are never renamed;
- a 403 from Xero demoting the connection to NEEDS_RECONNECT (unless its tokens changed since the
  call), its work waiting uncounted;
- connecting a connection to another organisation ending its entries whose last call had no
  answer (OUTCOME_UNKNOWN_IN_PREVIOUS_ORGANISATION) instead of moving them;
- revision 0011's one connected connection per organisation, and what an operator is told to do
  with a connection it demoted.

Whatever fails, accepted work must reach Xero once, in its connection's organisation, and never be
given up silently. Real posters on loopback over gRPC, the emulator over HTTP, registries on SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from xero_emulator import EmulatorServer
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response, problem
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import connection_pb2, correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_mapper import samples

from tests.attack.test_connection_tokens_attacks import _connection, _state, _tagged
from tests.fixtures.contacts import Handler, intercept, post_all
from tests.fixtures.lookups import live_objects
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    stub_for,
    wait_for,
    wait_settled,
    xero_objects,
)
from tests.integration.connection_helpers import PosterMaker, connect_request, new_code, posters, write_apps
from tests.integration.connection_helpers import stub as lifecycle_stub
from tests.integration.test_poster_corrections import CREDIT_NOTE, EDIT, Firm, key

LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED
CONNECTED = connection_pb2.CONNECTION_STATE_CONNECTED
NEEDS_RECONNECT = connection_pb2.CONNECTION_STATE_NEEDS_RECONNECT
COMPLETED = correction_pb2.CORRECTION_STATE_COMPLETED
RENAME = correction_pb2.CORRECTION_ACTION_RENAME_DOCUMENT
NOTE = xero_pb2.OBJECT_TYPE_CREDIT_NOTE
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# -- helpers -----------------------------------------------------------------------------------
@pytest.fixture
def sqlite_posters(tmp_path: Path, mapper_target: str) -> Iterator[PosterMaker]:
    with posters(f"sqlite:///{tmp_path / 'registry.db'}", mapper_target) as make:
        yield make


class ExtendedFirm(Firm):
    """Firm's records under the extended profile, which posts credit note refunds."""

    def __init__(self, stub: poster_grpc.PosterServiceStub, emulator: EmulatorServer, base: int = 5000) -> None:
        self.stub = stub
        self.emulator = emulator
        _, self.org = connect(stub, emulator, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED))
        self.sample = samples.sample_transactions(base)
        self.bill = self.sample["client_bill"].header.id
        self.payment = self.sample["client_bill_payment"].header.id
        self.credit_note = self.sample["credit_note"].header.id
        self.application = self.sample["credit_note_application"].header.id


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


def _notes(firm: Firm, kind: str = "ACCRECCREDIT") -> list[tuple[str, str, str]]:
    """Xero's credit notes of the type as (CreditNoteID, CreditNoteNumber, Status), by number."""
    held: list[dict[str, Any]] = xero_objects(firm.emulator, firm.org["tenant_id"], "CreditNotes")
    found = [n for n in held if n["Type"] == kind]
    return sorted(((n["CreditNoteID"], n["CreditNoteNumber"], n["Status"]) for n in found), key=lambda t: t[1])


def _tx(record_id: int, name: str, body: Any) -> transaction_pb2.Transaction:
    tx = transaction_pb2.Transaction(header=samples.header(record_id))
    getattr(tx, name).CopyFrom(body)
    return tx


def _post_edited(firm: Firm, name: str, change: Any) -> poster_pb2.Link:
    """The Actionstep user's steps after an EDIT correction: edited, posted again."""
    edited = transaction_pb2.Transaction()
    edited.CopyFrom(firm.sample[name])
    change(edited)
    firm.sample[name] = edited
    posting = firm.stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=edited)
    ).posting
    wait_settled(firm.stub, posting.name)
    found: poster_pb2.Link = firm.stub.GetPosting(poster_pb2.GetPostingRequest(name=posting.name)).posting.link
    return found


def _reword(tx: transaction_pb2.Transaction) -> None:
    tx.credit_note.lines[0].description = "Fee reduction (corrected)"


def _post(firm: Firm, *names: str) -> None:
    """Posts the named transactions and waits for each to be linked, saying why one was not."""
    for name in names:
        answer = firm.stub.PostTransaction(
            poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=firm.sample[name])
        )
        assert answer.posting.name, f"{name}: {answer.decision}"
        assert wait_settled(firm.stub, answer.posting.name).state == LINKED, name


def _said(link: poster_pb2.Link) -> str:
    said = "; ".join(v.description for v in link.last_error.field_violations)
    return f"{link.last_error.reason}: {link.last_error.message} {said}"


# -- 1. client credit note numbers ----------------------------------------------------------------
@SQLITE
def test_an_edited_credit_note_applied_to_two_bills_and_partly_refunded_is_reissued_under_its_number(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """GUARD: a credit note of 110.00 applied 50.00 to one bill and 30.00 to another and refunded
    20.00 in part. EDIT: the allocations and the refund must go first (Xero edits no document with
    money applied), then the rename, the void and the unlinks; the edited credit note is then
    posted again under the number the client holds, and nothing of the old one stays live."""
    firm = ExtendedFirm(stub_for(poster_factory()), emulator)
    second_bill = samples.client_bill(5050)
    firm.sample["second_bill"] = second_bill
    firm.sample["credit_note_application"].credit_note_application.amount.CopyFrom(samples.money(5000))
    firm.sample["second_application"] = _tx(
        5051,
        "credit_note_application",
        billing_pb2.CreditNoteApplication(credit_note_id=firm.credit_note, bill_id=5050, amount=samples.money(3000)),
    )
    firm.sample["refund"] = _tx(
        5052,
        "credit_note_refund",
        billing_pb2.CreditNoteRefund(credit_note_id=firm.credit_note, amount=samples.money(2000)),
    )
    _post(firm, "client_bill", "second_bill", "credit_note", "credit_note_application", "second_application", "refund")
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    number = firm.sample["credit_note"].credit_note.credit_note_number
    renamed = f"{number}-void-{firm.credit_note}-1"

    done = firm.apply(CREDIT_NOTE, firm.credit_note, EDIT)

    assert done.state == COMPLETED, done
    actions = [s.action for s in done.steps]
    assert actions.count(RENAME) == 1
    assert actions.index(RENAME) > max(
        i
        for i, a in enumerate(actions)
        if a in (correction_pb2.CORRECTION_ACTION_DELETE_ALLOCATION, correction_pb2.CORRECTION_ACTION_DELETE_PAYMENT)
    ), actions
    old = firm.xero("CreditNotes", old_id)
    assert (old["CreditNoteNumber"], old["Status"]) == (renamed, "VOIDED")
    assert not [a for a in old.get("Allocations") or [] if not a.get("IsDeleted")], old.get("Allocations")
    assert not [p for p in live_objects(xero_objects(firm.emulator, firm.org["tenant_id"], "Payments"))], (
        "the refund is still live in Xero"
    )

    link = _post_edited(firm, "credit_note", _reword)
    assert link.state == LINKED, _said(link)
    new_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    assert _notes(firm) == [(new_id, number, "AUTHORISED"), (old_id, renamed, "VOIDED")]


@SQLITE
def test_a_rename_whose_answer_was_lost_then_a_void_that_failed_finish_on_the_next_apply(firm: Firm) -> None:
    """GUARD: the rename is committed at Xero but its answer is lost; applied again, the read
    finds it renamed and sends nothing; the void then fails (503) and the poster is asked again:
    the credit note must end renamed and voided once, and the edited one go out under its number."""
    firm.post("client_bill", "credit_note")
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    number = firm.sample["credit_note"].credit_note.credit_note_number
    renamed = f"{number}-void-{firm.credit_note}-1"
    writes: list[str] = []

    def watch(request: Request, handle: Handler) -> Response:
        if request.method == "POST" and old_id.lower() in request.path.lower():
            writes.append(request.body.decode())
        return handle(request)

    intercept(firm.emulator, watch)
    firm.emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("POST",), path_contains=old_id))
    first = firm.apply(CREDIT_NOTE, firm.credit_note, EDIT)
    assert first.state != COMPLETED, first
    assert firm.xero("CreditNotes", old_id)["CreditNoteNumber"] == renamed
    firm.emulator.faults.add(FaultRule("error", count=1, status=503, methods=("POST",), path_contains=old_id))
    second = firm.apply(CREDIT_NOTE, firm.credit_note, EDIT)
    third = second if second.state == COMPLETED else firm.apply(CREDIT_NOTE, firm.credit_note, EDIT)

    assert third.state == COMPLETED, third
    assert sum(renamed in w for w in writes) == 1, writes
    assert (firm.xero("CreditNotes", old_id)["CreditNoteNumber"], firm.xero("CreditNotes", old_id)["Status"]) == (
        renamed,
        "VOIDED",
    )
    link = _post_edited(firm, "credit_note", _reword)
    assert link.state == LINKED, _said(link)


@SQLITE
def test_a_credit_note_number_of_255_characters_is_renamed_within_xeros_length(firm: Firm) -> None:
    """GUARD: the longest number Xero keeps (255): the void number is shortened to stay within
    it, names the record and generation, and the edited credit note goes out under the full number."""
    number = "CN-" + "7" * 252
    firm.sample["credit_note"].credit_note.credit_note_number = number
    firm.post("client_bill", "credit_note")
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)

    done = firm.apply(CREDIT_NOTE, firm.credit_note, EDIT)

    assert done.state == COMPLETED, done
    shown = firm.xero("CreditNotes", old_id)["CreditNoteNumber"]
    suffix = f"-void-{firm.credit_note}-1"
    assert len(shown) == 255 and shown.endswith(suffix) and number.startswith(shown[: -len(suffix)]), shown
    link = _post_edited(firm, "credit_note", _reword)
    assert link.state == LINKED, _said(link)
    assert [o.number for o in link.xero_objects if o.type == NOTE] == [number]


@SQLITE
def test_a_supplier_credit_is_voided_under_its_own_number_and_reposted_under_it(firm: Firm) -> None:
    """GUARD: ACCPAYCREDIT numbers are not unique at Xero; an EDIT must not rename the supplier's
    credit (its number is the supplier's document number), and its repost goes out under it."""
    firm.post("supplier_invoice", "supplier_credit")
    kind = common_pb2.TRANSACTION_KIND_SUPPLIER_CREDIT
    record = firm.sample["supplier_credit"].header.id
    old_id = firm.xero_id(kind, record, NOTE)

    done = firm.apply(kind, record, EDIT)

    assert done.state == COMPLETED, done
    assert RENAME not in [s.action for s in done.steps]
    assert firm.xero("CreditNotes", old_id)["Status"] == "VOIDED"
    tagged = f"SC-9 [AS-SC-{record}]"
    assert firm.xero("CreditNotes", old_id)["CreditNoteNumber"] == tagged
    firm.post("supplier_credit")
    numbers = sorted((n[1], n[2]) for n in _notes(firm, "ACCPAYCREDIT"))
    assert numbers == [(tagged, "VOIDED"), (f"{tagged} #2", "AUTHORISED")], numbers


@SQLITE
def test_another_records_voided_credit_note_holding_the_number_is_never_posted_past(firm: Firm) -> None:
    """GUARD: record X's credit note is voided in Xero by hand under CN-5003 after an unlink; record
    Y, a different Actionstep credit note given the same number, is posted twice (the second a new
    generation after an unlink). Only a record's own orphan may be posted past with a -repost-
    number: Y must stay refused on the number, never reach Xero under another one."""
    firm.post("client_bill", "credit_note")
    number = firm.sample["credit_note"].credit_note.credit_note_number
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    firm.stub.UnlinkLinks(
        unlink_pb2.UnlinkLinksRequest(
            connection_id="firm-1", records=[key(CREDIT_NOTE, firm.credit_note)], confirm=True, reason="re-issue"
        )
    )
    voided = firm.xero_call("POST", f"CreditNotes/{old_id}", {"CreditNotes": [{"Status": "VOIDED"}]})
    assert voided.status_code == 200, voided.text
    other = transaction_pb2.Transaction()
    other.CopyFrom(firm.sample["credit_note"])
    other.header.id = 5090
    firm.sample["other"] = other
    first = _post_edited(firm, "other", lambda tx: None)
    assert first.state == FAILED and "must be unique" in _said(first), _said(first)
    firm.stub.UnlinkLinks(
        unlink_pb2.UnlinkLinksRequest(connection_id="firm-1", records=[key(CREDIT_NOTE, 5090)], confirm=True)
    )

    second = _post_edited(firm, "other", _reword)

    assert second.state == FAILED and "must be unique" in _said(second), _said(second)
    assert _notes(firm) == [(old_id, number, "VOIDED")]


# -- 4. connecting another organisation while a call is in flight -----------------------------------
def test_a_call_in_flight_when_the_connection_moves_is_not_created_in_both_organisations(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> None:
    """GUARD: a client bill's PUT Invoices is on its way to organisation A (slow: Xero commits it
    after the client's timeout) when the firm connects the connection to organisation B, and its
    payment waits on it. The bill must not be created in B as well (the client billed in two
    ledgers): it ends OUTCOME_UNKNOWN_IN_PREVIOUS_ORGANISATION naming A and its tag; posted again,
    it is created once in B, and the waiting payment follows it there."""
    emulator = emulator_factory(access_token_minutes=30.0)
    org = emulator.create_organisation("Harper Legal")
    poster = lifecycle_stub(sqlite_posters(write_apps(tmp_path / "apps.json", org, emulator), http_timeout=2.0))
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    tenant_a = org["tenant_id"].lower()
    arrived = threading.Event()

    def watch(request: Request, handle: Handler) -> Response:
        if (
            request.method == "PUT"
            and request.path.rstrip("/").endswith("/Invoices")
            and (request.header("xero-tenant-id") or "").lower() == tenant_a
        ):
            arrived.set()
        return handle(request)

    intercept(emulator, watch)
    emulator.faults.add(
        FaultRule("latency", seconds=4.0, count=1, methods=("PUT",), path_contains="Invoices", tenant_id=tenant_a)
    )
    sample = samples.sample_transactions(77_000)
    bill, paid = sample["client_bill"], sample["client_bill_payment"]
    [name] = post_all(poster, [bill])
    assert arrived.wait(15), "the bill never reached organisation A"
    [payment] = post_all(poster, [paid])

    replacement = emulator.create_organisation("Harper Legal (new file)", client_id=org["client_id"])
    answer = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(
            connection_id="firm-1",
            authorization_code=replacement["authorization_code"],
            xero_tenant_id=replacement["tenant_id"],
        )
    )
    assert answer.replaced_organisation
    wait_for(lambda: _tagged(emulator, tenant_a, "Invoices", "Reference", 77_001) != [], what="A commits the bill")
    deadline = time.monotonic() + 12.0
    while time.monotonic() < deadline and _state(poster, name) not in (LINKED, FAILED):
        time.sleep(0.2)
    time.sleep(1.0)
    in_a = _tagged(emulator, tenant_a, "Invoices", "Reference", 77_001)
    in_b = _tagged(emulator, replacement["tenant_id"], "Invoices", "Reference", 77_001)
    link = poster.GetPosting(poster_pb2.GetPostingRequest(name=name)).posting.link

    assert not (in_a and in_b), (
        f"the bill is in the previous organisation {in_a} and in the new one {in_b}; the posting says "
        f"{poster_pb2.LinkState.Name(link.state)} {_said(link)}"
    )
    assert link.state == FAILED and link.last_error.reason == "OUTCOME_UNKNOWN_IN_PREVIOUS_ORGANISATION", _said(link)
    assert tenant_a in link.last_error.message.lower() and "[AS-CB-77001]" in link.last_error.message
    assert _state(poster, payment) not in (LINKED, FAILED), "the payment must wait for its bill"

    [again] = post_all(poster, [bill])
    wait_for(lambda: _state(poster, again) in (LINKED, FAILED), timeout=20, what="the bill posted again")
    wait_for(lambda: _state(poster, payment) in (LINKED, FAILED), timeout=20, what="the payment")
    assert (_state(poster, again), _state(poster, payment)) == (LINKED, LINKED)
    assert len(_tagged(emulator, replacement["tenant_id"], "Invoices", "Reference", 77_001)) == 1
    assert len(_tagged(emulator, replacement["tenant_id"], "Payments", "Reference", 77_002)) == 1
    assert _tagged(emulator, tenant_a, "Payments", "Reference", 77_002) == []


def test_reconnecting_the_same_organisation_keeps_an_unanswered_entry_and_finds_it(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> None:
    """GUARD: the same organisation consented again (a refreshed consent, not a replacement) while
    a bill's answer is lost: nothing ends; the look-up finds the bill and links it, once."""
    emulator = emulator_factory(access_token_minutes=30.0)
    org = emulator.create_organisation("Harper Legal")
    poster = lifecycle_stub(
        sqlite_posters(
            write_apps(tmp_path / "apps.json", org, emulator), http_timeout=1.0, backoff_base=4.0, backoff_cap=4.0
        )
    )
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    emulator.faults.add(
        FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices", tenant_id=org["tenant_id"])
    )
    [name] = post_all(poster, [samples.client_bill(77_101)])
    wait_for(lambda: _tagged(emulator, org["tenant_id"], "Invoices", "Reference", 77_101) != [], what="created")

    answer = poster.ConnectOrganisation(
        connection_pb2.ConnectOrganisationRequest(connection_id="firm-1", authorization_code=new_code(emulator, org))
    )

    assert not answer.replaced_organisation
    wait_for(lambda: _state(poster, name) in (LINKED, FAILED), timeout=20, what="the bill settled")
    link = poster.GetPosting(poster_pb2.GetPostingRequest(name=name)).posting.link
    assert link.state == LINKED, _said(link)
    assert len(_tagged(emulator, org["tenant_id"], "Invoices", "Reference", 77_101)) == 1


# -- 3. a 403 racing a reconnect ---------------------------------------------------------------------
def test_a_403_answered_while_the_organisation_is_connected_again_leaves_the_fresh_connection_connected(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> None:
    """GUARD: a bill's call is answered 403 (the app removed in Xero) while the administrator's
    new consent is stored: the refusal names the old tokens, so the fresh connection must stay
    CONNECTED and the bill be sent with the new tokens, once, without a counted attempt lost."""
    emulator = emulator_factory(access_token_minutes=30.0)
    org = emulator.create_organisation("Harper Legal")
    poster = lifecycle_stub(sqlite_posters(write_apps(tmp_path / "apps.json", org, emulator)))
    poster.ConnectOrganisation(connect_request("firm-1", org["authorization_code"], emulator))
    tenant = org["tenant_id"].lower()
    done: list[bool] = []

    def race(request: Request, handle: Handler) -> Response:
        if (
            not done
            and request.method == "PUT"
            and request.path.rstrip("/").endswith("/Invoices")
            and (request.header("xero-tenant-id") or "").lower() == tenant
        ):
            done.append(True)
            poster.ConnectOrganisation(
                connection_pb2.ConnectOrganisationRequest(
                    connection_id="firm-1", authorization_code=new_code(emulator, org)
                ),
                timeout=20,
            )
            return problem(403, "Forbidden", "AuthenticationUnsuccessful")
        return handle(request)

    intercept(emulator, race)
    [name] = post_all(poster, [samples.client_bill(77_201)])
    wait_for(lambda: bool(done), what="the 403 answered")
    wait_for(lambda: _state(poster, name) in (LINKED, FAILED), timeout=20, what="the bill settled")

    assert _connection(poster).status.state == CONNECTED, _connection(poster).status
    assert _state(poster, name) == LINKED
    assert len(_tagged(emulator, tenant, "Invoices", "Reference", 77_201)) == 1


# -- 5. revision 0011: what the operator is told to do with a demoted duplicate -----------------------
def test_disconnecting_the_demoted_duplicate_as_told_leaves_the_kept_connection_posting(
    emulator_factory: EmulatorFactory, sqlite_posters: PosterMaker, tmp_path: Path
) -> None:
    """DEFECT: revision 0011 keeps the older of two connected connections to one organisation and
    marks the other needs_reconnect, telling the operator to "disconnect one of them
    (DisconnectConnection)". Both were consented for the same app and organisation, so they hold
    the same Xero connection id (`/connections` lists one per app and tenant). DisconnectConnection
    of the demoted one sends DELETE /connections/{id} (`ConnectionKeeper.disconnect`) and so removes
    the kept connection's access too: every later bill of the firm is answered 403, the kept
    connection drops to NEEDS_RECONNECT and nothing posts until an administrator consents again."""
    emulator = emulator_factory(access_token_minutes=30.0)
    first = emulator.create_organisation("Harper Legal")
    second = emulator.create_organisation("Quinn Legal", client_id=first["client_id"])
    app = sqlite_posters(write_apps(tmp_path / "apps.json", first, emulator))
    poster = lifecycle_stub(app)
    for cid, org in (("firm-1", first), ("firm-2", second)):
        poster.ConnectOrganisation(
            connect_request(cid, new_code(emulator, first), emulator, xero_tenant_id=org["tenant_id"])
        )
    with app.db.write.begin() as conn:
        shared = conn.execute(
            text("SELECT xero_connection_id FROM connection WHERE connection_id = 'firm-1'")
        ).scalar_one()
        conn.execute(
            text(
                "UPDATE connection SET xero_tenant_id = :t, xero_connection_id = :x, state = 'needs_reconnect', "
                "last_error = 'shared' WHERE connection_id = 'firm-2'"
            ),
            {"t": first["tenant_id"], "x": shared},
        )

    poster.DisconnectConnection(connection_pb2.DisconnectConnectionRequest(connection_id="firm-2"))
    [name] = post_all(poster, [samples.client_bill(77_301)])
    wait_for(
        lambda: _state(poster, name) == LINKED or _connection(poster).status.state != CONNECTED,
        timeout=20,
        what="the bill linked or the kept connection demoted",
    )

    status = _connection(poster).status
    state = connection_pb2.ConnectionState.Name(status.state)
    assert _state(poster, name) == LINKED and status.state == CONNECTED, (
        f"after disconnecting the demoted duplicate the kept connection is {state}: {status.last_error}"
    )
