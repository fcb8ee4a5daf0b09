"""Fixtures shared by every test directory; each area's fixtures live in tests/fixtures/."""

import os

import pytest

# A fixed key for the tests' posters (in-process and child processes), so no test writes a
# development key into the home directory.
os.environ.setdefault("XEROLINK_TOKEN_ENCRYPTION_KEY", "test:" + "dGVzdC10b2tlbi1rZXktZm9yLXRoZS1zdWl0ZSEhISE=")

pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.processes",
    "tests.fixtures.services",
    "tests.fixtures.poster",
    "tests.fixtures.postgres_posters",
]
