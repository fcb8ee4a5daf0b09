"""The poster's environment: the listen address, the group commit and outbox retention settings,
and the PostgreSQL sessions' timeouts."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
from xerolink_poster.entrypoints import config
from xerolink_poster.entrypoints.config import PosterConfig


def load(settings: Mapping[str, str]) -> PosterConfig:
    # With the suite's token key: a poster configured without one writes a development key into
    # the home folder.
    return config.load({"XEROLINK_TOKEN_ENCRYPTION_KEY": os.environ["XEROLINK_TOKEN_ENCRYPTION_KEY"], **settings})


def test_group_commit_and_retention_come_from_the_environment() -> None:
    loaded = load(
        {
            "XEROLINK_POST_GROUP_WINDOW_MS": "2.5",
            "XEROLINK_POST_GROUP_MAX": "64",
            "XEROLINK_OUTBOX_RETENTION_DAYS": "0.5",
            "XEROLINK_OUTBOX_PURGE_BATCH": "100",
        }
    )
    assert loaded.grouping.enabled
    assert (loaded.grouping.window, loaded.grouping.max_size) == (0.0025, 64)
    assert loaded.dispatcher.outbox_retention == 43_200
    assert loaded.dispatcher.purge_batch == 100
    assert not load({"XEROLINK_POST_GROUP_COMMIT": "off"}).grouping.enabled
    assert load({"XEROLINK_POST_GROUP_WINDOW_MS": "0"}).grouping.window == 0


def test_a_negative_window_or_a_zero_retention_is_refused_at_start() -> None:
    with pytest.raises(SystemExit, match="XEROLINK_POST_GROUP_WINDOW_MS must be zero or more"):
        load({"XEROLINK_POST_GROUP_WINDOW_MS": "-1"})
    with pytest.raises(SystemExit, match="XEROLINK_OUTBOX_RETENTION_DAYS must be positive"):
        load({"XEROLINK_OUTBOX_RETENTION_DAYS": "0"})


@pytest.mark.parametrize("value", ["0.5", "1.5", "0"])
def test_a_group_size_that_is_not_a_whole_positive_number_is_refused_at_start(value: str) -> None:
    """Rounded down, 0.5 was a group of at most none: no Post group ever formed, and every Post
    waited for good."""
    with pytest.raises(SystemExit, match="XEROLINK_POST_GROUP_MAX"):
        load({"XEROLINK_POST_GROUP_MAX": value})


def test_the_poster_listens_on_loopback_unless_told_otherwise() -> None:
    assert load({}).address == "127.0.0.1:50062"
    assert load({"XEROLINK_POSTER_ADDRESS": "0.0.0.0:50062"}).address == "0.0.0.0:50062"


def test_postgresql_timeouts_come_from_the_environment() -> None:
    defaults = load({}).postgres
    assert (defaults.idle_in_transaction_ms, defaults.call_lock_ms) == (60_000, 2_000)
    loaded = load({"XEROLINK_PG_IDLE_IN_TRANSACTION_MS": "15000", "XEROLINK_PG_CALL_LOCK_TIMEOUT_MS": "0"}).postgres
    assert (loaded.idle_in_transaction_ms, loaded.call_lock_ms) == (15_000, 0)


@pytest.mark.parametrize("value", ["-1", "0.5", "1e3", "inf", "nan", "2147483648", "2s"])
def test_a_timeout_postgresql_cannot_take_is_refused_naming_its_variable(value: str) -> None:
    for name in ("XEROLINK_PG_IDLE_IN_TRANSACTION_MS", "XEROLINK_PG_CALL_LOCK_TIMEOUT_MS"):
        with pytest.raises(SystemExit, match=f"{name}=.* must be a whole number of milliseconds"):
            load({name: value})
