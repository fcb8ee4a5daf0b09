"""A client credit note posted again under its own number, on SQLite and PostgreSQL.

Xero keeps an ACCRECCREDIT's CreditNoteNumber unique ("ACCRECCREDIT - Unique alpha numeric code
identifying credit note", CreditNote.CreditNoteNumber in Xero's OpenAPI description; Xero answers
"Credit Note # must be unique.", XeroAPI/Xero-Net#257), and a voided credit note keeps it, as a
voided invoice does. Actionstep's help has the user revert a corrected credit note to draft, edit
it and post it again under its number. So an EDIT correction renames the old credit note before it
voids it, as it does a client bill's invoice, and a credit note whose own earlier generation was
voided in Xero under its number (no correction renamed it) is posted under a `-repost-` number
rather than refused for good."""

from __future__ import annotations

from typing import Any

import pytest
from xero_emulator import EmulatorServer
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.poster.v1 import correction_pb2, unlink_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2

from tests.fixtures.poster import PosterFactory, stub_for, wait_settled, xero_objects
from tests.integration.test_poster_corrections import CREDIT_NOTE, DELETE, EDIT, Firm, key

RENAME = correction_pb2.CORRECTION_ACTION_RENAME_DOCUMENT
COMPLETED = correction_pb2.CORRECTION_STATE_COMPLETED
LINKED = poster_pb2.LINK_STATE_LINKED
NOTE = xero_pb2.OBJECT_TYPE_CREDIT_NOTE


def _notes(firm: Firm) -> list[tuple[str, str, str]]:
    """Xero's client credit notes as (CreditNoteID, CreditNoteNumber, Status), sorted by number."""
    held: list[dict[str, Any]] = xero_objects(firm.emulator, firm.org["tenant_id"], "CreditNotes")
    found = [n for n in held if n["Type"] == "ACCRECCREDIT"]
    return sorted(((n["CreditNoteID"], n["CreditNoteNumber"], n["Status"]) for n in found), key=lambda t: t[1])


def _post_edited_note(firm: Firm) -> poster_pb2.Link:
    """The Actionstep user's steps: the credit note, edited, posted again under its own number."""
    edited = transaction_pb2.Transaction()
    edited.CopyFrom(firm.sample["credit_note"])
    edited.credit_note.lines[0].description = "Fee reduction (corrected)"
    firm.sample["credit_note"] = edited
    posting = firm.stub.PostTransaction(
        poster_pb2.PostTransactionRequest(connection_id="firm-1", transaction=edited)
    ).posting
    wait_settled(firm.stub, posting.name)
    return firm.link(CREDIT_NOTE, firm.credit_note)


def _said(link: poster_pb2.Link) -> str:
    return f"{link.last_error.reason}: " + "; ".join(v.description for v in link.last_error.field_violations)


def _number(firm: Firm) -> str:
    return firm.sample["credit_note"].credit_note.credit_note_number


@pytest.fixture
def firm(poster_factory: PosterFactory, emulator: EmulatorServer) -> Firm:
    return Firm(stub_for(poster_factory()), emulator)


def test_an_edited_credit_note_is_posted_again_under_its_own_number(firm: Firm) -> None:
    firm.post("client_bill", "credit_note", "credit_note_application")
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    number = _number(firm)
    renamed = f"{number}-void-{firm.credit_note}-1"

    plan = firm.plan(CREDIT_NOTE, firm.credit_note, EDIT)
    assert [s.action for s in plan.steps].count(RENAME) == 1
    assert any(renamed in n for n in plan.notes), plan.notes
    done = firm.apply(CREDIT_NOTE, firm.credit_note, EDIT)
    assert done.state == COMPLETED, done
    rename = next(s for s in done.steps if s.action == RENAME)
    assert rename.xero_id == old_id and renamed in rename.detail, rename
    assert _notes(firm) == [(old_id, renamed, "VOIDED")]

    link = _post_edited_note(firm)
    assert link.state == LINKED, _said(link)
    new_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    assert _notes(firm) == [(new_id, number, "AUTHORISED"), (old_id, renamed, "VOIDED")]
    assert [o.number for o in link.xero_objects if o.type == NOTE] == [number]


def test_a_deleted_credit_note_keeps_its_number_on_the_voided_note(firm: Firm) -> None:
    """DELETE: the client's credit is cancelled, not reissued, so the voided note keeps the number
    the client holds (the audit trail), as a deleted client bill's invoice does."""
    firm.post("client_bill", "credit_note")
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)

    done = firm.apply(CREDIT_NOTE, firm.credit_note, DELETE)

    assert done.state == COMPLETED, done
    assert RENAME not in [s.action for s in done.steps]
    assert _notes(firm) == [(old_id, _number(firm), "VOIDED")]


def test_a_credit_note_voided_by_hand_after_an_unlink_is_posted_again_under_a_repost_number(firm: Firm) -> None:
    """Unlinked, then voided in Xero by hand under its own number: no correction renamed it and
    Xero edits no voided credit note, so the number stays taken. The credit posted again must reach
    Xero under another number named by the record and generation, not fail for good."""
    firm.post("client_bill", "credit_note")
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    number = _number(firm)
    unlinked = firm.stub.UnlinkLinks(
        unlink_pb2.UnlinkLinksRequest(
            connection_id="firm-1", records=[key(CREDIT_NOTE, firm.credit_note)], confirm=True, reason="re-issue"
        )
    )
    assert unlinked.unlinked_count == 1
    voided = firm.xero_call("POST", f"CreditNotes/{old_id}", {"CreditNotes": [{"Status": "VOIDED"}]})
    assert voided.status_code == 200, voided.text

    link = _post_edited_note(firm)

    assert link.state == LINKED, _said(link)
    new_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    reposted = f"{number}-repost-{firm.credit_note}-2"
    assert _notes(firm) == [(old_id, number, "VOIDED"), (new_id, reposted, "AUTHORISED")]
    assert any(reposted in a.detail for a in link.audit), [a.detail for a in link.audit]


def test_a_credit_note_unlinked_and_still_live_in_xero_is_refused_on_its_number(firm: Firm) -> None:
    """The orphan is AUTHORISED: the number belongs to a live credit note in Xero, which the user
    must void or delete first. Posting under another number would give the client the credit twice."""
    firm.post("client_bill", "credit_note")
    old_id = firm.xero_id(CREDIT_NOTE, firm.credit_note, NOTE)
    firm.stub.UnlinkLinks(
        unlink_pb2.UnlinkLinksRequest(
            connection_id="firm-1", records=[key(CREDIT_NOTE, firm.credit_note)], confirm=True, reason="re-issue"
        )
    )

    link = _post_edited_note(firm)

    assert link.state == poster_pb2.LINK_STATE_FAILED
    assert "must be unique" in _said(link), _said(link)
    assert _notes(firm) == [(old_id, _number(firm), "AUTHORISED")]
