"""The CLI's own refusal: bad arguments, unreadable input or settings, so nothing was sent (ExitCode.USAGE)."""

from __future__ import annotations


class UsageError(Exception):
    """Bad arguments or unreadable input: nothing was sent."""
