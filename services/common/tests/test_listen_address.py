"""Which listen addresses are loopback, and the start-up rule for the others."""

from __future__ import annotations

import logging

import pytest
from xerolink_common.listening import ALLOW_UNAUTHENTICATED, check_exposure, is_loopback


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:50061", "127.1.2.3:0", "[::1]:50062", "localhost:50061", "LOCALHOST:1", "unix:/tmp/x.sock"],
)
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize(
    "address", ["0.0.0.0:50061", "[::]:50062", ":50061", "10.0.0.5:50061", "poster.example:50062", "50061", ""]
)
def test_other_addresses_are_not_loopback(address: str) -> None:
    assert not is_loopback(address)


def test_loopback_needs_nothing_and_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_exposure("mapper", "127.0.0.1:50061", authenticated=False, env={})
    assert not caplog.records


def test_another_interface_is_refused_without_authentication_or_the_setting() -> None:
    for env in ({}, {ALLOW_UNAUTHENTICATED: ""}, {ALLOW_UNAUTHENTICATED: "0"}, {ALLOW_UNAUTHENTICATED: "off"}):
        with pytest.raises(SystemExit, match="XEROLINK_CALLERS_FILE"):
            check_exposure("poster", "0.0.0.0:50062", authenticated=False, env=env)


def test_an_unclear_setting_is_refused_rather_than_guessed() -> None:
    with pytest.raises(SystemExit, match=ALLOW_UNAUTHENTICATED):
        check_exposure("poster", "0.0.0.0:50062", authenticated=False, env={ALLOW_UNAUTHENTICATED: "sure"})


def test_the_setting_allows_it_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_exposure("mapper", "[::]:50061", authenticated=False, env={ALLOW_UNAUTHENTICATED: "1"})
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "authentication is OFF" in record.getMessage() and "[::]:50061" in record.getMessage()


def test_authenticated_servers_may_listen_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        check_exposure("poster", "0.0.0.0:50062", authenticated=True, env={})
    assert not caplog.records
