"""The JSON xerolink sends Xero: amounts exact from Decimal, and the same bytes as the standard
library's compact ASCII form (an Idempotency-Key is derived from them, so a poster upgraded while
a call is outstanding must send the same bytes for the same body)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from xerolink_poster.adapters import xero_json

amounts = st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9)
leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), amounts)
bodies = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=30,
)


def _reference(value: Any) -> str:
    """What json.dumps writes, with Decimals as their exact digits."""
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + _reference(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_reference(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value)


@given(bodies)
def test_a_body_is_written_as_the_standard_library_writes_it_with_exact_amounts(body: Any) -> None:
    written = xero_json.dumps(body)
    assert written == _reference(body).encode()
    assert xero_json.loads(written) == json.loads(written, parse_float=Decimal)


def test_an_amount_keeps_every_digit_and_a_float_is_refused() -> None:
    assert xero_json.dumps({"UnitAmount": Decimal("1234.50"), "Quantity": Decimal("1E+2")}) == (
        b'{"UnitAmount":1234.50,"Quantity":100}'
    )
    assert xero_json.loads(b'{"a": 0.10}') == {"a": Decimal("0.10")}
    with pytest.raises(TypeError):
        xero_json.dumps({"UnitAmount": 0.1})
