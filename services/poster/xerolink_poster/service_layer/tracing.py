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
from opentelemetry.trace import INVALID_SPAN, Link, Span
from xerolink_common.telemetry import spans_exported

from xerolink_poster.adapters.tables import LinkRow
from xerolink_poster.domain.stored_rows import StoredLink

_tracer = trace.get_tracer("xerolink.poster")


def current_trace_context() -> str:
    """The traceparent of the active span, or "" when there is none."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent", "")


def _context_of(traceparent: str) -> otel_context.Context | None:
    return propagate.extract({"traceparent": traceparent}) if traceparent else None


def _attributes(tenant_id: str, link: LinkRow | StoredLink) -> dict[str, Any]:
    return {
        "xerolink.tenant_id": tenant_id,
        "xerolink.connection_id": link.connection_id,
        "xerolink.kind": link.kind,
        "xerolink.actionstep.id": str(link.record_id),
    }


@contextmanager
def grouped_span(
    name: str,
    members: Sequence[tuple[otel_context.Context | None, dict[str, Any]]],
    group_attributes: dict[str, Any] | None = None,
) -> Iterator[tuple[Span, list[Span]]]:
    """A span around one call made for several requests, current in the first member's trace
    (so the call's own client span lands there), and a span linked to it in each other
    member's trace. With no exporter the linked spans are not made (they were a tenth of the
    dispatcher's CPU in a profile): the call's own span still carries the trace to Xero."""
    (first_context, first_attributes), rest = members[0], members[1:]
    with _tracer.start_as_current_span(
        name,
        context=first_context,
        attributes={**first_attributes, **(group_attributes or {}), "xerolink.batch_size": len(members)},
    ) as call:
        if not spans_exported():
            linked: list[Span] = [INVALID_SPAN] * len(rest)
        else:
            linked = [
                _tracer.start_span(
                    f"{name} (batched)", context=context, links=[Link(call.get_span_context())], attributes=attributes
                )
                for context, attributes in rest
            ]
        try:
            yield call, linked
        finally:
            for span in linked:
                span.end()


@contextmanager
def xero_call(
    path: str, tenant_id: str, members: Sequence[tuple[str, LinkRow | StoredLink]]
) -> Iterator[tuple[Span, list[Span]]]:
    """A span around one Xero call, in the first member's trace, and a linked span in each other
    member's trace; the caller sets `xerolink.outcome` on each before the block ends."""
    traced = members if spans_exported() else members[:1]
    read = [(_context_of(traceparent), _attributes(tenant_id, link)) for traceparent, link in traced]
    # Unexported, only the first member's trace is read: the others' would make no span.
    read += [(None, {})] * (len(members) - len(read))
    with grouped_span(f"xero {path}", read) as spans:
        yield spans
