"""The mapping is split by family of kinds: every kind the support matrix posts has exactly one
module that maps it, so no kind is mapped twice (the later module silently winning) or not at all."""

from __future__ import annotations

from xerolink_mapper.domain import support_matrix as sm
from xerolink_mapper.domain.kinds import banking, documents, journals, settlements, trust
from xerolink_mapper.domain.mapping import MAPPED_KINDS

MODULES = (documents, settlements, trust, banking, journals)


def test_no_kind_is_mapped_by_two_modules() -> None:
    kinds = [kind for module in MODULES for kind in module.MAPPERS]
    assert sorted(kinds, key=str) == sorted(set(kinds), key=str)
    assert set(kinds) == MAPPED_KINDS


def test_every_kind_a_profile_posts_is_mapped() -> None:
    posted = {row.kind for row in sm.ROWS for profile in sm.PROFILES if row.verdict(profile).supported}
    assert posted == MAPPED_KINDS
