"""Freezing a service's start-up heap (xerolink_common/heap.py), in a fresh interpreter of its
own: freezing is for the life of a process, and this one runs the rest of the suite."""

from __future__ import annotations

import json
import subprocess
import sys

from xerolink_common.heap import YOUNG_THRESHOLD

from tests.fixtures.processes import child_env

_PROBE = """
import gc, json, weakref
from xerolink_common.heap import freeze_startup_heap, space_young_collections

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a

kept = cycle()
dropped = weakref.ref(cycle())  # cyclic garbage from the start: no reference but its own
kept_ref = weakref.ref(kept)
tracked_before = len(gc.get_objects())
frozen = freeze_startup_heap()
tracked_after = len(gc.get_objects())
made_later = weakref.ref(cycle())
gc.collect()
frozen_again = freeze_startup_heap()  # a second call counts only what it froze itself
print(json.dumps({
    "frozen": frozen,
    "tracked_before": tracked_before,
    "tracked_after": tracked_after,
    "dropped_freed": dropped() is None,
    "kept_alive": kept_ref() is kept,
    "later_garbage_freed": made_later() is None,
    "frozen_again": frozen_again,
    "frozen_in_all": gc.get_freeze_count(),
    "thresholds_before": gc.get_threshold(),
    "thresholds_set": space_young_collections(),
    "thresholds_after": gc.get_threshold(),
}))
"""


def _probe() -> dict[str, object]:
    command = [sys.executable, "-c", _PROBE]
    done = subprocess.run(command, check=False, env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_freezing_frees_start_up_garbage_keeps_the_live_objects_and_leaves_later_garbage_to_the_collector() -> None:
    found = _probe()
    # The garbage cycle left by start-up was collected, not frozen for the life of the process.
    assert found["dropped_freed"] is True
    assert found["kept_alive"] is True
    # What was alive is out of the collector's passes: it tracks next to nothing afterwards.
    assert isinstance(found["frozen"], int) and isinstance(found["tracked_before"], int)
    assert isinstance(found["tracked_after"], int)
    assert found["frozen"] > found["tracked_before"] * 0.9
    assert found["tracked_after"] < found["tracked_before"] / 10
    # A cycle made after the freeze is the collector's to free, as before.
    assert found["later_garbage_freed"] is True
    # The count logged is what the call froze, not the whole frozen generation (another call
    # of it, or a library's own gc.freeze, would have inflated it).
    assert isinstance(found["frozen_again"], int) and isinstance(found["frozen_in_all"], int)
    assert found["frozen_again"] < found["frozen"] / 10
    assert found["frozen_in_all"] == found["frozen"] + found["frozen_again"]


def test_young_collections_wait_for_more_allocations_and_the_older_generations_keep_their_ratios() -> None:
    found = _probe()
    before, after = found["thresholds_before"], found["thresholds_after"]
    assert isinstance(before, list) and isinstance(after, list)
    # The interpreter's own default first, so the probe shows a change, not a setting already made.
    assert before[0] < YOUNG_THRESHOLD
    assert after == [YOUNG_THRESHOLD, before[1], before[2]]
    assert found["thresholds_set"] == after
