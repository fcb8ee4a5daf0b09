"""The support matrix table as a ListSupportMatrixResponse."""

from __future__ import annotations

from xerolink.mapper.v1 import mapper_service_pb2 as mapper_pb2
from xerolink_common.errors import FieldViolation, invalid_argument
from xerolink_common.reasons import Reason

from xerolink_mapper.adapters.proto_in import KIND_TO_PROTO, PROFILE_FROM_PROTO
from xerolink_mapper.adapters.proto_out import PROFILE_TO_PROTO
from xerolink_mapper.domain import support_matrix as sm
from xerolink_mapper.domain.model import Profile


def support_matrix_response(profile: int) -> mapper_pb2.ListSupportMatrixResponse:
    """Every row in every profile, or only one profile's rows when one is asked for."""
    if profile == mapper_pb2.POLICY_PROFILE_UNSPECIFIED:
        profiles: tuple[Profile, ...] = sm.PROFILES
    elif profile in PROFILE_FROM_PROTO:
        profiles = (PROFILE_FROM_PROTO[profile],)
    else:
        raise invalid_argument(
            Reason.UNKNOWN_PROFILE,
            f"policy profile {profile} is not known to this mapper; send ACTIONSTEP_COMPATIBLE, EXTENDED or leave it "
            "unset for every profile",
            [FieldViolation("profile", f"{profile} is not a PolicyProfile value")],
        )
    rows = [
        mapper_pb2.SupportMatrixRow(
            kind=KIND_TO_PROTO[row.kind],  # type: ignore[arg-type]
            label=row.label,
            profile=PROFILE_TO_PROTO[p],
            supported=row.verdict(p).supported,
            reason_code=row.verdict(p).reason_code,
            reason=row.verdict(p).reason,
            xero_representation=row.xero_representation if row.verdict(p).supported else "",
        )
        for p in profiles
        for row in sm.ROWS
    ]
    conditions = [
        mapper_pb2.SupportCondition(
            reason_code=c.reason_code,
            reason=c.reason,
            profiles=[PROFILE_TO_PROTO[p] for p in c.profiles if p in profiles],
        )
        for c in sm.CONDITIONS
        if any(p in profiles for p in c.profiles)
    ]
    return mapper_pb2.ListSupportMatrixResponse(rows=rows, conditions=conditions)
