"""A job's new participants are looked up in Xero together: one GET Contacts per URL's worth of
ContactNumbers (ORed in `where`), never one per participant, and never past the length of URL
Xero serves. Identity stays the participant's number: each participant gets the one contact
that carries it, or a new one; a number two contacts carry stops only its own participant."""

from __future__ import annotations

from xero_emulator.faults import FaultRule
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2

from tests.fixtures.contacts import (
    XERO_URL_MAX,
    bill_to,
    contact_lookups,
    make_contacts,
    settle,
    url_at_xero,
)
from tests.fixtures.poster import PosterFactory, connect, settings, stub_for, xero_objects

LINKED = poster_pb2.LINK_STATE_LINKED
FAILED = poster_pb2.LINK_STATE_FAILED
# Participant ids of 16 digits: numbers this long fill a URL in fewer than 50.
FIRST_PARTICIPANT = 4_000_000_000_000_000


def test_a_jobs_participants_are_looked_up_together_in_urls_xero_serves(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    """Defect: each new participant cost a GET Contacts of its own, one of the organisation's 60
    calls a minute: 50 bills to 50 new clients took 52 calls where 3 carry them."""
    stub = stub_for(poster_factory(settings(batch_size=50)))
    _, org = connect(stub, emulator)
    participants = [FIRST_PARTICIPANT + n for n in range(50)]
    # Three clients the firm entered in Xero before connecting and numbered to be adopted, and
    # one holding another participant's display name without a number: never taken by name.
    adopted = make_contacts(
        emulator, org, [{"Name": f"Firm's own {p}", "ContactNumber": f"AS-{p}"} for p in participants[:3]]
    )
    [same_name] = make_contacts(emulator, org, [{"Name": f"Client {participants[10]}"}])
    emulator.state.requests.clear()

    states = settle(stub, [bill_to(7000 + n, p) for n, p in enumerate(participants)])

    assert states == [LINKED] * 50
    lookups = contact_lookups(emulator, org["tenant_id"])
    assert 2 <= len(lookups) <= 3, [url_at_xero(r) for r in lookups]  # 50 before
    assert all(r.status == 200 for r in lookups)
    assert max(len(url_at_xero(r)) for r in lookups) <= XERO_URL_MAX
    contacts = xero_objects(emulator, org["tenant_id"], "Contacts")
    numbers = [str(c["ContactNumber"]) for c in contacts if c.get("ContactNumber")]
    assert sorted(numbers) == sorted(f"AS-{p}" for p in participants)  # each participant's, once
    by_number = {c["ContactNumber"]: c["ContactID"] for c in contacts if c.get("ContactNumber")}
    assert [by_number[f"AS-{p}"] for p in participants[:3]] == adopted
    invoices = {
        i["InvoiceNumber"]: i["Contact"]["ContactID"] for i in xero_objects(emulator, org["tenant_id"], "Invoices")
    }
    assert {n: invoices[f"INV-{7000 + n}"] for n in range(50)} == {
        n: by_number[f"AS-{p}"] for n, p in enumerate(participants)
    }
    assert same_name not in invoices.values()


def test_a_number_two_contacts_carry_stops_only_its_own_participant(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(settings(batch_size=50)))
    _, org = connect(stub, emulator)
    first, doubled, last = FIRST_PARTICIPANT, FIRST_PARTICIPANT + 1, FIRST_PARTICIPANT + 2
    make_contacts(emulator, org, [{"Name": "One", "ContactNumber": f"AS-{doubled}"}])
    make_contacts(emulator, org, [{"Name": "Two", "ContactNumber": f"AS-{doubled}"}])

    states = settle(stub, [bill_to(7101, first), bill_to(7102, doubled), bill_to(7103, last)])

    assert states == [LINKED, FAILED, LINKED]
    record = common_pb2.RecordKey(kind=common_pb2.TRANSACTION_KIND_CLIENT_BILL, id=7102)
    link = stub.GetLink(poster_pb2.GetLinkRequest(connection_id="firm-1", record=record)).link
    assert any(
        f"2 Xero contacts carry ContactNumber AS-{doubled}" in v.description for v in link.last_error.field_violations
    )
    numbers = sorted(str(c.get("ContactNumber")) for c in xero_objects(emulator, org["tenant_id"], "Contacts"))
    assert numbers == sorted([f"AS-{first}", f"AS-{doubled}", f"AS-{doubled}", f"AS-{last}"])


def test_a_failed_lookup_retries_its_participants_and_creates_each_contact_once(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    stub = stub_for(poster_factory(settings(batch_size=50)))
    _, org = connect(stub, emulator)
    failing = FaultRule("error", count=1, status=503, methods=("GET",), path_contains="Contacts")
    emulator.faults.add(failing)
    participants = [FIRST_PARTICIPANT + n for n in range(30)]

    states = settle(stub, [bill_to(7200 + n, p) for n, p in enumerate(participants)])

    assert failing.hits == 1
    assert states == [LINKED] * 30
    numbers = sorted(str(c.get("ContactNumber")) for c in xero_objects(emulator, org["tenant_id"], "Contacts"))
    assert numbers == sorted(f"AS-{p}" for p in participants)
