"""OpenTelemetry setup shared by the services: one trace per posted transaction across
caller -> poster -> mapper -> Xero (W3C trace context over gRPC metadata and HTTP headers).

XEROLINK_OTEL_EXPORTER selects where spans and metrics go: `none` (default), `console`, or
`otlp` (the standard OTEL_EXPORTER_OTLP_* variables configure the endpoint). Tests pass their
own in-memory exporter instead."""

from __future__ import annotations

import os
from dataclasses import dataclass

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

# Whether this process hands its spans to an exporter (configure_telemetry sets it).
_exported = False


def spans_exported() -> bool:
    """Whether spans made here go anywhere: spans that only a reader of traces needs (one per
    member of a batched call) are not worth their CPU when none is exported."""
    return _exported


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def configure_telemetry(
    service: str,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> Telemetry:
    """Installs the global tracer and meter providers and the gRPC/httpx instrumentation.
    Instrumentation is installed whatever the exporter: propagation of trace context must not
    depend on whether this process exports its own spans."""
    kind = os.environ.get("XEROLINK_OTEL_EXPORTER", "none").lower()
    resource = Resource.create({"service.name": service, "service.namespace": "xerolink"})
    tracer_provider = TracerProvider(resource=resource)
    exporter = span_exporter or _span_exporter(kind)
    global _exported  # noqa: PLW0603 - one tracer provider per process
    _exported = exporter is not None
    if exporter is not None:
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    readers = [metric_reader] if metric_reader is not None else _metric_readers(kind)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _instrument()
    return Telemetry(tracer_provider, meter_provider)


def _span_exporter(kind: str) -> SpanExporter | None:
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def _metric_readers(kind: str) -> list[MetricReader]:
    if kind == "console":
        return [PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)]
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return [PeriodicExportingMetricReader(OTLPMetricExporter())]
    return []


_instrumented = False


def _instrument() -> None:
    global _instrumented  # noqa: PLW0603 - instrumentors patch modules once per process
    if _instrumented:
        return
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    GrpcInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().instrument()
    _instrumented = True
