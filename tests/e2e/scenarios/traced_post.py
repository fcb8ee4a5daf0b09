"""Posts one client bill through poster -> mapper -> emulator with an in-memory span exporter and
metric reader, and prints the finished spans and the collected metrics as JSON lines; the
services' logs go to standard error as the services write them (XEROLINK_LOG_FORMAT and
XEROLINK_LOG_LEVEL apply). Run in its own process: OpenTelemetry's global providers
and instrumentation can be set only once per process."""

from __future__ import annotations

import json
import os
import sys
import time

import grpc
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from xerolink_common.logs import configure_logging
from xerolink_common.telemetry import configure_telemetry

exporter = InMemorySpanExporter()
reader = InMemoryMetricReader()
telemetry = configure_telemetry("xerolink-test", span_exporter=exporter, metric_reader=reader)
configure_logging("xerolink-test")

# Imported after instrumentation so every server and channel is created instrumented.
from xero_emulator import EmulatorConfig, EmulatorServer  # noqa: E402
from xerolink.actionstep.v1 import transaction_pb2  # noqa: E402
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2  # noqa: E402
from xerolink.poster.v1 import poster_service_pb2_grpc as poster_grpc  # noqa: E402
from xerolink_cli.connections import register_emulated_connection  # noqa: E402
from xerolink_cli.demo import mapping_context  # noqa: E402
from xerolink_cli.transactions import demo_transactions  # noqa: E402
from xerolink_mapper.entrypoints.server import start as start_mapper  # noqa: E402
from xerolink_poster.entrypoints import bootstrap, config  # noqa: E402


def main(database_url: str) -> None:
    emulator = EmulatorServer(EmulatorConfig(access_token_minutes=100_000.0)).start()
    mapper = start_mapper("127.0.0.1:0")
    settings = config.load(
        {
            "XEROLINK_POSTER_ADDRESS": "127.0.0.1:0",
            "XEROLINK_DATABASE_URL": database_url,
            "XEROLINK_MAPPER_TARGET": f"127.0.0.1:{mapper.port}",
            # The tests' token key (conftest.py), so no development key is written to the home folder.
            "XEROLINK_TOKEN_ENCRYPTION_KEY": os.environ.get("XEROLINK_TOKEN_ENCRYPTION_KEY", ""),
        }
    )
    poster = bootstrap.start(settings)
    bill: transaction_pb2.Transaction = next(t for t in demo_transactions() if t.WhichOneof("kind") == "client_bill")
    tracer = trace.get_tracer("billing-service")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{poster.port}") as channel:
            stub = poster_grpc.PosterServiceStub(channel)
            org = emulator.create_organisation("Traced Firm")
            register_emulated_connection(stub, "traced", emulator.base_url, org, mapping_context())
            with tracer.start_as_current_span("billing.finalise_bill") as root:
                posting = stub.PostTransaction(
                    poster_pb2.PostTransactionRequest(connection_id="traced", transaction=bill)
                ).posting
                root_trace = format(root.get_span_context().trace_id, "032x")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                got = stub.GetPosting(poster_pb2.GetPostingRequest(name=posting.name)).posting
                if got.state == poster_pb2.LINK_STATE_LINKED:
                    break
                time.sleep(0.05)
            print(
                json.dumps(
                    {
                        "root_trace": root_trace,
                        "tenant_id": org["tenant_id"],
                        "kind": int(got.record.kind),
                        "record_id": bill.header.id,
                        "state": poster_pb2.LinkState.Name(got.state),
                        "posting": json_format.MessageToDict(got),
                    }
                )
            )
            # Collected while the poster still runs: the gauges read its registry.
            collected = reader.get_metrics_data()
            for resource in collected.resource_metrics if collected else []:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        for point in metric.data.data_points:
                            value = getattr(point, "value", None)
                            if value is None:
                                value = getattr(point, "count", None)
                            attributes = {k: str(v) for k, v in (point.attributes or {}).items()}
                            print(json.dumps({"metric": metric.name, "value": value, "attributes": attributes}))
    finally:
        poster.stop(1)
        mapper.stop(0)
        emulator.stop()
        telemetry.tracer_provider.force_flush()
    for span in exporter.get_finished_spans():
        context = span.get_span_context()
        assert context is not None
        print(
            json.dumps(
                {
                    "name": span.name,
                    "kind": span.kind.name,
                    "trace_id": format(context.trace_id, "032x"),
                    "span_id": format(context.span_id, "016x"),
                    "parent": format(span.parent.span_id, "016x") if span.parent else None,
                    "attributes": {k: str(v) for k, v in (span.attributes or {}).items()},
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1])
