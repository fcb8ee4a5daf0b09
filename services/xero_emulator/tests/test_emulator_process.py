"""The emulator as its own process: the console script, the admin API and SIGTERM."""

from __future__ import annotations

import http.client
import subprocess
import time
from decimal import Decimal

import httpx
from xero_emulator import EmulatorServer
from xero_emulator.jsonio import dumps

from tests.fixtures.processes import child_env, console_script, free_port, wait_for_port


def test_console_script_seeds_demo_serves_admin_api_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*console_script("xero-emulator"), "--port", str(port), "--minute-seconds", "1", "--seed-demo"],
        env=child_env(),
        stdout=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc=proc)
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode().strip() for _ in range(7)]
        assert lines[0] == f"xero-emulator listening on http://127.0.0.1:{port}"
        demo = dict(line.split("=", 1) for line in lines[1:])
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {demo['access_token']}", "xero-tenant-id": demo["tenant_id"]}
        organisation = httpx.get(f"{base}/api.xro/2.0/Organisation", headers=headers).json()["Organisations"][0]
        assert (organisation["IsDemoCompany"], organisation["Class"]) == (True, "DEMO")

        created = httpx.post(f"{base}/emulator/organisations", json={"name": "Second Firm"}).json()
        assert {"tenant_id", "client_id", "client_secret", "authorization_code", "access_token"} <= set(created)
        tenant = created["tenant_id"]
        admin = f"{base}/emulator/organisations/{tenant}"
        locked = httpx.post(f"{admin}/settings", json={"PeriodLockDate": "2026-06-30"}).json()
        assert locked["PeriodLockDate"].startswith("/Date(")
        receipt = {
            "Type": "RECEIVE",
            "Contact": {"Name": "Jane"},
            "BankAccount": {"Code": "091"},
            "Date": "2026-07-01",
            "LineAmountTypes": "NoTax",
            "LineItems": [{"Description": "Trust", "LineAmount": Decimal("500.00"), "AccountCode": "850"}],
        }
        headers = {"Authorization": f"Bearer {created['access_token']}", "xero-tenant-id": tenant}
        put = httpx.put(
            f"{base}/api.xro/2.0/BankTransactions", content=dumps({"BankTransactions": [receipt]}), headers=headers
        )
        assert put.status_code == 200, put.text
        ledger = httpx.get(f"{admin}/ledger").json()
        assert {a["Code"]: a["Balance"] for a in ledger["accounts"]} == {"091": 500.0, "850": -500.0}
        listed = httpx.get(f"{admin}/objects/BankTransactions").json()["BankTransactions"]
        assert [t["Total"] for t in listed] == [500.0]

        faults = httpx.put(f"{base}/emulator/faults", json={"faults": [{"kind": "error", "status": 500, "count": 1}]})
        assert faults.json()["faults"][0]["kind"] == "error"
        assert httpx.get(f"{base}/api.xro/2.0/Organisation", headers=headers).status_code == 500
        assert httpx.get(f"{base}/api.xro/2.0/Organisation", headers=headers).status_code == 200
        assert httpx.put(f"{base}/emulator/faults", json={"faults": [{"kind": "nope"}]}).status_code == 400
        assert httpx.delete(f"{base}/emulator/faults").json() == {"faults": []}
        assert httpx.get(f"{base}/openapi.json").json()["openapi"] == "3.0.0"
    finally:
        started = time.monotonic()
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert proc.returncode == 0
    assert "xero-emulator stopped" in out
    assert time.monotonic() - started < 5


def test_a_malformed_content_length_is_a_400_not_a_crash() -> None:
    server = EmulatorServer().start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.putrequest("PUT", "/api.xro/2.0/Invoices")
            conn.putheader("Content-Length", "lots")
            conn.endheaders()
            # Read by the answer's own Content-Length rather than until the server closes: a read
            # to EOF raced the close under load and sometimes lost the body.
            answer = conn.getresponse()
            body = answer.read().decode()
        finally:
            conn.close()
        assert answer.status == 400
        assert "Content-Length must be a whole number" in body
    finally:
        server.stop()
