"""bench/xero_call.py measures what it says: a call that read the whole answer, rate headers
included (a client that dropped them must not print a figure)."""

from __future__ import annotations

import json

import pytest
from xerolink_poster.domain.rate_limits import RateHeaders

from bench import xero_call


def test_a_small_run_prints_the_cpu_of_a_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert xero_call.main(["--calls", "5", "--rounds", "2", "--elements", "3", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(figures["rounds_ms"]) == 2
    assert figures["thread_cpu_ms_per_call"] > 0
    assert figures["answer_bytes"] > 1000  # three invoices as the emulator answers them


def test_a_client_that_loses_the_rate_headers_ends_the_run_without_a_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(RateHeaders, "parse", classmethod(lambda cls, headers: cls()))
    with pytest.raises(SystemExit, match="did not read Xero's answer"):
        xero_call.main(["--calls", "2", "--rounds", "1", "--elements", "2"])
