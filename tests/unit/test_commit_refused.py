"""A COMMIT that raised is run again only when the database surely refused it: PostgreSQL
answered with an ERROR (not a connection exception) or ended the session while it idled in the
transaction, or SQLite's file was busy. A connection
lost before the acknowledgement may have committed: run again, its work would be written twice."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from xerolink_poster.adapters.database import CommitMayHaveGoneThrough, commit_refused, retryable


class _PostgresError(Exception):
    """What psycopg raises: its `sqlstate` is the server's, None for an error of the client, and
    `diag.severity_nonlocalized` the server's severity."""

    def __init__(self, sqlstate: str | None, severity: str = "ERROR") -> None:
        super().__init__(f"{severity}: SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate
        self.diag = SimpleNamespace(severity_nonlocalized=severity)


def _sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("sqlite error")
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("orig", "refused"),
    [
        (_PostgresError("40001"), True),  # serialization_failure: rolled back
        (_PostgresError("40P01"), True),  # deadlock_detected
        (_PostgresError("23505"), True),  # a deferred unique key
        (_PostgresError("08006"), False),  # connection_failure
        (_PostgresError("25P03", "FATAL"), True),  # ended idle in the transaction, before the COMMIT
        (_PostgresError("57P01", "FATAL"), False),  # admin_shutdown: perhaps once the commit was done
        (_PostgresError("58030", "PANIC"), False),  # the commit record's flush failed
        (_PostgresError(None), False),  # "server closed the connection unexpectedly"
        (_sqlite_error(5), True),  # SQLITE_BUSY
        (_sqlite_error(517), True),  # SQLITE_BUSY_SNAPSHOT
        (_sqlite_error(6), True),  # SQLITE_LOCKED
        (_sqlite_error(10), False),  # SQLITE_IOERR
        (_sqlite_error(13), False),  # SQLITE_FULL
    ],
)
def test_only_a_commit_the_database_refused_is_known_not_to_have_gone_through(orig: Exception, refused: bool) -> None:
    assert commit_refused(OperationalError("COMMIT", None, orig)) is refused


def test_an_error_of_no_database_at_the_commit_leaves_it_unknown() -> None:
    assert not commit_refused(RuntimeError("a hook after the commit failed"))


def test_a_commit_that_may_have_gone_through_is_no_race_to_run_again_but_still_a_registry_error() -> None:
    lost = OperationalError("COMMIT", None, _PostgresError(None))
    assert retryable(lost)  # before the commit, a dropped connection is a rolled-back race
    unknown = CommitMayHaveGoneThrough.of(lost)
    assert isinstance(unknown, OperationalError)
    assert not retryable(unknown)
    assert not retryable(CommitMayHaveGoneThrough.of(RuntimeError("hook")))
    assert retryable(IntegrityError("INSERT", None, _PostgresError("23505")))
