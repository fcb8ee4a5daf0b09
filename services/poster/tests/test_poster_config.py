"""The poster's environment: the listen address, the group commit and outbox retention settings,
and the PostgreSQL sessions' timeouts."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
from xerolink_poster.adapters.database import PostgresTimeouts
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


def test_the_poster_listens_on_loopback_unless_told_otherwise() -> None:
    assert load({}).address == "127.0.0.1:50062"
    assert load({"XEROLINK_POSTER_ADDRESS": "0.0.0.0:50062"}).address == "0.0.0.0:50062"


def test_postgresql_timeouts_come_from_the_environment() -> None:
    defaults = load({}).postgres
    assert (defaults.idle_in_transaction_ms, defaults.dispatcher_lock_ms) == (60_000, 2_000)
    loaded = load({"XEROLINK_PG_IDLE_IN_TRANSACTION_MS": "15000", "XEROLINK_PG_LOCK_TIMEOUT_MS": "0"}).postgres
    assert (loaded.idle_in_transaction_ms, loaded.dispatcher_lock_ms) == (15_000, 0)
    with pytest.raises(SystemExit, match="XEROLINK_PG_LOCK_TIMEOUT_MS must be zero or more"):
        load({"XEROLINK_PG_LOCK_TIMEOUT_MS": "-1"})


def test_the_timeouts_go_to_every_session_after_the_options_the_url_gives() -> None:
    """The dispatcher's pool gets both; the callers' pool no lock time (a Post waits for a lock);
    an `options` of the URL (a search_path, say) is kept, not replaced."""
    timeouts = PostgresTimeouts(idle_in_transaction_ms=1000, dispatcher_lock_ms=200)
    url = "postgresql+psycopg://u@db/xerolink?options=-c%20search_path%3Dledger"
    assert timeouts.connect_args(url, dispatcher=True) == {
        "options": "-c search_path=ledger -c idle_in_transaction_session_timeout=1000 -c lock_timeout=200"
    }
    assert timeouts.connect_args("postgresql+psycopg://u@db/xerolink", dispatcher=False) == {
        "options": "-c idle_in_transaction_session_timeout=1000"
    }


def test_a_timeout_of_zero_is_left_to_the_role_or_server() -> None:
    """Behind a pooler that refuses startup options, both at 0 send none."""
    assert PostgresTimeouts(0, 0).connect_args("postgresql+psycopg://u@db/xerolink", dispatcher=True) == {}
    assert PostgresTimeouts(0, 500).connect_args("postgresql+psycopg://u@db/x", dispatcher=True) == {
        "options": "-c lock_timeout=500"
    }
