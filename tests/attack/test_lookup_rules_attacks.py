"""The look-ups after a lost or unreadable answer, attacked where the grouped look-up attacks
(test_grouped_lookup_attacks.py) did not go: a listed copy whose Status was mangled on the way,
the look-ups of allocations (on their credit note, with the note as it was before the call) and of
overpayment bank transactions whose ids were garbled, two connections' lost answers at once, a
poster that fails between its look-up and the write of what it found and is restarted, and a tag
Xero gives back in another unicode form.

Whatever happens: nothing is created twice, nothing is lost or linked to a deleted, unknown or
foreign object, each record is linked to its own object, and a look-up whose answer proves nothing
is made again (never read as "none found" nor adopted). Each test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import sys
import threading
import unicodedata
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from xero_emulator.faults import FaultRule
from xero_emulator.messages import Request, Response
from xero_emulator.server import EmulatorServer
from xerolink.actionstep.v1 import billing_pb2, common_pb2, transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc
from xerolink_mapper import samples
from xerolink_poster.service_layer.dispatch import results as results_module

from tests.fixtures.contacts import Handler, intercept, post_all, settle, wait
from tests.fixtures.lookups import answer_listing, bill_and_credit, credit_application, live_objects
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, settings, stub_for, xero_objects

LINKED = poster_pb2.LINK_STATE_LINKED
APPLICATION = common_pb2.TRANSACTION_KIND_CREDIT_NOTE_APPLICATION
REFUND = common_pb2.TRANSACTION_KIND_OVERPAYMENT_REFUND
CLIENT_BILL = common_pb2.TRANSACTION_KIND_CLIENT_BILL
ZERO_GUID = "00000000-0000-0000-0000-000000000000"


# -- helpers -----------------------------------------------------------------------------------
def _link(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int, connection_id: str = "firm-1") -> Any:
    record = common_pb2.RecordKey(kind=kind, id=record_id)  # type: ignore[arg-type]
    return stub.GetLink(poster_pb2.GetLinkRequest(connection_id=connection_id, record=record)).link


def _ids(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int, connection_id: str = "firm-1") -> list[str]:
    return [o.xero_id for o in _link(stub, kind, record_id, connection_id).xero_objects]


def _error(stub: poster_grpc.PosterServiceStub, kind: int, record_id: int, connection_id: str = "firm-1") -> str:
    return str(_link(stub, kind, record_id, connection_id).last_error.message)


def _is_lookup(request: Request, resource: str) -> bool:
    return (
        request.method == "GET" and request.path.rstrip("/").endswith(f"/{resource}") and bool(request.param("where"))
    )


class Writes:
    """Create calls (PUT/POST) the poster made to Xero's collections, as `<METHOD> <path tail>`,
    behind an optional change of the emulator's answers."""

    def __init__(self, emulator: EmulatorServer, change: Callable[[Request, Handler], Response] | None = None):
        self.writes: list[str] = []
        self.lock = threading.Lock()
        self.change = change
        intercept(emulator, self._handle)

    def _handle(self, request: Request, handle: Handler) -> Response:
        if request.method in ("PUT", "POST"):
            tail = re.sub(r"/[0-9a-fA-F-]{36}/", "/<id>/", request.path.split("/api.xro/2.0/", 1)[-1])
            with self.lock:
                self.writes.append(f"{request.method} {tail.rstrip('/')}")
        return self.change(request, handle) if self.change else handle(request)

    def of(self, tail: str) -> list[str]:
        with self.lock:
            return [w for w in self.writes if w.endswith(f" {tail}")]


def _setup(
    poster_factory: PosterFactory,
    emulator_factory: EmulatorFactory,
    context: mapper_pb2.MappingContext | None = None,
    **dispatcher: Any,
) -> tuple[EmulatorServer, poster_grpc.PosterServiceStub, dict[str, Any]]:
    # No idempotent replay to hide a wrong "none found": only the look-up stands between a lost
    # answer and a second object.
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=20, **dispatcher)))
    _, org = connect(stub, emulator, context=context)
    return emulator, stub, org


def _bill(record_id: int, reference: str = "") -> transaction_pb2.Transaction:
    bill = samples.client_bill(record_id)
    if reference:
        bill.header.reference = reference
    return bill


# -- a listed copy whose Status was mangled --------------------------------------------------------
STATUS_MANGLINGS = [
    "status-missing",
    "status-null",
    "status-number",
    "status-empty",
    "status-lowercase",
    "status-padded",
    "status-unknown",
]


def _mangle_status(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    if kind == "status-missing":
        return {k: v for k, v in item.items() if k != "Status"}
    if kind == "status-null":
        return {**item, "Status": None}
    if kind == "status-number":
        return {**item, "Status": 5}
    if kind == "status-empty":
        return {**item, "Status": ""}
    if kind == "status-padded":
        return {**item, "Status": " DELETED"}
    if kind == "status-unknown":  # none of the values Xero's OpenAPI enumerates for Invoice.Status
        return {**item, "Status": "REMOVED"}
    return {**item, "Status": "deleted"}


@pytest.mark.parametrize("kind", STATUS_MANGLINGS)
def test_a_deleted_copy_listed_with_its_status_mangled_is_never_adopted(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """The answer to three bills is lost. Each look-up answer lists, before each bill's own
    invoice, a DELETED copy carrying its tag (another id) whose Status was mangled on the way
    (missing, null, a number, empty, lower case, padded, a value Xero never gives). Xero lists a
    Status on every invoice: a copy carrying the tag whose Status cannot be read may be deleted.
    Adopted, the bill is linked to an object Xero does not hold live (its money never posted); the
    look-up must be made again (or the copy passed over), and each bill linked to its own live
    invoice, created once."""
    emulator, stub, org = _setup(poster_factory, emulator_factory)
    bills = [_bill(60_000 + n, f"Status {n}") for n in range(3)]
    copies: dict[str, str] = {}

    def with_deleted_copies(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if not _is_lookup(request, "Invoices") or response.status != 200:
            return response
        real = json.loads(response.body)["Invoices"]
        listed: list[dict[str, Any]] = []
        for item in real:
            copy_id = copies.setdefault(item["Reference"], str(uuid.uuid4()))
            listed.append(_mangle_status(kind, {**item, "InvoiceID": copy_id, "Status": "DELETED"}))
        return answer_listing(response, "Invoices", listed + real)

    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices"))
    writes = Writes(emulator, with_deleted_copies)

    states = settle(stub, bills)

    assert copies, "no look-up listed the deleted copies"
    assert writes.of("Invoices") == ["PUT Invoices"], f"created again: {writes.of('Invoices')}"
    live = {i["InvoiceID"]: i for i in live_objects(xero_objects(emulator, org["tenant_id"], "Invoices"))}
    assert len(live) == len(bills)
    for b, state in zip(bills, states, strict=True):
        ids = _ids(stub, CLIENT_BILL, b.header.id)
        assert not set(ids) & set(copies.values()), f"bill {b.header.id} adopted a deleted copy {ids} ({kind})"
        assert state == LINKED, _error(stub, CLIENT_BILL, b.header.id)
        assert len(ids) == 1 and ids[0] in live and f"-{b.header.id}]" in live[ids[0]]["Reference"], ids


# -- allocations: the credit note's answer after a lost answer --------------------------------------
def _note(emulator: EmulatorServer, tenant: str) -> dict[str, Any]:
    [note] = xero_objects(emulator, tenant, "CreditNotes")
    return note


def _allocations(emulator: EmulatorServer, tenant: str) -> list[dict[str, Any]]:
    return [a for a in _note(emulator, tenant).get("Allocations") or [] if not a.get("IsDeleted")]


def _is_note_read(request: Request, note_id: str) -> bool:
    return request.method == "GET" and request.path.rstrip("/").lower().endswith(f"/creditnotes/{note_id.lower()}")


def _mangle_allocations(kind: str, body: dict[str, Any], new: set[str]) -> dict[str, Any]:
    """The credit note's answer with the allocations in `new` (made by the lost call) mangled."""
    if kind == "notes-none":
        return {**body, "CreditNotes": []}
    if kind == "notes-two":
        note = body["CreditNotes"][0]
        return {**body, "CreditNotes": [note, {**note, "Allocations": []}]}

    def mangled(a: dict[str, Any]) -> dict[str, Any]:
        if a.get("AllocationID") not in new:
            return a
        if kind == "id-missing":
            return {k: v for k, v in a.items() if k != "AllocationID"}
        if kind == "invoice-missing":
            return {k: v for k, v in a.items() if k != "Invoice"}
        changed = {"id-null": ("AllocationID", None), "id-garbled": ("AllocationID", "garbled")}
        changed |= {"id-zero": ("AllocationID", ZERO_GUID), "amount-text": ("Amount", "fifty")}
        key, value = changed[kind]
        return {**a, key: value}

    notes = [
        {**note, "Allocations": [mangled(a) for a in note.get("Allocations") or []]} for note in body["CreditNotes"]
    ]
    return {**body, "CreditNotes": notes}


ALLOCATION_MANGLINGS = [
    "id-missing",
    "id-null",
    "id-garbled",
    "id-zero",
    "invoice-missing",
    "amount-text",
    "notes-two",
    "notes-none",
]


@pytest.mark.parametrize("kind", ALLOCATION_MANGLINGS)
def test_an_allocations_look_up_answered_garbled_is_made_again_never_adopted_nor_read_as_none_found(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """The answer to an application of 50.00 is lost after Xero made the allocation. The first
    read of its credit note lists that allocation garbled on the way (its AllocationID missing,
    null, not a GUID, the zero GUID; its Invoice missing; its Amount not a number), or lists two
    notes, or none. Such an answer proves nothing: adopted, the record holds an id Xero never
    issued; read as "none found", 50.00 more is applied from the note (the credit applied
    twice). It must be read again: one allocation, the record linked to its AllocationID."""
    emulator, stub, org = _setup(poster_factory, emulator_factory)
    tenant = org["tenant_id"]
    bill, credit = bill_and_credit(61_000)
    assert settle(stub, [bill, credit]) == [LINKED, LINKED]
    note_id = _note(emulator, tenant)["CreditNoteID"]
    before = {a["AllocationID"] for a in _allocations(emulator, tenant)}
    state = {"put": False, "mangled": 0}

    def garble_first_read_after_the_call(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if request.method == "PUT" and "/Allocations" in request.path:
            state["put"] = True
        if not state["put"] or state["mangled"] or not _is_note_read(request, note_id) or response.status != 200:
            return response
        new = {a["AllocationID"] for a in _allocations(emulator, tenant)} - before
        state["mangled"] += 1
        body = _mangle_allocations(kind, json.loads(response.body), new)
        return Response(200, json.dumps(body).encode(), dict(response.headers))

    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Allocations"))
    writes = Writes(emulator, garble_first_read_after_the_call)
    application = credit_application(61_100, 61_000, 5000)

    [outcome] = settle(stub, [application])

    assert state["mangled"] == 1, "no look-up of the credit note after the lost answer"
    allocations = _allocations(emulator, tenant)
    assert len(allocations) == 1, f"50.00 applied {len(allocations)} times after a garbled look-up ({kind})"
    assert outcome == LINKED, _error(stub, APPLICATION, 61_100)
    assert _ids(stub, APPLICATION, 61_100) == [allocations[0]["AllocationID"]], (
        f"linked to what Xero never issued ({kind})"
    )
    assert len(writes.of("CreditNotes/<id>/Allocations")) == 1, writes.writes


@pytest.mark.parametrize("kind", ["hint-id-garbled", "hint-id-missing"])
def test_a_garbled_read_of_the_note_before_the_call_never_has_a_hand_made_allocation_adopted(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """The firm applied 50.00 of the credit note to the bill by hand in Xero. xerolink then
    applies another 50.00: its read of the note before the call (what the note held: the look-up
    tells ours apart by it) lists the firm's allocation with its id garbled, and the call is lost
    before Xero makes anything. The look-up then sees the firm's allocation as new and adopts it:
    the application is never made (50.00 of credit never applied) and the record holds the firm's
    allocation. A read of the note that cannot name each allocation must not stand as "before"."""
    emulator, stub, org = _setup(poster_factory, emulator_factory)
    tenant = org["tenant_id"]
    bill, credit = bill_and_credit(62_000)
    assert settle(stub, [bill, credit]) == [LINKED, LINKED]
    note = _note(emulator, tenant)
    invoice_id = xero_objects(emulator, tenant, "Invoices")[0]["InvoiceID"]
    made = httpx.put(
        f"{emulator.base_url}/api.xro/2.0/CreditNotes/{note['CreditNoteID']}/Allocations",
        json={"Allocations": [{"Invoice": {"InvoiceID": invoice_id}, "Amount": 50.00, "Date": "2026-03-02"}]},
        headers={"Authorization": f"Bearer {org['access_token']}", "xero-tenant-id": tenant},
    )
    assert made.status_code == 200, made.text
    [firms] = [a["AllocationID"] for a in _allocations(emulator, tenant)]
    state = {"hint": 0, "lost": 0}

    def garble_hint_and_lose_call(request: Request, handle: Handler) -> Response:
        if request.method == "PUT" and "/Allocations" in request.path and not state["lost"]:
            state["lost"] += 1
            return Response(200, b"", {}, drop_connection=True)  # lost before reaching Xero
        response = handle(request)
        if state["lost"] or state["hint"] or not _is_note_read(request, note["CreditNoteID"]):
            return response
        state["hint"] += 1
        body = json.loads(response.body)
        for n in body["CreditNotes"]:
            for a in n.get("Allocations") or []:
                if a.get("AllocationID") == firms:
                    if kind == "hint-id-garbled":
                        a["AllocationID"] = "garbled"
                    else:
                        del a["AllocationID"]
        return Response(200, json.dumps(body).encode(), dict(response.headers))

    Writes(emulator, garble_hint_and_lose_call)

    [outcome] = settle(stub, [credit_application(62_100, 62_000, 5000)])

    assert state == {"hint": 1, "lost": 1}, state
    ids = _ids(stub, APPLICATION, 62_100)
    assert firms not in ids, f"the record adopted the firm's hand-made allocation ({kind}): 50.00 never applied"
    allocations = _allocations(emulator, tenant)
    assert len(allocations) == 2, f"{len(allocations)} allocations for the firm's and the record's"
    assert outcome == LINKED, _error(stub, APPLICATION, 62_100)
    assert ids == [a["AllocationID"] for a in allocations if a["AllocationID"] != firms]


# -- overpayment bank transactions: garbled ids ---------------------------------------------------
OVERPAYMENT_MANGLINGS = [
    "overpayment-id-garbled",
    "overpayment-id-missing",
    "overpayment-id-zero",
    "bank-id-garbled",
    "bank-id-missing",
    "listed-twice",
]


def _mangle_overpayment(kind: str, item: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "overpayment-id-garbled":
        return [{**item, "OverpaymentID": "garbled"}]
    if kind == "overpayment-id-missing":
        return [{k: v for k, v in item.items() if k != "OverpaymentID"}]
    if kind == "overpayment-id-zero":
        return [{**item, "OverpaymentID": ZERO_GUID}]
    if kind == "bank-id-garbled":
        return [{**item, "BankTransactionID": "garbled"}]
    if kind == "bank-id-missing":
        return [{k: v for k, v in item.items() if k != "BankTransactionID"}]
    return [item, dict(item)]


@pytest.mark.parametrize("kind", OVERPAYMENT_MANGLINGS)
def test_an_overpayment_looked_up_with_its_ids_garbled_is_read_again_and_refunded_once(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """An overpayment refund: a RECEIVE-OVERPAYMENT bank transaction (Xero makes an Overpayment
    of its own id with it) and a payment refunding that overpayment. The answer to the bank
    transaction is lost; the first look-up lists it with its OverpaymentID garbled, missing or
    the zero GUID, or its BankTransactionID garbled or missing, or twice. Xero names the
    overpayment on every such transaction: an answer that does not proves nothing, and the refund
    paying an id Xero never issued is refused (25.00 never refunded). Each must end with one bank
    transaction, one overpayment, one refund paying it, and the record holding both ids."""
    emulator, stub, org = _setup(
        poster_factory, emulator_factory, context=samples.demo_context(mapper_pb2.POLICY_PROFILE_EXTENDED)
    )
    tenant = org["tenant_id"]
    refund = samples.sample_transactions(63_000)["overpayment_refund"]
    mangled: list[str] = []

    def mangle_first(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if mangled or not _is_lookup(request, "BankTransactions") or response.status != 200:
            return response
        real = json.loads(response.body)["BankTransactions"]
        mangled.append(request.param("where") or "")
        listed = [m for item in real for m in _mangle_overpayment(kind, item)]
        return answer_listing(response, "BankTransactions", listed)

    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="BankTransactions"))
    writes = Writes(emulator, mangle_first)

    [outcome] = settle(stub, [refund])

    assert mangled, "no look-up after the lost answer"
    assert writes.of("BankTransactions") == ["PUT BankTransactions"], f"created again ({kind}): {writes.writes}"
    [transaction] = live_objects(xero_objects(emulator, tenant, "BankTransactions"))
    [overpayment] = xero_objects(emulator, tenant, "Overpayments")
    ids = set(_ids(stub, REFUND, refund.header.id))
    assert (
        not ids
        - {transaction["BankTransactionID"], overpayment["OverpaymentID"]}
        - {p["PaymentID"] for p in xero_objects(emulator, tenant, "Payments")}
    ), f"the record holds ids Xero never issued ({kind}): {sorted(ids)}"
    assert outcome == LINKED, _error(stub, REFUND, refund.header.id)
    assert {transaction["BankTransactionID"], overpayment["OverpaymentID"]} <= ids
    refunds = live_objects(xero_objects(emulator, tenant, "Payments"))
    assert [p["Overpayment"]["OverpaymentID"] for p in refunds] == [overpayment["OverpaymentID"]]


# -- two connections, two organisations, lost answers at once ----------------------------------------
def test_two_connections_lost_answers_are_each_looked_up_in_their_own_organisation_only(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    """Two connections on two organisations post bills whose record ids and references overlap
    (the same tags in both) and others of their own; the first answer of each organisation is
    lost. Each look-up goes to its own organisation with its own token and asks only its own
    connection's tags; each organisation ends with each of its bills once, and each record is
    linked to its own organisation's invoice, never the other's."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    stub = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=20)))
    _, org1 = connect(stub, emulator, "firm-1")
    _, org2 = connect(stub, emulator, "firm-2")
    orgs = {"firm-1": org1, "firm-2": org2}
    shared = [_bill(64_000 + n, f"Shared {n}") for n in range(4)]
    own = {
        "firm-1": [_bill(64_100 + n, "One") for n in range(3)],
        "firm-2": [_bill(64_200 + n, "Two") for n in range(3)],
    }
    bills = {c: shared + own[c] for c in orgs}
    lookups: list[tuple[str, str, str]] = []  # (tenant, token, where)
    lock = threading.Lock()

    def record(request: Request, handle: Handler) -> Response:
        if _is_lookup(request, "Invoices"):
            with lock:
                lookups.append(
                    (
                        request.header("xero-tenant-id") or "",
                        (request.header("authorization") or "").removeprefix("Bearer "),
                        request.param("where") or "",
                    )
                )
        return handle(request)

    for org in orgs.values():
        emulator.faults.add(
            FaultRule(
                "drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices", tenant_id=org["tenant_id"]
            )
        )
    Writes(emulator, record)
    names = post_all(stub, bills["firm-1"], "firm-1") + post_all(stub, bills["firm-2"], "firm-2")

    states = wait(stub, names)

    tenants = {org["tenant_id"]: c for c, org in orgs.items()}
    assert {tenants.get(t) for t, _, _ in lookups} == {"firm-1", "firm-2"}, "not both organisations looked up"
    for tenant, token, where in lookups:
        connection = tenants[tenant]
        assert token == orgs[connection]["access_token"], f"{connection}'s organisation looked up with another token"
        asked = set(re.findall(r"\[AS-CB-(\d+)\]", where))
        mine = {str(b.header.id) for b in bills[connection]}
        assert asked <= mine, f"{connection}'s organisation asked for another's tags: {sorted(asked - mine)}"
        other = "One" if connection == "firm-2" else "Two"
        assert f'"{other} [AS-' not in where, f"{connection}'s organisation asked for another's tags: {where}"
    assert states == [LINKED] * len(names)
    for connection, org in orgs.items():
        made = live_objects(xero_objects(emulator, org["tenant_id"], "Invoices"))
        by_id = {i["InvoiceID"]: i for i in made}
        assert sorted(i["Reference"] for i in made) == sorted(
            f"{b.header.reference} [AS-CB-{b.header.id}]" for b in bills[connection]
        ), f"{connection}'s organisation: {sorted(i['Reference'] for i in made)}"
        for b in bills[connection]:
            [xero_id] = _ids(stub, CLIENT_BILL, b.header.id, connection)
            assert xero_id in by_id, f"{connection}'s bill {b.header.id} linked to another organisation's object"
            assert by_id[xero_id]["Reference"].endswith(f"[AS-CB-{b.header.id}]")


# -- a poster failing between its look-up and its write, restarted -----------------------------------
def test_a_poster_failing_after_its_look_up_and_restarted_finds_the_bills_again_and_creates_none_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer to five bills is lost; the look-up finds them, and the poster fails before it
    writes what it found (its write of the look-up's findings raises), then is stopped and a new
    poster started on the same registry. The records are still uncertain: looked up again and
    found, never created a second time."""
    emulator = emulator_factory(idempotency_minutes=0.0005)
    first = poster_factory(settings(http_timeout=0.5, max_attempts=20, lease_ttl=1.0))
    stub = stub_for(first)
    _, org = connect(stub, emulator)
    bills = [_bill(65_000 + n, f"Crash {n}") for n in range(5)]
    crashed = threading.Event()
    write = results_module.Results.write

    def failing_write(self: Any, created: Any, rejected: Any) -> None:
        if not crashed.is_set() and sys._getframe(1).f_code.co_name == "look_up":
            crashed.set()
            raise RuntimeError("the poster died between its look-up and its write")
        write(self, created, rejected)

    monkeypatch.setattr(results_module.Results, "write", failing_write)
    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Invoices"))
    writes = Writes(emulator)
    names = post_all(stub, bills)
    assert crashed.wait(20), "the look-up never found the bills"
    first.stop(0)

    second = stub_for(poster_factory(settings(http_timeout=0.5, max_attempts=20, lease_ttl=1.0), name="restarted"))
    states = wait(second, names)

    assert writes.of("Invoices") == ["PUT Invoices"], f"created again after the restart: {writes.writes}"
    assert states == [LINKED] * len(bills), [_error(second, CLIENT_BILL, b.header.id) for b in bills]
    live = {i["InvoiceID"]: i for i in live_objects(xero_objects(emulator, org["tenant_id"], "Invoices"))}
    assert len(live) == len(bills)
    for b in bills:
        [xero_id] = _ids(second, CLIENT_BILL, b.header.id)
        assert live[xero_id]["Reference"].endswith(f"[AS-CB-{b.header.id}]")


# -- a tag Xero answers in another unicode form ------------------------------------------------------
def _reform(kind: str, text: str) -> str:
    if kind == "nfd-sent-nfc-answered":
        return unicodedata.normalize("NFC", text)
    if kind == "nfc-sent-nfd-answered":
        return unicodedata.normalize("NFD", text)
    return text.replace("\u200b", "")  # zero-width space dropped


TAG_FORMS = {
    "nfd-sent-nfc-answered": unicodedata.normalize("NFD", "Café Müller"),
    "zero-width-dropped": "Smith\u200bJones",
}


def _payment(record_id: int, bill_id: int, cents: int, reference: str) -> transaction_pb2.Transaction:
    return transaction_pb2.Transaction(
        header=samples.header(record_id, reference=reference),
        client_bill_payment=billing_pb2.ClientBillPayment(bill_id=bill_id, amount=samples.money(cents)),
    )


@pytest.mark.parametrize("kind", list(TAG_FORMS))
def test_a_payment_whose_tag_xero_lists_in_another_unicode_form_is_not_created_twice(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory, kind: str
) -> None:
    """The payment's reference reaches the poster in one unicode form (decomposed accents, a
    zero-width space); Xero keeps and lists it in another (composed, the zero-width space
    dropped): its `==` selected the payment for the asked tag. The answer to the payments is
    lost. Taken as another record's, each payment is made a second time (nothing in Xero refuses a
    second payment of one Reference), and Xero lists both the same way, for ever."""
    emulator, stub, org = _setup(poster_factory, emulator_factory)
    assert settle(stub, [_bill(66_000)]) == [LINKED]
    payments = [_payment(66_100 + n, 66_000, 100 * (n + 1), f"{TAG_FORMS[kind]} {n}") for n in range(2)]
    reformed: list[str] = []

    def as_xero_keeps_it(request: Request, handle: Handler) -> Response:
        response = handle(request)
        if not _is_lookup(request, "Payments") or response.status != 200:
            return response
        items = json.loads(response.body)["Payments"]
        reformed.append(request.param("where") or "")
        return answer_listing(response, "Payments", [{**i, "Reference": _reform(kind, i["Reference"])} for i in items])

    emulator.faults.add(FaultRule("drop_after_commit", count=1, methods=("PUT",), path_contains="Payments"))
    writes = Writes(emulator, as_xero_keeps_it)

    states = settle(stub, payments)

    assert reformed, "no look-up after the lost answer"
    made = live_objects(xero_objects(emulator, org["tenant_id"], "Payments"))
    assert writes.of("Payments") == ["PUT Payments"] and len(made) == len(payments), (
        f"paid twice ({kind}): {writes.of('Payments')}, {[i['Reference'] for i in made]}"
    )
    assert states == [LINKED] * len(payments)
    for p in payments:
        [xero_id] = _ids(stub, common_pb2.TRANSACTION_KIND_CLIENT_BILL_PAYMENT, p.header.id)
        assert xero_id in {i["PaymentID"] for i in made}
