"""How fast the local Xero emulator answers, so tests and benchmarks against it can be sized.

Run: python bench/emulator_throughput.py  (prints figures; asserts nothing).
     python bench/emulator_throughput.py --quick --json   (a smaller run; one JSON object last)"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from xero_emulator import EmulatorConfig, EmulatorServer
from xero_emulator.testing import connect, invoice, new_tenant

UNLIMITED = EmulatorConfig(minute_limit=10**9, day_limit=10**9, app_minute_limit=10**9, concurrent_limit=10**6)


FIGURES: dict[str, float] = {}  # per second, by name, for --json


def rate(name: str, count: int, seconds: float) -> str:
    FIGURES[name] = count / seconds
    return f"{count / seconds:8.0f}/s  ({seconds * 1000 / count:.2f} ms each)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object, last")
    args, _ = parser.parse_known_args()  # `./dev bench` passes every script the same arguments
    server = EmulatorServer(UNLIMITED).start()
    try:
        tenant = new_tenant(server)
        n = 100 if args.quick else 500
        started = time.perf_counter()
        for _ in range(n):
            tenant.client.get("/Organisation")
        print(f"sequential GET /Organisation      {rate('get_organisation', n, time.perf_counter() - started)}")

        started = time.perf_counter()
        for i in range(n):
            tenant.put("Invoices", invoice("100.00", InvoiceNumber=f"B-{i}"))
        print(f"sequential PUT one invoice        {rate('put_one_invoice', n, time.perf_counter() - started)}")

        batches = 4 if args.quick else 20
        started = time.perf_counter()
        for b in range(batches):
            elements = [invoice("10.00", InvoiceNumber=f"C-{b}-{i}") for i in range(50)]
            tenant.put("Invoices", *elements, summarizeErrors="false")
        elapsed = time.perf_counter() - started
        batched = rate("invoices_in_batches_of_50", batches * 50, elapsed)
        print(f"PUT batches of 50 invoices        {batched} per invoice")

        started = time.perf_counter()
        tenant.client.get("/Invoices", params={"where": f'InvoiceNumber=="B-{n // 2}"'})
        FIGURES["where_lookup_ms"] = (time.perf_counter() - started) * 1000
        print(f"where look-up over {n + batches * 50} invoices    {FIGURES['where_lookup_ms']:.2f} ms")

        with ThreadPoolExecutor(8) as pool:
            clients = [connect(server, tenant.info) for _ in range(8)]
            started = time.perf_counter()
            list(pool.map(lambda i: clients[i % 8].get("/Organisation"), range(n)))
            threaded = rate("get_organisation_8_threads", n, time.perf_counter() - started)
            print(f"8 threads GET /Organisation       {threaded}")
    finally:
        server.stop()
    if args.json:
        print(json.dumps(FIGURES))


if __name__ == "__main__":
    main()
