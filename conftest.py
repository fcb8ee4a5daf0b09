"""Fixtures shared by every test directory; each area's fixtures live in tests/fixtures/."""

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.processes", "tests.fixtures.poster"]
