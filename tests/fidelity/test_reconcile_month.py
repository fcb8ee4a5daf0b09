"""Reconciliation of a month of firm activity: posted through a real poster to the emulator it
reconciles with Xero's Trial Balance to the cent (and its trust per matter with the trust
accounts); after a dozen hand edits in Xero, each recorded as drift, Reconcile reports exactly
the accounts those edits moved, each difference explained by its edit and nothing unexplained;
the CLI exits 0 and 1 accordingly in its three formats. Both registries (conftest.py)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from xero_emulator import EmulatorServer
from xero_emulator.messages import render
from xerolink.poster.v1 import drift_pb2
from xerolink.type.v1 import date_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.firm_generator import generate_month
from xerolink_poster.adapters.database import now_us
from xerolink_poster.service_layer.drift_checks import Observed, record_observations
from xerolink_poster.service_layer.unit_of_work import UnitOfWork

from tests.fidelity.month_posting import MINUTE_SECONDS, SEED, post_month, records, region_context, wait_all_linked
from tests.fixtures.poster import EmulatorFactory, PosterFactory, connect, scaled_limits, settings, stub_for
from tests.fixtures.processes import child_env, console_script

CONNECTION = "reconciled-firm"
MATTERS = 36
PERIOD = ("2026-03-01", "2026-03-31")
TYPES = {
    "Invoices": xero_pb2.OBJECT_TYPE_INVOICE,
    "Payments": xero_pb2.OBJECT_TYPE_PAYMENT,
    "BankTransactions": xero_pb2.OBJECT_TYPE_BANK_TRANSACTION,
    "ManualJournals": xero_pb2.OBJECT_TYPE_MANUAL_JOURNAL,
}


def _date(text: str) -> date_pb2.Date:
    year, month, day = (int(p) for p in text.split("-"))
    return date_pb2.Date(year=year, month=month, day=day)


def reconcile_request() -> drift_pb2.ReconcileRequest:
    return drift_pb2.ReconcileRequest(connection_id=CONNECTION, from_date=_date(PERIOD[0]), to_date=_date(PERIOD[1]))


def run_cli(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script("xerolink"), "--poster", f"127.0.0.1:{port}", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(COLUMNS="400"),
        timeout=120,
        check=False,
    )


def _objects(emulator: EmulatorServer, tenant: str, resource: str) -> list[dict[str, Any]]:
    org = emulator.state.organisation(tenant)
    with org.lock:
        return [render(o) for o in org.objects[resource].values()]


def _money(units: int) -> Decimal:
    return Decimal(units).scaleb(-2)


class Edits:
    """Hand edits made in the emulator, each observed as a poll would read it (drift recorded)."""

    def __init__(self, emulator: EmulatorServer, tenant: str) -> None:
        self.emulator = emulator
        self.tenant = tenant
        self.edited: set[str] = set()
        self.observe: list[tuple[str, str]] = []

    def edit(
        self, resource: str, object_id: str, changes: dict[str, Any], observed: tuple[str, str] | None = None
    ) -> None:
        self.emulator.hand_edit(self.tenant, resource, object_id, changes)
        self.edited.add(object_id.lower())
        self.observe.append(observed or (resource, object_id))

    def observed(self) -> list[Observed]:
        out = []
        for resource, object_id in self.observe:
            current = next(o for o in _objects(self.emulator, self.tenant, resource) if object_id in o.values())
            out.append(Observed(TYPES[resource], object_id, current, str(current.get("UpdatedDateUTC", ""))))
        return out


def make_a_dozen_edits(emulator: EmulatorServer, tenant: str) -> Edits:
    edits = Edits(emulator, tenant)
    invoices = _objects(emulator, tenant, "Invoices")
    untouched = [
        i
        for i in invoices
        if i["Status"] == "AUTHORISED" and not Decimal(str(i["AmountPaid"])) and not Decimal(str(i["AmountCredited"]))
    ]
    open_sales = [i for i in untouched if i["Type"] == "ACCREC"]
    open_bills = [i for i in untouched if i["Type"] == "ACCPAY"]
    payments = [p for p in _objects(emulator, tenant, "Payments") if p["Status"] == "AUTHORISED"]
    spends = [t for t in _objects(emulator, tenant, "BankTransactions") if t["Status"] == "AUTHORISED"]
    # A journal between two accounts (a trust journal between matters moves one account by zero).
    journals = [
        j
        for j in _objects(emulator, tenant, "ManualJournals")
        if j["Status"] == "POSTED" and len({line["AccountCode"] for line in j["JournalLines"]}) > 1
    ]
    assert len(open_sales) >= 4 and open_bills and len(payments) >= 3 and len(spends) >= 2
    edits.edit("Invoices", open_sales[0]["InvoiceID"], {"Status": "VOIDED"})
    edits.edit("Invoices", open_sales[1]["InvoiceID"], {"Date": "2026-04-15"})
    lines = [dict(line) for line in open_sales[2]["LineItems"]]
    lines[0] = {**lines[0], "UnitAmount": Decimal(str(lines[0]["UnitAmount"])) + Decimal("12.34")}
    lines[0].pop("LineAmount", None)
    edits.edit("Invoices", open_sales[2]["InvoiceID"], {"LineItems": lines})
    invoice = open_sales[3]
    emulator.bank_feed_match(
        tenant,
        {
            "InvoiceID": invoice["InvoiceID"],
            "Amount": str(invoice["AmountDue"]),
            "Date": "2026-03-30",
            "AccountCode": "090",
        },
    )
    edits.edited.add(invoice["InvoiceID"].lower())
    edits.observe.append(("Invoices", invoice["InvoiceID"]))
    edits.edit("Invoices", open_bills[0]["InvoiceID"], {"Status": "VOIDED"})
    for payment in payments[:2]:
        edits.edit("Payments", payment["PaymentID"], {"Status": "DELETED"})
    edits.edit("BankTransactions", spends[0]["BankTransactionID"], {"Status": "DELETED"})
    edits.edit("BankTransactions", spends[1]["BankTransactionID"], {"Date": "2026-02-27"})
    if journals:
        edits.edit("ManualJournals", journals[0]["ManualJournalID"], {"Status": "VOIDED"})
    else:  # the compatible profile's month has trust journals only
        edits.edit("Payments", payments[2]["PaymentID"], {"Status": "DELETED"})
    extras = (open_sales[4:] + open_bills[1:])[:2]
    assert len(extras) == 2, "the month needs more documents without payments"
    for extra in extras:
        edits.edit("Invoices", extra["InvoiceID"], {"Status": "VOIDED"})
    return edits


def test_a_month_reconciles_and_a_dozen_hand_edits_are_exactly_the_differences(
    poster_factory: PosterFactory, emulator_factory: EmulatorFactory
) -> None:
    emulator = emulator_factory(minute_seconds=MINUTE_SECONDS)
    app = poster_factory(settings(batch_size=50, limits=scaled_limits(MINUTE_SECONDS)))
    stub = stub_for(app)
    month = generate_month(SEED, MATTERS)
    _, org = connect(stub, emulator, CONNECTION, region_context(month.region), region=month.region.key)
    post_month(stub, CONNECTION, month.transactions)
    wait_all_linked(stub, {CONNECTION: records(month.transactions)})

    clean = stub.Reconcile(reconcile_request(), timeout=120)
    assert clean.reconciled, (
        [(a.account_code, a.difference.units) for a in clean.accounts if a.difference.units],
        clean.trust,
    )
    assert len([a for a in clean.accounts if a.posted.units]) >= 5, "the month moves many accounts"
    assert all(a.difference.units == 0 and not a.explanations for a in clean.accounts)
    assert clean.HasField("trust") and clean.trust.reconciled and clean.trust.matters
    assert clean.trust.xero_liability.units == clean.trust.posted_total.units > 0
    assert clean.trust.xero_bank.units == clean.trust.posted_bank.units > 0
    assert any(s.startswith("GET Reports/TrialBalance?date=2026-03-31") for s in clean.sources)
    for fmt in ("table", "json", "csv"):
        shown = run_cli(
            app.port, "reconcile", "--connection", CONNECTION, "--from", PERIOD[0], "--to", PERIOD[1], "--format", fmt
        )
        assert shown.returncode == ExitCode.OK, shown.stdout + shown.stderr

    edits = make_a_dozen_edits(emulator, org["tenant_id"])
    assert len(edits.observe) == 12
    with UnitOfWork(app.db) as uow:
        opened = record_observations(uow, CONNECTION, edits.observed(), "poll", now_us(), "test")
        uow.commit()
    assert opened, "the hand edits are drift"

    found = stub.Reconcile(reconcile_request(), timeout=120)
    assert not found.reconciled
    differing = [a for a in found.accounts if a.difference.units]
    assert differing, "the edits move the ledger"
    for account in found.accounts:
        explained = sum(e.amount.units for e in account.explanations)
        assert account.unexplained.units == 0, (account.account_code, account.difference.units, explained)
        assert account.difference.units == explained
    explaining = {e.xero_id.lower() for a in found.accounts for e in a.explanations}
    assert explaining == edits.edited, [(r, i) for r, i in edits.observe if i.lower() not in explaining]
    assert all(
        e.link.startswith(f"connections/{CONNECTION}/links/") and e.drift
        for a in found.accounts
        for e in a.explanations
    )

    def cli(fmt: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            app.port, "reconcile", "--connection", CONNECTION, "--from", PERIOD[0], "--to", PERIOD[1], "--format", fmt
        )

    as_json, as_csv, as_table = cli("json"), cli("csv"), cli("table")
    assert as_json.returncode == as_csv.returncode == as_table.returncode == ExitCode.FAILED
    parsed = json.loads(as_json.stdout)
    assert parsed["reconciled"] is False
    assert {a["account_code"]: Decimal(a["difference"]) for a in parsed["accounts"] if Decimal(a["difference"])} == {
        a.account_code: _money(a.difference.units) for a in differing
    }
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["account_code"] for r in rows if Decimal(r["difference"])} == {a.account_code for a in differing}
    assert "differences" in as_table.stdout
    _refusals(lambda *a: run_cli(app.port, *a))


def _refusals(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    bad_date = cli("reconcile", "--connection", CONNECTION, "--from", "2026-02-30", "--to", PERIOD[1])
    assert bad_date.returncode == ExitCode.USAGE
    backwards = cli("reconcile", "--connection", CONNECTION, "--from", PERIOD[1], "--to", PERIOD[0])
    assert backwards.returncode == ExitCode.REQUEST_REFUSED and "to_date" in backwards.stdout + backwards.stderr
    unknown = cli("reconcile", "--connection", "nobody", "--from", PERIOD[0], "--to", PERIOD[1])
    assert unknown.returncode == ExitCode.REQUEST_REFUSED
