"""Xero's published OpenAPI description of the Accounting API (MIT licence), read from beside the
repository (../shared/xero-openapi/xero_accounting.yaml) or from XEROLINK_XERO_OPENAPI. It is never
copied into the project. A missing file fails the contract checks with a message saying where to
put it, rather than letting them pass without checking anything."""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PATH = ROOT.parent / "shared" / "xero-openapi" / "xero_accounting.yaml"
ENV_VAR = "XEROLINK_XERO_OPENAPI"


def description_path() -> Path:
    override = os.environ.get(ENV_VAR)
    return Path(override) if override else DEFAULT_PATH


@functools.cache
def _load(path: Path) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=loader)
    _fix_in_memory(document)
    return document


def xero_description() -> dict[str, Any]:
    path = description_path()
    if not path.is_file():
        pytest.fail(
            f"Xero's OpenAPI description was not found at {path}. The contract suite checks the emulator "
            f"against it: place xero_accounting.yaml (github.com/XeroAPI/Xero-OpenAPI) there, or set {ENV_VAR} "
            "to its path.",
            pytrace=False,
        )
    return _load(path)


def _fix_in_memory(node: Any) -> None:
    """Xero's description declares some boolean defaults as the strings 'false'/'true', which strict
    loaders reject, and YAML turns its unquoted example timestamps into datetimes, which are not
    JSON; both are fixed in memory."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    if isinstance(node, dict) and node.get("type") == "boolean" and isinstance(node.get("default"), str):
        node["default"] = node["default"].lower() == "true"
    for key, value in list(items):
        if isinstance(value, dt.date):
            node[key] = value.isoformat()
        else:
            _fix_in_memory(value)
