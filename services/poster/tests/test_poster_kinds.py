"""The domain's numbered enums are the proto enums: the numbers are stored in the registry and
sent over the wire, so a member added, renumbered or renamed on one side only fails here."""

from __future__ import annotations

from enum import IntEnum

import pytest
from google.protobuf.descriptor import EnumDescriptor
from xerolink.actionstep.v1 import common_pb2
from xerolink.poster.v1 import correction_pb2
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink.xero.v1 import objects_pb2 as xero_pb2
from xerolink_poster.domain.corrections import Action, Actor, Intent
from xerolink_poster.domain.kinds import LinkGroup, ObjectType, TransactionKind

# (domain enum, proto enum, prefix of the proto names). The correction enums leave out
# UNSPECIFIED: a step always has an action, an actor and an intent.
PAIRS: list[tuple[type[IntEnum], EnumDescriptor, str]] = [
    (TransactionKind, common_pb2.DESCRIPTOR.enum_types_by_name["TransactionKind"], "TRANSACTION_KIND_"),
    (ObjectType, xero_pb2.DESCRIPTOR.enum_types_by_name["ObjectType"], "OBJECT_TYPE_"),
    (LinkGroup, poster_pb2.DESCRIPTOR.enum_types_by_name["LinkGroup"], "LINK_GROUP_"),
    (Intent, correction_pb2.DESCRIPTOR.enum_types_by_name["CorrectionIntent"], "CORRECTION_INTENT_"),
    (Actor, correction_pb2.DESCRIPTOR.enum_types_by_name["CorrectionActor"], "CORRECTION_ACTOR_"),
    (Action, correction_pb2.DESCRIPTOR.enum_types_by_name["CorrectionAction"], "CORRECTION_ACTION_"),
]


def _proto_members(proto: EnumDescriptor, prefix: str, with_unspecified: bool) -> dict[str, int]:
    members = {value.name.removeprefix(prefix): value.number for value in proto.values}
    if not with_unspecified:
        members.pop("UNSPECIFIED")
    return members


@pytest.mark.parametrize(("domain", "proto", "prefix"), PAIRS, ids=[d.__name__ for d, _, _ in PAIRS])
def test_each_domain_enum_matches_its_proto_enum_name_for_name_and_value_for_value(
    domain: type[IntEnum], proto: EnumDescriptor, prefix: str
) -> None:
    assert all(value.name.startswith(prefix) for value in proto.values)
    ours = {member.name: member.value for member in domain}
    assert ours == _proto_members(proto, prefix, with_unspecified="UNSPECIFIED" in ours)
