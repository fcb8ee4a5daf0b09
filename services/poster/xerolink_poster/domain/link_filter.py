"""Which links an operator lists (and so selects for unlinking)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkFilter:
    """Zero or empty means "any". Times are microseconds since the epoch; the start is
    inclusive and the end exclusive."""

    group: int = 0
    state: str = ""
    kinds: tuple[int, ...] = ()
    action_id: int = 0
    participant_id: int = 0
    updated_from_us: int = 0
    updated_to_us: int = 0
    xero_id: str = ""
    # Only links with an open drift (docs/drift.md).
    drifted: bool = False

    def fingerprint(self) -> str:
        """A short digest carried in page tokens, so a token is used only with its own filters."""
        text = repr((self.group, self.state, sorted(set(self.kinds)), self.action_id, self.participant_id))
        text += repr((self.updated_from_us, self.updated_to_us, self.xero_id))
        if self.drifted:  # absent otherwise, so tokens issued before the filter existed stay valid
            text += "drifted"
        return hashlib.sha256(text.encode()).hexdigest()[:12]
