"""`xerolink demo` is a newcomer's first command: it must start everything, post the sample and
show the outcome, with the books in the emulated Xero matching the Actionstep sample."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
from xerolink_cli.exit_codes import ExitCode
from xerolink_common.money import cents_to_str

from tests.fixtures.cli import table
from tests.fixtures.processes import ROOT, child_env, console_script

SAMPLE = ROOT / "services" / "cli" / "xerolink_cli" / "samples" / "demo_firm.ndjson"
NOT_POSTED_IN_COMPATIBLE = {"generalJournal", "bankDeposit", "officeBankTransfer", "trustBankReconciliation"}


def expected_receivables() -> int:
    """Accounts receivable after the sample, computed from the Actionstep side alone: bills
    posted after the connection, less what paid or credited them."""
    total = 0
    for line in SAMPLE.read_text().splitlines():
        tx = json.loads(line)
        if tx["header"]["postedAt"] < "2026-11-01":
            continue
        if "clientBill" in tx:
            total += int(tx["clientBill"]["totals"]["inclusive"]["units"])
        for kind in ("clientBillPayment", "creditNoteApplication", "invoicePaidFromTrust"):
            if kind in tx:
                total -= int(tx[kind]["amount"]["units"])
    return total


def test_demo_posts_the_sample_and_the_books_match(tmp_path: Path) -> None:
    result = subprocess.run(
        [*console_script("xerolink"), "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        # A newcomer's 80-column terminal: every table row stays one line (sentences go below).
        env=child_env(COLUMNS="80"),
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == ExitCode.OK, out + result.stderr
    kinds = [next(k for k in json.loads(line) if k != "header") for line in SAMPLE.read_text().splitlines()]
    refused = sum(1 for k in kinds if k in NOT_POSTED_IN_COMPATIBLE) + 1  # + the pre-integration bill
    assert f"{len(kinds) - refused} linked" in out
    assert f"{refused} not posted" in out
    assert "PRE_INTEGRATION" in out and "EXTENDED_ONLY" in out
    receivables = re.search(r"│ 610\s+│ Accounts Receivable\s+│\s+(-?[\d.]+) │", out)
    assert receivables is not None, out
    assert receivables.group(1) == cents_to_str(expected_receivables())
    assert "debits equal credits: yes" in out
    assert all(len(line) <= 80 for line in out.splitlines() if line.strip()[:1] in "┃│┏┡└"), out
    _, rows = table(out, "Posted to Xero")
    assert len(rows) == len(kinds), "a row wrapped onto more than one line"
    assert any(line.startswith("[1] ") for line in out.splitlines())


def test_the_demo_posts_the_same_week_for_a_firm_in_the_united_states(tmp_path: Path) -> None:
    """The region with the awkward rate (8.875 %): every settlement still fits its document."""
    result = subprocess.run(
        [*console_script("xerolink"), "demo", "--region", "US", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=child_env(COLUMNS="120"),
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == ExitCode.OK, out + result.stderr
    kinds = [next(k for k in json.loads(line) if k != "header") for line in SAMPLE.read_text().splitlines()]
    refused = sum(1 for k in kinds if k in NOT_POSTED_IN_COMPATIBLE) + 1
    assert f"{len(kinds) - refused} linked" in out and "failed" not in out
    assert "keeping its books in USD" in out and "IOLTA Trust Account" in out
    assert "debits equal credits: yes" in out


def expected_matter_profit() -> dict[str, int]:
    """Profit per matter from the Actionstep side alone: each posted bill's lines are the matter's
    income and each supplier invoice's lines its expense (the sample's accounts 200/210 are
    revenue, 310/420/489 expense), less credit notes."""
    profit: dict[str, int] = {}
    for line in SAMPLE.read_text().splitlines():
        tx = json.loads(line)
        matter = tx["header"].get("actionId", "0")
        if tx["header"]["postedAt"] < "2026-11-01" or matter == "0":
            continue
        for kind, sign in (("clientBill", 1), ("creditNote", -1), ("supplierInvoice", -1)):
            for item in tx.get(kind, {}).get("lines", []):
                profit[matter] = profit.get(matter, 0) + sign * int(item["amount"]["units"])
    return profit


def test_the_demo_shows_matters_and_a_trust_organisation(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *console_script("xerolink"),
            "demo",
            "--matters",
            "--trust-organisation",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        env=child_env(COLUMNS="120"),
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == ExitCode.OK, out + result.stderr
    assert "failed" not in out
    assert out.count("debits equal credits: yes") == 2, out
    trust = out[out.index("Trust Account in the emulated Xero") :]
    # Trust money is only in the trust organisation, office money only in the office one.
    assert "Trust Liability" in trust and "Accounts Receivable" not in trust.split("debits equal")[0]
    office = out[out.index("Harbour & Finch Lawyers in the emulated Xero") : out.index("Trust Account in the")]
    assert "Trust Liability" not in office
    office_matters = out[out.index("harbour-finch: profit per matter") : out.index("harbour-finch-trust: profit")]
    shown = dict(re.findall(r"│ (\d+)\s+│\s+-?[\d.]+ │\s+-?[\d.]+ │\s+(-?[\d.]+) │", office_matters))
    expected = expected_matter_profit()
    assert {m: shown.get(m) for m in expected} == {m: cents_to_str(p) for m, p in expected.items()}


def test_the_demo_shows_drift_from_work_in_xero_held_and_reconciled(tmp_path: Path) -> None:
    """--drift: a bank-feed match and a voided bill made in Xero reach the poster as signed
    webhooks, Actionstep's receipt for the paid invoice is held and never reaches Xero, and the
    reconciliation traces every difference to the two drifts."""
    # --keep-running leaves the emulator up to be asked what Xero holds; its own session lets the
    # test stop the demo's services afterwards by their process group.
    demo = subprocess.Popen(
        [*console_script("xerolink"), "demo", "--drift", "--keep-running", "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(COLUMNS="400"),
        start_new_session=True,
    )
    try:
        out, err = demo.communicate(timeout=240)
        assert demo.returncode == ExitCode.OK, out + err
        _, drifts = table(out, "Drift in Xero (harbour-finch)")
        assert sorted((row[1], row[2]) for row in drifts if row[1]) == [
            ("client-bill/1001", "paid-in-xero"),
            ("supplier-invoice/5002", "voided-in-xero"),
        ], out
        held = out[out.index("Actionstep then records") :]
        _, rows = table(held, "Posted to Xero")
        assert [(r[0], r[1]) for r in rows] == [("client-bill-payment/7002", "waiting")], out
        assert "XERO_DOCUMENT_CHANGED" in rows[0][3]
        assert "invoice INV-1001 was paid in Xero by a payment xerolink did not make" in held
        emulator = re.search(r"emulator (http://127\.0\.0\.1:\d+)", out)
        assert emulator is not None, out
        tenant = httpx.get(f"{emulator.group(1)}/emulator/organisations", timeout=10).json()
        organisations = tenant if isinstance(tenant, list) else tenant["organisations"]
        payments = httpx.get(
            f"{emulator.group(1)}/emulator/organisations/{organisations[0]['tenant_id']}/objects/Payments", timeout=10
        ).json()["Payments"]
        references = sorted(str(p.get("Reference", "")) for p in payments)
        # Each payment xerolink makes carries its Actionstep record in its reference.
        assert not any("AS-CBP-7002" in r for r in references), references
        assert any("AS-CBP-7001" in r for r in references), references
        assert "Bank feed" in references, references
        header, accounts = table(out, "Reconciliation 2026-11-01 to 2026-11-30 (harbour-finch)")
        column = {name: i for i, name in enumerate(header)}
        differing = {
            row[column["account"]]: row[column["explained by"]]
            for row in accounts
            if row[column["account"]] and row[column["difference"]] != "0.00"
        }
        assert all(row[column["unexplained"]] in ("0.00", "") for row in accounts), out
        assert differing["090"].startswith("PAID_IN_XERO") and differing["610"].startswith("PAID_IN_XERO"), out
        assert differing["800"].startswith("VOIDED_IN_XERO") and differing["310"].startswith("VOIDED_IN_XERO"), out
        assert "differences: see the accounts above" in out
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=30)
