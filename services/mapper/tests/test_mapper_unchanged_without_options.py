"""Without the extended options (reports by matter, ledgers OFFICE or TRUST) every answer is byte
for byte what it was before they existed: golden/sample_responses.json holds the deterministic
wire bytes of the answer to every sample kind of samples.py in both profiles, recorded before the
options were added. Leaving matter_tracking off (or sending it with enabled false) and ledgers
UNSPECIFIED or OFFICE_AND_TRUST must not change one byte.

    python services/mapper/tests/test_mapper_unchanged_without_options.py   # re-record (only for an
                                                                          # intended change of output)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_mapper import samples
from xerolink_mapper.adapters.mapping_calls import map_request

GOLDEN = Path(__file__).resolve().parent / "golden" / "sample_responses.json"
PROFILES = {
    "actionstep-compatible": mapper_pb2.POLICY_PROFILE_ACTIONSTEP_COMPATIBLE,
    "extended": mapper_pb2.POLICY_PROFILE_EXTENDED,
}


def _answers(change: Callable[[mapper_pb2.MappingContext], None] = lambda _c: None) -> dict[str, str]:
    out = {}
    for profile_name, profile in PROFILES.items():
        context = samples.demo_context(profile)
        change(context)
        for kind, transaction in samples.sample_transactions(1000).items():
            response = map_request(mapper_pb2.MapTransactionRequest(transaction=transaction, context=context))
            out[f"{profile_name}/{kind}"] = base64.b64encode(response.SerializeToString(deterministic=True)).decode()
    return out


def _matter_tracking_off(context: mapper_pb2.MappingContext) -> None:
    context.matter_tracking.enabled = False


def _office_and_trust(context: mapper_pb2.MappingContext) -> None:
    context.ledgers = mapper_pb2.ORGANISATION_LEDGERS_OFFICE_AND_TRUST


def _unspecified(context: mapper_pb2.MappingContext) -> None:
    context.ledgers = mapper_pb2.ORGANISATION_LEDGERS_UNSPECIFIED


def test_the_golden_answers_cover_every_sample_kind_in_both_profiles() -> None:
    recorded = json.loads(GOLDEN.read_text())
    assert set(recorded) == {f"{p}/{k}" for p in PROFILES for k in samples.sample_transactions(1000)}


@pytest.mark.parametrize(
    "change",
    [lambda _c: None, _matter_tracking_off, _office_and_trust, _unspecified],
    ids=["no-options", "matter-tracking-sent-off", "ledgers-office-and-trust", "ledgers-unspecified"],
)
def test_every_sample_answer_is_byte_for_byte_as_recorded(change: Callable[[mapper_pb2.MappingContext], None]) -> None:
    recorded = json.loads(GOLDEN.read_text())
    answers = _answers(change)
    changed = sorted(key for key in recorded if answers[key] != recorded[key])
    assert changed == [], f"answers changed without the options: {changed}"


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(_answers(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
