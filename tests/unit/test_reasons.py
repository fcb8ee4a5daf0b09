"""Reasons are spelled once, in xerolink_common.reasons.Reason: no literal stands in for one
under services/, and every reason the docs name exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from xerolink.poster.v1 import drift_pb2
from xerolink_common.errors import ErrorCode
from xerolink_common.reasons import Reason
from xerolink_mapper.domain.model import Kind
from xerolink_poster.domain.drift import DriftKind

from tests.unit.reason_sites import reason_sites, source_files

ROOT = Path(__file__).resolve().parents[2]
UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
VALUES = {r.value for r in Reason}


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_every_reason_has_its_value_as_name_and_a_sentence() -> None:
    for reason in Reason:
        assert reason.value == reason.name
        assert reason.sentence.strip(), reason


def test_no_literal_is_passed_stored_or_compared_as_a_reason() -> None:
    literals = [
        f"{_where(site.path, site.line)} {site.node.value!r}"
        for site in reason_sites()
        if isinstance(site.node, ast.Constant)
        and isinstance(site.node.value, str)
        and (site.node.value in VALUES or UPPER_SNAKE.match(site.node.value))
    ]
    assert literals == [], "use a Reason member (add one to xerolink_common/reasons.py if new)"


def test_the_walk_sees_the_call_sites() -> None:
    # A walk that found nothing would pass the test above whatever the code did.
    members = [s for s in reason_sites() if isinstance(s.node, ast.Attribute) and _is_reason(s.node)]
    assert len(members) > 100


def _is_reason(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id == "Reason"


def test_no_reason_is_spelled_as_a_literal_anywhere_under_services() -> None:
    spelled = [
        f"{_where(path, node.lineno)} {node.value!r}"
        for path in source_files()
        if "xerolink_cli" not in path.parts and path.name != "reasons.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value in VALUES
    ]
    assert spelled == []


# Upper-snake names the docs use that are not reasons: gRPC codes, transaction kinds, settings,
# protobuf enum values, support-matrix and preflight codes, precondition types.
NOT_REASONS_PREFIXES = (
    "XEROLINK_",
    "OTEL_",
    "POST_OUTCOME_",
    "UNLINK_ACTION_",
    "LINK_STATE_",
    "BILL_STATUS_",
    "LINE_AMOUNT_TYPES_",
)


_OTHER_VOCABULARY = {
    # Preflight checks and support-matrix codes (PreconditionFailure types and decision codes).
    "ACCOUNTING_METHOD",
    "ACCOUNT_ALLOCATION",
    "TAX_TYPES",
    "CONNECTION_STATE",
    "CASH_ACCOUNTING",
    "EXTENDED_ONLY",
    "GENERAL_RETAINERS",
    "GENERAL_RETAINERS_CONFIGURED",
    "MULTI_CURRENCY_DATABASE",
    "OTHER_DIVISION",
    "PRE_INTEGRATION",
    # Organisation warnings and other precondition or warning types.
    "BASE_CURRENCY_DIFFERS",
    "BLOCKING_DEPENDENT",
    "DEMO_COMPANY",
    "FIELD_IGNORED",
    "TRIAL_ORGANISATION",
    "TAX_RATE_CHANGED",
    # Protobuf enum values, correction actions, CLI exit codes and code constants.
    "OFFICE_AND_TRUST",
    "ALREADY_DONE",
    "BROKEN_ELSEWHERE",
    "NEEDS_RECONNECT",
    "NOT_SUPPORTED",
    "NO_ANSWER_SETTLE_TIMEOUTS",
    "RENAME_DOCUMENT",
    "REQUEST_REFUSED",
}


def _doc_names() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for name in re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`", doc.read_text()):
            found.setdefault(name, set()).add(doc.name)
    return found


def _drift_vocabulary() -> set[str]:
    """Drift kinds, states, resolutions and sources, as the docs name them without their prefix."""
    names = {k.name for k in DriftKind}
    for enum, prefix in (
        (drift_pb2.DriftResolution, "DRIFT_RESOLUTION_"),
        (drift_pb2.DriftState, "DRIFT_STATE_"),
        (drift_pb2.DriftSource, "DRIFT_SOURCE_"),
    ):
        names |= {v.name.removeprefix(prefix) for v in enum.DESCRIPTOR.values}
    return names


def test_every_reason_the_docs_name_exists() -> None:
    others = {c.name for c in ErrorCode} | {k.name for k in Kind} | _OTHER_VOCABULARY | _drift_vocabulary()
    unknown = {
        name: sorted(docs)
        for name, docs in _doc_names().items()
        if name not in VALUES and name not in others and not name.startswith(NOT_REASONS_PREFIXES)
    }
    assert unknown == {}, "a doc names a reason that Reason lacks (or a new non-reason: list it here)"
