"""How fast the local Xero emulator answers, so tests and benchmarks against it can be sized.

Run: python bench/emulator_throughput.py  (prints figures; asserts nothing)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.testing import connect, invoice, new_tenant

UNLIMITED = EmulatorConfig(minute_limit=10**9, day_limit=10**9, app_minute_limit=10**9, concurrent_limit=10**6)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.0f}/s  ({seconds * 1000 / count:.2f} ms each)"


def main() -> None:
    server = EmulatorServer(UNLIMITED).start()
    try:
        tenant = new_tenant(server)
        n = 500
        started = time.perf_counter()
        for _ in range(n):
            tenant.client.get("/Organisation")
        print(f"sequential GET /Organisation      {rate(n, time.perf_counter() - started)}")

        started = time.perf_counter()
        for i in range(n):
            tenant.put("Invoices", invoice("100.00", InvoiceNumber=f"B-{i}"))
        print(f"sequential PUT one invoice        {rate(n, time.perf_counter() - started)}")

        batches = 20
        started = time.perf_counter()
        for b in range(batches):
            elements = [invoice("10.00", InvoiceNumber=f"C-{b}-{i}") for i in range(50)]
            tenant.put("Invoices", *elements, summarizeErrors="false")
        elapsed = time.perf_counter() - started
        print(f"PUT batches of 50 invoices        {rate(batches * 50, elapsed)} per invoice")

        started = time.perf_counter()
        tenant.client.get("/Invoices", params={"where": 'InvoiceNumber=="B-250"'})
        print(f"where look-up over {n + batches * 50} invoices    {(time.perf_counter() - started) * 1000:.2f} ms")

        with ThreadPoolExecutor(8) as pool:
            clients = [connect(server, tenant.info) for _ in range(8)]
            started = time.perf_counter()
            list(pool.map(lambda i: clients[i % 8].get("/Organisation"), range(n)))
            print(f"8 threads GET /Organisation       {rate(n, time.perf_counter() - started)}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
