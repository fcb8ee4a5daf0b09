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
`gc.unfreeze()` first.

`space_young_collections` makes the youngest generation wait for YOUNG_THRESHOLD allocations
before a collection instead of CPython's 700 (`gc.set_threshold`). A busy service allocates 700
tracked objects in well under a millisecond, so every object of the work in flight (a Xero
call's answer, the documents trimmed from it, a group of answers being applied) lived through
several young collections and was moved to the oldest generation. Full collections then came every
second or so, and each examined all of it: in a poster draining 50 organisations' backlogs, 20
full collections of about 120 ms took 2.4 s of the 15 s of CPU the drain cost (docs/benchmarks.md,
"The collector's young generation"). Waiting for more allocations lets most of what a call makes
die before a collection sees it. The older generations keep their own thresholds: they count
young collections, not allocations."""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collects what start-up left as garbage, then freezes the rest; returns how many objects
    this call froze (not those another `gc.freeze` froze before it)."""
    before = gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count() - before


# Tracked allocations (net of deallocations) between two young collections.
YOUNG_THRESHOLD = 10_000


def space_young_collections() -> tuple[int, int, int]:
    """Sets the youngest generation's threshold to YOUNG_THRESHOLD, the others as they were;
    returns the collector's thresholds as it then has them."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    return gc.get_threshold()
