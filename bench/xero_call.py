"""One Xero call's CPU in the poster's thread: `XeroClient.call` of a PUT of --elements sales
invoices, with its answer, timed alone in a loop by thread CPU (`time.thread_time`), so the
server's threads do not count.

The server is a minimal HTTP/1.1 one on loopback answering every PUT with the same body: what
the emulator answers to the first such call (Xero's element shape: amounts, line items, contact,
the rate headers), taken once at the start. The emulator itself answering every call would add
its own CPU to the machine's noise and nothing to the client's figure.

    python bench/xero_call.py
    python bench/xero_call.py --calls 2000 --json

The client is the poster at hand: run with PYTHONPATH set to another revision's source roots
(bench/compare.py lists them) to measure that revision's client on the same answer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from xero_emulator import EmulatorConfig, EmulatorServer  # noqa: E402
from xero_emulator.testing import invoice, new_tenant  # noqa: E402
from xerolink_poster.adapters import xero_json  # noqa: E402
from xerolink_poster.adapters.xero_client import Credentials, XeroClient  # noqa: E402

from bench.many_tenants import load_average  # noqa: E402


def xeros_answer(elements: int) -> tuple[bytes, bytes, list[tuple[str, str]]]:
    """A PUT body of `elements` sales invoices, and the emulator's answer to it: bytes and headers."""
    with EmulatorServer(EmulatorConfig()).start() as emulator:
        tenant = new_tenant(emulator)
        body = [invoice("1335.50", InvoiceNumber=f"INV-{i}", Reference="Matter 7") for i in range(elements)]
        answer = tenant.put("Invoices", *body, summarizeErrors="false")
        assert answer.status_code == 200, answer.text
        kept = [(k, v) for k, v in answer.headers.items() if k.lower().startswith(("x-", "content-type"))]
        return xero_json.dumps({"Invoices": body}), answer.content, kept


def serve(answer: bytes, headers: list[tuple[str, str]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def measure(calls: int, elements: int, rounds: int) -> dict[str, Any]:
    body, answer, headers = xeros_answer(elements)
    server = serve(answer, headers)
    client = XeroClient()
    creds = Credentials(f"http://127.0.0.1:{server.server_port}", "tenant-1", "t" * 900)

    def call() -> None:
        done = client.call(creds, "PUT", "Invoices", {"summarizeErrors": "false"}, "k" * 40, body)
        # A figure only for a call that read its whole answer, rate headers included.
        if not (done.ok and done.rate.minute_remaining is not None and len(done.body["Invoices"]) == elements):
            raise SystemExit(f"the call did not read Xero's answer: {done.status} {done.rate}")

    before = load_average()
    try:
        for _ in range(50):
            call()
        per_round = []
        for _ in range(rounds):
            started = time.thread_time()
            for _ in range(calls):
                call()
            per_round.append((time.thread_time() - started) / calls * 1000)
    finally:
        client.close()
        server.shutdown()
    return {
        "thread_cpu_ms_per_call": statistics.median(per_round),
        "rounds_ms": per_round,
        "answer_bytes": len(answer),
        "load_average_before": before,
        "load_average_after": load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--elements", type=int, default=50, help="invoices per call")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = measure(args.calls, args.elements, args.rounds)
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"XeroClient.call of {args.elements} invoices ({figures['answer_bytes']:,} bytes answered): "
            f"{figures['thread_cpu_ms_per_call']:.3f} ms of thread CPU a call (median of {args.rounds} rounds of "
            f"{args.calls}; load average {figures['load_average_before']:.2f} before, "
            f"{figures['load_average_after']:.2f} after)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
