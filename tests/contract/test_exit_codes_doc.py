"""The CLI's exit codes are listed once: docs/operations.md's table and `xerolink --help` say what
xerolink_cli.exit_codes.ExitCode says, and the numbers stay the ones scripts were given."""

from __future__ import annotations

import re

from xerolink_cli.exit_codes import ExitCode
from xerolink_cli.main import build_parser

from tests.fixtures.processes import ROOT

GUIDE = (ROOT / "docs" / "operations.md").read_text()


def documented_codes() -> list[tuple[int, str, str]]:
    section = GUIDE[GUIDE.index("### Exit codes") :].split("\n#", 1)[0]
    rows = re.findall(r"^\| (\d+) \| `([A-Z_]+)` \| (.+) \|$", section, flags=re.MULTILINE)
    return [(int(code), name, when) for code, name, when in rows]


def test_the_operations_guide_lists_every_exit_code_as_the_enum_says() -> None:
    assert documented_codes() == [(code.value, code.name, code.__doc__) for code in ExitCode]


def test_the_numbers_are_those_scripts_rely_on() -> None:
    assert {code.name: code.value for code in ExitCode} == {
        "OK": 0,
        "FAILED": 1,
        "USAGE": 2,
        "UNAVAILABLE": 3,
        "REFUSED": 4,
        "REQUEST_REFUSED": 5,
    }


def test_help_prints_every_exit_code() -> None:
    help_text = " ".join(build_parser().format_help().split())
    for code in ExitCode:
        assert f"{code.value} {code.name}: {' '.join(str(code.__doc__).split())}" in help_text
