"""The fidelity suite's registry: both by default, or the one XEROLINK_FIDELITY_DATABASE names
(sqlite or postgres) for a large month."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATABASES = os.environ.get("XEROLINK_FIDELITY_DATABASE", "sqlite,postgres").split(",")


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    assert request.param == "sqlite", f"XEROLINK_FIDELITY_DATABASE must be sqlite or postgres, not {request.param!r}"
    return f"sqlite:///{tmp_path / 'registry.db'}"
