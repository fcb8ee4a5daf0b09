"""Carries each posting's trace across the outbox, so one trace holds caller -> poster ->
mapper -> Xero although the Xero call happens later, in the dispatcher's thread.

Post stores the W3C `traceparent` of the accepting request with the outbox entry; the
dispatcher continues that trace around the Xero call. A batch call is one HTTP request for many
postings: it runs in the first posting's trace and every other posting's trace gets a span linked
to it, each with the record, tenant and outcome."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span

from xerolink_poster.adapters.tables import LinkRow

_tracer = trace.get_tracer("xerolink.poster")


def current_trace_context() -> str:
    """The traceparent of the active span, or "" when there is none."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def _context_of(traceparent: str) -> otel_context.Context | None:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


def _attributes(tenant_id: str, link: LinkRow) -> dict[str, Any]:
    return {
        "xerolink.tenant_id": tenant_id,
        "xerolink.connection_id": link.connection_id,
        "xerolink.kind": link.kind,
        "xerolink.actionstep.id": str(link.record_id),
    }


@contextmanager
def xero_call(path: str, tenant_id: str, members: Sequence[tuple[str, LinkRow]]) -> Iterator[tuple[Span, list[Span]]]:
    """A span around one Xero call, in the first member's trace, and a linked span in each other
    member's trace; the caller sets `xerolink.outcome` on each before the block ends."""
    (first_trace, first_link), rest = members[0], members[1:]
    with _tracer.start_as_current_span(
        f"xero {path}",
        context=_context_of(first_trace),
        attributes={**_attributes(tenant_id, first_link), "xerolink.batch_size": len(members)},
    ) as call:
        linked = [
            _tracer.start_span(
                f"xero {path} (batched)",
                context=_context_of(traceparent),
                links=[Link(call.get_span_context())],
                attributes=_attributes(tenant_id, link),
            )
            for traceparent, link in rest
        ]
        try:
            yield call, linked
        finally:
            for span in linked:
                span.end()
