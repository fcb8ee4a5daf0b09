"""Content fingerprints: the SHA-256 of a transaction's canonical form. Two posts with the
same fingerprint are the same content; a different fingerprint on a linked record is a change
that needs an unlink first."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """Keys sorted, no whitespace, UTF-8: the same content always gives the same bytes."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_fingerprint(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content)).hexdigest()
