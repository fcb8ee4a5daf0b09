"""The collector's pauses in a long-running service.

A full collection (CPython's oldest generation) examines every object the collector tracks, with
the interpreter lock held: no request is answered meanwhile. After start-up most of them are the
service's own code and state that live as long as the process (modules, classes, ORM mappings,
protobuf descriptors), so each full collection paid for them again. Measured in a poster during
a drain (docs/benchmarks.md, "The collector's pauses"): full collections of 54 to 140 ms.

`freeze_startup_heap` moves the objects alive once a service has started into the collector's
permanent generation (`gc.freeze`, Python's gc documentation): later collections examine only what
was made since. The cost is that a frozen object that later becomes cyclic garbage is never
freed; the objects alive at start-up are those that stay. Frozen objects are also out of
`gc.get_objects()` and `gc.get_referrers()`: a memory investigation in a running service calls
`gc.unfreeze()` first."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collects what start-up left as garbage, then freezes the rest; returns how many objects
    this call froze (not those another `gc.freeze` froze before it)."""
    before = gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count() - before
