"""Fixtures shared by every test directory; each area's fixtures live in tests/fixtures/."""

import pytest

pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.processes",
    "tests.fixtures.services",
    "tests.fixtures.poster",
]
