"""A job's contacts linked together at its end (one transaction, one read, one INSERT), and the
look-ups that only read a list of objects, attacked from outside: the link write refused or the
poster dying after Xero made the contacts, another poster linking a participant meanwhile (before
the write, and between its read and its INSERT), the firm renumbering a contact in Xero between
two look-ups of one job, look-up answers whose objects are there but unreadable, a credit note
read by id answering zero or two notes, and `value_length` against the URL httpx sends.

No participant's bill may be booked to another participant's contact, no contact may be created
twice for one participant, no posting may be lost, stuck or posted twice, and a participant
already linked keeps its link."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.exc import DataError
from sqlmodel import select
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.adapters.database import Database, now_us, open_database
from xerolink_poster.adapters.repositories.contacts import SqlContactRepository
from xerolink_poster.adapters.tables import ContactLinkRow
from xerolink_poster.adapters.xero_client import XERO_ORIGIN, api_url, value_length
from xerolink_poster.service_layer.dispatch.contacts import Contacts
from xerolink_poster.service_layer.unit_of_work import run_in_transaction

from tests.fixtures.contacts import (
    Handler,
    bill_to,
    contact_numbers,
    intercept,
    invoice_contacts,
    is_contact_lookup,
    make_contacts,
    post_all,
    settle,
    wait,
)
from tests.fixtures.poster import (
    EmulatorFactory,
    PosterFactory,
    connect,
    settings,
    stub_for,
    xero_objects,
)

LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED
BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION


# -- helpers -----------------------------------------------------------------------------------
def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int) -> poster_pb2.Link:
    link: poster_pb2.Link = stub.GetLink(
        poster_pb2.GetLinkRequest(connection_id="firm-1", record=common_pb2.RecordKey(kind=kind, id=record_id))  # type: ignore[arg-type]
    ).link
    return link


def _contacts_by_id(emulator: EmulatorServer, tenant_id: str) -> dict[str, dict[str, Any]]:
    return {str(c["ContactID"]): c for c in xero_objects(emulator, tenant_id, "Contacts")}


def _links(db: Database, connection_id: str = "firm-1") -> dict[int, tuple[str, str]]:
    with db.session(False) as session:
        rows = session.exec(select(ContactLinkRow).where(ContactLinkRow.connection_id == connection_id)).all()
        return {r.participant_id: (r.contact_id, r.origin) for r in rows}


def _link_row(participant: int, contact_id: str, origin: str = "created") -> ContactLinkRow:
    return ContactLinkRow(
        connection_id="firm-1",
        participant_id=participant,
        contact_id=contact_id,
        contact_number=f"AS-{participant}",
        create_us=now_us(),
        origin=origin,
    )


def _each_bill_on_its_own_number(
    emulator: EmulatorServer, tenant: str, first_record: int, participants: list[int]
) -> None:
    by_id = _contacts_by_id(emulator, tenant)
    invoices = invoice_contacts(emulator, tenant)
    for n, p in enumerate(participants):
        contact = by_id[invoices[f"INV-{first_record + n}"]]
        assert contact.get("ContactNumber") == f"AS-{p}", (p, contact)


# -- the link write lost after Xero made the contacts -------------------------------------------
def test_a_link_write_the_database_refuses_after_xero_made_the_contacts_adopts_them_by_number_next_time(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One job: two participants the firm numbered (adopted), one whose display name another
    contact holds (created renamed after Xero's refusal), the rest new. The one INSERT of their
    links is refused once (not a retryable conflict): the next attempt must find every contact the
    job made by its number, never create one again, and book each bill on its own."""
    app = poster_factory(settings(batch_size=50))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    participants = [7_000_000 + n for n in range(12)]
    firms = make_contacts(
        emulator, org, [{"Name": f"Firm's own {p}", "ContactNumber": f"AS-{p}"} for p in participants[:2]]
    )
    clash = participants[5]
    [name_holder] = make_contacts(emulator, org, [{"Name": f"Client {clash}"}])
    refused: list[int] = []
    add_contacts = SqlContactRepository.add_contacts

    def refuse_once(self: SqlContactRepository, rows: Sequence[ContactLinkRow]) -> dict[tuple[str, int], str]:
        if not refused:
            refused.append(len(rows))
            raise DataError("INSERT INTO contact_link", {}, Exception("the disk refused the write"))
        return add_contacts(self, rows)

    monkeypatch.setattr(SqlContactRepository, "add_contacts", refuse_once)

    states = settle(stub, [bill_to(90_000 + n, p) for n, p in enumerate(participants)])

    assert refused == [len(participants)]
    assert states == [LINKED] * len(participants)
    assert contact_numbers(emulator, tenant) == Counter(f"AS-{p}" for p in participants), "a contact was created twice"
    _each_bill_on_its_own_number(emulator, tenant, 90_000, participants)
    invoices = invoice_contacts(emulator, tenant)
    assert [invoices[f"INV-{90_000 + n}"] for n in range(2)] == firms
    assert name_holder not in invoices.values()
    by_id = _contacts_by_id(emulator, tenant)
    assert by_id[invoices[f"INV-{90_000 + 5}"]]["Name"] == f"Client {clash} (AS-{clash})"
    links = _links(app.db)
    assert {p: links[p][0] for p in participants} == {
        p: invoices[f"INV-{90_000 + n}"] for n, p in enumerate(participants)
    }


class _Died(BaseException):
    """The poster's process ending where it stands: nothing after it runs, not even the job's
    own failure handling (which catches Exception)."""


def test_a_poster_dying_between_xeros_contacts_and_their_links_leaves_the_next_poster_to_adopt_them(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Xero created the job's 20 contacts; the poster died before its link transaction. Another
    poster on the same registry takes the claims over when they expire: each contact is adopted
    by its number, none created again, every bill on its own participant's contact."""
    first = poster_factory(settings(batch_size=50, claim_ttl=2.0), name="poster-dies")
    stub = stub_for(first)
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    participants = [8_000_000 + n for n in range(20)]
    died = threading.Event()
    add_contacts = SqlContactRepository.add_contacts

    def die_once(self: SqlContactRepository, rows: Sequence[ContactLinkRow]) -> dict[tuple[str, int], str]:
        if not died.is_set():
            died.set()
            raise _Died()
        return add_contacts(self, rows)

    monkeypatch.setattr(SqlContactRepository, "add_contacts", die_once)

    names = post_all(stub, [bill_to(91_000 + n, p) for n, p in enumerate(participants)])
    assert died.wait(30)
    assert contact_numbers(emulator, tenant) == Counter(f"AS-{p}" for p in participants)
    first.stop(0)
    second = poster_factory(settings(batch_size=50, claim_ttl=2.0), name="poster-takes-over")
    stub2 = stub_for(second)

    assert wait(stub2, names) == [LINKED] * len(participants)
    assert contact_numbers(emulator, tenant) == Counter(f"AS-{p}" for p in participants), "a contact was created twice"
    _each_bill_on_its_own_number(emulator, tenant, 91_000, participants)
    links = _links(second.db)
    assert {links[p][1] for p in participants} == {"contact_number"}


# -- another poster linking the same participant --------------------------------------------------
def test_a_participant_linked_by_another_poster_before_the_link_write_keeps_its_link_and_gets_its_bills(
    poster_factory: PosterFactory, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another poster (its lease lost to this one mid-job) created and linked participant P's
    contact while this job created one too. The registry keeps the other's link, and P's bill
    must go to the contact the registry names (later bills, and the look-up after a lost answer,
    use that one), the job's other participants still linked."""
    app = poster_factory(settings(batch_size=50))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    participants = [9_000_000 + n for n in range(6)]
    raced = participants[3]
    theirs: list[str] = []
    link = Contacts._link

    def other_poster_first(self: Contacts, made: Any) -> None:
        if made and not theirs:
            [other] = make_contacts(
                emulator, org, [{"Name": f"Other poster's {raced}", "ContactNumber": f"AS-{raced}"}]
            )
            theirs.append(other)
            run_in_transaction(self.d.db, lambda uow: uow.contacts.add_contacts([_link_row(raced, other)]))
        link(self, made)

    monkeypatch.setattr(Contacts, "_link", other_poster_first)

    states = settle(stub, [bill_to(92_000 + n, p) for n, p in enumerate(participants)])

    assert states == [LINKED] * len(participants)
    links = _links(app.db)
    assert links[raced] == (theirs[0], "created"), "the link already there was replaced"
    invoices = invoice_contacts(emulator, tenant)
    assert invoices[f"INV-{92_000 + participants.index(raced)}"] == theirs[0]
    assert {p: links[p][0] for p in participants} == {
        p: invoices[f"INV-{92_000 + n}"] for n, p in enumerate(participants)
    }


# PostgreSQL only: SQLite serialises write transactions, so no INSERT can come between the read
# and the write there.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_participant_linked_between_the_link_writes_read_and_its_insert_loses_no_other_link(
    poster_factory: PosterFactory,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    request: pytest.FixtureRequest,
) -> None:
    """PostgreSQL: the other poster's INSERT of P's link commits after this job's one read of who
    is linked and before its one INSERT (the primary key race). The job must neither fail nor
    drop the other participants' links, nor overwrite P's."""
    app = poster_factory(settings(batch_size=50, max_attempts=1))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    participants = [9_100_000 + n for n in range(6)]
    other_poster = open_database(database_url)  # another process's registry connections
    request.addfinalizer(other_poster.dispose)
    raced = participants[2]
    theirs: list[str] = []
    contacts_of = SqlContactRepository.contacts_of
    add_contacts = SqlContactRepository.add_contacts
    inside = threading.local()

    def racing_read(self: SqlContactRepository, connection_id: str, participant_ids: Sequence[int]) -> dict[int, str]:
        held = contacts_of(self, connection_id, participant_ids)
        if getattr(inside, "adding", False) and not theirs:
            [other] = make_contacts(
                emulator, org, [{"Name": f"Other poster's {raced}", "ContactNumber": f"AS-{raced}"}]
            )
            theirs.append(other)
            writer = threading.Thread(
                target=lambda: run_in_transaction(
                    other_poster, lambda uow: uow.contacts.add_contacts([_link_row(raced, other)])
                )
            )
            writer.start()
            writer.join(30)
        return held

    def adding(self: SqlContactRepository, rows: Sequence[ContactLinkRow]) -> dict[tuple[str, int], str]:
        inside.adding = True
        try:
            return add_contacts(self, rows)
        finally:
            inside.adding = False

    monkeypatch.setattr(SqlContactRepository, "contacts_of", racing_read)
    monkeypatch.setattr(SqlContactRepository, "add_contacts", adding)

    states = settle(stub, [bill_to(93_000 + n, p) for n, p in enumerate(participants)])

    assert theirs, "the race was never run"
    assert states == [LINKED] * len(participants)
    links = _links(app.db)
    assert links[raced][0] == theirs[0]
    invoices = invoice_contacts(emulator, tenant)
    assert {p: links[p][0] for p in participants} == {
        p: invoices[f"INV-{93_000 + n}"] for n, p in enumerate(participants)
    }


# -- the firm renumbering a contact in Xero between two look-ups of one job ---------------------------
def test_a_contact_renumbered_between_two_lookups_of_one_job_is_never_booked_for_two_participants(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """100 participants, one job, its look-ups three URLs' worth. The firm's contact C carries
    AS-P1 when P1's group is looked up and is adopted for P1; the bookkeeper then renumbers C to
    AS-P2 in Xero before P2's group is looked up. C is P1's contact from the first look-up on:
    P2 must be stopped ("is participant P1's contact"), never booked on C. Linking each adopted
    contact as it was found made the check see P1's link; linked only at the job's end, both
    participants take C and P2's bill lands on P1's contact."""
    app = poster_factory(settings(batch_size=150))
    stub = stub_for(app)
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    participants = [10**17 + n for n in range(100)]
    p1, p2 = participants[0], participants[-1]
    [shared] = make_contacts(emulator, org, [{"Name": "The firm's client", "ContactNumber": f"AS-{p1}"}])
    wheres: list[str] = []

    def renumber_before_p2s_group(request: Request, handle: Handler) -> Response:
        if is_contact_lookup(request):
            where = request.param("where") or ""
            wheres.append(where)
            if f'"AS-{p2}"' in where and f'"AS-{p1}"' not in where:
                organisation = emulator.state.organisation(tenant)
                with organisation.lock:
                    organisation.objects["Contacts"][shared]["ContactNumber"] = f"AS-{p2}"
        return handle(request)

    intercept(emulator, renumber_before_p2s_group)

    states = settle(stub, [bill_to(94_000 + n, p) for n, p in enumerate(participants)])

    p1_groups = [n for n, w in enumerate(wheres) if f'"AS-{p1}"' in w]
    p2_groups = [n for n, w in enumerate(wheres) if f'"AS-{p2}"' in w]
    assert p1_groups and p2_groups and p1_groups[0] < p2_groups[0], "P1 and P2 were not in two look-ups"
    assert states[0] == LINKED
    invoices = invoice_contacts(emulator, tenant)
    assert invoices[f"INV-{94_000}"] == shared
    links = _links(app.db)
    holders = sorted(p for p, (contact, _) in links.items() if contact == shared)
    assert holders == [p1], f"participants {holders} are all linked to one contact"
    assert invoices.get(f"INV-{94_000 + 99}") != shared, "P2's bill was booked on P1's contact"


# -- look-up answers whose objects are there but cannot be read -------------------------------------
@pytest.mark.parametrize("garble", ["id-null", "id-missing"])
def test_a_contact_lookup_listing_the_firms_contact_without_its_id_never_creates_a_second_one(
    poster_factory: PosterFactory, emulator: EmulatorServer, garble: str
) -> None:
    """The answer lists an object with the participant's number but its ContactID null or gone
    (mangled on the way): it says a contact carries the number, not which. Read as "none carries
    it", a second contact AS-P is made beside the firm's and the bill booked to the copy; after
    that every look-up finds two and the participant's later bills are stopped."""
    stub = stub_for(poster_factory(settings(batch_size=50)))
    _, org = connect(stub, emulator)
    tenant = org["tenant_id"]
    participants = [11_000_000 + n for n in range(5)]
    firm = participants[2]
    [firms] = make_contacts(emulator, org, [{"Name": f"Firm's own {firm}", "ContactNumber": f"AS-{firm}"}])
    mangled: list[str] = []

    def unreadable_id_once(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if not is_contact_lookup(request) or response.status != 200 or mangled:
            return response
        body = json.loads(response.body)
        for item in body.get("Contacts") or []:
            if item.get("ContactID") == firms:
                mangled.append(firms)
                if garble == "id-null":
                    item["ContactID"] = None
                else:
                    del item["ContactID"]
        return Response(200, json.dumps(body).encode(), dict(response.headers))

    intercept(emulator, unreadable_id_once)

    states = settle(stub, [bill_to(95_000 + n, p) for n, p in enumerate(participants)])

    assert mangled == [firms]
    assert contact_numbers(emulator, tenant)[f"AS-{firm}"] == 1, "a second contact was made for the firm's client"
    assert states == [LINKED] * len(participants)
    assert invoice_contacts(emulator, tenant)[f"INV-{95_000 + 2}"] == firms


@pytest.mark.parametrize("garble", ["id-null", "id-missing"])
def test_a_lookup_after_a_lost_answer_listing_the_bill_without_its_id_neither_creates_it_again_nor_links_no_id(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, garble: str
) -> None:
    """A supplier bill's answer was lost and the Idempotency-Key window passed (Xero does not keep
    a bill's number unique, so only the look-up stands between it and a second bill); the look-up
    lists the bill (its number carries our tag) but its InvoiceID null or gone. That proves the
    bill is in Xero without saying which it is: the look-up must be made again. Read as it is, a
    missing id creates the bill a second time, and a null one links the posting to Xero id "None"."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    bill = samples.sample_transactions(96_000)["supplier_invoice"]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices")
    emulator.faults.add(dropped)
    mangled: list[str] = []

    def unreadable_id_once(request: Request, handle: Handler) -> Response:
        is_lookup = request.method == "GET" and request.path.endswith("/Invoices") and request.param("where")
        if not is_lookup or mangled or not dropped.hits:
            return handle(request)
        time.sleep(0.8)  # past the Idempotency-Key window: only the look-up stands between
        response = handle(request)
        body = json.loads(response.body)
        for item in body.get("Invoices") or []:
            mangled.append(str(item.get("InvoiceID")))
            if garble == "id-null":
                item["InvoiceID"] = None
            else:
                del item["InvoiceID"]
        return Response(response.status, json.dumps(body).encode(), dict(response.headers))

    intercept(emulator, unreadable_id_once)

    assert settle(stub, [bill]) == [LINKED]

    assert dropped.hits == 1 and len(mangled) == 1
    bills = [i for i in xero_objects(emulator, org["tenant_id"], "Invoices") if i["Type"] == "ACCPAY"]
    assert len(bills) == 1, f"the bill was created {len(bills)} times"
    link = _link(stub, common_pb2.TRANSACTION_KIND_SUPPLIER_INVOICE, bill.header.id)
    assert link.xero_objects[0].xero_id == bills[0]["InvoiceID"]


# -- a credit note read by id ---------------------------------------------------------------------------
def _application(record_id: int, base: int, cents: int) -> transaction_pb2.Transaction:
    return transaction_pb2.Transaction(
        header=samples.header(record_id),
        credit_note_application=billing_pb2.CreditNoteApplication(
            credit_note_id=base + 3, bill_id=base + 1, amount=samples.money(cents)
        ),
    )


@pytest.mark.parametrize("notes", [0, 2])
def test_a_credit_note_read_by_id_answering_zero_or_two_notes_after_a_lost_allocation_allocates_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, notes: int
) -> None:
    """The allocation's answer was lost; the credit note read by id to find it answers no note,
    or the note twice. Neither says which allocations the note holds: the look-up is made again,
    and the application ends linked to the one allocation Xero made."""
    emulator = emulator_factory(idempotency_minutes=0.01)
    stub = stub_for(poster_factory(settings(http_timeout=0.5)))
    _, org = connect(stub, emulator)
    kinds = samples.sample_transactions(97_000)
    assert settle(stub, [kinds["client_bill"], kinds["credit_note"]]) == [LINKED, LINKED]
    dropped = FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Allocations")
    emulator.faults.add(dropped)
    mangled: list[str] = []

    def odd_count_once(request: Request, handle: Handler) -> Response:
        response = handle(request)
        read_by_id = request.method == "GET" and "/CreditNotes/" in request.path and "Allocations" not in request.path
        if not read_by_id or mangled or not dropped.hits or response.status != 200:
            return response
        mangled.append(request.path)
        body = json.loads(response.body)
        body["CreditNotes"] = body["CreditNotes"] * 2 if notes == 2 else []
        return Response(200, json.dumps(body).encode(), dict(response.headers))

    intercept(emulator, odd_count_once)

    assert settle(stub, [_application(97_101, 97_000, 5000)]) == [LINKED]

    assert dropped.hits == 1 and len(mangled) == 1
    [note] = xero_objects(emulator, org["tenant_id"], "CreditNotes")
    allocations = [a for a in note.get("Allocations") or [] if not a.get("IsDeleted")]
    assert len(allocations) == 1, f"allocated {len(allocations)} times"
    assert _link(stub, APPLICATION, 97_101).xero_objects[0].xero_id == allocations[0]["AllocationID"]


# -- value_length against what httpx sends -----------------------------------------------------------
TEXT = st.lists(
    st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from(["%", "+", " ", "%2", "%41", "%e9", "&", "=", "#", '"', "😀", "é", "\u00a0", "/", "?"]),
    max_size=40,
).map("".join)


@hypothesis_settings(max_examples=300, deadline=None)
@given(value=TEXT, base=st.sampled_from([XERO_ORIGIN, "http://127.0.0.1:54321", "https://proxy.example/x/y"]))
def test_value_length_is_what_the_value_takes_in_the_url_httpx_sends(value: str, base: str) -> None:
    """Non-ASCII, emoji, '%' (alone or before hex digits, which httpx leaves alone in a path but
    not in a value), '+', spaces: the value's length measured a character at a time is its length
    in the URL the client sends, so a group of numbers is never longer at Xero than counted."""
    bare = str(api_url(base, "Contacts", (("where", ""),)))
    sent = str(api_url(base, "Contacts", (("where", value),)))
    assert value_length(value) == len(sent) - len(bare)
    assert value_length(value + value) == 2 * value_length(value)
