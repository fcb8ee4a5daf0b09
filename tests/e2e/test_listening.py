"""Where the real console scripts listen: loopback by default; another interface only with caller
authentication (a callers file) or XEROLINK_ALLOW_UNAUTHENTICATED=1, which logs a warning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from xerolink_mapper.entrypoints import server as mapper_server
from xerolink_poster.entrypoints import config as poster_config

from tests.fixtures.callers import write_callers_file
from tests.fixtures.poster import wait_for
from tests.fixtures.processes import child_env, console_script, free_port, running

SECURITY_VARIABLES = (
    "XEROLINK_CALLERS_FILE",
    "XEROLINK_ALLOW_UNAUTHENTICATED",
    "XEROLINK_TLS_CERT",
    "XEROLINK_TLS_KEY",
)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = child_env(
        XEROLINK_DATABASE_URL=f"sqlite:///{tmp_path / 'poster.db'}",
        XEROLINK_MAPPER_TARGET=f"127.0.0.1:{free_port()}",
        XEROLINK_DISPATCHER="off",
    )
    for name in SECURITY_VARIABLES:
        env.pop(name, None)
    env.update(extra)
    return env


def _until_listening(log: Path) -> None:
    """The port accepts connections a moment before the service logs where it listens: wait for
    the line, or the process is stopped before it is written."""
    wait_for(lambda: log.exists() and "listening on" in log.read_text(), timeout=20)


def _command(service: str, address: str) -> list[str]:
    return [*console_script(f"xerolink-{service}"), "--address", address]


@pytest.mark.parametrize("service", ["mapper", "poster"])
def test_port_alone_listens_on_loopback_only(service: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / f"{service}.log"
    with running([*console_script(f"xerolink-{service}"), "--port", str(port)], port, _env(tmp_path), log):
        _until_listening(log)
    text = log.read_text()
    assert f"listening on 127.0.0.1:{port}" in text
    assert "reachable from other hosts" not in text


@pytest.mark.parametrize("service", ["mapper", "poster"])
def test_another_interface_without_authentication_is_refused_at_start(service: str, tmp_path: Path) -> None:
    done = subprocess.run(
        _command(service, f"0.0.0.0:{free_port()}"), env=_env(tmp_path), capture_output=True, timeout=60, check=False
    )

    assert done.returncode != 0
    message = done.stderr.decode()
    assert "0.0.0.0" in message
    assert "XEROLINK_CALLERS_FILE" in message and "XEROLINK_ALLOW_UNAUTHENTICATED=1" in message
    assert not (tmp_path / "poster.db").exists(), "the registry was opened before the refusal"


@pytest.mark.parametrize("service", ["mapper", "poster"])
def test_another_interface_with_the_explicit_setting_starts_and_warns(service: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / f"{service}.log"
    env = _env(tmp_path, XEROLINK_ALLOW_UNAUTHENTICATED="1")
    with running(_command(service, f"0.0.0.0:{port}"), port, env, log):
        _until_listening(log)
    warnings = [line for line in log.read_text().splitlines() if "WARNING" in line]
    assert any("authentication is OFF" in line and f"0.0.0.0:{port}" in line for line in warnings), warnings


@pytest.mark.parametrize("service", ["mapper", "poster"])
def test_another_interface_with_a_callers_file_starts_without_the_setting(service: str, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / f"{service}.log"
    callers = write_callers_file(tmp_path / "callers.json", tokens={"operator": "t0ken"})
    with running(_command(service, f"0.0.0.0:{port}"), port, _env(tmp_path, XEROLINK_CALLERS_FILE=str(callers)), log):
        _until_listening(log)
    text = log.read_text()
    assert f"listening on 0.0.0.0:{port}" in text
    assert "authentication is OFF" not in text


def test_both_defaults_are_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XEROLINK_MAPPER_ADDRESS", raising=False)
    assert mapper_server.listen_address(None, None) == "127.0.0.1:50061"
    assert mapper_server.listen_address(None, 7000) == "127.0.0.1:7000"
    assert poster_config.DEFAULT_ADDRESS == "127.0.0.1:50062"
