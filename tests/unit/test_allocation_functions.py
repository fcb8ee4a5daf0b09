"""The allocation function names are spelled once, in xerolink_common.allocation_functions: the
mapper's domain reads them from there and the poster checks re-maps against the same members."""

from __future__ import annotations

import ast
from pathlib import Path

from xerolink_common.allocation_functions import AllocationFunction
from xerolink_mapper.domain.allocations import ALLOCATION_FUNCTIONS
from xerolink_poster.domain import allocation

from tests.unit.reason_sites import source_files

ROOT = Path(__file__).resolve().parents[2]
# Where a spelled-out name would be a second definition (elsewhere the same words can be the
# protobuf oneof names of the trust_interest and advanced_funds kinds).
OWNERS = ("services/poster/", "services/mapper/xerolink_mapper/domain/")


def test_the_mapper_and_the_poster_use_the_same_functions() -> None:
    assert tuple(AllocationFunction) == ALLOCATION_FUNCTIONS
    assert frozenset(AllocationFunction) == allocation.FUNCTIONS


def test_no_allocation_function_is_spelled_as_a_literal() -> None:
    names = {f.value for f in AllocationFunction}
    files = [p for p in source_files() if str(p.relative_to(ROOT)).startswith(OWNERS)]
    assert len(files) > 50
    texts = {path: path.read_text() for path in files}
    # Parsed only where a name appears at all: parsing every file took ten seconds.
    spelled = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for path, text in texts.items()
        if any(name in text for name in names)
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Constant) and node.value in names
    ]
    assert spelled == []
