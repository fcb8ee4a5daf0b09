"""Every field comment of the Actionstep transaction contract that says a field is required agrees
with the mapper's validation, and every field the validation requires says so in its comment.

The walk: for one well-formed transaction of every supported kind, clear each field that is set
(of the header, the participant, the body and its first line) and map it. The field is required
when the mapper then reports a violation on it. The comment claims it is required when it says
"Required" ("Required for <kinds>" narrows the claim to those kinds, by name)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from google.protobuf.message import Message
from xerolink.actionstep.v1 import transaction_pb2
from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import XerolinkError
from xerolink_mapper import samples
from xerolink_mapper.adapters.mapping_calls import map_request

from tests.contract.proto_comments import field_comments

PACKAGE = "xerolink.actionstep.v1"
REQUIRED = re.compile(r"\bRequired\b")
REQUIRED_FOR = re.compile(r"\bRequired for ([^:.]+)")


@pytest.fixture(scope="module")
def comments(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    return field_comments(PACKAGE, tmp_path_factory.mktemp("image"))


def _context() -> mapper_pb2.MappingContext:
    context = samples.demo_context()
    # Extended: every kind the matrix can post is validated, not refused before validation.
    context.profile = mapper_pb2.POLICY_PROFILE_EXTENDED
    return context


def _violations(transaction: transaction_pb2.Transaction) -> list[str] | None:
    """Field paths the mapper complains about; None when it maps (or refuses) the transaction."""
    try:
        map_request(mapper_pb2.MapTransactionRequest(transaction=transaction, context=_context()))
    except XerolinkError as err:
        return [v.field for v in err.field_violations] + [v.subject for v in err.precondition_violations]
    return None


Holder = Callable[[transaction_pb2.Transaction], Message | None]


def _holders(kind: str) -> Iterator[tuple[str, Holder]]:
    """The messages of a transaction whose fields are walked, with their validation path."""
    yield "header", lambda t: t.header
    yield "header.participant", lambda t: t.header.participant if t.header.HasField("participant") else None
    yield kind, lambda t: getattr(t, kind)

    def first_line(t: transaction_pb2.Transaction) -> Message | None:
        body = getattr(t, kind)
        lines = getattr(body, "lines", None) if "lines" in body.DESCRIPTOR.fields_by_name else None
        return lines[0] if lines else None

    yield f"{kind}.lines[0]", first_line


def _is_set(message: Message, field: str) -> bool:
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    if descriptor.is_repeated:
        return len(getattr(message, field)) > 0
    if descriptor.message_type is not None:
        return message.HasField(field)
    return bool(getattr(message, field))


def _supported_samples() -> list[tuple[str, transaction_pb2.Transaction]]:
    walked = []
    for kind, transaction in samples.sample_transactions(1000).items():
        answer = map_request(mapper_pb2.MapTransactionRequest(transaction=transaction, context=_context()))
        if answer.decision.supported:
            walked.append((kind, transaction))
    return walked


def _claims(comment: str, kind: str) -> bool:
    if not REQUIRED.search(comment):
        return False
    narrowed = REQUIRED_FOR.search(comment)
    if narrowed is None:
        return True
    return re.search(rf"\b{kind.replace('_', ' ')}\b", narrowed.group(1)) is not None


def test_every_required_comment_matches_the_validation(comments: dict[tuple[str, str], str]) -> None:
    disagreements: list[str] = []
    checked: set[tuple[str, str]] = set()
    for kind, transaction in _supported_samples():
        for path, holder in _holders(kind):
            sample = holder(transaction)
            if sample is None:
                continue
            message_name = sample.DESCRIPTOR.name
            for field in sample.DESCRIPTOR.fields:
                key = (message_name, field.name)
                checked.add(key)
                claimed = _claims(comments.get(key, ""), kind)
                if message_name == "Participant":
                    # Its fields are required where the participant is (TransactionHeader.participant).
                    claimed = claimed and _claims(comments[("TransactionHeader", "participant")], kind)
                required = False
                if _is_set(sample, field.name):
                    cleared = transaction_pb2.Transaction()
                    cleared.CopyFrom(transaction)
                    target = holder(cleared)
                    assert target is not None
                    target.ClearField(field.name)
                    found = _violations(cleared) or []
                    required = any(v.startswith(f"transaction.{path}.{field.name}") for v in found)
                if claimed != required:
                    says = "says required" if claimed else "does not say required"
                    does = "requires it" if required else "does not"
                    disagreements.append(f"{kind}: {message_name}.{field.name} {says}; the validation {does}")
    assert not disagreements, "\n".join(disagreements)
    # No comment claims a requirement the walk never checked.
    unchecked = [f"{m}.{f}" for (m, f), text in comments.items() if REQUIRED.search(text) and (m, f) not in checked]
    assert not unchecked, f"required by comment but never walked: {unchecked}"


def test_trust_interest_needs_a_participant_because_xero_needs_a_contact(
    comments: dict[tuple[str, str], str],
) -> None:
    """Xero refuses a BankTransaction without a Contact; the comment says so for trust interest."""
    interest = samples.sample_transactions(1000)["trust_interest"]
    interest.header.ClearField("participant")

    assert "transaction.header.participant" in (_violations(interest) or [])
    assert _claims(comments[("TransactionHeader", "participant")], "trust_interest")
    assert "Contact" in comments[("TransactionHeader", "participant")]
