"""docs/operations.md is the SRE's reference: every environment variable the services and the CLI
read is in it, and the runbook's figures are the code's defaults."""

from __future__ import annotations

import os
import re

from xerolink_poster.entrypoints import config
from xerolink_poster.service_layer.dispatch.settings import DispatcherSettings

from tests.fixtures.processes import ROOT

GUIDE = (ROOT / "docs" / "operations.md").read_text()


def variables_read_by_the_code() -> set[str]:
    found: set[str] = set()
    for source in (ROOT / "services").glob("*/xerolink_*/**/*.py"):
        found |= set(re.findall(r"\bXEROLINK_[A-Z0-9_]*[A-Z0-9]\b", source.read_text()))
    return found


def test_every_variable_the_code_reads_is_in_the_configuration_reference() -> None:
    variables = variables_read_by_the_code()
    assert {"XEROLINK_CALLERS_FILE", "XEROLINK_CALLER_TOKEN", "XEROLINK_DATABASE_URL"} <= variables
    reference = GUIDE[GUIDE.index("## Configuration reference") :].split("\n## ", 1)[0]
    missing = sorted(v for v in variables if f"`{v}`" not in reference)
    assert not missing, f"add to the configuration reference of docs/operations.md: {missing}"


def test_the_stuck_outbox_runbook_states_the_code_s_lease_and_claim_times() -> None:
    # The suite's token key (conftest.py), so no development key is written to the home folder.
    loaded = config.load({"XEROLINK_TOKEN_ENCRYPTION_KEY": os.environ["XEROLINK_TOKEN_ENCRYPTION_KEY"]})
    lease, claim = loaded.dispatcher.lease_ttl, DispatcherSettings().claim_ttl
    runbook = GUIDE[GUIDE.index("## Runbook: a stuck outbox") :].split("\n## ", 1)[0]
    assert f"`XEROLINK_TENANT_LEASE_SECONDS` ({lease:.0f} s)" in runbook
    assert f"{claim:.0f} s" in runbook and "releases the dead poster's claims" in runbook
