"""`xerolink matters list` and `xerolink matters close` as an operator runs them: the real console
script against a real poster on loopback (SQLite and PostgreSQL registries) and the emulator."""

from __future__ import annotations

import subprocess

from xero_emulator import EmulatorServer
from xerolink.poster.v1 import poster_service_pb2 as poster_pb2
from xerolink_cli.exit_codes import ExitCode

from tests.fixtures.poster import PosterFactory, connect, stub_for, wait_settled
from tests.fixtures.processes import child_env, console_script
from tests.integration.test_poster_matters import MATTER, bill, options_named, post, tracking_context


def run_cli(poster_port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*console_script("xerolink"), "--poster", f"127.0.0.1:{poster_port}", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(COLUMNS="400"),
        timeout=60,
        check=False,
    )


def test_matters_are_listed_and_a_closed_matters_option_archived(
    poster_factory: PosterFactory, emulator: EmulatorServer
) -> None:
    app = poster_factory()
    stub = stub_for(app)
    _, org = connect(stub, emulator, context=tracking_context())
    assert wait_settled(stub, post(stub, bill(10)).name).state == poster_pb2.LINK_STATE_LINKED
    [option] = options_named(emulator, org, str(MATTER))

    listed = run_cli(app.port, "matters", "list", "--connection", "firm-1")
    closed = run_cli(app.port, "matters", "close", "--connection", "firm-1", "--matter", str(MATTER))
    nothing = run_cli(app.port, "matters", "close", "--connection", "firm-1", "--matter", "999")
    bad = run_cli(app.port, "matters", "close", "--connection", "firm-1", "--matter", "abc")

    assert listed.returncode == ExitCode.OK, listed.stderr
    assert str(MATTER) in listed.stdout and option["TrackingOptionID"] in listed.stdout and "active" in listed.stdout
    assert closed.returncode == ExitCode.OK, closed.stderr
    assert "archived" in closed.stdout
    assert options_named(emulator, org, str(MATTER))[0]["Status"] == "ARCHIVED"
    assert nothing.returncode == ExitCode.OK and "nothing to archive" in nothing.stdout
    assert bad.returncode == ExitCode.USAGE


def test_closing_an_unknown_connections_matter_is_refused(poster_factory: PosterFactory) -> None:
    app = poster_factory(run_dispatcher=False)

    refused = run_cli(app.port, "matters", "close", "--connection", "firm-9", "--matter", "5")

    assert refused.returncode == ExitCode.REQUEST_REFUSED
    assert "CONNECTION_NOT_FOUND" in refused.stdout or "no connection" in refused.stdout
