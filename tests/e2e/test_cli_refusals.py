"""A request the service refuses ends the CLI with exit 5 and a one-line error (code, reason and
message, then each violation), never a traceback: real console scripts and servers on loopback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format
from xero_emulator import EmulatorServer
from xerolink_cli.exit_codes import ExitCode
from xerolink_mapper import samples

from tests.fixtures.callers import write_callers_file
from tests.fixtures.cli import run_cli
from tests.fixtures.poster import PosterFactory, connect, stub_for
from tests.fixtures.processes import child_env, console_script, free_port, running


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'registry.db'}"


POSTER_TOKEN, BILLING_TOKEN = "poster-token-0123456789", "billing-token-9876543210"


@pytest.fixture
def guarded_mapper(tmp_path: Path) -> Iterator[str]:
    """A mapper console script that serves only the poster of its callers file."""
    port = free_port()
    callers = write_callers_file(tmp_path / "callers.json", {"poster": POSTER_TOKEN, "billing": BILLING_TOKEN})
    env = child_env(
        XEROLINK_MAPPER_ADDRESS=f"127.0.0.1:{port}",
        XEROLINK_CALLERS_FILE=str(callers),
        XEROLINK_MAPPER_ALLOWED_CALLERS="poster",
    )
    with running(console_script("xerolink-mapper"), port, env=env):
        yield f"127.0.0.1:{port}"


def assert_refused(result: subprocess.CompletedProcess[str], first_line: str) -> list[str]:
    """The lines of the CLI's error; the first one starts `error: CODE REASON: `."""
    assert result.returncode == ExitCode.REQUEST_REFUSED, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    assert lines[start].startswith(first_line), lines[start]
    return lines[start:]


def test_an_unauthenticated_cli_gets_exit_5_and_one_line_with_a_hint_even_in_a_narrow_terminal(
    guarded_mapper: str,
) -> None:
    result = run_cli("--mapper", guarded_mapper, "matrix", COLUMNS="40")
    lines = assert_refused(result, "error: UNAUTHENTICATED CALLER_UNKNOWN: no known caller: send 'authorization:")
    assert "registered" in lines[0], "the whole message is on the first line"
    assert lines[1].startswith("  hint: ") and "XEROLINK_CALLER_TOKEN" in lines[1]
    assert "Support matrix" not in result.stdout


def test_a_caller_the_mapper_does_not_serve_gets_exit_5_and_its_caller_gets_in(guarded_mapper: str) -> None:
    refused = run_cli("--mapper", guarded_mapper, "matrix", XEROLINK_CALLER_TOKEN=BILLING_TOKEN)
    lines = assert_refused(refused, "error: PERMISSION_DENIED CALLER_NOT_ALLOWED: caller 'billing' may not call")
    assert lines == lines[:1]
    served = run_cli("--mapper", guarded_mapper, "matrix", XEROLINK_CALLER_TOKEN=POSTER_TOKEN)
    assert served.returncode == ExitCode.OK, served.stdout + served.stderr
    assert "Support matrix" in served.stdout


def test_posting_to_an_unknown_connection_is_exit_5_and_posts_nothing(
    poster_factory: PosterFactory, tmp_path: Path
) -> None:
    app = poster_factory()
    source = tmp_path / "bills.ndjson"
    source.write_text("".join(json.dumps(json_format.MessageToDict(samples.client_bill(i))) + "\n" for i in (1, 2)))

    result = run_cli("--poster", f"127.0.0.1:{app.port}", "post", str(source), "--connection", "nobody")

    lines = assert_refused(result, "error: NOT_FOUND CONNECTION_NOT_FOUND: no connection 'nobody'")
    assert lines == lines[:1]
    assert "Posted to Xero" not in result.stdout


def test_filters_the_poster_refuses_are_exit_5_with_each_field_violation(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    connect(stub_for(app), emulator)

    result = run_cli(
        "--poster",
        f"127.0.0.1:{app.port}",
        "unlink",
        "--connection",
        "firm-1",
        "--matter",
        "-5",
        "--since",
        "2026-02-01",
        "--until",
        "2026-01-01",
        "--yes",
    )

    lines = assert_refused(result, "error: INVALID_ARGUMENT INVALID_LINK_FILTER: the link filters are not valid")
    assert lines[1:] == [
        "  action_id: must be a positive Actionstep id, or 0 for any",
        "  update_time_end: must be after update_time_start",
    ]
