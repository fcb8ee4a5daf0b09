"""A batched call's spans: one a member only when spans are exported."""

from __future__ import annotations

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from xerolink_common import telemetry
from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.service_layer import tracing


def _members(count: int) -> list[tuple[object, dict[str, object]]]:
    return [(None, {"xerolink.actionstep.id": str(n)}) for n in range(count)]


@pytest.mark.parametrize("exported", [True, False])
def test_a_batched_call_links_a_span_into_each_members_trace_only_when_spans_are_exported(
    monkeypatch: pytest.MonkeyPatch, exported: bool
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(telemetry, "_exported", exported)
    carried: dict[str, str] = {}
    with tracing.grouped_span("xero Invoices", _members(5)) as (call, linked):  # type: ignore[arg-type]
        propagate.inject(carried)
        assert len(linked) == 4
        assert all(s.is_recording() for s in linked) is exported
        for span in (call, *linked):
            span.set_attribute("xerolink.outcome", "created")  # callers set it on each, exported or not
    names = sorted(s.name for s in exporter.get_finished_spans())
    assert names == (["xero Invoices"] + ["xero Invoices (batched)"] * 4 if exported else ["xero Invoices"])
    # The call's own span is current either way: the trace still reaches Xero.
    assert carried["traceparent"].split("-")[2] == format(call.get_span_context().span_id, "016x")


@pytest.mark.parametrize("exported", [True, False])
def test_a_xero_call_reads_every_members_trace_only_when_spans_are_exported(
    monkeypatch: pytest.MonkeyPatch, exported: bool
) -> None:
    read: list[str] = []
    real = tracing._context_of

    def context_of(traceparent: str) -> object:
        read.append(traceparent)
        return real(traceparent)

    monkeypatch.setattr(tracing, "_context_of", context_of)
    monkeypatch.setattr(telemetry, "_exported", exported)
    parents = [f"00-{n:032x}-{n:016x}-01" for n in range(1, 4)]
    links = [
        LinkRow(
            connection_id="c1",
            kind=1,
            record_id=n,
            link_group=1,
            state="pending",
            fingerprint="f" * 64,
            posting_id=f"p{n}",
            create_us=0,
            update_us=0,
        )
        for n in range(3)
    ]
    with tracing.xero_call("Invoices", "t1", list(zip(parents, links, strict=True))) as (_, linked):
        assert len(linked) == 2
    assert read == (parents if exported else parents[:1])
