"""The exit codes of `xerolink`, the one list scripts can rely on. `xerolink --help` prints it and
docs/operations.md lists it (a test keeps the document equal to this enum)."""

from __future__ import annotations

import textwrap
from enum import IntEnum


class ExitCode(IntEnum):
    """A process exit status of `xerolink`; each member's docstring says when a command returns it."""

    def __new__(cls, value: int, when: str) -> ExitCode:
        # The sentence becomes the member's docstring, where the help text and the docs test read it.
        member = int.__new__(cls, value)
        member._value_ = value
        member.__doc__ = when
        return member

    OK = (
        0,
        "everything asked for was done (for `unlink`: also when nothing matched or all were already unlinked; "
        "for `correct`: also the plan shown, or not confirmed)",
    )
    FAILED = (
        1,
        "at least one transaction failed (Xero refused it, or a precondition is unmet), or a `backfill` still "
        "waits or is not ready; for `unlink`: a selected record cannot be unlinked — nothing was changed; for "
        "`correct`: the plan was refused or a step failed (run the same command again to resume); for "
        "`reconcile`: the books differ (an account's movement or trust)",
    )
    USAGE = (
        2,
        "bad usage or unreadable input — nothing was sent; for `unlink`: also invalid input the poster "
        "refused, or not confirmed — nothing was changed",
    )
    UNAVAILABLE = 3, "a service could not be reached"
    REFUSED = (
        4,
        "nothing failed, but at least one transaction is not supported and was not posted (for `backfill`: "
        "some items were refused, the rest linked)",
    )
    REQUEST_REFUSED = (
        5,
        "a service refused the request itself: the CLI is not authenticated (`UNAUTHENTICATED`) or not "
        "permitted (`PERMISSION_DENIED`), the connection is unknown (`NOT_FOUND`), or the request is invalid "
        "(`INVALID_ARGUMENT`); nothing more was sent",
    )


def help_text(width: int = 100) -> str:
    """The list as `xerolink --help` prints it."""
    lines = ["Exit codes scripts can rely on:"]
    for code in ExitCode:
        lines += textwrap.wrap(
            f"{code.value}  {code.name}: {code.__doc__}", width, initial_indent="  ", subsequent_indent="     "
        )
    return "\n".join(lines)
